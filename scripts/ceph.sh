#!/usr/bin/env bash
# A small real Ceph cluster on loopback for the replica tests: 1 monitor, 3 OSDs (memstore, every
# object kept 3 times, writes go on with 2), radosgw as the S3 endpoint, one user and one bucket.
#
#   scripts/ceph.sh start DIR     installs Ceph from Debian when missing, starts it, writes DIR/env
#                                 (REGISTRY_TEST_CEPH_* variables to source)
#   scripts/ceph.sh osd DIR N     (re)starts OSD N (tests stop one and bring it back)
#   scripts/ceph.sh stop DIR      kills every daemon
#
# Ports: CEPH_PORT (default 7450) for the monitor, +1..+29 for the OSDs, +40 for radosgw.
set -euo pipefail

cmd=${1:?start|osd|stop}
B=$(realpath -m "${2:?DIR}")
C="-c $B/ceph.conf"
base=${CEPH_PORT:-7450}
rgw_port=$((base + 40))

start_osd() {
  nohup ceph-osd $C -i "$1" -f --keyring "$B/osd/ceph-$1/keyring" >"$B/log/osd.$1.out" 2>&1 &
  echo $! >"$B/run/osd.$1.fpid"
}

case $cmd in
stop)
  for f in "$B"/run/*.fpid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  exit 0
  ;;
osd)
  start_osd "${3:?N}"
  exit 0
  ;;
start) ;;
*)
  echo "usage: $0 start|osd|stop DIR" >&2
  exit 2
  ;;
esac

if ! command -v radosgw >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    radosgw ceph-mon ceph-osd ceph-common curl >/dev/null
fi
"$0" stop "$B"
sleep 1
for p in $base $rgw_port; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is taken: set CEPH_PORT" >&2
    exit 1
  fi
done

rm -rf "$B"
mkdir -p "$B"/{mon,osd,run,log,rgw}
fsid=$(cat /proc/sys/kernel/random/uuid)
cat >"$B/ceph.conf" <<CONF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$base]
mon_initial_members = a
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_port_min = $((base + 1))
ms_bind_port_max = $((base + 29))
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
osd_pool_default_size = 3
osd_pool_default_min_size = 2
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_warn_on_pool_no_redundancy = false
# A throwaway cluster: the host's free space (often a few percent on a shared disk) is no reason
# for the monitor to refuse to start.
mon_data_avail_crit = 0
mon_data_avail_warn = 0
osd_objectstore = memstore
memstore_device_bytes = 6442450944
osd_memory_target = 939524096
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
osd_heartbeat_grace = 6
run_dir = $B/run
admin_socket = $B/run/\$name.asok
log_file = $B/log/\$name.log
pid_file = $B/run/\$name.pid
keyring = $B/admin.keyring
mon_data = $B/mon/\$cluster-\$id
osd_data = $B/osd/\$cluster-\$id
[mon.a]
public_addr = 127.0.0.1:$base
[client.rgw.a]
keyring = $B/rgw/keyring
rgw_frontends = beast endpoint=127.0.0.1:$rgw_port
rgw_data = $B/rgw
rgw_thread_pool_size = 64
CONF

ceph-authtool --create-keyring "$B/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$B/admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$B/mon.keyring" --import-keyring "$B/admin.keyring" >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$base]" --fsid "$fsid" "$B/monmap" >/dev/null
ceph-mon $C --mkfs -i a --monmap "$B/monmap" --keyring "$B/mon.keyring"
nohup ceph-mon $C -i a -f >"$B/log/mon.a.out" 2>&1 &
echo $! >"$B/run/mon.a.fpid"

for i in 0 1 2; do
  uuid=$(cat /proc/sys/kernel/random/uuid)
  secret=$(ceph-authtool --gen-print-key)
  echo "{\"cephx_secret\": \"$secret\"}" | ceph $C --connect-timeout 30 osd new "$uuid" -i - >/dev/null
  mkdir -p "$B/osd/ceph-$i"
  ceph-authtool --create-keyring "$B/osd/ceph-$i/keyring" --name "osd.$i" --add-key "$secret" >/dev/null
  ceph-osd $C -i "$i" --mkfs --osd-uuid "$uuid" --keyring "$B/osd/ceph-$i/keyring" >/dev/null 2>&1
  start_osd "$i"
done
ceph $C auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' >"$B/rgw/keyring"
for _ in $(seq 120); do
  up=$(ceph $C osd stat -f json | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_up_osds"])')
  [ "$up" = 3 ] && break
  sleep 1
done
[ "$up" = 3 ] || { echo "only $up OSDs came up" >&2; exit 1; }

nohup radosgw $C -n client.rgw.a -f >"$B/log/rgw.out" 2>&1 &
echo $! >"$B/run/rgw.fpid"
for _ in $(seq 180); do curl -s -o /dev/null "http://127.0.0.1:$rgw_port/" && break; sleep 1; done
key=REGISTRYTESTKEY
secret=registrytestsecret
radosgw-admin $C user create --uid=registry --display-name=registry \
  --access-key=$key --secret=$secret >/dev/null
bucket=registry-tests
# RGW checks x-amz-content-sha256, which curl leaves out: give the empty body's.
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
made=""
for _ in $(seq 30); do
  if curl -sf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
    -H "x-amz-content-sha256: $empty" -X PUT "http://127.0.0.1:$rgw_port/$bucket"; then
    made=1
    break
  fi
  sleep 1
done
[ -n "$made" ] || { echo "could not create bucket $bucket" >&2; exit 1; }
cat >"$B/env" <<ENV
export REGISTRY_TEST_CEPH_ENDPOINT=http://127.0.0.1:$rgw_port
export REGISTRY_TEST_CEPH_KEY=$key
export REGISTRY_TEST_CEPH_SECRET=$secret
export REGISTRY_TEST_CEPH_BUCKET=$bucket
export REGISTRY_TEST_CEPH_DIR=$B
ENV
echo "ceph: radosgw at http://127.0.0.1:$rgw_port, bucket $bucket; variables in $B/env"
