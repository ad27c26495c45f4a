#!/usr/bin/env bash
# Builds the container image of the registry, registry-rs:latest, from the release binary, with
# examples/registry/Dockerfile (FROM scratch: the binary and what it needs, no base image).
#
#   scripts/image.sh              build, and load it into the Docker engine DOCKER_HOST names
#                                 (or the default socket)
#   scripts/image.sh --push REF   build, and push it to REF instead (a registry of ours, say:
#                                 127.0.0.1:5000/tools/registry-rs:latest)
#
# Needs the Docker engine (dockerd 20.10 or later), cargo, and ldd. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="registry-rs:latest"
push=""
while [ $# -gt 0 ]; do
  case "$1" in
  --push) push="${2:?--push needs a reference}"; shift 2 ;;
  *) echo "usage: $0 [--push REF]" >&2; exit 2 ;;
  esac
done
docker=docker
[ -x /usr/bin/docker ] && docker=/usr/bin/docker   # Debian's client, of the engine's age

cargo build --release --locked -p registry-server
bin="${CARGO_TARGET_DIR:-target}/release/registry"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$context/data"
cp "$bin" "$root/registry"
strip --strip-unneeded "$root/registry" 2>/dev/null || true
# The libraries the binary links (the C library and its loader, libm, libgcc_s), where it
# looks for them.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# CA certificates, for HTTPS upstreams (mirror, sync, replication) and token servers.
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
echo 'registry:x:65532:65532:registry:/var/lib/registry:/nonexistent' > "$root/etc/passwd"
echo 'registry:x:65532:' > "$root/etc/group"
chmod 1777 "$root/tmp"
cp examples/registry/Dockerfile "$context/"
"$docker" build -q -t "$tag" "$context" >/dev/null
size=$("$docker" image inspect --format '{{.Size}}' "$tag")
echo "image $tag: $((size / 1024 / 1024)) MiB"
if [ -n "$push" ]; then
  "$docker" tag "$tag" "$push"
  "$docker" push "$push"
  "$docker" rmi "$push" "$tag" >/dev/null   # pushed instead of kept
fi
