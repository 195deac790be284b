# Sourced by scripts that start i2pd on loopback (test.sh, bench-router.sh).

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
