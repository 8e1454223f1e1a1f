#!/usr/bin/env bash
# forklift-host.sh — install, roll back and uninstall a static Docker release on one host.
#
# Usage:
#   forklift-host.sh install     install the release in FORKLIFT_ARTIFACT (no-op when already in place)
#   forklift-host.sh uninstall   remove everything forklift put on the host and restore what was there
#   forklift-host.sh status      print the installed release as one JSON line
#
# Variables (install):
#   FORKLIFT_HOST             name of the host, used in messages (default: hostname)
#   FORKLIFT_ARTIFACT         path of the docker-<version>.tgz on this host (layout docker/<binaries>)
#   FORKLIFT_SHA256           expected sha256 of the artifact; nothing changes when it differs
#   FORKLIFT_VERSION          version label recorded with the release
#   FORKLIFT_INSTALL_DIR      where the binaries are linked (default /usr/bin)
#   FORKLIFT_DOCKER_SERVICE_B64, FORKLIFT_DOCKER_SOCKET_B64   base64 of the rendered units
#   FORKLIFT_CONTAINERD_SERVICE_B64   base64 of containerd.service, empty when the release has none
#   FORKLIFT_DAEMON_JSON_B64  base64 of /etc/docker/daemon.json, empty to leave the host's file alone
#   FORKLIFT_VERIFY_TIMEOUT   seconds to wait for the new daemon to answer (default 60)
#
# Layout on the host:
#   /opt/forklift/releases/<sha256>/   unpacked binaries of each release (current + previous kept)
#   /opt/forklift/current              symlink to the running release; switching it switches every binary
#   <install dir>/<binary>             symlinks to /opt/forklift/current/<binary>
#   /var/lib/forklift/                 what was there before (backups), what forklift owns, last good files
#   /usr/local/lib/forklift/           a copy of this script, so `pulumi destroy` can uninstall
set -euo pipefail

readonly OPT=/opt/forklift
readonly STATE=/var/lib/forklift
readonly SELF_DIR=/usr/local/lib/forklift
readonly LOCK=/run/lock/forklift.lock
HOST_NAME=${FORKLIFT_HOST:-$(hostname)}
INSTALL_DIR=${FORKLIFT_INSTALL_DIR:-/usr/bin}
VERIFY_TIMEOUT=${FORKLIFT_VERIFY_TIMEOUT:-60}
STAGE=""

info() { printf '[forklift %s] %s\n' "$HOST_NAME" "$*" >&2; }
warn() { printf '[forklift %s] WARN: %s\n' "$HOST_NAME" "$*" >&2; }
fatal() {
    printf '[forklift %s] ERROR: %s\n' "$HOST_NAME" "$*" >&2
    exit 1
}

# Removes the staging directory however the script ends.
cleanup() { [ -z "$STAGE" ] || rm -rf "$STAGE"; }
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
preflight() {
    [ "$(id -u)" = 0 ] || fatal "must run as root (connect as root or a user with passwordless sudo)"
    local tool
    for tool in systemctl tar sha256sum flock install; do
        command -v "$tool" >/dev/null || fatal "missing $tool on the host"
    done
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock -w 300 9 || fatal "another forklift run holds $LOCK"
}

# ---- ownership: every path forklift writes is first recorded with its original (if any) ----

backup_of() { echo "$STATE/backup$1"; }

# Takes PATH over: the first time, keeps what was there so release_path can restore it.
own_path() {
    local path=$1
    grep -qxF "$path" "$STATE/owned.list" 2>/dev/null && return 0
    mkdir -p "$STATE"
    if [ -e "$path" ] || [ -L "$path" ]; then
        mkdir -p "$(dirname "$(backup_of "$path")")"
        cp -a "$path" "$(backup_of "$path")"
    fi
    echo "$path" >>"$STATE/owned.list"
}

# Gives PATH back: restores the original, or removes forklift's file when there was none.
release_path() {
    local path=$1 backup
    backup=$(backup_of "$path")
    if [ -e "$backup" ] || [ -L "$backup" ]; then
        mkdir -p "$(dirname "$path")"
        rm -f "$path"
        mv -f "$backup" "$path"
    else
        rm -f "$path"
    fi
    if [ -f "$STATE/owned.list" ]; then
        grep -vxF "$path" "$STATE/owned.list" >"$STATE/owned.list.tmp" || true
        mv -f "$STATE/owned.list.tmp" "$STATE/owned.list"
    fi
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

current_sha() {
    local target
    target=$(readlink "$OPT/current" 2>/dev/null) || return 0
    basename "$target"
}

# Checks the artifact against the expected sha256 before anything on the host changes.
verify_artifact() {
    [ -n "${FORKLIFT_SHA256:-}" ] || fatal "FORKLIFT_SHA256 is not set"
    if [ ! -f "${FORKLIFT_ARTIFACT:-}" ] && [ -d "$OPT/releases/$FORKLIFT_SHA256" ]; then
        info "release $FORKLIFT_SHA256 is already unpacked; the staged artifact is not needed"
        return 0
    fi
    [ -f "${FORKLIFT_ARTIFACT:-}" ] || fatal "artifact ${FORKLIFT_ARTIFACT:-<unset>} is missing on the host"
    local got
    got=$(sha256sum "$FORKLIFT_ARTIFACT" | cut -d' ' -f1)
    [ "$got" = "$FORKLIFT_SHA256" ] ||
        fatal "artifact $FORKLIFT_ARTIFACT has sha256 $got, expected $FORKLIFT_SHA256 (corrupted in transfer?); nothing was changed"
    info "artifact sha256 verified ($got)"
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
        elif grep -qxF "$path" "$STATE/owned.list" 2>/dev/null; then
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
    local bin
    for bin in $(release_binaries "$1"); do
        [ "$(readlink "$INSTALL_DIR/$bin" 2>/dev/null)" = "$OPT/current/$bin" ] || return 1
    done
}

# Unpacks the artifact into releases/<sha> (once), checking that it is a Docker release.
unpack_release() {
    local dest="$OPT/releases/$FORKLIFT_SHA256" tmp
    [ -d "$dest" ] && return 0
    mkdir -p "$OPT/releases"
    tmp="$OPT/releases/.$FORKLIFT_SHA256.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp/unpack"
    tar -xzf "$FORKLIFT_ARTIFACT" -C "$tmp/unpack" || fatal "cannot unpack $FORKLIFT_ARTIFACT"
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
    mv -f "$STATE/pre-state.tmp" "$STATE/pre-state"
}

# Makes RELEASE_SHA the current release and links its binaries (one rename switches them all).
switch_to() {
    local sha=$1 release="$OPT/releases/$1" bin link
    put_link "$release" "$OPT/current"
    mkdir -p "$INSTALL_DIR"
    for bin in $(release_binaries "$release"); do
        own_path "$INSTALL_DIR/$bin"
        put_link "$OPT/current/$bin" "$INSTALL_DIR/$bin"
    done
    # binaries of an older release that this one no longer has go back to what was there
    while read -r link; do
        case "$link" in "$INSTALL_DIR"/*) ;; *) continue ;; esac
        [ -e "$release/$(basename "$link")" ] || release_path "$link"
    done < <(cat "$STATE/owned.list" 2>/dev/null || true)
    info "switched to release $sha"
}

# Puts the managed files of directory SRC in place; files not in SRC are given back.
apply_files() {
    local src=$1 name path mode
    for name in $MANAGED_NAMES; do
        path=$(managed_path "$name")
        if [ -f "$src/$name" ]; then
            own_path "$path"
            mode=0644
            put_file "$src/$name" "$path" "$mode"
        elif grep -qxF "$path" "$STATE/owned.list" 2>/dev/null; then
            release_path "$path"
        fi
    done
}

ensure_group() {
    getent group docker >/dev/null || groupadd --system docker
}

# Restarts containerd (when shipped) and Docker on the files now in place.
restart_docker() {
    systemctl daemon-reload
    local units="docker.socket docker.service"
    [ ! -f /etc/systemd/system/containerd.service ] || ! grep -qxF /etc/systemd/system/containerd.service "$STATE/owned.list" ||
        units="containerd.service $units"
    # shellcheck disable=SC2086 # word splitting of the unit list is intended
    systemctl enable $units >/dev/null 2>&1
    systemctl stop docker.service docker.socket
    case "$units" in containerd.service*) systemctl restart containerd.service ;; esac
    systemctl start docker.socket docker.service
}

running_dockerd_matches() {
    local pid
    pid=$(systemctl show -p MainPID --value docker.service)
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    [ "$(sha256sum "/proc/$pid/exe" | cut -d' ' -f1)" = "$(sha256sum "$1/dockerd" | cut -d' ' -f1)" ]
}

# Waits until `docker version` answers through the socket and the running dockerd is RELEASE's.
verify_release() {
    local release="$OPT/releases/$1" deadline
    deadline=$((SECONDS + VERIFY_TIMEOUT))
    until "$INSTALL_DIR/docker" -H unix:///run/docker.sock version --format '{{.Server.Version}}' >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "docker did not answer within ${VERIFY_TIMEOUT}s"
            return 1
        fi
        sleep 1
    done
    if ! running_dockerd_matches "$release"; then
        echo "the running dockerd is not the binary of release $1"
        return 1
    fi
}

daemon_log_tail() {
    journalctl -u docker.service -u containerd.service -n 15 --no-pager 2>/dev/null | sed 's/^/    /' || true
}

# Copies this script where `pulumi destroy` finds it.
install_self() {
    mkdir -p "$SELF_DIR"
    install -m 0755 "${BASH_SOURCE[0]}" "$SELF_DIR/forklift-host.sh.tmp"
    mv -f "$SELF_DIR/forklift-host.sh.tmp" "$SELF_DIR/forklift-host.sh"
}

# Keeps the current and previous releases, removes older ones.
prune_releases() {
    local keep_prev=$1 dir
    for dir in "$OPT"/releases/*; do
        [ -d "$dir" ] || continue
        case "$(basename "$dir")" in "$FORKLIFT_SHA256" | "$keep_prev") ;; *) rm -rf "$dir" ;; esac
    done
}

status_json() {
    local sha version="" dockerd_sha="" active
    sha=$(current_sha)
    [ ! -f "$STATE/installed" ] || version=$(sed -n 's/^version=//p' "$STATE/installed")
    active=$(systemctl is-active docker.service 2>/dev/null || true)
    if [ -n "$sha" ] && [ -f "$OPT/releases/$sha/dockerd" ]; then
        dockerd_sha=$(sha256sum "$OPT/releases/$sha/dockerd" | cut -d' ' -f1)
    fi
    printf '{"host":"%s","sha256":"%s","version":"%s","dockerdSha256":"%s","dockerService":"%s","changed":%s}\n' \
        "$HOST_NAME" "$sha" "$version" "$dockerd_sha" "$active" "${1:-false}"
}

# Puts the host back on release PREV (or on what was there before forklift) after a failed install.
roll_back() {
    local prev=$1 cause=$2 log reason
    log=$(daemon_log_tail)
    if [ -n "$prev" ] && [ -d "$OPT/releases/$prev" ] && [ -d "$STATE/applied" ]; then
        warn "release $FORKLIFT_SHA256 failed ($cause); rolling back to $prev"
        switch_to "$prev"
        apply_files "$STATE/applied"
        restart_docker >&2 || true
        if reason=$(verify_release "$prev"); then
            [ "$prev" = "$FORKLIFT_SHA256" ] || rm -rf "${OPT:?}/releases/$FORKLIFT_SHA256"
            fatal "new release $FORKLIFT_SHA256 failed: $cause. Rolled back to release $prev; Docker is answering. Daemon log:
$log"
        fi
        fatal "new release $FORKLIFT_SHA256 failed: $cause; rollback to $prev also failed: $reason. Daemon log:
$log"
    fi
    warn "first install of $FORKLIFT_SHA256 failed ($cause); restoring the host's previous Docker"
    do_uninstall
    fatal "new release $FORKLIFT_SHA256 failed: $cause. Restored what was on the host before forklift. Daemon log:
$log"
}

do_install() {
    preflight
    verify_artifact
    stage_files
    if up_to_date; then
        info "release $FORKLIFT_SHA256 already installed and running; nothing to do"
        rm -f "${FORKLIFT_ARTIFACT:-}"
        status_json false
        return 0
    fi
    local prev reason
    prev=$(current_sha)
    unpack_release
    record_pre_state
    switch_to "$FORKLIFT_SHA256"
    apply_files "$STAGE/files"
    ensure_group
    if ! reason=$(restart_docker 2>&1); then
        roll_back "$prev" "systemd could not start the new daemon: ${reason:-no output}"
    fi
    if ! reason=$(verify_release "$FORKLIFT_SHA256"); then
        roll_back "$prev" "$reason"
    fi
    rm -rf "$STATE/applied"
    cp -a "$STAGE/files" "$STATE/applied"
    printf 'sha256=%s\nversion=%s\n' "$FORKLIFT_SHA256" "${FORKLIFT_VERSION:-}" >"$STATE/installed"
    install_self
    prune_releases "$prev"
    rm -f "${FORKLIFT_ARTIFACT:-}"
    info "release $FORKLIFT_SHA256 (${FORKLIFT_VERSION:-}) is running"
    status_json true
}

# Gives back every owned path, reloads systemd and brings back the distro units' previous state.
do_uninstall() {
    systemctl stop docker.service docker.socket 2>/dev/null || true
    if grep -qxF /etc/systemd/system/containerd.service "$STATE/owned.list" 2>/dev/null; then
        systemctl stop containerd.service 2>/dev/null || true
    fi
    systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
    local path unit enabled active
    while read -r path; do
        [ -n "$path" ] && release_path "$path"
    done < <(tac "$STATE/owned.list" 2>/dev/null || true)
    systemctl daemon-reload
    if [ -f "$STATE/pre-state" ]; then
        while read -r unit enabled active; do
            case "$unit" in group-created) continue ;; esac
            [ "$enabled" != enabled ] || systemctl enable "$unit" >/dev/null 2>&1 || warn "cannot re-enable $unit"
            [ "$active" != active ] || systemctl start "$unit" || warn "cannot restart $unit"
        done <"$STATE/pre-state"
        if grep -qx group-created "$STATE/pre-state"; then groupdel docker 2>/dev/null || true; fi
    fi
    rm -rf "$OPT" "$STATE" "$SELF_DIR"
    rm -f /var/tmp/forklift-docker-*.tgz
    info "uninstalled; the host is as forklift found it"
}

main() {
    case "${1:-}" in
        install) do_install ;;
        uninstall)
            preflight
            do_uninstall
            ;;
        status) status_json false ;;
        *) fatal "usage: $0 install|uninstall|status" ;;
    esac
}

main "$@"
