#!/usr/bin/python3
"""scale.py -- make bench-scale: the gateway with an empty store and with N
stored referrals (1,000,000 by default), side by side.

The store of N referrals is filled once, the fastest honest way: the NDJSON
of bench/gen_referrals (a transaction Bundle per referral: its Patient and
ServiceRequest) through `fhir-gateway import --client gp`, which validates,
maps and writes each referral with its Task, RIS order and AuditEvents as
POST /fhir would. It lives in var/bench-scale/N/ and is reused by later runs
(they add the few thousand referrals and pulls of their own measurements).

For each store, with the gateway serving it (development setup):
  - searches, BENCH_CONNECTIONS (2) clients for BENCH_DURATION (10) seconds each, over
    500 sampled referrals: ServiceRequest?identifier=, ?patient=,
    Task?focus=ServiceRequest/, ServiceRequest?authored=<a day> (p50, p99);
  - conditional creates: POST /fhir/ServiceRequest with If-None-Exist on a
    new identifier each (bench/loadgen --unique), 16 clients;
  - the RIS pull: GET /ris/orders?max=1000 then POST /ris/acks of every order,
    one RIS client, orders settled per second;
  - the store's size on disk.
Prints the table, and the targets beside it (reported, not asserted).
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
B = os.path.join(REPO, os.environ.get("B", "build"))
GATEWAY = os.path.join(B, "fhir-gateway")
LOADGEN = os.path.join(B, "bench", "loadgen")
GEN = os.path.join(B, "bench", "gen_referrals")
CERTS = os.path.join(REPO, "certs", "dev")
WORK = os.path.join(REPO, "var", "bench-scale")
PLACER = "urn:oid:1.2.250.1.999.1.1"
DURATION = float(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "2"))  # search clients: latency, not saturation
SAMPLES = 500
PULL_MAX = 1000
TOKEN = "@@@@@@@@@@@@@@@@"  # loadgen --unique: a new identifier per request


def log(text):
    print("bench-scale: " + text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the fill

def fill(n):
    folder = os.path.join(WORK, str(n))
    store = os.path.join(folder, "store.db")
    marker = os.path.join(folder, "filled")
    if os.path.exists(marker) and os.path.exists(store):
        with open(marker) as f:
            log("reusing the store of %d referrals in %s (%s)" % (n, folder, f.read().strip()))
        return store
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    log("filling %s with %d referrals: gen_referrals | fhir-gateway import" % (folder, n))
    t0 = time.time()
    gen = subprocess.Popen([GEN, str(n)], stdout=subprocess.PIPE)
    imp = subprocess.run([GATEWAY, "import", "--client", "gp", "--batch", "1000", "--store",
                          "sqlite:" + store, "-"], stdin=gen.stdout, cwd=REPO,
                         capture_output=True, text=True)
    gen.stdout.close()
    gen.wait()
    summary = imp.stdout.strip()
    log(summary)
    if imp.returncode != 0 or gen.returncode != 0:
        sys.stderr.write(imp.stderr[-4000:])
        raise SystemExit("bench-scale: the import failed (exit %d)" % imp.returncode)
    with open(marker, "w") as f:
        f.write("%s; %.0f s in all\n" % (summary, time.time() - t0))
    return store


# ---------------------------------------------------------------- the gateway

class Gateway:
    def __init__(self, store):
        env = dict(os.environ, GATEWAY_MAX_PULL=str(PULL_MAX))
        self.proc = subprocess.Popen([GATEWAY, "serve", "--listen", "127.0.0.1:0",
                                      "--mllp-listen", "", "--store", "sqlite:" + store],
                                     cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = None
        for raw in self.proc.stderr:
            m = re.search(rb'"event":"listening".*"port":(\d+)', raw)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            raise SystemExit("bench-scale: the gateway did not start")
        threading.Thread(target=self.drain, daemon=True).start()
        self.ctx = {}

    def drain(self):
        """Keeps the logs flowing; passes on warnings and errors."""
        for raw in self.proc.stderr:
            if b'"level":"warn"' in raw or b'"level":"error"' in raw:
                sys.stderr.write("gateway: " + raw.decode("utf-8", "replace"))

    def conn(self, cert):
        if cert not in self.ctx:
            c = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
            c.load_cert_chain(os.path.join(CERTS, cert + ".pem"), os.path.join(CERTS, cert + ".key"))
            self.ctx[cert] = c
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx[cert],
                                           timeout=120)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def get_json(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    return json.loads(body) if r.status == 200 else None


def loadgen(gw, cert, extra, connections):
    out = subprocess.run([LOADGEN, "--port", str(gw.port), "--ca", os.path.join(CERTS, "ca.pem"),
                          "--cert", os.path.join(CERTS, cert + ".pem"),
                          "--key", os.path.join(CERTS, cert + ".key"),
                          "--connections", str(connections), "--duration", str(DURATION)] + extra,
                         capture_output=True, text=True, cwd=REPO)
    fields = dict(re.findall(r"(\w+)=([\d.]+)", out.stdout))
    if not fields:
        raise SystemExit("bench-scale: loadgen failed: " + out.stderr)
    return {k: float(v) for k, v in fields.items()}


# ---------------------------------------------------------------- measurements

def samples(gw, n):
    """Paths of each search kind over SAMPLES referrals (found when stored)."""
    rnd = random.Random(42)
    conn = gw.conn("gp")
    paths = {"identifier": [], "patient": [], "Task?focus": [], "date": []}
    for i in rnd.sample(range(max(n, SAMPLES)), SAMPLES):
        ident = "scale-%08d" % i
        paths["identifier"].append("/fhir/ServiceRequest?identifier=%s|%s" % (PLACER, ident))
        found = get_json(conn, "/fhir/ServiceRequest?identifier=%s|%s" % (PLACER, ident)) if n else None
        sr = (found or {}).get("entry", [{}])[0].get("resource")
        if sr:
            paths["patient"].append("/fhir/ServiceRequest?patient=" + sr["subject"]["reference"])
            paths["Task?focus"].append("/fhir/Task?focus=ServiceRequest/" + sr["id"])
            paths["date"].append("/fhir/ServiceRequest?authored=" + sr["authoredOn"][:10])
        else:
            paths["patient"].append("/fhir/ServiceRequest?patient=Patient/%032x" % rnd.getrandbits(128))
            paths["Task?focus"].append("/fhir/Task?focus=ServiceRequest/%032x" % rnd.getrandbits(128))
            paths["date"].append("/fhir/ServiceRequest?authored=2024-%02d-%02d"
                                 % (rnd.randint(1, 12), rnd.randint(1, 28)))
    conn.close()
    return paths


def searches(gw, paths, folder):
    out = {}
    for kind, items in paths.items():
        path_file = os.path.join(folder, "paths-" + re.sub(r"\W", "-", kind))
        with open(path_file, "w") as f:
            f.write("\n".join(items) + "\n")
        out[kind] = loadgen(gw, "gp", ["--paths", path_file], CONNECTIONS)
        log("search %-10s p50 %.2f ms, p99 %.2f ms (%.0f/s)" % (
            kind, out[kind]["p50_ms"], out[kind]["p99_ms"], out[kind]["rate"]))
    return out


def conditional_creates(gw, folder):
    with open(os.path.join(REPO, "bench", "servicerequest.json")) as f:
        sr = json.load(f)
    sr["identifier"][0]["value"] = "ine-" + TOKEN
    body = os.path.join(folder, "conditional-create.json")
    with open(body, "w") as f:
        json.dump(sr, f)
    r = loadgen(gw, "gp", ["--method", "POST", "--path", "/fhir/ServiceRequest", "--body", body,
                           "--header", "If-None-Exist: identifier=%s|ine-%s" % (PLACER, TOKEN),
                           "--header", "Prefer: return=minimal", "--unique", TOKEN], 16)
    log("conditional creates %.0f/s, p50 %.2f ms, p99 %.2f ms" % (r["rate"], r["p50_ms"], r["p99_ms"]))
    return r


def ack_batch(orders):
    """ACKs (AA) of every message of a pulled batch, as one HL7 batch."""
    acks = []
    for msg in orders:
        msh = msg.split("\r", 1)[0].split("|")
        acks.append("MSH|^~\\&|%s|%s|%s|%s|%s||ACK^%s^ACK|A%s|P|%s\rMSA|AA|%s\r" % (
            msh[4], msh[5], msh[2], msh[3], time.strftime("%Y%m%d%H%M%S"),
            msh[8].split("^")[1] if "^" in msh[8] else "", msh[9][-19:], msh[11], msh[9]))
    return "BHS|^~\\&\r" + "".join(acks) + "BTS|%d\r" % len(acks)


def ris_pull(gw):
    conn = gw.conn("ris")
    settled, t0 = 0, time.time()
    while time.time() - t0 < DURATION:
        conn.request("GET", "/ris/orders?max=%d" % PULL_MAX)
        r = conn.getresponse()
        text = r.read().decode("utf-8")
        if r.status != 200:
            raise SystemExit("bench-scale: GET /ris/orders answered %d" % r.status)
        orders = ["MSH|" + m for m in text.split("\rMSH|")[1:]]
        if not orders:
            break
        for i, m in enumerate(orders):  # cut the trailing BTS/FTS of the last one
            orders[i] = m.split("\rBTS|")[0] + "\r"
        conn.request("POST", "/ris/acks", ack_batch(orders),
                     {"Content-Type": "application/hl7-v2; charset=utf-8"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit("bench-scale: POST /ris/acks answered %d" % r.status)
        settled += len(orders)
    elapsed = time.time() - t0
    conn.close()
    rate = settled / elapsed if elapsed > 0 else 0
    log("RIS pull: %d orders pulled and acknowledged in %.1f s: %.0f/s" % (settled, elapsed, rate))
    return {"rate": rate, "orders": settled}


def size_of(store):
    return sum(os.path.getsize(store + s) for s in ("", "-wal") if os.path.exists(store + s))


def measure(label, store, n):
    folder = os.path.dirname(store)
    log("measuring with %s stored" % label)
    gw = Gateway(store)
    try:
        res = {"search": searches(gw, samples(gw, n), folder)}
        res["create"] = conditional_creates(gw, folder)
        res["pull"] = ris_pull(gw)
    finally:
        gw.stop()
    res["size"] = size_of(store)
    return res


# ---------------------------------------------------------------- the table

def table(n, empty, full):
    rows = [("conditional creates/s (16 clients)", "%.0f" % empty["create"]["rate"],
             "%.0f" % full["create"]["rate"],
             "%.2f of empty (target >= 0.90)" % (full["create"]["rate"] / empty["create"]["rate"]
                                                 if empty["create"]["rate"] else 0))]
    for kind in ("identifier", "patient", "Task?focus", "date"):
        e, f = empty["search"][kind], full["search"][kind]
        rows.append(("%s search p50 / p99 ms" % kind, "%.2f / %.2f" % (e["p50_ms"], e["p99_ms"]),
                     "%.2f / %.2f" % (f["p50_ms"], f["p99_ms"]), "target p50 <= 2 ms"))
    rows.append(("RIS pull + ACK, orders/s", "%.0f" % empty["pull"]["rate"],
                 "%.0f" % full["pull"]["rate"], "target >= 20,000"))
    rows.append(("store on disk, MB", "%.1f" % (empty["size"] / 1e6), "%.1f" % (full["size"] / 1e6),
                 "%.0f bytes per referral" % (full["size"] / n)))
    head = ("", "0 stored", "{:,} stored".format(n), "")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    for r in [head] + rows:
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) if i < 3 else c
                        for i, c in enumerate(r)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--referrals", type=int, default=1000000)
    args = ap.parse_args()
    store = fill(args.referrals)
    empty_dir = os.path.join(WORK, "empty")
    shutil.rmtree(empty_dir, ignore_errors=True)
    os.makedirs(empty_dir)
    empty = measure("0", os.path.join(empty_dir, "store.db"), 0)
    full = measure("{:,}".format(args.referrals), store, args.referrals)
    print("bench-scale: %d s per measurement, %d search clients, loadgen over TLS with client"
          " certificates" % (DURATION, CONNECTIONS))
    table(args.referrals, empty, full)


if __name__ == "__main__":
    main()
