#!/usr/bin/env bash
# floor.sh — the raw-SSH floor of the benchmark: the rollout's steps with nothing around them, on
# every host at once. Per host, in parallel: one scp of the artifact and the unit files, then one
# ssh that checks the sha256, unpacks into a fresh release directory, switches `current`, installs
# the units and daemon.json, reloads systemd, enables the socket, restarts containerd and Docker and
# waits until `docker version` answers. No state, no idempotence, no rollback: the lower bound.
#
# The cloud floor (FORKLIFT_BENCH_URLS set): the same, but each host fetches the artifact itself
# from the URL given to it (a presigned GET of the store, read from its stdin) instead of
# receiving it in the scp; FILES_DIR then holds no docker.tgz.
#
# Usage: floor.sh FILES_DIR SHA256 HOST...
#   FILES_DIR   docker.tgz (the artifact, docker/<binaries>; a symlink is fine), docker.service,
#               docker.socket, containerd.service (optional) and daemon.json rendered for the
#               install dir /opt/bench/floor/current
# Variables: FORKLIFT_BENCH_KEY (private key), FORKLIFT_BENCH_KNOWN_HOSTS (pinned host keys),
#   FORKLIFT_BENCH_URLS (optional: a file with one URL per HOST, in their order).
set -euo pipefail

fatal() {
    printf '[forklift bench floor] ERROR: %s\n' "$*" >&2
    exit 1
}

[ $# -ge 3 ] || fatal "usage: $0 FILES_DIR SHA256 HOST..."
FILES_DIR=$1 SHA256=$2
shift 2
# scp -r creates this directory on the host (a fresh name each run)
STAGE=/var/tmp/bench-floor.$SHA256.$(date +%s%N)
: "${FORKLIFT_BENCH_KEY:?}" "${FORKLIFT_BENCH_KNOWN_HOSTS:?}"
SSH_OPTS=(-F /dev/null -i "$FORKLIFT_BENCH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
    -o "UserKnownHostsFile=$FORKLIFT_BENCH_KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR)

# What runs on each host once the files are there ($1: sha256).
# shellcheck disable=SC2016 # expanded by the remote shell
REMOTE='set -eu
sha=$1 stage=$2 fetch=${3:-} root=/opt/bench/floor
if [ "$fetch" = fetch ]; then read -r url; curl -sSf -o "$stage/docker.tgz" "$url"; fi
echo "$sha  $stage/docker.tgz" | sha256sum -c --quiet
rm -rf "$root/releases/$sha" "$root/releases/.tmp"
mkdir -p "$root/releases/.tmp"
tar -xzf "$stage/docker.tgz" -C "$root/releases/.tmp" --strip-components=1
mv -T "$root/releases/.tmp" "$root/releases/$sha"
ln -sfn "$root/releases/$sha" "$root/current.tmp" && mv -fT "$root/current.tmp" "$root/current"
for f in docker.service docker.socket containerd.service; do
    [ ! -f "$stage/$f" ] || install -m 0644 "$stage/$f" "/etc/systemd/system/$f"
done
install -D -m 0644 "$stage/daemon.json" /etc/docker/daemon.json
getent group docker >/dev/null || groupadd --system docker
systemctl daemon-reload
units="docker.socket"; [ ! -f "$stage/containerd.service" ] || units="containerd.service $units"
systemctl enable $units 2>/dev/null
systemctl stop docker.service docker.socket
[ ! -f "$stage/containerd.service" ] || systemctl restart containerd.service
# docker.service alone: its Requires= starts the socket in the same transaction (as forklift does)
systemctl start docker.service
until "$root/current/docker" -H unix:///run/docker.sock version >/dev/null 2>&1; do sleep 0.2; done
rm -rf "$stage"'

# The whole rollout on HOST (URL: where it fetches the artifact, or empty: it came in the scp).
one_host() {
    local host=$1 url=$2
    scp -q -r "${SSH_OPTS[@]}" "$FILES_DIR" "root@$host:$STAGE" || fatal "$host: scp failed"
    # shellcheck disable=SC2029 # the script and its arguments are meant to expand here
    ssh "${SSH_OPTS[@]}" "root@$host" "sh -c '$REMOTE' sh $SHA256 $STAGE ${url:+fetch}" <<<"$url" || fatal "$host: install failed"
}

urls=()
if [ -n "${FORKLIFT_BENCH_URLS:-}" ]; then
    mapfile -t urls <"$FORKLIFT_BENCH_URLS"
    [ "${#urls[@]}" -eq $# ] || fatal "$FORKLIFT_BENCH_URLS has ${#urls[@]} URLs for $# hosts"
fi

pids=()
i=0
for host in "$@"; do
    one_host "$host" "${urls[i]:-}" &
    pids+=("$!")
    i=$((i + 1))
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit "$rc"
