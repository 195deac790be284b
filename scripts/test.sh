#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# Usage: scripts/test.sh            (CI=true makes every missing dependency a failure)
#
# Real-router tests: when i2pd is missing and we run as root, it is installed with
# apt-get (Debian's i2pd 2.45). One i2pd is started offline on free loopback ports for
# the whole run (scripts/start-i2pd-offline.sh) and stopped at exit; the tests find it
# through BOB_TEST_SAM, BOB_TEST_SAM_OPTS, BOB_TEST_I2PD_DIR, BOB_TEST_I2PD_PORTS
# ("SAM BOB NTCP2 HTTP") and BOB_TEST_I2PD_BOB (i2pd's own BOB server).
set -euo pipefail
cd "$(dirname "$0")/.."

CI=${CI:-false}

# What the tests need from the system: i2pd (real-router tests), netcat (the nc-client
# example), Python 3 with `cryptography` (keytools' second implementation of registration
# lines, offline blobs and b33; its standard library is the SOCKS5 UDP ASSOCIATE client of
# tests/integration/proxy_socks_udp.rs), chromium (the status page in a headless browser) and
# pkg-config with libssl-dev (the embedded router's build), curl (the SOCKS and HTTP proxy
# tunnel tests drive a real SOCKS and HTTP proxy client).
# Installed with apt-get when missing and we run as root.
MISSING=()
command -v i2pd >/dev/null 2>&1 || MISSING+=(i2pd)
command -v nc >/dev/null 2>&1 || MISSING+=(netcat-openbsd)
python3 -c 'import cryptography' >/dev/null 2>&1 || MISSING+=(python3-cryptography)
command -v chromium >/dev/null 2>&1 || MISSING+=(chromium)
command -v curl >/dev/null 2>&1 || MISSING+=(curl)
# the embedded router's build (feature embedded-router) links OpenSSL through native-tls
command -v pkg-config >/dev/null 2>&1 || MISSING+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || MISSING+=(libssl-dev)
if [ "${#MISSING[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing ${MISSING[*]} (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${MISSING[@]}"
    fi
fi

# The proxy tunnel tests fail (never skip) without curl, CI or not.
if ! command -v curl >/dev/null 2>&1; then
    echo "ERROR: curl is needed by the SOCKS and HTTP proxy tunnel tests (apt-get install curl)" >&2
    exit 1
fi

if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
    echo "ERROR: python3 with the cryptography package is needed by keytools' CLI tests" \
        "(apt-get install python3-cryptography)" >&2
    exit 1
fi
# The browser test fails under CI=true without chromium and warns otherwise.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$CI" = true ]; then
        echo "ERROR: CI=true and chromium is not installed (and could not be: need root + apt-get)" >&2
        exit 1
    fi
    echo "!!!! chromium is not installed: the status page browser test will NOT run (install: apt-get install chromium) !!!!" >&2
fi

# shellcheck source=lib/ports.sh
. scripts/lib/ports.sh

I2PD_DIR=
cleanup() {
    if [ -n "$I2PD_DIR" ]; then
        scripts/stop-i2pd.sh "$I2PD_DIR" || true
        rm -rf "$I2PD_DIR"
    fi
}
trap cleanup EXIT

if command -v i2pd >/dev/null 2>&1; then
    echo "== starting i2pd offline ($(i2pd --version 2>/dev/null | head -n 1))"
    I2PD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bob-i2pd.XXXXXX")
    start_i2pd_on_free_ports "$I2PD_DIR" || exit 1
    export BOB_TEST_SAM="127.0.0.1:${PORTS[0]}"
    export BOB_TEST_SAM_OPTS="inbound.length=0 outbound.length=0 inbound.quantity=1 outbound.quantity=1 i2cp.leaseSetType=1 i2cp.leaseSetEncType=0"
    export BOB_TEST_I2PD_DIR="$I2PD_DIR"
    export BOB_TEST_I2PD_PORTS="${PORTS[*]}"
    # i2pd's own BOB server, as a behaviour reference for tests that want one
    export BOB_TEST_I2PD_BOB="127.0.0.1:${PORTS[1]}"
elif [ "$CI" = true ]; then
    echo "ERROR: CI=true and i2pd is not installed (and could not be: need root + apt-get)" >&2
    exit 1
else
    echo "!!!! i2pd is not installed: the real-router tests will NOT run (install: apt-get install i2pd) !!!!" >&2
fi

echo "== cargo test --workspace"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

# The README's first command is `cargo run --release -p bob-server`: check that it runs the
# server (same build, debug profile).
echo "== cargo run -p bob-server -- --version"
cargo run --locked -q -p bob-server -- --version

# The embedded emissary router (feature embedded-router, ~266 more crates): built and
# tested in its own target dir so that the default build above stays lean. Its tests run
# a private devnet of emissary routers on loopback (paused time in-process, plus the
# binary in real time); no network access.
echo "== embedded router: cargo test -p bob-server --features embedded-router (target/embedded)"
if pkg-config --exists openssl 2>/dev/null; then
    CARGO_TARGET_DIR=target/embedded cargo test -p bob-server --features embedded-router \
        --locked --lib --test 'embedded_*'
elif [ "$CI" = true ]; then
    echo "ERROR: CI=true and OpenSSL headers (libssl-dev, pkg-config) are missing" >&2
    exit 1
else
    echo "!!!! libssl-dev/pkg-config missing: the embedded router tests will NOT run !!!!" >&2
fi

# The Debian package: build it (release binaries, cargo-deb installed when missing), install
# it with dpkg, run the installed binaries through a BOB session, remove and purge it
# (root; CI=true makes any failure, also a missing root, a failure).
echo "== scripts/test-package.sh"
scripts/test-package.sh
