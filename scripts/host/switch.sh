# shellcheck shell=bash
# switch.sh — the switch to a release: links, managed files, the restart of containerd and Docker,
# the verify and the health check.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

# Makes RELEASE_SHA the current release and links its binaries (one rename switches them all).
switch_to() {
    local sha=$1 release="$OPT/releases/$1" link
    local links targets
    put_link "$release" "$OPT/current"
    mkdir -p "$INSTALL_DIR"
    links=$(release_links "$release")
    # shellcheck disable=SC2086 # one path per word
    targets=$(link_targets $links)
    for link in $links; do
        own_path "$link"
        # a link into current already (an upgrade): the rename of current above switched it
        points_to_current "$link" "$targets" || put_link "$OPT/current/${link##*/}" "$link"
    done
    # binaries of an older release that this one no longer has go back to what was there
    while read -r link; do
        case "$link" in /etc/*) continue ;; esac
        [ -e "$release/${link##*/}" ] || release_path "$link"
    done < <(cat "$STATE/owned.list" 2>/dev/null || true)
    info "switched to release $sha"
}

# Puts the managed files of directory SRC in place; files not in SRC are given back.
# Sets UNITS_CHANGED when a unit file was written or given back (systemd must reload).
apply_files() {
    local src=$1 name path mode
    for name in $MANAGED_NAMES; do
        path=$(managed_path "$name")
        if [ -f "$src/$name" ]; then
            own_path "$path"
            mode=0644
            # the same bytes, mode and owner already there: rewriting them would only cost a reload
            same_file "$src/$name" "$path" "$mode" && continue
            put_file "$src/$name" "$path" "$mode"
            [ "$name" = daemon.json ] || UNITS_CHANGED=1
        elif owns "$path"; then
            # forklift's containerd must not run on after its unit (and binary) are gone
            [ "$name" != containerd.service ] || systemctl disable --now containerd.service >/dev/null 2>&1 || true
            release_path "$path"
            [ "$name" = daemon.json ] || UNITS_CHANGED=1
        fi
    done
}
UNITS_CHANGED=""

# True when PATH is a regular file with SRC's bytes, mode MODE and owner root:root (put_file's result).
same_file() {
    local src=$1 path=$2 mode=$3
    [ -f "$path" ] && [ ! -L "$path" ] && cmp -s "$src" "$path" && [ "$(stat -c '%a %u:%g' "$path")" = "${mode#0} 0:0" ]
}

# Links in an install dir used by an earlier run (installDir changed) go back to what was there.
release_stale_links() {
    local path wanted
    wanted=$(release_links "$OPT/releases/$FORKLIFT_SHA256")
    while read -r path; do
        case "$path" in "$INSTALL_DIR"/* | /etc/*) continue ;; esac
        ! grep -qxF "$path" <<<"$wanted" || continue
        case "$(readlink "$path" 2>/dev/null || true)" in "$OPT/current/"*) release_path "$path" ;; esac
    done < <(cat "$STATE/owned.list" 2>/dev/null || true)
}

ensure_group() {
    getent group docker >/dev/null || groupadd --system docker
}

# True when the running daemon started after the daemon.json this install puts in place was
# written, with the same bytes: it runs with that file's live-restore already, and needs no HUP.
# (Times in nanoseconds: the daemon often starts within the second its file was written.)
daemon_read_config() {
    local file=/etc/docker/daemon.json started written
    [ -f "$STAGE/files/daemon.json" ] && cmp -s "$STAGE/files/daemon.json" "$file" || return 1
    started=$(systemctl show --timestamp=us+utc -p ExecMainStartTimestamp --value docker.service 2>/dev/null) || return 1
    started=$(date -d "$started" +%s%N 2>/dev/null) || return 1
    written=$(stat -c %.9Y "$file" 2>/dev/null) || return 1
    [[ "$written" =~ ^[0-9]+\.[0-9]{9}$ ]] && [ "${written/./}" -lt "$started" ]
}

# Runs COMMAND...; when it fails, says which step failed and returns 1. restart_docker runs where
# bash ignores `set -e` (its caller tests its status), so each of its steps is checked this way.
step() {
    local rc=0
    "$@" || rc=$?
    [ "$rc" = 0 ] || { echo "\`$*\` failed (exit $rc)"; return 1; }
}

# Restarts containerd (when shipped) and Docker on the files now in place, within VERIFY_TIMEOUT.
# With "reload", a running daemon is told to re-read daemon.json first; with "rollback", the Swarm
# state is not copied (the copy is of the state before the switch). Fails at the first step that
# fails, saying which.
restart_docker() {
    # a running daemon re-reads daemon.json on HUP: with live-restore on, stopping it below
    # leaves the containers running (a distro daemon started without live-restore included)
    if [ "${1:-reload}" = reload ] && systemctl is-active --quiet docker.service; then
        if systemctl reload docker.service 2>/dev/null; then sleep 1; fi
    fi
    local units="docker.socket docker.service" host_containerd=""
    if owns /etc/systemd/system/containerd.service; then
        units="containerd.service $units"
    elif unit_was containerd.service active; then
        host_containerd=1
    fi
    # no unit file written and none changed behind systemd's back (an interrupted run, an admin):
    # nothing to reload
    # shellcheck disable=SC2086 # word splitting of the unit list is intended
    if [ -n "$UNITS_CHANGED" ] || units_need_reload $units; then
        step systemctl daemon-reload || return 1
    fi
    # back on the host's own containerd (the release ships none)
    if [ -n "$host_containerd" ]; then
        step timeout "$VERIFY_TIMEOUT" systemctl start containerd.service || return 1
    fi
    # `systemctl enable` costs a unit-file scan even when there is nothing to do; one query for all
    local unit list states i=0
    read -ra list <<<"$units"
    readarray -t states < <(systemctl is-enabled "${list[@]}" 2>/dev/null || true)
    for unit in "${list[@]}"; do
        # a missing or unexpected answer counts as "not enabled" (enable is idempotent)
        if [ "${#states[@]}" -ne "${#list[@]}" ] || [ "${states[$i]}" != enabled ]; then
            step systemctl enable --quiet "$unit" || return 1
        fi
        i=$((i + 1))
    done
    step systemctl stop docker.service docker.socket || return 1
    # the Swarm state as it is before the new release first runs (see copy_swarm_state)
    if [ "${1:-reload}" != rollback ] && [ -n "$SWARM_INFO" ]; then
        step copy_swarm_state || return 1
    fi
    # StartLimitBurst=3 per 60 s counts a rollback's restarts too: a retry right after one must
    # not be refused as "start request repeated too quickly"
    # shellcheck disable=SC2086 # word splitting of the unit list is intended
    systemctl reset-failed $units 2>/dev/null || true
    case "$units" in containerd.service*) step timeout "$VERIFY_TIMEOUT" systemctl restart containerd.service || return 1 ;; esac
    local spawned_before spawned status rc=0
    spawned_before=$(systemctl show -p ExecMainStartTimestampMonotonic --value docker.service 2>/dev/null || true)
    # Type=notify with TimeoutStartSec=0 would wait forever for a daemon that never gets ready.
    # docker.service alone: its Requires= starts docker.socket in the same transaction, so the
    # two succeed or fail together. `systemctl start docker.socket docker.service` runs one
    # transaction per unit: the socket's could fail (219/CGROUP) and report the start failed
    # while docker.service's, starting the socket anew, brought both up (a good release was then
    # rolled back for a spawned, running dockerd)
    timeout "$VERIFY_TIMEOUT" systemctl start docker.service || rc=$?
    [ "$rc" != 0 ] || return 0
    # not ready in the time allowed: the release's trouble
    [ "$rc" != 124 ] || { echo "docker.service did not start within ${VERIFY_TIMEOUT}s"; return 1; }
    # a daemon that ran and failed is the release's trouble. One that was never spawned (the
    # socket failed to listen), or that systemd could not spawn (its exit status is then
    # systemd's own, 200 and up: 219/CGROUP seen on busy hosts, for the socket's setup too), is
    # systemd's: one more try, a moment later, before the release is blamed
    spawned=$(systemctl show -p ExecMainStartTimestampMonotonic --value docker.service 2>/dev/null || true)
    status=$(systemctl show -p ExecMainStatus --value docker.service 2>/dev/null || true)
    if [ "$spawned" != "$spawned_before" ] && [ "${status:-0}" -lt 200 ]; then
        echo "dockerd exited with status ${status:-?}"
        return 1
    fi
    # (on the install's own stderr: the caller keeps this function's output for a failure's message)
    warn "systemd could not start docker.socket or spawn dockerd (socket: $(systemctl show -p Result --value docker.socket), dockerd $([ "$spawned" != "$spawned_before" ] && echo "exit status ${status:-?}" || echo "not started")); trying once more" 2>&3
    sleep 2
    systemctl reset-failed docker.socket docker.service 2>/dev/null || true
    step timeout "$VERIFY_TIMEOUT" systemctl start docker.service
}

# True unless systemd answers that none of UNITs needs a daemon-reload (their files, drop-ins
# or, for a unit not found, the unit directories unchanged since systemd loaded them).
units_need_reload() {
    local out answer n=0
    out=$(systemctl show -p NeedDaemonReload --value "$@" 2>/dev/null) || return 0
    # one answer per unit (blank lines between units)
    for answer in $out; do
        [ "$answer" = no ] || return 0
        n=$((n + 1))
    done
    [ "$n" -ne "$#" ]
}

# True when UNIT was STATE (enabled/active) before forklift's first install.
unit_was() {
    [ -f "$STATE/pre-state" ] || return 1
    case "$2" in
        enabled) awk -v u="$1" '$1 == u && $2 == "enabled" {found = 1} END {exit !found}' "$STATE/pre-state" ;;
        active) awk -v u="$1" '$1 == u && $3 == "active" {found = 1} END {exit !found}' "$STATE/pre-state" ;;
    esac
}

# True when docker.service runs RELEASE's dockerd: that very file (device and inode), else one
# with the same bytes.
running_dockerd_matches() {
    local pid
    pid=$(systemctl show -p MainPID --value docker.service)
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    [ "$(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null)" != "$(stat -L -c %d:%i "$1/dockerd")" ] || return 0
    local running
    running=$(sha256_of "/proc/$pid/exe") || return 1
    [ "$running" = "$(sha256_of "$1/dockerd")" ]
}

# The docker CLI to ask: the release's own, else one already on the host (a moby build ships none).
docker_cli() {
    if [ -x "$1/docker" ]; then echo "$1/docker"; else command -v docker || true; fi
}

# Waits until `docker version` answers through the socket and the running dockerd is RELEASE's.
verify_release() {
    local release="$OPT/releases/$1" deadline cli
    cli=$(docker_cli "$release")
    if [ -z "$cli" ]; then
        echo "no docker CLI to check the daemon with (the release has none and neither has the host)"
        return 1
    fi
    deadline=$((SECONDS + VERIFY_TIMEOUT))
    until "$cli" -H unix:///run/docker.sock version --format '{{.Server.Version}}' >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "docker did not answer within ${VERIFY_TIMEOUT}s"
            return 1
        fi
        sleep 0.2
    done
    if ! running_dockerd_matches "$release"; then
        echo "the running dockerd is not the binary of release $1 (a drop-in overriding ExecStart? $(systemctl show -p DropInPaths --value docker.service))"
        return 1
    fi
}

# Runs the health check (FORKLIFT_HEALTH_CHECK_B64, within HEALTH_TIMEOUT); says why it failed.
# Its output goes to a file, not a pipe, and the script's own descriptors (the session's stderr, the
# host lock) are closed for it: a process it leaves in the background holds up neither this run nor
# the next. SIGKILL 5 s after the timeout's SIGTERM (to its whole process group): a check that
# ignores SIGTERM ends too. Only the end of its output is kept (a check may print megabytes).
run_health_check() {
    [ -n "${FORKLIFT_HEALTH_CHECK_B64:-}" ] || return 0
    local check out rc=0 log
    check=$(printf '%s' "$FORKLIFT_HEALTH_CHECK_B64" | base64 -d)
    log=$(mktemp /var/tmp/forklift-health.XXXXXX)
    timeout -k 5 "$HEALTH_TIMEOUT" bash -c "$check" >"$log" 2>&1 </dev/null 3>&- 9>&- || rc=$?
    out=$(tail -c 1000 "$log" | tail -n 3 | tr '\n' ' ' | sed 's/ *$//')
    rm -f "$log"
    [ "$rc" != 0 ] || return 0
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "its health check did not pass within ${HEALTH_TIMEOUT}s (healthCheckTimeout)${out:+: $out}"
    else
        echo "its health check failed (exit $rc)${out:+: $out}"
    fi
    return 1
}

daemon_log_tail() {
    journalctl -u docker.service -u containerd.service -n 15 --no-pager 2>/dev/null | sed 's/^/    /' || true
}

# Copies this script where `pulumi destroy` finds it (again whenever it changed).
install_self() {
    cmp -s "${BASH_SOURCE[0]}" "$SELF_DIR/forklift-host.sh" 2>/dev/null && return 0
    mkdir -p "$SELF_DIR"
    install -m 0755 "${BASH_SOURCE[0]}" "$SELF_DIR/forklift-host.sh.tmp"
    mv -f "$SELF_DIR/forklift-host.sh.tmp" "$SELF_DIR/forklift-host.sh"
}
