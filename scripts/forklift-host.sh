#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# forklift-host.sh — install, roll back and uninstall a static Docker release on one host.
#
# Usage:
#   forklift-host.sh install     install the release whose tgz arrives on stdin (not read when the
#                                release is unpacked here already; no-op when it is in place). On a
#                                Swarm node that the install would change, it changes nothing and
#                                exits 75 printing the node's Swarm state: its tasks must move away
#                                first (the local side drains it, then runs install-drained). A host
#                                that lacks the release and was sent "ask" for it (below) changes
#                                nothing and exits 76: the local side runs it again with the artifact
#   forklift-host.sh install-drained   install, on a Swarm node drained for it
#   forklift-host.sh uninstall   remove everything forklift put on the host and restore what was
#                                there (on a Swarm node: exit 75 as install does)
#   forklift-host.sh uninstall-drained   uninstall, on a Swarm node drained for it
#   forklift-host.sh status      print the installed release as one JSON line
#   forklift-host.sh check       the check before a rollout: fail naming the cause when the host
#                                cannot take a release (no systemd, a tool missing, too little room
#                                where the release is not unpacked yet, another stack's host); print
#                                what it found as one JSON line
#   forklift-host.sh stage       check, then make the release whose tgz arrives on stdin unpacked here
#                                (sha256 checked first) without switching to it; the JSON line of check
#   forklift-host.sh health      run the health check (FORKLIFT_HEALTH_CHECK_B64) now: exit 0 when it passes
#   forklift-host.sh rollback    put the host back on the release installed before the current one (or
#                                on what was there before forklift), as a failed install would have: for
#                                a release that failed its health check after it was committed (a soak).
#                                On a Swarm node: exit 75 as install does, then rollback-drained
#
# Variables (install):
#   FORKLIFT_HOST             name of the host, used in messages (default: hostname)
#   FORKLIFT_SHA256           expected sha256 of the artifact (the docker-<version>.tgz, layout
#                             docker/<binaries>, on stdin); nothing changes when it differs
#   FORKLIFT_VERSION          version label recorded with the release
#   FORKLIFT_INSTALL_DIR      where the binaries are linked (default /usr/bin)
#   FORKLIFT_DOCKER_SERVICE_B64, FORKLIFT_DOCKER_SOCKET_B64   base64 of the rendered units
#   FORKLIFT_CONTAINERD_SERVICE_B64   base64 of containerd.service, empty when the release has none
#   FORKLIFT_DAEMON_JSON_B64  base64 of /etc/docker/daemon.json, empty to leave the host's file alone
#   FORKLIFT_DAEMON_JSON_SWARM_B64  base64 of the daemon.json for a Swarm node (without live-restore,
#                             which dockerd refuses in swarm mode); empty: the same as above
#   FORKLIFT_VERIFY_TIMEOUT   seconds to wait for the new daemon to start and answer (default 60)
#   FORKLIFT_SWARM_TIMEOUT    seconds a Swarm node has to rejoin its cluster after the restart
#                             (manager: reachable, with a leader) before it is rolled back (default 120)
#   FORKLIFT_HEALTH_CHECK_B64 base64 of a command (bash) that must pass after the restart, before the
#                             release counts as installed (healthCheck); empty: none
#   FORKLIFT_HEALTH_TIMEOUT   seconds it may take (default 60)
#   FORKLIFT_OWNER            who installs (project/stack/host); uninstall only acts for the same owner
#   FORKLIFT_STACK_ID         the installing stack's random identity; a host owned by another stack
#                             is refused by install and left alone by uninstall
# (check, stage): FORKLIFT_HOST, FORKLIFT_OWNER, FORKLIFT_STACK_ID, FORKLIFT_SHA256 (the release),
#   FORKLIFT_NEED_KIB         free space the release needs in /opt and /var/tmp (unset: not checked)
#
# Layout on the host:
#   /opt/forklift/releases/<sha256>/   unpacked binaries of each release (current + previous kept)
#   /opt/forklift/current              symlink to the running release; switching it switches every binary
#   <install dir>/<binary>             symlinks to /opt/forklift/current/<binary>
#   <other PATH dir>/<binary>          the same, where a same-named file was there (Debian's /usr/sbin/dockerd)
#   /var/lib/forklift/                 what was there before (backups), what forklift owns, last good files
#   /usr/local/lib/forklift/           a copy of this script, so `pulumi destroy` can uninstall
set -euo pipefail

readonly OPT=/opt/forklift
readonly STATE=/var/lib/forklift
readonly SELF_DIR=/usr/local/lib/forklift
readonly LOCK=/run/lock/forklift.lock
# the sha256 of nothing: what arrives when no artifact was sent
readonly EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
HOST_NAME=${FORKLIFT_HOST:-$(hostname)}
INSTALL_DIR=${FORKLIFT_INSTALL_DIR:-/usr/bin}
VERIFY_TIMEOUT=${FORKLIFT_VERIFY_TIMEOUT:-60}
HEALTH_TIMEOUT=${FORKLIFT_HEALTH_TIMEOUT:-60}
SWARM_TIMEOUT=${FORKLIFT_SWARM_TIMEOUT:-120}
# exit status of an install or uninstall that a Swarm node needs drained first (EX_TEMPFAIL)
readonly EXIT_DRAIN_FIRST=75
# exit status of an install that lacks the release and was told to ask for it (see receive_artifact)
readonly EXIT_SEND_ARTIFACT=76
STAGE=""
# the tgz this run received (staged in /var/tmp until the run ends)
ARTIFACT=""
# root's PATH: a same-named binary in any of these must not shadow the release's
readonly PATH_DIRS="/usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin"
# what a Docker daemon leaves behind once it ran (with the default data roots)
readonly TRACE_PATHS="/etc/docker /etc/docker/key.json /etc/cni /etc/cni/net.d /var/lib/docker /var/lib/containerd /opt/containerd
    /run/docker /run/docker.sock /run/docker.pid /run/containerd /var/run/docker.sock /var/run/docker.pid"

# The parts, one file per job in scripts/host/. forklift sends this script with each part's text
# in place of the line that sources it (lib/protocol/script.ts); run from a checkout, it sources them.
FORKLIFT_PARTS=$(dirname "${BASH_SOURCE[0]}")/host
# shellcheck source=host/common.sh
. "$FORKLIFT_PARTS/common.sh"
# shellcheck source=host/ownership.sh
. "$FORKLIFT_PARTS/ownership.sh"
# shellcheck source=host/stage.sh
. "$FORKLIFT_PARTS/stage.sh"
# shellcheck source=host/swarm.sh
. "$FORKLIFT_PARTS/swarm.sh"
# shellcheck source=host/traces.sh
. "$FORKLIFT_PARTS/traces.sh"
# shellcheck source=host/switch.sh
. "$FORKLIFT_PARTS/switch.sh"
# shellcheck source=host/check.sh
. "$FORKLIFT_PARTS/check.sh"
# shellcheck source=host/install.sh
. "$FORKLIFT_PARTS/install.sh"
# shellcheck source=host/rollback.sh
. "$FORKLIFT_PARTS/rollback.sh"
# shellcheck source=host/uninstall.sh
. "$FORKLIFT_PARTS/uninstall.sh"

# Set by do_install while the host is switched to a release that is not yet recorded as
# installed; ROLLBACK_TO is the release to go back to ("" for what was there before forklift).
ROLLBACK_ARMED=""
ROLLBACK_TO=""

# The ERR trap: a failing step in a subshell ends that subshell (its caller sees the failure); in
# the script itself it ends the run, rolling the host back first where an install had switched it.
on_error() {
    if [ "$BASHPID" = "$$" ] && [ -n "$ROLLBACK_ARMED" ]; then
        # (inside a trap a failing command would end the script without a word)
        set +e
        roll_back "$ROLLBACK_TO" "failed at line $1: $2"
    fi
    fatal "failed at line $1: $2"
}

main() {
    # a dropped SSH session must not stop an install half-way: no SIGHUP/SIGPIPE death
    trap '' HUP PIPE
    # the script's own stderr, for messages from functions whose output a caller keeps
    exec 3>&2
    # any unexpected failure names the host and the step (errtrace: inside functions too), and
    # rolls the host back when it came after the switch to a new release
    set -E
    trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
    RUN_MODE=${1:-}
    case "${1:-}" in
        install | install-drained) do_install "$1" ;;
        uninstall | uninstall-drained)
            preflight
            local owner other
            owner=$(cat "$STATE/owner" 2>/dev/null || true)
            other=$(other_owner)
            if [ -n "$other" ]; then
                info "not uninstalling: the release here belongs to another stack: $other"
                return 0
            fi
            if [ -n "${FORKLIFT_OWNER:-}" ] && [ -n "$owner" ] && [ "$owner" != "$FORKLIFT_OWNER" ]; then
                info "not uninstalling: the release here now belongs to $owner"
                return 0
            fi
            if [ -f "$STATE/installed" ]; then
                read_swarm_info
                [ -z "$SWARM_INFO" ] || [ "$1" != uninstall ] || drain_first
            fi
            read_unlock_key
            do_uninstall
            rejoin_given_back
            local engine
            engine=$(systemctl is-active docker.service 2>/dev/null || true)
            # (for the local side of a drained uninstall: whether the node can come back at all)
            [ "$1" != uninstall-drained ] || printf '{"host":"%s","uninstalled":true,"dockerService":"%s"}\n' "$HOST_NAME" "${engine:-inactive}"
            ;;
        status) status_json false ;;
        check) do_check ;;
        stage) do_stage ;;
        health)
            local reason
            reason=$(run_health_check) || fatal "$reason"
            # (the check after a soak: the release now running has passed its soak; a rollout
            # stopped before this line soaks the host again, see soaked_json)
            current_sha >"$STATE/soaked.tmp" && mv -f "$STATE/soaked.tmp" "$STATE/soaked"
            info "its health check passed"
            ;;
        rollback | rollback-drained) do_rollback "$1" ;;
        *) fatal "usage: $0 install|install-drained|uninstall|uninstall-drained|status|check|stage|health|rollback|rollback-drained" ;;
    esac
}

main "$@"
