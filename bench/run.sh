#!/bin/sh
# run.sh -- make bench: the gateway against its honest floor, same TLS, same
# certificates, same threading mode, same load generator, in one run.
#
# The floor is bench/baseline (libmicrohttpd doing only what the gateway's
# HTTP layer must: TLS, the client certificate identified once per
# connection, the 2.4 KB body read, a small fixed answer).
#
#   1. closed loop against the floor    BENCH_CONNECTIONS (64), BENCH_DURATION s (10)
#   2. closed loop against the gateway  same
#   3. open loop against the gateway    BENCH_RATE referrals/s offered (2500), same duration
#
# STORE=sqlite (default): the gateway on a SQLite file.
# STORE=postgresql (make bench STORE=postgresql): a PostgreSQL server of its own
# (tools/pgtest.sh, fsync on, as SQLite's synchronous=FULL), then 2 and 3 for one
# gateway on it and for two instances on one database, the load generator
# splitting its connections over both ports; a closed loop on SQLite first, in the
# same run, for comparison.
#
# Every request is a POST of bench/servicerequest.json (a realistic 2.4 KB
# referral) with the development gp certificate over keep-alive
# connections. Prints both rates, their ratio, p50/p99 of both, the
# gateway's open-loop p99, its commit batch sizes and its memory.
set -eu
B=${B:-build}
CONN=${BENCH_CONNECTIONS:-64}
DUR=${BENCH_DURATION:-10}
RATE=${BENCH_RATE:-2500}
STORE=${STORE:-sqlite}
CERTS=certs/dev
work=$(mktemp -d)
gw_pids="" base_pid="" pg_dir=""
cleanup() {
    for pid in $gw_pids $base_pid; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -n "$pg_dir" ]; then
        tools/pgtest.sh destroy "$pg_dir" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

case "$STORE" in
sqlite | postgresql) ;;
*) echo "bench: STORE is sqlite or postgresql, not $STORE" >&2; exit 2 ;;
esac

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

load() { # port[,port...] [extra loadgen options]
    port=$1
    shift
    "$B/bench/loadgen" --port "$port" --ca $CERTS/ca.pem --cert $CERTS/gp.pem --key $CERTS/gp.key \
        --method POST --path /fhir/ServiceRequest --body bench/servicerequest.json \
        --content-type application/fhir+json --connections "$CONN" --duration "$DUR" "$@"
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

mb() { # pid field: a /proc/PID/status size in MB
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# start_gateway NAME STORE_URL: starts an instance; sets gw_pid and gw_port.
start_gateway() {
    GATEWAY_INSTANCE_ID=$1 "$B/fhir-gateway" serve --listen 127.0.0.1:0 --mllp-listen "" \
        --store "$2" 2>"$work/$1.log" &
    gw_pid=$!
    gw_pids="$gw_pids $gw_pid"
    for _ in $(seq 300); do
        grep -q '"event":"listening"' "$work/$1.log" 2>/dev/null && break
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.1
    done
    gw_port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$work/$1.log")
    [ -n "$gw_port" ] || { cat "$work/$1.log"; echo "bench: gateway $1 did not start" >&2; exit 1; }
}

stop_gateways() {
    for pid in $gw_pids; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    gw_pids=""
}

commits() { # port: the commit batch line from the gateway's metrics
    /usr/bin/python3 - "$1" <<'PY'
import re, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="certs/dev/ca.pem")
text = urllib.request.urlopen("https://127.0.0.1:%s/metrics" % sys.argv[1], context=ctx).read().decode()
m = {k: float(v) for k, v in re.findall(r"^gateway_store_commit_batch_size_(sum|count) (\S+)$", text, re.M)}
if m.get("count"):
    print("%d, mean batch %.1f requests per commit" % (m["count"], m["sum"] / m["count"]))
PY
}

# measure LABEL PORTS PIDS: closed and open loop against the instances (ports
# comma-separated), then the lines make bench prints.
measure() {
    label=$1 ports=$2 pids=$3
    gw=$(load "$ports")
    echo "$label closed loop: $gw"
    open=$(load "$ports" --rate "$RATE")
    echo "$label open loop at $RATE referrals/s offered: $open"
    awk -v g="$(field "$gw" rate)" -v b="$(field "$base" rate)" -v l="$label" \
        'BEGIN { printf "floor %.0f req/s, %s %.0f referrals/s, ratio gateway/floor: %.3f\n", b, l, g, (b > 0 ? g / b : 0) }'
    echo "closed loop p50/p99: floor $(field "$base" p50_ms)/$(field "$base" p99_ms) ms," \
         "$label $(field "$gw" p50_ms)/$(field "$gw" p99_ms) ms"
    echo "open loop: $label p99 $(field "$open" p99_ms) ms at $RATE/s offered" \
         "($(field "$open" rate)/s answered 2xx, $(field "$open" non2xx) non-2xx, $(field "$open" errors) errors)"
    for pid in $pids; do
        echo "$label memory (pid $pid): RSS $(mb "$pid" VmRSS) MB now, $(mb "$pid" VmHWM) MB peak;" \
             "threads $(awk '$1 == "Threads:" { print $2 }' "/proc/$pid/status")"
    done
    for port in $(echo "$ports" | tr ',' ' '); do
        echo "$label commits (port $port): $(commits "$port")"
    done
}

base_port=$(free_port)
"$B/bench/baseline" "$base_port" $CERTS/server.pem $CERTS/server.key $CERTS/ca.pem \
    2>"$work/baseline.log" &
base_pid=$!

if [ "$STORE" = sqlite ]; then
    start_gateway fhir-gateway "sqlite:$work/bench.db"
    sleep 0.3
    echo "bench: $CONN connections, ${DUR}s per run, POST of a $(wc -c < bench/servicerequest.json)-byte ServiceRequest"
    base=$(load "$base_port")
    echo "floor    (libmicrohttpd, same TLS and threads, no work): $base"
    gw=$(load "$gw_port")
    echo "gateway  (validate, map, store, audit, fsync):           $gw"
    open=$(load "$gw_port" --rate "$RATE")
    echo "gateway  open loop at $RATE referrals/s offered:          $open"
    awk -v g="$(field "$gw" rate)" -v b="$(field "$base" rate)" \
        'BEGIN { printf "floor %.0f req/s, gateway %.0f referrals/s, ratio gateway/floor: %.3f\n", b, g, (b > 0 ? g / b : 0) }'
    echo "closed loop p50/p99: floor $(field "$base" p50_ms)/$(field "$base" p99_ms) ms," \
         "gateway $(field "$gw" p50_ms)/$(field "$gw" p99_ms) ms"
    echo "open loop: gateway p99 $(field "$open" p99_ms) ms at $RATE/s offered" \
         "($(field "$open" rate)/s answered 2xx, $(field "$open" non2xx) non-2xx, $(field "$open" errors) errors)"
    echo "gateway memory: RSS $(mb "$gw_pid" VmRSS) MB now, $(mb "$gw_pid" VmHWM) MB peak;" \
         "threads $(awk '$1 == "Threads:" { print $2 }' "/proc/$gw_pid/status")"
    echo "gateway commits: $(commits "$gw_port")"
    exit 0
fi

# STORE=postgresql
pg_dir=$(PGTEST_WATCH=$$ tools/pgtest.sh start) || { echo "bench: PostgreSQL did not start" >&2; exit 1; }
pg_url=$(tools/pgtest.sh url "$pg_dir")
pg_db() { # a new database on the bench server: its URL
    name=bench_$1
    tools/pgtest.sh psql "$pg_dir" -q -c "CREATE DATABASE $name" >/dev/null
    echo "${pg_url%/*}/$name"
}
echo "bench: $CONN connections, ${DUR}s per run, POST of a $(wc -c < bench/servicerequest.json)-byte ServiceRequest;" \
     "PostgreSQL $(tools/pgtest.sh psql "$pg_dir" -A -t -q -c 'SHOW server_version' | cut -d' ' -f1)," \
     "fsync $(tools/pgtest.sh psql "$pg_dir" -A -t -q -c 'SHOW fsync')"
sleep 0.3
base=$(load "$base_port")
echo "floor (libmicrohttpd, same TLS and threads, no work): $base"

start_gateway sqlite "sqlite:$work/bench.db"
sleep 0.3
sq=$(load "$gw_port")
echo "sqlite closed loop: $sq"
awk -v g="$(field "$sq" rate)" -v b="$(field "$base" rate)" \
    'BEGIN { printf "floor %.0f req/s, sqlite %.0f referrals/s, ratio gateway/floor: %.3f\n", b, g, (b > 0 ? g / b : 0) }'
echo "closed loop p50/p99: floor $(field "$base" p50_ms)/$(field "$base" p99_ms) ms," \
     "sqlite $(field "$sq" p50_ms)/$(field "$sq" p99_ms) ms"
stop_gateways

start_gateway gw-1 "$(pg_db one)"
sleep 0.3
measure "postgresql x1" "$gw_port" "$gw_pid"
stop_gateways

url=$(pg_db two)
start_gateway gw-1 "$url"
p1=$gw_port pid1=$gw_pid
start_gateway gw-2 "$url"
sleep 0.3
measure "postgresql x2" "$p1,$gw_port" "$pid1 $gw_pid"
