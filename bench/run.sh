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
# Every request is a POST of bench/servicerequest.json (a realistic 2.4 KB
# referral) with the development gp certificate over keep-alive
# connections. Prints both rates, their ratio, p50/p99 of both, the
# gateway's open-loop p99, its commit batch sizes and its memory.
set -eu
B=${B:-build}
CONN=${BENCH_CONNECTIONS:-64}
DUR=${BENCH_DURATION:-10}
RATE=${BENCH_RATE:-2500}
CERTS=certs/dev
work=$(mktemp -d)
gw_pid="" base_pid=""
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null || true
    [ -n "$base_pid" ] && kill "$base_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

load() { # port [extra loadgen options]
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

"$B/fhir-gateway" serve --listen 127.0.0.1:0 --mllp-listen "" --store "sqlite:$work/bench.db" \
    2>"$work/gateway.log" &
gw_pid=$!
base_port=$(free_port)
"$B/bench/baseline" "$base_port" $CERTS/server.pem $CERTS/server.key $CERTS/ca.pem \
    2>"$work/baseline.log" &
base_pid=$!
for _ in $(seq 100); do
    grep -q '"event":"listening"' "$work/gateway.log" 2>/dev/null && break
    sleep 0.1
done
gw_port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$work/gateway.log")
[ -n "$gw_port" ] || { cat "$work/gateway.log"; echo "bench: gateway did not start" >&2; exit 1; }
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
/usr/bin/python3 - "$gw_port" <<'PY'
import re, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="certs/dev/ca.pem")
text = urllib.request.urlopen("https://127.0.0.1:%s/metrics" % sys.argv[1], context=ctx).read().decode()
m = {k: float(v) for k, v in re.findall(r"^gateway_store_commit_batch_size_(sum|count) (\S+)$", text, re.M)}
if m.get("count"):
    print("gateway commits: %d, mean batch %.1f requests per commit" % (m["count"], m["sum"] / m["count"]))
PY
