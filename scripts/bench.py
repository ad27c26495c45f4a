#!/usr/bin/env python3
"""Benchmark our `registry` against the peer (distribution 2.8, Debian's docker-registry) in one run.

Both servers run on loopback with filesystem storage in temporary folders. Every figure is taken
on both, alternating (ours, peer, peer, ours, ...), and printed with the ratio ours/peer, each
server's CPU seconds per run of the figure and its peak RSS during the figure. Machine limits
(single-core SHA-256, loopback TCP, disk write with fdatasync) are printed too.

Usage: scripts/bench.sh [--rounds N] [--quick] [--against BIN]   (the wrapper builds and installs
what it needs). `--against BIN` takes another build of our `registry` as the peer instead of
distribution, to compare two versions of ours in one run.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import gzip
import hashlib
import io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS_BIN = os.path.join(ROOT, "target", "release", "registry")
BENCH_BIN = os.path.join(ROOT, "target", "release", "registry-bench")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port, proc, name):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} did not start")


class Server:
    def __init__(self, name, argv, port, env=None, log=subprocess.DEVNULL):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        wait_up(port, self.proc, name)
        self.url = f"http://127.0.0.1:{port}"

    def stat(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self, key="VmHWM"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def reset_peak(self):
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_ours(tmp, binary=OURS_BIN, name="ours"):
    port = free_port()
    data = os.path.join(tmp, name)
    # Request logging on, as deployed: one line per request, to a file.
    env = dict(os.environ, RUST_LOG="info")
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    return Server(name, [binary, "--listen", f"127.0.0.1:{port}", "--storage", f"fs:{data}"], port, env, log)


def start_peer(tmp, against=None):
    if against:
        return start_ours(tmp, against, "peer")
    port = free_port()
    data = os.path.join(tmp, "peer")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(tmp, "peer.yml")
    with open(config, "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
    return Server("peer", ["docker-registry", "serve", config], port)


def bench(server, *args):
    out = subprocess.run([BENCH_BIN, "--url", server.url, "--json", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"registry-bench {args} on {server.name} failed: {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def measure(server, run):
    """Runs `run(server)` and returns (figures, cpu seconds, peak RSS MiB during the run)."""
    server.reset_peak()
    cpu = server.stat()
    figures = run(server)
    return figures, server.stat() - cpu, server.rss_mib()


def make_layout(path, layers, layer_mib):
    """An OCI layout with `layers` gzip tar layers of random bytes, tagged `img`."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)

    def blob(data, media):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(path, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return {"mediaType": media, "digest": "sha256:" + d, "size": len(data)}

    descs, diffs = [], []
    for i in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            content = os.urandom(layer_mib << 20)
            info = tarfile.TarInfo(f"layer{i}.bin")
            info.size = len(content)
            t.addfile(info, io.BytesIO(content))
        raw = buf.getvalue()
        diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append(blob(gzip.compress(raw, compresslevel=1), "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": blob(config, "application/vnd.oci.image.config.v1+json"), "layers": descs}).encode()
    m = blob(manifest, "application/vnd.oci.image.manifest.v1+json")
    m["annotations"] = {"org.opencontainers.image.ref.name": "img"}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [m]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


def skopeo_cmd(tmp):
    """A skopeo command line with a fresh blob-info cache (bind-mounted in a private mount
    namespace when the machine allows), its environment, and the cache folder."""
    cache = tempfile.mkdtemp(dir=tmp)
    base = ["unshare", "-m", "sh", "-c", 'mount --bind "$1" /var/lib/containers/cache && shift && exec skopeo "$@"', "_", cache]
    os.makedirs("/var/lib/containers/cache", exist_ok=True)
    if subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        base = ["skopeo"]
    env = dict(os.environ, REGISTRY_AUTH_FILE=os.path.join(cache, "auth.json"))
    with open(env["REGISTRY_AUTH_FILE"], "w") as f:
        f.write('{"auths":{}}')
    return base + ["--insecure-policy"], env, cache


def skopeo_run(server, layout, tmp, round_no):
    """skopeo push of the layout and pull back, each with a fresh blob-info cache; wall seconds."""
    base, env, cache = skopeo_cmd(tmp)
    repo = f"127.0.0.1:{server.port}/skopeo/img{round_no}"
    figures = []
    for name, args in [("skopeo_push", ["copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:img", f"docker://{repo}:v1"]),
                       ("skopeo_pull", ["copy", "-q", "--src-tls-verify=false", f"docker://{repo}:v1", f"oci:{os.path.join(cache, 'pulled')}:img"])]:
        t = time.time()
        subprocess.run(base + args, check=True, env=env)
        figures.append({"name": name, "value": time.time() - t, "unit": "s"})
    shutil.rmtree(cache, ignore_errors=True)
    return figures


def limits(tmp):
    out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "2"], capture_output=True, text=True).stdout
    sha = float(out.strip().splitlines()[-1].split()[-1].rstrip("k")) * 1000 / 1e6
    path = os.path.join(tmp, "dd.bin")
    dd = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4M", "count=256", "conv=fdatasync"], capture_output=True, text=True).stderr
    os.unlink(path)
    m = re.search(r"copied, ([\d.]+) s", dd)
    disk = (1 << 30) / float(m.group(1)) / 1e6 if m else float("nan")
    loop = subprocess.run([BENCH_BIN, "--json", "loopback"], capture_output=True, text=True).stdout
    loop = json.loads(loop.splitlines()[0])["value"]
    return sha, disk, loop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2, help="runs per server per figure (alternating)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes and shorter rate runs")
    ap.add_argument("--against", metavar="BIN", help="another build of our registry as the peer")
    args = ap.parse_args()
    mib = 256 if args.quick else 1024
    secs = "3" if args.quick else "10"
    tmp = tempfile.mkdtemp(prefix="registry-bench-")
    ours, peer = start_ours(tmp), start_peer(tmp, args.against)
    idle = {s.name: s.rss_mib("VmRSS") for s in (ours, peer)}
    layout = os.path.join(tmp, "layout")
    make_layout(layout, 4, 32 if not args.quick else 8)
    plans = [
        ("push", lambda s, i: bench(s, "--repo", f"bench/push{i}", "push", "--mib", str(mib))),
        ("push_chunked", lambda s, i: bench(s, "--repo", f"bench/chunk{i}", "push-chunked", "--mib", str(mib), "--chunk-mib", "8")),
        ("pull", lambda s, i: bench(s, "--repo", f"bench/pull{i}", "pull", "--mib", str(mib))),
        ("manifest", lambda s, i: bench(s, "manifest-get", "--concurrency", "64", "--seconds", secs)),
        ("head", lambda s, i: bench(s, "blob-head", "--concurrency", "64", "--seconds", secs)),
        ("image", lambda s, i: bench(s, "--repo", f"bench/image{i}", "image", "--layers", "4", "--layer-mib", "32", "--parallel", "4")),
        ("skopeo", lambda s, i: skopeo_run(s, layout, tmp, i)),
    ]
    results = {}  # figure name -> server -> list of (value, unit, extra)
    cpu = {}      # plan -> server -> [cpu seconds]
    peak = {}     # plan -> server -> max peak MiB
    try:
        for plan, run in plans:
            order = []
            for r in range(args.rounds):
                order += [ours, peer] if r % 2 == 0 else [peer, ours]
            for i, server in enumerate(order):
                figures, c, p = measure(server, lambda s: run(s, i))
                cpu.setdefault(plan, {}).setdefault(server.name, []).append(c)
                peak.setdefault(plan, {})[server.name] = max(p, peak.get(plan, {}).get(server.name, 0))
                for f in figures:
                    results.setdefault(f["name"], {}).setdefault(server.name, []).append(f)
        rss = {}  # blob size -> server -> (peak MiB, MB/s)
        for size_mib in ([64, 1024] if args.quick else [64, 4096]):
            for server in (ours, peer):
                figures, _, p = measure(server, lambda s: bench(s, "--repo", f"bench/rss{size_mib}", "push", "--mib", str(size_mib)))
                rss.setdefault(size_mib, {})[server.name] = (p, figures[0]["value"])
        sha, disk, loop = limits(tmp)
    finally:
        ours.stop()
        peer.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"# machine: {os.cpu_count()} cores; limits: sha256 one core {sha:.0f} MB/s, "
          f"disk write (fdatasync) {disk:.0f} MB/s, loopback TCP {loop:.0f} MB/s")
    print(f"# {args.rounds} runs per server per figure, alternating; values are medians")
    print(f"{'figure':<44} {'ours':>10} {'peer':>10} {'unit':<6} {'ours/peer':>9}  notes")
    for name, by in results.items():
        def med(key="value"):
            return {s: statistics.median(f.get(key, float("nan")) for f in fs) for s, fs in by.items()}
        v = med()
        unit = next(iter(by.values()))[0]["unit"]
        ratio = v["ours"] / v["peer"] if v.get("peer") else float("nan")
        if unit == "s":
            ratio = v["ours"] / v["peer"]  # wall time: lower is better
        notes = ""
        if unit == "req/s":
            p99 = med("p99_ms")
            notes = f"p99 ours {p99['ours']:.2f} ms, peer {p99['peer']:.2f} ms"
        print(f"{name:<44} {v['ours']:>10.1f} {v['peer']:>10.1f} {unit:<6} {ratio:>9.2f}  {notes}")
    print("# CPU seconds per run and peak RSS (MiB) of each server, by figure")
    for plan in cpu:
        c = {s: statistics.median(x) for s, x in cpu[plan].items()}
        print(f"{plan:<14} cpu ours {c['ours']:6.2f} s  peer {c['peer']:6.2f} s   "
              f"peak rss ours {peak[plan]['ours']:6.1f}  peer {peak[plan]['peer']:6.1f}")
    for size_mib, by in rss.items():
        print(f"peak rss pushing {size_mib} MiB: ours {by['ours'][0]:.1f} MiB ({by['ours'][1]:.0f} MB/s), "
              f"peer {by['peer'][0]:.1f} MiB ({by['peer'][1]:.0f} MB/s)")
    print(f"idle rss at start: ours {idle['ours']:.1f} MiB, peer {idle['peer']:.1f} MiB")


if __name__ == "__main__":
    main()
