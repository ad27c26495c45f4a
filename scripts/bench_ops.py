#!/usr/bin/env python3
"""Operations benchmarks against the peer (distribution 2.8, Debian's docker-registry), in one run.

pull-through cache: an image of 4 layers x 32 MiB on an upstream registry (ours, open, on
loopback), pulled with skopeo through a fresh mirror (ours `--mirror`, the peer's `proxy.remoteurl`):
cold, then warm, then 4 skopeo clients at once on another fresh mirror; with the blob GETs the
upstream served (read from its /metrics), the mirror's CPU seconds and peak RSS.

garbage collection: the same content pushed to both (N images over 10 repositories, each with
a shared and an own layer; tags overwritten so that most manifests end untagged), then ours
`registry gc` (grace 0, delete untagged) and the peer's `docker-registry garbage-collect
--delete-untagged` on the stopped peer; wall seconds, and whether both keep the same blobs.

Usage: scripts/bench-ops.sh [--rounds N] [--quick]
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402  (free_port, Server, make_layout, skopeo_cmd)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def peer_config(tmp, name, port, extra=""):
    data = os.path.join(tmp, name)
    os.makedirs(data, exist_ok=True)
    config = os.path.join(tmp, name + ".yml")
    with open(config, "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n{extra}"
        )
    return config, data


def start_ours(tmp, name, *flags, env=None):
    port = b.free_port()
    data = os.path.join(tmp, name)
    e = dict(os.environ, RUST_LOG="warn", **(env or {}))
    argv = [b.OURS_BIN, "--listen", f"127.0.0.1:{port}", "--storage", f"fs:{data}", *flags]
    return b.Server("ours", argv, port, e), data


def start_peer_mirror(tmp, name, upstream_url):
    port = b.free_port()
    config, _ = peer_config(tmp, name, port, f"proxy:\n  remoteurl: {upstream_url}\n")
    return b.Server("peer", ["docker-registry", "serve", config], port)


def skopeo(tmp, args):
    base, env, _ = b.skopeo_cmd(tmp)
    return subprocess.Popen(base + args, env=env)


def pull(tmp, server, dest):
    return skopeo(tmp, ["copy", "-q", "--src-tls-verify=false", f"docker://127.0.0.1:{server.port}/bench/app:v1", f"oci:{dest}:img"])


def blob_gets(upstream):
    with urllib.request.urlopen(upstream.url + "/metrics") as r:
        text = r.read().decode()
    m = re.search(r'registry_http_requests_total\{route="blob",method="GET",status="200"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def mirror_round(tmp, kind, upstream, i):
    """One fresh mirror: cold pull, warm pull; then another fresh one: 4 pulls at once."""
    figures = []
    for label in ("single", "concurrent"):
        name = f"{kind}-mirror-{label}-{i}"
        if kind == "ours":
            mirror, _ = start_ours(tmp, name, "--mirror", upstream.url)
        else:
            mirror = start_peer_mirror(tmp, name, upstream.url)
        try:
            mirror.reset_peak()
            cpu = mirror.stat()
            before = blob_gets(upstream)
            if label == "single":
                for step in ("cold", "warm"):
                    t = time.time()
                    if pull(tmp, mirror, os.path.join(tmp, f"{name}-{step}")).wait() != 0:
                        sys.exit(f"{kind} mirror: {step} pull failed")
                    figures.append({"name": f"mirror_pull_{step}", "value": time.time() - t, "unit": "s"})
            else:
                t = time.time()
                procs = [pull(tmp, mirror, os.path.join(tmp, f"{name}-{n}")) for n in range(4)]
                if any(p.wait() != 0 for p in procs):
                    sys.exit(f"{kind} mirror: a concurrent pull failed")
                figures.append({"name": "mirror_pull_4_at_once", "value": time.time() - t, "unit": "s"})
            figures.append({"name": f"mirror_upstream_blob_gets_{label}", "value": blob_gets(upstream) - before, "unit": "GETs"})
            figures.append({"name": f"mirror_cpu_{label}", "value": mirror.stat() - cpu, "unit": "cpu s"})
            figures.append({"name": f"mirror_peak_rss_{label}", "value": mirror.rss_mib(), "unit": "MiB"})
        finally:
            mirror.stop()
    return figures


def http(method, url, body=b"", content_type=None):
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req) as r:
        return r.headers


def push_blob(base, repo, blob):
    """POST then PUT with the bytes: the monolithic upload every registry supports."""
    d = "sha256:" + hashlib.sha256(blob).hexdigest()
    location = http("POST", f"{base}/v2/{repo}/blobs/uploads/")["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    http("PUT", f"{location}{sep}digest={d}", blob, "application/octet-stream")


def descriptor(media, data):
    return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def load(base, images, shared):
    """Pushes `images` images over 10 repositories: each a config, a shared layer and its own, tagged
    with one of 3 tags of its repository, so that later pushes leave earlier manifests untagged."""
    for n in range(images):
        repo = f"gc/r{n % 10}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": n}).encode()
        own = hashlib.sha256(b"own %d" % n).digest() * 128
        layers = [shared[n % len(shared)], own]
        for blob in [config, *layers]:
            push_blob(base, repo, blob)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
        }).encode()
        http("PUT", f"{base}/v2/{repo}/manifests/t{(n // 10) % 3}", manifest, OCI_MANIFEST)


def stored_blobs(root):
    found = set()
    for dirpath, _, files in os.walk(root):
        if "data" in files and re.fullmatch(r"[0-9a-f]{64}", os.path.basename(dirpath)):
            found.add(os.path.basename(dirpath))
    return found


def gc_round(tmp, images, i):
    shared = [hashlib.sha256(b"shared %d" % s).digest() * 256 for s in range(10)]
    ours, ours_data = start_ours(tmp, f"ours-gc-{i}")
    peer_port = b.free_port()
    peer_cfg, peer_data = peer_config(tmp, f"peer-gc-{i}", peer_port)
    peer = b.Server("peer", ["docker-registry", "serve", peer_cfg], peer_port)
    try:
        for s in (ours, peer):
            load(s.url, images, shared)
    finally:
        peer.stop()
    before = len(stored_blobs(ours_data)), len(stored_blobs(peer_data))
    figures = []
    t = time.time()
    env = dict(os.environ, REGISTRY_GC_GRACE_SECS="0", REGISTRY_GC_DELETE_UNTAGGED="true", RUST_LOG="warn")
    subprocess.run([b.OURS_BIN, "gc", "--storage", f"fs:{ours_data}"], check=True, env=env, stdout=subprocess.DEVNULL)
    ours_s = time.time() - t
    ours.stop()
    t = time.time()
    subprocess.run(["docker-registry", "garbage-collect", "--delete-untagged", peer_cfg], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer_s = time.time() - t
    kept = stored_blobs(ours_data), stored_blobs(peer_data)
    figures.append({"server": "ours", "name": "gc", "value": ours_s, "unit": "s"})
    figures.append({"server": "peer", "name": "gc", "value": peer_s, "unit": "s"})
    return figures, before, (len(kept[0]), len(kept[1])), kept[0] == kept[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="registry-bench-ops-")
    upstream, _ = start_ours(tmp, "upstream")
    results = {}
    gc_lines = []
    try:
        layout = os.path.join(tmp, "layout")
        b.make_layout(layout, 4, 8 if args.quick else 32)
        if skopeo(tmp, ["copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:img",
                        f"docker://127.0.0.1:{upstream.port}/bench/app:v1"]).wait() != 0:
            sys.exit("cannot push the image to the upstream")
        for r in range(args.rounds):
            for kind in (["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]):
                for f in mirror_round(tmp, kind, upstream, r):
                    results.setdefault(f["name"], {}).setdefault(kind, []).append(f)
        images = 200 if args.quick else 1000
        for r in range(args.rounds):
            figures, before, after, same = gc_round(tmp, images, r)
            for f in figures:
                results.setdefault(f["name"], {}).setdefault(f["server"], []).append(f)
            gc_lines.append(f"gc round {r}: {images} images; blobs before ours {before[0]} peer {before[1]}, "
                            f"after ours {after[0]} peer {after[1]}; same blobs kept: {same}")
    finally:
        upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# {args.rounds} runs per server per figure, alternating; values are medians")
    print(f"{'figure':<36} {'ours':>10} {'peer':>10} {'unit':<6} {'ours/peer':>9}")
    for name, by in results.items():
        v = {s: statistics.median(f["value"] for f in fs) for s, fs in by.items()}
        unit = next(iter(by.values()))[0]["unit"]
        ratio = v["ours"] / v["peer"] if v.get("peer") else float("nan")
        print(f"{name:<36} {v['ours']:>10.2f} {v['peer']:>10.2f} {unit:<6} {ratio:>9.2f}")
    for line in gc_lines:
        print(line)


if __name__ == "__main__":
    main()
