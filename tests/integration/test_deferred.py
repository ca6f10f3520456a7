"""Handlers that wait or read much hold no server thread: the auditor's long
operations run on the blocking threads, and an export's cursor takes one of the
reader connections only while at most half of them are taken (the epoll threads
must always find one for a read)."""

import json
import threading
import time

from test_audit import forge_chain


def raw_request(gw, cert, method, path):
    """Sends one request on a new TLS connection; returns the socket to read the answer from."""
    sock = gw.connection(cert)
    sock.request(method, path, body=b"" if method == "POST" else None)
    return sock


def test_a_long_verify_leaves_the_only_server_thread_free(make_gateway):
    gw = make_gateway(env={"GATEWAY_HTTP_THREADS": "1"})  # one epoll thread serves everything
    gw.stop()
    forge_chain(gw, 100000)  # a $verify of about a second here
    gw.start()
    verify = raw_request(gw, "auditor", "POST", "/fhir/AuditEvent/$verify")
    answered = {}

    def wait_verify():
        r = verify.getresponse()
        body = r.read()
        answered["verify"] = (time.monotonic(), r.status, body)

    waiter = threading.Thread(target=wait_verify)
    waiter.start()
    time.sleep(0.1)  # the verify is under way on a blocking thread
    r = gw.get("/healthz", cert=None)
    healthz_at = time.monotonic()
    assert r.status == 200
    r = gw.get("/fhir/ServiceRequest?_count=1", cert="gp")  # a read: audited, answered
    assert r.status == 200
    waiter.join(60)
    at, status, body = answered["verify"]
    assert status == 200 and json.loads(body)["parameter"][0]["valueBoolean"] is True
    # the single epoll thread answered while the chain was being walked
    assert healthz_at < at, "healthz waited for the verify"


def test_exports_take_at_most_half_the_reader_connections(make_gateway):
    gw = make_gateway(env={"GATEWAY_READ_CONNECTIONS": "2"})  # one export at a time
    gw.stop()
    forge_chain(gw, 20000)  # about 10 MB: it does not fit in the socket buffers
    gw.start()
    first = raw_request(gw, "auditor", "GET", "/fhir/AuditEvent/$export")
    resp = first.getresponse()
    assert resp.status == 200
    assert resp.readline()  # the export is under way; its client reads no further now
    second = gw.get("/fhir/AuditEvent/$export", cert="auditor")
    assert second.status == 503 and second.header("Retry-After"), second
    assert "exports" in second.json()["issue"][0]["diagnostics"]
    # reads still find a reader connection meanwhile
    assert gw.get("/fhir/ServiceRequest?_count=1", cert="gp").status == 200
    rest = resp.read()
    assert rest.count(b"\n") >= 19999
    first.close()
    deadline = time.time() + 10
    while time.time() < deadline:  # the first export's cursor closes as its answer ends
        third = gw.get("/fhir/AuditEvent/$export?entity-name:exact=none", cert="auditor")
        if third.status == 200:
            break
        time.sleep(0.1)
    assert third.status == 200, third
