#!/usr/bin/env bash
# testbed/host.sh: boot and stop local systemd test hosts (systemd-nspawn containers, each in its
# own network namespace) for forklift's end-to-end tests. See /work/shared/TESTBED.md.
#
# Usage (as root):
#   testbed/host.sh up NAME INDEX [--debian-docker]
#       Boot host NAME in netns fl-NAME, subnet 10.78.INDEX.0/24 (machine side .1, host .2),
#       root = overlayfs over the cached image (testbed/image.sh), /var/lib/docker = a loop-mounted
#       sparse ext4 file. Installs $FORKLIFT_TESTBED_PUBKEY as root's authorized_keys and a fresh
#       ed25519 SSH host key, waits for sshd and `systemctl is-system-running` = running|degraded,
#       then prints two lines on stdout:
#           10.78.INDEX.2
#           ssh-ed25519 AAAA...        (the host's SSH host key, to pin in known_hosts)
#       --debian-docker enables Debian's containerd.service, docker.socket and docker.service so
#       the host boots with a working distro Docker (otherwise they are installed but disabled).
#       --cloud puts the host on the test bed's "cloud" instead, a bridge that all --cloud hosts
#       share in netns fl-cloud (10.77.0.0/24: the host is 10.77.0.INDEX, the bridge .254), so
#       that the hosts reach one another directly; this machine reaches them through one veth
#       pair, flcloud (10.76.0.1) <-> fl-cloud's uplink (10.76.0.2), which `shape` can slow down.
#       Programs started in netns fl-cloud (`ip netns exec fl-cloud ...`, on 10.77.0.254) are
#       on the cloud's side of that link.
#       On failure it prints the console log tail and tears the half-started host down.
#   testbed/host.sh down NAME      stop NAME and remove all its state (safe to repeat, safe on a
#                                  half-started host)
#   testbed/host.sh down-all       `down` every host under the run dir (in parallel)
#   testbed/host.sh exec NAME CMD [ARG...]
#                                  run CMD inside NAME's namespaces (nsenter; no SSH needed)
#   testbed/host.sh list           print "NAME INDEX ADDRESS PID" for each host under the run dir
#   testbed/host.sh shape RATE     limit this machine's link to the cloud to RATE (tc, e.g. 20mbit)
#                                  each way; `shape off` lifts it
#   testbed/host.sh cloud-bytes    print the bytes that crossed that link so far, "SENT RECEIVED"
#                                  (as this machine counts them)
#
# NAME: [a-z0-9][a-z0-9-]{0,30}; INDEX: 1..254, unique among running hosts.
#
# State, per host, under $FORKLIFT_TESTBED_DIR/NAME/: nspawn.pid and leader.pid ("PID STARTTIME"),
# console.log, upper/ work/ (overlay), root/ (overlay mount), docker.img + docker/ (ext4 loop
# mount bound at /var/lib/docker), index, address, ssh_host_ed25519_key.pub.
#
# Environment variables read:
#   FORKLIFT_TESTBED_DIR           run dir holding host state (default: /tmp/forklift-testbed)
#   FORKLIFT_TESTBED_PUBKEY        `up`: SSH public key file to authorize for root (required); if
#                                  the matching private key (same path without .pub) exists, `up`
#                                  also checks a real SSH login with the pinned host key
#   FORKLIFT_TESTBED_IMAGE         `up`: image directory to use (default: output of testbed/image.sh)
#   FORKLIFT_TESTBED_DOCKER_SIZE   `up`: size of the sparse ext4 file for /var/lib/docker (default: 8G)
#   FORKLIFT_TESTBED_BOOT_TIMEOUT  `up`: seconds to wait for the host to be ready (default: 120)
#   FORKLIFT_TESTBED_STOP_TIMEOUT  `down`: seconds to wait for an orderly shutdown before
#                                  SIGKILL (default: 20)
#   FORKLIFT_TESTBED_KEEP_FAILED   `up`: 1 = leave a host that failed to boot in place (default: 0)
#   FORKLIFT_TESTBED_SYSCALL_FILTER  `up`: nspawn --system-call-filter (default: '@keyring bpf';
#                                  keyring for runc, bpf for Docker; add '@swap' to let swapon work
#                                  on the ext4 /var/lib/docker, which adds swap to the whole machine)
#   (`up` runs testbed/image.sh, which reads XDG_CACHE_HOME, HOME and FORKLIFT_TESTBED_MIRROR,
#   FORKLIFT_TESTBED_SUITE, FORKLIFT_TESTBED_HOSTNAME)
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" # root tools even from a user PATH

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR="${FORKLIFT_TESTBED_DIR:-/tmp/forklift-testbed}"
DOCKER_SIZE="${FORKLIFT_TESTBED_DOCKER_SIZE:-8G}"
BOOT_TIMEOUT="${FORKLIFT_TESTBED_BOOT_TIMEOUT:-120}"
STOP_TIMEOUT="${FORKLIFT_TESTBED_STOP_TIMEOUT:-20}"
KEEP_FAILED="${FORKLIFT_TESTBED_KEEP_FAILED:-0}"
SYSCALL_FILTER="${FORKLIFT_TESTBED_SYSCALL_FILTER:-@keyring bpf}"

# --- helpers -----------------------------------------------------------------
info() { echo '[INFO] ' "$@" >&2; }
warn() { echo '[WARN] ' "$@" >&2; }
fatal() {
    echo '[ERROR] ' "$@" >&2
    exit 1
}
usage() {
    sed -n '3,/^# NAME:/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

now_ms() { date +%s%3N; }

# "PID STARTTIME" of a live process (start time makes a recorded PID safe against reuse)
proc_id() {
    local pid="$1" stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat="${stat##*) }" # fields after "(comm) "; starttime is field 22 overall = 20th here
    # shellcheck disable=SC2086 # word splitting intended
    set -- $stat
    echo "$pid ${20}"
}

# true when the "PID STARTTIME" recorded in file $1 still names the same live process
recorded_alive() {
    local file="$1" pid start now
    [ -s "$file" ] || return 1
    read -r pid start <"$file" || return 1
    [ -n "$pid" ] || return 1
    now=$(proc_id "$pid") || return 1
    [ "$now" = "$pid $start" ]
}

recorded_pid() {
    local pid _
    read -r pid _ <"$1"
    echo "$pid"
}

# (not `ip netns list`: it prints "Peer netns reference is invalid" while others create one)
netns_exists() {
    [ -e "/run/netns/$1" ]
}

validate_name() {
    [[ "${1:-}" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || fatal "invalid host name '${1:-}' (want [a-z0-9][a-z0-9-]{0,30})"
}

verify_system() {
    [ "$(id -u)" -eq 0 ] || fatal "must run as root"
    local cmd
    for cmd in systemd-nspawn ip nsenter setsid mount umount mkfs.ext4 ssh-keygen ssh systemctl timeout; do
        command -v "$cmd" >/dev/null 2>&1 || fatal "'$cmd' not found: run testbed/deps.sh first"
    done
    grep -qw overlay /proc/filesystems || fatal "kernel lacks overlayfs"
}

# --- up ------------------------------------------------------------------------
setup_state() {
    if [ -e "$HOST_DIR" ]; then
        if recorded_alive "$HOST_DIR/nspawn.pid"; then
            fatal "host '$NAME' is already up (pid $(recorded_pid "$HOST_DIR/nspawn.pid")); run: $0 down $NAME"
        fi
        info "removing stale state of host '$NAME'"
        do_down "$NAME"
    fi
    local other
    for other in "$RUN_DIR"/*/index; do
        [ -f "$other" ] || continue
        if [ "$(cat "$other")" = "$INDEX" ]; then
            fatal "index $INDEX is already used by host '$(basename "$(dirname "$other")")'"
        fi
    done
    if [ "$CLOUD" = 0 ] && ip -o -4 addr show | grep -q " 10\.78\.$INDEX\.1/"; then
        fatal "10.78.$INDEX.1 is already assigned on this machine (index $INDEX in use)"
    fi
    ip link show "$VETH" >/dev/null 2>&1 && fatal "link $VETH already exists (index $INDEX in use)"
    netns_exists "$NETNS" && fatal "netns $NETNS already exists; run: $0 down $NAME"
    mkdir -p "$HOST_DIR"/{upper,work,root,docker}
    touch "$HOST_DIR/.forklift-host"
    echo "$INDEX" >"$HOST_DIR/index"
    echo "$ADDRESS" >"$HOST_DIR/address"
    [ "$CLOUD" = 0 ] || touch "$HOST_DIR/cloud"
}

# Safety net: traffic to 10.78.x.y of a host that is not up must fail here instead of leaving
# through the default route. Connected /24s of live hosts are more specific and win.
ensure_unreachable_route() {
    if ! ip -4 route show 10.78.0.0/16 | grep -q .; then
        ip route add unreachable 10.78.0.0/16 2>/dev/null || true
    fi
}

# Removes that route when no test bed veth (flv*) remains on the machine.
drop_unreachable_route() {
    if ! ip -o link show | grep -q ': flv[0-9]*@'; then
        ip route del unreachable 10.78.0.0/16 2>/dev/null || true
    fi
}

readonly CLOUD_NETNS=fl-cloud
readonly CLOUD_BRIDGE_ADDRESS=10.77.0.254

# Creates the cloud (netns fl-cloud: bridge br0, and the uplink to this machine) unless it is
# there. Hosts boot in parallel: one creates it, under a lock.
ensure_cloud() {
    mkdir -p "$RUN_DIR"
    exec 8>>"$RUN_DIR/.cloud.lock"
    flock 8
    if ! netns_exists "$CLOUD_NETNS"; then
        ip netns add "$CLOUD_NETNS"
        ip netns exec "$CLOUD_NETNS" ip link set lo up
        ip netns exec "$CLOUD_NETNS" ip link add br0 type bridge
        ip netns exec "$CLOUD_NETNS" ip addr add "$CLOUD_BRIDGE_ADDRESS/24" dev br0
        ip netns exec "$CLOUD_NETNS" ip link set br0 up
        ip link add flcloud type veth peer name uplink netns "$CLOUD_NETNS"
        ip addr add 10.76.0.1/30 dev flcloud
        ip link set flcloud up
        ip netns exec "$CLOUD_NETNS" ip addr add 10.76.0.2/30 dev uplink
        ip netns exec "$CLOUD_NETNS" ip link set uplink up
        ip netns exec "$CLOUD_NETNS" ip route add default via 10.76.0.1
        # (forwarding in the cloud's own namespace: this machine's stays as it is)
        ip netns exec "$CLOUD_NETNS" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
        ip route add 10.77.0.0/24 via 10.76.0.2 dev flcloud
        info "cloud network up (netns $CLOUD_NETNS, bridge $CLOUD_BRIDGE_ADDRESS/24)"
    fi
    exec 8>&-
}

# Removes the cloud once no host is on it (hosts go down in parallel: under the lock, each after
# its own state is gone, so that the last one sees none left).
drop_cloud() {
    netns_exists "$CLOUD_NETNS" || return 0
    local d
    mkdir -p "$RUN_DIR"
    exec 8>>"$RUN_DIR/.cloud.lock"
    flock 8
    for d in "$RUN_DIR"/*/; do
        if [ -f "$d/cloud" ]; then
            exec 8>&-
            return 0
        fi
    done
    ip link del flcloud 2>/dev/null || true
    ip netns del "$CLOUD_NETNS" 2>/dev/null || warn "could not delete netns $CLOUD_NETNS"
    exec 8>&-
    info "cloud network down"
}

setup_cloud_network() {
    ensure_cloud
    ip netns add "$NETNS"
    ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
    ip link set "$VETH" netns "$CLOUD_NETNS"
    ip netns exec "$CLOUD_NETNS" ip link set "$VETH" master br0 up
    ip netns exec "$NETNS" ip addr add "$ADDRESS/24" dev eth0
    ip netns exec "$NETNS" ip link set eth0 up
    ip netns exec "$NETNS" ip link set lo up
    ip netns exec "$NETNS" ip route add default via "$CLOUD_BRIDGE_ADDRESS"
    ip netns exec "$NETNS" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
}

# `shape RATE`: tc on both ends of this machine's link to the cloud (each end shapes what it
# sends); `shape off` lifts it.
do_shape() {
    [ $# -eq 1 ] || usage
    netns_exists "$CLOUD_NETNS" || fatal "no cloud network: boot a host with --cloud first"
    if [ "$1" = off ]; then
        tc qdisc del dev flcloud root 2>/dev/null || true
        ip netns exec "$CLOUD_NETNS" tc qdisc del dev uplink root 2>/dev/null || true
        return 0
    fi
    [[ "$1" =~ ^[0-9]+(kbit|mbit|gbit)$ ]] || fatal "invalid rate '$1' (want e.g. 20mbit, or off)"
    tc qdisc replace dev flcloud root tbf rate "$1" burst 64kb latency 400ms
    ip netns exec "$CLOUD_NETNS" tc qdisc replace dev uplink root tbf rate "$1" burst 64kb latency 400ms
}

do_cloud_bytes() {
    netns_exists "$CLOUD_NETNS" || fatal "no cloud network"
    echo "$(cat /sys/class/net/flcloud/statistics/tx_bytes) $(cat /sys/class/net/flcloud/statistics/rx_bytes)"
}

setup_network() {
    if [ "$CLOUD" = 1 ]; then
        setup_cloud_network
        return 0
    fi
    ensure_unreachable_route
    ip netns add "$NETNS"
    ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
    ip addr add "10.78.$INDEX.1/24" dev "$VETH"
    ip link set "$VETH" up
    ip netns exec "$NETNS" ip addr add "$ADDRESS/24" dev eth0
    ip netns exec "$NETNS" ip link set eth0 up
    ip netns exec "$NETNS" ip link set lo up
    # nspawn mounts /proc/sys read-only, so dockerd cannot enable forwarding itself ("Enabling IP
    # forwarding failed: open /proc/sys/net/ipv4/ip_forward: read-only file system"); it only
    # writes when the value is not 1 already. Per netns; the host has no default route anyway.
    ip netns exec "$NETNS" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
}

setup_filesystems() {
    mount -t overlay overlay \
        -o "lowerdir=$IMAGE,upperdir=$HOST_DIR/upper,workdir=$HOST_DIR/work" "$HOST_DIR/root"
    truncate -s "$DOCKER_SIZE" "$HOST_DIR/docker.img"
    mkfs.ext4 -q -F -L fl-docker -E lazy_itable_init=1,lazy_journal_init=1 "$HOST_DIR/docker.img"
    mount -o loop "$HOST_DIR/docker.img" "$HOST_DIR/docker"
    chmod 0710 "$HOST_DIR/docker"
}

customize_root() {
    local root="$HOST_DIR/root"
    echo "$NAME" >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n%s\t%s\n%s\ttestbed-gateway\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        "$NAME" "$ADDRESS" "$NAME" "$GATEWAY" >"$root/etc/hosts"
    tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
    rm -f "$root"/etc/ssh/ssh_host_*
    ssh-keygen -q -t ed25519 -N '' -C "root@$NAME" -f "$root/etc/ssh/ssh_host_ed25519_key"
    cut -d' ' -f1,2 "$root/etc/ssh/ssh_host_ed25519_key.pub" >"$HOST_DIR/ssh_host_ed25519_key.pub"
    install -d -m 0700 "$root/root/.ssh"
    install -m 0600 "$PUBKEY" "$root/root/.ssh/authorized_keys"
    if [ "$DEBIAN_DOCKER" = 1 ]; then
        systemctl --root="$root" enable containerd.service docker.socket docker.service >/dev/null 2>&1 \
            || fatal "could not enable Debian's Docker units"
    fi
}

start_container() {
    # setsid + </dev/null + --console=passive: nspawn survives the exit of this script.
    # Without a job-control shell the background child is no process-group leader, so setsid
    # does not fork and $! is systemd-nspawn's own PID.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 setsid systemd-nspawn -b \
        -D "$HOST_DIR/root" -M "$NAME" \
        --register=no --keep-unit --console=passive --capability=all \
        --system-call-filter="$SYSCALL_FILTER" --link-journal=no \
        --bind="$HOST_DIR/docker:/var/lib/docker" \
        --network-namespace-path="/run/netns/$NETNS" \
        </dev/null >"$HOST_DIR/console.log" 2>&1 &
    local pid=$!
    disown "$pid" 2>/dev/null || true
    proc_id "$pid" >"$HOST_DIR/nspawn.pid" || fatal "systemd-nspawn exited at once"
}

# direct children of a process (nspawn's: its helper and the container's init)
children_of() {
    cat "/proc/$1/task/"*/children 2>/dev/null | tr ' ' '\n' | grep . || true
}

# PID of the container's init (child of nspawn), recorded in leader.pid
find_leader() {
    local npid child
    npid=$(recorded_pid "$HOST_DIR/nspawn.pid")
    for child in $(children_of "$npid"); do
        if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then
            proc_id "$child" >"$HOST_DIR/leader.pid"
            echo "$child"
            return 0
        fi
    done
    return 1
}

sshd_answers() {
    local banner
    # shellcheck disable=SC2016 # $1 expands in the inner shell
    banner=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/22"; head -c 4 <&3' _ "$ADDRESS" 2>/dev/null) || return 1
    [ "$banner" = "SSH-" ]
}

ssh_login_works() {
    local key="${PUBKEY%.pub}" kh
    [ "$key" != "$PUBKEY" ] && [ -f "$key" ] || return 0 # no private key to try: banner check only
    kh="$HOST_DIR/known_hosts"
    echo "$ADDRESS $(cat "$HOST_DIR/ssh_host_ed25519_key.pub")" >"$kh"
    ssh -q -i "$key" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$kh" -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=5 \
        "root@$ADDRESS" true </dev/null
}

fail_boot() {
    warn "host '$NAME' did not become ready: $1"
    if [ -f "$HOST_DIR/console.log" ]; then
        echo "----- console log tail ($HOST_DIR/console.log) -----" >&2
        tail -n 40 "$HOST_DIR/console.log" >&2 || true
        echo "-----" >&2
    fi
    if [ -n "${LEADER:-}" ]; then
        echo "----- failed units and journal tail -----" >&2
        timeout 10 nsenter -t "$LEADER" -m -u -i -n -p -- systemctl --no-pager --failed >&2 2>/dev/null || true
        timeout 10 nsenter -t "$LEADER" -m -u -i -n -p -- journalctl -b --no-pager -n 40 >&2 2>/dev/null || true
        echo "-----" >&2
    fi
    exit 1
}

wait_ready() {
    local deadline=$(($(date +%s) + BOOT_TIMEOUT)) state=""
    LEADER=""
    while :; do
        recorded_alive "$HOST_DIR/nspawn.pid" || fail_boot "systemd-nspawn exited"
        [ "$(date +%s)" -lt "$deadline" ] || fail_boot "timed out after ${BOOT_TIMEOUT}s (system state: '${state:-unknown}')"
        if [ -z "$LEADER" ]; then
            LEADER=$(find_leader) || LEADER=""
        fi
        if [ -n "$LEADER" ]; then
            state=$(timeout 5 nsenter -t "$LEADER" -m -u -i -n -p -- systemctl is-system-running 2>/dev/null) || true
            case "$state" in
                running | degraded)
                    if sshd_answers; then
                        break
                    fi
                    ;;
            esac
        fi
        sleep 0.25
    done
    ssh_login_works || fail_boot "sshd answers but root login with $PUBKEY failed"
    if [ "$state" = degraded ]; then
        warn "host '$NAME' is degraded; failed units:"
        nsenter -t "$LEADER" -m -u -i -n -p -- systemctl --no-pager --failed --plain --no-legend >&2 || true
    fi
}

cleanup_failed_up() {
    local rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ] && [ "$KEEP_FAILED" != 1 ]; then
        warn "tearing down half-started host '$NAME' (FORKLIFT_TESTBED_KEEP_FAILED=1 keeps it)"
        (do_down "$NAME") || true
    fi
    exit "$rc"
}

do_up() {
    [ $# -ge 2 ] || usage
    NAME="$1"
    INDEX="$2"
    shift 2
    DEBIAN_DOCKER=0
    CLOUD=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --debian-docker) DEBIAN_DOCKER=1 ;;
            --cloud) CLOUD=1 ;;
            *) fatal "unknown option '$1'" ;;
        esac
        shift
    done
    validate_name "$NAME"
    if ! [[ "$INDEX" =~ ^[0-9]{1,3}$ ]] || [ "$INDEX" -lt 1 ] || [ "$INDEX" -gt 254 ]; then
        fatal "invalid index '$INDEX' (want 1..254)"
    fi
    PUBKEY="${FORKLIFT_TESTBED_PUBKEY:-}"
    [ -n "$PUBKEY" ] || fatal "FORKLIFT_TESTBED_PUBKEY is not set (path of an SSH public key file)"
    [ -s "$PUBKEY" ] || fatal "FORKLIFT_TESTBED_PUBKEY=$PUBKEY is not a readable non-empty file"
    IMAGE="${FORKLIFT_TESTBED_IMAGE:-}"
    if [ -z "$IMAGE" ]; then
        IMAGE=$("$SCRIPT_DIR/image.sh") || fatal "testbed/image.sh failed"
    fi
    [ -f "$IMAGE/.forklift-image-complete" ] || fatal "not a complete test bed image: $IMAGE"
    HOST_DIR="$RUN_DIR/$NAME"
    NETNS="fl-$NAME"
    VETH="flv$INDEX"
    if [ "$CLOUD" = 1 ]; then
        [ "$INDEX" -le 253 ] || fatal "invalid index '$INDEX' for a --cloud host (want 1..253)"
        ADDRESS="10.77.0.$INDEX"
        GATEWAY=$CLOUD_BRIDGE_ADDRESS
    else
        ADDRESS="10.78.$INDEX.2"
        GATEWAY="10.78.$INDEX.1"
    fi
    mkdir -p "$RUN_DIR"

    local t0
    t0=$(now_ms)
    setup_state
    trap cleanup_failed_up EXIT
    setup_network
    setup_filesystems
    customize_root
    start_container
    wait_ready
    trap - EXIT
    info "host '$NAME' up at $ADDRESS in $(($(now_ms) - t0)) ms (nspawn pid $(recorded_pid "$HOST_DIR/nspawn.pid"), docker: $([ "$DEBIAN_DOCKER" = 1 ] && echo debian || echo disabled))"
    echo "$ADDRESS"
    cat "$HOST_DIR/ssh_host_ed25519_key.pub"
}

# --- down ----------------------------------------------------------------------
# waits until the recorded process is gone; returns 1 on timeout
wait_gone() {
    local file="$1" secs="$2" i
    for ((i = 0; i < secs * 10; i++)); do
        recorded_alive "$file" || return 0
        sleep 0.1
    done
    return 1
}

stop_container() {
    local dir="$1" pid child
    if recorded_alive "$dir/nspawn.pid"; then
        pid=$(recorded_pid "$dir/nspawn.pid")
        # SIGTERM: nspawn asks the container's systemd for an orderly poweroff (SIGRTMIN+3).
        # Repeat it: a container still early in its boot drops the first one.
        local waited=0
        while recorded_alive "$dir/nspawn.pid" && [ "$waited" -lt "$STOP_TIMEOUT" ]; do
            kill -TERM "$pid" 2>/dev/null || true
            wait_gone "$dir/nspawn.pid" 2 || true
            waited=$((waited + 2))
        done
        if recorded_alive "$dir/nspawn.pid"; then
            # SIGKILL of nspawn alone would orphan the container: kill its children first
            warn "nspawn $pid did not stop within ${STOP_TIMEOUT}s; killing it and its container"
            for child in $(children_of "$pid"); do
                kill -KILL "$child" 2>/dev/null || true
            done
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$dir/nspawn.pid" 10 || warn "nspawn $pid still alive after SIGKILL"
        fi
    fi
    if recorded_alive "$dir/leader.pid"; then
        pid=$(recorded_pid "$dir/leader.pid")
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$dir/leader.pid" 10 || warn "container init $pid still alive after SIGKILL"
    fi
}

# A swap file activated inside a host (only possible with '@swap' in the syscall filter) is a
# swap of the whole machine and pins the ext4 file system; the host's shutdown does not swapoff
# it. /proc/swaps names it relative to the container's view (/var/lib/docker/F, or /F once the
# container's mounts are gone), so try both under our mount; swapoff fails harmlessly on others.
swapoff_below() {
    local dir="$1" p cand
    [ -d "$dir/docker" ] || return 0
    awk 'NR > 1 && $2 == "file" { print $1 }' /proc/swaps | while read -r p; do
        for cand in "$dir/docker$p" "$dir/docker/${p#/var/lib/docker/}"; do
            if [ -f "$cand" ] && swapoff "$cand" 2>/dev/null; then
                info "swapoff $cand"
            fi
        done
    done
}

# loop devices still backed by the host's docker.img (e.g. `up` killed inside `mount -o loop`)
detach_loops() {
    local dir="$1" dev
    [ -f "$dir/docker.img" ] || return 0
    losetup -j "$dir/docker.img" -O NAME -n 2>/dev/null | while read -r dev; do
        losetup -d "$dev" 2>/dev/null || warn "could not detach $dev"
    done
}

mounted_below() {
    awk -v d="$1/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts
}

unmount_below() {
    local dir="$1" mp
    # deepest first; lazy as a last resort
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mp; do
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || warn "could not unmount $mp"
    done
}

do_down() {
    [ $# -eq 1 ] || usage
    local name="$1" dir netns index=""
    validate_name "$name"
    dir="$RUN_DIR/$name"
    netns="fl-$name"
    if [ -d "$dir" ]; then
        [ -f "$dir/index" ] && index=$(cat "$dir/index")
        stop_container "$dir"
        for _ in 1 2 3 4 5; do
            swapoff_below "$dir"
            unmount_below "$dir"
            detach_loops "$dir"
            mounted_below "$dir" || break
            sleep 0.5 # e.g. a mount(8) of a killed `up` still finishing
        done
    fi
    if netns_exists "$netns"; then
        if [ -d "$dir" ] || [ -z "$(ip netns pids "$netns" 2>/dev/null)" ]; then
            ip netns del "$netns" || warn "could not delete netns $netns"
        else
            warn "netns $netns has processes and no state under $RUN_DIR; leaving it alone"
        fi
    fi
    if [ -n "$index" ] && ip link show "flv$index" >/dev/null 2>&1; then
        ip link del "flv$index" 2>/dev/null || true
    fi
    if [ -d "$dir" ]; then
        if mounted_below "$dir"; then
            fatal "mounts remain under $dir; not removing it"
        fi
        rm -rf --one-file-system "$dir"
        info "host '$name' down"
    fi
    drop_unreachable_route
    drop_cloud
}

do_down_all() {
    local d pids=() rc=0 pid
    [ -d "$RUN_DIR" ] || return 0
    for d in "$RUN_DIR"/*/; do
        [ -f "$d/.forklift-host" ] || [ -f "$d/index" ] || continue
        do_down "$(basename "$d")" &
        pids+=("$!")
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
    drop_unreachable_route
    drop_cloud
    return "$rc"
}

do_exec() {
    [ $# -ge 2 ] || usage
    local name="$1" dir leader
    shift
    validate_name "$name"
    dir="$RUN_DIR/$name"
    recorded_alive "$dir/leader.pid" || fatal "host '$name' is not up"
    leader=$(recorded_pid "$dir/leader.pid")
    exec nsenter -t "$leader" -m -u -i -n -p -- "$@"
}

do_list() {
    local d name pid
    [ -d "$RUN_DIR" ] || return 0
    for d in "$RUN_DIR"/*/; do
        [ -f "$d/index" ] || continue
        name=$(basename "$d")
        pid="-"
        if recorded_alive "$d/nspawn.pid"; then pid=$(recorded_pid "$d/nspawn.pid"); fi
        echo "$name $(cat "$d/index") $(cat "$d/address" 2>/dev/null || echo -) $pid"
    done
}

# --- main --------------------------------------------------------------------
main() {
    local cmd="${1:-}"
    [ -n "$cmd" ] || usage
    shift
    case "$cmd" in
        up)
            verify_system
            do_up "$@"
            ;;
        down)
            verify_system
            do_down "$@"
            ;;
        down-all)
            verify_system
            do_down_all
            ;;
        exec)
            verify_system
            do_exec "$@"
            ;;
        list) do_list ;;
        shape)
            verify_system
            do_shape "$@"
            ;;
        cloud-bytes) do_cloud_bytes ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
