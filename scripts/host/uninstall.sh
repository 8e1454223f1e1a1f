# shellcheck shell=bash
# uninstall.sh — uninstall: every owned path given back, the distro units as they were.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

# Gives back every owned path, reloads systemd and brings back the distro units' previous state.
do_uninstall() {
    stop_containers_without_future
    systemctl stop docker.service docker.socket 2>/dev/null || true
    if owns /etc/systemd/system/containerd.service; then
        systemctl stop containerd.service 2>/dev/null || true
    fi
    systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
    local path unit enabled active
    while read -r path; do
        [ -n "$path" ] && release_path "$path"
    done < <(tac "$STATE/owned.list" 2>/dev/null || true)
    systemctl daemon-reload
    remove_traces
    if [ -f "$STATE/pre-state" ]; then
        while read -r unit enabled active; do
            case "$unit" in group-created) continue ;; esac
            [ "$enabled" != enabled ] || systemctl enable "$unit" >/dev/null 2>&1 || warn "cannot re-enable $unit"
            [ "$active" != active ] || systemctl start "$unit" || warn "cannot restart $unit"
        done <"$STATE/pre-state"
        if grep -qx group-created "$STATE/pre-state"; then groupdel docker 2>/dev/null || true; fi
    fi
    rm -rf "$OPT" "$STATE" "$SELF_DIR"
    remove_stale_copies
    info "uninstalled; the host is as forklift found it"
}

# After do_uninstall on a Swarm node: the node back in its cluster on the host's own Docker (the
# local side waits only for its cluster to catch up); a host that had no Docker stays out of it.
rejoin_given_back() {
    [ -n "$SWARM_INFO" ] && systemctl is-active --quiet docker.service || return 0
    local reason
    reason=$(wait_swarm_rejoined "$(command -v docker || true)") || fatal "given back to its Docker, but $reason"
}
