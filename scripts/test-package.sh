#!/usr/bin/env bash
# Package test (run by scripts/test.sh, as root): builds the Debian package, installs it
# on this machine with dpkg, runs the installed binaries through a BOB session, removes and
# purges it, and checks that nothing it installed or made is left behind.
#
#   scripts/test-package.sh          (CI=true: any failure, also not being root, fails)
#
# It refuses to run when a bob-server package, /etc/bob-server or /var/lib/bob-server is
# already there: those are the user's, and a purge would remove them. On a machine with a
# running systemd the package's service starts on install (on 127.0.0.1:2827) and stops on
# removal; the test's own server uses a free port either way.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CI=${CI:-false}

fail() {
    echo "package test: FAIL: $*" >&2
    exit 1
}
skip() {
    if [ "$CI" = true ]; then
        fail "$* (CI=true: not skipped)"
    fi
    echo "!!!! package test SKIPPED: $* !!!!" >&2
    exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i)"
command -v dpkg >/dev/null 2>&1 || skip "needs dpkg (a Debian system)"
if dpkg-query -W -f '${Status}' bob-server 2>/dev/null | grep -qv 'not-installed'; then
    skip "a bob-server package is already installed; this test would replace and purge it"
fi
for p in /etc/bob-server /var/lib/bob-server /var/lib/private/bob-server; do
    [ ! -e "$p" ] || skip "$p exists (not made by this test); the purge would remove it"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bob-package.XXXXXX")
INSTALLED=
SERVER_PID=
EXPOSE_PID=
cleanup() {
    local rc=$?
    [ -z "$EXPOSE_PID" ] || { kill -TERM "$EXPOSE_PID" 2>/dev/null || true; wait "$EXPOSE_PID" 2>/dev/null || true; }
    [ -z "$SERVER_PID" ] || { kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    if [ -n "$INSTALLED" ]; then
        dpkg --purge bob-server >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# Waits (at most 30 s) until FILE has a line matching the extended regex; prints the line.
wait_line() {
    local file=$1 regex=$2 what=$3 line
    for _ in $(seq 1 300); do
        line=$(grep -E -m 1 "$regex" "$file" 2>/dev/null || true)
        if [ -n "$line" ]; then
            printf '%s\n' "$line"
            return 0
        fi
        sleep 0.1
    done
    echo "--- $file:" >&2
    cat "$file" >&2 || true
    fail "timed out waiting for $what"
}

# Everything under these trees before the install, to compare with after the purge
# (dpkg's own records, caches and logs are expected to change).
snapshot() {
    find /etc /usr /opt /srv /var -xdev \
        \( -path /var/lib/dpkg -o -path /var/cache -o -path /var/log -o -path /var/tmp \
        -o -path /var/lib/apt -o -path /tmp \) -prune -o -print 2>/dev/null | sort
}

T0=$(date +%s)
echo "== package: build (scripts/package.sh)"
DEB=$(scripts/package.sh "$WORK/out" | tail -n 1)
[ -s "$DEB" ] || fail "scripts/package.sh made no package"
T1=$(date +%s)
echo "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes) in $((T1 - T0)) s"
dpkg-deb -c "$DEB" | awk '{print $1, $6}'

snapshot >"$WORK/before"

echo "== package: dpkg -i"
INSTALLED=1
dpkg -i "$DEB" || fail "dpkg -i failed"
dpkg -L bob-server | sort >"$WORK/listed"

# What must be installed.
for f in /usr/bin/bob-server /usr/bin/bobctl /usr/bin/bob-keygen; do
    [ -x "$f" ] || fail "$f is not installed"
done
for f in /etc/bob-server/config.toml /etc/default/bob-server \
    /usr/share/man/man1/bob-server.1.gz /usr/share/man/man1/bobctl.1.gz \
    /usr/share/man/man1/bob-keygen.1.gz /usr/share/bash-completion/completions/bobctl \
    /usr/share/zsh/vendor-completions/_bob-server /usr/share/fish/vendor_completions.d/bob-keygen.fish \
    /usr/share/doc/bob-server/copyright; do
    [ -s "$f" ] || fail "$f is not installed"
done
UNIT=$(grep -E '/systemd/system/bob-server\.service$' "$WORK/listed" | head -n 1)
[ -n "$UNIT" ] && [ -s "$UNIT" ] || fail "the systemd unit is not installed"
grep -q '^DynamicUser=yes' "$UNIT" || fail "$UNIT: no DynamicUser"
grep -q '^ExecStart=/usr/bin/bob-server --config /etc/bob-server/config.toml' "$UNIT" ||
    fail "$UNIT: ExecStart does not run the installed binary with the installed config"
for f in /etc/bob-server/config.toml /etc/default/bob-server; do
    grep -qx "$f" /var/lib/dpkg/info/bob-server.conffiles || fail "$f is not a conffile"
done
# enabled on install (deb-systemd-helper works without a running systemd)
[ -L /etc/systemd/system/multi-user.target.wants/bob-server.service ] ||
    fail "the service was not enabled"

# The installed configuration is valid and points at the local SAM bridge.
/usr/bin/bob-server --config /etc/bob-server/config.toml --print-config >"$WORK/effective.toml" ||
    fail "the installed config.toml does not load"
grep -qx 'router = "sam://127.0.0.1:7656"' "$WORK/effective.toml" ||
    fail "the installed config does not point at sam://127.0.0.1:7656"
/usr/bin/bob-keygen --version >/dev/null || fail "bob-keygen does not run"
gzip -dc /usr/share/man/man1/bob-server.1.gz | grep -q -- 'listen' || fail "bob-server.1 is empty"

echo "== package: installed bob-server through a BOB session"
# The local core on a free port, saving its state where the unit does.
RUST_LOG=info /usr/bin/bob-server --listen 127.0.0.1:0 --state-dir /var/lib/bob-server \
    2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=$(wait_line "$WORK/server.log" '^bob-server listening on ' "the installed server to listen")
ADDR=${ADDR#bob-server listening on }
export BOBCTL=/usr/bin/bobctl BOBCTL_SERVER=$ADDR
EXAMPLES=/usr/share/doc/bob-server/examples

# Publish a directory with the packaged example, then fetch a file through a client
# tunnel with the other one: both tunnels are made by the installed bobctl.
mkdir -p "$WORK/site"
echo "hello from the package" >"$WORK/site/hello.txt"
bash "$EXAMPLES/expose-web-server.sh" "$WORK/site" >"$WORK/expose.out" 2>"$WORK/expose.err" &
EXPOSE_PID=$!
B32=$(wait_line "$WORK/expose.out" '^b32: ' "expose-web-server.sh to print its address")
B32=${B32#b32: }
/usr/bin/bobctl list >"$WORK/list.out" || fail "bobctl list failed"
grep -q '^web\b\|nickname: web' "$WORK/list.out" || { cat "$WORK/list.out" >&2; fail "bobctl list does not show web"; }
# the running tunnel is saved where the unit keeps its state (one file per tunnel; the
# examples remove their tunnels when they end, so this is checked while `web` exists)
ls /var/lib/bob-server/tunnels/*.toml >/dev/null 2>&1 || fail "no state saved in /var/lib/bob-server/tunnels"
printf 'GET /hello.txt HTTP/1.0\r\n\r\n' |
    TUNNEL_NAME=fetch bash "$EXAMPLES/nc-client.sh" "$B32" >"$WORK/fetch.out" 2>"$WORK/fetch.err" ||
    { cat "$WORK/fetch.err" >&2; fail "nc-client.sh failed"; }
grep -q '^HTTP/1.0 200' "$WORK/fetch.out" && grep -q '^hello from the package' "$WORK/fetch.out" ||
    { cat "$WORK/fetch.out" "$WORK/fetch.err" >&2; fail "no page through the tunnels"; }

kill -TERM "$EXPOSE_PID"
wait "$EXPOSE_PID" 2>/dev/null || true
EXPOSE_PID=
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ "$rc" = 0 ] || { cat "$WORK/server.log" >&2; fail "bob-server exited $rc on SIGTERM"; }
T2=$(date +%s)

echo "== package: dpkg -r, then dpkg --purge"
dpkg -r bob-server || fail "dpkg -r failed"
for f in /usr/bin/bob-server /usr/bin/bobctl /usr/bin/bob-keygen "$UNIT"; do
    [ ! -e "$f" ] || fail "$f is still there after dpkg -r"
done
[ -f /etc/bob-server/config.toml ] || fail "dpkg -r removed the conffile (only purge should)"
dpkg --purge bob-server || fail "dpkg --purge failed"
INSTALLED=

# Every path the package listed is gone, except directories other packages own too.
while IFS= read -r p; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    if [ -d "$p" ] && [ ! -L "$p" ] && dpkg -S "$p" >/dev/null 2>&1; then
        continue
    fi
    fail "$p is left after the purge"
done <"$WORK/listed"
for p in /etc/bob-server /var/lib/bob-server /var/lib/private/bob-server \
    /etc/systemd/system/multi-user.target.wants/bob-server.service \
    /etc/systemd/system/bob-server.service; do
    [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is left after the purge"
done
# Nothing else appeared either.
snapshot >"$WORK/after"
LEFT=$(comm -13 "$WORK/before" "$WORK/after")
[ -z "$LEFT" ] || fail "left after the purge: $LEFT"
T3=$(date +%s)
echo "package test: PASS (build $((T1 - T0)) s, install and session $((T2 - T1)) s, removal $((T3 - T2)) s)"
