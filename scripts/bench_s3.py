"""1 GiB push and pull through S3: our `registry` and the peer (distribution 2.8's S3 driver) over
the same S3 service, in one run, with the ratio ours/peer; and, for pushes, the S3 engine itself:
boto3's multipart upload of the same number of bytes with the same part size (16 MiB) and as many
parts in flight as ours sends (`--parts-in-flight`, 2 by default), with the ratio ours/engine.

    python3 scripts/bench_s3.py [--mib N] [--parts-in-flight N]   (scripts/bench-s3.sh builds first)

Services: moto, started here on a free port; and Ceph radosgw when the REGISTRY_TEST_CEPH_*
variables of scripts/ceph.sh are set. Each server gets its own prefix of one bucket.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import OURS_BIN, Server, bench, free_port, measure  # noqa: E402


def moto():
    port = free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    req = urllib.request.Request(f"{endpoint}/bench", method="PUT")
    urllib.request.urlopen(req, timeout=10)
    return proc, {"endpoint": endpoint, "key": "test", "secret": "test", "bucket": "bench"}


def ceph():
    v = {k: os.environ.get(f"REGISTRY_TEST_CEPH_{k.upper()}") for k in ["endpoint", "key", "secret", "bucket", "dir"]}
    return v if all(v.values()) else None


def empty_bucket(s3):
    """Frees the OSDs' memory between figures: removes the bucket with its objects (bypassing
    radosgw's deferred garbage collection) and makes it again."""
    if "dir" not in s3:
        return
    conf = os.path.join(s3["dir"], "ceph.conf")
    subprocess.run(["radosgw-admin", "-c", conf, "bucket", "rm", "--bucket", s3["bucket"],
                    "--purge-objects", "--bypass-gc"], check=True, capture_output=True)
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    subprocess.run(["curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{s3['key']}:{s3['secret']}",
                    "-H", f"x-amz-content-sha256: {empty}", "-X", "PUT", f"{s3['endpoint']}/{s3['bucket']}"],
                   check=True)


PART = 16 << 20


def engine_push(s3, path, in_flight):
    """MB/s of boto3's multipart upload of the file at `path` (page-cached) to the bucket."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    client = boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=s3["key"],
                          aws_secret_access_key=s3["secret"], region_name="us-east-1")
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=in_flight,
                            use_threads=True)
    size = os.path.getsize(path)
    start = time.monotonic()
    client.upload_file(path, s3["bucket"], f"engine-{uuid.uuid4().hex}", Config=config)
    return size / (time.monotonic() - start) / 1e6


def start_ours(s3, in_flight):
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn", AWS_ENDPOINT_URL=s3["endpoint"], AWS_ACCESS_KEY_ID=s3["key"],
               AWS_SECRET_ACCESS_KEY=s3["secret"], AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true",
               REGISTRY_S3_PARTS_IN_FLIGHT=str(in_flight))
    storage = f"s3://{s3['bucket']}/ours-{uuid.uuid4().hex}"
    return Server("ours", [OURS_BIN, "--listen", f"127.0.0.1:{port}", "--storage", storage], port, env)


def start_peer(s3, tmp):
    port = free_port()
    config = os.path.join(tmp, f"peer-{port}.yml")
    with open(config, "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            "storage:\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n  s3:\n    region: us-east-1\n"
            f"    regionendpoint: {s3['endpoint']}\n    bucket: {s3['bucket']}\n"
            f"    accesskey: {s3['key']}\n    secretkey: {s3['secret']}\n    secure: false\n"
            f"    v4auth: true\n    chunksize: 16777216\n    rootdirectory: /peer-{uuid.uuid4().hex}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
    # distribution's AWS SDK cannot apply AWS_CA_BUNDLE to its transport and panics; plain HTTP here.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return Server("peer", ["docker-registry", "serve", config], port, env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--parts-in-flight", type=int, default=2)
    args = ap.parse_args()
    mib = str(args.mib)
    runs = [("push", ["push", "--mib", mib]),
            ("push-chunked", ["push-chunked", "--mib", mib, "--chunk-mib", "8"]),
            ("pull", ["pull", "--mib", mib])]
    moto_proc, moto_s3 = moto()
    services = [("moto", moto_s3)] + ([("ceph", ceph())] if ceph() else [])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "engine.bin")
            with open(data, "wb") as f:
                for _ in range(args.mib):
                    f.write(os.urandom(1 << 20))
            print(f"{'service':8} {'figure':14} {'ours':>12} {'peer':>12} {'ratio':>7} {'RSS ours/peer MiB':>18}")
            for service, s3 in services:
                for in_flight in sorted({1, args.parts_in_flight}):
                    ours = start_ours(s3, in_flight)
                    try:
                        figures, _cpu, rss = measure(ours, lambda s: bench(s, "push", "--mib", mib))
                    finally:
                        ours.stop()
                    empty_bucket(s3)
                    engine = engine_push(s3, data, in_flight)
                    empty_bucket(s3)
                    o = figures[0]["value"]
                    print(f"{service:8} push, {in_flight} in flight: ours {o:.1f} MB/s, boto3 {engine:.1f} MB/s, "
                          f"ours/engine {o / engine:.2f}x, ours RSS {rss:.1f} MiB", flush=True)
                ours, peer = start_ours(s3, args.parts_in_flight), start_peer(s3, tmp)
                try:
                    for name, cmd in runs:
                        got = {}
                        for server in (ours, peer):
                            figures, _cpu, rss = measure(server, lambda s: bench(s, *cmd))
                            got[server.name] = (figures[0]["value"], figures[0]["unit"], rss)
                            empty_bucket(s3)
                        (o, unit, orss), (p, _, prss) = got["ours"], got["peer"]
                        print(f"{service:8} {name:14} {o:8.1f} {unit:3} {p:8.1f} {unit:3} {o / p:6.2f}x"
                              f" {orss:8.1f}/{prss:.1f}", flush=True)
                finally:
                    ours.stop()
                    peer.stop()
    finally:
        moto_proc.kill()


if __name__ == "__main__":
    main()
