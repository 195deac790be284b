#!/usr/bin/env bash
# Runs every cargo-fuzz target of the workspace for SECONDS each (default 60), on stable
# Rust through RUSTC_BOOTSTRAP=1, and prints a summary table.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      TARGET = crate/target, e.g. bob-server/first_line
#
# The committed seed corpus (CRATE/fuzz/corpus/TARGET) is read but never written: new
# inputs go to a scratch directory. A crash leaves its input in
# CRATE/fuzz/artifacts/TARGET/ and makes the script exit 1 (after running the others).
# FUZZ_SANITIZER=address|none (default address) selects the sanitizer.
set -u -o pipefail

seconds=${1:-60}
shift || true
case $seconds in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [crate/target...]" >&2
    exit 2
    ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
sanitizer=${FUZZ_SANITIZER:-address}

all=(
    bob-codec/command
    bob-codec/reply
    keytools/destination
    keytools/private_keys
    bob-server/first_line
    bob-server/sam_reply
    bob-server/udp_header
    bob-server/socks_handshake
    bob-server/socks_udp
)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=("${all[@]}")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/bob-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export RUSTC_BOOTSTRAP=1

rows=()
failed=0
for entry in "${targets[@]}"; do
    crate=${entry%%/*}
    target=${entry#*/}
    dir="$root/$crate"
    if [ ! -d "$dir/fuzz" ]; then
        echo "no fuzz crate in $crate" >&2
        rows+=("| $entry | - | - | - | - | missing |")
        failed=1
        continue
    fi
    seeds="$dir/fuzz/corpus/$target"
    work="$scratch/$crate-$target"
    mkdir -p "$work"
    log="$scratch/$crate-$target.log"
    echo "== $entry: building" >&2
    if ! (cd "$dir" && cargo fuzz build -s "$sanitizer" "$target") >"$log" 2>&1; then
        tail -20 "$log" >&2
        rows+=("| $entry | - | - | - | - | build failed |")
        failed=1
        continue
    fi
    echo "== $entry: fuzzing for ${seconds}s" >&2
    (cd "$dir" && cargo fuzz run -s "$sanitizer" "$target" "$work" "$seeds" -- \
        -max_total_time="$seconds" -print_final_stats=1) >>"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    units=$(find "$work" -type f | wc -l)
    seeds_n=$(find "$seeds" -type f 2>/dev/null | wc -l)
    if [ $rc -eq 0 ]; then
        result=ok
    else
        result="CRASH (exit $rc, see $crate/fuzz/artifacts/$target/)"
        grep -E 'panicked|ERROR: libFuzzer|Test unit written' "$log" | head -5 >&2
        failed=1
    fi
    rows+=("| $entry | ${runs:-?} | ${rate:-?} | ${cov:-?} | $seeds_n+$units | $result |")
done

echo
echo "## fuzz: ${seconds}s per target, sanitizer $sanitizer"
echo "| target | runs | exec/s | coverage | corpus (seeds+new) | result |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $failed
