#!/usr/bin/python3
"""store_footprint.py -- what one referral costs the store: B-tree entries
(table rows and index entries), bytes on disk and bytes written.

Starts build/fhir-gateway on a fresh SQLite store, creates N referrals with
POST /fhir/ServiceRequest (bench/servicerequest.json, a distinct identifier
each, 8 clients so commits are grouped as in real use), stops the gateway
and reads SQLite's dbstat table. Each referral brings its Task, its RIS order
and its AuditEvent, as over HTTP.

  bench/store_footprint.py [--referrals N] [--bin build/fhir-gateway] [--keep DIR]

Prints, per referral: entries and bytes of each table and index, their
totals, and the bytes the gateway process wrote to disk (/proc/PID/io
write_bytes: WAL frames plus checkpoints) while creating them.
"""

import argparse
import http.client
import json
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CERTS = os.path.join(REPO, "certs", "dev")
CLIENTS = 8


def start(binary, store):
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--mllp-listen", "",
                             "--store", "sqlite:" + store], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    port = None
    for raw in proc.stderr:
        m = re.search(rb'"event":"listening".*"port":(\d+)', raw)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit("store_footprint: the gateway did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


def write_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def create(port, n, body):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    ctx.load_cert_chain(os.path.join(CERTS, "gp.pem"), os.path.join(CERTS, "gp.key"))
    failures = []

    def worker(k):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
        for i in range(k, n, CLIENTS):
            sr = json.loads(body)
            sr["identifier"][0]["value"] = "footprint-%07d" % i
            conn.request("POST", "/fhir/ServiceRequest", json.dumps(sr),
                         {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
            r = conn.getresponse()
            r.read()
            if r.status != 201:
                failures.append(r.status)
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit("store_footprint: %d creates failed (%s)" % (len(failures), failures[:5]))


def btrees(path):
    """{name: (entries, bytes)} for every table and index of the store."""
    db = sqlite3.connect(path)
    rowid_tables = {name for name, sql in db.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
        if sql and "WITHOUT ROWID" not in sql.upper()}
    out = {}
    for name, pagetype, ncell, pgsize in db.execute(
            "SELECT name, pagetype, ncell, pgsize FROM dbstat"):
        entries, size = out.get(name, (0, 0))
        # a rowid table keeps its rows in leaves; an index (or WITHOUT ROWID
        # table) keeps entries in interior pages too
        if pagetype == "leaf" or (pagetype == "internal" and name not in rowid_tables):
            entries += ncell
        out[name] = (entries, size + pgsize)
    db.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--referrals", type=int, default=2000)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "fhir-gateway"))
    ap.add_argument("--keep", help="folder for the store (kept); default a temporary one")
    args = ap.parse_args()
    with open(os.path.join(REPO, "bench", "servicerequest.json")) as f:
        body = f.read()
    work = args.keep or tempfile.mkdtemp(prefix="gw-footprint-")
    os.makedirs(work, exist_ok=True)
    store = os.path.join(work, "footprint.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(store + suffix):
            os.remove(store + suffix)
    proc, port = start(args.bin, store)
    time.sleep(0.5)
    before = btrees(store)
    written = write_bytes(proc.pid)
    t0 = time.time()
    create(port, args.referrals, body)
    elapsed = time.time() - t0
    time.sleep(1.5)  # one checkpoint period: the WAL's pages reach the database
    written = write_bytes(proc.pid) - written
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    after = btrees(store)
    n = args.referrals
    print("store footprint: %d referrals (POST /fhir/ServiceRequest, %d clients, %.1f s)"
          % (n, CLIENTS, elapsed))
    print("%-28s %12s %14s" % ("b-tree", "entries/ref", "bytes/ref"))
    total_e = total_b = 0
    for name in sorted(after):
        e = after[name][0] - before.get(name, (0, 0))[0]
        b = after[name][1] - before.get(name, (0, 0))[1]
        total_e += e
        total_b += b
        if e or b:
            print("%-28s %12.2f %14.1f" % (name, e / n, b / n))
    print("%-28s %12.2f %14.1f" % ("total", total_e / n, total_b / n))
    print("written to disk per referral (WAL and checkpoints): %.0f bytes" % (written / n))
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(store + suffix):
                os.remove(store + suffix)
        os.rmdir(work)


if __name__ == "__main__":
    sys.exit(main())
