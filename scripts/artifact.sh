#!/usr/bin/env bash
# artifact.sh — kept for the stacks that an older forklift rolled out: their state keeps each
# fleet host's delete command as `FORKLIFT_...=... bash scripts/artifact.sh uninstall` (keys and
# the remote command on stdin), and `pulumi destroy` runs it as it is. It is handed on to the local
# commands (local/legacy.ts). Nothing else runs this script; the next `pulumi up` of such a stack
# replaces those delete commands with local/main.ts's own.
set -euo pipefail

main() {
    [ "${1:-}" = uninstall ] || {
        echo "[forklift artifact] ERROR: only 'uninstall' is left here (an older stack's delete command); forklift runs local/main.ts" >&2
        exit 1
    }
    exec node --require tsx/cjs local/main.ts legacy-uninstall
}

main "$@"
