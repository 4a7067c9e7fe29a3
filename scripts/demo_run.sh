#!/bin/bash
# The demo itself (run as the cluster's owner).  See scripts/demo.sh.
set -euo pipefail
dir=$1
. "$(dirname "$0")/pgenv.sh"
port=${DEMO_PORT:-54329}

if [ -f "$dir/pgdata/postmaster.pid" ]; then pg_ctl -D "$dir/pgdata" -m immediate stop >/dev/null 2>&1 || true; fi
rm -rf "$dir"/pgdata "$dir"/providers "$dir"/key "$dir"/*.bin "$dir"/*.log
mkdir -p "$dir/providers"
umask 077; openssl rand -hex 32 > "$dir/key"; umask 022

initdb -D "$dir/pgdata" -A trust -U postgres >/dev/null
cat >> "$dir/pgdata/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'destor'
destor.master_key_file = '$dir/key'
CONF
pg_ctl -D "$dir/pgdata" -l "$dir/server.log" -w start >/dev/null
trap 'pg_ctl -D "$dir/pgdata" -m fast stop >/dev/null 2>&1 || true' EXIT

psql_q() { psql -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

echo "destor demo — a throwaway cluster in $dir, master key in $dir/key"
for i in 1 2 3 4 5 6; do mkdir -p "$dir/providers/p$i"; done
# a 10 MB document to import, and a marker to look for on the providers
head -c 10000000 /dev/urandom > "$dir/report.bin"
psql_q -v dir="$dir" <<'SQL'
CREATE EXTENSION destor;
\set p1 :dir '/providers/p1'
\set p2 :dir '/providers/p2'
\set p3 :dir '/providers/p3'
\set p4 :dir '/providers/p4'
\set p5 :dir '/providers/p5'
\set p6 :dir '/providers/p6'
\set report :dir '/report.bin'
CREATE SERVER p1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p1', geo 'EU');
CREATE SERVER p2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p2', geo 'EU');
CREATE SERVER p3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p3', geo 'US');
CREATE SERVER p4 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p4', geo 'US');
CREATE SERVER p5 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p5', geo 'APAC');
CREATE SERVER p6 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p6', geo 'APAC');
CREATE SERVER archive FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2');
CREATE TABLE documents (name text PRIMARY KEY, blob destor.blob, sha256 bytea);
INSERT INTO documents
  SELECT 'hello.txt', destor.blob_put('archive', b), sha256(b)
    FROM convert_to('Hello from destor: TOP-SECRET-MARKER-7f3a', 'UTF8') b;
INSERT INTO documents
  SELECT 'numbers.csv', destor.blob_put('archive', b), sha256(b)
    FROM (SELECT convert_to(string_agg(i || ',' || i::bigint * i, E'\n'), 'UTF8') b
            FROM generate_series(1, 200000) i) s;
INSERT INTO documents
  SELECT 'report.bin', destor.blob_import('archive', :'report'), NULL;
UPDATE documents SET sha256 = sha256(pg_read_binary_file(:'report')) WHERE name = 'report.bin';
-- a partitioned table of sensor readings, three months, local for now
CREATE TABLE readings (at timestamptz NOT NULL, sensor int, value float8) PARTITION BY RANGE (at);
CREATE TABLE readings_2024_01 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE readings_2024_02 PARTITION OF readings FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE readings_2024_03 PARTITION OF readings FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
INSERT INTO readings
  SELECT timestamptz '2024-01-01 00:00+00' + i * interval '30 seconds', i % 50, round(sin(i)::numeric, 6)
    FROM generate_series(0, 262079) i;
CREATE TABLE readings_before AS
  SELECT date_trunc('month', at) AS month, count(*) AS n, sum(value::numeric) AS total FROM readings GROUP BY 1;
SQL

echo
echo "1. stored three blobs in pool 'archive' (4 data + 2 parity shards on 6 providers):"
psql_q -c "SELECT name, destor.blob_size(blob) AS bytes,
                  (SELECT sum(size) FROM destor.blob_shards s WHERE s.blob_id = blob::uuid) AS stored_bytes
             FROM documents ORDER BY name"
echo "2. where the shards of report.bin went:"
psql_q -c "SELECT shard_index, kind, provider, size FROM destor.blob_shards s JOIN documents d
             ON s.blob_id = d.blob::uuid WHERE d.name = 'report.bin' ORDER BY shard_index"
echo "3. no provider holds plaintext: files containing the marker 'TOP-SECRET-MARKER':"
n=$( (grep -rl "TOP-SECRET-MARKER" "$dir/providers" || true) | wc -l)
echo "   $n files"
echo "4. tiering the older months of the partitioned table 'readings' offsite (all but the newest):"
psql_q -c "SELECT * FROM destor.tier_partitions('readings', 'archive', keep_local => 1)"
psql_q -c "SELECT partition, bound, pool, segments, stored_rows FROM destor.tiered_partitions"
echo "   a query on the parent reads the tiered months from the providers, the newest one locally:"
psql_q -c "SELECT date_trunc('month', at)::date AS month, count(*), round(avg(value)::numeric, 6) AS avg
             FROM readings GROUP BY 1 ORDER BY 1"
echo "   and one on recent days does not touch the providers (partition pruning):"
psql_q -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM readings WHERE at >= '2024-03-15'" | sed 's/^/   /'
echo "5. destroying providers p2 and p5 (rm -rf their folders)"
rm -rf "$dir/providers/p2" "$dir/providers/p5"
echo "6. reading everything back (cache emptied first, so every page comes from the shards):"
psql_q -c "SELECT destor.cache_reset()" >/dev/null
psql_q -c "SELECT name, sha256(destor.blob_get(blob)) = sha256 AS intact FROM documents ORDER BY name"
psql_q -c "SELECT b.month::date, a.n = b.n AND a.total = b.total AS readings_intact
             FROM readings_before b LEFT JOIN
                  (SELECT date_trunc('month', at) AS month, count(*) AS n, sum(value::numeric) AS total
                     FROM readings GROUP BY 1) a USING (month) ORDER BY 1"
intact=$(psql_q -tA -c "SELECT bool_and(a.n = b.n AND a.total = b.total)
                          FROM readings_before b LEFT JOIN
                               (SELECT date_trunc('month', at) AS month, count(*) AS n, sum(value::numeric) AS total
                                  FROM readings GROUP BY 1) a USING (month)")
[ "$intact" = t ] || { echo "   the readings DIFFER from what was stored"; exit 1; }
psql_q -v dir="$dir" -c "SELECT destor.blob_export(blob, '$dir/report.out.bin') AS exported_bytes
                           FROM documents WHERE name = 'report.bin'"
if cmp -s "$dir/report.bin" "$dir/report.out.bin"; then
  echo "   blob_export of report.bin is byte-identical to the original"
else
  echo "   blob_export of report.bin DIFFERS from the original"; exit 1
fi
echo "7. p2 and p5 get new, empty disks; destor.repair() writes their shards again from the others:"
mkdir -p "$dir/providers/p2" "$dir/providers/p5"
psql_q -c "SELECT provider, problem, count(*) AS shards, bool_and(repaired) AS all_rebuilt
             FROM destor.repair('archive') GROUP BY 1, 2 ORDER BY 1"
echo "8. so the pool can lose two providers again: p3 and p4 go, everything still reads"
rm -rf "$dir/providers/p3" "$dir/providers/p4"
psql_q -c "SELECT destor.cache_reset()" >/dev/null
psql_q -c "SELECT name, sha256(destor.blob_get(blob)) = sha256 AS intact FROM documents ORDER BY name"
intact=$(psql_q -tA -c "SELECT bool_and(sha256(destor.blob_get(blob)) = sha256) FROM documents")
[ "$intact" = t ] || { echo "   the blobs DIFFER from what was stored"; exit 1; }
intact=$(psql_q -tA -c "SELECT bool_and(a.n = b.n AND a.total = b.total)
                          FROM readings_before b LEFT JOIN
                               (SELECT date_trunc('month', at) AS month, count(*) AS n, sum(value::numeric) AS total
                                  FROM readings GROUP BY 1) a USING (month)")
[ "$intact" = t ] || { echo "   the readings DIFFER from what was stored"; exit 1; }
echo "   and every month of readings is intact"
echo "9. a third provider lost at once is one too many for a 4+2 pool:"
rm -rf "$dir/providers/p6"
psql_q -c "SELECT destor.cache_reset()" >/dev/null
psql_q -c "SELECT length(destor.blob_get(blob)) FROM documents WHERE name = 'report.bin'" 2>&1 | sed 's/^/   /' || true
echo
echo "demo done: blobs and tiered partitions survived the loss of 2 of 6 providers, twice (repaired in"
echo "between), and no provider saw plaintext."
