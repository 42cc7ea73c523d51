# shellcheck shell=bash
# Sourced by scripts that start daemons on 127.0.0.1.
# free_port: prints a port that nothing listens on now (connecting to it fails).
free_port() {
    local p
    for p in $(shuf -i 20000-60999 -n 50); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "$(basename "$0"): no free port found" >&2
    return 1
}
