#!/usr/bin/env bash
# Stops the i2pd started by scripts/start-i2pd-offline.sh DATADIR: SIGTERM, then
# SIGKILL after 3 s (i2pd 2.45 can deadlock in its shutdown path).
#
# Usage: scripts/stop-i2pd.sh DATADIR
set -uo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 DATADIR" >&2
    exit 2
fi
PIDFILE=$1/i2pd.pid
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
case $PID in
    '' | *[!0-9]*) rm -f "$PIDFILE"; exit 0 ;;
esac
if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 30); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
        done
    fi
fi
rm -f "$PIDFILE"
