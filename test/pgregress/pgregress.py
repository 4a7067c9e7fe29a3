#!/usr/bin/env python3
"""Differential test: PostgreSQL 15's own regression SQL against heap tables
and against destor foreign tables, compared statement by statement.

One throwaway cluster (destor preloaded, file providers) holds a database per
mode:
  heap      test_setup.sql as PostgreSQL ships it: every table a heap table
  standard  the standard tables (onek, tenk1, tenk2, int4_tbl, ...) turned into
            destor foreign tables with small segments right after test_setup
  created   as standard, and an event trigger turns every table the test files
            CREATE (or CREATE TABLE AS / SELECT INTO) into a destor table
            where PostgreSQL allows one (no indexes, keys, inheritance, ...)
Each regress file runs in every database (through psql's stdin, as pg_regress
does); the file is cut into statements at line boundaries with \\echo
markers, so every statement's output (rows, command tag, error) is compared
on its own.  Rows of a statement without ORDER BY are compared as a multiset.

Every difference is classified: crash, wrong (both succeed, answers differ),
destor-error (an error only on destor), heap-error (an error only on heap),
order (same rows, other order, though the query has ORDER BY), and matched
against test/pgregress/accepted.txt (differences that PostgreSQL's rules for
foreign tables cause; each line names the rule) and known_bugs.txt (wrong
answers filed in the findings, not fixed yet).  Exit status 1 when a
difference is in neither list (or, with --strict, when any known bug remains).
"""
import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# the standard tables of test_setup.sql that become destor tables (the ones
# in inheritance trees stay heap: a foreign table may be a child, but the
# parents are plain tables and their rows are spread over the tree)
STANDARD_TABLES = ["char_tbl", "float8_tbl", "int2_tbl", "int4_tbl", "int8_tbl",
                   "point_tbl", "text_tbl", "varchar_tbl", "onek", "onek2",
                   "tenk1", "tenk2"]
TABLE_OPTIONS = "segment_rows '1000', row_group_rows '100'"

# ---------------------------------------------------------------- cutting


def split_statements(text):
    """Cut a psql script into groups of whole lines, each ending with at
    least one complete statement or meta-command.  Returns [(first line
    number, text)]."""
    groups = []
    cur = []
    cur_start = 1
    state = None          # None, "'", '"', ('$', tag), ('/*', depth)
    estring = False
    paren = 0
    begin_depth = 0
    stmt_words = []       # first words of the current statement
    pending = False       # statement text seen, not yet terminated
    copy_data = False
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    def flush(lineno):
        nonlocal cur, cur_start
        if cur:
            groups.append((cur_start, "\n".join(cur)))
        cur = []
        cur_start = lineno + 1

    for lineno, line in enumerate(lines, 1):
        cur.append(line)
        if copy_data:
            if line.strip() == "\\.":
                copy_data = False
                flush(lineno)
            continue
        i = 0
        n = len(line)
        completed = False
        while i < n:
            c = line[i]
            if state == "'":
                if estring and c == "\\":
                    i += 2
                    continue
                if c == "'":
                    if i + 1 < n and line[i + 1] == "'":
                        i += 2
                        continue
                    state = None
                i += 1
                continue
            if state == '"':
                if c == '"':
                    state = None
                i += 1
                continue
            if isinstance(state, tuple) and state[0] == "$":
                tag = state[1]
                if line.startswith(tag, i):
                    state = None
                    i += len(tag)
                else:
                    i += 1
                continue
            if isinstance(state, tuple) and state[0] == "/*":
                if line.startswith("*/", i):
                    d = state[1] - 1
                    state = None if d == 0 else ("/*", d)
                    i += 2
                elif line.startswith("/*", i):
                    state = ("/*", state[1] + 1)
                    i += 2
                else:
                    i += 1
                continue
            # outside quotes and comments
            if line.startswith("--", i):
                break
            if line.startswith("/*", i):
                state = ("/*", 1)
                i += 2
                continue
            if c == "'":
                estring = i > 0 and line[i - 1] in "eE" and (i < 2 or not (line[i - 2].isalnum() or line[i - 2] == "_"))
                state = "'"
                pending = True
                i += 1
                continue
            if c == '"':
                state = '"'
                pending = True
                i += 1
                continue
            if c == "$":
                m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", line[i:])
                if m and not (i > 0 and (line[i - 1].isalnum() or line[i - 1] == "_")):
                    state = ("$", m.group(0))
                    pending = True
                    i += len(m.group(0))
                    continue
                i += 1
                continue
            if c == "\\":
                # a meta-command: the rest of the line (ends the query buffer)
                if line.startswith("\\;", i):
                    i += 2
                    continue
                if re.match(r"\\copy\b.*\bfrom\s+p?stdin\b", line[i:], re.I):
                    copy_data = True
                pending = False
                paren = 0
                begin_depth = 0
                stmt_words = []
                completed = True
                break
            if c == "(":
                paren += 1
            elif c == ")":
                paren = max(0, paren - 1)
            elif c == ";" and paren == 0 and begin_depth == 0:
                words = stmt_words
                stmt = " ".join(words).lower()
                pending = False
                stmt_words = []
                completed = True
                if re.match(r"copy\b", stmt) and re.search(r"\bfrom\s+stdin\b", _line_tail_stmt(cur)):
                    copy_data = True
                i += 1
                continue
            elif c.isalpha() or c == "_":
                m = re.match(r"[A-Za-z_][A-Za-z_0-9$]*", line[i:])
                w = m.group(0)
                lw = w.lower()
                if len(stmt_words) < 6:
                    stmt_words.append(lw)
                first = " ".join(stmt_words)
                if re.match(r"create (or replace )?(function|procedure)", first):
                    if lw == "begin" and paren == 0:
                        rest = line[i + len(w):].lstrip().lower()
                        if rest.startswith("atomic") or begin_depth > 0:
                            begin_depth += 1
                    elif lw == "case" and begin_depth > 0:
                        begin_depth += 1
                    elif lw == "end" and begin_depth > 0:
                        begin_depth -= 1
                pending = True
                i += len(w)
                continue
            elif not c.isspace():
                pending = True
            i += 1
        if copy_data:
            continue
        if completed and not pending and state is None:
            flush(lineno)
    flush(len(lines))
    return groups


def _line_tail_stmt(cur):
    # the text of the statement just ended: enough to spot COPY ... FROM stdin
    return " ".join(cur[-5:]).lower()


def norm_sql(sql):
    out = []
    for line in sql.split("\n"):
        s = line.strip()
        if s.startswith("--"):
            continue
        out.append(s)
    return re.sub(r"\s+", " ", " ".join(out)).strip()


def stmt_key(sql, seen):
    h = hashlib.sha1(norm_sql(sql).encode()).hexdigest()[:12]
    k = seen.get(h, 0)
    seen[h] = k + 1
    return h if k == 0 else "%s.%d" % (h, k)


# ---------------------------------------------------------------- cluster


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Cluster:
    def __init__(self, work, key_file):
        self.work = work
        self.data = os.path.join(work, "data")
        self.sock = os.path.join(work, "sock")
        self.log = os.path.join(work, "postgres.log")
        self.key_file = key_file
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()

    def env(self):
        e = dict(os.environ)
        e.update(PGHOST=self.sock, PGPORT=str(self.port), PGUSER="postgres",
                 PGOPTIONS="", PGTZ="America/Los_Angeles", PGDATESTYLE="Postgres, MDY",
                 LC_MESSAGES="C", PGCLIENTENCODING="UTF8")
        return e

    def start(self):
        os.makedirs(self.sock, exist_ok=True)
        run(["initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--no-locale", "--no-sync"], stdout=subprocess.DEVNULL)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = ''
unix_socket_directories = '{self.sock}'
port = {self.port}
shared_preload_libraries = 'destor'
destor.master_key_file = '{self.key_file}'
autovacuum = off
fsync = off
max_prepared_transactions = 2
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
""")
        run(["pg_ctl", "-D", self.data, "-l", self.log, "-w", "start"], stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            r = subprocess.run(["pg_isready", "-h", self.sock, "-p", str(self.port), "-d", "postgres"],
                               stdout=subprocess.DEVNULL, env=self.env())
            if r.returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("server did not come back")

    def psql(self, db, script, extra_env=None, timeout=1800):
        e = self.env()
        if extra_env:
            e.update(extra_env)
        r = subprocess.run(["psql", "-X", "-d", db, "-v", "ON_ERROR_STOP=0"],
                           input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=e, timeout=timeout)
        return r.stdout.decode("utf-8", "replace"), r.returncode


# ---------------------------------------------------------------- setup

PROVIDERS_SQL = """
CREATE SERVER pgr_p1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '{d}/p1');
CREATE SERVER pgr_p2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '{d}/p2');
CREATE SERVER pgr_p3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '{d}/p3');
CREATE SERVER pgr_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'pgr_p1,pgr_p2,pgr_p3', data_shards '2', parity_shards '1');
GRANT USAGE ON FOREIGN SERVER pgr_pool TO PUBLIC;
-- writing a pool needs USAGE on its providers too: a role the tests allow to
-- INSERT into a table may write it, as with heap
GRANT USAGE ON FOREIGN SERVER pgr_p1, pgr_p2, pgr_p3 TO PUBLIC;
"""

# Turn a heap table into a destor table with the same name, columns, defaults,
# NOT NULL and CHECK constraints and rows; returns false (and leaves it alone)
# when PostgreSQL does not allow a foreign table in its place.
CONVERT_SQL = r"""
CREATE FUNCTION pgr_to_destor(rel regclass) RETURNS bool LANGUAGE plpgsql AS $f$
DECLARE
  c record; cols text := ''; tmpname text; relname text; nsp text; seq record;
  cmt text;
BEGIN
  SELECT n.nspname, cl.relname INTO nsp, relname
    FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = rel;
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = rel AND relkind = 'r'
                   AND relpersistence = 'p' AND NOT relispartition AND reloftype = 0
                   AND NOT relrowsecurity)
     OR EXISTS (SELECT 1 FROM pg_index WHERE indrelid = rel)
     OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = rel OR inhparent = rel)
     OR EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = rel AND contype NOT IN ('c', 'n'))
     OR EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = rel)
     OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel)
     OR EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = rel)
     OR EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attnum > 0
                  AND (attidentity <> '' OR attisdropped))
     OR EXISTS (SELECT 1 FROM pg_depend WHERE refobjid = rel AND refclassid = 'pg_class'::regclass
                  AND classid = 'pg_rewrite'::regclass)
     OR nsp IN ('pg_catalog', 'information_schema', 'destor')
  THEN
    RETURN false;
  END IF;
  FOR c IN SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS typ, a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid) AS def, a.attgenerated,
                  CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                       THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                              JOIN pg_namespace cn ON cn.oid = co.collnamespace
                             WHERE co.oid = a.attcollation) END AS coll
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = rel AND a.attnum > 0 ORDER BY a.attnum
  LOOP
    cols := cols || CASE WHEN cols = '' THEN '' ELSE ', ' END
            || format('%I %s', c.attname, c.typ)
            || CASE WHEN c.coll IS NOT NULL THEN ' COLLATE ' || c.coll ELSE '' END
            || CASE WHEN c.attnotnull THEN ' NOT NULL' ELSE '' END
            || CASE WHEN c.def IS NULL THEN ''
                    WHEN c.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || c.def || ') STORED'
                    ELSE ' DEFAULT ' || c.def END;
  END LOOP;
  FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
            WHERE conrelid = rel AND contype = 'c' ORDER BY oid
  LOOP
    cols := cols || CASE WHEN cols = '' THEN '' ELSE ', ' END
            || format('CONSTRAINT %I %s', c.conname, c.def);
  END LOOP;
  cmt := obj_description(rel, 'pg_class');
  tmpname := 'pgr_old_' || relname;
  EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', nsp, relname, tmpname);
  EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s) SERVER pgr_pool OPTIONS (%s)',
                 nsp, relname, cols, '__OPTIONS__');
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attgenerated <> '') THEN
    EXECUTE format('INSERT INTO %I.%I (%s) SELECT %s FROM %I.%I', nsp, relname,
      (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
        WHERE attrelid = rel AND attnum > 0 AND attgenerated = ''),
      (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
        WHERE attrelid = rel AND attnum > 0 AND attgenerated = ''),
      nsp, tmpname);
  ELSE
    EXECUTE format('INSERT INTO %I.%I SELECT * FROM %I.%I', nsp, relname, nsp, tmpname);
  END IF;
  -- sequences owned by the old columns (serial) move to the new ones
  FOR seq IN SELECT d.objid::regclass AS s, a.attname FROM pg_depend d
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.refobjid = rel AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
                AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'
  LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I.%I', seq.s, nsp, relname, seq.attname);
  END LOOP;
  EXECUTE format('DROP TABLE %I.%I', nsp, tmpname);
  IF cmt IS NOT NULL THEN
    EXECUTE format('COMMENT ON FOREIGN TABLE %I.%I IS %L', nsp, relname, cmt);
  END IF;
  RETURN true;
END $f$;
""".replace("__OPTIONS__", TABLE_OPTIONS.replace("'", "''"))

EVENT_TRIGGER_SQL = r"""
CREATE FUNCTION pgr_convert_created() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  IF current_setting('pgr.converting', true) = 'on' THEN RETURN; END IF;
  PERFORM set_config('pgr.converting', 'on', true);
  FOR r IN SELECT objid FROM pg_event_trigger_ddl_commands()
            WHERE command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
              AND object_type = 'table'
  LOOP
    BEGIN
      PERFORM pgr_to_destor(r.objid::regclass);
    EXCEPTION WHEN OTHERS THEN
      NULL;   -- leave the heap table (the comparison shows what follows)
    END;
  END LOOP;
  PERFORM set_config('pgr.converting', 'off', true);
END $f$;
CREATE FUNCTION pgr_rewrite_drop(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE m text[]; n text; heap text[] := '{}'; ft text[] := '{}'; r regclass; pre text; tail text;
BEGIN
  m := regexp_match(stmt, '^\s*drop\s+table\s+(if\s+exists\s+)?(.*?)\s*(cascade|restrict)?\s*$', 'i');
  IF m IS NULL THEN RETURN stmt || ';'; END IF;
  pre := 'DROP %s ' || coalesce(m[1], '');
  tail := coalesce(' ' || m[3], '');
  FOREACH n IN ARRAY regexp_split_to_array(m[2], '\s*,\s*') LOOP
    r := to_regclass(n);
    IF r IS NOT NULL AND (SELECT relkind FROM pg_class WHERE oid = r) = 'f' THEN
      ft := ft || n;
    ELSE
      heap := heap || n;
    END IF;
  END LOOP;
  IF cardinality(ft) = 0 THEN RETURN stmt || ';'; END IF;
  RETURN CASE WHEN cardinality(heap) > 0
              THEN format(pre, 'TABLE') || array_to_string(heap, ', ') || tail || '; ' ELSE '' END
      || format(pre, 'FOREIGN TABLE') || array_to_string(ft, ', ') || tail || ';';
END $f$;
CREATE EVENT TRIGGER pgr_convert_created ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
  EXECUTE FUNCTION pgr_convert_created();
"""


def setup_db(cl, db, mode, src, provdir):
    env = {"PG_ABS_SRCDIR": src, "PG_LIBDIR": os.path.join(src, "nolib"), "PG_DLSUFFIX": ".so"}
    out, rc = cl.psql("postgres", f'CREATE DATABASE "{db}" TEMPLATE template0;\n')
    if "ERROR" in out:
        raise RuntimeError(out)
    # the destor extension in every database, so catalog contents match
    out, rc = cl.psql(db, "SET client_min_messages = warning;\nCREATE EXTENSION destor;\n")
    if "ERROR" in out:
        raise RuntimeError(out)
    with open(os.path.join(src, "sql", "test_setup.sql")) as f:
        setup = f.read()
    out, rc = cl.psql(db, setup, env)
    if mode == "heap":
        return
    for p in ("p1", "p2", "p3"):
        os.makedirs(os.path.join(provdir, db, p), exist_ok=True)
    script = PROVIDERS_SQL.format(d=os.path.join(provdir, db)) + CONVERT_SQL
    script += "\\set ON_ERROR_STOP 1\n"
    for t in STANDARD_TABLES:
        script += f"SELECT pgr_to_destor('{t}') AS converted_{t};\n"
    out, rc = cl.psql(db, script)
    bad = [t for t in STANDARD_TABLES if f"converted_{t}" in out and not re.search(
        r"converted_%s\s*\n-+\n\s*t\s*\n" % t, out)]
    if rc != 0 or bad or "ERROR" in out:
        raise RuntimeError("setup of %s failed (%s):\n%s" % (db, bad, out))
    if mode == "created":
        out, rc = cl.psql(db, EVENT_TRIGGER_SQL)
        if "ERROR" in out:
            raise RuntimeError(out)


# ---------------------------------------------------------------- running

MARK = "@@PGR "


DROP_RE = re.compile(r"^\s*drop\s+table\s+[^;]*;\s*$", re.I)


def rewrite_drop(text):
    """In mode created, DROP TABLE of a table the harness turned into a
    foreign table becomes DROP FOREIGN TABLE (pgr_rewrite_drop decides in
    the database, at that moment)."""
    code = "\n".join(re.sub(r"--.*$", "", l) for l in text.split("\n"))
    if not DROP_RE.match(code) or "$pgr$" in code:
        return text
    stmt = code.strip().rstrip(";")
    # the original lines, as comments: what psql's ECHO all shows (normalise)
    orig = "".join("--pgr " + l + "\n" for l in text.split("\n"))
    return orig + ("\\set pgr_stmt 'SELECT ''pgr_rewrite_drop failed'';'\n"
            "SELECT pgr_rewrite_drop($pgr$" + stmt + "$pgr$) AS pgr_stmt \\gset\n:pgr_stmt\n")


def run_file(cl, db, groups, src, mode=None):
    env = {"PG_ABS_SRCDIR": src, "PG_LIBDIR": os.path.join(src, "nolib"), "PG_DLSUFFIX": ".so"}
    parts = []
    for idx, (_, text) in enumerate(groups):
        parts.append("\\echo '%s%d'" % (MARK, idx))
        parts.append(rewrite_drop(text) if mode == "created" else text)
    parts.append("\\echo '%sEND'" % MARK)
    out, rc = cl.psql(db, "\n".join(parts) + "\n", env)
    res = {}
    cur = None
    buf = []
    ended = False
    for line in out.split("\n"):
        if line.startswith(MARK):
            if cur is not None:
                res[cur] = "\n".join(buf)
            tag = line[len(MARK):].strip()
            if tag == "END":
                ended = True
                cur = None
                break
            cur = int(tag)
            buf = []
        elif cur is not None:
            buf.append(line)
        else:
            buf.append(line)
    if cur is not None:
        res[cur] = "\n".join(buf)
    return res, ended, out


CRASH_RE = re.compile(r"server closed the connection unexpectedly|connection to server was lost|"
                      r"terminating connection because of crash")
ERROR_RE = re.compile(r"^(ERROR|FATAL|PANIC):", re.M)


def has_order_by(sql):
    """ORDER BY outside parentheses (an ordered subquery orders nothing)."""
    n = re.sub(r"'[^']*'", "''", norm_sql(sql))
    prev = None
    while prev != n:
        prev = n
        n = re.sub(r"\([^()]*\)", " ", n)
    return re.search(r"\border\s+by\b", n, re.I) is not None


def normalise(out, mode="heap"):
    # \c names the database
    out = re.sub(r'connected to database "pgr_[a-z]+"', 'connected to database "DB"', out)
    if mode == "created":
        # the harness's DROP FOREIGN TABLE for a DROP TABLE (rewrite_drop)
        out = out.replace("DROP FOREIGN TABLE", "DROP TABLE")
        # echoed (\set ECHO all) lines of rewrite_drop's statements
        out = re.sub(r"(?m)^\\set pgr_stmt '.*\n|^SELECT pgr_rewrite_drop\(.*\n|^:pgr_stmt\n", "", out)
        out = re.sub(r"(?m)^--pgr ", "", out)
        out = re.sub(r"(drop cascades to )foreign table ", r"\1table ", out)
    return out.rstrip("\n")


RULES = [
    # (rule name, regex on the statement, regex on the destor output, or None)
    ("EXPLAIN: plan shapes differ for foreign tables", r"^\s*explain\b", None),
    ("no indexes on foreign tables", r"\bcreate\s+(unique\s+)?index\b|\breindex\b|\bcluster\b", r"cannot create index on|is not a table|cannot cluster|is not an index"),
    ("no indexes on foreign tables (ON CONFLICT needs a unique index)", r"\bon\s+conflict\b", r"no unique or exclusion constraint|ON CONFLICT"),
    ("TABLESAMPLE is not supported on foreign tables without an FDW sampler", r"\btablesample\b", r"TABLESAMPLE"),
    ("WHERE CURRENT OF is not supported for foreign tables", r"\bcurrent\s+of\b", r"WHERE CURRENT OF|not supported for this table type|is not a simply updatable scan"),
    ("system columns (ctid, xmin, ...) of foreign tables", r"\b(ctid|xmin|xmax|cmin|cmax)\b", None),
    ("COPY TO a foreign table: use COPY (SELECT ...) TO", r"^\s*copy\b", r"cannot copy from foreign table"),
    ("VACUUM/CLUSTER/table-only commands skip foreign tables", r"^\s*(vacuum|analyze|cluster)\b", r"skipping|cannot vacuum|cannot cluster"),
    ("ALTER TABLE forms not allowed on foreign tables", r"^\s*alter\s+table\b", r"is not a table|foreign table|cannot"),
    ("keys and unique constraints are not supported on foreign tables", r"primary\s+key|unique|references|exclude", r"constraints are not supported on foreign tables|is not a table|cannot reference"),
    ("psql \\d describes a foreign table", r"^\s*\\d", None),
    ("EXPLAIN (through a function): plan shapes differ for foreign tables", r"\bexplain", r"(Scan|Join|Aggregate|Gather|Sort|Loop)\b.*\(actual|Foreign Scan"),
    ("MERGE is not supported for foreign tables (PostgreSQL 15)", r"\bmerge\b", r"cannot execute MERGE on relation"),
    ("rules (CREATE RULE) cannot be defined on foreign tables", r"\brule\b", r"cannot have rules|rule .* does not exist"),
    ("COPY FREEZE needs a heap table", r"\bfreeze\b", r"COPY FREEZE"),
    ("transition tables (REFERENCING) cannot collect tuples of foreign tables", r".", r"transition tuples from child foreign tables|transition tables"),
    ("table-only commands (DROP TABLE, TRUNCATE triggers, ALTER TABLE ... SET) name a foreign table", r".", r"is not a table|is a foreign table|not supported for foreign tables|Use DROP FOREIGN TABLE"),
    ("catalog contents: the converted tables are foreign tables (relkind f, no storage, other oids)", r"\bpg_(class|relation_size|total_relation_size|table_size|stat\w*|attribute|inherits|depend)\b|\breltoastrelid\b|\brelpages\b|\breltuples\b", None),
    ("scroll cursors: a cursor over a foreign scan is not scrollable", r"\bpg_cursors\b", r"is_scrollable"),
    ("cascade: an index or constraint that could not be created on a foreign table", r".", r"(index|constraint) \"[^\"]+\" (of relation \"[^\"]+\" )?does not exist|relation \"\w+(_idx\w*|_key|_pkey|_index)\" does not exist"),
    ("scroll cursors: backward fetch on a forward-only foreign scan", r"\b(fetch|move)\b", r"can only scan forward|cursor can only"),
    ("row marks: FOR UPDATE/SHARE on a foreign table", r"\bfor\s+(update|share|no key update|key share)\b", r"cannot lock rows|FOR UPDATE|FOR SHARE"),
]


NOT_ENFORCED = ("constraints (NOT NULL, CHECK, partition bound) of foreign tables are not enforced "
                "by PostgreSQL (CREATE FOREIGN TABLE, Notes)")


def suggest_rule(sql, hout, dout, cls=None):
    n = norm_sql(sql)
    if ("current transaction is aborted" in dout and "current transaction is aborted" not in hout) or \
       re.search(r'savepoint "[^"]*" does not exist', dout):
        return "cascade: the transaction was aborted by an earlier (listed) difference"
    if cls == "heap-error" and re.search(r"violates (not-null|check|partition) constraint", hout):
        return NOT_ENFORCED
    for name, sre, ore in RULES:
        if name.startswith("EXPLAIN") and cls != "wrong":
            continue
        if re.search(sre, n, re.I) or re.search(sre, sql, re.I | re.M):
            if ore is None or re.search(ore, dout, re.I):
                return name
    return ""


def compare(sql, hout, dout):
    """Returns None when the outputs agree, else a class name."""
    if hout == dout:
        return None
    if CRASH_RE.search(dout):
        return "crash"
    hl = hout.split("\n")
    dl = dout.split("\n")
    if sorted(hl) == sorted(dl):
        return None if not has_order_by(sql) else "order"
    herr = bool(ERROR_RE.search(hout))
    derr = bool(ERROR_RE.search(dout))
    if derr and not herr:
        return "destor-error"
    if herr and not derr:
        return "heap-error"
    return "wrong"


def load_list(path):
    entries = {}
    if not path or not os.path.exists(path):
        return entries
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) < 4:
                continue
            mode, fname, key, cls = parts[:4]
            rule = parts[4] if len(parts) > 4 else ""
            entries[(mode, fname, key)] = (cls, rule)
    return entries


def clip(s, n):
    s = s.replace("\t", " ")
    return s if len(s) <= n else s[:n - 3] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="PostgreSQL's src/test/regress (sql/, data/)")
    ap.add_argument("--files", required=True, help="file listing regress file names, one a line")
    ap.add_argument("--modes", default="standard,created")
    ap.add_argument("--work", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--accepted", default=os.path.join(HERE, "accepted.txt"))
    ap.add_argument("--known-bugs", default=os.path.join(HERE, "known_bugs.txt"))
    ap.add_argument("--write-new", help="write the unlisted differences here, in the lists' format")
    ap.add_argument("--report", help="write a readable report of every difference here")
    ap.add_argument("--strict", action="store_true", help="known bugs fail too")
    ap.add_argument("--only", help="run only these files (comma separated)")
    args = ap.parse_args()

    modes = [m for m in args.modes.split(",") if m]
    # a line: FILE [MODE,MODE]  (no modes: every mode)
    files = []
    file_modes = {}
    with open(args.files) as f:
        for l in f:
            w = l.split("#")[0].split()
            if not w:
                continue
            files.append(w[0])
            file_modes[w[0]] = [m for m in (w[1].split(",") if len(w) > 1 else modes) if m in modes]
    if args.only:
        want = args.only.split(",")
        files = [x for x in files if x in want]

    accepted = load_list(args.accepted)
    known = load_list(args.known_bugs)

    if os.path.exists(args.work):
        shutil.rmtree(args.work)
    os.makedirs(args.work)
    provdir = os.path.join(args.work, "providers")
    cl = Cluster(args.work, args.key_file)
    t0 = time.time()
    cl.start()
    counts = {}
    new = []
    known_seen = set()
    report = []
    try:
        dbs = {"heap": "pgr_heap"}
        for m in modes:
            dbs[m] = "pgr_" + m
        for m, db in dbs.items():
            setup_db(cl, db, m, args.src, provdir)
        print("pgregress: cluster and %d databases ready in %.0f s" % (len(dbs), time.time() - t0),
              flush=True)
        for fname in files:
            path = os.path.join(args.src, "sql", fname + ".sql")
            with open(path, encoding="utf-8", errors="replace") as f:
                groups = split_statements(f.read())
            t1 = time.time()
            outs = {}
            for m, db in dbs.items():
                if m == "heap" or m not in file_modes[fname]:
                    continue
                outs[m] = run_file(cl, db, groups, args.src, m)
                if not outs[m][1]:
                    cl.wait_ready()
            outs["heap"] = run_file(cl, dbs["heap"], groups, args.src)
            hres = outs["heap"][0]
            summary = []
            for m in file_modes[fname]:
                dres, ended, raw = outs[m]
                seen = {}
                nd = 0
                crashed = False
                for idx, (lineno, sql) in enumerate(groups):
                    key = stmt_key(sql, seen)
                    if crashed:
                        continue
                    h = normalise(hres.get(idx, "<not run>"))
                    d = normalise(dres.get(idx, "<not run>"), m)
                    cls = compare(sql, h, d)
                    if cls is None:
                        continue
                    if cls == "crash" or (not ended and idx not in dres):
                        cls = "crash"
                        crashed = True
                    nd += 1
                    rule = suggest_rule(sql, h, d, cls)
                    lk = (m, fname, key)
                    status = "NEW"
                    if lk in accepted:
                        status = "accepted"
                    elif lk in known:
                        status = "known-bug"
                        known_seen.add(lk)
                    counts[(m, cls, status)] = counts.get((m, cls, status), 0) + 1
                    entry = "\t".join([m, fname, key, cls, rule or "?",
                                       clip(norm_sql(sql), 100)])
                    if status == "NEW":
                        new.append(entry)
                    report.append("=== %s %s:%d [%s] %s %s\n%s\n--- heap\n%s\n+++ destor\n%s\n" % (
                        m, fname, lineno, key, cls, status + (" (" + rule + ")" if rule else ""),
                        clip(sql, 2000), clip(h, 3000), clip(d, 3000)))
                summary.append("%s %d diff%s" % (m, nd, "" if nd == 1 else "s"))
            print("pgregress: %-20s %5.0f s  %s" % (fname, time.time() - t1, ", ".join(summary)),
                  flush=True)
    finally:
        cl.stop()

    fixed = [k for k in known if k[1] in files and k[0] in file_modes[k[1]] and k not in known_seen]
    print("pgregress: %.0f s in all" % (time.time() - t0))
    for (m, cls, status), n in sorted(counts.items()):
        print("pgregress:   %-8s %-13s %-10s %d" % (m, cls, status, n))
    if args.report:
        with open(args.report, "w") as f:
            f.write("\n".join(report))
        print("pgregress: every difference: %s" % args.report)
    if args.write_new:
        with open(args.write_new, "w") as f:
            f.write("\n".join(new) + ("\n" if new else ""))
    for k in fixed:
        print("pgregress: known bug no longer differs (remove it from known_bugs.txt): %s" % "\t".join(k))
    rc = 0
    if new:
        print("pgregress: FAIL: %d new difference%s (not in accepted.txt or known_bugs.txt):"
              % (len(new), "" if len(new) == 1 else "s"))
        for e in new:
            print("  " + e)
        rc = 1
    if args.strict and known_seen:
        print("pgregress: FAIL (--strict): %d known bug%s still differ%s"
              % (len(known_seen), "" if len(known_seen) == 1 else "s", "" if len(known_seen) != 1 else "s"))
        rc = 1
    if rc == 0:
        print("pgregress: ok (%d known bug%s still open)" % (len(known_seen), "" if len(known_seen) == 1 else "s"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
