"""SIGHUP: the client table and the TLS files are read again; a bad file keeps
what is in force; connections already open finish on the old certificate."""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time

from conftest import CERTS, tls_context


def served_certificate(gw):
    ctx = tls_context("gp")
    conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=ctx, timeout=10)
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    der = conn.sock.getpeercert(binary_form=True)
    conn.close()
    return der


def issue_server_cert(workdir, name):
    key, csr, pem = (os.path.join(workdir, name + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(workdir, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    run("openssl", "req", "-new", "-key", key, "-subj", "/CN=localhost", "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(CERTS, "ca.pem"), "-CAkey",
        os.path.join(CERTS, "ca.key"), "-CAcreateserial", "-CAserial",
        os.path.join(workdir, "ca.srl"), "-days", "2", "-extfile", ext, "-out", pem)
    return pem, key


def test_sighup_reloads_the_server_certificate(make_gateway, workdir):
    cert, key = os.path.join(workdir, "server.pem"), os.path.join(workdir, "server.key")
    shutil.copy(os.path.join(CERTS, "server.pem"), cert)
    shutil.copy(os.path.join(CERTS, "server.key"), key)
    gw = make_gateway(env={"GATEWAY_TLS_CERT": cert, "GATEWAY_TLS_KEY": key})
    before = served_certificate(gw)
    open_conn = gw.connection("gp")
    open_conn.request("GET", "/healthz")
    open_conn.getresponse().read()
    new_pem, new_key = issue_server_cert(workdir, "next")
    shutil.copy(new_pem, cert)
    shutil.copy(new_key, key)
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_for_log("tls-reloaded")
    after = served_certificate(gw)
    assert after != before
    open_conn.request("GET", "/healthz")  # the connection opened before keeps working
    assert open_conn.getresponse().status == 200
    open_conn.close()
    with open(cert, "w") as f:
        f.write("not a certificate")
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_for_log("tls-reload-failed")
    assert served_certificate(gw) == after
    assert gw.get("/fhir/metadata").status == 200


def test_sighup_reloads_the_client_table(make_gateway, workdir):
    table = os.path.join(workdir, "clients.json")
    with open(os.path.join(CERTS, "clients.json")) as f:
        clients = json.load(f)
    with open(table, "w") as f:
        json.dump(clients, f)
    gw = make_gateway(env={"GATEWAY_CLIENTS_FILE": table})
    assert gw.get("/fhir/ServiceRequest", cert="gp2").status == 200
    clients["clients"] = [c for c in clients["clients"] if c["name"] != "gp2"]
    with open(table, "w") as f:
        json.dump(clients, f)
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_for_log("reloaded")
    assert gw.get("/fhir/ServiceRequest", cert="gp2").status == 401
    assert gw.get("/fhir/ServiceRequest", cert="gp").status == 200
    with open(table, "w") as f:
        f.write("{")
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_for_log("reload-failed")
    assert gw.get("/fhir/ServiceRequest", cert="gp").status == 200


def test_tls_reloads_while_clients_connect_lose_no_connection(make_gateway):
    """Fifteen TLS reloads while four clients open connection after
    connection: the listener is handed from daemon to daemon without
    MHD_quiesce_daemon() (whose race with libmicrohttpd's own epoll workers
    aborted the process), so every connection is served and the gateway
    still stops cleanly."""
    gw = make_gateway()
    stop, lock = threading.Event(), threading.Lock()
    counts = {"ok": 0, "failed": 0}

    def client():
        ctx = tls_context("gp")
        while not stop.is_set():
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=ctx, timeout=10)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
                outcome = "ok" if status == 200 else "failed"
            except (OSError, http.client.HTTPException):
                outcome = "failed"
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(15):
            gw.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while (len([e for e in gw.logs if e.get("event") == "tls-reloaded"]) <= i
                   and time.time() < deadline and gw.proc.poll() is None):
                time.sleep(0.02)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert gw.proc.poll() is None, "the gateway died during the reloads"
    assert len([e for e in gw.logs if e.get("event") == "tls-reloaded"]) == 15
    assert counts["failed"] == 0 and counts["ok"] > 0, counts
