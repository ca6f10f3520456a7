#!/bin/sh
# pgtest.sh -- a throwaway PostgreSQL server for the tests, from Debian's packages.
#
#   tools/pgtest.sh start [DIR]   creates (when needed) and starts a server whose data, socket,
#                                 port file and log all live in DIR (default: a new temporary
#                                 folder); prints DIR. Starting a running server does nothing.
#   tools/pgtest.sh stop DIR [MODE]  stops it, keeping the data: MODE fast (default; immediate
#                                 after 30 s) or immediate (as a crash: recovery at next start)
#   tools/pgtest.sh url DIR       prints postgresql://gateway@127.0.0.1:PORT/gateway
#   tools/pgtest.sh psql DIR ARGS...  runs the server's psql on its database gateway
#   tools/pgtest.sh destroy DIR   stops it and removes DIR
#   tools/pgtest.sh exec CMD...   starts a server in a new folder, runs CMD with GW_TEST_PG_URL
#                                 and GW_TEST_PG_DIR set, destroys the server however CMD ends,
#                                 and exits with CMD's status
#
# The server listens on 127.0.0.1 and on a socket in DIR only, on a free port chosen at its
# first start and kept across restarts (a test that stops and restarts it keeps its URL).
# Authentication is `trust`: the server is reachable from this machine only, for the tests.
# Run as root (CI), the server runs as the unprivileged user `postgres` (Debian's package
# creates it; `nobody` otherwise), which owns DIR: PostgreSQL refuses to run as root.
# The binaries come from /usr/lib/postgresql/*/bin (newest version), never from PATH.
# The cluster's locale is C.UTF-8, as on a typical server, not C: a C collation would
# hide that LIKE 'prefix%' cannot use a plain index under a linguistic collation.
#
# Environment: PGTEST_WATCH=PID destroys the server once process PID is gone (so a killed
# test run leaves nothing running); PGTEST_FSYNC=off trades durability for speed (default on);
# PGTEST_BINDIR overrides the binaries' folder; PGTEST_USER the user run as root.
set -eu

die() {
    echo "pgtest: $*" >&2
    exit 1
}

find_bindir() {
    if [ -n "${PGTEST_BINDIR:-}" ]; then
        echo "$PGTEST_BINDIR"
        return
    fi
    best="" best_v=0
    for d in /usr/lib/postgresql/*/bin; do
        if [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ] || [ ! -x "$d/postgres" ]; then
            continue
        fi
        v=$(basename "$(dirname "$d")")
        case "$v" in *[!0-9]*) continue ;; esac
        if [ "$v" -gt "$best_v" ]; then
            best=$d best_v=$v
        fi
    done
    [ -n "$best" ] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin (tools/deps.sh test installs it)"
    echo "$best"
}

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
BIN=$(find_bindir)
MAJOR=$(basename "$(dirname "$BIN")")

# The user the server runs as, and a way to run a command as that user.
if [ "$(id -u)" -eq 0 ]; then
    RUNAS=${PGTEST_USER:-postgres}
    id "$RUNAS" >/dev/null 2>&1 || RUNAS=nobody
    as_server() { runuser -u "$RUNAS" -- "$@"; }
else
    RUNAS=$(id -un)
    as_server() { "$@"; }
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The pid in DIR's postmaster.pid when it is a live postgres process (not a zombie).
server_pid() {
    pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null || true)
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    grep -q '^postgres' "/proc/$pid/comm" 2>/dev/null || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
    case "$state" in Z | X | '') return 1 ;; esac
    echo "$pid"
}

is_running() {
    server_pid "$1" >/dev/null
}

# A postmaster.pid whose process is not a postgres server (a killed server, a recycled pid)
# would make the new server refuse to start: remove it.
clear_stale_pid() {
    pidfile=$1/data/postmaster.pid
    if [ -f "$pidfile" ] && ! server_pid "$1" >/dev/null; then
        echo "pgtest: removing the stale $pidfile (its process is gone)" >&2
        rm -f "$pidfile"
    fi
    for lock in "$1"/.s.PGSQL.*.lock; do
        [ -f "$lock" ] || continue
        pid=$(head -n 1 "$lock")
        case "$pid" in '' | *[!0-9]*) pid=0 ;; esac
        if ! grep -q '^postgres' "/proc/$pid/comm" 2>/dev/null ||
            grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
            rm -f "$lock" "${lock%.lock}"
        fi
    done
}

# Creates the cluster unless DIR holds a complete one of this major version.
init_cluster() {
    dir=$1
    if [ -f "$dir/data/PG_VERSION" ] && [ -f "$dir/data/postgresql.conf" ] &&
        [ "$(cat "$dir/data/PG_VERSION")" = "$MAJOR" ] && [ -f "$dir/initialised" ]; then
        return 0
    fi
    [ -d "$dir/data" ] && echo "pgtest: replacing the incomplete or foreign cluster in $dir/data" >&2
    rm -rf "$dir/data" "$dir/initialised"
    (cd "$dir" && as_server "$BIN/initdb" -D "$dir/data" -U gateway -A trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1) ||
        die "initdb failed (see $dir/initdb.log): $(tail -n 5 "$dir/initdb.log")"
    cat >>"$dir/data/postgresql.conf" <<EOF
# tools/pgtest.sh: loopback and this folder's socket only
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = ${PGTEST_FSYNC:-on}
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
    touch "$dir/initialised"
}

start() {
    dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -n "$(ls -A "$dir")" ] && ! is_ours "$dir"; then
        die "$dir is not empty and holds no test server: refusing to use it"
    fi
    [ "$(id -u)" -eq 0 ] && chown -R "$RUNAS:" "$dir"
    chmod 700 "$dir"
    if is_running "$dir"; then
        echo "$dir"
        return 0
    fi
    init_cluster "$dir"
    clear_stale_pid "$dir"
    tries=0
    while :; do
        [ -s "$dir/port" ] || free_port >"$dir/port"
        port=$(cat "$dir/port")
        if (cd "$dir" && as_server "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port" start >/dev/null 2>&1); then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 10 ] || die "the server in $dir did not start: $(tail -n 5 "$dir/server.log")"
        if tail -n 5 "$dir/server.log" | grep -q "could not bind\|could not create any TCP"; then
            rm -f "$dir/port" # another program took the port meanwhile: a new one
        elif tail -n 5 "$dir/server.log" | grep -q "shared memory block\|lock file"; then
            sleep 1 # a killed server's processes are still leaving
            clear_stale_pid "$dir"
        else
            die "the server in $dir did not start: $(tail -n 5 "$dir/server.log")"
        fi
    done
    if ! "$BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U gateway -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'gateway'" | grep -q 1; then
        "$BIN/createdb" -h 127.0.0.1 -p "$port" -U gateway gateway ||
            die "could not create the database gateway"
    fi
    if [ -n "${PGTEST_WATCH:-}" ]; then
        # Detached, without our stdout/stderr, so a caller reading them is not held open.
        watched=$PGTEST_WATCH
        # shellcheck disable=SC2016 # expanded by the watching shell
        PGTEST_WATCH="" setsid sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" destroy "$3"' \
            watch "$watched" "$SELF" "$dir" </dev/null >/dev/null 2>&1 &
    fi
    echo "$dir"
}

stop() {
    dir=$1 mode=${2:-fast}
    case "$mode" in fast | immediate) ;; *) die "stop mode: fast or immediate, not $mode" ;; esac
    [ -d "$dir/data" ] || return 0
    is_running "$dir" || return 0
    (cd "$dir" && as_server "$BIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 30 stop >/dev/null 2>&1) ||
        (cd "$dir" && as_server "$BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1) ||
        die "the server in $dir did not stop"
}

url() {
    [ -s "$1/port" ] || die "no server was started in $1"
    echo "postgresql://gateway@127.0.0.1:$(cat "$1/port")/gateway"
}

# True when DIR is a folder this script made a server in.
is_ours() {
    [ -f "$1/initialised" ] || [ -f "$1/data/PG_VERSION" ] || [ -f "$1/port" ]
}

destroy() {
    dir=$1
    [ -d "$dir" ] || return 0
    stop "$dir"
    if is_ours "$dir"; then
        rm -rf "$dir"
    fi
}

# start in a new temporary folder, removed again when the server does not start.
start_new() {
    new=$(mktemp -d "${TMPDIR:-/tmp}/gw-pg.XXXXXX")
    if ! (start "$new"); then
        destroy "$new" 2>/dev/null || true
        rm -rf "$new"
        exit 1
    fi
}

run_with_server() {
    dir=$(start_new) || exit 1
    trap 'destroy "$dir"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    status=0
    GW_TEST_PG_URL=$(url "$dir") GW_TEST_PG_DIR=$dir "$@" || status=$?
    exit $status
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
start) if [ -n "${1:-}" ]; then start "$1"; else start_new; fi ;;
stop)
    case $# in 1 | 2) ;; *) die "usage: $0 stop DIR [fast|immediate]" ;; esac
    stop "$@"
    ;;
url) [ $# -eq 1 ] || die "usage: $0 url DIR"; url "$1" ;;
psql)
    [ $# -ge 1 ] || die "usage: $0 psql DIR ARGS..."
    u=$(url "$1")
    shift
    exec "$BIN/psql" -X -v ON_ERROR_STOP=1 "$@" "$u"
    ;;
destroy) [ $# -eq 1 ] || die "usage: $0 destroy DIR"; destroy "$1" ;;
exec) [ $# -gt 0 ] || die "usage: $0 exec CMD..."; run_with_server "$@" ;;
*)
    echo "usage: $0 start [DIR] | stop DIR [fast|immediate] | url DIR | psql DIR ARGS..." >&2
    echo "       $0 destroy DIR | exec CMD..." >&2
    exit 2
    ;;
esac
