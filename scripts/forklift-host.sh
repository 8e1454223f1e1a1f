#!/usr/bin/env bash
# forklift-host.sh — install, roll back and uninstall a static Docker release on one host.
#
# Usage:
#   forklift-host.sh install     install the release whose tgz arrives on stdin (not read when the
#                                release is unpacked here already; no-op when it is in place). On a
#                                Swarm node that the install would change, it changes nothing and
#                                exits 75 printing the node's Swarm state: its tasks must move away
#                                first (the local side drains it, then runs install-drained). A host
#                                that lacks the release and was sent "ask" for it (below) changes
#                                nothing and exits 76: the local side runs it again with the artifact
#   forklift-host.sh install-drained   install, on a Swarm node drained for it
#   forklift-host.sh uninstall   remove everything forklift put on the host and restore what was
#                                there (on a Swarm node: exit 75 as install does)
#   forklift-host.sh uninstall-drained   uninstall, on a Swarm node drained for it
#   forklift-host.sh status      print the installed release as one JSON line
#   forklift-host.sh check       the check before a rollout: fail naming the cause when the host
#                                cannot take a release (no systemd, a tool missing, too little room
#                                where the release is not unpacked yet, another stack's host); print
#                                what it found as one JSON line
#   forklift-host.sh stage       check, then make the release whose tgz arrives on stdin unpacked here
#                                (sha256 checked first) without switching to it; the JSON line of check
#   forklift-host.sh health      run the health check (FORKLIFT_HEALTH_CHECK_B64) now: exit 0 when it passes
#   forklift-host.sh rollback    put the host back on the release installed before the current one (or
#                                on what was there before forklift), as a failed install would have: for
#                                a release that failed its health check after it was committed (a soak).
#                                On a Swarm node: exit 75 as install does, then rollback-drained
#
# Variables (install):
#   FORKLIFT_HOST             name of the host, used in messages (default: hostname)
#   FORKLIFT_SHA256           expected sha256 of the artifact (the docker-<version>.tgz, layout
#                             docker/<binaries>, on stdin); nothing changes when it differs
#   FORKLIFT_VERSION          version label recorded with the release
#   FORKLIFT_INSTALL_DIR      where the binaries are linked (default /usr/bin)
#   FORKLIFT_DOCKER_SERVICE_B64, FORKLIFT_DOCKER_SOCKET_B64   base64 of the rendered units
#   FORKLIFT_CONTAINERD_SERVICE_B64   base64 of containerd.service, empty when the release has none
#   FORKLIFT_DAEMON_JSON_B64  base64 of /etc/docker/daemon.json, empty to leave the host's file alone
#   FORKLIFT_DAEMON_JSON_SWARM_B64  base64 of the daemon.json for a Swarm node (without live-restore,
#                             which dockerd refuses in swarm mode); empty: the same as above
#   FORKLIFT_VERIFY_TIMEOUT   seconds to wait for the new daemon to start and answer (default 60)
#   FORKLIFT_SWARM_TIMEOUT    seconds a Swarm node has to rejoin its cluster after the restart
#                             (manager: reachable, with a leader) before it is rolled back (default 120)
#   FORKLIFT_HEALTH_CHECK_B64 base64 of a command (bash) that must pass after the restart, before the
#                             release counts as installed (healthCheck); empty: none
#   FORKLIFT_HEALTH_TIMEOUT   seconds it may take (default 60)
#   FORKLIFT_OWNER            who installs (project/stack/host); uninstall only acts for the same owner
#   FORKLIFT_STACK_ID         the installing stack's random identity; a host owned by another stack
#                             is refused by install and left alone by uninstall
# (check, stage): FORKLIFT_HOST, FORKLIFT_OWNER, FORKLIFT_STACK_ID, FORKLIFT_SHA256 (the release),
#   FORKLIFT_NEED_KIB         free space the release needs in /opt and /var/tmp (unset: not checked)
#
# Layout on the host:
#   /opt/forklift/releases/<sha256>/   unpacked binaries of each release (current + previous kept)
#   /opt/forklift/current              symlink to the running release; switching it switches every binary
#   <install dir>/<binary>             symlinks to /opt/forklift/current/<binary>
#   <other PATH dir>/<binary>          the same, where a same-named file was there (Debian's /usr/sbin/dockerd)
#   /var/lib/forklift/                 what was there before (backups), what forklift owns, last good files
#   /usr/local/lib/forklift/           a copy of this script, so `pulumi destroy` can uninstall
set -euo pipefail

readonly OPT=/opt/forklift
readonly STATE=/var/lib/forklift
readonly SELF_DIR=/usr/local/lib/forklift
readonly LOCK=/run/lock/forklift.lock
# the sha256 of nothing: what arrives when no artifact was sent
readonly EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
HOST_NAME=${FORKLIFT_HOST:-$(hostname)}
INSTALL_DIR=${FORKLIFT_INSTALL_DIR:-/usr/bin}
VERIFY_TIMEOUT=${FORKLIFT_VERIFY_TIMEOUT:-60}
HEALTH_TIMEOUT=${FORKLIFT_HEALTH_TIMEOUT:-60}
SWARM_TIMEOUT=${FORKLIFT_SWARM_TIMEOUT:-120}
# exit status of an install or uninstall that a Swarm node needs drained first (EX_TEMPFAIL)
readonly EXIT_DRAIN_FIRST=75
# exit status of an install that lacks the release and was told to ask for it (see receive_artifact)
readonly EXIT_SEND_ARTIFACT=76
STAGE=""
# the tgz this run received (staged in /var/tmp until the run ends)
ARTIFACT=""
# root's PATH: a same-named binary in any of these must not shadow the release's
readonly PATH_DIRS="/usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin"
# what a Docker daemon leaves behind once it ran (with the default data roots)
readonly TRACE_PATHS="/etc/docker /etc/docker/key.json /etc/cni /etc/cni/net.d /var/lib/docker /var/lib/containerd /opt/containerd
    /run/docker /run/docker.sock /run/docker.pid /run/containerd /var/run/docker.sock /var/run/docker.pid"

# S as a JSON string (quotes, backslashes and control characters escaped).
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/}
    printf '"%s"' "$(printf '%s' "$s" | LC_ALL=C tr -d '\000-\037')"
}

# Messages must not kill the script when the SSH session that reads them is gone (see main).
info() { printf '[forklift %s] %s\n' "$HOST_NAME" "$*" >&2 || true; }
warn() { printf '[forklift %s] WARN: %s\n' "$HOST_NAME" "$*" >&2 || true; }
# The end of a run that failed: the message for people on stderr, and the same for the local
# commands as a JSON line {"fatal": MESSAGE} on stdout (lib/protocol/results.ts), which they quote.
fatal() {
    printf '[forklift %s] ERROR: %s\n' "$HOST_NAME" "$*" >&2 || true
    printf '{"fatal":%s}\n' "$(json_string "$*")" || true
    exit 1
}
# fatal, with what failed for the local commands first: a JSON line {"error": CODE, FIELDS...} on
# stdout (lib/protocol/host.ts HostErrorLine), which they act on; the message is for people.
# Usage: fail CODE 'FIELDS' MESSAGE (FIELDS: more JSON members, or "").
fail() {
    printf '{"error":"%s"%s}\n' "$1" "${2:+,$2}" || true
    fatal "$3"
}

# Removes the staging directory and the received tgz however the script ends.
cleanup() { rm -rf ${STAGE:+"$STAGE"} ${ARTIFACT:+"$ARTIFACT" "$ARTIFACT.err"}; }
trap cleanup EXIT

# Where a managed file named NAME lives on the host.
managed_path() {
    case "$1" in
        docker.service | docker.socket | containerd.service) echo "/etc/systemd/system/$1" ;;
        daemon.json) echo /etc/docker/daemon.json ;;
        *) fatal "unknown managed file $1" ;;
    esac
}
readonly MANAGED_NAMES="docker.socket docker.service containerd.service daemon.json"

# Refuses to run without root and the tools the install needs.
require_tools() {
    [ "$(id -u)" = 0 ] || fatal "must run as root (connect as root or a user with passwordless sudo)"
    local tool
    for tool in systemctl tar sha256sum flock install; do
        command -v "$tool" >/dev/null || fatal "missing $tool on the host"
    done
}

# One forklift run at a time on this host. The lock file is never removed, not even by uninstall
# (it is an empty file in /run, gone at the next boot): a run waiting on a removed file and a run
# that locked its new namesake would both go ahead.
take_lock() {
    mkdir -p "$(dirname "$LOCK")"
    exec 9>>"$LOCK"
    flock -w 300 9 || fatal "another forklift run holds $LOCK"
}

preflight() {
    require_tools
    take_lock
}

# ---- ownership: every path forklift writes is first recorded with its original (if any) ----

backup_of() { echo "$STATE/backup$1"; }

# True when PATH belongs to a Debian package (e.g. docker.io's /usr/bin/docker).
# Each answer is kept for the rest of the run, in the staging directory (subshells ask too): it is
# asked for every link in every PATH directory, and what packages own does not change while
# forklift runs (a diversion does not change it either).
dpkg_owned() {
    command -v dpkg-query >/dev/null || return 1
    local cache=${STAGE:+$STAGE/dpkg-owned}
    if [ -n "$cache" ]; then
        has_line "yes $1" "$cache" && return 0
        has_line "no $1" "$cache" && return 1
    fi
    if dpkg-query -S "$1" >/dev/null 2>&1; then
        [ -z "$cache" ] || echo "yes $1" >>"$cache"
        return 0
    fi
    [ -z "$cache" ] || echo "no $1" >>"$cache"
    return 1
}

# Takes PATH over: the first time, keeps what was there so release_path can restore it. A
# package's file is diverted instead of copied, so a package upgrade lands beside forklift's
# link (as PATH.forklift-distrib) instead of silently replacing it.
own_path() {
    local path=$1
    owns "$path" && return 0
    mkdir -p "$STATE"
    if dpkg_owned "$path"; then
        dpkg-divert --quiet --local --rename --divert "$path.forklift-distrib" --add "$path"
        echo "$path" >>"$STATE/diverted.list"
    elif [ -e "$path" ] || [ -L "$path" ]; then
        mkdir -p "$(dirname "$(backup_of "$path")")"
        cp -a "$path" "$(backup_of "$path")"
    fi
    echo "$path" >>"$STATE/owned.list"
}

# True when LINE is a line of FILE: grep -qxF without a process (it runs for every link, often).
has_line() {
    local line
    [ -f "$2" ] || return 1
    while IFS= read -r line || [ -n "$line" ]; do
        [ "$line" != "$1" ] || return 0
    done <"$2"
    return 1
}

owns() { has_line "$1" "$STATE/owned.list"; }

# Drops LINE from the list file FILE.
list_remove() {
    [ -f "$2" ] || return 0
    grep -vxF "$1" "$2" >"$2.tmp" || true
    mv -f "$2.tmp" "$2"
}

# Gives PATH back: restores the original (or the package's file), or removes forklift's file
# when there was none.
release_path() {
    local path=$1 backup
    backup=$(backup_of "$path")
    if has_line "$path" "$STATE/diverted.list"; then
        rm -f "$path"
        dpkg-divert --quiet --local --rename --remove "$path"
        list_remove "$path" "$STATE/diverted.list"
    elif [ -e "$backup" ] || [ -L "$backup" ]; then
        mkdir -p "$(dirname "$path")"
        rm -f "$path"
        mv -f "$backup" "$path"
    else
        rm -f "$path"
    fi
    list_remove "$path" "$STATE/owned.list"
}

# Writes CONTENT_FILE to PATH atomically (temp file in the same directory, then rename).
put_file() {
    local src=$1 path=$2 mode=$3
    mkdir -p "$(dirname "$path")"
    install -m "$mode" "$src" "$path.forklift-tmp"
    mv -f "$path.forklift-tmp" "$path"
}

# Points LINK at TARGET atomically.
put_link() {
    local target=$1 link=$2
    ln -sfn "$target" "$link.forklift-tmp"
    mv -fT "$link.forklift-tmp" "$link"
}

# ---- release handling ----

# The executables a release provides (file names under its directory).
release_binaries() {
    find "$1" -maxdepth 1 -type f -perm -u+x -printf '%f\n' | sort
}

# The sha256 tool: OpenSSL's uses the CPU's SHA instructions where it has them (faster than
# coreutils' on a release, BENCHMARKS.md change 1); sha256sum when the host has no working
# openssl. Chosen at the first hash: the check hashes nothing.
SHA256_TOOL=""
sha256_tool() {
    if command -v openssl >/dev/null && [ "$(openssl dgst -sha256 -r </dev/null 2>/dev/null)" = "$EMPTY_SHA256 *stdin" ]; then
        SHA256_TOOL="openssl dgst -sha256 -r"
    else
        SHA256_TOOL=sha256sum
    fi
}

# Prints the sha256 of FILE.
sha256_of() {
    local out
    [ -n "$SHA256_TOOL" ] || sha256_tool
    out=$($SHA256_TOOL <"$1") || return 1
    echo "${out%% *}"
}

current_sha() {
    local target
    target=$(readlink "$OPT/current" 2>/dev/null) || return 0
    basename "$target"
}

# ---- Docker Swarm ----

# `docker info`'s Swarm part (JSON) of the running daemon when it takes part in a Swarm; empty
# otherwise (not in a Swarm). Set by read_swarm_info.
SWARM_INFO=""
# The Swarm unlock key (swarmUnlockKey), read from stdin where FORKLIFT_SWARM_UNLOCK is set: a
# manager of an autolocked cluster comes back locked after each engine start (see swarm_unlock).
UNLOCK_KEY=""

# The docker CLI to ask the running daemon with: the current release's, else the host's own.
running_cli() {
    docker_cli "$OPT/current"
}

# Sets SWARM_INFO. A node whose engine cannot tell (stopped, not answering, no docker CLI to ask it
# with) but whose data root holds Swarm state (swarm/docker-state.json, there until the node leaves
# its Swarm) is refused: taken for a plain host, it would be restarted undrained.
read_swarm_info() {
    SWARM_INFO=""
    local cli info member=""
    [ ! -e "$(data_root)/swarm/docker-state.json" ] || member=1
    if ! systemctl is-active --quiet docker.service; then
        [ -z "$member" ] || fatal "its engine is not running, and $(data_root)/swarm says it is a Swarm node: forklift drains a Swarm node through its cluster before its engine restarts, and this one's cannot be asked. Start it (systemctl start docker.service), or take the node out of its Swarm (docker swarm leave); nothing was changed"
        return 0
    fi
    cli=$(running_cli)
    if [ -z "$cli" ]; then
        [ -z "$member" ] || fatal "there is no docker CLI to ask its engine with, and $(data_root)/swarm says it is a Swarm node: it cannot be drained, so it is not restarted; nothing was changed"
        return 0
    fi
    if ! info=$(timeout 20 "$cli" -H unix:///run/docker.sock info --format '{{json .Swarm}}' 2>/dev/null); then
        [ -z "$member" ] ||
            fatal "its engine runs but did not answer \`docker info\` within 20s, and $(data_root)/swarm says it is a Swarm node: it cannot be drained, so it is not restarted; nothing was changed (see \`journalctl -u docker.service\`)"
        return 0
    fi
    case "$info" in *'"LocalNodeState":"active"'* | *'"LocalNodeState":"pending"'* | *'"LocalNodeState":"error"'* | *'"LocalNodeState":"locked"'*) SWARM_INFO=$info ;; esac
}

# Where the engine keeps its state: daemon.json's data-root, else Docker's default. (A Swarm node's
# swarm/docker-state.json there lasts until it leaves its Swarm.)
data_root() {
    local root
    root=$(sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' /etc/docker/daemon.json 2>/dev/null | head -n 1)
    echo "${root:-/var/lib/docker}"
}

# True when the Swarm part SWARM_INFO says this node is a manager.
swarm_manager() {
    [[ "$SWARM_INFO" == *'"ControlAvailable":true'* ]]
}

# The nodes of the cluster as this manager sees them (`docker node ls`), as a JSON array.
swarm_nodes_json() {
    local rows
    rows=$(timeout 20 "$(running_cli)" -H unix:///run/docker.sock node ls --format '{{json .}}' 2>/dev/null | paste -sd, -) || rows=""
    printf '[%s]' "$rows"
}

# Reads the unlock key from stdin, where the local side sends it (FORKLIFT_SWARM_UNLOCK set): the
# first line, before anything else the run reads there. Never in a command line or a message.
read_unlock_key() {
    [ -n "${FORKLIFT_SWARM_UNLOCK:-}" ] || return 0
    IFS= read -r UNLOCK_KEY || true
    # (an empty line: no key, for a worker or a cluster without autolock)
}

# Unlocks the manager whose engine CLI answers, when it came back locked (autolock), with the key
# on the unlock command's stdin. Says why not, and returns 1, when it cannot.
swarm_unlock() {
    local cli=$1 out
    if [ -z "$UNLOCK_KEY" ]; then
        echo "its engine came back locked (the cluster has autolock on) and no unlock key was given (swarmUnlockKey)"
        return 1
    fi
    if ! out=$(printf '%s\n' "$UNLOCK_KEY" | timeout 30 "$cli" -H unix:///run/docker.sock swarm unlock 2>&1); then
        echo "its engine came back locked and \`docker swarm unlock\` refused the key (swarmUnlockKey: rotated since?): ${out//$UNLOCK_KEY/(key)}"
        return 1
    fi
    info "unlocked its Swarm manager (autolock)" 2>&3
}

# Waits until the node, its engine restarted, is back in its Swarm as its cluster sees it: active
# (unlocked first where it came back locked); a manager Ready and reachable, with a leader elected.
# CLI: the docker CLI to ask with. Returns 1 naming what it lacks.
wait_swarm_rejoined() {
    local cli=$1 info deadline me tried=""
    deadline=$((SECONDS + SWARM_TIMEOUT))
    while :; do
        info=$(timeout 20 "$cli" -H unix:///run/docker.sock info --format '{{json .Swarm}}' 2>/dev/null || true)
        if [[ "$info" == *'"LocalNodeState":"locked"'* ]] && [ -z "$tried" ]; then
            tried=1
            swarm_unlock "$cli" || return 1
            continue
        fi
        if [[ "$info" == *'"LocalNodeState":"active"'* ]]; then
            # (a worker is active once a manager's dispatcher took it in: its cluster sees it Ready)
            if ! swarm_manager; then return 0; fi
            me=$(timeout 20 "$cli" -H unix:///run/docker.sock node inspect self --format '{{.Status.State}} {{.ManagerStatus.Reachability}}' 2>/dev/null || true)
            if [[ "$info" == *'"ControlAvailable":true'* ]] && [ "$me" = "ready reachable" ] &&
                timeout 20 "$cli" -H unix:///run/docker.sock node ls --format '{{.ManagerStatus}}' 2>/dev/null | grep -qx Leader; then
                return 0
            fi
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "the node was not back in its Swarm within ${SWARM_TIMEOUT}s (swarmNodeTimeout; its state: ${info:-no answer}${me:+, as its cluster sees it: $me})"
            return 1
        fi
        sleep 1
    done
}

# A copy of the node's Swarm state (<data-root>/swarm), taken while its engine is stopped before
# the switch to a new release: a rollback restores it where the old engine cannot come back with
# what the new one left (a Raft format it cannot read).
copy_swarm_state() {
    local root
    root=$(data_root)
    [ -d "$root/swarm" ] || return 0
    rm -rf "$SWARM_COPY.tmp"
    cp -a "$root/swarm" "$SWARM_COPY.tmp"
    rm -rf "$SWARM_COPY"
    mv "$SWARM_COPY.tmp" "$SWARM_COPY"
}

# Where copy_swarm_state keeps its copy (a first install's rollback, which removes $STATE, moves it).
SWARM_COPY=$STATE/swarm-state

# After a rollback's restart, whether the host is healthy on what it went back to: Docker answers
# with release PREV ("": the host's own Docker) and, on a Swarm node, the node is back in its
# cluster. Where not, and the Swarm state was copied before the switch (a newer engine may have left
# it in a form the old one cannot start or rejoin with), the copy is put back and the engine started
# once more. Prints what it found ("" for a plain host); returns 1 when it is not healthy.
rolled_back_healthy() {
    local prev=$1 reason cli root
    cli=$(if [ -n "$prev" ]; then docker_cli "$OPT/releases/$prev"; else command -v docker || true; fi)
    if reason=$(answers "$prev" "$cli") && { [ -z "$SWARM_INFO" ] || reason=$(wait_swarm_rejoined "$cli"); }; then
        [ -z "$SWARM_INFO" ] || echo "back in its Swarm"
        return 0
    fi
    if [ -z "$SWARM_INFO" ] || [ ! -d "$SWARM_COPY" ]; then
        echo "$reason"
        return 1
    fi
    warn "the rolled-back engine is not back in its Swarm ($reason): putting back its Swarm state as it was before the switch" 2>&3
    root=$(data_root)
    systemctl stop docker.service docker.socket || true
    rm -rf "$root/swarm"
    cp -a "$SWARM_COPY" "$root/swarm"
    systemctl reset-failed docker.service docker.socket 2>/dev/null || true
    timeout "$VERIFY_TIMEOUT" systemctl start docker.service || true
    if reason=$(answers "$prev" "$cli") && reason=$(wait_swarm_rejoined "$cli"); then
        echo "back in its Swarm, with its Swarm state as it was before the switch"
        return 0
    fi
    echo "not back in its Swarm, not even with its Swarm state as it was before the switch: $reason"
    return 1
}

# Whether Docker answers: release PREV's dockerd (verify_release), or with PREV "", the host's own
# (docker version through the socket, with the CLI CLI, within VERIFY_TIMEOUT).
answers() {
    if [ -n "$1" ]; then
        # (an explicit status: a bare `return` in a function run from the ERR trap (roll_back)
        # returns the status of the command that fired the trap)
        verify_release "$1"
        return $?
    fi
    [ -n "$2" ] || { echo "no docker CLI to ask its engine with"; return 1; }
    local deadline=$((SECONDS + VERIFY_TIMEOUT))
    until "$2" -H unix:///run/docker.sock version --format '{{.Server.Version}}' >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "docker did not answer within ${VERIFY_TIMEOUT}s"; return 1; }
        sleep 0.2
    done
}

# Decodes the desired managed files into $STAGE/files (absent name = not managed).
stage_files() {
    STAGE=$(mktemp -d /tmp/forklift-stage.XXXXXX)
    mkdir -p "$STAGE/files"
    local name var
    for name in $MANAGED_NAMES; do
        case "$name" in
            docker.service) var=${FORKLIFT_DOCKER_SERVICE_B64:-} ;;
            docker.socket) var=${FORKLIFT_DOCKER_SOCKET_B64:-} ;;
            containerd.service) var=${FORKLIFT_CONTAINERD_SERVICE_B64:-} ;;
            daemon.json) var=${FORKLIFT_DAEMON_JSON_B64:-} ;;
        esac
        if [ "$name" = daemon.json ] && [ -n "${FORKLIFT_DAEMON_JSON_SWARM_B64:-}" ] && [ -n "$SWARM_INFO" ]; then
            var=$FORKLIFT_DAEMON_JSON_SWARM_B64
            info "a Swarm node: live-restore is left out of daemon.json (dockerd refuses swarm mode with it; this node's containers restart with its engine)"
        fi
        [ -z "$var" ] || printf '%s' "$var" | base64 -d >"$STAGE/files/$name"
    done
    if [ ! -s "$STAGE/files/docker.service" ] || [ ! -s "$STAGE/files/docker.socket" ]; then
        fatal "docker.service and docker.socket must be given"
    fi
}

# True when the release, every managed file and the running daemon already match.
up_to_date() {
    [ "$(current_sha)" = "$FORKLIFT_SHA256" ] || return 1
    [ -f "$STATE/installed" ] || return 1
    local name path
    for name in $MANAGED_NAMES; do
        path=$(managed_path "$name")
        if [ -f "$STAGE/files/$name" ]; then
            cmp -s "$STAGE/files/$name" "$path" || return 1
        elif owns "$path"; then
            return 1
        fi
    done
    links_match "$OPT/releases/$FORKLIFT_SHA256" || return 1
    systemctl is-enabled --quiet docker.socket && systemctl is-active --quiet docker.socket || return 1
    if systemctl is-active --quiet docker.service; then
        running_dockerd_matches "$OPT/releases/$FORKLIFT_SHA256" || return 1
    fi
}

links_match() {
    local link links targets
    links=$(release_links "$1")
    # shellcheck disable=SC2086 # one path per word
    targets=$(link_targets $links)
    for link in $links; do
        points_to_current "$link" "$targets" || return 1
    done
}

# Prints "LINK -> TARGET" for each LINK that is a symlink: one process for all of them.
link_targets() {
    [ "$#" -gt 0 ] || return 0
    find "$@" -maxdepth 0 -type l -printf '%p -> %l\n' 2>/dev/null || true
}

# True when link_targets' output TARGETS has LINK pointing at the same name in the current release.
points_to_current() {
    local nl=$'\n'
    [[ "$nl$2$nl" == *"$nl$1 -> $OPT/current/${1##*/}$nl"* ]]
}

# The standard PATH directories other than the install dir, resolved (merged /usr: /sbin is
# /usr/sbin) and each once. One readlink for all of them: release_links needs them for each binary.
shadow_dirs() {
    local dir real seen="" dirs=("$INSTALL_DIR")
    for dir in $PATH_DIRS; do
        if [ -d "$dir" ]; then dirs+=("$dir"); fi
    done
    while read -r real; do
        case "$seen" in *" $real "*) continue ;; esac
        # the first line is the install dir's: it is never a shadow of itself
        [ -z "$seen" ] || echo "$real"
        seen="$seen $real "
    done < <(readlink -m "${dirs[@]}")
}
# shadow_dirs of this run, once computed (the directories do not change while the script runs)
SHADOW_DIRS=""

# The name of BIN in the resolved directory DIR that its package uses, if any alias of DIR is the
# one dpkg knows (a package may ship /sbin/x on a merged-/usr host); else DIR/BIN.
shadow_path() {
    local real=$1 bin=$2 dir
    if ! dpkg_owned "$real/$bin"; then
        for dir in $PATH_DIRS; do
            [ "$dir" != "$real" ] || continue
            [ "$(readlink -f "$dir")" = "$real" ] || continue
            if dpkg_owned "$dir/$bin"; then
                echo "$dir/$bin"
                return 0
            fi
        done
    fi
    echo "$real/$bin"
}

# Every link release RELEASE needs: <install dir>/<bin>, and <dir>/<bin> for each other PATH
# directory that has a same-named file (Debian's /usr/sbin/dockerd comes before /usr/bin in
# root's PATH: an admin's `dockerd` must be the release's too).
release_links() {
    local bin dir
    [ -n "$SHADOW_DIRS" ] || SHADOW_DIRS=$(shadow_dirs)
    for bin in $(release_binaries "$1"); do
        echo "$INSTALL_DIR/$bin"
        for dir in $SHADOW_DIRS; do
            if [ -f "$dir/$bin" ] || [ -L "$dir/$bin" ]; then
                shadow_path "$dir" "$bin"
            elif owns "$dir/$bin"; then
                echo "$dir/$bin"
            fi
        done
    done
}

# Brings the release's tgz into a staging file and checks its sha256, unless the release is
# unpacked here already (kept for rollback, staged by the check, or reinstalled): then stdin is
# not read at all. After the script, stdin has one header line: "tgz" and the tgz's bytes (copied
# through the machine of `pulumi up`), "url URL" (fetched from the artifact store: a URL signed for
# this object alone, passed here so that no command line and no log shows it), "ask" (the
# check staged the release, so the install sends nothing: a host that lost it since exits
# EXIT_SEND_ARTIFACT, changing nothing, and is run again with the artifact: a store's URL is
# signed by each install's own process, loading the AWS SDK, so only for a host that reads it;
# see BENCHMARKS.md) or "none".
# Runs before the lock is taken, so that a copy stalled on a cut network holds no other run up.
receive_artifact() {
    if [ -d "$OPT/releases/$FORKLIFT_SHA256" ]; then
        info "release $FORKLIFT_SHA256 is unpacked here already: nothing to copy"
        return 0
    fi
    # (named after this run's PID: an uninstall while this run waits for the lock leaves it alone)
    ARTIFACT=$(mktemp "/var/tmp/forklift-docker-$FORKLIFT_SHA256.$$.XXXXXX.tgz")
    local header="" got
    IFS= read -r header || true
    case "$header" in
        tgz) cat >"$ARTIFACT" ;;
        "url "*) fetch_url "${header#url }" "$ARTIFACT" ;;
        ask)
            info "release $FORKLIFT_SHA256 is not unpacked here (the check staged it: removed since?): asking for it; nothing was changed"
            exit "$EXIT_SEND_ARTIFACT"
            ;;
        *) fail artifact-missing "" "no artifact arrived, and release $FORKLIFT_SHA256 is not unpacked here; nothing was changed" ;;
    esac
    got=$(sha256_of "$ARTIFACT")
    [ "$got" != "$EMPTY_SHA256" ] || fail artifact-missing "" "no artifact arrived, and release $FORKLIFT_SHA256 is not unpacked here; nothing was changed"
    [ "$got" = "$FORKLIFT_SHA256" ] || fail artifact-mismatch "\"got\":\"$got\"" "the artifact that arrived has sha256 $got, expected $FORKLIFT_SHA256 (corrupted on the way, or not the build's?); nothing was changed: run \`pulumi up\` again to copy it anew"
    info "received $(stat -c %s "$ARTIFACT") bytes${header:+ (${header%% *})}, sha256 verified"
}

# Fetches URL into FILE with curl (or wget), failing with the store's answer. A presigned URL's
# signature is a credential for the object: the URL reaches curl or wget on its stdin (no process
# list shows it), and the messages name it without its query.
fetch_url() {
    local url=$1 file=$2 shown=${1%%\?*} code rc=0
    if command -v curl >/dev/null; then
        code=$(printf 'url = "%s"\n' "$url" | curl -sS --retry 3 --retry-connrefused --connect-timeout 10 -o "$file" -w '%{http_code}' -K - 2>"$file.err") || rc=$?
        if [ "$code" = 404 ]; then
            fail store-no-object "" "could not fetch the artifact from $shown: $(fetch_failure 404 ""); nothing was changed"
        elif [ "$rc" != 0 ] || [ "$code" != 200 ]; then
            fatal "could not fetch the artifact from $shown: $(fetch_failure "$code" "$(head -c 300 "$file.err" "$file" 2>/dev/null | tr '\n' ' ')"); nothing was changed"
        fi
        rm -f "$file.err"
    elif command -v wget >/dev/null; then
        printf '%s\n' "$url" | wget -q -O "$file" -i - || fatal "could not fetch the artifact from $shown (wget exit status $?); nothing was changed"
    else
        fatal "the artifact is fetched from $shown, and this host has neither curl nor wget: install curl; nothing was changed"
    fi
}

# What an HTTP CODE of a store means for the fetch (BODY: what it said).
fetch_failure() {
    case "$1" in
        403) echo "HTTP 403: the signed URL expired, or does not grant this object (the store said: $2)" ;;
        404) echo "HTTP 404: the store has no such object (was it uploaded, or has it expired?)" ;;
        000) echo "no answer from the store (${2:-unreachable from this host})" ;;
        *) echo "HTTP $1: $2" ;;
    esac
}

# Unpacks the received artifact into releases/<sha> (once), checking that it is a Docker release.
unpack_release() {
    local dest="$OPT/releases/$FORKLIFT_SHA256" tmp
    [ -d "$dest" ] && return 0
    mkdir -p "$OPT/releases"
    tmp="$OPT/releases/.$FORKLIFT_SHA256.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp/unpack"
    tar -xzf "$ARTIFACT" -C "$tmp/unpack" || fatal "cannot unpack the artifact"
    [ -f "$tmp/unpack/docker/dockerd" ] || fatal "artifact has no docker/dockerd (expected the static docker/ layout)"
    find "$tmp/unpack/docker" -mindepth 1 -maxdepth 1 -type f -exec mv -t "$tmp" {} +
    rm -rf "$tmp/unpack"
    chmod 0755 "$tmp"
    [ -x "$tmp/dockerd" ] || fatal "docker/dockerd in the artifact is not executable"
    mv -T "$tmp" "$dest"
    info "unpacked release $FORKLIFT_SHA256 ($(release_binaries "$dest" | tr '\n' ' '))"
}

# Remembers whether distro units were enabled/active, so uninstall can bring them back.
record_pre_state() {
    [ -f "$STATE/pre-state" ] && return 0
    mkdir -p "$STATE"
    local unit enabled active
    : >"$STATE/pre-state.tmp"
    for unit in containerd.service docker.socket docker.service; do
        enabled=$(systemctl is-enabled "$unit" 2>/dev/null || true)
        active=$(systemctl is-active "$unit" 2>/dev/null || true)
        echo "$unit ${enabled:-unknown} ${active:-unknown}" >>"$STATE/pre-state.tmp"
    done
    getent group docker >/dev/null || echo "group-created" >>"$STATE/pre-state.tmp"
    record_pre_traces >"$STATE/pre-traces"
    mv -f "$STATE/pre-state.tmp" "$STATE/pre-state"
}

# ---- Docker's runtime traces: what a daemon leaves behind that no package or unit file owns ----

# TRACE_PATHS with their directories resolved (/var/run is /run), each once.
trace_paths() {
    local path real seen=" "
    for path in $TRACE_PATHS; do
        real="$(readlink -m "$(dirname "$path")")/$(basename "$path")"
        case "$seen" in *" $real "*) continue ;; esac
        seen="$seen$real "
        echo "$real"
    done
}

# Bridges a Docker daemon creates: docker0 and one br-<network id> per user network.
docker_links() {
    ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true
}

# The iptables commands and tables present on this host, as "CMD TABLE" lines.
iptables_tables() {
    local cmd table
    for cmd in iptables ip6tables; do
        command -v "$cmd" >/dev/null || continue
        for table in filter nat mangle raw; do
            "$cmd" -t "$table" -S >/dev/null 2>&1 && echo "$cmd $table"
        done
    done
    return 0
}

# Prints what a Docker daemon leaves behind as it is before the first install: each trace path
# (absent, present, or empty: a directory with nothing but lost+found, e.g. a mount point), the
# Docker bridges, whether each iptables table has DOCKER chains, FORWARD policies, ip_forward.
record_pre_traces() {
    local path cmd table link
    for path in $(trace_paths); do
        if [ -d "$path" ] && [ ! -L "$path" ]; then
            if [ -z "$(find "$path" -mindepth 1 -maxdepth 1 ! -name lost+found -print -quit)" ]; then
                echo "path $path empty $(stat -c %a:%u:%g "$path")"
            else
                echo "path $path present"
            fi
        elif [ -e "$path" ] || [ -L "$path" ]; then
            echo "path $path present"
        else
            echo "path $path absent"
        fi
    done
    for link in $(docker_links); do echo "link $link present"; done
    while read -r cmd table; do
        if "$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {found = 1} END {exit !found}'; then
            echo "chains $cmd $table present"
        else
            echo "chains $cmd $table absent"
        fi
        [ "$table" != filter ] || echo "policy $cmd FORWARD $("$cmd" -S FORWARD | awk '$1 == "-P" {print $3; exit}')"
    done < <(iptables_tables)
    echo "sysctl ip_forward $(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo unknown)"
}

# True when the trace path PATH was in state STATE (absent, empty, present) before the first install.
trace_was() {
    awk -v p="$1" -v s="$2" '$1 == "path" && $2 == p && $3 == s {found = 1} END {exit !found}' "$STATE/pre-traces" 2>/dev/null
}

# True when something is mounted below PATH (a container still running): it must stay.
mounted_below() {
    awk -v p="$1/" 'index($5, p) == 1 {found = 1} END {exit !found}' /proc/self/mountinfo
}

# With no Docker data before forklift, nothing runs this daemon's containers after the uninstall:
# stop them while the daemon answers (live-restore would leave them running on removed files).
stop_containers_without_future() {
    trace_was /var/lib/docker absent || trace_was /var/lib/docker empty || return 0
    systemctl is-active --quiet docker.service || return 0
    local cli ids
    cli=$(docker_cli "$OPT/current")
    [ -n "$cli" ] || return 0
    ids=$(timeout "$VERIFY_TIMEOUT" "$cli" -H unix:///run/docker.sock ps -q 2>/dev/null) || return 0
    [ -n "$ids" ] || return 0
    info "stopping $(wc -w <<<"$ids") container(s): the host had no Docker before forklift"
    # shellcheck disable=SC2086 # one id per word
    timeout $((VERIFY_TIMEOUT + 30)) "$cli" -H unix:///run/docker.sock stop $ids >/dev/null || warn "could not stop every container"
}

# Removes the Docker bridges, iptables chains and rules that were not there before the first install.
remove_network_traces() {
    local link ifaces="" cmd table chain rules rule old now
    for link in $(docker_links); do
        grep -qxF "link $link present" "$STATE/pre-traces" && continue
        ifaces="$ifaces${ifaces:+|}$link"
    done
    while read -r cmd table; do
        grep -qxF "chains $cmd $table absent" "$STATE/pre-traces" || continue
        # rules in the built-in chains that jump to Docker's chains or name its bridges
        rules=$("$cmd" -t "$table" -S | awk -v ifs="$ifaces" '
            $1 != "-A" || $2 ~ /^DOCKER/ { next }
            { for (i = 3; i < NF; i++) {
                if (($i == "-j" || $i == "-g") && $(i + 1) ~ /^DOCKER/) { print; next }
                if (ifs != "" && ($i == "-i" || $i == "-o") && $(i + 1) ~ ("^(" ifs ")$")) { print; next } } }') || rules=""
        while read -r rule; do
            [ -n "$rule" ] || continue
            # xargs splits the rule as iptables -S quoted it
            printf -- '-D %s\n' "${rule#-A }" | xargs "$cmd" -t "$table" || warn "cannot delete $cmd -t $table rule: $rule"
        done <<<"$rules"
        for chain in $("$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {print $2}'); do
            "$cmd" -t "$table" -F "$chain" || warn "cannot flush $cmd -t $table $chain"
        done
        for chain in $("$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {print $2}'); do
            "$cmd" -t "$table" -X "$chain" || warn "cannot delete $cmd -t $table $chain"
        done
        if [ "$table" = filter ]; then
            old=$(awk -v c="$cmd" '$1 == "policy" && $2 == c {print $4}' "$STATE/pre-traces")
            now=$("$cmd" -S FORWARD | awk '$1 == "-P" {print $3; exit}') || now=""
            [ -z "$old" ] || [ "$old" = "$now" ] || "$cmd" -P FORWARD "$old" || warn "cannot reset the $cmd FORWARD policy"
        fi
    done < <(iptables_tables)
    for link in ${ifaces//|/ }; do
        ip link delete "$link" || warn "cannot delete link $link"
    done
    if grep -qxF "chains iptables filter absent" "$STATE/pre-traces"; then
        old=$(awk '$1 == "sysctl" && $2 == "ip_forward" {print $3}' "$STATE/pre-traces")
        now=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || true)
        if [ "$old" = 0 ] && [ "$now" = 1 ]; then
            echo 0 2>/dev/null >/proc/sys/net/ipv4/ip_forward || warn "cannot turn ip_forward back off"
        fi
    fi
}

# Removes the trace paths that were not there before the first install and empties the
# directories that were empty; data that was there before (a distro Docker's) is never touched.
remove_path_traces() {
    local kind path state meta
    while read -r kind path state meta; do
        [ "$kind" = path ] || continue
        case "$state" in
            absent) [ -e "$path" ] || [ -L "$path" ] || continue ;;
            empty) [ -d "$path" ] || continue ;;
            *) continue ;;
        esac
        if mounted_below "$path"; then
            warn "leaving $path: something is still mounted below it"
            continue
        fi
        if [ -e "$path/swarm/docker-state.json" ]; then
            # a Swarm member's state (its identity, certificates, a manager's Raft log) is never
            # removed: a later Docker on the host comes back into its cluster with it
            find "$path" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name swarm -exec rm -rf --one-file-system {} +
            info "kept $path/swarm: the node is still a member of its Swarm (\`docker swarm leave\` on it, \`docker node rm\` on a manager, to take it out)"
        elif [ "$state" = absent ]; then
            rm -rf --one-file-system "$path"
        else
            find "$path" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf --one-file-system {} +
            if ! { chmod "${meta%%:*}" "$path" && chown "${meta#*:}" "$path"; }; then
                warn "cannot reset the mode and owner of $path"
            fi
        fi
    done <"$STATE/pre-traces"
}

# Removes what the daemon left that was not there before the first install (daemon stopped).
remove_traces() {
    [ -f "$STATE/pre-traces" ] || return 0
    remove_network_traces
    remove_path_traces
}

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

# Remembers which stack resource installed here: a renamed or duplicated entry's delete must not
# uninstall what another resource now owns, and another stack must not take the host over.
record_owner() {
    [ -z "${FORKLIFT_OWNER:-}" ] || printf '%s\n' "$FORKLIFT_OWNER" >"$STATE/owner"
    [ -z "${FORKLIFT_STACK_ID:-}" ] || printf '%s\n' "$FORKLIFT_STACK_ID" >"$STATE/stack-id"
}

# Prints who owns this host when it is another stack than the caller's (nothing otherwise). A
# release recorded without a stack identity (installed before forklift had one) belongs to the
# stack of the same project/stack name.
other_owner() {
    [ -n "${FORKLIFT_STACK_ID:-}" ] || return 0
    local owner id
    owner=$(cat "$STATE/owner" 2>/dev/null || true)
    id=$(cat "$STATE/stack-id" 2>/dev/null || true)
    [ -n "$owner$id" ] || return 0
    if [ -n "$id" ]; then
        [ "$id" != "$FORKLIFT_STACK_ID" ] || return 0
    else
        [ "${owner%/*}" != "${FORKLIFT_OWNER%/*}" ] || return 0
    fi
    printf '%s (stack identity %s)' "${owner%/*}" "${id:-none}"
}

# Refuses, before anything changes, a host that another stack rolled a release out to.
check_owner() {
    local other
    other=$(other_owner)
    [ -z "$other" ] || fatal "this host is managed by another stack: $other; this stack is ${FORKLIFT_OWNER%/*} (stack identity $FORKLIFT_STACK_ID). Nothing was changed. Take the host out of one stack's config, or run \`pulumi destroy\` in the owning stack; if that stack is gone for good, hand the host over with \`sudo rm $STATE/owner $STATE/stack-id\` on it"
}

# Refuses, naming the cause, a host that cannot take the release: no systemd, another stack's, or
# too little room for it (none is needed where it is unpacked already). Needs the lock.
check_host() {
    [ -d /run/systemd/system ] || fatal "systemd is not running as init (forklift runs Docker under systemd)"
    check_owner
    [ -n "${FORKLIFT_NEED_KIB:-}" ] || return 0
    [ ! -d "$OPT/releases/${FORKLIFT_SHA256:-none}" ] || return 0
    local dir free
    for dir in /opt /var/tmp; do
        free=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
        [ "$free" -ge "$FORKLIFT_NEED_KIB" ] || fatal "only $((free / 1024)) MiB free in $dir, the release needs about $((FORKLIFT_NEED_KIB / 1024)) MiB"
    done
}

# What the check found, as one JSON line: whether the release is unpacked here, and whether this
# run received a copy of it.
facts_json() {
    local release=absent
    [ ! -d "$OPT/releases/${FORKLIFT_SHA256:-none}" ] || release=unpacked
    local swarm=null nodes=""
    read_swarm_info
    if [ -n "$SWARM_INFO" ]; then
        swarm=$SWARM_INFO
        ! swarm_manager || nodes=",\"nodes\":$(swarm_nodes_json)"
    fi
    local current="" version=""
    if [ -f "$STATE/installed" ]; then
        current=$(sed -n 's/^sha256=//p' "$STATE/installed")
        version=$(sed -n 's/^version=//p' "$STATE/installed")
    fi
    # (whether the release installed has passed a soak: a rollout stopped during one soaks it again)
    local soaked=false
    [ -z "$current" ] || [ "$(cat "$STATE/soaked" 2>/dev/null || true)" != "$current" ] || soaked=true
    printf '{"host":"%s","release":"%s","copied":%s,"current":"%s","currentVersion":"%s","soaked":%s,"swarm":%s%s}\n' "$HOST_NAME" "$release" "$([ -n "$ARTIFACT" ] && echo true || echo false)" "$current" "$version" "$soaked" "$swarm" "$nodes"
}

do_check() {
    require_tools
    take_lock
    check_host
    facts_json
}

# The check, then the release brought here (from stdin) and unpacked, before any host of the
# rollout changes: the batches then only switch.
do_stage() {
    require_tools
    sha256_tool
    # before the copy, so that a host that cannot take it receives none; the owner again under
    # the lock, where it counts
    check_host
    receive_artifact
    take_lock
    check_owner
    unpack_release
    facts_json
}

# Keeps the current and previous releases, removes older ones.
prune_releases() {
    local keep_prev=$1 dir
    for dir in "$OPT"/releases/*; do
        [ -d "$dir" ] || continue
        case "${dir##*/}" in "$FORKLIFT_SHA256" | "$keep_prev") ;; *) rm -rf "$dir" ;; esac
    done
}

# the background job hashing the new release's dockerd for the status line, if any
DOCKERD_SHA_JOB=""

status_json() {
    local sha version="" dockerd_sha="" active
    sha=$(current_sha)
    [ ! -f "$STATE/installed" ] || version=$(sed -n 's/^version=//p' "$STATE/installed")
    active=$(systemctl is-active docker.service 2>/dev/null || true)
    if [ -n "$sha" ] && [ -f "$OPT/releases/$sha/dockerd" ]; then
        # hashed already, while Docker restarted (see do_install)
        if [ "$sha" = "${FORKLIFT_SHA256:-}" ] && [ -n "$DOCKERD_SHA_JOB" ] && wait "$DOCKERD_SHA_JOB" 2>/dev/null; then
            dockerd_sha=$(<"$STAGE/dockerd.sha256")
        fi
        [[ "$dockerd_sha" =~ ^[0-9a-f]{64}$ ]] || dockerd_sha=$(sha256_of "$OPT/releases/$sha/dockerd")
    fi
    local engine=""
    [ "$active" != active ] || engine=$(timeout 20 "$(running_cli)" -H unix:///run/docker.sock version --format '{{.Server.Version}}' 2>/dev/null || true)
    printf '{"host":"%s","sha256":"%s","version":"%s","dockerdSha256":"%s","dockerService":"%s","engineVersion":"%s","changed":%s,"swarm":%s}\n' \
        "$HOST_NAME" "$sha" "$version" "$dockerd_sha" "$active" "$engine" "${1:-false}" "${SWARM_INFO:-null}"
}

# Puts the host back on release PREV (or on what was there before forklift) after a failed install,
# then fails naming the cause; the status line on stdout says what the host runs now.
roll_back() {
    local prev=$1 cause=$2 log health
    ROLLBACK_ARMED=""
    log=$(daemon_log_tail)
    # (a release was installed before: never an uninstall, whatever is missing)
    if [ -n "$prev" ]; then
        warn "release $FORKLIFT_SHA256 failed ($cause); rolling back to $prev"
        # each step goes on whatever the one before did: the verify below says whether it worked
        switch_to "$prev" || warn "switching back to $prev failed"
        if [ -d "$STATE/applied" ]; then apply_files "$STATE/applied" || warn "putting back the files of $prev failed"; fi
        restart_docker rollback >&2 || true
        # a rollback counts only where Docker answers with the old release and, on a Swarm node,
        # the node is back in its cluster
        if health=$(rolled_back_healthy "$prev"); then
            [ "$prev" = "$FORKLIFT_SHA256" ] || rm -rf "${OPT:?}/releases/$FORKLIFT_SHA256"
            status_json false || true
            fatal "new release $FORKLIFT_SHA256 failed: $cause. Rolled back to release $prev; Docker is answering${health:+; $health}. Daemon log:
$log"
        fi
        printf '{"error":"rollback-failed"}\n' || true
        status_json false || true
        fatal "new release $FORKLIFT_SHA256 failed: $cause; rollback to $prev also failed: $health. Daemon log:
$log"
    fi
    warn "first install of $FORKLIFT_SHA256 failed ($cause); restoring the host's previous Docker"
    # (the uninstall removes $STATE: the copy of the Swarm state goes aside for the rejoin)
    if [ -d "$SWARM_COPY" ]; then
        mv "$SWARM_COPY" "/var/tmp/forklift-swarm-state.$$"
        SWARM_COPY=/var/tmp/forklift-swarm-state.$$
    fi
    do_uninstall
    health=""
    if [ -n "$SWARM_INFO" ] && ! systemctl is-enabled --quiet docker.service 2>/dev/null && ! systemctl is-active --quiet docker.service; then
        health="given back to a host without a Docker of its own: out of its Swarm until one runs"
    elif [ -n "$SWARM_INFO" ] && ! health=$(rolled_back_healthy ""); then
        rm -rf "/var/tmp/forklift-swarm-state.$$"
        status_json false || true
        fatal "new release $FORKLIFT_SHA256 failed: $cause. Restored what was on the host before forklift, but $health. Daemon log:
$log"
    fi
    rm -rf "/var/tmp/forklift-swarm-state.$$"
    status_json false || true
    fatal "new release $FORKLIFT_SHA256 failed: $cause. Restored what was on the host before forklift${health:+; $health}. Daemon log:
$log"
}

# A release without containerd replacing one with it, on a host with no containerd of its own:
# forklift's containerd stops, dockerd starts one of its own, and the containers of the old one
# would run on with nothing managing them (live-restore cannot carry them across). Refuses while
# there are any, before anything changes.
check_containerd_handover() {
    owns /etc/systemd/system/containerd.service || return 0
    [ ! -f "$STAGE/files/containerd.service" ] || return 0
    ! unit_was containerd.service active || return 0
    systemctl is-active --quiet containerd.service || return 0
    local ctr=$OPT/current/ctr running
    [ -x "$ctr" ] || ctr=ctr
    running=$("$ctr" -n moby tasks ls -q 2>/dev/null | grep -c . || true)
    [ "$running" -eq 0 ] || fatal "the new release ships no containerd and this host has none of its own: the $running running container(s) of forklift's containerd would be left running with nothing managing them. Stop them (docker stop), then run \`pulumi up\` again; nothing was changed"
}

# Ends a guarded install or uninstall on a Swarm node without a change: exit 75 with the node's
# Swarm state on stdout, for the local side to drain it first.
drain_first() {
    info "a Swarm node: its tasks must move away before its engine restarts; nothing was changed"
    printf '{"host":"%s","drainFirst":true,"swarm":%s}\n' "$HOST_NAME" "$SWARM_INFO"
    exit "$EXIT_DRAIN_FIRST"
}

# MODE: install, or install-drained (a Swarm node drained for it)
do_install() {
    local mode=$1
    require_tools
    # once here: the hashes below run in subshells, which would each choose again
    sha256_tool
    # before the copy, so that a host another stack owns receives none; and again under the lock,
    # where it counts: another stack's install may have finished in between
    check_owner
    read_swarm_info
    read_unlock_key
    stage_files
    receive_artifact
    take_lock
    check_owner
    SHADOW_DIRS=$(shadow_dirs)
    if up_to_date; then
        info "release $FORKLIFT_SHA256 already installed and running; nothing to do"
        install_self
        record_owner
        status_json false
        return 0
    fi
    if [ -n "$SWARM_INFO" ] && [ "$mode" = install ]; then
        unpack_release
        drain_first
    fi
    check_containerd_handover
    local prev reason
    # the last release that verified, not whatever an interrupted run left in `current`
    prev=$(sed -n 's/^sha256=//p' "$STATE/installed" 2>/dev/null || true)
    # the HUP (and the second it waits) only where the daemon may lack the file's settings
    local reload=reload
    if systemctl is-active --quiet docker.service && daemon_read_config; then reload=no-reload; fi
    unpack_release
    # the status line's dockerd sha256, hashed while Docker restarts (the release's files do not
    # change once unpacked); status_json computes it itself when this fails
    (sha256_of "$OPT/releases/$FORKLIFT_SHA256/dockerd" >"$STAGE/dockerd.sha256") 2>/dev/null &
    DOCKERD_SHA_JOB=$!
    record_pre_state
    # from the switch until the release is recorded as installed, any failure rolls the host back
    # (see on_error): it runs the old release or the new one, never a mix
    ROLLBACK_TO=$prev
    ROLLBACK_ARMED=1
    switch_to "$FORKLIFT_SHA256"
    apply_files "$STAGE/files"
    ensure_group
    if ! reason=$(restart_docker "$reload" 2>&1); then
        roll_back "$prev" "systemd could not start the new daemon: ${reason:-no output}"
    fi
    if ! reason=$(verify_release "$FORKLIFT_SHA256"); then
        roll_back "$prev" "$reason"
    fi
    if [ -n "$SWARM_INFO" ] && ! reason=$(wait_swarm_rejoined "$(docker_cli "$OPT/releases/$FORKLIFT_SHA256")"); then
        roll_back "$prev" "$reason"
    fi
    if ! reason=$(run_health_check); then
        roll_back "$prev" "$reason"
    fi
    release_stale_links
    install_self
    record_owner
    commit_release "$FORKLIFT_SHA256" "${FORKLIFT_VERSION:-}" "$STAGE/files"
    ROLLBACK_ARMED=""
    prune_releases "$prev" || warn "could not remove older releases from $OPT/releases"
    info "release $FORKLIFT_SHA256 (${FORKLIFT_VERSION:-}) is running"
    status_json true
}

# The commit point: release SHA (VERSION) with the managed files of directory FILES is the one to
# come back to; the one before it, and its files, are kept for a rollback after the commit (a
# failed soak). Each record is whole at every moment: a copy, then renames.
commit_release() {
    local sha=$1 version=$2 files=$3
    rm -rf "$STATE/applied.new"
    cp -a "$files" "$STATE/applied.new"
    if [ -f "$STATE/installed" ] && [ "$(sed -n 's/^sha256=//p' "$STATE/installed")" != "$sha" ]; then
        cp -f "$STATE/installed" "$STATE/installed.prev.tmp"
        mv -f "$STATE/installed.prev.tmp" "$STATE/installed.prev"
        rm -rf "$STATE/applied.prev"
        [ ! -d "$STATE/applied" ] || mv "$STATE/applied" "$STATE/applied.prev"
    fi
    rm -rf "$STATE/applied"
    mv "$STATE/applied.new" "$STATE/applied"
    printf 'sha256=%s\nversion=%s\n' "$sha" "$version" >"$STATE/installed.tmp"
    mv -f "$STATE/installed.tmp" "$STATE/installed"
    # (a release newly in place has not passed a soak yet)
    rm -f "$STATE/soaked"
}

# Back to the release installed before the current one, after the current one was committed and
# failed its health check since (a soak): switched, its files put back, Docker restarted and
# verified (on a Swarm node, back in its cluster); a host whose first release it was gets back
# what it had before forklift, as a failed first install does. MODE: rollback, or rollback-drained
# (a Swarm node drained for it).
do_rollback() {
    local mode=$1 current prev version
    require_tools
    sha256_tool
    take_lock
    check_owner
    current=$(sed -n 's/^sha256=//p' "$STATE/installed" 2>/dev/null || true)
    [ -n "$current" ] || fatal "no release of forklift's is installed here: nothing to roll back"
    read_swarm_info
    [ -z "$SWARM_INFO" ] || [ "$mode" != rollback ] || drain_first
    read_unlock_key
    FORKLIFT_SHA256=$current
    prev=$(sed -n 's/^sha256=//p' "$STATE/installed.prev" 2>/dev/null || true)
    version=$(sed -n 's/^version=//p' "$STATE/installed.prev" 2>/dev/null || true)
    if [ -z "$prev" ]; then
        warn "release $current was this host's first: giving back what it had before forklift"
        do_uninstall
        status_json true
        return 0
    fi
    [ -d "$OPT/releases/$prev" ] || fatal "release $prev, the one before $current, is no longer unpacked here: cannot roll back"
    local health
    switch_to "$prev"
    [ ! -d "$STATE/applied.prev" ] || apply_files "$STATE/applied.prev"
    restart_docker rollback >&2 || true
    local healthy=1
    health=$(rolled_back_healthy "$prev") || healthy=""
    # the host's records say what its files are now, healthy or not: release PREV
    commit_release "$prev" "$version" "$STATE/applied.prev"
    rm -f "$STATE/installed.prev"
    rm -rf "$STATE/applied.prev"
    if [ -z "$healthy" ]; then
        printf '{"error":"rollback-failed"}\n' || true
        status_json true || true
        fatal "rolled back to release $prev, and it is not healthy: $health. Daemon log:
$(daemon_log_tail)"
    fi
    info "rolled back from release $current to $prev${health:+; $health}"
    status_json true
}

# Removes copies of an artifact left in /var/tmp by runs that are gone (killed before their exit
# trap); a copy of a run that is still on (waiting for the lock) is its own.
remove_stale_copies() {
    local copy pid
    for copy in /var/tmp/forklift-docker-*.tgz; do
        [ -f "$copy" ] || continue
        pid=${copy#/var/tmp/forklift-docker-*.}
        pid=${pid%%.*}
        if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null; then continue; fi
        rm -f "$copy"
    done
}

# Gives back every owned path, reloads systemd and brings back the distro units' previous state.
do_uninstall() {
    stop_containers_without_future
    systemctl stop docker.service docker.socket 2>/dev/null || true
    if owns /etc/systemd/system/containerd.service; then
        systemctl stop containerd.service 2>/dev/null || true
    fi
    systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
    local path unit enabled active
    while read -r path; do
        [ -n "$path" ] && release_path "$path"
    done < <(tac "$STATE/owned.list" 2>/dev/null || true)
    systemctl daemon-reload
    remove_traces
    if [ -f "$STATE/pre-state" ]; then
        while read -r unit enabled active; do
            case "$unit" in group-created) continue ;; esac
            [ "$enabled" != enabled ] || systemctl enable "$unit" >/dev/null 2>&1 || warn "cannot re-enable $unit"
            [ "$active" != active ] || systemctl start "$unit" || warn "cannot restart $unit"
        done <"$STATE/pre-state"
        if grep -qx group-created "$STATE/pre-state"; then groupdel docker 2>/dev/null || true; fi
    fi
    rm -rf "$OPT" "$STATE" "$SELF_DIR"
    remove_stale_copies
    info "uninstalled; the host is as forklift found it"
}

# Set by do_install while the host is switched to a release that is not yet recorded as
# installed; ROLLBACK_TO is the release to go back to ("" for what was there before forklift).
ROLLBACK_ARMED=""
ROLLBACK_TO=""

# The ERR trap: a failing step in a subshell ends that subshell (its caller sees the failure); in
# the script itself it ends the run, rolling the host back first where an install had switched it.
on_error() {
    if [ "$BASHPID" = "$$" ] && [ -n "$ROLLBACK_ARMED" ]; then
        # (inside a trap a failing command would end the script without a word)
        set +e
        roll_back "$ROLLBACK_TO" "failed at line $1: $2"
    fi
    fatal "failed at line $1: $2"
}

main() {
    # a dropped SSH session must not stop an install half-way: no SIGHUP/SIGPIPE death
    trap '' HUP PIPE
    # the script's own stderr, for messages from functions whose output a caller keeps
    exec 3>&2
    # any unexpected failure names the host and the step (errtrace: inside functions too), and
    # rolls the host back when it came after the switch to a new release
    set -E
    trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
    case "${1:-}" in
        install | install-drained) do_install "$1" ;;
        uninstall | uninstall-drained)
            preflight
            local owner other
            owner=$(cat "$STATE/owner" 2>/dev/null || true)
            other=$(other_owner)
            if [ -n "$other" ]; then
                info "not uninstalling: the release here belongs to another stack: $other"
                return 0
            fi
            if [ -n "${FORKLIFT_OWNER:-}" ] && [ -n "$owner" ] && [ "$owner" != "$FORKLIFT_OWNER" ]; then
                info "not uninstalling: the release here now belongs to $owner"
                return 0
            fi
            if [ -f "$STATE/installed" ]; then
                read_swarm_info
                [ -z "$SWARM_INFO" ] || [ "$1" != uninstall ] || drain_first
            fi
            read_unlock_key
            do_uninstall
            # Docker given back: a Swarm node back in its cluster (a host that had none stays out)
            local engine
            engine=$(systemctl is-active docker.service 2>/dev/null || true)
            if [ -n "$SWARM_INFO" ] && [ "$engine" = active ]; then
                local reason
                reason=$(wait_swarm_rejoined "$(command -v docker || true)") || fatal "given back to its Docker, but $reason"
            fi
            # (for the local side of a drained uninstall: whether the node can come back at all)
            [ "$1" != uninstall-drained ] || printf '{"host":"%s","uninstalled":true,"dockerService":"%s"}\n' "$HOST_NAME" "${engine:-inactive}"
            ;;
        status) status_json false ;;
        check) do_check ;;
        stage) do_stage ;;
        health)
            local reason
            reason=$(run_health_check) || fatal "$reason"
            # (the check after a soak: the release now running has passed its soak; a rollout
            # stopped before this line soaks the host again, see soaked_json)
            current_sha >"$STATE/soaked.tmp" && mv -f "$STATE/soaked.tmp" "$STATE/soaked"
            info "its health check passed"
            ;;
        rollback | rollback-drained) do_rollback "$1" ;;
        *) fatal "usage: $0 install|install-drained|uninstall|uninstall-drained|status|check|stage|health|rollback|rollback-drained" ;;
    esac
}

main "$@"
