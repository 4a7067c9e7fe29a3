\i test/regress/setup.sql
-- A scan fetches a batch of row groups' needed chunks in as few ranges as
-- the layout allows: chunks of a column it does not need between them are
-- read through while they are at most a quarter of the needed bytes, so a
-- batch costs each provider a request, not one per row group (issue 11:
-- over a WAN every request is a round trip of idle link).  A narrow
-- projection still reads little more than its column.
CREATE FOREIGN TABLE fetch_ranges (id int, a bytea, b bytea, c bytea)
  SERVER archive OPTIONS (row_group_rows '100');
-- per row group: a and c 200 kB each (needed), b 80 kB between them, all
-- incompressible
INSERT INTO fetch_ranges
  SELECT i, noise(2000, i), noise(800, -i), noise(2000, i + 1000) FROM generate_series(1, 1000) i;
-- provider requests and bytes fetched of a cold scan
CREATE FUNCTION scan_fetch(q text, OUT requests bigint, OUT bytes bigint) LANGUAGE plpgsql AS $$
DECLARE
  j jsonb;
BEGIN
  PERFORM destor.cache_reset();
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q INTO j;
  requests := jsonb_path_query_first(j, '$.**."Provider Requests"')::bigint;
  bytes := jsonb_path_query_first(j, '$.**."Bytes Fetched"')::bigint;
END $$;
SELECT requests AS ac_requests, bytes AS ac_bytes
  FROM scan_fetch('SELECT sum(length(a)), sum(length(c)) FROM fetch_ranges') \gset
SELECT requests AS b_requests, bytes AS b_bytes
  FROM scan_fetch('SELECT sum(length(b)) FROM fetch_ranges') \gset
SELECT bytes AS all_bytes FROM scan_fetch('SELECT sum(length(a) + length(b) + length(c)) FROM fetch_ranges') \gset
-- ten row groups of a and c, one batch: one range, a request per data shard
-- (one range a row group would be 11 ranges and 40 or more requests)
SELECT :ac_requests BETWEEN 1 AND 4 AS ac_one_request_per_shard;
-- b alone: its gaps (a and c) are far more than a quarter of it, so it is
-- read by itself: well under half of what the whole table takes
SELECT :b_bytes < :all_bytes / 2 AS b_reads_little, :b_requests > :ac_requests AS b_separate_ranges;
-- the results are right either way
SELECT count(*), sum(length(a)), sum(length(c)), md5(string_agg(a || c, '' ORDER BY id))
       = (SELECT md5(string_agg(noise(2000, i) || noise(2000, i + 1000), '' ORDER BY i)) FROM generate_series(1, 1000) i) AS same
  FROM fetch_ranges;
SELECT md5(string_agg(b, '' ORDER BY id))
       = (SELECT md5(string_agg(noise(800, -i), '' ORDER BY i)) FROM generate_series(1, 1000) i) AS b_same
  FROM fetch_ranges;
DROP FOREIGN TABLE fetch_ranges;
DROP FUNCTION scan_fetch(text);
