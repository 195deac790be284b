#!/usr/bin/env bash
# Worked example: publish a local directory as an I2P web site through bob-server.
#
#   scripts/examples/expose-web-server.sh [DIR]
#
# 1. serves DIR (default: the current directory) with `python3 -m http.server` on a
#    free loopback port;
# 2. creates a server tunnel with bobctl that hands every incoming I2P stream to that
#    port (`quiet`, so the web server sees plain HTTP, not a peer destination line);
# 3. prints the site's address as `b32: <address>.b32.i2p` and serves until interrupted;
#    on exit (Ctrl-C, SIGTERM) it stops and removes the tunnel and the web server.
#
# Environment:
#   BOBCTL_SERVER  the BOB control address (default 127.0.0.1:2827)
#   BOBCTL         the bobctl binary (default: bobctl on PATH)
#   TUNNEL_NAME    the tunnel's nickname (default: web)
#   KEY_TYPE       signature type of the new keys (default: ed25519)
#   KEYS           use this key file instead of new keys (keeps the address across runs)
set -euo pipefail

DIR=${1:-.}
BOBCTL=${BOBCTL:-bobctl}
NAME=${TUNNEL_NAME:-web}
KEY_TYPE=${KEY_TYPE:-ed25519}

[ -d "$DIR" ] || { echo "expose-web-server: $DIR is not a directory" >&2; exit 2; }
command -v python3 >/dev/null || { echo "expose-web-server: python3 is needed" >&2; exit 2; }

# A free loopback port: ask the kernel for one (it is free again once this returns).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

python3 -m http.server --bind 127.0.0.1 --directory "$DIR" "$PORT" >/dev/null 2>&1 &
HTTP_PID=$!
TUNNEL_CREATED=

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$TUNNEL_CREATED" ]; then
        # stop may answer "tunnel is inactive" if it never started: that is fine
        "$BOBCTL" stop "$NAME" >/dev/null 2>&1 || true
        # the stop finishes in the background; retry clear until the tunnel is idle
        for _ in $(seq 1 50); do
            "$BOBCTL" clear "$NAME" >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    kill "$HTTP_PID" 2>/dev/null || true
    wait "$HTTP_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait (at most 10 s) until the web server accepts connections.
for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
    fi
    if [ "$i" = 100 ] || ! kill -0 "$HTTP_PID" 2>/dev/null; then
        echo "expose-web-server: the web server did not start on port $PORT" >&2
        exit 1
    fi
    sleep 0.1
done
echo "web server: http://127.0.0.1:$PORT/ serving $DIR"

# Create and start the server tunnel; --json makes bobctl print the b32 address too.
if [ -n "${KEYS:-}" ]; then
    KEY_ARGS=(--keys "$KEYS")
else
    KEY_ARGS=(--newkeys="$KEY_TYPE")
fi
# bobctl create refuses a tunnel that exists already and removes what it made when it
# fails, so the tunnel is ours to remove only once create has succeeded.
JSON=$("$BOBCTL" --json create "$NAME" "${KEY_ARGS[@]}" --out "127.0.0.1:$PORT" --quiet --start)
TUNNEL_CREATED=1
B32=$(printf '%s' "$JSON" | python3 -c 'import json, sys; print(json.load(sys.stdin)["b32"])')
echo "b32: $B32"
echo "serving until interrupted (Ctrl-C)"

# Serve until the web server exits or we are interrupted.
wait "$HTTP_PID"
