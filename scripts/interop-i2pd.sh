#!/usr/bin/env bash
# Interoperability check: bob-server's embedded emissary router in a private I2P network
# with i2pd 2.56 routers (a router nobody here wrote), all on 127.0.0.1, no internet.
#
# Usage: scripts/interop-i2pd.sh            (from the repository root)
#
# What it does (issue 15 item 7; docs/embedded-router.md "Interoperability with i2pd"):
#  1. Fetches i2pd 2.56 and the libraries it needs from Debian trixie with a throw-away
#     apt sources list (the system's apt state and its i2pd 2.45 are not touched), and
#     unpacks them under $INTEROP_CACHE (default target/interop-i2pd); later runs reuse it.
#     The binary runs through trixie's own ld.so (bookworm's glibc is too old for it).
#  2. Starts $INTEROP_I2PD (default 3) i2pd routers on a private net id: floodfill,
#     reservedrange = false, NTCP2 on loopback, SSU2 off, SAM and BOB on the first. A first
#     start writes each router's router.info; each router's netDb is then seeded with the
#     others' and they start again.
#  3. Starts bob-server --router embedded on the same net id, reseeded from the i2pd
#     routers' router.info files (emissary wants two routers besides itself for its
#     exploratory tunnels; the i2pd routers are those). The embedded router's own
#     RouterInfo reaches i2pd by the NTCP2 handshake and its floodfill publication.
#  4. Runs scripts/lib/interop_drive.py: (a) i2pd hosts a destination (SAM session on the
#     first i2pd, STREAM FORWARD to a local echo server); a BOB client tunnel on
#     bob-server connects to it by its base64 destination; (b) a BOB server tunnel on
#     bob-server in front of a local echo server, reached from an i2pd SAM session with
#     STREAM CONNECT; (a32)/(b32) the same by .b32.i2p names; (c) i2pd's own BOB: a client
#     tunnel on i2pd to bob-server's server tunnel, and (d) a server tunnel on i2pd reached
#     from bob-server's client tunnel (BOB to BOB across the two implementations).
#     Payloads are random bytes checked byte-exact; it prints the time to the first byte
#     and the whole echo. On failure it says which step failed, the routers' log counts
#     and a DIAGNOSIS.
#
# Environment: BOB_SERVER (binary; default: built into target/embedded with the feature),
#   INTEROP_CACHE, INTEROP_I2PD (2..5), INTEROP_I2PD_BIN (another i2pd binary, e.g.
#   /usr/sbin/i2pd 2.45.1 to see why that one cannot: no fetch then), INTEROP_SSU2=1 (SSU2
#   on every router besides NTCP2), INTEROP_HOPS (tunnel length, default 1),
#   INTEROP_SAM_OPTS (the i2pd SAM sessions' options), INTEROP_NET_ID (default: random 100..199),
#   INTEROP_BYTES (payload per direction, default 65536), INTEROP_TIMEOUT (seconds per
#   direction, default 240), INTEROP_KEEP=1 (keep the run directory).
# Needs: apt-get (with access to deb.debian.org's trixie suite on the first run), python3,
# dpkg-deb. Not run in CI (it fetches from apt and takes minutes).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=lib/ports.sh
. scripts/lib/ports.sh

CACHE=${INTEROP_CACHE:-$ROOT/target/interop-i2pd}
NI2PD=${INTEROP_I2PD:-3}
NET_ID=${INTEROP_NET_ID:-$((100 + RANDOM % 100))}
case $NI2PD in 2 | 3 | 4 | 5) ;; *) echo "INTEROP_I2PD must be 2..5" >&2; exit 2 ;; esac
case $NET_ID in '' | *[!0-9]*) echo "INTEROP_NET_ID must be a number" >&2; exit 2 ;; esac
if [ "$NET_ID" -lt 3 ] || [ "$NET_ID" -gt 254 ]; then
    echo "INTEROP_NET_ID must be 3..254 (2 is the real network)" >&2
    exit 2
fi

say() { printf '[interop %s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*"; exit 1; }

# --- 1. i2pd 2.56 from trixie --------------------------------------------------------
# shellcheck source=lib/i2pd-trixie.sh
. scripts/lib/i2pd-trixie.sh
R=$TRIXIE_ROOT
# the command line that runs i2pd: trixie's through its own loader, or INTEROP_I2PD_BIN
if [ -n "${INTEROP_I2PD_BIN:-}" ]; then
    I2PD_CMD=("$INTEROP_I2PD_BIN")
else
    I2PD_CMD=("${TRIXIE_CMD[@]}")
fi
i2pd_bin() { "${I2PD_CMD[@]}" "$@"; }
if [ -z "${INTEROP_I2PD_BIN:-}" ] && ! trixie_i2pd_ready; then
    fetch_i2pd_trixie
fi
I2PD_VERSION=$(i2pd_bin --version 2>/dev/null || true)
I2PD_VERSION=${I2PD_VERSION%%$'\n'*}
I2PD_FROM="from $R, through trixie's ld.so"
say "$I2PD_VERSION (${INTEROP_I2PD_BIN:-$I2PD_FROM})"

# --- bob-server with the embedded router ----------------------------------------------
if [ -z "${BOB_SERVER:-}" ]; then
    say "building bob-server --features embedded-router (target/embedded; minutes when cold)"
    CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/embedded \
        cargo build -q -p bob-server --features embedded-router --bin bob-server \
        || die "cargo build failed"
    BOB_SERVER=$ROOT/target/embedded/debug/bob-server
fi
[ -x "$BOB_SERVER" ] || die "no bob-server binary at $BOB_SERVER"

# --- run directory, cleanup -------------------------------------------------------------
mkdir -p "$CACHE/runs"
W=$(mktemp -d "$CACHE/runs/run.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "${INTEROP_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        say "run directory kept: $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- 2. i2pd routers ----------------------------------------------------------------------
# ports: per router NTCP2 + HTTP console (+ SSU2, UDP); SAM on router 0; BOB for bob-server
SSU2=${INTEROP_SSU2:-0}
pick_ports $((3 * NI2PD + 3))
NTCP=() HTTP=() UDP=()
for i in $(seq 0 $((NI2PD - 1))); do
    NTCP+=("${PORTS[$((3 * i))]}")
    HTTP+=("${PORTS[$((3 * i + 1))]}")
    UDP+=("${PORTS[$((3 * i + 2))]}")
done
SAM=${PORTS[$((3 * NI2PD))]}
BOB=${PORTS[$((3 * NI2PD + 1))]}
I2PD_BOB=${PORTS[$((3 * NI2PD + 2))]}
SSU2_ON=false
EMB_SSU2=()
if [ "$SSU2" = 1 ]; then
    SSU2_ON=true
    EMB_SSU2=(--router-ssu2-port 0)
fi

write_conf() { # DIR INDEX
    local d=$1 i=$2 sam=false
    [ "$i" -eq 0 ] && sam=true
    cat > "$d/i2pd.conf" <<CONF
log = file
logfile = $d/i2pd.log
loglevel = ${INTEROP_I2PD_LOGLEVEL:-info}
daemon = false
service = false
ipv4 = true
ipv6 = false
host = 127.0.0.1
address4 = 127.0.0.1
port = ${NTCP[$i]}
nat = false
floodfill = true
netid = $NET_ID
nettime.enabled = false
upnp.enabled = false
reservedrange = false

[ntcp2]
enabled = true
published = true
port = ${NTCP[$i]}

[ssu2]
enabled = $SSU2_ON
published = true
port = ${UDP[$i]}

[http]
enabled = true
address = 127.0.0.1
port = ${HTTP[$i]}

[httpproxy]
enabled = false

[socksproxy]
enabled = false

[sam]
enabled = $sam
address = 127.0.0.1
port = $SAM

[bob]
enabled = $sam
address = 127.0.0.1
port = $I2PD_BOB

[i2cp]
enabled = false

[i2pcontrol]
enabled = false

[addressbook]
enabled = true
defaulturl =
subscriptions =

[reseed]
verify = false
urls =
yggurls =
CONF
    : > "$d/tunnels.conf"
}

start_i2pd() { # INDEX
    local d=$W/i2pd$1
    : > "$d/i2pd.log"
    # the loader itself in the background (not a function's subshell): $! is i2pd
    "${I2PD_CMD[@]}" --datadir="$d" --conf="$d/i2pd.conf" --tunconf="$d/tunnels.conf" \
        > "$d/stdout.log" 2>&1 < /dev/null &
    echo $! > "$d/pid"
    PIDS+=("$!")
}

stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
}

SSU2_NOTE=""
[ "$SSU2" = 1 ] && SSU2_NOTE=" and SSU2 ports ${UDP[*]}"
say "net id $NET_ID; $NI2PD i2pd routers on NTCP2 ports ${NTCP[*]}$SSU2_NOTE, SAM on $SAM and i2pd's BOB on $I2PD_BOB (router 0); run dir $W"
# first start: each router makes its keys and router.info
for i in $(seq 0 $((NI2PD - 1))); do
    mkdir -p "$W/i2pd$i"
    write_conf "$W/i2pd$i" "$i"
    start_i2pd "$i"
done
deadline=$((SECONDS + 30))
for i in $(seq 0 $((NI2PD - 1))); do
    until [ -s "$W/i2pd$i/router.info" ]; do
        kill -0 "$(cat "$W/i2pd$i/pid")" 2>/dev/null \
            || { tail -5 "$W/i2pd$i/stdout.log" "$W/i2pd$i/i2pd.log"; die "i2pd $i exited at first start"; }
        [ "$SECONDS" -lt "$deadline" ] || die "i2pd $i wrote no router.info in 30 s"
        sleep 0.1
    done
done
for i in $(seq 0 $((NI2PD - 1))); do stop_pid "$(cat "$W/i2pd$i/pid")"; done
PIDS=()

# seed: every i2pd gets the others' RouterInfos in netDb/r<c>/routerInfo-<hash>.dat;
# $W/seeds holds all of them for the embedded router's --router-reseed-file
mkdir -p "$W/seeds"
for i in $(seq 0 $((NI2PD - 1))); do
    name=$(python3 scripts/lib/interop_drive.py ri-name "$W/i2pd$i/router.info") \
        || die "router.info of i2pd $i does not parse"
    cp "$W/i2pd$i/router.info" "$W/seeds/$name"
    for j in $(seq 0 $((NI2PD - 1))); do
        [ "$i" -eq "$j" ] && continue
        c=${name:11:1}
        mkdir -p "$W/i2pd$j/netDb/r$c"
        cp "$W/i2pd$i/router.info" "$W/i2pd$j/netDb/r$c/$name"
    done
    say "i2pd $i: ${name#routerInfo-} (NTCP2 127.0.0.1:${NTCP[$i]}, console http://127.0.0.1:${HTTP[$i]}/)"
done
T0=$(date +%s.%N)
for i in $(seq 0 $((NI2PD - 1))); do start_i2pd "$i"; done
deadline=$((SECONDS + 30))
until port_open "$SAM"; do
    [ "$SECONDS" -lt "$deadline" ] || die "i2pd 0's SAM port $SAM not open after 30 s"
    sleep 0.1
done
if grep -l "Address already in use" "$W"/i2pd*/i2pd.log "$W"/i2pd*/stdout.log 2>/dev/null; then
    die "a port was taken between picking and binding; run again"
fi

# --- 3. bob-server, embedded router ---------------------------------------------------------
mkdir -p "$W/bob"
RUST_LOG=${INTEROP_RUST_LOG:-info,emissary_core=debug} "$BOB_SERVER" \
    --listen "127.0.0.1:$BOB" \
    --state-dir "$W/bob/state" \
    --router embedded \
    --router-dir "$W/bob/router" \
    --router-net-id "$NET_ID" \
    --router-host 127.0.0.1 \
    --router-floodfill \
    --router-net-reseed=false \
    --router-reseed-file "$W/seeds" \
    --router-shutdown-grace 3 \
    "${EMB_SSU2[@]}" \
    > "$W/bob/stdout.log" 2> "$W/bob/server.log" < /dev/null &
PIDS+=("$!")
BOBPID=$!
deadline=$((SECONDS + 60))
until port_open "$BOB"; do
    kill -0 "$BOBPID" 2>/dev/null || { tail -20 "$W/bob/server.log"; die "bob-server exited during start-up"; }
    [ "$SECONDS" -lt "$deadline" ] || die "bob-server's BOB port $BOB not open after 60 s"
    sleep 0.1
done
say "bob-server (embedded router) on BOB 127.0.0.1:$BOB, $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s after the i2pd routers"

# --- 4. both directions -------------------------------------------------------------------
python3 scripts/lib/interop_drive.py run \
    --bob "127.0.0.1:$BOB" --sam "127.0.0.1:$SAM" --i2pd-bob "127.0.0.1:$I2PD_BOB" --dir "$W" --i2pd "$NI2PD" \
    --bytes "${INTEROP_BYTES:-65536}" --timeout "${INTEROP_TIMEOUT:-240}"
