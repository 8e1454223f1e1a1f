#!/usr/bin/env bash
# artifact.sh — bring a built release onto one fleet host, and take it off again.
#
# Runs on the machine that runs `pulumi up`, as the command provider's local commands (one per
# fleet host: `install` is its create, `uninstall` its delete). The artifact travels build host →
# local cache → fleet host. The cache is content-addressed (<sha256>.tgz, written only after its
# sha256 matched), so the artifact crosses the network from the build host once per machine,
# however many hosts it goes to; it is hashed locally once, when it is fetched. Each fleet host
# checks its own copy before it unpacks it, and a host that has the release unpacked reads none.
#
# Usage:
#   artifact.sh fetch < stdin      make sure the artifact is in the cache; print its path
#   artifact.sh install < stdin    fetch if needed, then run the install command on the fleet host
#                                  with scripts/forklift-host.sh and the tgz on its stdin (one SSH
#                                  session); print what it prints
#   artifact.sh uninstall < stdin  run the uninstall command on the fleet host
#   artifact.sh check < stdin      check the fleet host before a rollout: reachable, host key,
#                                  login, passwordless sudo, systemd, free disk space, and that
#                                  no other stack owns it; its SSH connection stays open for the
#                                  install's session (see share_connection)
#   artifact.sh prechecks < stdin  `check` of several fleet hosts at once, all but the disk space
#                                  (the precheck while the fork builds): CHECK_PARALLEL at a
#                                  time; every host's result is printed, and it fails when any
#                                  host's check failed, naming them
#   artifact.sh checks < stdin     the same after the build, with the disk space (the check that
#                                  the first batch waits for)
#
# stdin: lines "<name> <base64>":
#   builder, builder-proxy, target, target-proxy   private key of that SSH hop (a hop without a
#                                                  line uses the SSH agent)
#   install, uninstall                             the remote command to run on the fleet host
# for prechecks and checks, one block per host: a line "vars <base64>" (the host's variables for
# check, as NUL-separated NAME=value pairs), then its target and target-proxy lines
#
# Variables, for each hop (BUILDER, BUILDER_PROXY, TARGET, TARGET_PROXY; a *_PROXY hop is used
# when its ADDRESS is set):
#   FORKLIFT_<HOP>_ADDRESS    host name or IP address
#   FORKLIFT_<HOP>_PORT       SSH port (default 22)
#   FORKLIFT_<HOP>_USER       login user (default root)
#   FORKLIFT_<HOP>_HOST_KEY   the hop's public host key line; required unless FORKLIFT_INSECURE=1
# and:
#   FORKLIFT_INSECURE         1 to skip host key checks (explicit opt-in in the stack config)
#   FORKLIFT_REMOTE_PATH      fetch, install: artifact path on the build host
#   FORKLIFT_SHA256           fetch, install: its sha256
#   FORKLIFT_CACHE_DIR        fetch, install: local cache directory
#   FORKLIFT_HOST             install, uninstall: the fleet host's name, for messages
#   FORKLIFT_INSTALL_KEY      install: hash of what is installed (only there so that a change of
#                             it runs the install again)
#   FORKLIFT_NEED_KIB         check: free space (KiB) the release needs in /opt and /var/tmp (unset:
#                             not checked, as by the precheck while the build runs)
#   FORKLIFT_SHA256           check: the release; a host that has it unpacked needs no free space
#   FORKLIFT_OWNER, FORKLIFT_STACK_ID   check: who rolls out (project/stack/host, the stack's
#                             random identity); a host another stack owns fails the check
#   FORKLIFT_CHECK_KEY        prechecks, checks: hash of what the rollout will do (only there so
#                             that a change of it runs the check again)
#   FORKLIFT_CONNECT_TIMEOUT  seconds per SSH connection attempt (default 15)
#   FORKLIFT_HOSTS            prechecks, checks: the hosts' names, for the plan (what is checked
#                             are the blocks on stdin)
set -euo pipefail

info() { printf '[forklift artifact] %s\n' "$*" >&2; }
fatal() {
    printf '[forklift artifact] ERROR: %s\n' "$*" >&2
    exit 1
}

# (no subshells or processes here or in the per-run paths below where bash can do without: the
# program runs this ~3 times per host and `pulumi up`, on a machine whose cores the rollout needs)
case "${BASH_SOURCE[0]}" in */*) SCRIPT_DIR=${BASH_SOURCE[0]%/*} ;; *) SCRIPT_DIR=. ;; esac
WORK=""
# 1 when this run closes the shared connection to the fleet host as it ends (see share_connection)
CLOSE_SHARED=""
# where this run records that it could not connect, for the run that waits for it (see share_connection)
SHARE_FAILED=""
cleanup() {
    [ -n "$WORK" ] || return 0
    [ -z "$CLOSE_SHARED" ] || remote -O exit target >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Fails naming the first variable of the list that is not set.
require() {
    local var
    for var in "$@"; do
        [ -n "${!var:-}" ] || fatal "$var is not set"
    done
}

# Reads the "<name> <base64>" lines of stdin: one private key file per hop, and the remote commands.
read_stdin() {
    # (mktemp -d makes it private to this user)
    WORK=$(mktemp -d)
    : >"$WORK/ssh_config"
    : >"$WORK/known_hosts"
    local name b64 key
    while read -r name b64; do
        case "$name" in
            builder | builder-proxy | target | target-proxy)
                [ -n "$b64" ] || continue
                key=$(base64 -d <<<"$b64") || fatal "the private key of $name is not base64"
                # with exactly one final newline: OpenSSH refuses a key without it (`pulumi config
                # set ... < file` drops it); private to this user, or OpenSSH refuses it too
                (umask 077 && printf '%s\n' "$key" >"$WORK/$name.key")
                ;;
            install | uninstall) base64 -d <<<"$b64" >"$WORK/$name.cmd" || fatal "the $name command is not base64" ;;
            *) fatal "unknown line '$name' on stdin" ;;
        esac
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
        # a session whose host went away (network cut, machine gone) ends after 3 unanswered
        # keepalives instead of hanging until TCP gives up, hours later
        printf '  ServerAliveInterval %s\n  ServerAliveCountMax 3\n' "${FORKLIFT_CONNECT_TIMEOUT:-15}"
        # the artifact's copy is the bulk of what these sessions carry: AES-GCM (the AES instructions
        # of x86-64 and ARMv8 CPUs) costs less CPU on both ends than OpenSSH's first choice,
        # chacha20-poly1305; the list is OpenSSH's default set, reordered
        printf '  Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr\n'
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

# (fd 9, the connection's lock, is not passed on: the connection ssh leaves open would hold it)
remote() { ssh -F "$WORK/ssh_config" "$@" 9>&-; }

# Seconds an SSH connection to a fleet host stays open unused for the next run's session: long
# enough for the first batch's installs, which start as the last check ends; short, so that few
# connections outlive their use.
readonly SHARE_IDLE=5
# Seconds an open connection has to run `true` before it is taken for dead: a session asked of a
# connection whose host has gone away since would wait for the keepalives to fail
# (3 × sshConnectTimeout); a live one answers in ~0.01 s, a busy one well within this.
readonly SHARE_PROBE=3
# Seconds a run waits for another run on the same connection (the precheck's check of the host, as
# it logs in) before it connects on its own.
readonly SHARE_WAIT=60

# Lets the check before a rollout and the install that follows share one SSH connection to the
# fleet host: the first leaves its connection open (an OpenSSH control master) for SHARE_IDLE
# seconds unused, and the install's session rides on it. A login costs the host ~0.14 s of CPU
# (sshd, PAM, logind) and ~0.25 s of time, a session on an open connection ~0.01 s. The socket is
# named after everything that makes the route (addresses, ports, users, host keys, private keys),
# in a directory only this user may enter; where there is no such directory, nothing is shared.
share_connection() {
    local dir id f
    dir="${XDG_RUNTIME_DIR:-/tmp}/forklift-ssh-$EUID"
    [ -d "$dir" ] || mkdir -m 0700 "$dir" 2>/dev/null || return 0
    [ -O "$dir" ] && [ "$(stat -c %a "$dir")" = 700 ] || return 0
    local route="" var
    for var in $(compgen -e FORKLIFT_TARGET_) FORKLIFT_INSECURE; do
        route+="$var=${!var:-}"$'\n'
    done
    for f in "$WORK/target.key" "$WORK/target-proxy.key"; do
        [ ! -f "$f" ] || route+=$(<"$f")$'\n'
    done
    id=$(sha256sum <<<"$route")
    id=${id:0:24}
    printf 'Host target\n  ControlMaster auto\n  ControlPath %s/%s\n  ControlPersist %s\n' "$dir" "$id" "$SHARE_IDLE" >>"$WORK/ssh_config"
    # one run at a time per connection, until it ends: a check that starts while the precheck is
    # still logging in to the host waits for it, then rides on the connection it leaves open
    # instead of logging in a second time
    exec 9>>"$dir/$id.lock"
    SHARE_FAILED="$dir/$id.failed"
    if flock -n 9; then
        rm -f "$SHARE_FAILED"
    else
        flock -w "$SHARE_WAIT" 9 || info "$(target_name): another run has held its SSH connection for ${SHARE_WAIT}s; connecting on its own"
        # the run this one waited for could not connect (the host is down, its key is wrong): the
        # same answer at once, not after another sshConnectTimeout
        [ ! -s "$SHARE_FAILED" ] || fatal "$(cat "$SHARE_FAILED")"
    fi
    # a connection left open by an earlier run: used only if it still answers, else closed, and
    # this run connects anew (and is told at once when the host is down)
    if remote -O check target 2>/dev/null && ! timeout "$SHARE_PROBE" ssh -F "$WORK/ssh_config" target true </dev/null >/dev/null 2>&1 9>&-; then
        remote -O exit target >/dev/null 2>&1 || true
        info "$(target_name): the SSH connection left open for this run no longer answers; connecting anew"
    fi
}

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
            fatal "could not copy $FORKLIFT_REMOTE_PATH from the build host $FORKLIFT_BUILDER_ADDRESS, and the local cache $FORKLIFT_CACHE_DIR does not have it. If the build host lost its builds (or was replaced), build again: pulumi up --replace \"\$(pulumi stack --show-urns | grep -o 'urn:pulumi:[^ ]*::forklift-fork-build\$')\""
        fi
        got=$(sha_of "$part")
        [ "$got" = "$FORKLIFT_SHA256" ] || { rm -f "$part"; fatal "the artifact fetched from the build host has sha256 $got, expected $FORKLIFT_SHA256"; }
        mv -f "$part" "$dest"
        info "fetched $(stat -c %s "$dest") bytes from the build host into $dest"
    fi
    exec 8>&-
    case "$dest" in /*) printf '%s\n' "$dest" ;; *) printf '%s\n' "$PWD/$dest" ;; esac
}

# What to call the fleet host in messages.
target_name() { printf '%s (%s:%s)' "${FORKLIFT_HOST:-${FORKLIFT_TARGET_ADDRESS:-?}}" "${FORKLIFT_TARGET_ADDRESS:-?}" "${FORKLIFT_TARGET_PORT:-22}"; }

# Fails with MESSAGE about the connection, recorded for a run that waits for this one.
ssh_fatal() {
    [ -z "$SHARE_FAILED" ] || printf '%s\n' "$*" >"$SHARE_FAILED" 2>/dev/null || true
    fatal "$@"
}

unreachable() {
    ssh_fatal "cannot reach $(target_name) over SSH: check that it is up, that its hostKey is right and that ${FORKLIFT_TARGET_USER:-root} can log in with its key"
}

# Copies the cached artifact to the fleet host and installs it there, in one SSH session: its
# stdin is forklift-host.sh, then the tgz, which the host checks against its sha256 before
# anything changes. A host that has the release unpacked does not read the tgz.
install() {
    require FORKLIFT_SHA256
    [[ "$FORKLIFT_SHA256" =~ ^[0-9a-f]{64}$ ]] || fatal "FORKLIFT_SHA256 is not a sha256"
    [ -s "$WORK/install.cmd" ] || fatal "no install command on stdin"
    local src rc=0
    add_route target TARGET
    share_connection
    CLOSE_SHARED=1
    if src=$(fetch 2>"$WORK/fetch.err"); then
        cat "$WORK/fetch.err" >&2
    else
        # neither the local cache nor the build host has it (a fresh checkout, a build host that
        # lost its builds): a host that has the release unpacked needs no copy
        if ! remote target "test -d /opt/forklift/releases/$FORKLIFT_SHA256" </dev/null 2>/dev/null; then
            cat "$WORK/fetch.err" >&2
            exit 1
        fi
        info "$(target_name) has release $FORKLIFT_SHA256 unpacked already: nothing to copy"
        src=""
    fi
    # (cat dies of SIGPIPE when the host does not read the tgz: only ssh's status counts)
    { cat "$SCRIPT_DIR/forklift-host.sh" ${src:+"$src"} 2>/dev/null || true; } | remote target "$(<"$WORK/install.cmd")" || rc=$?
    # ssh itself exits 255 when it cannot connect; anything else is the remote script's own failure
    [ "$rc" != 255 ] || unreachable
    if [ "$rc" != 0 ] && [ -n "$src" ] && [ "$(sha_of "$src")" != "$FORKLIFT_SHA256" ]; then
        rm -f "$src"
        fatal "the cached artifact $src was corrupt; it is removed: run \`pulumi up\` again to fetch it anew"
    fi
    return "$rc"
}

# Says why ssh could not get a session, from its stderr (FILE), naming the host and what to check.
explain_ssh_failure() {
    local err where
    err=$(grep -v '^Warning: Permanently added' "$1" | tail -n 3 | tr '\n' ' ')
    where=$(target_name)
    case "$err" in
        *"Host key verification failed"* | *"IDENTIFICATION HAS CHANGED"* | *"host key for"*"has changed"*)
            ssh_fatal "$where: its SSH host key is not the pinned hostKey; check hostKey (ssh-keyscan -t ed25519 ${FORKLIFT_TARGET_ADDRESS:-}) and that the address is the machine you mean. ssh said: $err" ;;
        *"Permission denied"* | *"Too many authentication failures"*)
            ssh_fatal "$where: the login as ${FORKLIFT_TARGET_USER:-root} was refused; check user and privateKey (or the agent's keys). ssh said: $err" ;;
        *"timed out"* | *"No route to host"* | *"Network is unreachable"* | *"Connection refused"* | *"Could not resolve"* | *"Name or service not known"*)
            ssh_fatal "$where: unreachable; check that it is up, the address and port, and the network path (sshConnectTimeout is ${FORKLIFT_CONNECT_TIMEOUT:-15}s). ssh said: $err" ;;
        *) ssh_fatal "$where: SSH failed: $err" ;;
    esac
}

check() {
    add_route target TARGET
    share_connection
    local out rc=0
    # ($2, the release: where forklift-host.sh has it unpacked already, under its OPT, /opt/forklift,
    # the install copies nothing and needs no room)
    # shellcheck disable=SC2016 # expanded by the remote shell
    local script='if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then echo "the login user $(id -un) cannot sudo without a password (forklift needs root or passwordless sudo)"; exit 3; fi
[ -d /run/systemd/system ] || { echo "systemd is not running as init (forklift runs Docker under systemd)"; exit 3; }
[ -n "$2" ] && [ -d "/opt/forklift/releases/$2" ] || for d in /opt /var/tmp; do a=$(df -Pk "$d" | awk "NR==2 {print \$4}"); if [ "$a" -lt "$1" ]; then echo "only $((a / 1024)) MiB free in $d, the release needs about $(($1 / 1024)) MiB"; exit 3; fi; done
bash -c "$(cat)" forklift-host.sh owner || exit 3'
    # forklift-host.sh (on stdin) decides whether another stack owns the host, as at install. It
    # is read whole first: bash -s reads a script from a pipe one byte at a time (~43,000 reads
    # on the host, twice per host and rollout)
    local owner_vars
    printf -v owner_vars 'FORKLIFT_HOST=%q FORKLIFT_OWNER=%q FORKLIFT_STACK_ID=%q' "${FORKLIFT_HOST:-}" "${FORKLIFT_OWNER:-}" "${FORKLIFT_STACK_ID:-}"
    out=$(remote target "$owner_vars sh -c '$script' sh ${FORKLIFT_NEED_KIB:-0} ${FORKLIFT_SHA256:-''}" 2>"$WORK/ssh.err" <"$SCRIPT_DIR/forklift-host.sh") || rc=$?
    [ "$rc" != 255 ] || explain_ssh_failure "$WORK/ssh.err"
    [ "$rc" = 0 ] || fatal "$(target_name): ${out:-$(tail -n 3 "$WORK/ssh.err")}"
    if [ -n "${FORKLIFT_NEED_KIB:-}" ]; then
        info "$(target_name): reachable, host key as pinned, login, sudo, systemd, disk space and owner checked"
    else
        info "$(target_name): reachable, host key as pinned, login, sudo, systemd and owner checked"
    fi
}

# Hosts checked at once by prechecks and checks: each host of the precheck is an SSH login (~0.13 s
# of this machine's CPU with OpenSSH 9.2's post-quantum key exchange) while the fork builds; each
# host of the check after it is a session on the connection the precheck left open.
readonly CHECK_PARALLEL=32

# Runs check for every host block of stdin, CHECK_PARALLEL at a time, each with its own variables
# and keys; prints each host's result in stdin's order and fails naming the hosts that failed
# (WHAT: the precheck or the check).
check_all() {
    local what=$1
    # (mktemp -d makes it private to this user)
    WORK=$(mktemp -d)
    local n=0 name b64 i running=0 failed=()
    while read -r name b64; do
        case "$name" in
            vars)
                n=$((n + 1))
                printf '%s' "$b64" | base64 -d >"$WORK/$n.vars" || fatal "the variables of host $n are not base64"
                : >"$WORK/$n.stdin"
                ;;
            target | target-proxy)
                [ "$n" -gt 0 ] || fatal "a key line before the first vars line on stdin"
                printf '%s %s\n' "$name" "$b64" >>"$WORK/$n.stdin"
                ;;
            *) fatal "unknown line '$name' on stdin" ;;
        esac
    done
    [ "$n" -gt 0 ] || fatal "no host to check on stdin"
    for ((i = 1; i <= n; i++)); do
        if [ "$running" -ge "$CHECK_PARALLEL" ]; then
            wait -n || true
            running=$((running - 1))
        fi
        (
            mapfile -d '' -t assigns <"$WORK/$i.vars"
            rc=0
            # (never a bare `export`: it would print the environment)
            [ "${#assigns[@]}" -eq 0 ] || export -- "${assigns[@]}"
            bash "$SCRIPT_DIR/artifact.sh" check <"$WORK/$i.stdin" 2>"$WORK/$i.err" || rc=$?
            echo "$rc" >"$WORK/$i.rc"
        ) &
        running=$((running + 1))
    done
    wait || true
    for ((i = 1; i <= n; i++)); do
        cat "$WORK/$i.err" >&2 2>/dev/null || true
        [ "$(cat "$WORK/$i.rc" 2>/dev/null)" = 0 ] || failed+=("$(tr '\0' '\n' <"$WORK/$i.vars" | sed -n 's/^FORKLIFT_HOST=//p')")
    done
    [ "${#failed[@]}" = 0 ] || fatal "the $what failed on ${#failed[@]} of $n hosts: $(printf '%s, ' "${failed[@]}" | sed 's/, $//') (see above)"
}

uninstall() {
    [ -s "$WORK/uninstall.cmd" ] || fatal "no uninstall command on stdin"
    local rc=0
    add_route target TARGET
    remote target "$(cat "$WORK/uninstall.cmd")" </dev/null || rc=$?
    [ "$rc" != 255 ] || unreachable
    return "$rc"
}

main() {
    local mode=${1:-}
    case "$mode" in
        fetch | install | uninstall | check)
            read_stdin
            "$mode"
            ;;
        prechecks) check_all precheck ;;
        checks) check_all check ;;
        *) fatal "usage: $0 fetch|install|uninstall|check|prechecks|checks < stdin" ;;
    esac
}

main "$@"
