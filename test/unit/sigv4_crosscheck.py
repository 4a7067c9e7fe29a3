#!/usr/bin/env python3
"""Cross-check destor's S3 SigV4 signer against botocore.

Generates random S3 requests (seeded; the seed is printed), has the C signer
(test_s3_sign --stdin, path in argv[1]) sign them, signs the same requests
with botocore's S3SigV4Auth at the same fixed time, and compares.

Two independent checks per request, so neither side merely echoes the other:
  1. the C signer's encoded path and query string equal what this script
     computes from the raw inputs by the AWS rules (urllib.parse.quote with
     safe='/~' for the path, safe='-_.~' for query names and values, pairs
     sorted);
  2. botocore, given the URL built from those parts, the same headers and
     the same body, produces the same Authorization (credential scope,
     signed headers and signature).  botocore computes the payload hash from
     the body itself.

Usage: sigv4_crosscheck.py ./test_s3_sign [--seed N] [--count N]
Exit 0 and a last line "N passed, 0 failed" when all agree.  The credentials
used are random fakes.
"""

import argparse
import contextlib
import datetime
import os
import random
import subprocess
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED_TIMES = [
    datetime.datetime(2013, 5, 24, 0, 0, 0),
    datetime.datetime(2024, 2, 29, 23, 59, 59),
    datetime.datetime(2031, 12, 31, 12, 30, 1),
]
REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1", "garage", "auto"]
METHODS = ["GET", "PUT", "HEAD", "DELETE", "POST"]
KEY_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " +%~=&?#!$'()*,;:@[]|^`{}\"<>\\-_./"
)
UNICODE_BITS = ["ü", "é", "ß", "ключ", "日本語", "😀", "\u00a0", "Å", "ø"]


def hexarg(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.hex() if s else "-"


def random_segment(rng):
    kind = rng.random()
    if kind < 0.15:
        return ""  # gives '//' or a trailing '/'
    n = rng.choice([1, 3, 8, 20])
    parts = []
    for _ in range(n):
        if rng.random() < 0.12:
            parts.append(rng.choice(UNICODE_BITS))
        else:
            parts.append(rng.choice(KEY_ALPHABET.replace("/", "")))
    return "".join(parts)


def random_key(rng):
    r = rng.random()
    if r < 0.05:
        # very long key (S3 allows 1024 bytes)
        return "long/" + "".join(rng.choice(KEY_ALPHABET) for _ in range(rng.randint(600, 1000)))
    if r < 0.10:
        return rng.choice(["a b", "a+b", "100%", "~tilde", "x=y&z", "dir//double", "dir/", "ü.bin",
                           "%2F", "%", "+", " ", "a%20b", ".", "..", "./x", "../y"])
    nseg = rng.randint(1, 5)
    return "/".join(random_segment(rng) for _ in range(nseg)) or "k"


def random_token_value(rng):
    """A continuation token / prefix / upload id with awkward characters."""
    choices = [
        lambda: "".join(rng.choice("ABCDEFabcdef0123456789+/=") for _ in range(rng.randint(8, 120))),
        lambda: random_key(rng),
        lambda: "".join(rng.choice(KEY_ALPHABET) for _ in range(rng.randint(0, 30))),
        lambda: "",
    ]
    return rng.choice(choices)()


def random_query(rng, method):
    kind = rng.choice(["none", "none", "list", "uploads", "part", "uploadid", "delete", "misc"])
    if kind == "list":
        q = [("list-type", "2")]
        if rng.random() < 0.8:
            q.append(("prefix", random_token_value(rng)))
        if rng.random() < 0.5:
            q.append(("continuation-token", random_token_value(rng)))
        if rng.random() < 0.3:
            q.append(("max-keys", str(rng.randint(1, 1000))))
        if rng.random() < 0.2:
            q.append(("delimiter", "/"))
        return q
    if kind == "uploads":
        return [("uploads", "")]
    if kind == "part":
        return [("partNumber", str(rng.randint(1, 10000))), ("uploadId", random_token_value(rng))]
    if kind == "uploadid":
        return [("uploadId", random_token_value(rng))]
    if kind == "delete":
        return [("delete", "")]
    if kind == "misc":
        q = []
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(["a", "A", "b", "x-id", "versionId", "ü", "sp ace", "tag&=", "z~"])
            q.append((name, random_token_value(rng)))
        return q
    return []


def random_host(rng, virtual):
    base = rng.choice(["s3.amazonaws.com", "s3.eu-central-1.amazonaws.com", "localhost",
                       "127.0.0.1", "storage.example.net", "gateway.storjshare.io"])
    port = rng.choice([None, None, 4568, 9000, 8443])
    bucket = rng.choice(["bkt", "my-bucket", "data.backup.2024", "b1"])
    host = f"{bucket}.{base}" if virtual else base
    if port is not None:
        host += f":{port}"
    scheme = rng.choice(["http", "https"])
    return scheme, host, bucket


def make_case(rng, i):
    method = rng.choice(METHODS)
    virtual = rng.random() < 0.4
    scheme, host, bucket = random_host(rng, virtual)
    key = random_key(rng)
    prefix = rng.choice(["", "", "destor/", "a b/", "ü/x/"])
    if virtual:
        path = "/" + prefix + key
    else:
        path = "/" + bucket + "/" + prefix + key
    if rng.random() < 0.03:
        path = "/"  # bucket-level request (virtual-hosted list)
    query = random_query(rng, method)

    body = None
    bodyrep = None
    if method in ("PUT", "POST"):
        r = rng.random()
        if r < 0.3:
            body = b""
        elif r < 0.9:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000)))
        else:
            # a few MiB: sent to the C side as pattern x count
            pattern = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 7, 4096])))
            count = (rng.randint(1, 5) * 1024 * 1024) // len(pattern)
            bodyrep = (pattern, count)
            body = pattern * count

    headers = []
    if method in ("PUT", "POST") and rng.random() < 0.5:
        headers.append(("content-type", rng.choice(["application/octet-stream", "application/xml",
                                                    "text/plain;  charset=utf-8 "])))
    if method == "GET" and rng.random() < 0.3:
        a = rng.randint(0, 10**9)
        headers.append(("range", f"bytes={a}-{a + rng.randint(0, 10**6)}"))
    if rng.random() < 0.1:
        headers.append(("x-amz-meta-note", rng.choice(["  padded   value ", "plain"])))

    token = None
    if rng.random() < 0.35:
        token = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
                        for _ in range(rng.randint(40, 400)))
    akid = "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    secret = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                     for _ in range(40))
    return dict(idx=i, method=method, scheme=scheme, host=host, path=path, query=query,
                headers=headers, body=body, bodyrep=bodyrep, token=token, akid=akid,
                secret=secret, region=rng.choice(REGIONS), when=rng.choice(FIXED_TIMES))


def case_to_lines(c):
    out = [
        "method " + hexarg(c["method"]),
        "host " + hexarg(c["host"]),
        "path " + hexarg(c["path"]),
        "region " + hexarg(c["region"]),
        "service " + hexarg("s3"),
        "date " + hexarg(c["when"].strftime("%Y%m%dT%H%M%SZ")),
        "akid " + hexarg(c["akid"]),
        "secret " + hexarg(c["secret"]),
    ]
    if c["token"]:
        out.append("token " + hexarg(c["token"]))
    for n, v in c["query"]:
        out.append(f"q {hexarg(n)} {hexarg(v)}")
    for n, v in c["headers"]:
        out.append(f"h {hexarg(n)} {hexarg(v)}")
    if c["bodyrep"] is not None:
        pattern, count = c["bodyrep"]
        out.append(f"bodyrep {hexarg(pattern)} {count}")
    elif c["body"]:
        out.append("body " + hexarg(c["body"]))
    # no body line: empty body, the C side uses the empty-string hash
    out.append("end")
    return "\n".join(out) + "\n"


def expected_url_parts(c):
    """Encoding by the AWS rules, computed here independently of the C code."""
    path = quote(c["path"], safe="/~")
    pairs = sorted((quote(n, safe="-_.~"), quote(v, safe="-_.~")) for n, v in c["query"])
    query = "&".join(f"{n}={v}" for n, v in pairs)
    return path, query


@contextlib.contextmanager
def fixed_signing_time(when):
    """Make botocore sign at `when`.  Newer botocore asks
    botocore.auth.get_current_datetime(), older calls
    datetime.datetime.utcnow() in botocore.auth: patch whichever exists."""
    with contextlib.ExitStack() as stack:
        if hasattr(botocore.auth, "get_current_datetime"):
            stack.enter_context(mock.patch.object(botocore.auth, "get_current_datetime",
                                                  return_value=when))
        fake_dt = stack.enter_context(mock.patch.object(botocore.auth, "datetime"))
        fake_dt.datetime.utcnow.return_value = when
        fake_dt.datetime.now.return_value = when
        fake_dt.datetime.strptime = datetime.datetime.strptime
        yield


def botocore_authorization(c, enc_path, enc_query):
    url = f"{c['scheme']}://{c['host']}{enc_path}"
    if enc_query:
        url += "?" + enc_query
    # botocore must see exactly the path we send
    assert urlsplit(url).path == enc_path, "urlsplit changed the path"
    req = AWSRequest(method=c["method"], url=url, data=c["body"] if c["body"] else b"")
    req.headers["Host"] = c["host"]
    for n, v in c["headers"]:
        req.headers[n] = v
    creds = Credentials(c["akid"], c["secret"], c["token"])
    auth = S3SigV4Auth(creds, "s3", c["region"])
    with fixed_signing_time(c["when"]):
        auth.add_auth(req)
    return req.headers["Authorization"], req.headers["X-Amz-Content-SHA256"]


def parse_authorization(a):
    """'AWS4-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..' -> dict
    (botocore separates with ', ', destor with ',': both are valid)."""
    algo, _, rest = a.partition(" ")
    parts = {}
    for comp in rest.replace(" ", "").split(","):
        k, _, v = comp.partition("=")
        parts[k] = v
    parts["algorithm"] = algo
    return parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("signer")
    ap.add_argument("--seed", type=int, default=1369353600,
                    help="RNG seed (default fixed; pass any other to explore)")
    ap.add_argument("--random-seed", action="store_true", help="draw a fresh seed")
    ap.add_argument("--count", type=int, default=600)
    args = ap.parse_args()

    seed = int.from_bytes(os.urandom(4), "big") if args.random_seed else args.seed
    print(f"sigv4_crosscheck: seed {seed} (rerun with --seed {seed})")
    rng = random.Random(seed)
    cases = [make_case(rng, i) for i in range(args.count)]

    # make sure the interesting shapes are all there, whatever the seed
    shapes = {
        "session token": any(c["token"] for c in cases),
        "large body": any(c["bodyrep"] for c in cases),
        "empty body PUT": any(c["method"] == "PUT" and c["body"] == b"" for c in cases),
        "continuation-token": any(n == "continuation-token" for c in cases for n, _ in c["query"]),
        "uploads": any(n == "uploads" for c in cases for n, _ in c["query"]),
        "double slash": any("//" in c["path"] for c in cases),
        "trailing slash": any(c["path"].endswith("/") and c["path"] != "/" for c in cases),
        "unicode key": any(any(ord(ch) > 127 for ch in c["path"]) for c in cases),
        "port": any(":" in c["host"] for c in cases),
    }
    missing = [k for k, v in shapes.items() if not v]
    if missing:
        print("sigv4_crosscheck: generated cases lack: " + ", ".join(missing))
        print(f"0 passed, {len(cases)} failed")
        return 1

    stdin = "".join(case_to_lines(c) for c in cases).encode()
    proc = subprocess.run([args.signer, "--stdin"], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=600)
    if proc.returncode != 0:
        print(f"sigv4_crosscheck: {args.signer} exited with {proc.returncode}")
        print(proc.stderr.decode(errors="replace")[-2000:])
        return 1
    lines = proc.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(cases):
        print(f"sigv4_crosscheck: expected {len(cases)} result lines, got {len(lines)}")
        return 1

    passed = 0
    failures = []
    for c, line in zip(cases, lines):
        fields = line.split("\t")
        problem = None
        if fields[0] != "OK" or len(fields) != 4:
            problem = "C signer: " + line[:300]
        else:
            _, c_path, c_query, c_auth = fields
            want_path, want_query = expected_url_parts(c)
            if c_path != want_path:
                problem = f"encoded path {c_path[:200]!r} != expected {want_path[:200]!r}"
            elif c_query != want_query:
                problem = f"query {c_query[:200]!r} != expected {want_query[:200]!r}"
            else:
                b_auth, b_hash = botocore_authorization(c, c_path, c_query)
                got, want = parse_authorization(c_auth), parse_authorization(b_auth)
                if got != want:
                    problem = f"authorization differs:\n    C:        {c_auth}\n    botocore: {b_auth}"
        if problem:
            failures.append((c, problem))
        else:
            passed += 1

    for c, problem in failures[:5]:
        print(f"MISMATCH case {c['idx']}: {c['method']} {c['scheme']}://{c['host']} "
              f"path={c['path'][:120]!r} query={c['query']!r:.200} region={c['region']} "
              f"token={'yes' if c['token'] else 'no'} body={len(c['body']) if c['body'] is not None else 0}B")
        print("    " + problem)
    print(f"{passed} passed, {len(failures)} failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
