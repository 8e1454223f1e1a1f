# shellcheck shell=bash
# traces.sh — what a Docker daemon leaves behind that no package or unit owns, recorded before the
# first install and removed by the uninstall.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

# Remembers whether distro units were enabled/active, so uninstall can bring them back.
record_pre_state() {
    [ -f "$STATE/pre-state" ] && return 0
    mkdir -p "$STATE"
    local unit enabled active
    : >"$STATE/pre-state.tmp"
    for unit in containerd.service docker.socket docker.service; do
        enabled=$(systemctl is-enabled "$unit" 2>/dev/null || true)
        active=$(systemctl is-active "$unit" 2>/dev/null || true)
        echo "$unit ${enabled:-unknown} ${active:-unknown}" >>"$STATE/pre-state.tmp"
    done
    getent group docker >/dev/null || echo "group-created" >>"$STATE/pre-state.tmp"
    record_pre_traces >"$STATE/pre-traces"
    mv -f "$STATE/pre-state.tmp" "$STATE/pre-state"
}

# ---- Docker's runtime traces: what a daemon leaves behind that no package or unit file owns ----

# TRACE_PATHS with their directories resolved (/var/run is /run), each once.
trace_paths() {
    local path real seen=" "
    for path in $TRACE_PATHS; do
        real="$(readlink -m "$(dirname "$path")")/$(basename "$path")"
        case "$seen" in *" $real "*) continue ;; esac
        seen="$seen$real "
        echo "$real"
    done
}

# Bridges a Docker daemon creates: docker0 and one br-<network id> per user network.
docker_links() {
    ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true
}

# The iptables commands and tables present on this host, as "CMD TABLE" lines.
iptables_tables() {
    local cmd table
    for cmd in iptables ip6tables; do
        command -v "$cmd" >/dev/null || continue
        for table in filter nat mangle raw; do
            "$cmd" -t "$table" -S >/dev/null 2>&1 && echo "$cmd $table"
        done
    done
    return 0
}

# Prints what a Docker daemon leaves behind as it is before the first install: each trace path
# (absent, present, or empty: a directory with nothing but lost+found, e.g. a mount point), the
# Docker bridges, whether each iptables table has DOCKER chains, FORWARD policies, ip_forward.
record_pre_traces() {
    local path cmd table link
    for path in $(trace_paths); do
        if [ -d "$path" ] && [ ! -L "$path" ]; then
            if [ -z "$(find "$path" -mindepth 1 -maxdepth 1 ! -name lost+found -print -quit)" ]; then
                echo "path $path empty $(stat -c %a:%u:%g "$path")"
            else
                echo "path $path present"
            fi
        elif [ -e "$path" ] || [ -L "$path" ]; then
            echo "path $path present"
        else
            echo "path $path absent"
        fi
    done
    for link in $(docker_links); do echo "link $link present"; done
    while read -r cmd table; do
        if "$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {found = 1} END {exit !found}'; then
            echo "chains $cmd $table present"
        else
            echo "chains $cmd $table absent"
        fi
        [ "$table" != filter ] || echo "policy $cmd FORWARD $("$cmd" -S FORWARD | awk '$1 == "-P" {print $3; exit}')"
    done < <(iptables_tables)
    echo "sysctl ip_forward $(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo unknown)"
}

# True when the trace path PATH was in state STATE (absent, empty, present) before the first install.
trace_was() {
    awk -v p="$1" -v s="$2" '$1 == "path" && $2 == p && $3 == s {found = 1} END {exit !found}' "$STATE/pre-traces" 2>/dev/null
}

# True when something is mounted below PATH (a container still running): it must stay.
mounted_below() {
    awk -v p="$1/" 'index($5, p) == 1 {found = 1} END {exit !found}' /proc/self/mountinfo
}

# With no Docker data before forklift, nothing runs this daemon's containers after the uninstall:
# stop them while the daemon answers (live-restore would leave them running on removed files).
stop_containers_without_future() {
    trace_was /var/lib/docker absent || trace_was /var/lib/docker empty || return 0
    systemctl is-active --quiet docker.service || return 0
    local cli ids
    cli=$(docker_cli "$OPT/current")
    [ -n "$cli" ] || return 0
    ids=$(timeout "$VERIFY_TIMEOUT" "$cli" -H unix:///run/docker.sock ps -q 2>/dev/null) || return 0
    [ -n "$ids" ] || return 0
    info "stopping $(wc -w <<<"$ids") container(s): the host had no Docker before forklift"
    # shellcheck disable=SC2086 # one id per word
    timeout $((VERIFY_TIMEOUT + 30)) "$cli" -H unix:///run/docker.sock stop $ids >/dev/null || warn "could not stop every container"
}

# Removes the Docker bridges, iptables chains and rules that were not there before the first install.
remove_network_traces() {
    local link ifaces="" cmd table chain rules rule old now
    for link in $(docker_links); do
        grep -qxF "link $link present" "$STATE/pre-traces" && continue
        ifaces="$ifaces${ifaces:+|}$link"
    done
    while read -r cmd table; do
        grep -qxF "chains $cmd $table absent" "$STATE/pre-traces" || continue
        # rules in the built-in chains that jump to Docker's chains or name its bridges
        rules=$("$cmd" -t "$table" -S | awk -v ifs="$ifaces" '
            $1 != "-A" || $2 ~ /^DOCKER/ { next }
            { for (i = 3; i < NF; i++) {
                if (($i == "-j" || $i == "-g") && $(i + 1) ~ /^DOCKER/) { print; next }
                if (ifs != "" && ($i == "-i" || $i == "-o") && $(i + 1) ~ ("^(" ifs ")$")) { print; next } } }') || rules=""
        while read -r rule; do
            [ -n "$rule" ] || continue
            # xargs splits the rule as iptables -S quoted it
            printf -- '-D %s\n' "${rule#-A }" | xargs "$cmd" -t "$table" || warn "cannot delete $cmd -t $table rule: $rule"
        done <<<"$rules"
        for chain in $("$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {print $2}'); do
            "$cmd" -t "$table" -F "$chain" || warn "cannot flush $cmd -t $table $chain"
        done
        for chain in $("$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {print $2}'); do
            "$cmd" -t "$table" -X "$chain" || warn "cannot delete $cmd -t $table $chain"
        done
        if [ "$table" = filter ]; then
            old=$(awk -v c="$cmd" '$1 == "policy" && $2 == c {print $4}' "$STATE/pre-traces")
            now=$("$cmd" -S FORWARD | awk '$1 == "-P" {print $3; exit}') || now=""
            [ -z "$old" ] || [ "$old" = "$now" ] || "$cmd" -P FORWARD "$old" || warn "cannot reset the $cmd FORWARD policy"
        fi
    done < <(iptables_tables)
    for link in ${ifaces//|/ }; do
        ip link delete "$link" || warn "cannot delete link $link"
    done
    if grep -qxF "chains iptables filter absent" "$STATE/pre-traces"; then
        old=$(awk '$1 == "sysctl" && $2 == "ip_forward" {print $3}' "$STATE/pre-traces")
        now=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || true)
        if [ "$old" = 0 ] && [ "$now" = 1 ]; then
            echo 0 2>/dev/null >/proc/sys/net/ipv4/ip_forward || warn "cannot turn ip_forward back off"
        fi
    fi
}

# Removes the trace paths that were not there before the first install and empties the
# directories that were empty; data that was there before (a distro Docker's) is never touched.
remove_path_traces() {
    local kind path state meta
    while read -r kind path state meta; do
        [ "$kind" = path ] || continue
        case "$state" in
            absent) [ -e "$path" ] || [ -L "$path" ] || continue ;;
            empty) [ -d "$path" ] || continue ;;
            *) continue ;;
        esac
        if mounted_below "$path"; then
            warn "leaving $path: something is still mounted below it"
            continue
        fi
        if [ -e "$path/swarm/docker-state.json" ]; then
            # a Swarm member's state (its identity, certificates, a manager's Raft log) is never
            # removed: a later Docker on the host comes back into its cluster with it
            find "$path" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name swarm -exec rm -rf --one-file-system {} +
            info "kept $path/swarm: the node is still a member of its Swarm (\`docker swarm leave\` on it, \`docker node rm\` on a manager, to take it out)"
        elif [ "$state" = absent ]; then
            rm -rf --one-file-system "$path"
        else
            find "$path" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf --one-file-system {} +
            if ! { chmod "${meta%%:*}" "$path" && chown "${meta#*:}" "$path"; }; then
                warn "cannot reset the mode and owner of $path"
            fi
        fi
    done <"$STATE/pre-traces"
}

# Removes what the daemon left that was not there before the first install (daemon stopped).
remove_traces() {
    [ -f "$STATE/pre-traces" ] || return 0
    remove_network_traces
    remove_path_traces
}
