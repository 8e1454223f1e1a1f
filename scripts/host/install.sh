# shellcheck shell=bash
# install.sh — install: the release switched, restarted, verified and committed; rolled back when
# any of it fails.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

# Puts the host back on release PREV (or on what was there before forklift) after a failed install,
# then fails naming the cause; the status line on stdout says what the host runs now.
roll_back() {
    local prev=$1 cause=$2 log health
    ROLLBACK_ARMED=""
    log=$(daemon_log_tail)
    # (a release was installed before: never an uninstall, whatever is missing)
    if [ -n "$prev" ]; then
        warn "release $FORKLIFT_SHA256 failed ($cause); rolling back to $prev"
        # each step goes on whatever the one before did: the verify below says whether it worked
        switch_to "$prev" || warn "switching back to $prev failed"
        if [ -d "$STATE/applied" ]; then apply_files "$STATE/applied" || warn "putting back the files of $prev failed"; fi
        restart_docker rollback >&2 || true
        # a rollback counts only where Docker answers with the old release and, on a Swarm node,
        # the node is back in its cluster
        if health=$(rolled_back_healthy "$prev"); then
            [ "$prev" = "$FORKLIFT_SHA256" ] || rm -rf "${OPT:?}/releases/$FORKLIFT_SHA256"
            status_json false || true
            fatal "new release $FORKLIFT_SHA256 failed: $cause. Rolled back to release $prev; Docker is answering${health:+; $health}. Daemon log:
$log"
        fi
        printf '{"error":"rollback-failed"}\n' || true
        status_json false || true
        fatal "new release $FORKLIFT_SHA256 failed: $cause; rollback to $prev also failed: $health. Daemon log:
$log"
    fi
    warn "first install of $FORKLIFT_SHA256 failed ($cause); restoring the host's previous Docker"
    # (the uninstall removes $STATE: the copy of the Swarm state goes aside for the rejoin)
    if [ -d "$SWARM_COPY" ]; then
        mv "$SWARM_COPY" "/var/tmp/forklift-swarm-state.$$"
        SWARM_COPY=/var/tmp/forklift-swarm-state.$$
    fi
    do_uninstall
    health=""
    if [ -n "$SWARM_INFO" ] && ! systemctl is-enabled --quiet docker.service 2>/dev/null && ! systemctl is-active --quiet docker.service; then
        health="given back to a host without a Docker of its own: out of its Swarm until one runs"
    elif [ -n "$SWARM_INFO" ] && ! health=$(rolled_back_healthy ""); then
        rm -rf "/var/tmp/forklift-swarm-state.$$"
        status_json false || true
        fatal "new release $FORKLIFT_SHA256 failed: $cause. Restored what was on the host before forklift, but $health. Daemon log:
$log"
    fi
    rm -rf "/var/tmp/forklift-swarm-state.$$"
    status_json false || true
    fatal "new release $FORKLIFT_SHA256 failed: $cause. Restored what was on the host before forklift${health:+; $health}. Daemon log:
$log"
}

# A release without containerd replacing one with it, on a host with no containerd of its own:
# forklift's containerd stops, dockerd starts one of its own, and the containers of the old one
# would run on with nothing managing them (live-restore cannot carry them across). Refuses while
# there are any, before anything changes.
check_containerd_handover() {
    owns /etc/systemd/system/containerd.service || return 0
    [ ! -f "$STAGE/files/containerd.service" ] || return 0
    ! unit_was containerd.service active || return 0
    systemctl is-active --quiet containerd.service || return 0
    local ctr=$OPT/current/ctr running
    [ -x "$ctr" ] || ctr=ctr
    running=$("$ctr" -n moby tasks ls -q 2>/dev/null | grep -c . || true)
    [ "$running" -eq 0 ] || fatal "the new release ships no containerd and this host has none of its own: the $running running container(s) of forklift's containerd would be left running with nothing managing them. Stop them (docker stop), then run \`pulumi up\` again; nothing was changed"
}

# Ends a guarded install or uninstall on a Swarm node without a change: exit 75 with the node's
# Swarm state on stdout, for the local side to drain it first.
drain_first() {
    info "a Swarm node: its tasks must move away before its engine restarts; nothing was changed"
    printf '{"host":"%s","drainFirst":true,"swarm":%s}\n' "$HOST_NAME" "$SWARM_INFO"
    exit "$EXIT_DRAIN_FIRST"
}

# MODE: install, or install-drained (a Swarm node drained for it)
do_install() {
    local mode=$1
    require_tools
    # once here: the hashes below run in subshells, which would each choose again
    sha256_tool
    # before the copy, so that a host another stack owns receives none; and again under the lock,
    # where it counts: another stack's install may have finished in between
    check_owner
    read_swarm_info
    read_unlock_key
    stage_files
    receive_artifact
    take_lock
    remove_stale_copies
    check_owner
    SHADOW_DIRS=$(shadow_dirs)
    if up_to_date; then
        info "release $FORKLIFT_SHA256 already installed and running; nothing to do"
        install_self
        record_owner
        status_json false
        return 0
    fi
    if [ -n "$SWARM_INFO" ] && [ "$mode" = install ]; then
        unpack_release
        drain_first
    fi
    check_containerd_handover
    local prev reason
    # the last release that verified, not whatever an interrupted run left in `current`
    prev=$(sed -n 's/^sha256=//p' "$STATE/installed" 2>/dev/null || true)
    # the HUP (and the second it waits) only where the daemon may lack the file's settings
    local reload=reload
    if systemctl is-active --quiet docker.service && daemon_read_config; then reload=no-reload; fi
    unpack_release
    record_pre_state
    # from here on the host changes: the copy of this script goes first, so that an uninstall
    # (`pulumi destroy`) finds it however this run ends
    install_self
    # from the switch until the release is recorded as installed, any failure rolls the host back
    # (see on_error): it runs the old release or the new one, never a mix
    ROLLBACK_TO=$prev
    ROLLBACK_ARMED=1
    switch_to "$FORKLIFT_SHA256"
    apply_files "$STAGE/files"
    ensure_group
    if ! reason=$(restart_docker "$reload" 2>&1); then
        roll_back "$prev" "systemd could not start the new daemon: ${reason:-no output}"
    fi
    if ! reason=$(verify_release "$FORKLIFT_SHA256"); then
        roll_back "$prev" "$reason"
    fi
    if [ -n "$SWARM_INFO" ] && ! reason=$(wait_swarm_rejoined "$(docker_cli "$OPT/releases/$FORKLIFT_SHA256")"); then
        roll_back "$prev" "$reason"
    fi
    if ! reason=$(run_health_check); then
        roll_back "$prev" "$reason"
    fi
    release_stale_links
    install_self
    record_owner
    commit_release "$FORKLIFT_SHA256" "${FORKLIFT_VERSION:-}" "$STAGE/files"
    ROLLBACK_ARMED=""
    prune_releases "$prev" || warn "could not remove older releases from $OPT/releases"
    info "release $FORKLIFT_SHA256 (${FORKLIFT_VERSION:-}) is running"
    status_json true
}

# The commit point: release SHA (VERSION) with the managed files of directory FILES is the one to
# come back to; the one before it, and its files, are kept for a rollback after the commit (a
# failed soak). Each record is whole at every moment: a copy, then renames.
commit_release() {
    local sha=$1 version=$2 files=$3
    rm -rf "$STATE/applied.new"
    cp -a "$files" "$STATE/applied.new"
    if [ -f "$STATE/installed" ] && [ "$(sed -n 's/^sha256=//p' "$STATE/installed")" != "$sha" ]; then
        cp -f "$STATE/installed" "$STATE/installed.prev.tmp"
        mv -f "$STATE/installed.prev.tmp" "$STATE/installed.prev"
        rm -rf "$STATE/applied.prev"
        [ ! -d "$STATE/applied" ] || mv "$STATE/applied" "$STATE/applied.prev"
    fi
    rm -rf "$STATE/applied"
    mv "$STATE/applied.new" "$STATE/applied"
    printf 'sha256=%s\nversion=%s\n' "$sha" "$version" >"$STATE/installed.tmp"
    mv -f "$STATE/installed.tmp" "$STATE/installed"
    # (a release newly in place has not passed a soak yet)
    rm -f "$STATE/soaked"
}
