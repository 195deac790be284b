#!/usr/bin/env bash
# Builds the Debian package bob-server_VERSION_ARCH.deb with cargo-deb.
#
#   scripts/package.sh [OUTDIR]      (default OUTDIR: target/debian)
#
# 1. installs cargo-deb $CARGO_DEB_VERSION with `cargo install --locked` when it is missing
#    (or another version);
# 2. builds bob-server, bobctl and bob-keygen once, in release mode;
# 3. generates their man pages and shell completions from those binaries
#    (scripts/gen-completions.sh) into target/release/deb-assets, man pages gzipped;
# 4. runs `cargo deb --no-build` (metadata: [package.metadata.deb] in bob-server/Cargo.toml,
#    files: bob-server/debian/) and prints the path of the .deb on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
OUT=${1:-target/debian}

if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "== cargo install cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

echo "== cargo build --release (bob-server, bobctl, bob-keygen)" >&2
cargo build --release --locked --workspace --bin bob-server --bin bobctl --bin bob-keygen

TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
ASSETS="$TARGET/release/deb-assets"
rm -rf "$ASSETS"
BIN_DIR="$TARGET/release" scripts/gen-completions.sh "$ASSETS" >&2
# Debian policy wants man pages gzipped; cargo-deb leaves files under target/ as they are.
gzip -9n "$ASSETS"/man/man1/*.1

echo "== cargo deb" >&2
mkdir -p "$OUT"
# cargo-deb prints the path of the package it wrote on stdout
DEB=$(cargo deb --no-build --locked -p bob-server --output "$OUT" --strip)
[ -s "$DEB" ] || { echo "package: cargo deb wrote no package ($DEB)" >&2; exit 1; }
echo "$DEB"
