#!/usr/bin/env bash
# Fails when bob-server's modules import each other in a circle.
#
# Usage: scripts/check-module-cycles.sh [SRC_DIR]   (default: bob-server/src)
#
# Two levels are checked:
# - top-level modules (`control`, `service`, `registry`, …): an edge A -> B for every
#   `crate::B` path in a file under A;
# - the files directly inside each top-level folder (`service/boot.rs`, `service/restore.rs`, …):
#   an edge for every `super::X` or `crate::FOLDER::X` path between two of them.
# A module's own `mod.rs` counts as the parent, not as a sibling; `#[cfg(test)]` code
# and comments are ignored. Cycles are found with `tsort` (coreutils), which names the
# modules of every loop it finds. Plain grep/sed rather than a crate: the check must run
# before anything is built, and `cargo modules` needs nightly-only rustc internals.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-bob-server/src}

# Strips comments and everything from the first `#[cfg(test)]` on (test modules sit at
# the end of their file), then prints every `crate::a::b` / `super::x` path once per
# line as "crate a b" / "super x".
paths_of() {
    sed -e '/^[[:space:]]*#\[cfg(test)\]/,$d' -e 's://.*$::' "$1" |
        tr -c 'A-Za-z0-9_:{}\n' ' ' |
        grep -oE '(crate|super)::[A-Za-z0-9_:{}, ]*' |
        sed -E 's/::/ /g; s/[{},]/ /g' |
        awk '{ line = $1; for (i = 2; i <= NF; i++) line = line " " $i; print line }'
}

top_edges=$(mktemp)
sub_edges=$(mktemp)
trap 'rm -f "$top_edges" "$sub_edges"' EXIT

while IFS= read -r file; do
    rel=${file#"$SRC"/}
    case "$rel" in
    lib.rs | main.rs | bin/* | */tests.rs) continue ;;
    esac
    top=${rel%%/*}
    top=${top%.rs}
    # the sibling this file is, inside its top-level folder (empty for the folder's mod.rs)
    sub=
    case "$rel" in
    */*)
        rest=${rel#*/}
        sub=${rest%%/*}
        sub=${sub%.rs}
        [ "$sub" = mod ] && sub=
        ;;
    esac
    depth=$(awk -F/ '{print NF}' <<<"$rel")
    while read -r kind a rest; do
        [ -n "$kind" ] && [ -n "$a" ] || continue
        if [ "$kind" = crate ]; then
            if [ "$a" != "$top" ]; then
                echo "$top $a" >>"$top_edges"
            elif [ -n "$sub" ]; then
                # `crate::FOLDER::{x, y}`: every name that is a sibling file
                for b in $rest; do
                    if [ "$b" != "$sub" ] && { [ -e "$SRC/$top/$b.rs" ] || [ -e "$SRC/$top/$b/mod.rs" ]; }; then
                        echo "$top/$sub $top/$b" >>"$sub_edges"
                    fi
                done
            fi
        elif [ -n "$sub" ] && [ "$depth" = 2 ]; then
            # `super::{x, y}` from FOLDER/z.rs: every name that is a sibling file
            for b in $a $rest; do
                if [ "$b" != "$sub" ] && { [ -e "$SRC/$top/$b.rs" ] || [ -e "$SRC/$top/$b/mod.rs" ]; }; then
                    echo "$top/$sub $top/$b" >>"$sub_edges"
                fi
            done
        fi
    done < <(paths_of "$file")
done < <(find "$SRC" -name '*.rs' | sort)

status=0
for level in top sub; do
    edges=$top_edges
    [ "$level" = sub ] && edges=$sub_edges
    sort -u "$edges" -o "$edges"
    [ -z "${VERBOSE:-}" ] || sed "s/^/$level: /" "$edges"
    if ! out=$(tsort <"$edges" 2>&1 >/dev/null); then
        echo "module cycle ($level level) in $SRC:" >&2
        echo "$out" | sed -E 's/^tsort: (-: )?/  /' >&2
        echo "  edges (A imports B):" >&2
        sed 's/^/    /' "$edges" >&2
        status=1
    elif [ -n "$out" ]; then
        echo "module cycle ($level level) in $SRC:" >&2
        echo "$out" >&2
        status=1
    fi
done
if [ "$status" = 0 ]; then
    echo "no module cycles in $SRC ($(wc -l <"$top_edges") top-level edges, $(wc -l <"$sub_edges") sibling edges)"
fi
exit "$status"
