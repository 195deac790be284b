#!/usr/bin/env bash
# Benchmark `udp`: datagrams/s and loss at increasing offered rates through direct
# loopback UDP (the baseline), a `local` UDP tunnel pair and UDP tunnel pairs on
# `bob-server --router sam://` over one offline i2pd started here on free loopback ports
# (scripts/start-i2pd-offline.sh; stopped at exit), all in the same run; then RSS with
# 10,000 peer mappings on `local`. Prints tables and JSON lines (bob-bench `udp`).
#
#   scripts/bench-udp.sh     BOB_BENCH_UDP_REPEAT=3 (repeats per step), BOB_BENCH_UDP_PEERS=10000
#
# i2pd's SAM UDP port is its SAM port - 1 (fixed on 2.45), passed as --sam-udp.
# Without i2pd installed it runs the direct and local paths only and says so (a failure
# under CI=true). Builds the release binaries unless BOB_BENCH_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BOB_BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --release -p bob-server --bin bob-server --example bob-bench
fi

# 10,000 mappings need ~10,000 sockets in the bench and as many in the server
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if command -v i2pd >/dev/null 2>&1; then
    # shellcheck source=lib/ports.sh
    . scripts/lib/ports.sh
    I2PD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bob-bench-i2pd.XXXXXX")
    cleanup() {
        scripts/stop-i2pd.sh "$I2PD_DIR" || true
        rm -rf "$I2PD_DIR"
    }
    trap cleanup EXIT
    start_i2pd_on_free_ports "$I2PD_DIR" || exit 1
    export BOB_BENCH_SAM="127.0.0.1:${PORTS[0]}"
    export BOB_BENCH_SAM_UDP="127.0.0.1:$((PORTS[0] - 1))"
    export BOB_BENCH_SAM_OPTS="inbound.length=0 outbound.length=0 inbound.quantity=1 outbound.quantity=1 i2cp.leaseSetType=1 i2cp.leaseSetEncType=0"
    echo "i2pd $(i2pd --version 2>/dev/null | head -n 1 | awk '{print $3}'): SAM $BOB_BENCH_SAM, SAM UDP $BOB_BENCH_SAM_UDP"
elif [ "${CI:-}" = true ]; then
    echo "ERROR: i2pd is not installed (apt-get install i2pd)" >&2
    exit 1
else
    echo "udp benchmark: i2pd is not installed (apt-get install i2pd): direct and local paths only"
fi
echo "# $(uptime)"
timeout 1200 target/release/examples/bob-bench --server target/release/bob-server udp
echo "# $(uptime)"
