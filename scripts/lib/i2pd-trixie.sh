# Sourced by scripts that run i2pd 2.56 from Debian trixie next to the system's i2pd 2.45
# (interop-i2pd.sh, bench-router.sh). Needs CACHE (the unpack directory) and the
# functions say and die. Sets TRIXIE_ROOT, TRIXIE_LDSO and TRIXIE_CMD (the command
# line, an array: a real command, so that `"${TRIXIE_CMD[@]}" ... &` gives i2pd's pid).
#
# fetch_i2pd_trixie: downloads i2pd and the libraries it needs from trixie with a
#   throw-away apt sources list (the system's apt state and its i2pd are not touched) and
#   unpacks them under $CACHE/root. The binary runs through trixie's own ld.so
#   (bookworm's glibc is too old for it).
# trixie_i2pd_ready: true when the unpacked binary runs.
# write_trixie_wrapper FILE: a one-line script that runs that binary with its arguments
#   (for scripts that take an i2pd command as one path, like start-i2pd-offline.sh's I2PD).

TRIXIE_PKGS="i2pd libc6 libstdc++6 libgcc-s1 libboost-program-options1.83.0 libssl3t64 libminiupnpc18 zlib1g libzstd1"
TRIXIE_ROOT=$CACHE/root
TRIXIE_LDSO=$TRIXIE_ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2

fetch_i2pd_trixie() {
    local A=$CACHE/apt R=$TRIXIE_ROOT
    rm -rf "$A" "$R"
    mkdir -p "$A/lists/partial" "$A/archives/partial" "$A/cache" "$A/debs" "$R"
    echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main' \
        > "$A/trixie.list"
    local O=(-o "Dir::Etc::sourcelist=$A/trixie.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::lists=$A/lists" -o "Dir::Cache=$A/cache"
        -o "Dir::Cache::archives=$A/archives" -o APT::Get::List-Cleanup=0)
    say "fetching i2pd 2.56 and its libraries from Debian trixie into $A"
    apt-get -qq "${O[@]}" update || die "apt-get update of the trixie suite failed"
    # shellcheck disable=SC2086
    (cd "$A/debs" && apt-get -qq "${O[@]}" download $TRIXIE_PKGS 2>&1 | grep -v unsandboxed) || true
    local p
    for p in $TRIXIE_PKGS; do
        ls "$A/debs/${p}"_*.deb > /dev/null 2>&1 || die "apt-get download $p (trixie) failed"
    done
    for p in "$A"/debs/*.deb; do dpkg-deb -x "$p" "$R"; done
    rm -rf "$A/lists" "$A/cache"
}

TRIXIE_CMD=("$TRIXIE_LDSO" --library-path "$TRIXIE_ROOT/usr/lib/x86_64-linux-gnu"
    "$TRIXIE_ROOT/usr/bin/i2pd")

trixie_i2pd_ready() {
    [ -x "$TRIXIE_LDSO" ] && "${TRIXIE_CMD[@]}" --version > /dev/null 2>&1
}

write_trixie_wrapper() {
    printf '#!/bin/sh\nexec "%s" --library-path "%s" "%s" "$@"\n' "${TRIXIE_CMD[0]}" \
        "${TRIXIE_CMD[2]}" "${TRIXIE_CMD[3]}" > "$1"
    chmod 755 "$1"
}
