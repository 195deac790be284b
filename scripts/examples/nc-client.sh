#!/usr/bin/env bash
# Worked example: talk to an I2P destination with plain `nc` through a client tunnel.
#
#   scripts/examples/nc-client.sh DESTINATION
#
# DESTINATION is a base64 destination, a `.b32.i2p` address or a known `.i2p` name.
# The script creates a client tunnel (an inbound port on loopback), then connects to
# it with nc: the first line sent is the destination, everything after it is your
# standard input, and what the destination answers is printed. On exit the tunnel is
# stopped and removed.
#
#   echo 'GET / HTTP/1.0
#
#   ' | scripts/examples/nc-client.sh example.b32.i2p
#
# Environment:
#   BOBCTL_SERVER  the BOB control address (default 127.0.0.1:2827)
#   BOBCTL         the bobctl binary (default: bobctl on PATH)
#   TUNNEL_NAME    the tunnel's nickname (default: nc-client-PID)
set -euo pipefail

DEST=${1:?usage: nc-client.sh DESTINATION}
BOBCTL=${BOBCTL:-bobctl}
NAME=${TUNNEL_NAME:-nc-client-$$}

command -v nc >/dev/null || { echo "nc-client: nc (netcat) is needed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "nc-client: python3 is needed" >&2; exit 2; }

cleanup() {
    "$BOBCTL" stop "$NAME" >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
        "$BOBCTL" clear "$NAME" >/dev/null 2>&1 && break
        sleep 0.1
    done
}

# The inbound port: a free loopback port (bobctl start fails if it was taken meanwhile).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Client tunnel: new throwaway keys, inbound side only. `start` returns once the
# listener is up.
"$BOBCTL" create "$NAME" --newkeys --in "127.0.0.1:$PORT" --start >/dev/null
# Only now is the tunnel ours to remove (create refuses an existing name and cleans up
# after itself when it fails).
trap cleanup EXIT
echo "client tunnel $NAME listening on 127.0.0.1:$PORT" >&2

# OpenBSD netcat keeps the connection open after the end of stdin unless given -N (shut
# down the sending side): with it the destination sees the end of the request.
NC_OPTS=()
if nc -h 2>&1 | grep -q -- '-N'; then
    NC_OPTS=(-N)
fi

# First line: where to connect. Then stdin is passed through; replies go to stdout.
{ printf '%s\n' "$DEST"; cat; } | nc "${NC_OPTS[@]}" 127.0.0.1 "$PORT"
