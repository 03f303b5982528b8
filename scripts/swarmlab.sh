#!/usr/bin/env bash
# swarmlab.sh - a 3-node Docker Swarm on ONE machine, with no internet and no image registry.
# berth's Swarm tests run against it (crates/berth-runtime/tests/swarm.rs and the server's swarm
# tests); it was copied from ../shared/test/swarmlab.sh and adapted (berth's libraries in the node
# image, host directories mounted into the nodes, no registry at all, no pulls).
#
# How ("Docker-in-Docker from host binaries"): the host's own dockerd, containerd(-shim*),
# runc, docker-init, docker-proxy, ip, iptables (xtables-nft-multi + xtables modules), the
# shared libraries ldd reports for them and for the berth binary (libgcc_s at least), the
# static docker CLI and a static busybox (shell + tools) are copied into a rootfs tarball and
# `docker import`ed as swarmlab-node:latest. N containers of it (swarmlab-node1..N) on the
# bridge network swarmlab-net (10.213.0.0/24) each run their own dockerd (overlay2 on a docker
# volume, /run on tmpfs); node1 runs `docker swarm init`, the others join.
# No registry is started or configured: images reach the nodes by `docker save | docker load`
# (this script's `load`, or berth's own image distribution). Nodes never pull: their dockerd
# runs with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (Swarm tasks use the local image) and their
# only DNS server is 127.0.0.1 inside the node, so a stray pull fails at once and sends nothing
# off the machine.
#
# Usage:
#   swarmlab.sh up         build images if missing, start nodes, form the swarm, wait for Ready (idempotent;
#                          also restarts killed/stopped nodes)
#   swarmlab.sh status     print each node's API address and `docker node ls`
#   swarmlab.sh down       remove everything labelled swarmlab=1 (containers, network, volumes, images);
#                          idempotent. `down --keep-images` keeps the built images (next `up` is faster)
#   swarmlab.sh load IMG   copy a host image into every running node (docker save | docker load)
#   swarmlab.sh kill N     docker kill the node container N (simulated node crash)
#   swarmlab.sh start N    start node container N again and wait until the swarm lists it Ready
#   swarmlab.sh env N      print `export DOCKER_HOST=...` for node N
#   swarmlab.sh selftest   up + 3-replica HTTP service + kill a worker + time the reschedule
#   swarmlab.sh build      rebuild the node image (nodes made from the old one keep it until `down`)
# up, down, start and kill hold a lock (/run/swarmlab.lock), so test binaries may call them at once.
#
# Reaching node N's Docker API from the host (both work):
#   DOCKER_HOST=unix:///run/swarmlab/nodeN/docker.sock   (unix socket bind-mounted to the host)
#   DOCKER_HOST=tcp://10.213.0.1N:2375                   (plain TCP, no TLS, on the node's bridge IP)
# The nodes reach the host at the bridge gateway, 10.213.0.1.
#
# Limits on this test machine (its kernel has no CONFIG_IP_VS): swarm's VIP load balancing
# and the ingress routing mesh need IPVS and do NOT work (services are created and tasks run,
# but a VIP or an ingress-published port never answers). Instead use
#   docker service create --endpoint-mode dnsrr --publish mode=host,published=P,target=T ...
# mode=host ports answer on each node container's IP (10.213.0.1N:P) from the host; only one
# task per node can hold a given host port. Overlay networks (VXLAN) work across nodes, and
# DNS round-robin (`NAME` / `tasks.NAME`) works from inside tasks.
# Workload image: swarmlab-busybox:latest (static busybox FROM scratch: sh, httpd, nc, nslookup)
# is loaded into every node by `up`.
#
# Knobs (env, defaults in brackets):
#   SWARMLAB_NODES [3]  SWARMLAB_MANAGERS [1] (nodes 1..M are managers; 3 => survives any 1 loss)
#   SWARMLAB_SUBNET_PREFIX [10.213.0]  SWARMLAB_ADDR_POOL [10.214.0.0/16] (swarm overlay pool)
#   SWARMLAB_HEARTBEAT [1s] (swarm dispatcher heartbeat; docker's default 5s => slower failover)
#   SWARMLAB_DOCKERD_ARGS [] extra dockerd flags for every node (applied when a node is created)
#   SWARMLAB_MOUNT [<target dir>/debug:/opt/berth, when that dir exists] HOST:NODE[,HOST:NODE...]
#                  host directories bind-mounted read-only into every node when it is created, so
#                  the freshly built berth runs inside the nodes (/opt/berth/berth agent ...). `up` with
#                  a different SWARMLAB_MOUNT than the nodes were made with makes the nodes again.
#   SWARMLAB_BERTH [$CARGO_TARGET_DIR or <repo>/target, debug then release]/berth: the berth binary
#                  whose libraries the node image must hold; `up` rebuilds the image when it lacks one
#   SWARMLAB_REBUILD=1 rebuild the node image
set -euo pipefail

P=swarmlab
NODES=${SWARMLAB_NODES:-3}
MANAGERS=${SWARMLAB_MANAGERS:-1}
NET=${P}-net
PFX=${SWARMLAB_SUBNET_PREFIX:-10.213.0}
SUBNET=${PFX}.0/24
GW=${PFX}.1
ADDR_POOL=${SWARMLAB_ADDR_POOL:-10.214.0.0/16}
HEARTBEAT=${SWARMLAB_HEARTBEAT:-1s}
MOUNTS=${SWARMLAB_MOUNT-default}
IMG=${P}-node:latest
BBIMG=${P}-busybox:latest
SOCKDIR=/run/${P}
LOCK=/run/${P}.lock
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ "$MOUNTS" == default ]]; then
  MOUNTS=""; _debug=${CARGO_TARGET_DIR:-$ROOT/target}/debug
  [[ -d "$_debug" ]] && MOUNTS="$_debug:/opt/berth"
fi
DCLI=$(command -v docker) || { echo "docker CLI not found" >&2; exit 1; }
LIBDIR=/usr/lib/x86_64-linux-gnu

log() { printf '[swarmlab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
hd() { env -u DOCKER_HOST -u DOCKER_CONTEXT "$DCLI" "$@"; }     # always the host engine
nd() { local n=$1; shift; env -u DOCKER_CONTEXT DOCKER_HOST="unix://${SOCKDIR}/node${n}/docker.sock" "$DCLI" "$@"; }
node_ip() { echo "${PFX}.$((10 + $1))"; }
node_name() { echo "${P}-node$1"; }
running() { [[ "$(hd inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" == true ]]; }
is_static() { { ldd "$1" 2>&1 || true; } | grep -qE 'not a dynamic|statically linked'; }
TMPS=()
cleanup_tmps() { local d; for d in "${TMPS[@]}"; do rm -rf "$d"; done; }
trap cleanup_tmps EXIT
mktmp() { local d; d=$(mktemp -d "/tmp/${P}-$2.XXXXXX"); TMPS+=("$d"); printf -v "$1" '%s' "$d"; }  # mktmp VAR tag

with_lock() { exec 9>"$LOCK"; flock 9; }   # held until the script exits

# The berth binary whose libraries the nodes need (empty when none is built yet).
berth_binary() {
  local b t=${CARGO_TARGET_DIR:-$ROOT/target}
  for b in "${SWARMLAB_BERTH:-}" "$t/debug/berth" "$t/release/berth"; do
    [[ -n "$b" && -x "$b" ]] && { echo "$b"; return 0; }
  done
  return 0
}
# Library basenames FILEs need (ldd), one per line, sorted.
needed_libs() { ldd "$@" 2>/dev/null | awk '/=> \//{n=$3; sub(".*/", "", n); print n}' | sort -u; }
# Whether the node image lacks a library the berth binary needs.
image_lacks_berth_libs() {
  local b have l; b=$(berth_binary); [[ -n "$b" ]] || return 1
  have=$(hd image inspect -f '{{index .Config.Labels "swarmlab.libs"}}' "$IMG" 2>/dev/null) || return 0
  for l in $(needed_libs "$b"); do [[ ",$have," == *",$l,"* ]] || return 0; done
  return 1
}

apt_get() {  # apt_get download|install PKG...   (apt-get update once if the lists are stale)
  apt-get -qq "$@" >/dev/null 2>&1 || { apt-get -qq update >/dev/null 2>&1 && apt-get -qq "$@" >/dev/null 2>&1; }
}

static_busybox() {
  local bb; bb=$(command -v busybox || true)
  if [[ -z "$bb" ]] || ! is_static "$bb"; then
    log "installing busybox-static (Debian)"
    DEBIAN_FRONTEND=noninteractive apt_get install -y busybox-static || die "apt-get install busybox-static failed"
    bb=/bin/busybox
  fi
  is_static "$bb" || die "$bb is not static"
  echo "$bb"
}

copy_libs() {  # copy_libs ROOT FILE... : the ldd closure of FILEs into ROOT's libdir
  local root=$1 l; shift
  for l in $(ldd "$@" 2>/dev/null | awk '/=> \//{print $3}' | sort -u); do
    cp -L "$l" "$root$LIBDIR/$(basename "$l")"
  done
  mkdir -p "$root/usr/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$root/usr/lib64/"
}

build_node_image() {
  if [[ "${SWARMLAB_REBUILD:-0}" != 1 ]] && hd image inspect "$IMG" >/dev/null 2>&1; then
    image_lacks_berth_libs || return 0
    log "$IMG lacks a library $(berth_binary) needs; rebuilding it (nodes made before keep the old one until \`down\`)"
  fi
  local t0=$SECONDS root bb b p a
  bb=$(static_busybox)
  mktmp root rootfs
  log "building $IMG from the host's binaries"
  mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib64,usr/local/bin,etc/docker,proc,sys,dev,run,tmp,root,var/lib/docker} "$root$LIBDIR"
  chmod 1777 "$root/tmp"
  ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
  ln -s ../run "$root/var/run"
  local bins=(dockerd containerd containerd-shim containerd-shim-runc-v2 runc docker-init docker-proxy ip xtables-nft-multi)
  local files=("$DCLI")
  for b in "${bins[@]}"; do
    p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$b") || die "host binary $b not found (Debian: docker.io containerd runc tini iptables iproute2)"
    case $p in */sbin/*) cp -L "$p" "$root/usr/sbin/$b" ;; *) cp -L "$p" "$root/usr/bin/$b" ;; esac
    files+=("$p")
  done
  cp -L "$DCLI" "$root/usr/bin/docker"
  cp -L "$bb" "$root/usr/bin/busybox"
  for a in $("$bb" --list); do
    case $a in ip|modprobe|insmod|rmmod|lsmod|depmod|init|linuxrc|halt|poweroff|reboot|busybox) continue ;; esac
    [[ -e "$root/usr/bin/$a" || -e "$root/usr/sbin/$a" ]] || ln -s busybox "$root/usr/bin/$a"
  done
  for a in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -s xtables-nft-multi "$root/usr/sbin/$a"
  done
  cp -a "$LIBDIR/xtables" "$root$LIBDIR/"          # iptables match/target modules (dlopen'ed)
  files+=("$LIBDIR"/xtables/*.so)
  # berth (run inside the nodes from a SWARMLAB_MOUNT) is dynamically linked like any Rust
  # binary: libgcc_s, libm, libc. libgcc_s is taken even before berth is built.
  local berth; berth=$(berth_binary)
  [[ -n "$berth" ]] && files+=("$berth")
  copy_libs "$root" "${files[@]}"
  cp -L "$LIBDIR/libgcc_s.so.1" "$root$LIBDIR/"
  local libs; libs=$(ls "$root$LIBDIR" | grep '\.so' | paste -sd, -)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\ndocker:x:999:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  cp /etc/protocols /etc/services "$root/etc/" 2>/dev/null || true
  printf 'PRETTY_NAME="swarmlab node"\nNAME=swarmlab\nID=swarmlab\nVERSION_ID=1\n' > "$root/usr/lib/os-release"
  ln -s ../usr/lib/os-release "$root/etc/os-release"
  cat > "$root/usr/local/bin/${P}-entrypoint" <<'EOF'
#!/bin/sh
# PID 1 of a node container. It is not --privileged (see start_node), so make /sys and the
# container's own (cgroupns-private) cgroup v1/v2 hierarchies writable, then run dockerd.
mount -o remount,rw /sys 2>/dev/null || true
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do mount -o remount,bind,rw "$d" 2>/dev/null || true; done
mount -t securityfs none /sys/kernel/security 2>/dev/null || true
mkdir -p /run/swarmlab-sock /var/lib/docker
rm -f /run/swarmlab-sock/docker.sock
# Swarm tasks use the node's own copy of their image and never try a registry (there is none).
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
# --tls=false: without it a TCP listener makes dockerd sleep 15s at start.
exec dockerd \
  --host unix:///var/run/docker.sock \
  --host unix:///run/swarmlab-sock/docker.sock \
  --host tcp://0.0.0.0:2375 --tls=false \
  --data-root /var/lib/docker --storage-driver overlay2 \
  --log-driver json-file --log-opt max-size=10m --log-opt max-file=2 \
  $SWARMLAB_DOCKERD_ARGS "$@"
EOF
  chmod 755 "$root/usr/local/bin/${P}-entrypoint"
  tar -C "$root" --numeric-owner -cf - . | hd import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENTRYPOINT [\"/usr/local/bin/${P}-entrypoint\"]" \
    --change "LABEL ${P}=1" --change "LABEL swarmlab.libs=$libs" - "$IMG" >/dev/null
  log "built $IMG in $((SECONDS - t0))s ($(hd image inspect -f '{{.Size}}' "$IMG" | awk '{printf "%d MB", $1/1e6}'))"
}

# tiny workload image: static busybox FROM scratch (sh, httpd, nc, nslookup ...).
# NB: Debian's busybox-static `wget` segfaults here (rc 139); use nc or curl from the host.
build_busybox_image() {
  hd image inspect "$BBIMG" >/dev/null 2>&1 && return 0
  local root bb a; bb=$(static_busybox); mktmp root bb
  mkdir -p "$root"/{bin,etc,tmp,www}
  cp -L "$bb" "$root/bin/busybox"
  for a in sh httpd nc ls cat echo sleep hostname ip ifconfig nslookup ps printf; do ln -s busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
  tar -C "$root" --numeric-owner -cf - . | hd import --change 'ENV PATH=/bin' --change "LABEL ${P}=1" \
    --change 'CMD ["/bin/sh"]' - "$BBIMG" >/dev/null
}

start_node() {
  local n=$1 name; name=$(node_name "$n")
  if hd inspect "$name" >/dev/null 2>&1; then
    local had; had=$(hd inspect -f '{{index .Config.Labels "swarmlab.mount"}}' "$name")
    [[ -z "$MOUNTS" || "$had" == "$MOUNTS" ]] || \
      die "$name was made with SWARMLAB_MOUNT='$had', not '$MOUNTS'; run \`$0 down --keep-images\` first to change it"
    running "$name" || hd start "$name" >/dev/null
    return 0
  fi
  local mounts=() m
  if [[ -n "$MOUNTS" ]]; then
    IFS=, read -ra m <<<"$MOUNTS"
    for m in "${m[@]}"; do
      [[ "$m" == /*:/* && -d "${m%%:*}" ]] || die "SWARMLAB_MOUNT entry '$m' is not HOST_DIR:NODE_DIR with an existing absolute HOST_DIR"
      mounts+=(-v "$m:ro")
    done
  fi
  mkdir -p "$SOCKDIR/node$n"
  hd volume create --label ${P}=1 "${name}-data" >/dev/null
  # NOT --privileged: the host dockerd's capability bounding set lacks CAP_SYS_RESOURCE here, so
  # --privileged fails with "unable to apply caps: operation not permitted". Emulated instead:
  # all caps but SYS_RESOURCE, no seccomp, unmasked rw /proc, private cgroupns, all devices
  # allowed in the device cgroup; the entrypoint remounts /sys and the cgroups read-write.
  # --dns 127.0.0.1: nothing answers there, so no name outside the lab ever resolves.
  hd run -d --name "$name" --hostname "$name" --label ${P}=1 --label "swarmlab.mount=$MOUNTS" \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined --cgroupns private \
    --device-cgroup-rule 'a *:* rwm' \
    --network "$NET" --ip "$(node_ip "$n")" \
    --tmpfs /run:rw,exec,mode=755 \
    -v "${name}-data:/var/lib/docker" \
    -v "$SOCKDIR/node$n:/run/swarmlab-sock" "${mounts[@]}" --dns 127.0.0.1 \
    -e SWARMLAB_DOCKERD_ARGS="${SWARMLAB_DOCKERD_ARGS:-}" \
    "$IMG" 2>&1 >/dev/null | { grep -v 'Localhost DNS' >&2 || true; }
}

wait_api() {
  local n=$1 i
  for i in $(seq 1 120); do nd "$n" version >/dev/null 2>&1 && return 0; sleep 0.5; done
  hd logs --tail 30 "$(node_name "$n")" >&2 || true
  die "node$n dockerd did not come up"
}

swarm_state() { nd "$1" info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }
first_manager() {
  local n
  for n in $(seq 1 "$NODES"); do
    running "$(node_name "$n")" && [[ "$(nd "$n" info -f '{{.Swarm.ControlAvailable}}' 2>/dev/null)" == true ]] \
      && { echo "$n"; return 0; }
  done
  return 1
}

cmd_up() {
  local t0=$SECONDS n i m=""
  build_node_image
  build_busybox_image
  # Nodes made with other mounts (another checkout's target dir) are remade:
  # a node's mounts are fixed when it is created.
  local had
  for n in $(seq 1 "$NODES"); do
    had=$(hd inspect -f '{{index .Config.Labels "swarmlab.mount"}}' "$(node_name "$n")" 2>/dev/null) || continue
    if [[ -n "$MOUNTS" && "$had" != "$MOUNTS" ]]; then
      log "the nodes were made with SWARMLAB_MOUNT='$had', not '$MOUNTS'; making them again"
      cmd_down --keep-images
      break
    fi
  done
  # A host dir removed and made again at the same path (a fresh clone) is not
  # the one a running node still has mounted: the nodes are remade then.
  if [[ -n "$MOUNTS" ]]; then
    local probe=".swarmlab-probe-$$" stale="" e mounts
    IFS=, read -ra mounts <<<"$MOUNTS"
    for e in "${mounts[@]}"; do touch "${e%%:*}/$probe" 2>/dev/null || true; done
    for n in $(seq 1 "$NODES"); do
      [[ "$(hd inspect -f '{{.State.Running}}' "$(node_name "$n")" 2>/dev/null)" == true ]] || continue
      for e in "${mounts[@]}"; do
        hd exec "$(node_name "$n")" test -e "${e#*:}/$probe" || stale=1
      done
    done
    for e in "${mounts[@]}"; do rm -f "${e%%:*}/$probe"; done
    if [[ -n "$stale" ]]; then
      log "a mounted host dir was made again since the nodes started; making them again"
      cmd_down --keep-images
    fi
  fi
  hd network inspect "$NET" >/dev/null 2>&1 || \
    hd network create --driver bridge --subnet "$SUBNET" --gateway "$GW" --label ${P}=1 \
      -o com.docker.network.bridge.name=${P}0 "$NET" >/dev/null
  for n in $(seq 1 "$NODES"); do start_node "$n"; done
  for n in $(seq 1 "$NODES"); do wait_api "$n"; done
  log "dockerd up on $NODES nodes after $((SECONDS - t0))s"
  if [[ "$(swarm_state 1)" == inactive ]] && ! m=$(first_manager); then
    nd 1 swarm init --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" \
      --default-addr-pool "$ADDR_POOL" --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
  fi
  for i in $(seq 1 60); do m=$(first_manager) && break; sleep 0.5; done
  [[ -n "$m" ]] || die "no reachable manager"
  local mtok wtok tok
  mtok=$(nd "$m" swarm join-token -q manager); wtok=$(nd "$m" swarm join-token -q worker)
  for n in $(seq 1 "$NODES"); do
    if [[ "$(swarm_state "$n")" == inactive ]]; then
      tok=$wtok; (( n <= MANAGERS )) && tok=$mtok
      nd "$n" swarm join --token "$tok" --advertise-addr "$(node_ip "$n")" \
        --listen-addr "$(node_ip "$n"):2377" "$(node_ip "$m"):2377" >/dev/null
    fi
  done
  for n in $(seq 1 "$NODES"); do   # the workload image on every node, without any registry
    nd "$n" image inspect "$BBIMG" >/dev/null 2>&1 || hd save "$BBIMG" | nd "$n" load >/dev/null
  done
  local ready=0
  for i in $(seq 1 120); do
    ready=$(nd "$m" node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true)
    (( ready >= NODES )) && break
    sleep 0.5
  done
  (( ready >= NODES )) || die "only $ready/$NODES nodes Ready"
  log "swarm of $NODES nodes Ready after $((SECONDS - t0))s"
  cmd_status
}

cmd_status() {
  local n name m
  for n in $(seq 1 "$NODES"); do
    name=$(node_name "$n")
    if running "$name"; then
      echo "node$n $name DOCKER_HOST=unix://$SOCKDIR/node$n/docker.sock or DOCKER_HOST=tcp://$(node_ip "$n"):2375 swarm=$(swarm_state "$n")"
    elif hd inspect "$name" >/dev/null 2>&1; then echo "node$n $name (container stopped)"
    else echo "node$n $name (absent)"; fi
  done
  if m=$(first_manager); then nd "$m" node ls; else echo "no reachable manager"; return 1; fi
}

cmd_down() {
  local ids
  ids=$(hd ps -aq --filter label=${P}=1)
  if [[ -n "$ids" ]]; then hd rm -f -v $ids >/dev/null; fi
  if hd network inspect "$NET" >/dev/null 2>&1; then hd network rm "$NET" >/dev/null; fi
  ids=$(hd volume ls -q --filter label=${P}=1)
  if [[ -n "$ids" ]]; then hd volume rm -f $ids >/dev/null; fi
  if [[ "${1:-}" != --keep-images ]]; then
    ids=$(hd images -q --filter label=${P}=1 | sort -u)
    if [[ -n "$ids" ]]; then hd rmi -f $ids >/dev/null; fi
  fi
  rm -rf "$SOCKDIR"
  log "down: swarmlab containers, network, volumes $([[ "${1:-}" == --keep-images ]] && echo '(images kept)' || echo 'and images') removed"
}

cmd_load() {
  local img=${1:?image} n
  for n in $(seq 1 "$NODES"); do running "$(node_name "$n")" && hd save "$img" | nd "$n" load >/dev/null; done
  log "loaded $img into the running nodes"
}

cmd_selftest() {
  cmd_up >/dev/null
  local m svc=${P}-selftest ip n ok=0 victim t0 t
  m=$(first_manager)
  nd "$m" service rm "$svc" >/dev/null 2>&1 || true
  nd "$m" network inspect ${P}-ov >/dev/null 2>&1 || nd "$m" network create -d overlay --attachable ${P}-ov >/dev/null
  nd "$m" service create --detach=false --quiet --name "$svc" --replicas "$NODES" --restart-delay 1s \
    --network ${P}-ov --endpoint-mode dnsrr --publish mode=host,published=18080,target=80 "$BBIMG" \
    sh -c 'mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www' >/dev/null 2>&1
  for n in $(seq 1 "$NODES"); do
    ip=$(node_ip "$n")
    if t=$(curl -fsS -m 3 "http://$ip:18080/"); then echo "HTTP $ip:18080 -> task $t"; ok=$((ok+1)); else echo "HTTP $ip:18080 FAILED"; fi
  done
  (( ok == NODES )) || die "only $ok/$NODES replicas answered"
  # a second service without host ports, so the killed node's task can move
  nd "$m" service create --detach=false --quiet --name "${svc}-mv" --replicas "$NODES" --restart-delay 1s \
    --network ${P}-ov --endpoint-mode dnsrr "$BBIMG" sleep 100000 >/dev/null 2>&1
  victim=$NODES; [[ "$victim" == "$m" ]] && victim=1
  t0=$EPOCHREALTIME; cmd_kill "$victim"
  local down="" moved="" st cnt
  for t in $(seq 1 240); do
    st=$(nd "$m" node ls --format '{{.Hostname}} {{.Status}}' | awk -v h="$(node_name "$victim")" '$1==h{print $2}')
    cnt=$(nd "$m" service ps "${svc}-mv" --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' \
      | grep -v "^$(node_name "$victim") " | grep -c ' Running' || true)
    [[ -z "$down" && "$st" == Down ]] && down=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
    [[ -z "$moved" && "$cnt" -ge "$NODES" ]] && moved=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
    [[ -n "$down" && -n "$moved" ]] && break
    sleep 0.25
  done
  echo "killed $(node_name "$victim"): node Down after ${down:-?}s, all $NODES replicas Running on survivors after ${moved:-?}s"
  cmd_start "$victim"
  nd "$m" service rm "$svc" "${svc}-mv" >/dev/null
  [[ -n "$moved" ]] || die "work was not rescheduled"
  echo "selftest: $((NODES + 1)) passed, 0 failed"
}

cmd_kill() { hd kill "$(node_name "${1:?node number}")" >/dev/null; }
cmd_start() {
  local n=${1:?node number} m i st
  start_node "$n"; wait_api "$n"
  m=$(first_manager) || return 0   # a lone manager restarting: nothing else to ask
  for i in $(seq 1 120); do
    st=$(nd "$m" node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null | awk -v h="$(node_name "$n")" '$1==h{print $2}')
    [[ "$st" == Ready ]] && return 0
    sleep 0.5
  done
  die "node$n did not become Ready again"
}

case ${1:-} in
  up) with_lock; cmd_up ;;
  down) shift; with_lock; cmd_down "$@" ;;
  status) cmd_status ;;
  load) shift; cmd_load "$@" ;;
  kill) with_lock; cmd_kill "${2:-}" ;;
  start) with_lock; cmd_start "${2:-}" ;;
  env) echo "export DOCKER_HOST=unix://$SOCKDIR/node${2:?node number}/docker.sock" ;;
  selftest) with_lock; cmd_selftest ;;
  build) with_lock; SWARMLAB_REBUILD=1 build_node_image ;;
  *) sed -n '2,60p' "$0"; exit 2 ;;
esac
