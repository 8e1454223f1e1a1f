# shellcheck shell=bash
# ownership.sh — every path forklift writes is first recorded with what was there, so it can be
# given back.
# A part of scripts/forklift-host.sh, which sources it; sent inside it (lib/protocol/script.ts).

backup_of() { echo "$STATE/backup$1"; }

# True when PATH belongs to a Debian package (e.g. docker.io's /usr/bin/docker).
dpkg_owned() {
    command -v dpkg-query >/dev/null && dpkg-query -S "$1" >/dev/null 2>&1
}

# Takes PATH over: the first time, keeps what was there so release_path can restore it. A
# package's file is diverted instead of copied, so a package upgrade lands beside forklift's
# link (as PATH.forklift-distrib) instead of silently replacing it.
own_path() {
    local path=$1
    owns "$path" && return 0
    mkdir -p "$STATE"
    if dpkg_owned "$path"; then
        dpkg-divert --quiet --local --rename --divert "$path.forklift-distrib" --add "$path"
        echo "$path" >>"$STATE/diverted.list"
    elif [ -e "$path" ] || [ -L "$path" ]; then
        mkdir -p "$(dirname "$(backup_of "$path")")"
        cp -a "$path" "$(backup_of "$path")"
    fi
    echo "$path" >>"$STATE/owned.list"
}

# True when LINE is a line of FILE (a missing FILE has none).
has_line() { grep -qxF -- "$1" "$2" 2>/dev/null; }

owns() { has_line "$1" "$STATE/owned.list"; }

# Drops LINE from the list file FILE.
list_remove() {
    [ -f "$2" ] || return 0
    grep -vxF "$1" "$2" >"$2.tmp" || true
    mv -f "$2.tmp" "$2"
}

# Gives PATH back: restores the original (or the package's file), or removes forklift's file
# when there was none.
release_path() {
    local path=$1 backup
    backup=$(backup_of "$path")
    if has_line "$path" "$STATE/diverted.list"; then
        rm -f "$path"
        dpkg-divert --quiet --local --rename --remove "$path"
        list_remove "$path" "$STATE/diverted.list"
    elif [ -e "$backup" ] || [ -L "$backup" ]; then
        mkdir -p "$(dirname "$path")"
        rm -f "$path"
        mv -f "$backup" "$path"
    else
        rm -f "$path"
    fi
    list_remove "$path" "$STATE/owned.list"
}

# Writes CONTENT_FILE to PATH atomically (temp file in the same directory, then rename).
put_file() {
    local src=$1 path=$2 mode=$3
    mkdir -p "$(dirname "$path")"
    install -m "$mode" "$src" "$path.forklift-tmp"
    mv -f "$path.forklift-tmp" "$path"
}

# Points LINK at TARGET atomically.
put_link() {
    local target=$1 link=$2
    ln -sfn "$target" "$link.forklift-tmp"
    mv -fT "$link.forklift-tmp" "$link"
}
