#!/usr/bin/env bash
# testbed/deps.sh: install the Debian packages the forklift test bed and its tests need.
#
# Usage:
#   testbed/deps.sh          # as root on Debian/Ubuntu; idempotent
#
# Fast path: when every package below is already installed it only checks (dpkg-query)
# and exits; otherwise it runs `apt-get update` once and `apt-get install` for the
# missing ones.
#
# Environment variables read:
#   FORKLIFT_TESTBED_EXTRA_PACKAGES  space-separated extra Debian packages to install (default: none)
#   DEBIAN_FRONTEND                  passed through to apt-get (default here: noninteractive)
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" # root tools even from a user PATH

# --- helpers -----------------------------------------------------------------
info() { echo '[INFO] ' "$@" >&2; }
warn() { echo '[WARN] ' "$@" >&2; }
fatal() {
    echo '[ERROR] ' "$@" >&2
    exit 1
}

# Packages the host side of the test bed needs:
#   systemd-container (systemd-nspawn), debootstrap (image), openssh-client (ssh/scp/ssh-keygen),
#   iproute2 (ip netns/veth), git, docker.io (builder tests, dockerd/containerd/runc/tini),
#   the shell linter, systemd (systemd-analyze), rsync, procps (ps), e2fsprogs (mkfs.ext4),
#   ca-certificates, busybox-static (docker import rootfs), util-linux (losetup/mount/setsid),
#   coreutils (sha256sum/timeout), tar.
PACKAGES=(
    systemd-container debootstrap openssh-client iproute2 git docker.io shellcheck systemd
    rsync procps e2fsprogs ca-certificates busybox-static util-linux coreutils tar
)

# --- steps -------------------------------------------------------------------
verify_system() {
    [ "$(id -u)" -eq 0 ] || fatal "must run as root (apt-get install)"
    command -v apt-get >/dev/null 2>&1 || fatal "apt-get not found: this script supports Debian/Ubuntu only"
    command -v dpkg-query >/dev/null 2>&1 || fatal "dpkg-query not found"
}

add_extra_packages() {
    local extra
    # shellcheck disable=SC2206 # intentional word splitting of a space-separated list
    extra=(${FORKLIFT_TESTBED_EXTRA_PACKAGES:-})
    if [ "${#extra[@]}" -gt 0 ]; then
        PACKAGES+=("${extra[@]}")
    fi
}

find_missing() {
    MISSING=()
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        if [ "$status" != "installed" ]; then
            MISSING+=("$pkg")
        fi
    done
}

install_missing() {
    if [ "${#MISSING[@]}" -eq 0 ]; then
        info "all ${#PACKAGES[@]} test bed packages already installed"
        return 0
    fi
    info "installing: ${MISSING[*]}"
    export DEBIAN_FRONTEND="${DEBIAN_FRONTEND:-noninteractive}"
    apt-get update -qq || fatal "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >&2 \
        || fatal "apt-get install failed for: ${MISSING[*]}"
    find_missing
    [ "${#MISSING[@]}" -eq 0 ] || fatal "still missing after install: ${MISSING[*]}"
    info "test bed packages installed"
}

# --- main --------------------------------------------------------------------
main() {
    verify_system
    add_extra_packages
    find_missing
    install_missing
}

main "$@"
