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
    if owns "$path"; then
        given_back "$path" || return 0
        # a give-back that a killed run left half-done: what was there before is in place again
        forget_path "$path"
    fi
    mkdir -p "$STATE"
    if dpkg_owned "$path"; then
        dpkg-divert --quiet --local --rename --divert "$path.forklift-distrib" --add "$path"
        echo "$path" >>"$STATE/diverted.list"
    elif [ -e "$path" ] || [ -L "$path" ]; then
        mkdir -p "$(dirname "$(backup_of "$path")")"
        cp -a "$path" "$(backup_of "$path")"
    else
        echo "$path" >>"$(created_list)"
    fi
    echo "$path" >>"$STATE/owned.list"
}

# The list of the paths forklift created (nothing was there before), so that a give-back can be
# repeated after a kill: an owned path with no backup, no diversion and no mark here was given
# back already. (A host set up by a forklift before 0.3 has no list: each owned path of its with
# neither a backup nor a diversion is one it created; the list is made of them.)
created_list() {
    local list=$STATE/created.list path backup
    if [ ! -f "$list" ]; then
        mkdir -p "$STATE"
        while read -r path; do
            [ -n "$path" ] || continue
            ! has_line "$path" "$STATE/diverted.list" || continue
            backup=$(backup_of "$path")
            [ -e "$backup" ] || [ -L "$backup" ] || echo "$path"
        done < <(cat "$STATE/owned.list" 2>/dev/null || true) >"$list.tmp"
        mv -f "$list.tmp" "$list"
    fi
    echo "$list"
}

# True when owned PATH was given back by a run that was killed before it said so in the lists:
# its diversion is gone, or nothing says what to put back (no backup, not created by forklift).
given_back() {
    local path=$1 backup
    if has_line "$path" "$STATE/diverted.list"; then
        [ -z "$(dpkg-divert --listpackage "$path" 2>/dev/null)" ]
        return
    fi
    backup=$(backup_of "$path")
    [ ! -e "$backup" ] && [ ! -L "$backup" ] && ! has_line "$path" "$(created_list)"
}

# Drops PATH from every list of what forklift owns.
forget_path() {
    list_remove "$1" "$STATE/diverted.list"
    list_remove "$1" "$(created_list)"
    list_remove "$1" "$STATE/owned.list"
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
# when there was none. Repeatable: after a run killed half-way through it, a path already given
# back is left as it is (given_back).
release_path() {
    local path=$1 backup
    backup=$(backup_of "$path")
    if given_back "$path"; then
        :
    elif has_line "$path" "$STATE/diverted.list"; then
        rm -f "$path"
        dpkg-divert --quiet --local --rename --remove "$path"
    elif [ -e "$backup" ] || [ -L "$backup" ]; then
        mkdir -p "$(dirname "$path")"
        rm -f "$path"
        mv -f "$backup" "$path"
    else
        rm -f "$path"
    fi
    forget_path "$path"
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
