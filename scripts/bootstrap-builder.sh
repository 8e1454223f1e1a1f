#!/usr/bin/env bash
# bootstrap-builder.sh — prepare a Debian or Ubuntu machine to build Docker forks.
#
# Runs as EC2 user data on a launched build host, and over SSH on an existing one. Idempotent:
# what is already installed is left alone. Writes /var/lib/forklift-bootstrap/done on success and
# /var/lib/forklift-bootstrap/failed (with the reason) on failure; `wait` blocks until one exists.
#
# Usage:
#   bootstrap-builder.sh [bootstrap]   install git, make and a Docker engine (with buildx where the distro has it)
#   bootstrap-builder.sh wait          wait for a bootstrap started elsewhere (user data), print its summary
#   bootstrap-builder.sh host-key      only install the pinned sshd host key (user data of fleet instances)
#   bootstrap-builder.sh cleanup       undo the bootstrap on an existing host: remove the build directory,
#                                      the swap file it added and the packages it installed
#
# Variables:
#   FORKLIFT_SWAP_GIB          size of /swapfile to add when the host has no swap (default 4; 0 = none)
#   FORKLIFT_SSH_HOST_KEY_B64  base64 of an ed25519 private host key to install for sshd (optional)
#   FORKLIFT_BOOTSTRAP_TIMEOUT seconds `wait` waits (default 1800)
set -euo pipefail

readonly MARK_DIR=/var/lib/forklift-bootstrap
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

# apt-get install of the packages that are missing (nothing when all are there).
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    info "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || fatal "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" || fatal "apt-get install ${missing[*]} failed"
    mkdir -p "$MARK_DIR"
    printf '%s\n' "${missing[@]}" >>"$MARK_DIR/installed-packages"
}

install_tools() {
    command -v apt-get >/dev/null || fatal "only Debian and Ubuntu build hosts are supported (no apt-get)"
    apt_install git make ca-certificates curl tar gzip
    if ! command -v dockerd >/dev/null; then apt_install docker.io; fi
    if ! docker buildx version >/dev/null 2>&1; then
        if apt-cache show docker-buildx >/dev/null 2>&1; then
            apt_install docker-buildx
        else
            warn "this distro has no docker-buildx package: recipes docker-ce-packaging and moby need buildx, docker-ce does not"
        fi
    fi
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

# Gives an existing build host back: build directory, swap file and the packages bootstrap added.
do_cleanup() {
    [ "$(id -u)" = 0 ] || fatal "must run as root"
    systemctl stop 'forklift-build-*' 2>/dev/null || true
    rm -rf /var/lib/forklift-build
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
    mkdir -p "$MARK_DIR"
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
