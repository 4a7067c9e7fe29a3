-- destor.rotate_master_key(): who may call it and every bad key file, each
-- with its error.  The rotation itself (reconfiguring the server, kill -9
-- in the middle, reading everything back under the new key alone) is in
-- test/tap/t/091_key_rotation.pl, which can edit postgresql.conf.
\i test/regress/setup.sql
\set VERBOSITY default
-- key files of this test, in the providers' folder (the server's user writes there)
SELECT format('cat > /dev/null; cd %1$s && umask 077 && '
              'openssl rand -hex 32 > rot_new.key && '
              'printf abc > rot_short.key && '
              'openssl rand -hex 32 > rot_open.key && chmod 644 rot_open.key && '
              'openssl rand -hex 31 > rot_62.key && '
              'cp %2$s rot_same.key && chmod 600 rot_same.key',
              $q$'$q$ || replace(:'dir', $q$'$q$, $q$'\''$q$) || $q$'$q$,
              $q$'$q$ || replace(current_setting('destor.master_key_file'), $q$'$q$, $q$'\''$q$) || $q$'$q$)
  AS mk \gset
COPY (SELECT 1) TO PROGRAM :'mk';
\unset mk
-- the error of a call, with the folder's path replaced, so the output is stable
CREATE FUNCTION rotate_error(f text, max_keys bigint DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  PERFORM destor.rotate_master_key(f, max_keys);
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                          hnt = PG_EXCEPTION_HINT;
  RETURN replace(st || ': ' || msg || coalesce(E'\nDETAIL: ' || nullif(det, ''), '')
                 || coalesce(E'\nHINT: ' || nullif(hnt, ''), ''),
                 current_setting('destor_test.dir'), '<dir>');
END $$;
SELECT set_config('destor_test.dir', :'dir', false) IS NOT NULL AS dir_set;
CREATE TABLE rot_blobs AS SELECT destor.blob_put('archive', noise(100000, 91)) AS b;

-- superuser only: not granted to PUBLIC, and refused to a role granted it
SET ROLE regress_destor_user;
SELECT destor.rotate_master_key(:'dir' || '/rot_new.key');
RESET ROLE;
GRANT EXECUTE ON FUNCTION destor.rotate_master_key(text, bigint) TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT rotate_error(:'dir' || '/rot_new.key');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION destor.rotate_master_key(text, bigint) FROM regress_destor_user;

-- bad arguments and bad key files
SELECT rotate_error(NULL);
SELECT rotate_error('rot_new.key');
SELECT rotate_error(:'dir' || '/rot_new.key', -1);
SELECT rotate_error(:'dir' || '/rot_missing.key');
SELECT rotate_error(:'dir');
SELECT rotate_error(:'dir' || '/rot_short.key');
SELECT rotate_error(:'dir' || '/rot_62.key');
SELECT rotate_error(:'dir' || '/rot_open.key');
-- the key already in use, with no previous key configured
SELECT rotate_error(:'dir' || '/rot_same.key');
-- a good new key, but the server is not configured for the rotation
SELECT rotate_error(:'dir' || '/rot_new.key');
-- no message names a key's bytes: the files' contents appear nowhere
SELECT count(*) FILTER (WHERE position(k IN e) > 0) AS messages_with_key_bytes
  FROM (SELECT rotate_error(:'dir' || '/rot_' || f || '.key') AS e,
               btrim(pg_read_file(:'dir' || '/rot_' || f || '.key'), E' \n') AS k
          FROM unnest(ARRAY['new', 'same', 'open', '62']) f) s;

-- nothing was changed: the blob reads, and every key is still the old one
SELECT destor.blob_get(b) = noise(100000, 91) AS reads FROM rot_blobs;
SELECT count(DISTINCT key_id) AS master_keys_in_use FROM destor.objects;
SELECT destor.blob_delete(b) FROM rot_blobs;
DROP TABLE rot_blobs;
DROP FUNCTION rotate_error(text, bigint);
SELECT format('cat > /dev/null; cd %s && rm -f rot_new.key rot_short.key rot_open.key rot_62.key rot_same.key',
              $q$'$q$ || replace(:'dir', $q$'$q$, $q$'\''$q$) || $q$'$q$) AS rm \gset
COPY (SELECT 1) TO PROGRAM :'rm';
\unset rm
