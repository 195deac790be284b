# Sourced by scripts that start i2pd on loopback (test.sh, bench-router.sh, bench-udp.sh).

# Picks N distinct ports in 20000-31999 (below the usual ephemeral range) that nothing
# listens on; sets PORTS.
pick_ports() {
    PORTS=()
    local p tries=0
    while [ "${#PORTS[@]}" -lt "$1" ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 1000 ] || { echo "no free ports found" >&2; return 1; }
        p=$((20000 + RANDOM % 12000))
        case " ${PORTS[*]:-} " in *" $p "*) continue ;; esac
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            continue
        fi
        PORTS+=("$p")
    done
}

# Starts the offline i2pd in directory $1 on 4 free ports (SAM, BOB, ...; see
# start-i2pd-offline.sh), trying other ports up to 3 times when a start fails (another
# process may take a port between picking and binding); sets PORTS. Fails with a
# message when no attempt works.
start_i2pd_on_free_ports() {
    local attempt
    for attempt in 1 2 3; do
        pick_ports 4 || return 1
        if scripts/start-i2pd-offline.sh "$1" "${PORTS[@]}"; then
            return 0
        fi
        echo "i2pd start attempt $attempt failed; trying other ports" >&2
    done
    echo "ERROR: could not start i2pd" >&2
    return 1
}
