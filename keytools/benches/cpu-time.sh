#!/usr/bin/env bash
# Vanity candidates per CPU-second for each hashing path, next to OpenSSL's single-stream
# SHA-256 on the same machine in the same run. On a shared machine wall-clock rates follow the
# load; CPU time (perf stat task-clock, OpenSSL's default user-time accounting) does much less.
# Usage: keytools/benches/cpu-time.sh [SECONDS] [THREADS...]   (needs perf and openssl)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
shift || true
THREADS=("${@:-1 2}")
cargo build --release --locked -q -p keytools --bin bob-keygen
BIN=target/release/bob-keygen
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
uptime
ossl=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^sha256/ {print $2}')
echo "openssl speed -evp sha256 -bytes 16384: ${ossl} (kB/s per CPU-second) =" \
    "$(awk -v k="${ossl%k}" 'BEGIN {printf "%.1f M compressions/s", k * 1000 / 64 / 1e6}')"
printf '%-12s %8s %14s %16s %22s\n' path threads tries cpu-seconds "M candidates/CPU-s"
for t in ${THREADS[*]}; do
    for e in single sha-ni-x2 sha-ni-x4 avx2-x8 avx512-x16; do
        perf stat -e task-clock -x, -o "$TMP/perf" \
            timeout -s INT "$SECS" "$BIN" vanity zzzzzzzzzz --force -j "$t" --engine "$e" \
            2>"$TMP/err" >/dev/null || true
        grep -q "this CPU lacks" "$TMP/err" && continue
        tries=$(sed -n 's/^interrupted after \([0-9.]*\) \([kMG]\?\) *tries.*/\1 \2/p' "$TMP/err")
        ms=$(awk -F, '/task-clock/ {print $1}' "$TMP/perf")
        awk -v t="$tries" -v ms="$ms" -v e="$e" -v th="$t" 'BEGIN {
            split(t, a, " "); m = (a[2] == "G") ? 1e9 : (a[2] == "M") ? 1e6 : (a[2] == "k") ? 1e3 : 1;
            n = a[1] * m; printf "%-12s %8d %14.0f %16.2f %22.2f\n", e, th, n, ms / 1000, n / (ms / 1000) / 1e6 }'
    done
done
uptime
