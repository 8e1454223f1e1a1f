# shellcheck shell=bash
# stage.sh — the release: received (stdin or a URL), hashed, unpacked, and the links it needs.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

# The executables a release provides (file names under its directory).
release_binaries() {
    find "$1" -maxdepth 1 -type f -perm -u+x -printf '%f\n' | sort
}

# The sha256 tool: OpenSSL's uses the CPU's SHA instructions where it has them (faster than
# coreutils' on a release, BENCHMARKS.md change 1); sha256sum when the host has no working
# openssl. Chosen at the first hash: the check hashes nothing.
SHA256_TOOL=""
sha256_tool() {
    if command -v openssl >/dev/null && [ "$(openssl dgst -sha256 -r </dev/null 2>/dev/null)" = "$EMPTY_SHA256 *stdin" ]; then
        SHA256_TOOL="openssl dgst -sha256 -r"
    else
        SHA256_TOOL=sha256sum
    fi
}

# Prints the sha256 of FILE.
sha256_of() {
    local out
    [ -n "$SHA256_TOOL" ] || sha256_tool
    out=$($SHA256_TOOL <"$1") || return 1
    echo "${out%% *}"
}

current_sha() {
    local target
    target=$(readlink "$OPT/current" 2>/dev/null) || return 0
    basename "$target"
}

# Removes what runs that are gone (killed before their exit trap) left: their copies of an
# artifact in /var/tmp and their staging directories in /tmp, each named after its run's PID; a
# run that is still on (receiving its copy, waiting for the lock) keeps its own, and so does a run
# of an older forklift, whose staging directory's name has no PID. Under the lock.
remove_stale_copies() {
    local left pid
    for left in /var/tmp/forklift-docker-*.tgz /tmp/forklift-stage.*; do
        [ -e "$left" ] || continue
        case "$left" in
            /var/tmp/*) pid=${left#/var/tmp/forklift-docker-*.} ;;
            /tmp/forklift-stage.*.*) pid=${left#/tmp/forklift-stage.} ;;
            *) continue ;; # (an older forklift's staging directory: no PID in its name)
        esac
        pid=${pid%%.*}
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        if [ "$pid" = $$ ] || kill -0 "$pid" 2>/dev/null; then continue; fi
        rm -rf "$left"
    done
}

# Decodes the desired managed files into $STAGE/files (absent name = not managed).
stage_files() {
    STAGE=$(mktemp -d "/tmp/forklift-stage.$$.XXXXXX")
    mkdir -p "$STAGE/files"
    local name var
    for name in $MANAGED_NAMES; do
        case "$name" in
            docker.service) var=${FORKLIFT_DOCKER_SERVICE_B64:-} ;;
            docker.socket) var=${FORKLIFT_DOCKER_SOCKET_B64:-} ;;
            containerd.service) var=${FORKLIFT_CONTAINERD_SERVICE_B64:-} ;;
            daemon.json) var=${FORKLIFT_DAEMON_JSON_B64:-} ;;
        esac
        if [ "$name" = daemon.json ] && [ -n "${FORKLIFT_DAEMON_JSON_SWARM_B64:-}" ] && [ -n "$SWARM_INFO" ]; then
            var=$FORKLIFT_DAEMON_JSON_SWARM_B64
            info "a Swarm node: live-restore is left out of daemon.json (dockerd refuses swarm mode with it; this node's containers restart with its engine)"
        fi
        [ -z "$var" ] || printf '%s' "$var" | base64 -d >"$STAGE/files/$name"
    done
    if [ ! -s "$STAGE/files/docker.service" ] || [ ! -s "$STAGE/files/docker.socket" ]; then
        fatal "docker.service and docker.socket must be given"
    fi
}

# True when the release, every managed file and the running daemon already match.
up_to_date() {
    [ "$(current_sha)" = "$FORKLIFT_SHA256" ] || return 1
    # (the record, too: a run killed between its switch and its commit left `current` ahead of it)
    [ "$(sed -n 's/^sha256=//p' "$STATE/installed" 2>/dev/null)" = "$FORKLIFT_SHA256" ] || return 1
    local name path
    for name in $MANAGED_NAMES; do
        path=$(managed_path "$name")
        if [ -f "$STAGE/files/$name" ]; then
            cmp -s "$STAGE/files/$name" "$path" || return 1
        elif owns "$path"; then
            return 1
        fi
    done
    links_match "$OPT/releases/$FORKLIFT_SHA256" || return 1
    systemctl is-enabled --quiet docker.socket && systemctl is-active --quiet docker.socket || return 1
    if systemctl is-active --quiet docker.service; then
        running_dockerd_matches "$OPT/releases/$FORKLIFT_SHA256" || return 1
    fi
}

links_match() {
    local link links targets
    links=$(release_links "$1")
    # shellcheck disable=SC2086 # one path per word
    targets=$(link_targets $links)
    for link in $links; do
        points_to_current "$link" "$targets" || return 1
    done
}

# Prints "LINK -> TARGET" for each LINK that is a symlink: one process for all of them.
link_targets() {
    [ "$#" -gt 0 ] || return 0
    find "$@" -maxdepth 0 -type l -printf '%p -> %l\n' 2>/dev/null || true
}

# True when link_targets' output TARGETS has LINK pointing at the same name in the current release.
points_to_current() {
    local nl=$'\n'
    [[ "$nl$2$nl" == *"$nl$1 -> $OPT/current/${1##*/}$nl"* ]]
}

# The standard PATH directories other than the install dir, resolved (merged /usr: /sbin is
# /usr/sbin) and each once. One readlink for all of them: release_links needs them for each binary.
shadow_dirs() {
    local dir real seen="" dirs=("$INSTALL_DIR")
    for dir in $PATH_DIRS; do
        if [ -d "$dir" ]; then dirs+=("$dir"); fi
    done
    while read -r real; do
        case "$seen" in *" $real "*) continue ;; esac
        # the first line is the install dir's: it is never a shadow of itself
        [ -z "$seen" ] || echo "$real"
        seen="$seen $real "
    done < <(readlink -m "${dirs[@]}")
}
# shadow_dirs of this run, once computed (the directories do not change while the script runs)
SHADOW_DIRS=""

# The name of BIN in the resolved directory DIR that its package uses, if any alias of DIR is the
# one dpkg knows (a package may ship /sbin/x on a merged-/usr host); else DIR/BIN.
shadow_path() {
    local real=$1 bin=$2 dir
    if ! dpkg_owned "$real/$bin"; then
        for dir in $PATH_DIRS; do
            [ "$dir" != "$real" ] || continue
            [ "$(readlink -f "$dir")" = "$real" ] || continue
            if dpkg_owned "$dir/$bin"; then
                echo "$dir/$bin"
                return 0
            fi
        done
    fi
    echo "$real/$bin"
}

# Every link release RELEASE needs: <install dir>/<bin>, and <dir>/<bin> for each other PATH
# directory that has a same-named file (Debian's /usr/sbin/dockerd comes before /usr/bin in
# root's PATH: an admin's `dockerd` must be the release's too).
release_links() {
    local bin dir
    [ -n "$SHADOW_DIRS" ] || SHADOW_DIRS=$(shadow_dirs)
    for bin in $(release_binaries "$1"); do
        echo "$INSTALL_DIR/$bin"
        for dir in $SHADOW_DIRS; do
            if [ -f "$dir/$bin" ] || [ -L "$dir/$bin" ]; then
                shadow_path "$dir" "$bin"
            elif owns "$dir/$bin"; then
                echo "$dir/$bin"
            fi
        done
    done
}

# Brings the release's tgz into a staging file and checks its sha256, unless the release is
# unpacked here already (kept for rollback, staged by the check, or reinstalled): then stdin is
# not read at all. After the script, stdin has one header line: "tgz" and the tgz's bytes (copied
# through the machine of `pulumi up`), "url URL" (fetched from the artifact store: a URL signed for
# this object alone, passed here so that no command line and no log shows it), "ask" (the
# check staged the release, so the install sends nothing: a host that lost it since exits
# EXIT_SEND_ARTIFACT, changing nothing, and is run again with the artifact: a store's URL is
# signed by each install's own process, loading the AWS SDK, so only for a host that reads it;
# see BENCHMARKS.md) or "none".
# Runs before the lock is taken, so that a copy stalled on a cut network holds no other run up.
receive_artifact() {
    if [ -d "$OPT/releases/$FORKLIFT_SHA256" ]; then
        info "release $FORKLIFT_SHA256 is unpacked here already: nothing to copy"
        return 0
    fi
    # (named after this run's PID: an uninstall while this run waits for the lock leaves it alone)
    ARTIFACT=$(mktemp "/var/tmp/forklift-docker-$FORKLIFT_SHA256.$$.XXXXXX.tgz")
    local header="" got
    IFS= read -r header || true
    case "$header" in
        tgz) cat >"$ARTIFACT" ;;
        "url "*) fetch_url "${header#url }" "$ARTIFACT" ;;
        ask)
            info "release $FORKLIFT_SHA256 is not unpacked here (the check staged it: removed since?): asking for it; nothing was changed"
            exit "$EXIT_SEND_ARTIFACT"
            ;;
        *) fail artifact-missing "" "no artifact arrived, and release $FORKLIFT_SHA256 is not unpacked here; nothing was changed" ;;
    esac
    got=$(sha256_of "$ARTIFACT")
    [ "$got" != "$EMPTY_SHA256" ] || fail artifact-missing "" "no artifact arrived, and release $FORKLIFT_SHA256 is not unpacked here; nothing was changed"
    [ "$got" = "$FORKLIFT_SHA256" ] || fail artifact-mismatch "\"got\":\"$got\"" "the artifact that arrived has sha256 $got, expected $FORKLIFT_SHA256 (corrupted on the way, or not the build's?); nothing was changed: run \`pulumi up\` again to copy it anew"
    info "received $(stat -c %s "$ARTIFACT") bytes${header:+ (${header%% *})}, sha256 verified"
}

# Fetches URL into FILE with curl (or wget), failing with the store's answer. A presigned URL's
# signature is a credential for the object: the URL reaches curl or wget on its stdin (no process
# list shows it), and the messages name it without its query.
fetch_url() {
    local url=$1 file=$2 shown=${1%%\?*} code rc=0
    if command -v curl >/dev/null; then
        code=$(printf 'url = "%s"\n' "$url" | curl -sS --retry 3 --retry-connrefused --connect-timeout 10 -o "$file" -w '%{http_code}' -K - 2>"$file.err") || rc=$?
        if [ "$code" = 404 ]; then
            fail store-no-object "" "could not fetch the artifact from $shown: $(fetch_failure 404 ""); nothing was changed"
        elif [ "$rc" != 0 ] || [ "$code" != 200 ]; then
            fatal "could not fetch the artifact from $shown: $(fetch_failure "$code" "$(head -c 300 "$file.err" "$file" 2>/dev/null | tr '\n' ' ')"); nothing was changed"
        fi
        rm -f "$file.err"
    elif command -v wget >/dev/null; then
        printf '%s\n' "$url" | wget -q -O "$file" -i - || fatal "could not fetch the artifact from $shown (wget exit status $?); nothing was changed"
    else
        fatal "the artifact is fetched from $shown, and this host has neither curl nor wget: install curl; nothing was changed"
    fi
}

# What an HTTP CODE of a store means for the fetch (BODY: what it said).
fetch_failure() {
    case "$1" in
        403) echo "HTTP 403: the signed URL expired, or does not grant this object (the store said: $2)" ;;
        404) echo "HTTP 404: the store has no such object (was it uploaded, or has it expired?)" ;;
        000) echo "no answer from the store (${2:-unreachable from this host})" ;;
        *) echo "HTTP $1: $2" ;;
    esac
}

# Unpacks the received artifact into releases/<sha> (once), checking that it is a Docker release.
unpack_release() {
    local dest="$OPT/releases/$FORKLIFT_SHA256" tmp
    [ -d "$dest" ] && return 0
    mkdir -p "$OPT/releases"
    tmp="$OPT/releases/.$FORKLIFT_SHA256.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp/unpack"
    tar -xzf "$ARTIFACT" -C "$tmp/unpack" || fatal "cannot unpack the artifact"
    [ -f "$tmp/unpack/docker/dockerd" ] || fatal "artifact has no docker/dockerd (expected the static docker/ layout)"
    find "$tmp/unpack/docker" -mindepth 1 -maxdepth 1 -type f -exec mv -t "$tmp" {} +
    rm -rf "$tmp/unpack"
    chmod 0755 "$tmp"
    [ -x "$tmp/dockerd" ] || fatal "docker/dockerd in the artifact is not executable"
    mv -T "$tmp" "$dest"
    info "unpacked release $FORKLIFT_SHA256 ($(release_binaries "$dest" | tr '\n' ' '))"
}
