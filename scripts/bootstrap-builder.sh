#!/usr/bin/env bash
# bootstrap-builder.sh — prepare a Debian or Ubuntu machine to build Docker forks.
#
# Runs as EC2 user data on a launched build host, and over SSH on an existing one. Idempotent:
# what is already installed is left alone. It first checks for what the recipes need (git, make,
# tar, gzip, CA certificates, a Docker engine; buildx for docker-ce-packaging and moby) and runs
# apt only when something is missing; when apt cannot help (offline, no apt-get) it fails with one
# message naming what is missing and the command that installs it. Writes
# /var/lib/forklift-bootstrap/done on success and /var/lib/forklift-bootstrap/failed (with the
# reason) on failure; `wait` blocks until one exists.
#
# Usage:
#   bootstrap-builder.sh [bootstrap]   install what is missing, start Docker (buildx where the distro has it), add swap
#   bootstrap-builder.sh wait          wait for a bootstrap started elsewhere (user data), print its summary
#   bootstrap-builder.sh host-key      only install the pinned sshd host key (user data of fleet instances)
#   bootstrap-builder.sh cleanup       undo the bootstrap on an existing host: remove the build directory,
#                                      the swap file it added and the packages it installed
#
# Variables:
#   FORKLIFT_SWAP_GIB          size of /swapfile to add when the host has no swap (default 4; 0 = none)
#   FORKLIFT_SSH_HOST_KEY_B64  base64 of an ed25519 private host key to install for sshd (optional)
#   FORKLIFT_BOOTSTRAP_TIMEOUT seconds `wait` waits (default 1800)
#   FORKLIFT_STACK_ID          bootstrap: the stack to record as a user of this build host;
#                              cleanup: the stack that leaves it (the host is cleaned up only
#                              when no other recorded stack uses it)
set -euo pipefail

readonly MARK_DIR=/var/lib/forklift-bootstrap
readonly APT_LOG=$MARK_DIR/apt.log
SWAP_GIB=${FORKLIFT_SWAP_GIB:-4}
TIMEOUT=${FORKLIFT_BOOTSTRAP_TIMEOUT:-1800}

info() { printf '[forklift bootstrap] %s\n' "$*" >&2; }
warn() { printf '[forklift bootstrap] WARN: %s\n' "$*" >&2; }
fatal() {
    printf '[forklift bootstrap] ERROR: %s\n' "$*" >&2
    mkdir -p "$MARK_DIR"
    printf '%s\n' "$*" >"$MARK_DIR/failed"
    exit 1
}

# Installs the pinned sshd host key first, so the very first connection can check it.
install_host_key() {
    [ -n "${FORKLIFT_SSH_HOST_KEY_B64:-}" ] || return 0
    local key=/etc/ssh/ssh_host_ed25519_key
    printf '%s' "$FORKLIFT_SSH_HOST_KEY_B64" | base64 -d >"$key.tmp"
    chmod 0600 "$key.tmp"
    ssh-keygen -y -f "$key.tmp" >"$key.pub.tmp" || fatal "FORKLIFT_SSH_HOST_KEY_B64 is not a private key"
    mv -f "$key.tmp" "$key"
    mv -f "$key.pub.tmp" "$key.pub"
    systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
    info "installed the pinned ssh host key"
}

# Records a missing tool: NAME for the message, PACKAGE for apt.
lack() {
    LACKING+=("$1")
    LACKING_PACKAGES+=("$2")
}

# Lists what the recipes need and this host lacks (LACKING, LACKING_PACKAGES): git (clones), make,
# tar and gzip (packing), CA certificates (https clones), a Docker engine (the builds run in containers).
find_lacking() {
    LACKING=() LACKING_PACKAGES=()
    local tool
    for tool in git make tar gzip; do
        command -v "$tool" >/dev/null 2>&1 || lack "$tool" "$tool"
    done
    [ -s /etc/ssl/certs/ca-certificates.crt ] || lack ca-certificates ca-certificates
    if ! docker info >/dev/null 2>&1 && ! { command -v dockerd && command -v docker; } >/dev/null 2>&1; then
        lack "a Docker engine" docker.io
    fi
}

# Fails naming what is missing, how to install it, and why forklift could not.
fatal_lacking() {
    local names them=them
    names=$(printf '%s, ' "${LACKING[@]}")
    [ "${#LACKING[@]}" -gt 1 ] || them=it
    fatal "build host lacks: ${names%, } (install $them: apt-get install ${LACKING_PACKAGES[*]}) — forklift could not install $them: $1"
}

# The first error (else warning, else last) line of apt's log, else its exit code: a one-line reason.
apt_error() {
    local line
    line=$({ grep -m1 '^E: ' "$APT_LOG" || grep -m1 '^W: ' "$APT_LOG" || tail -n 1 "$APT_LOG"; } | cut -c1-200)
    printf '%s' "${line:-exit code $APT_RC}"
}

# apt-get, waiting for the lock (cloud-init or unattended-upgrades may hold it at first boot).
apt_get() {
    APT_RC=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" >"$APT_LOG" 2>&1 || APT_RC=$?
    return "$APT_RC"
}

# Refreshes the package lists (once); APT_PROBLEM says why when the sources could not be used.
apt_update() {
    if [ -z "${APT_UPDATE_RC:-}" ]; then
        APT_UPDATE_RC=0
        if ! apt_get update -qq; then
            APT_UPDATE_RC=1
            APT_PROBLEM="apt-get update failed: $(apt_error)"
        elif grep -qE '^W: (Failed to fetch|Some index files failed)' "$APT_LOG"; then
            # apt-get update exits 0 when sources are unreachable; the install then says more
            APT_PROBLEM="apt-get update could not reach the package sources: $(apt_error)"
        fi
    fi
    return "$APT_UPDATE_RC"
}

# Installs the given packages; records for `cleanup` those that were not installed before.
apt_install() {
    local pkg new=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || new+=("$pkg")
    done
    info "installing $*"
    if ! apt_get install -y -qq --no-install-recommends "$@"; then
        APT_PROBLEM="${APT_PROBLEM:+$APT_PROBLEM; }apt-get install failed: $(apt_error)"
        return 1
    fi
    [ "${#new[@]}" -eq 0 ] || printf '%s\n' "${new[@]}" >>"$MARK_DIR/installed-packages"
}

# Ensures what the recipes need; apt runs only when something is missing.
install_tools() {
    find_lacking
    if [ "${#LACKING[@]}" -eq 0 ]; then
        info "git, make, tar, gzip, CA certificates and a Docker engine are present: no packages to install"
    else
        command -v apt-get >/dev/null 2>&1 || fatal_lacking "this host has no apt-get (only Debian and Ubuntu are supported)"
        apt_update || fatal_lacking "$APT_PROBLEM"
        local -a packages=("${LACKING_PACKAGES[@]}")
        apt_install "${packages[@]}" || fatal_lacking "$APT_PROBLEM"
        find_lacking
        [ "${#LACKING[@]}" -eq 0 ] || fatal_lacking "apt-get install ${packages[*]} succeeded, yet they are still missing"
    fi
    install_buildx
}

# buildx is needed by the docker-ce-packaging and moby recipes only: installed where the distro has
# it (Ubuntu's docker-buildx), otherwise a warning (such a build then fails naming it).
install_buildx() {
    docker buildx version >/dev/null 2>&1 && return 0
    if command -v apt-get >/dev/null 2>&1 && apt_update &&
        apt-cache show docker-buildx 2>/dev/null | grep -q '^Package: docker-buildx' && apt_install docker-buildx; then
        return 0
    fi
    warn "no docker buildx here${APT_PROBLEM:+ ($APT_PROBLEM)}: recipes docker-ce-packaging and moby need it, docker-ce does not"
}

start_docker() {
    systemctl enable --now docker.socket docker.service >/dev/null 2>&1 || systemctl start docker.service ||
        fatal "could not start the Docker engine"
    local i
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    fatal "the Docker engine did not answer within 60s ($i tries)"
}

# A swap file keeps the Go builds of a 4 GiB machine from being OOM-killed.
add_swap() {
    [ "$SWAP_GIB" -gt 0 ] || return 0
    if [ "$(swapon --show --noheadings | wc -l)" -gt 0 ]; then return 0; fi
    if [ ! -f /swapfile ]; then
        fallocate -l "${SWAP_GIB}G" /swapfile 2>/dev/null || dd if=/dev/zero of=/swapfile bs=1M count=$((SWAP_GIB * 1024)) status=none
        chmod 0600 /swapfile
        mkswap /swapfile >/dev/null
        mkdir -p "$MARK_DIR"
        touch "$MARK_DIR/swapfile-created"
    fi
    if swapon /swapfile 2>/dev/null; then
        grep -q '^/swapfile ' /etc/fstab || echo '/swapfile none swap sw 0 0' >>/etc/fstab
        info "added ${SWAP_GIB} GiB of swap"
    else
        warn "swapon /swapfile is not permitted here (container?); building without swap"
    fi
}

# The stack identity in FORKLIFT_STACK_ID, checked (it names a file), or nothing.
stack_id() {
    [ -n "${FORKLIFT_STACK_ID:-}" ] || return 0
    [[ "$FORKLIFT_STACK_ID" =~ ^[0-9a-f]{1,64}$ ]] || fatal "FORKLIFT_STACK_ID is not a hex identity"
    printf '%s' "$FORKLIFT_STACK_ID"
}

# Gives an existing build host back: build directory, swap file and the packages bootstrap added.
# A host that other stacks still use (recorded by their bootstrap) is left to them.
# Removes the build root under its lock, as build-fork.sh takes it: a build run that holds it
# finishes first. The lock file goes last, and only if no other process has it open: removed under
# a run waiting on it, that run would lock a file no later run can see.
remove_build_root() {
    local root=/var/lib/forklift-build
    [ -d "$root" ] || return 0
    exec 8>>"$root/.lock"
    flock -w 900 8 || fatal "a forklift build run has held $root/.lock for 15 minutes"
    find "$root" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
    # (the subshell lets go of fd 8 first, so that only other processes' handles are found)
    if [ -z "$(exec 8>&-; find /proc/[0-9]*/fd -lname "$root/.lock" ! -path "/proc/$$/*" 2>/dev/null | head -n 1)" ]; then
        rm -rf "$root"
    else
        warn "$root/.lock stays: another process has it open"
    fi
    exec 8>&-
}

do_cleanup() {
    [ "$(id -u)" = 0 ] || fatal "must run as root"
    local id others
    id=$(stack_id)
    [ -z "$id" ] || rm -f "$MARK_DIR/stacks/$id"
    others=$(find "$MARK_DIR/stacks" -type f 2>/dev/null | wc -l)
    if [ "$others" -gt 0 ]; then
        info "build host left as it is: $others other stack(s) still build here"
        return 0
    fi
    systemctl stop 'forklift-build-*' 2>/dev/null || true
    remove_build_root
    if [ -f "$MARK_DIR/swapfile-created" ]; then
        swapoff /swapfile 2>/dev/null || true
        sed -i '\|^/swapfile none swap sw 0 0$|d' /etc/fstab
        rm -f /swapfile
    fi
    if [ -s "$MARK_DIR/installed-packages" ]; then
        local -a pkgs=()
        mapfile -t pkgs <"$MARK_DIR/installed-packages"
        info "removing the packages bootstrap installed: ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null || warn "could not remove ${pkgs[*]}"
    fi
    rm -rf "$MARK_DIR"
    info "build host cleaned up"
}

summary() {
    printf '{"git":"%s","docker":"%s","buildx":"%s","swapKiB":%s}\n' \
        "$(git --version | cut -d' ' -f3)" \
        "$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo none)" \
        "$(docker buildx version 2>/dev/null | cut -d' ' -f2 || true)" \
        "$(awk '/^SwapTotal/ {print $2}' /proc/meminfo)"
}

do_bootstrap() {
    [ "$(id -u)" = 0 ] || fatal "must run as root"
    rm -f "$MARK_DIR/failed" "$MARK_DIR/done"
    mkdir -p "$MARK_DIR"
    install_host_key
    install_tools
    start_docker
    add_swap
    mkdir -p "$MARK_DIR/stacks"
    local id
    id=$(stack_id)
    [ -z "$id" ] || : >"$MARK_DIR/stacks/$id"
    # kept for `cleanup`, which `pulumi destroy` runs on an existing build host
    # (as user data the script carries the private host key in an export line: leave it out)
    grep -v '^export FORKLIFT_SSH_HOST_KEY_B64=' "${BASH_SOURCE[0]}" >"$MARK_DIR/bootstrap-builder.sh.tmp" || true
    chmod 0700 "$MARK_DIR/bootstrap-builder.sh.tmp"
    mv -f "$MARK_DIR/bootstrap-builder.sh.tmp" "$MARK_DIR/bootstrap-builder.sh"
    summary >"$MARK_DIR/done"
    info "build host ready: $(cat "$MARK_DIR/done")"
    cat "$MARK_DIR/done"
}

do_wait() {
    local deadline=$((SECONDS + TIMEOUT))
    until [ -f "$MARK_DIR/done" ] || [ -f "$MARK_DIR/failed" ]; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "bootstrap did not finish within ${TIMEOUT}s" >&2; exit 1; }
        sleep 5
    done
    if [ -f "$MARK_DIR/failed" ]; then
        echo "bootstrap failed: $(cat "$MARK_DIR/failed")" >&2
        exit 1
    fi
    cat "$MARK_DIR/done"
}

main() {
    case "${1:-bootstrap}" in
        bootstrap) do_bootstrap ;;
        wait) do_wait ;;
        host-key) install_host_key ;;
        cleanup) do_cleanup ;;
        *) fatal "usage: $0 [bootstrap|wait]" ;;
    esac
}

main "$@"
