# shellcheck shell=bash
# check.sh — who owns the host, the check before a rollout (check, stage) and the status line.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

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
    printf '{"host":"%s","release":"%s","copied":%s,"current":"%s","currentVersion":"%s","soaked":%s,"engine":%s,"swarm":%s%s}\n' "$HOST_NAME" "$release" "$([ -n "$ARTIFACT" ] && echo true || echo false)" "$current" "$version" "$soaked" "$(json_string "$ENGINE_VERSION")" "$swarm" "$nodes"
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
    remove_stale_copies
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

status_json() {
    local sha version="" dockerd_sha="" active
    sha=$(current_sha)
    [ ! -f "$STATE/installed" ] || version=$(sed -n 's/^version=//p' "$STATE/installed")
    active=$(systemctl is-active docker.service 2>/dev/null || true)
    if [ -n "$sha" ] && [ -f "$OPT/releases/$sha/dockerd" ]; then dockerd_sha=$(sha256_of "$OPT/releases/$sha/dockerd"); fi
    local engine=""
    [ "$active" != active ] || engine=$(timeout 20 "$(running_cli)" -H unix:///run/docker.sock version --format '{{.Server.Version}}' 2>/dev/null || true)
    printf '{"host":"%s","sha256":"%s","version":"%s","dockerdSha256":"%s","dockerService":"%s","engineVersion":"%s","changed":%s,"swarm":%s}\n' \
        "$HOST_NAME" "$sha" "$version" "$dockerd_sha" "$active" "$engine" "${1:-false}" "${SWARM_INFO:-null}"
}
