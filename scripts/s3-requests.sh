#!/usr/bin/env bash
# Counts the S3 requests the registry makes per push and pull, from moto's access log:
#   ./scripts/s3-requests.sh
# (needs moto_server and curl; builds the debug `registry` binary).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --locked -p registry-server
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free_port)
R=$(free_port)
tmp=$(mktemp -d)
moto_server -H 127.0.0.1 -p "$P" >"$tmp/moto.log" 2>&1 &
MOTO=$!
REG=""
trap 'kill $MOTO $REG 2>/dev/null; rm -rf "$tmp"' EXIT
MOTO=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$P/" && break; sleep 0.1; done
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$P/cnt"
export AWS_ENDPOINT_URL=http://127.0.0.1:$P AWS_ACCESS_KEY_ID=t AWS_SECRET_ACCESS_KEY=t AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true RUST_LOG=warn
start() {
  target/debug/registry --listen "127.0.0.1:$R" --storage s3://cnt/r 2>/dev/null &
  REG=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$R/healthz" && break; sleep 0.1; done
}
start
n() { grep -c '" [0-9][0-9][0-9] ' "$tmp/moto.log" || true; }
mark() { local now; now=$(n); echo "$1: $((now - last)) S3 requests"; last=$now; }
last=$(n)
head -c $((40<<20)) /dev/urandom > "$tmp/b40"; D1=sha256:$(sha256sum "$tmp/b40" | cut -c1-64)
head -c 1000 /dev/urandom > "$tmp/b1k"; D2=sha256:$(sha256sum "$tmp/b1k" | cut -c1-64)
head -c $((40<<20)) /dev/urandom > "$tmp/c40"; D3=sha256:$(sha256sum "$tmp/c40" | cut -c1-64)
B=http://127.0.0.1:$R
curl -sf -o /dev/null -X POST --data-binary @"$tmp/b40" -H 'Content-Type: application/octet-stream' "$B/v2/x/blobs/uploads/?digest=$D1"; mark "monolithic push, 40 MiB (3 parts)"
curl -sf -o /dev/null -X POST --data-binary @"$tmp/b1k" -H 'Content-Type: application/octet-stream' "$B/v2/x/blobs/uploads/?digest=$D2"; mark "monolithic push, 1000 bytes"
LOC=$(curl -sf -o /dev/null -D - -X POST "$B/v2/x/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}'); mark "streamed push: POST"
curl -sf -o /dev/null -X PATCH --data-binary @"$tmp/c40" -H 'Content-Type: application/octet-stream' "$B$LOC"; mark "streamed push: PATCH of 40 MiB (parts of 16, 16 and 8 MiB)"
curl -sf -o /dev/null -X PUT "$B$LOC?digest=$D3"; mark "streamed push: PUT ?digest="
M='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'$D2'","size":1000},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"'$D1'","size":41943040},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"'$D3'","size":41943040}]}'
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$M" "$B/v2/x/manifests/v1"; mark "manifest PUT naming 3 blobs"
kill $REG; sleep 0.5; start; last=$(n)
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$M" "$B/v2/x/manifests/v2"; mark "the same manifest PUT again, new process"
curl -sf -o /dev/null "$B/v2/x/blobs/$D3"; mark "pull, new process"
curl -sf -o /dev/null "$B/v2/x/blobs/$D3"; mark "pull again"
curl -sf -o /dev/null -I "$B/v2/x/blobs/$D3"; mark "HEAD"
head -c $((3 << 20)) /dev/urandom >"$tmp/s1"
head -c $((3 << 20)) /dev/urandom >"$tmp/s2"
D4=sha256:$(cat "$tmp/s1" "$tmp/s2" | sha256sum | cut -c1-64)
LOC=$(curl -sf -o /dev/null -D - -X POST "$B/v2/y/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
last=$(n)
curl -sf -o /dev/null -X PATCH --data-binary @"$tmp/s1" -H 'Content-Type: application/octet-stream' "$B$LOC"
mark "small PATCH of 3 MiB (kept as the tail)"
curl -sf -o /dev/null -X PATCH --data-binary @"$tmp/s2" -H 'Content-Type: application/octet-stream' "$B$LOC"
mark "second PATCH of 3 MiB (tail and chunk make a 6 MiB part)"
curl -sf -o /dev/null -X PUT "$B$LOC?digest=$D4"; mark "PUT ?digest="
# Nothing tags these blobs: a collection without grace removes them all.
kill $REG; REG=""; last=$(n)
REGISTRY_GC_GRACE_SECS=0 target/debug/registry gc --dry-run --storage s3://cnt/r >/dev/null 2>&1
mark "gc --dry-run over 4 blobs in 2 repositories"
REGISTRY_GC_GRACE_SECS=0 target/debug/registry gc --storage s3://cnt/r 2>/dev/null | tail -1
mark "gc removing them"
