#!/usr/bin/env bash
# Starts Debian's i2pd (2.45.x) as a single offline router on loopback, for tests.
#
# Usage: scripts/start-i2pd-offline.sh DATADIR SAMPORT BOBPORT NTCP2PORT HTTPPORT
#
# Writes DATADIR/i2pd.conf (the recipe that works offline: floodfill so the router
# serves its own LeaseSets, netid 99 so it can never join the real network, NTCP2 on
# 127.0.0.1 because one transport must be on, address book on because i2pd 2.45
# crashes without it), starts i2pd in the background, writes DATADIR/i2pd.pid and
# waits until the SAM and BOB ports accept connections. Fails (and stops i2pd) when a
# port is taken ("bind: Address already in use" in the log: i2pd keeps running
# without that service) or when i2pd dies or does not come up within 30 s.
# Stop with scripts/stop-i2pd.sh DATADIR.
set -euo pipefail

if [ "$#" -ne 5 ]; then
    echo "usage: $0 DATADIR SAMPORT BOBPORT NTCP2PORT HTTPPORT" >&2
    exit 2
fi
D=$1 SAM=$2 BOB=$3 NTCP2=$4 HTTP=$5
for p in "$SAM" "$BOB" "$NTCP2" "$HTTP"; do
    case $p in
        '' | *[!0-9]*) echo "$0: not a port: '$p'" >&2; exit 2 ;;
    esac
    if [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then
        echo "$0: port out of range: $p" >&2
        exit 2
    fi
done
I2PD=${I2PD:-$(command -v i2pd || true)}
if [ -z "$I2PD" ]; then
    echo "$0: i2pd not found (apt-get install i2pd)" >&2
    exit 1
fi

mkdir -p "$D"
D=$(cd "$D" && pwd)
if [ -f "$D/i2pd.pid" ] && kill -0 "$(cat "$D/i2pd.pid")" 2>/dev/null; then
    echo "$0: i2pd already running for $D (pid $(cat "$D/i2pd.pid"))" >&2
    exit 1
fi

cat > "$D/i2pd.conf" <<CONF
log = file
logfile = $D/i2pd.log
loglevel = warn
daemon = false
service = false
ipv4 = true
ipv6 = false
host = 127.0.0.1
address4 = 127.0.0.1
port = $NTCP2
nat = true
floodfill = true
netid = 99
nettime.enabled = false
upnp.enabled = false
reservedrange = false

[ntcp2]
enabled = true
published = true
port = $NTCP2

[ssu2]
enabled = false

[http]
enabled = true
address = 127.0.0.1
port = $HTTP

[httpproxy]
enabled = false

[socksproxy]
enabled = false

[sam]
enabled = true
address = 127.0.0.1
port = $SAM

[bob]
enabled = true
address = 127.0.0.1
port = $BOB

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
: > "$D/tunnels.conf"
# a restart on the same datadir must not see the previous run's errors
: > "$D/i2pd.log"

"$I2PD" --datadir="$D" --conf="$D/i2pd.conf" --tunconf="$D/tunnels.conf" \
    > "$D/stdout.log" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$D/i2pd.pid"

fail() {
    echo "$0: $*" >&2
    tail -n 20 "$D/i2pd.log" "$D/stdout.log" >&2 2>/dev/null || true
    "$(dirname "$0")/stop-i2pd.sh" "$D" >/dev/null 2>&1 || true
    exit 1
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

deadline=$((SECONDS + 30))
while :; do
    if grep -q "Address already in use" "$D/i2pd.log" "$D/stdout.log" 2>/dev/null; then
        fail "a port is already taken (SAM $SAM, BOB $BOB, NTCP2 $NTCP2, HTTP $HTTP)"
    fi
    kill -0 "$PID" 2>/dev/null || fail "i2pd exited during start-up"
    if port_open "$SAM" && port_open "$BOB"; then
        break
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "SAM port $SAM / BOB port $BOB not open after 30 s"
    sleep 0.1
done
# a clash on a port that opens later (NTCP2, HTTP) shows up in the log a moment after
sleep 0.2
if grep -q "Address already in use" "$D/i2pd.log" "$D/stdout.log" 2>/dev/null; then
    fail "a port is already taken (SAM $SAM, BOB $BOB, NTCP2 $NTCP2, HTTP $HTTP)"
fi
echo "i2pd pid $PID: SAM 127.0.0.1:$SAM BOB 127.0.0.1:$BOB (datadir $D)"
