# shellcheck shell=bash
# rollback.sh — rollback: back to the release before the current one after it was committed (a
# failed soak).
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

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
        rejoin_given_back
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
