#!/usr/bin/env bash
# Generates shell completions and man pages for bob-server, bobctl and bob-keygen from
# their clap definitions (hidden flags --generate-completions SHELL / --generate-man),
# so they always match the binaries they come from.
#
#   scripts/gen-completions.sh OUTDIR
#
# Writes:
#   OUTDIR/bash/NAME          (source it, or install to /usr/share/bash-completion/completions/)
#   OUTDIR/zsh/_NAME          (a directory on $fpath, e.g. /usr/share/zsh/vendor-completions/)
#   OUTDIR/fish/NAME.fish     (~/.config/fish/completions/ or /usr/share/fish/vendor_completions.d/)
#   OUTDIR/man/man1/NAME.1    (MANPATH, or /usr/share/man/man1/), and NAME-SUBCOMMAND.1
#
# Environment: BIN_DIR uses already built binaries from that directory instead of
# building them with cargo (debug profile) first.
set -euo pipefail

OUT=${1:?usage: gen-completions.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${BIN_DIR:-}" ]; then
    (cd "$ROOT" && cargo build --quiet -p bob-server -p bobctl -p keytools --bins)
    BIN_DIR="$ROOT/target/debug"
fi

mkdir -p "$OUT/bash" "$OUT/zsh" "$OUT/fish" "$OUT/man/man1"
for name in bob-server bobctl bob-keygen; do
    bin="$BIN_DIR/$name"
    [ -x "$bin" ] || { echo "gen-completions: $bin not found" >&2; exit 1; }
    "$bin" --generate-completions bash >"$OUT/bash/$name"
    "$bin" --generate-completions zsh >"$OUT/zsh/_$name"
    "$bin" --generate-completions fish >"$OUT/fish/$name.fish"
    # the man page and one per subcommand (the pages it refers to, e.g. bobctl-list(1))
    "$bin" --generate-man-dir "$OUT/man/man1" >/dev/null
    for f in "$OUT/bash/$name" "$OUT/zsh/_$name" "$OUT/fish/$name.fish" "$OUT/man/man1/$name.1"; do
        [ -s "$f" ] || { echo "gen-completions: $f is empty" >&2; exit 1; }
    done
done
echo "completions and man pages for bob-server, bobctl, bob-keygen in $OUT"
