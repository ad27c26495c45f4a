"""Replicas over one Ceph cluster behind HAProxy, measured: for each replica count (1, 2 and 4 by
default) `registry-bench load` runs 16 clients through HAProxy for a fixed time (each pushes
images of its own, pulls a shared image and pulls the others' pushes, checking every byte), and
prints images per second, throughput, p99 and errors per operation, with the replicas' CPU and
peak memory. A last run at the largest count SIGKILLs one replica halfway: HAProxy's health check
(every 500 ms, 2 failures) takes it out, and afterwards every push that was acknowledged, in every
run, is pulled back through HAProxy and checked (`registry-bench verify`).

    python3 scripts/scale.py [--seconds 30] [--clients 16] [--replicas 1,2,4] [--layer-kib 256]
    (scripts/scale.sh installs what is missing, builds, and starts Ceph unless its variables are set)
"""
import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import OURS_BIN, Server, free_port  # noqa: E402
from bench_s3 import empty_bucket  # noqa: E402

BENCH_BIN = os.path.join(os.path.dirname(OURS_BIN), "registry-bench")


def ceph():
    keys = ["endpoint", "key", "secret", "bucket", "dir"]
    v = {k: os.environ.get(f"REGISTRY_TEST_CEPH_{k.upper()}") for k in keys}
    if not all(v.values()):
        sys.exit("scale: set the REGISTRY_TEST_CEPH_* variables (source the env of scripts/ceph.sh start DIR)")
    return v


def start_replicas(tmp, s3, prefix, count):
    env = dict(os.environ, AWS_ENDPOINT_URL=s3["endpoint"], AWS_ACCESS_KEY_ID=s3["key"],
               AWS_SECRET_ACCESS_KEY=s3["secret"], AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
    replicas = []
    for i in range(count):
        port = free_port()
        log = open(os.path.join(tmp, f"{prefix}-r{i}.log"), "w")
        argv = [OURS_BIN, "--listen", f"127.0.0.1:{port}", "--storage", f"s3://{s3['bucket']}/{prefix}"]
        replicas.append(Server(f"r{i}", argv, port, env=env, log=log))
    return replicas


def start_haproxy(tmp, replicas):
    port, stats = free_port(), free_port()
    servers = "\n".join(f"  server {r.name} 127.0.0.1:{r.port} check" for r in replicas)
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch
frontend registry
  bind 127.0.0.1:{port}
  default_backend replicas
frontend stats
  bind 127.0.0.1:{stats}
  stats enable
  stats uri /stats
backend replicas
  balance roundrobin
  option httpchk GET /v2/
  http-check expect status 200
  default-server inter 500ms fall 2 rise 2
{servers}
""")
    proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        if all(s == "UP" for s in server_status(stats).values()) and len(server_status(stats)) == len(replicas):
            return proc, f"http://127.0.0.1:{port}", stats
        time.sleep(0.1)
    proc.kill()
    sys.exit("scale: HAProxy did not see every replica up within 30 s")


def server_status(stats_port):
    """Each backend server's status (UP, DOWN, ...) from HAProxy's CSV stats."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=2) as r:
            text = r.read().decode().lstrip("# ")
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(text))
    return {row["svname"]: row["status"].split()[0] for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")}


def ceph_cpu(s3):
    """CPU seconds the Ceph daemons (monitor, OSDs, radosgw) have used so far."""
    total = 0.0
    run = os.path.join(s3["dir"], "run")
    for name in os.listdir(run):
        if not name.endswith(".fpid"):
            continue
        try:
            with open(os.path.join(run, name)) as f, open(f"/proc/{f.read().strip()}/stat") as st:
                fields = st.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            pass
    return total


def run_load(url, args, prefix, acked, replicas, stats, kill, s3):
    """One load run; with `kill`, SIGKILLs the first replica halfway and times its removal."""
    argv = [BENCH_BIN, "--url", url, "--json", "load", "--clients", str(args.clients),
            "--seconds", str(args.seconds), "--layer-kib", str(args.layer_kib),
            "--prefix", prefix, "--acked", acked]
    cpu_before = [r.stat() for r in replicas]
    ceph_before = ceph_cpu(s3)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    removed_after = None
    cpu_killed = 0.0
    if kill:
        time.sleep(args.seconds / 2)
        victim = replicas[0]
        cpu_killed = victim.stat() - cpu_before[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        killed_at = time.time()
        while time.time() - killed_at < args.seconds:
            if server_status(stats).get(victim.name) == "DOWN":
                removed_after = time.time() - killed_at
                break
            time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"scale: load failed: {err}")
    figures = {f["name"]: f for f in map(json.loads, out.splitlines())}
    alive = [(r, c) for r, c in zip(replicas, cpu_before) if r.proc.poll() is None]
    cpu = sum(r.stat() - c for r, c in alive) + cpu_killed
    peak = max(r.rss_mib() for r, _ in alive)
    errors = err.strip().splitlines()
    return figures, (cpu, ceph_cpu(s3) - ceph_before), peak, removed_after, errors


def verify(url, acked):
    """Pulls back every acknowledged push of a run; returns how many there were and whether all
    were intact."""
    r = subprocess.run([BENCH_BIN, "--url", url, "--json", "verify", "--acked", acked],
                       capture_output=True, text=True)
    with open(acked) as f:
        count = sum(1 for _ in f)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return count, False
    return count, True


def row(label, figures, cpu, peak, secs):
    ours, ceph_used = cpu
    a = figures["load_all"]
    push, shared, other = (figures[f"load_{k}"] for k in ("push_image", "pull_shared_image", "pull_other_image"))
    return (f"| {label} | {a['value']:.0f} | {push['value']:.0f} / {shared['value']:.0f} / {other['value']:.0f} "
            f"| {a['MB_per_s']:.1f} | {push['p99_ms']:.0f} / {shared['p99_ms']:.0f} / {other['p99_ms']:.0f} "
            f"| {a['errors']:.0f} | {a['acked_pushes']:.0f} | {ours / secs:.2f} / {ceph_used / secs:.2f} | {peak:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--replicas", default="1,2,4")
    p.add_argument("--layer-kib", type=int, default=256)
    args = p.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    s3 = ceph()
    tag = f"scale-{os.getpid()}"
    rows, notes = [], []
    lost = None
    with tempfile.TemporaryDirectory() as tmp:
        plan = [(n, False) for n in counts] + [(max(counts), True)]
        for i, (n, kill) in enumerate(plan):
            prefix = f"{tag}-{i}"
            replicas = start_replicas(tmp, s3, prefix, n)
            haproxy, url, stats = start_haproxy(tmp, replicas)
            acked = os.path.join(tmp, f"acked-{i}")
            figures, cpu, peak, removed, errors = run_load(url, args, f"{tag}/run{i}", acked, replicas, stats, kill, s3)
            label = f"{n} replica{'s' if n > 1 else ''}" + (", one SIGKILLed halfway" if kill else "")
            rows.append(row(label, figures, cpu, peak, args.seconds))
            print(rows[-1], flush=True)
            for e in errors[:5]:
                print(f"    {e}", flush=True)
            if kill:
                notes.append(f"HAProxy marked the killed replica DOWN {removed:.2f} s after the SIGKILL"
                             if removed is not None else "HAProxy never marked the killed replica DOWN")
            # Each run has a prefix of its own: its pushes are checked through its surviving replicas.
            count, ok = verify(url, acked)
            notes.append(f"{label}: {count} acknowledged pushes pulled back and checked: "
                         + ("all intact" if ok else "SOME MISSING OR DIFFERENT"))
            if not ok:
                lost = label
            haproxy.kill()
            haproxy.wait()
            for r in replicas:
                if r.proc.poll() is None:
                    r.stop()
            empty_bucket(s3)
    print()
    print(f"{args.clients} clients for {args.seconds} s per run, layers of {args.layer_kib} KiB; "
          "operations: push an image of its own / pull the shared image / pull another client's push")
    print()
    print("| replicas | images/s | push / pull shared / pull other, images/s | MB/s | p99 ms (push / shared / other) "
          "| errors | acked pushes | CPU s per s: replicas / Ceph | peak RSS MiB (largest replica) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    print()
    for n in notes:
        print(n)
    if lost:
        sys.exit(f"scale: acknowledged pushes lost in the run '{lost}'")


if __name__ == "__main__":
    main()
