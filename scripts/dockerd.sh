#!/usr/bin/env bash
# A Docker engine of the tests' own (Debian's docker.io), started without Docker's network setup
# (no bridge, no iptables: containers run with --network host) and with its data, exec root and
# socket under DIR, beside any other engine of the machine.
#
#   scripts/dockerd.sh start DIR   installs docker.io when missing, starts dockerd, waits until it
#                                  answers, writes DIR/env (DOCKER_HOST and
#                                  REGISTRY_TEST_DOCKER_HOST, to source)
#   scripts/dockerd.sh stop DIR    stops it (and what it runs), and unmounts what it left
#                                  mounted under DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?DIR}")
case $cmd in
stop)
  if [ -f "$dir/docker.pid" ]; then
    pid=$(cat "$dir/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # What the engine mounted under DIR and left (its network namespace), deepest first, so
  # that DIR can be removed.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true; done
  exit 0
  ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
if ! command -v dockerd >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
mkdir -p "$dir/data" "$dir/exec"
nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
  --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
  -H "unix://$dir/docker.sock" >"$dir/dockerd.log" 2>&1 &
docker=docker
[ -x /usr/bin/docker ] && docker=/usr/bin/docker
for _ in $(seq 300); do
  DOCKER_HOST="unix://$dir/docker.sock" "$docker" info >/dev/null 2>&1 && break
  sleep 0.2
done
DOCKER_HOST="unix://$dir/docker.sock" "$docker" info >/dev/null || {
  tail -20 "$dir/dockerd.log" >&2
  exit 1
}
cat >"$dir/env" <<ENV
export DOCKER_HOST=unix://$dir/docker.sock
export REGISTRY_TEST_DOCKER_HOST=unix://$dir/docker.sock
ENV
echo "dockerd: unix://$dir/docker.sock; variables in $dir/env"
