'use strict';
// Several s3rver instances in one Node process, for the TAP tests
// (DestorTest::start_s3_servers).  Each is what the s3rver command starts
// with "-a 127.0.0.1 -s --configure-bucket <bucket>"; loading s3rver's
// modules cost some 0.7 s of CPU a server, six servers a test: on two cores
// that was a fifth of the suite's time.
//
// Usage: node s3_group.js <control dir> <JSON [{port, dir, bucket, vhost}]>
// A file "stop_<port>" created in the control dir stops that server as a
// killed process would stop: its listener closed and every connection it
// holds cut (a kept-alive connection went on answering otherwise).
const fs = require('fs');
const path = require('path');
const S3rver = require('s3rver');

const ctl = process.argv[2];
const specs = JSON.parse(process.argv[3]);
const servers = new Map();

function stop(port) {
  const entry = servers.get(port);
  if (!entry) return;
  servers.delete(port);
  entry.server.httpServer.close();
  for (const socket of entry.sockets) socket.destroy();
}

function takeRequests() {
  for (const name of fs.readdirSync(ctl)) {
    const m = /^stop_(\d+)$/.exec(name);
    if (!m) continue;
    stop(m[1]);
    fs.unlinkSync(path.join(ctl, name));
  }
}

async function start(spec) {
  fs.mkdirSync(spec.dir, { recursive: true });
  const options = {
    port: spec.port,
    address: '127.0.0.1',
    directory: spec.dir,
    silent: true,
    configureBuckets: [{ name: spec.bucket, configs: [] }],
  };
  // virtual-hosted addressing: bucket.s3.localhost
  if (spec.vhost) options.serviceEndpoint = 'localhost';
  const server = new S3rver(options);
  await server.run();
  // (attached before any connection's event: run() resolved in listen's callback)
  const sockets = new Set();
  server.httpServer.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  servers.set(String(spec.port), { server, sockets });
}

fs.watch(ctl, () => takeRequests());
process.on('SIGTERM', () => process.exit(0));
Promise.all(specs.map(start)).then(takeRequests, (err) => {
  console.error(err);
  process.exit(1);
});
