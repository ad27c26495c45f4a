#!/usr/bin/env python3
"""What listings cost with many repositories and one repository of many tags.

On the filesystem: seeds REPOS repositories (each with a manifest tagged v1) and one repository of
TAGS tags through the library, starts the registry on the store and times the first
`_catalog?n=100` and `tags/list?n=100` pages (cold, then the median of 20), then pages the whole
catalog with n=1000 and checks that every repository comes exactly once. With `--against BIN`,
times the same first catalog page on another build of ours over the same store (an older build
walks every repository; it reads tag links the index no longer keeps, so only the catalog is
compared).

On S3 (moto, when moto_server is installed): seeds the index a store of that size holds (catalog
entries and tag records, `--index-only`), starts the registry on the bucket and counts, in moto's
access log, the LIST requests one `_catalog?n=100` and one `tags/list?n=100` make.

Usage: scripts/bench-listing.sh [--repos N] [--tags N] [--against BIN]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTRY = os.path.join(ROOT, "target", "release", "registry")
BENCH = os.path.join(ROOT, "target", "release", "registry-bench")
TAGGED = "seed/tagged"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: the server exited at start")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{url}: the server did not start")


def serve(binary, storage, env=None):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--storage", storage],
        env=dict(env or os.environ, RUST_LOG="warn"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def get(url):
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.read(), r.headers.get("Link")


def ms(url):
    started = time.perf_counter()
    get(url)
    return (time.perf_counter() - started) * 1000


def timing(url, rounds=20):
    cold = ms(url)
    warm = [ms(url) for _ in range(rounds)]
    return cold, statistics.median(warm), max(warm)


def page_all(base, n):
    """Every repository of the catalog, paged `n` at a time through the Link headers."""
    import json

    names, path = [], f"/v2/_catalog?n={n}"
    while path:
        body, link = get(base + path)
        names.extend(json.loads(body)["repositories"])
        path = link.split(";")[0].strip("<>") if link else None
    return names


def seed(storage, repos, tags, index_only, env=None):
    args = [BENCH, "seed-listing", "--storage", storage, "--repos", str(repos), "--tags", str(tags)]
    if index_only:
        args.append("--index-only")
    subprocess.run(args, check=True, env=env)


def filesystem(args, tmp):
    store = f"fs:{tmp}/fs"
    started = time.time()
    seed(store, args.repos, args.tags, False)
    print(f"# seeded {args.repos} repositories and {args.tags} tags through the library "
          f"in {time.time() - started:.0f} s")
    proc, base = serve(REGISTRY, store)
    try:
        for what, path in [("catalog", "/v2/_catalog?n=100"), ("tags", f"/v2/{TAGGED}/tags/list?n=100")]:
            cold, median, worst = timing(base + path)
            print(f"filesystem: first {what} page (n=100): cold {cold:.1f} ms, "
                  f"median {median:.1f} ms, worst {worst:.1f} ms of 20")
        started = time.perf_counter()
        names = page_all(base, 1000)
        took = time.perf_counter() - started
        once = len(names) == len(set(names))
        print(f"filesystem: whole catalog with n=1000: {len(names)} repositories in {took:.2f} s, "
              f"each once: {once}, all: {len(names) == args.repos + 1}")
    finally:
        proc.terminate()
        proc.wait()
    if args.against:
        proc, base = serve(args.against, store)
        try:
            cold, median, worst = timing(base + "/v2/_catalog?n=100", rounds=5)
            print(f"filesystem, {args.against}: first catalog page (n=100): cold {cold:.1f} ms, "
                  f"median {median:.1f} ms of 5")
        finally:
            proc.terminate()
            proc.wait()


def s3(args, tmp):
    if shutil.which("moto_server") is None:
        print("# S3: skipped, moto_server is not installed (pip install 'moto[server]')")
        return
    port = free_port()
    log_path = os.path.join(tmp, "moto.log")
    log = open(log_path, "w")
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).read()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("moto did not start")
                time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(endpoint + "/listing", method="PUT")).read()
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="t",
                   AWS_SECRET_ACCESS_KEY="t", AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
        env.pop("AWS_CA_BUNDLE", None)
        storage = "s3://listing/registry"
        started = time.time()
        seed(storage, args.repos, args.tags, True, env)
        print(f"# S3 (moto): seeded the index of {args.repos} repositories and {args.tags} tags "
              f"in {time.time() - started:.0f} s")
        proc, base = serve(REGISTRY, storage, env)
        try:
            def lists():
                log.flush()
                with open(log_path) as f:
                    return sum(1 for line in f if "list-type=2" in line)

            for what, path in [("catalog", "/v2/_catalog?n=100"), ("tags", f"/v2/{TAGGED}/tags/list?n=100")]:
                before = lists()
                took = ms(base + path)
                time.sleep(0.5)  # moto writes its access log line after answering
                print(f"S3 (moto): first {what} page (n=100): {lists() - before} LIST requests, {took:.0f} ms")
        finally:
            proc.terminate()
            proc.wait()
    finally:
        moto.terminate()
        moto.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=20_000)
    ap.add_argument("--tags", type=int, default=20_000)
    ap.add_argument("--against", metavar="BIN", help="another build of our registry, for the catalog")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="registry-listing-")
    try:
        filesystem(args, tmp)
        s3(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
