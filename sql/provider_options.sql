-- Every bad provider or pool declaration gets a clear error.
\i test/regress/setup.sql
\set VERBOSITY default
-- providers
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '/tmp', colour 'red');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (path '/tmp');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'ftp');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path 'relative/dir');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '/tmp', bucket 'b');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', bucket 'b');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'ftp://x', bucket 'b');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'a/b');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', addressing 'sideways');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', cost_per_gb_month '-1');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', cost_per_request '-0.1');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', cost_per_request 'cheap');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', egress_per_gb 'NaN');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', egress_per_gb 'Infinity');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'b', prefix '../up');
CREATE SERVER s3ok FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:1/', bucket 'b', region 'eu-west-1', addressing 'path', prefix 'db1', geo 'EU');
-- credentials belong in user mappings, and only there
CREATE USER MAPPING FOR CURRENT_USER SERVER s3ok OPTIONS (path '/tmp');
CREATE USER MAPPING FOR CURRENT_USER SERVER s3ok
  OPTIONS (access_key_id 'AKIDEXAMPLE', secret_access_key 'very-secret-value-1234');
ALTER SERVER s3ok OPTIONS (ADD secret_access_key 'x');
-- an unreachable endpoint fails fast and names the provider, without secrets
\set VERBOSITY terse
SET destor.connect_timeout = '2s';
SET destor.max_retries = 1;
SELECT ok, detail NOT LIKE '%very-secret%' AS no_secret, detail LIKE '%s3ok%' AS names_provider
  FROM destor.check_provider('s3ok');
RESET destor.connect_timeout;
RESET destor.max_retries;
\set VERBOSITY default
-- pools
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2', shards '3');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (data_shards '2');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3', data_shards '2', parity_shards '2');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p1', data_shards '2', parity_shards '1');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,,p2', data_shards '1', parity_shards '1');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2', data_shards '0');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2', data_shards 'two');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2', data_shards '17');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2', data_shards '1', parity_shards '9');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3', data_shards '2', parity_shards '1', write_quorum '1');
CREATE SERVER badpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3', data_shards '2', parity_shards '1', write_quorum '4');
CREATE SERVER ghostpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,nope', data_shards '1', parity_shards '1');
ALTER SERVER archive OPTIONS (SET data_shards '5');
-- using a pool
SELECT destor.blob_put('no_such_pool', 'x');
SELECT destor.blob_put('p1', 'x');
SELECT destor.blob_put('ghostpool', 'x');
SELECT * FROM destor.check_provider('archive');
SELECT * FROM destor.check_provider('no_such_server');
-- only superusers and pg_write_server_files members declare file providers
GRANT USAGE ON FOREIGN DATA WRAPPER destor_provider TO regress_destor_user;
SET ROLE regress_destor_user;
CREATE SERVER mine FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '/tmp/mine');
CREATE SERVER mine FOREIGN DATA WRAPPER destor_provider OPTIONS (type 's3', endpoint 'https://s3.example.com', bucket 'mine');
RESET ROLE;
DROP SERVER mine;
DROP SERVER ghostpool;
