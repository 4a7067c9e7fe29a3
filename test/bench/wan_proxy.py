#!/usr/bin/env python3
"""A wide-area network in front of loopback servers, for wan_bench.sh.

One process, one listening port per provider.  Every connection accepted on
a provider's port is relayed to that provider's server (127.0.0.1:target),
and each direction behaves like a WAN link:

  - a one-way delay (propagation): every chunk leaves DELAY ms after it has
    gone through the bandwidth limit; the TCP handshake is charged one round
    trip too (the first bytes a client sends set out one RTT after the
    connection, and then take the delay), since a real connect() would have
    waited that long;
  - a bandwidth cap per provider per direction (serialization), shared by
    all the provider's connections: a token bucket refilled at RATE bytes/s
    with a burst of one chunk (64 KiB), taken in arrival order, so N parallel
    connections to one provider share its bandwidth, as on a real access link;
  - optionally, a fraction of requests held LATE ms longer (a provider that
    stalls now and then): the first chunk of an HTTP request (client bytes
    that start with a method, the first on the connection or the first since
    the server last answered) is held with that probability.  The fraction
    and the delay are read from the control file whenever it changes
    ("<probability> <ms>", e.g. "0.03 2000"; missing or "0 0": none), so a
    benchmark switches it on and off without restarting anything.

Back-pressure is kept: a direction reads its next chunk only once the last
one has passed the bandwidth limit, so at most bandwidth x delay bytes are in
flight, as on a real link.

With "trace" in the configuration, every request is also written to that file
as one line when it ends: provider, connection, the times (seconds, monotonic
clock) it arrived at the proxy, its first answer byte left the proxy, its
last answer byte left, answer bytes, the request line and Range header, and
the time its connection was accepted;
SIGUSR2 writes a mark line with the monotonic and the wall-clock time
("mark <monotonic> <epoch>"), which is how wan_bench.sh puts the queries it
times (its "query <epoch start> <seconds>" lines) on the same clock.

Counters (per provider: connections, requests, requests held late, bytes
down and up) are written as JSON to the stats file on SIGUSR1 (written to a
temporary name, then renamed).

usage: wan_proxy.py CONFIG.json
  {"control": "/path/late", "stats": "/path/stats.json", "seed": 1,
   "providers": [{"name": "p1", "listen": 55011, "target": 55001,
                  "delay_ms": 40, "down_bps": 25000000, "up_bps": 25000000}, ...]}
The process prints "ready" on stdout once every port listens; SIGTERM ends it.
"""

import asyncio
import json
import os
import random
import signal
import sys
import time

CHUNK = 65536
METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


class Bucket:
    """Token bucket of one provider and direction, shared by its connections."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.burst = float(CHUNK)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n):
        if self.rate <= 0:
            return
        # the lock makes waiters go in arrival order: a fair shared link
        async with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            self.tokens -= n
            if self.tokens < 0:
                # the debt stays on the books: the next take credits the
                # whole time since the stamp, so a sleep that overshoots
                # (asyncio wakes a millisecond or so late, against 2.6 ms
                # per chunk at 25 MB/s) costs no bandwidth
                await asyncio.sleep(-self.tokens / self.rate)


class Late:
    """The control file: a fraction of requests to hold, and for how long."""

    def __init__(self, path, seed):
        self.path = path
        self.mtime = None
        self.prob = 0.0
        self.ms = 0.0
        self.rng = random.Random(seed)

    def extra(self):
        try:
            st = os.stat(self.path)
            if st.st_mtime_ns != self.mtime:
                self.mtime = st.st_mtime_ns
                with open(self.path) as f:
                    parts = f.read().split()
                self.prob = float(parts[0]) if parts else 0.0
                self.ms = float(parts[1]) if len(parts) > 1 else 0.0
        except (OSError, ValueError):
            self.mtime, self.prob, self.ms = None, 0.0, 0.0
        if self.prob > 0 and self.rng.random() < self.prob:
            return self.ms / 1000.0
        return 0.0


class Provider:
    def __init__(self, conf, late, trace):
        self.trace = trace
        self.nconn = 0
        self.name = conf["name"]
        self.listen = int(conf["listen"])
        self.target = int(conf["target"])
        self.delay = float(conf["delay_ms"]) / 1000.0
        self.down = Bucket(conf["down_bps"])
        self.up = Bucket(conf["up_bps"])
        self.late = late
        # a server's idle timeout: a connection that moved no byte for this
        # long is closed (0: never), as servers close idle connections
        self.idle_close = float(conf.get("idle_close_ms", 0)) / 1000.0
        # a request on a connection idle this long is not answered: the
        # connection is closed, as a server that closed it an instant
        # before would have it (its FIN still on the way; 0: never)
        self.reset_idle = float(conf.get("reset_idle_ms", 0)) / 1000.0
        self.stats = {"connections": 0, "requests": 0, "late": 0,
                      "bytes_down": 0, "bytes_up": 0, "idle_closed": 0, "idle_reset": 0}

    async def pump(self, reader, writer, bucket, counter, not_before, conn, upstream):
        """Relays one direction: bandwidth first, then the delay, in order."""
        queue = asyncio.Queue()

        async def deliver():
            try:
                while True:
                    item = await queue.get()
                    if item is None:
                        break
                    due, data = item
                    pause = due - time.monotonic()
                    if pause > 0:
                        await asyncio.sleep(pause)
                    writer.write(data)
                    await writer.drain()
                    conn["active"] = time.monotonic()
                    if not upstream and conn.get("req") is not None:
                        req = conn["req"]
                        t = time.monotonic()
                        if req["first"] is None:
                            req["first"] = t
                        req["last"] = t
                        req["bytes"] += len(data)
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    writer.close()
                except (ConnectionError, OSError, RuntimeError):
                    pass

        task = asyncio.ensure_future(deliver())
        last_due = 0.0
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                quiet = time.monotonic() - conn["active"]
                conn["active"] = time.monotonic()
                extra = 0.0
                if (upstream and self.reset_idle > 0 and conn["idle"] and data.startswith(METHODS)
                        and quiet >= self.reset_idle):
                    self.stats["idle_reset"] += 1
                    conn["cwriter"].close()
                    break
                if upstream:
                    if conn["idle"] and data.startswith(METHODS):
                        self.stats["requests"] += 1
                        self.trace_end(conn)
                        if self.trace is not None:
                            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                            rng = [h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("range:")]
                            conn["req"] = {"arrived": time.monotonic(), "first": None, "last": None, "bytes": 0,
                                           "line": head[0].rsplit(" ", 1)[0], "range": rng[0] if rng else "-"}
                        extra = self.late.extra()
                        if extra > 0:
                            self.stats["late"] += 1
                    conn["idle"] = False
                else:
                    conn["idle"] = True
                await bucket.take(len(data))
                self.stats[counter] += len(data)
                # bytes sent before the handshake's round trip is over
                # set out once it is, and then take the delay like others
                due = max(max(time.monotonic(), not_before) + self.delay + extra, last_due)
                last_due = due
                queue.put_nowait((due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)
            await task
            if not upstream:
                self.trace_end(conn)

    def trace_end(self, conn):
        req = conn.get("req")
        conn["req"] = None
        if req is None or self.trace is None:
            return
        self.trace.write("%s c%d %.6f %s %s %d %s %s %.6f\n" % (
            self.name, conn["id"], req["arrived"],
            "%.6f" % req["first"] if req["first"] is not None else "-",
            "%.6f" % req["last"] if req["last"] is not None else "-",
            req["bytes"], req["line"].replace(" ", "_"), req["range"], conn["accepted"]))
        self.trace.flush()

    async def handle(self, creader, cwriter):
        self.stats["connections"] += 1
        accepted = time.monotonic()
        # numbered in the order accepted: a connection numbered at most
        # the count of an earlier stats file was accepted before it
        self.nconn += 1
        conn = {"idle": True, "id": self.nconn, "req": None, "active": accepted, "accepted": accepted,
                "cwriter": cwriter}
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            cwriter.close()
            return
        pumps = asyncio.gather(
            self.pump(creader, swriter, self.up, "bytes_up", accepted + 2 * self.delay, conn, True),
            self.pump(sreader, cwriter, self.down, "bytes_down", 0.0, conn, False))
        if self.idle_close > 0:
            async def idle_watch():
                while not pumps.done():
                    quiet = time.monotonic() - conn["active"]
                    if quiet >= self.idle_close:
                        self.stats["idle_closed"] += 1
                        for w in (cwriter, swriter):
                            try:
                                w.close()
                            except (ConnectionError, OSError, RuntimeError):
                                pass
                        return
                    await asyncio.sleep(min(0.1, self.idle_close - quiet))
            watch = asyncio.ensure_future(idle_watch())
        # the handshake's round trip, which the loopback connect() skipped
        await pumps
        if self.idle_close > 0:
            watch.cancel()


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    late = Late(conf["control"], conf.get("seed", 1))
    trace = open(conf["trace"], "a") if conf.get("trace") else None
    providers = [Provider(p, late, trace) for p in conf["providers"]]
    servers = []
    for p in providers:
        servers.append(loop.run_until_complete(
            asyncio.start_server(p.handle, "127.0.0.1", p.listen, backlog=256)))

    def dump():
        out = {p.name: dict(p.stats) for p in providers}
        tmp = conf["stats"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.rename(tmp, conf["stats"])

    loop.add_signal_handler(signal.SIGUSR1, dump)
    if trace is not None:
        def mark():
            trace.write("mark %.6f %.6f\n" % (time.monotonic(), time.time()))
            trace.flush()
        loop.add_signal_handler(signal.SIGUSR2, mark)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("ready", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
