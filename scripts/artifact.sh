#!/usr/bin/env bash
# artifact.sh — move a built artifact from the build host, through the local cache, to a fleet host.
#
# Runs on the machine that runs `pulumi up` (as the command provider's local commands). The cache
# is content-addressed (<sha256>.tgz, written only after its sha256 matched), so the artifact
# crosses the network from the build host once per machine, however many hosts it goes to; it is
# hashed locally once, when it is fetched. Each fleet host hashes its own copy.
#
# Usage:
#   artifact.sh fetch < keys    make sure the artifact is in the cache; print its path
#   artifact.sh ship < keys     fetch if needed, then copy it to one fleet host's staging path
#                               and check its sha256 there
#
# stdin: one line per SSH hop that has a private key, "<hop> <base64 of the key>", where hop is
# builder, builder-proxy, target or target-proxy. A hop without a line uses the SSH agent.
#
# Variables, for each hop (BUILDER, BUILDER_PROXY, TARGET, TARGET_PROXY; a *_PROXY hop is used
# when its ADDRESS is set, TARGET* only by `ship`):
#   FORKLIFT_<HOP>_ADDRESS    host name or IP address
#   FORKLIFT_<HOP>_PORT       SSH port (default 22)
#   FORKLIFT_<HOP>_USER       login user (default root)
#   FORKLIFT_<HOP>_HOST_KEY   the hop's public host key line; required unless FORKLIFT_INSECURE=1
# and:
#   FORKLIFT_INSECURE         1 to skip host key checks (explicit opt-in in the stack config)
#   FORKLIFT_REMOTE_PATH      artifact path on the build host
#   FORKLIFT_SHA256           its sha256
#   FORKLIFT_CACHE_DIR        local cache directory
#   FORKLIFT_HOST             ship: the fleet host's name, for messages
#   FORKLIFT_TARGET_PATH      ship: staging path on the fleet host
#   FORKLIFT_CONNECT_TIMEOUT  seconds per SSH connection attempt (default 15)
set -euo pipefail

info() { printf '[forklift artifact] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift artifact] ERROR: %s\n' "$*" >&2
    exit 1
}

WORK=""
cleanup() { [ -z "$WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# Fails naming the first variable of the list that is not set.
require() {
    local var
    for var in "$@"; do
        [ -n "${!var:-}" ] || fatal "$var is not set"
    done
}

# Reads "<hop> <base64>" lines from stdin into one private key file per hop.
read_keys() {
    WORK=$(mktemp -d)
    chmod 0700 "$WORK"
    : >"$WORK/ssh_config"
    : >"$WORK/known_hosts"
    local hop b64
    while read -r hop b64; do
        case "$hop" in builder | builder-proxy | target | target-proxy) ;; *) fatal "unknown SSH hop '$hop' on stdin" ;; esac
        [ -n "$b64" ] || continue
        printf '%s' "$b64" | base64 -d >"$WORK/$hop.key" || fatal "the private key of $hop is not base64"
        # OpenSSH refuses a key without its final newline (`pulumi config set ... < file` drops it)
        [ -z "$(tail -c 1 "$WORK/$hop.key")" ] || echo >>"$WORK/$hop.key"
        chmod 0600 "$WORK/$hop.key"
    done
}

# Adds an ssh_config entry for HOP from the FORKLIFT_<VAR>_* variables, jumping through JUMP if set.
add_hop() {
    local hop=$1 var=$2 jump=${3:-}
    local address_var="FORKLIFT_${var}_ADDRESS" port_var="FORKLIFT_${var}_PORT" user_var="FORKLIFT_${var}_USER" key_var="FORKLIFT_${var}_HOST_KEY"
    require "$address_var"
    {
        printf 'Host %s\n' "$hop"
        printf '  HostName %s\n  Port %s\n  User %s\n' "${!address_var}" "${!port_var:-22}" "${!user_var:-root}"
        printf '  BatchMode yes\n  ConnectTimeout %s\n  HostKeyAlias %s\n  LogLevel ERROR\n' "${FORKLIFT_CONNECT_TIMEOUT:-15}" "$hop"
        [ ! -f "$WORK/$hop.key" ] || printf '  IdentityFile %s\n  IdentitiesOnly yes\n' "$WORK/$hop.key"
        [ -z "$jump" ] || printf '  ProxyJump %s\n' "$jump"
        if [ "${FORKLIFT_INSECURE:-0}" = 1 ]; then
            printf '  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n'
        else
            [ -n "${!key_var:-}" ] || fatal "no host key for $hop ${!address_var} (set hostKey, or opt in to insecureSkipHostKeyCheck)"
            printf '  StrictHostKeyChecking yes\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n' "$WORK/known_hosts"
            printf '%s %s\n' "$hop" "${!key_var}" >>"$WORK/known_hosts"
        fi
    } >>"$WORK/ssh_config"
}

# Adds HOP (and its proxy, when one is set) to the ssh_config.
add_route() {
    local hop=$1 var=$2 proxy_var="FORKLIFT_${2}_PROXY_ADDRESS"
    if [ -n "${!proxy_var:-}" ]; then
        add_hop "$hop-proxy" "${var}_PROXY"
        add_hop "$hop" "$var" "$hop-proxy"
    else
        add_hop "$hop" "$var"
    fi
}

remote() { ssh -F "$WORK/ssh_config" "$@"; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Makes sure $FORKLIFT_CACHE_DIR/<sha256>.tgz exists (one fetch at a time per artifact); prints it.
fetch() {
    require FORKLIFT_REMOTE_PATH FORKLIFT_SHA256 FORKLIFT_CACHE_DIR
    [[ "$FORKLIFT_SHA256" =~ ^[0-9a-f]{64}$ ]] || fatal "FORKLIFT_SHA256 is not a sha256"
    local dest="$FORKLIFT_CACHE_DIR/$FORKLIFT_SHA256.tgz" part got
    mkdir -p "$FORKLIFT_CACHE_DIR"
    exec 8>"$FORKLIFT_CACHE_DIR/.$FORKLIFT_SHA256.lock"
    flock -w 900 8 || fatal "another fetch of $FORKLIFT_SHA256 holds its lock"
    if [ ! -f "$dest" ]; then
        add_route builder BUILDER
        part=$(mktemp "$FORKLIFT_CACHE_DIR/.$FORKLIFT_SHA256.XXXXXX")
        if ! remote builder "cat -- '$FORKLIFT_REMOTE_PATH'" >"$part"; then
            rm -f "$part"
            fatal "could not copy $FORKLIFT_REMOTE_PATH from the build host $FORKLIFT_BUILDER_ADDRESS (if it lost its builds, rebuild with \`pulumi up --replace <URN of forklift-fork-build>\`)"
        fi
        got=$(sha_of "$part")
        [ "$got" = "$FORKLIFT_SHA256" ] || { rm -f "$part"; fatal "the artifact fetched from the build host has sha256 $got, expected $FORKLIFT_SHA256"; }
        mv -f "$part" "$dest"
        info "fetched $(stat -c %s "$dest") bytes from the build host into $dest"
    fi
    flock -u 8
    printf '%s\n' "$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")"
}

# Copies the cached artifact to the fleet host through one SSH connection: written to a temp name,
# hashed there, renamed into place only when the sha256 matches.
ship() {
    require FORKLIFT_TARGET_PATH FORKLIFT_SHA256
    local src got host=${FORKLIFT_HOST:-$FORKLIFT_TARGET_ADDRESS}
    [[ "$FORKLIFT_TARGET_PATH" =~ ^/[A-Za-z0-9._/-]+$ ]] || fatal "FORKLIFT_TARGET_PATH must be a plain absolute path"
    src=$(fetch)
    add_route target TARGET
    # shellcheck disable=SC2016 # expanded by the remote shell
    local script='p="$1.part.$$"; umask 022; cat >"$p" || { rm -f "$p"; exit 1; }; s=$(sha256sum "$p" | cut -d" " -f1); if [ "$s" = "$2" ]; then mv -f "$p" "$1"; else rm -f "$p"; fi; echo "$s"'
    got=$(remote target "sh -c '$script' sh $FORKLIFT_TARGET_PATH $FORKLIFT_SHA256" <"$src") ||
        fatal "could not copy the artifact to $host ($FORKLIFT_TARGET_ADDRESS:${FORKLIFT_TARGET_PORT:-22}): check that it is up, that its hostKey is right and that ${FORKLIFT_TARGET_USER:-root} can log in with its key"
    if [ "$got" != "$FORKLIFT_SHA256" ]; then
        if [ "$(sha_of "$src")" != "$FORKLIFT_SHA256" ]; then
            rm -f "$src"
            fatal "the cached artifact $src was corrupt; it is removed: run \`pulumi up\` again to fetch it anew"
        fi
        fatal "the copy on $host has sha256 ${got:-<none>}, expected $FORKLIFT_SHA256 (corrupted in transfer); nothing was changed there: run \`pulumi up\` again"
    fi
    info "copied $(stat -c %s "$src") bytes to $host:$FORKLIFT_TARGET_PATH (sha256 checked there)"
}

main() {
    local mode=${1:-}
    case "$mode" in fetch | ship) ;; *) fatal "usage: $0 fetch|ship < keys" ;; esac
    read_keys
    "$mode"
}

main "$@"
