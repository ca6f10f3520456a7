#!/bin/sh
# run.sh -- make bench: the gateway against a bare libmicrohttpd baseline,
# same TLS, same certificates, same load, in one run.
#
# Both servers get BENCH_CONNECTIONS keep-alive connections (default 64) for
# BENCH_DURATION seconds (default 10) of POSTs of bench/servicerequest.json
# (a realistic 2 KB referral) with the development gp certificate. Prints
# both rates, the ratio gateway/baseline and p50/p99 latencies.
set -eu
B=${B:-build}
CONN=${BENCH_CONNECTIONS:-64}
DUR=${BENCH_DURATION:-10}
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

load() { # port label
    "$B/bench/loadgen" --port "$1" --ca $CERTS/ca.pem --cert $CERTS/gp.pem --key $CERTS/gp.key \
        --method POST --path /fhir/ServiceRequest --body bench/servicerequest.json \
        --content-type application/fhir+json --connections "$CONN" --duration "$DUR"
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

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

echo "bench: $CONN connections, ${DUR}s each, POST of a $(wc -c < bench/servicerequest.json)-byte ServiceRequest"
base=$(load "$base_port")
echo "baseline (bare libmicrohttpd + TLS): $base"
gw=$(load "$gw_port")
echo "gateway  (validate, store, audit, fsync): $gw"
br=$(field "$base" rate)
gr=$(field "$gw" rate)
awk -v g="$gr" -v b="$br" 'BEGIN { printf "ratio gateway/baseline: %.3f\n", (b > 0 ? g / b : 0) }'
/usr/bin/python3 - "$gw_port" <<'PY'
import re, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="certs/dev/ca.pem")
text = urllib.request.urlopen("https://127.0.0.1:%s/metrics" % sys.argv[1], context=ctx).read().decode()
m = {k: float(v) for k, v in re.findall(r"^gateway_store_commit_batch_size_(sum|count) (\S+)$", text, re.M)}
if m.get("count"):
    print("gateway commits: %d, mean batch %.1f requests per commit" % (m["count"], m["sum"] / m["count"]))
PY
