#!/usr/bin/env bash
# Benchmark 5: throughput of i2pd's own BOB server against bob-server over SAM, on one
# offline i2pd started here on free loopback ports (scripts/start-i2pd-offline.sh) and
# stopped at exit. Prints a table and JSON lines (bob-bench `router`).
#
#   scripts/bench-router.sh            BOB_BENCH_ROUTER_MIB=32 (payload per run) and
#                                      BOB_BENCH_ROUTER_RUNS=5 (runs per side) by default;
#                                      min/median/max MiB/s per side, and time to first
#                                      byte over BOB_BENCH_ROUTER_TTFB_RUNS=20 streams and
#                                      echo round trips (BOB_BENCH_ROUTER_RTT_ROUNDS=40)
#   scripts/bench-router.sh --devnet   `bob-bench --router devnet` instead: bob-server
#       --router devnet (built with --features embedded-router in target/embedded) against
#       the same i2pd through its BOB and its SAM: TTFB, MiB/s, RSS idle and with 100
#       tunnels (BOB_BENCH_DEVNET_{MIB,RUNS,TUNNELS,WAIT_S}; see bob-bench/devnet.rs)
#   BOB_BENCH_I2PD_BIN=PATH             another i2pd binary (default: the i2pd on PATH);
#   BOB_BENCH_I2PD_BIN=trixie           i2pd 2.56 from Debian trixie, fetched (first run)
#                                      and unpacked as scripts/interop-i2pd.sh does, into
#                                      INTEROP_CACHE (default target/interop-i2pd)
#
# Without i2pd installed it says so and exits 0: a skipped benchmark, not a failure.
# Builds the release binaries unless BOB_BENCH_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bench-router %s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*"; exit 1; }

I2PD_BIN=${BOB_BENCH_I2PD_BIN:-}
if [ -z "$I2PD_BIN" ] && ! command -v i2pd >/dev/null 2>&1; then
    echo "router benchmark SKIPPED: i2pd is not installed (apt-get install i2pd)"
    exit 0
fi

ROUTER=sam FEATURES=() TARGET=${CARGO_TARGET_DIR:-target}
case "${1:-}" in
    '') ;;
    --devnet) ROUTER=devnet FEATURES=(--features embedded-router) TARGET=target/embedded ;;
    *) echo "usage: $0 [--devnet]" >&2; exit 2 ;;
esac

# shellcheck source=lib/ports.sh
. scripts/lib/ports.sh

if [ "${BOB_BENCH_NO_BUILD:-0}" != 1 ]; then
    CARGO_TARGET_DIR=$TARGET cargo build --release -p bob-server "${FEATURES[@]}" \
        --bin bob-server --example bob-bench
fi

I2PD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bob-bench-i2pd.XXXXXX")
cleanup() {
    scripts/stop-i2pd.sh "$I2PD_DIR" || true
    rm -rf "$I2PD_DIR"
}
trap cleanup EXIT

if [ "$I2PD_BIN" = trixie ]; then
    CACHE=${INTEROP_CACHE:-$(pwd)/target/interop-i2pd}
    # shellcheck source=lib/i2pd-trixie.sh
    . scripts/lib/i2pd-trixie.sh
    trixie_i2pd_ready || fetch_i2pd_trixie
    I2PD_BIN=$I2PD_DIR/i2pd-trixie
    write_trixie_wrapper "$I2PD_BIN"
fi
export I2PD=${I2PD_BIN:-$(command -v i2pd)}
[ -x "$I2PD" ] || die "no i2pd binary at $I2PD"

start_i2pd_on_free_ports "$I2PD_DIR" || exit 1

export BOB_BENCH_SAM="127.0.0.1:${PORTS[0]}"
export BOB_BENCH_I2PD_BOB="127.0.0.1:${PORTS[1]}"
export BOB_BENCH_SAM_OPTS="inbound.length=0 outbound.length=0 inbound.quantity=1 outbound.quantity=1 i2cp.leaseSetType=1 i2cp.leaseSetEncType=0"
export BOB_BENCH_I2PD_PID
BOB_BENCH_I2PD_PID=$(cat "$I2PD_DIR/i2pd.pid")
echo "i2pd $("$I2PD" --version 2>/dev/null | head -n 1 | awk '{print $3}') ($I2PD): SAM $BOB_BENCH_SAM, BOB $BOB_BENCH_I2PD_BOB"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); load:$(uptime | sed 's/.*load/ load/')"
timeout 1800 "$TARGET/release/examples/bob-bench" --router "$ROUTER"
