# Sourced by bench-http.sh, bench-cpu-ab.sh and bench-open-ab.sh: one release server on
# loopback with a fresh data dir at a time.
#
#   serve BINARY [SERVE_ARGS...]   # start it, wait for /readyz; sets server_pid, server_data
#   unserve                        # SIGTERM, wait, delete its data dir
#
# BENCH_PORT overrides the port (18182), BENCH_SERVER_LOG the server's log level (error).
port="${BENCH_PORT:-18182}"
secret=bench-secret-0123456789
server_pid=
server_data=
serve() {
    local bin=$1
    shift
    server_data=$(mktemp -d)
    INNKEEP_DATA_DIR=$server_data INNKEEP_LISTEN=127.0.0.1:$port INNKEEP_PAYMENT_SECRET=$secret \
        INNKEEP_LOG="${BENCH_SERVER_LOG:-error}" "$bin" serve "$@" &
    server_pid=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$bin did not become ready" >&2
    return 1
}
unserve() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    rm -rf "$server_data"
}
