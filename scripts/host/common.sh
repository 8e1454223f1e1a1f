# shellcheck shell=bash
# common.sh — messages (info, warn, fatal and its JSON line), the lock, the checks every job starts
# with.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

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
# A run that finds the lock taken says whose run it waits for before it waits: the holder writes
# its PID and what it is into the file (the lock is on the file, not its content). A file that
# cannot be written (a full /run/lock) only loses that line.
take_lock() {
    mkdir -p "$(dirname "$LOCK")"
    exec 9>>"$LOCK"
    if ! flock -n 9; then
        info "waiting (up to 300 s) for another forklift run on this host to end: $(lock_holder)"
        flock -w 300 9 || fatal "another forklift run holds $LOCK and did not end within 300 s: $(lock_holder)"
    fi
    { printf '%s\n%s of %s (pid %s, since %s)\n' "$$" "$RUN_MODE" "${FORKLIFT_OWNER:-a stack that did not say}" "$$" "$(date -u +%FT%TZ)" >"$LOCK"; } 2>/dev/null || true
}
# Who holds the lock, as its holder wrote it, if that process is alive (anyone can create the file
# in /run/lock after a boot: printable characters only, and not much of them).
lock_holder() {
    local pid="" what=""
    { IFS= read -r pid && IFS= read -r what; } <"$LOCK" 2>/dev/null || true
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        printf '%s' "$what" | LC_ALL=C tr -cd '[:print:]' | head -c 200
    else
        echo "a process that did not say who it is"
    fi
}

preflight() {
    require_tools
    take_lock
}
