# shellcheck shell=bash
# Sourced by scripts that start daemons on 127.0.0.1.
# free_port: prints a port that nothing listens on now (connecting to it fails). Below the
# kernel's ephemeral range when it starts at 32768 or above (the default), so that no outgoing
# connection of another program (the Ceph cluster's, a test's) can hold it when the daemon binds;
# from 27000 up, as the integration tests take theirs from 20000 to 26999 (tests/common/daemon.rs).
free_port() {
    local p low range=27000-60999
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=0
    ((low >= 32768)) && range=27000-$((low - 1))
    for p in $(shuf -i "$range" -n 50); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "$(basename "$0"): no free port found" >&2
    return 1
}
