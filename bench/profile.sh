#!/bin/sh
# profile.sh -- make profile: instructions per referral, per thread, per function.
#
# Runs build/fhir-gateway under valgrind's callgrind (one output file per
# thread) with instrumentation off during start-up and a warm-up; turns it
# on, sends PROFILE_SECONDS of closed-loop referrals (bench/servicerequest.json)
# over PROFILE_CONNECTIONS keep-alive connections with bench/loadgen, turns it
# off once every answer is in (loadgen waits for them), and divides each
# thread's instruction count by the number of answered requests. Instruction
# counts do not depend on what else the (shared) machine runs, so two runs,
# before and after a change, compare.
#
#   B=build PROFILE_SECONDS=20 PROFILE_CONNECTIONS=16 bench/profile.sh [outdir]
#
# Prints the instructions per referral of the request threads (libmicrohttpd's
# workers: TLS, parse, validate, map, prepare, answer), of the store's writer
# and of the rest; the TLS handshakes and certificate checks of the measured
# connections apart (a cost per connection, not per referral); then the top
# PROFILE_TOP functions of the request threads and of the writer, by
# inclusive (recursive functions left out: callgrind counts their recursion
# more than once; read their callers') and by self cost. The raw files stay in outdir for
# callgrind_annotate (one per thread: cg.out-NN).
set -eu
B=${B:-build}
SECS=${PROFILE_SECONDS:-20}
CONN=${PROFILE_CONNECTIONS:-16}
TOP=${PROFILE_TOP:-30}
CERTS=certs/dev
out=${1:-$(mktemp -d)}
mkdir -p "$out"
rm -f "$out"/cg.out* "$out/profile.db"*
gw_pid=""
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes \
    --callgrind-out-file="$out/cg.out" \
    "$B/fhir-gateway" serve --listen 127.0.0.1:0 --mllp-listen "" --store "sqlite:$out/profile.db" \
    2>"$out/gateway.log" &
gw_pid=$!
for _ in $(seq 600); do
    grep -q '"event":"listening"' "$out/gateway.log" 2>/dev/null && break
    sleep 0.1
done
port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$out/gateway.log")
[ -n "$port" ] || { cat "$out/gateway.log"; echo "profile: gateway did not start" >&2; exit 1; }

load() { # seconds
    "$B/bench/loadgen" --port "$port" --ca $CERTS/ca.pem --cert $CERTS/gp.pem --key $CERTS/gp.key \
        --method POST --path /fhir/ServiceRequest --body bench/servicerequest.json \
        --content-type application/fhir+json --connections "$CONN" --duration "$1"
}
load 3 >/dev/null # warm-up: tables built on first use, the store's first pages
callgrind_control -i on "$gw_pid" >/dev/null
res=$(load "$SECS")
callgrind_control -i off "$gw_pid" >/dev/null
kill "$gw_pid"
wait "$gw_pid" 2>/dev/null || true
gw_pid=""
echo "loadgen: $res"
n=$(echo "$res" | tr ' ' '\n' | awk -F= '$1 == "ok" || $1 == "non2xx" || $1 == "errors" { s += $2 } END { print s + 0 }')
[ "$n" -gt 0 ] || { echo "profile: no request was answered" >&2; exit 1; }

/usr/bin/python3 - "$out" "$n" "$CONN" "$TOP" <<'PY'
import collections, glob, os, re, subprocess, sys

out, n, conns, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def table(path, inclusive):
    """{function: Ir} of one callgrind file (recursion levels summed, marked)."""
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100",
                           "--inclusive=" + ("yes" if inclusive else "no"), path],
                          capture_output=True, text=True, check=True,
                          cwd="/").stdout  # elsewhere it also prints names relative to the sources
    rows, seen = collections.Counter(), False
    for line in text.splitlines():
        if "file:function" in line:
            seen = True
            continue
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m or not seen or "PROGRAM TOTALS" in line:
            continue
        name = re.sub(r" \[/[^\]]*/([^/\]]+)\]$", r" [\1]", m.group(2))
        name = re.sub(r"^/[^:]*/gateway/", "", name)
        name = re.sub(r"^\./[^:]*/", "", name)
        base = re.sub(r"'\d+", "", name)
        v = int(m.group(1).replace(",", ""))
        if base != name:
            recursive.add(base)
        rows[base] += v
    return rows

recursive = set()  # callgrind's inclusive cost of these counts their recursion again

def totals(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    return 0

roles = collections.defaultdict(list)
for path in sorted(glob.glob(os.path.join(out, "cg.out-*"))):
    ir = totals(path)
    if ir == 0:
        continue
    with open(path, errors="replace") as f:
        body = f.read()
    role = ("writer" if "writer_main" in body else
            "request" if "http_dispatch" in body or "MHD_" in body and "on_request" in body else
            "other")
    roles[role].append((path, ir))

per_conn = collections.Counter()
for path, _ in roles["request"]:
    inc = table(path, True)
    for k, v in inc.items():
        if k.startswith("???:gnutls_handshake ") or k.startswith("http/server.c:http_conn_identify "):
            per_conn[k.split(" ")[0]] += v
conn_ir = sum(per_conn.values())

print("profile: %d requests answered while measured, %d connections" % (n, conns))
grand = 0
for role in ("request", "writer", "other"):
    ir = sum(v for _, v in roles[role])
    grand += ir
    if not ir:
        continue
    extra = ""
    if role == "request":
        extra = "  (%.0f without the %d connections' handshakes and certificate checks, %.0f each)" % (
            (ir - conn_ir) / n, conns, conn_ir / conns)
    print("%-8s threads %d: %14d Ir  %9.0f Ir/referral%s" % (role, len(roles[role]), ir, ir / n, extra))
print("all threads:        %14d Ir  %9.0f Ir/referral" % (grand, grand / n))

for role in ("request", "writer"):
    if not roles[role]:
        continue
    for inclusive in (True, False):
        rows = collections.Counter()
        for path, _ in roles[role]:
            rows.update(table(path, inclusive))
        ir = sum(v for _, v in roles[role])
        print("\n== %s threads: top %d functions, %s cost (Ir per referral, share of the %s threads)"
              % (role, top, "inclusive" if inclusive else "self", role))
        shown = 0
        for name, v in rows.most_common():
            if inclusive and (name.startswith("???:0x") or "libmicrohttpd" in name or
                              name in recursive):
                continue  # anonymous library frames, the daemon's loop, recursion: no sense
            print("%10.0f %5.1f%%  %s" % (v / n, 100.0 * v / ir, name[:110]))
            shown += 1
            if shown == top:
                break
PY
echo
echo "profile: raw files in $out (callgrind_annotate $out/cg.out-NN)"
