# shellcheck shell=bash
# swarm.sh — a Swarm node: its state, its unlock, its rejoin after the restart, whether a rollback
# left it healthy.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

# `docker info`'s Swarm part (JSON) of the running daemon when it takes part in a Swarm; empty
# otherwise (not in a Swarm). Set by read_swarm_info, with ENGINE_VERSION (its ServerVersion,
# empty where no engine answered).
SWARM_INFO=""
ENGINE_VERSION=""
# The Swarm unlock key (swarmUnlockKey), read from stdin where FORKLIFT_SWARM_UNLOCK is set: a
# manager of an autolocked cluster comes back locked after each engine start (see swarm_unlock).
UNLOCK_KEY=""

# The docker CLI to ask the running daemon with: the current release's, else the host's own.
running_cli() {
    docker_cli "$OPT/current"
}

# Sets SWARM_INFO. A node whose engine cannot tell (stopped, not answering, no docker CLI to ask it
# with) but whose data root holds Swarm state (swarm/docker-state.json, there until the node leaves
# its Swarm) is refused: taken for a plain host, it would be restarted undrained.
read_swarm_info() {
    SWARM_INFO=""
    ENGINE_VERSION=""
    local cli info member=""
    [ ! -e "$(data_root)/swarm/docker-state.json" ] || member=1
    if ! systemctl is-active --quiet docker.service; then
        [ -z "$member" ] || fatal "its engine is not running, and $(data_root)/swarm says it is a Swarm node: forklift drains a Swarm node through its cluster before its engine restarts, and this one's cannot be asked. Start it (systemctl start docker.service), or take the node out of its Swarm (docker swarm leave); nothing was changed"
        return 0
    fi
    cli=$(running_cli)
    if [ -z "$cli" ]; then
        [ -z "$member" ] || fatal "there is no docker CLI to ask its engine with, and $(data_root)/swarm says it is a Swarm node: it cannot be drained, so it is not restarted; nothing was changed"
        return 0
    fi
    if ! info=$(timeout 20 "$cli" -H unix:///run/docker.sock info --format '{{.ServerVersion}}{{"\t"}}{{json .Swarm}}' 2>/dev/null); then
        [ -z "$member" ] ||
            fatal "its engine runs but did not answer \`docker info\` within 20s, and $(data_root)/swarm says it is a Swarm node: it cannot be drained, so it is not restarted; nothing was changed (see \`journalctl -u docker.service\`)"
        return 0
    fi
    ENGINE_VERSION=${info%%$'\t'*}
    info=${info#*$'\t'}
    case "$info" in *'"LocalNodeState":"active"'* | *'"LocalNodeState":"pending"'* | *'"LocalNodeState":"error"'* | *'"LocalNodeState":"locked"'*) SWARM_INFO=$info ;; esac
}

# Where the engine keeps its state: daemon.json's data-root, else Docker's default. (A Swarm node's
# swarm/docker-state.json there lasts until it leaves its Swarm.)
data_root() {
    local root
    root=$(sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' /etc/docker/daemon.json 2>/dev/null | head -n 1)
    echo "${root:-/var/lib/docker}"
}

# True when the Swarm part SWARM_INFO says this node is a manager.
swarm_manager() {
    [[ "$SWARM_INFO" == *'"ControlAvailable":true'* ]]
}

# The nodes of the cluster as this manager sees them (`docker node ls`), as a JSON array.
swarm_nodes_json() {
    local rows
    rows=$(timeout 20 "$(running_cli)" -H unix:///run/docker.sock node ls --format '{{json .}}' 2>/dev/null | paste -sd, -) || rows=""
    printf '[%s]' "$rows"
}

# Reads the unlock key from stdin, where the local side sends it (FORKLIFT_SWARM_UNLOCK set): the
# first line, before anything else the run reads there. Never in a command line or a message.
read_unlock_key() {
    [ -n "${FORKLIFT_SWARM_UNLOCK:-}" ] || return 0
    IFS= read -r UNLOCK_KEY || true
    # (an empty line: no key, for a worker or a cluster without autolock)
}

# Unlocks the manager whose engine CLI answers, when it came back locked (autolock), with the key
# on the unlock command's stdin. Says why not, and returns 1, when it cannot.
swarm_unlock() {
    local cli=$1 out
    if [ -z "$UNLOCK_KEY" ]; then
        echo "its engine came back locked (the cluster has autolock on) and no unlock key was given (swarmUnlockKey)"
        return 1
    fi
    if ! out=$(printf '%s\n' "$UNLOCK_KEY" | timeout 30 "$cli" -H unix:///run/docker.sock swarm unlock 2>&1); then
        echo "its engine came back locked and \`docker swarm unlock\` refused the key (swarmUnlockKey: rotated since?): ${out//$UNLOCK_KEY/(key)}"
        return 1
    fi
    info "unlocked its Swarm manager (autolock)" 2>&3
}

# Waits until the node, its engine restarted, is back in its Swarm as its cluster sees it: active
# (unlocked first where it came back locked); a manager Ready and reachable, with a leader elected.
# CLI: the docker CLI to ask with. Returns 1 naming what it lacks.
wait_swarm_rejoined() {
    local cli=$1 info deadline me tried=""
    deadline=$((SECONDS + SWARM_TIMEOUT))
    while :; do
        info=$(timeout 20 "$cli" -H unix:///run/docker.sock info --format '{{json .Swarm}}' 2>/dev/null || true)
        if [[ "$info" == *'"LocalNodeState":"locked"'* ]] && [ -z "$tried" ]; then
            tried=1
            swarm_unlock "$cli" || return 1
            continue
        fi
        if [[ "$info" == *'"LocalNodeState":"active"'* ]]; then
            # (a worker is active once a manager's dispatcher took it in: its cluster sees it Ready)
            if ! swarm_manager; then return 0; fi
            me=$(timeout 20 "$cli" -H unix:///run/docker.sock node inspect self --format '{{.Status.State}} {{.ManagerStatus.Reachability}}' 2>/dev/null || true)
            if [[ "$info" == *'"ControlAvailable":true'* ]] && [ "$me" = "ready reachable" ] &&
                timeout 20 "$cli" -H unix:///run/docker.sock node ls --format '{{.ManagerStatus}}' 2>/dev/null | grep -qx Leader; then
                return 0
            fi
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "the node was not back in its Swarm within ${SWARM_TIMEOUT}s (swarmNodeTimeout; its state: ${info:-no answer}${me:+, as its cluster sees it: $me})"
            return 1
        fi
        sleep 1
    done
}

# A copy of the node's Swarm state (<data-root>/swarm), taken while its engine is stopped before
# the switch to a new release: a rollback restores it where the old engine cannot come back with
# what the new one left (a Raft format it cannot read).
copy_swarm_state() {
    local root
    root=$(data_root)
    [ -d "$root/swarm" ] || return 0
    rm -rf "$SWARM_COPY.tmp"
    cp -a "$root/swarm" "$SWARM_COPY.tmp"
    rm -rf "$SWARM_COPY"
    mv "$SWARM_COPY.tmp" "$SWARM_COPY"
}

# Where copy_swarm_state keeps its copy (a first install's rollback, which removes $STATE, moves it).
SWARM_COPY=$STATE/swarm-state

# After a rollback's restart, whether the host is healthy on what it went back to: Docker answers
# with release PREV ("": the host's own Docker) and, on a Swarm node, the node is back in its
# cluster. Where not, and the Swarm state was copied before the switch (a newer engine may have left
# it in a form the old one cannot start or rejoin with), the copy is put back and the engine started
# once more. Prints what it found ("" for a plain host); returns 1 when it is not healthy.
rolled_back_healthy() {
    local prev=$1 reason cli root
    cli=$(if [ -n "$prev" ]; then docker_cli "$OPT/releases/$prev"; else command -v docker || true; fi)
    if reason=$(answers "$prev" "$cli") && { [ -z "$SWARM_INFO" ] || reason=$(wait_swarm_rejoined "$cli"); }; then
        [ -z "$SWARM_INFO" ] || echo "back in its Swarm"
        return 0
    fi
    if [ -z "$SWARM_INFO" ] || [ ! -d "$SWARM_COPY" ]; then
        echo "$reason"
        return 1
    fi
    warn "the rolled-back engine is not back in its Swarm ($reason): putting back its Swarm state as it was before the switch" 2>&3
    root=$(data_root)
    systemctl stop docker.service docker.socket || true
    rm -rf "$root/swarm"
    cp -a "$SWARM_COPY" "$root/swarm"
    systemctl reset-failed docker.service docker.socket 2>/dev/null || true
    timeout "$VERIFY_TIMEOUT" systemctl start docker.service || true
    if reason=$(answers "$prev" "$cli") && reason=$(wait_swarm_rejoined "$cli"); then
        echo "back in its Swarm, with its Swarm state as it was before the switch"
        return 0
    fi
    echo "not back in its Swarm, not even with its Swarm state as it was before the switch: $reason"
    return 1
}

# Whether Docker answers: release PREV's dockerd (verify_release), or with PREV "", the host's own
# (docker version through the socket, with the CLI CLI, within VERIFY_TIMEOUT).
answers() {
    if [ -n "$1" ]; then
        # (an explicit status: a bare `return` in a function run from the ERR trap (roll_back)
        # returns the status of the command that fired the trap)
        verify_release "$1"
        return $?
    fi
    [ -n "$2" ] || { echo "no docker CLI to ask its engine with"; return 1; }
    local deadline=$((SECONDS + VERIFY_TIMEOUT))
    until "$2" -H unix:///run/docker.sock version --format '{{.Server.Version}}' >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "docker did not answer within ${VERIFY_TIMEOUT}s"; return 1; }
        sleep 0.2
    done
}
