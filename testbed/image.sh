#!/usr/bin/env bash
# testbed/image.sh: build (once) and cache the Debian root filesystem that every test host boots.
#
# Usage:
#   testbed/image.sh               # build if needed; print the image directory on stdout
#   testbed/image.sh busybox-tar   # build if needed; print the busybox rootfs tarball path on stdout
#
# The image is cached OUTSIDE the repository at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/forklift/testbed/image-<key>
# where <key> hashes the suite, architecture, package list, IMAGE_VERSION and the body of
# configure_image(), so a change to any of them builds a new image and later runs reuse it.
# The build runs in a temporary directory next to it and is moved into place only when complete
# (atomic); concurrent callers serialise on a lock file; images of other keys are removed once
# no running host uses them. Next to the image sits
# busybox-rootfs.tar, a tiny rootfs (busybox-static + applet symlinks) for `docker import`;
# the image also carries a copy at /usr/local/share/forklift-testbed/busybox-rootfs.tar.
#
# The image: debootstrap --variant=minbase with systemd, sshd (root login with keys only, no
# authorized_keys and no SSH host keys baked in: testbed/host.sh adds them per host), Debian's
# Docker (docker.io, containerd, runc, tini) installed but disabled at boot (not masked), plus
# the tools a builder and a fleet host need offline (git, make, curl, sudo, util-linux, ...).
#
# Environment variables read:
#   XDG_CACHE_HOME             cache root (default: $HOME/.cache)
#   HOME                       used for the default cache root
#   FORKLIFT_TESTBED_MIRROR    Debian mirror URL (default: the first URI configured for the
#                              suite in /etc/apt/sources.list or /etc/apt/sources.list.d/*)
#   FORKLIFT_TESTBED_SUITE     Debian suite (default: bookworm)
#   FORKLIFT_TESTBED_HOSTNAME  hostname baked into the image (default: forklift-testbed)
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" # root tools even from a user PATH

IMAGE_VERSION=1
SUITE="${FORKLIFT_TESTBED_SUITE:-bookworm}"
IMAGE_HOSTNAME="${FORKLIFT_TESTBED_HOSTNAME:-forklift-testbed}"
CACHE_ROOT="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/forklift/testbed"
IMAGE_PACKAGES=(
    # boot + remote access
    systemd systemd-sysv dbus openssh-server iproute2 ca-certificates iptables
    # builder / fleet host tools (hosts have no internet: nothing can be fetched later)
    git make curl tar gzip xz-utils coreutils procps sudo util-linux e2fsprogs rsync
    # Debian's Docker: dockerd, containerd, runc, tini (docker-init) and their libraries
    docker.io containerd runc tini
)

# --- helpers -----------------------------------------------------------------
info() { echo '[INFO] ' "$@" >&2; }
warn() { echo '[WARN] ' "$@" >&2; }
fatal() {
    echo '[ERROR] ' "$@" >&2
    exit 1
}

# --- steps -------------------------------------------------------------------
verify_system() {
    [ "$(id -u)" -eq 0 ] || fatal "must run as root (debootstrap)"
    local cmd
    for cmd in debootstrap flock sha256sum busybox tar systemctl; do
        command -v "$cmd" >/dev/null 2>&1 || fatal "'$cmd' not found: run testbed/deps.sh first"
    done
    [ -x /bin/busybox ] || fatal "/bin/busybox missing: install busybox-static (testbed/deps.sh)"
}

# Prints the first mirror URI configured for $SUITE (one-line and deb822 formats).
detect_mirror() {
    if [ -n "${FORKLIFT_TESTBED_MIRROR:-}" ]; then
        echo "$FORKLIFT_TESTBED_MIRROR"
        return 0
    fi
    local f uri=""
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk -v s="$SUITE" '
            $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                          if ($(i+1) == s) { print $i; exit } }' "$f")
        [ -z "$uri" ] || break
    done
    if [ -z "$uri" ]; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            uri=$(awk -v s="$SUITE" '
                function flush() { if (deb && suite && u != "") { print u; found = 1; exit } deb = suite = 0; u = "" }
                /^[[:space:]]*$/ { flush(); next }
                /^[[:space:]]*#/ { next }
                /^Types:/  { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) suite = 1 }
                /^URIs:/   { u = $2 }
                END { if (!found) flush() }' "$f")
            [ -z "$uri" ] || break
        done
    fi
    [ -n "$uri" ] || fatal "no apt source for suite '$SUITE' found; set FORKLIFT_TESTBED_MIRROR"
    echo "$uri"
}

# Everything done to the root filesystem after debootstrap. Its body is part of the cache key.
configure_image() {
    local root="$1"

    # hostname (host.sh overrides it per host in the overlay's upper layer)
    echo "$IMAGE_HOSTNAME" >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        "$IMAGE_HOSTNAME" >"$root/etc/hosts"

    # machine-id: none baked in (host.sh writes a fresh one per host)
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"

    # sshd: root with keys only; no host keys and no authorized_keys baked in
    rm -f "$root"/etc/ssh/ssh_host_*
    mkdir -p "$root/etc/ssh/sshd_config.d"
    cat >"$root/etc/ssh/sshd_config.d/10-forklift-testbed.conf" <<'EOF'
# forklift test bed: root with keys only; host key generated per host by testbed/host.sh
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100:30:200
EOF
    rm -rf "$root/root/.ssh"
    install -d -m 0700 "$root/root/.ssh"

    # Debian's Docker: installed, not started at boot (a test enables it per host)
    systemctl --root="$root" disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true

    # units that fail or only add noise/delay in an offline nspawn container
    systemctl --root="$root" mask \
        apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
        systemd-networkd-wait-online.service getty@tty1.service console-getty.service \
        >/dev/null 2>&1 || true

    # sudo without password for root-equivalent test users is a test's job; keep the default.
    # a small rootfs for `docker import` inside hosts (no registry is reachable)
    install -d "$root/usr/local/share/forklift-testbed"
    # shrink: package caches and lists are useless offline
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
}

cache_key() {
    {
        echo "version=$IMAGE_VERSION suite=$SUITE arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"
        echo "hostname=$IMAGE_HOSTNAME"
        echo "packages=${IMAGE_PACKAGES[*]}"
        declare -f configure_image
    } | sha256sum | cut -c1-16
}

# Builds $CACHE_ROOT/busybox-rootfs.tar (busybox-static binary + applet symlinks) if missing.
build_busybox_tar() {
    local out="$CACHE_ROOT/busybox-rootfs.tar" tmp applet
    if [ -s "$out" ]; then
        return 0
    fi
    tmp=$(mktemp -d "$CACHE_ROOT/.busybox.XXXXXX")
    mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc"
    install -m 0755 /bin/busybox "$tmp/rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$tmp/rootfs/bin/$applet"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$tmp/rootfs/etc/passwd"
    echo 'root:x:0:' >"$tmp/rootfs/etc/group"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$tmp/rootfs" \
        -cf "$tmp/busybox-rootfs.tar" .
    mv -f "$tmp/busybox-rootfs.tar" "$out"
    rm -rf "$tmp"
    info "busybox rootfs tarball: $out"
}

# Unmounts anything debootstrap left mounted below $1 (deepest first), then removes it.
remove_build_dir() {
    local dir="$1" mp
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mp; do
        umount -l "$mp" 2>/dev/null || warn "could not unmount $mp"
    done
    rm -rf --one-file-system "$dir"
}

# Stops a running debootstrap (its whole process group) when the build is interrupted.
stop_bootstrap() {
    if [ -n "${BOOTSTRAP_PID:-}" ] && kill -0 "$BOOTSTRAP_PID" 2>/dev/null; then
        warn "interrupted: stopping debootstrap (pid $BOOTSTRAP_PID)"
        kill -TERM -- "-$BOOTSTRAP_PID" 2>/dev/null || true
        wait "$BOOTSTRAP_PID" 2>/dev/null || true
    fi
}

# Temp dirs of builds that were killed (we hold the lock: no build is running).
remove_stale_builds() {
    local d
    for d in "$CACHE_ROOT"/.build.* "$CACHE_ROOT"/.busybox.*; do
        [ -e "$d" ] || continue
        warn "removing leftover $d"
        remove_build_dir "$d"
    done
}

build_image() {
    IMAGE_DIR="$CACHE_ROOT/image-$(cache_key)"
    if [ -f "$IMAGE_DIR/.forklift-image-complete" ]; then
        return 0
    fi
    local mirror start
    mirror=$(detect_mirror)
    BUILD_DIR=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
    trap 'stop_bootstrap; remove_build_dir "${BUILD_DIR:-}"' EXIT
    start=$(date +%s)
    info "building test host image (debootstrap $SUITE from $mirror; takes a few minutes)"
    local pkgs
    pkgs=$(
        IFS=,
        echo "${IMAGE_PACKAGES[*]}"
    )
    # in its own process group, waited for: a signal to this script stops it at once (EXIT trap)
    setsid debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$BUILD_DIR/rootfs" "$mirror" \
        </dev/null >"$BUILD_DIR/debootstrap.log" 2>&1 &
    BOOTSTRAP_PID=$!
    if ! wait "$BOOTSTRAP_PID"; then
        BOOTSTRAP_PID=""
        tail -n 30 "$BUILD_DIR/debootstrap.log" >&2 || true
        tail -n 30 "$BUILD_DIR/rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
        fatal "debootstrap failed"
    fi
    BOOTSTRAP_PID=""
    configure_image "$BUILD_DIR/rootfs"
    cp "$CACHE_ROOT/busybox-rootfs.tar" "$BUILD_DIR/rootfs/usr/local/share/forklift-testbed/busybox-rootfs.tar"
    verify_image "$BUILD_DIR/rootfs"
    touch "$BUILD_DIR/rootfs/.forklift-image-complete"
    if [ -e "$IMAGE_DIR" ]; then
        # an incomplete leftover from an interrupted older layout: replace it
        remove_build_dir "$IMAGE_DIR"
    fi
    mv "$BUILD_DIR/rootfs" "$IMAGE_DIR"
    remove_build_dir "$BUILD_DIR"
    trap - EXIT
    remove_old_images
    info "image built in $(($(date +%s) - start)) s: $IMAGE_DIR ($(du -sh "$IMAGE_DIR" | cut -f1))"
}

# Removes images of other keys that no mounted overlay (a running host) still uses.
remove_old_images() {
    local old
    for old in "$CACHE_ROOT"/image-*; do
        if [ ! -d "$old" ] || [ "$old" = "$IMAGE_DIR" ]; then
            continue
        fi
        if grep -qF "lowerdir=$old," /proc/mounts; then
            info "keeping old image in use: $old"
            continue
        fi
        info "removing old image $old"
        remove_build_dir "$old"
    done
}

verify_image() {
    local root="$1" f
    for f in sbin/init usr/sbin/sshd usr/sbin/dockerd usr/bin/containerd usr/sbin/runc usr/bin/tini \
        usr/sbin/iptables usr/bin/git usr/bin/make usr/bin/curl usr/bin/sudo sbin/swapon sbin/mkswap \
        usr/bin/fallocate sbin/mkfs.ext4 usr/bin/systemd-run; do
        [ -e "$root/$f" ] || fatal "image is missing /$f"
    done
    # Debian's Docker binaries are dynamic: all their libraries must be in the image
    if chroot "$root" /usr/bin/ldd /usr/sbin/dockerd /usr/bin/containerd /usr/sbin/runc 2>&1 | grep -q 'not found'; then
        fatal "image lacks shared libraries for Debian's Docker"
    fi
}

# --- main --------------------------------------------------------------------
main() {
    local what="${1:-image}"
    case "$what" in
        image | busybox-tar) ;;
        *) fatal "usage: $0 [image|busybox-tar]" ;;
    esac
    verify_system
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/.lock"
    flock 9
    trap 'exit 130' INT TERM HUP # run the EXIT trap (removes the temp build dir) on signals too
    remove_stale_builds
    build_busybox_tar
    build_image
    if [ "$what" = busybox-tar ]; then
        echo "$CACHE_ROOT/busybox-rootfs.tar"
    else
        echo "$IMAGE_DIR"
    fi
}

main "$@"
