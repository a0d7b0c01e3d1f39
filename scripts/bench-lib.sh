# Sourced by bench-http.sh, bench-cpu-ab.sh and bench-open-ab.sh: one release server on
# loopback with a fresh data dir at a time (bench-cluster.sh uses its wait_http).
#
#   serve BINARY [SERVE_ARGS...]   # start it, wait for /readyz; sets server_pid, server_data
#   unserve                        # SIGTERM, wait, delete its data dir
#   wait_http URL                  # poll URL until it answers (10 s at most)
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
    wait_http "http://127.0.0.1:$port/readyz"
}
# Polls URL until it answers 2xx (10 s at most); says which did not.
wait_http() {
    for _ in $(seq 100); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not answer" >&2
    return 1
}
unserve() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    rm -rf "$server_data"
}
