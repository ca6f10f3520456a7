"""Issue 16, part 5: refusals of clients without an identity are audited without
flooding the trail: counted per peer address and period (audit_refusal_period_s),
one AuditEvent per window with the count, first and last time and a sample of
paths, flushed on time and on shutdown. Identified clients' refusals stay one
event each."""

import json
import socket
import time

HTTPS_REFUSALS, UNLISTED, MLLP_REFUSALS = 300, 50, 100


def security_events(gw):
    rows = gw.db().execute("SELECT json FROM audit ORDER BY seq").fetchall()
    return [e for e in (json.loads(r[0]) for r in rows) if e["type"]["code"] == "110113"]


def tally(event):
    entity = [e for e in event["entity"] if e.get("detail")][0]
    details = {}
    for d in entity["detail"]:
        details.setdefault(d["type"], []).append(d["valueString"])
    return entity["name"], int(details["count"][0]), details.get("path", [])


def refuse_over_https(gw, n, cert=None):
    for i in range(n):
        path = ["/fhir/ServiceRequest/%d" % i, "/fhir/Patient", "/ris/orders", "/fhir"][i % 4]
        r = gw.get(path, cert=cert) if i % 4 != 3 else gw.post(path, {"resourceType": "Bundle"},
                                                               cert=cert)
        assert r.status == 401, r


def refuse_over_mllp(gw, n):
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", gw.mllp_port), timeout=5) as s:
            s.settimeout(5)
            try:
                assert s.recv(16) == b""  # closed at once, nothing answered
            except ConnectionResetError:
                pass


def test_a_flood_without_identity_gives_few_events_whose_counts_add_up(make_gateway):
    gw = make_gateway(env={"GATEWAY_MLLP_ALLOW": "10.9.9.9"})
    before = len(security_events(gw))
    started = time.time()
    refuse_over_https(gw, HTTPS_REFUSALS - UNLISTED)
    refuse_over_https(gw, UNLISTED, cert="unlisted")  # signed by the CA, in no client table
    refuse_over_mllp(gw, MLLP_REFUSALS)
    seq = gw.db().execute("SELECT MAX(seq) FROM audit").fetchone()[0]
    for _ in range(5):  # an identified client's refusals: one event each, at once
        assert gw.get("/fhir/ServiceRequest", cert="auditor").status == 403
    rows = gw.db().execute("SELECT json FROM audit WHERE seq > ?", (seq,)).fetchall()
    forbidden = [json.loads(r[0]) for r in rows]
    assert len(forbidden) == 5 and all(e["outcome"] == "4" for e in forbidden)
    assert all(e["agent"][0]["who"]["display"] == "auditor" for e in forbidden)
    windows = 1 + int((time.time() - started) // 60) + 1  # default period: 60 s
    gw.stop()  # the open windows are recorded on shutdown
    events = security_events(gw)[before:]
    counts = {"HTTPS": 0, "MLLP": 0}
    for e in events:
        channel, count, paths = tally(e)
        counts[channel] += count
        assert e["outcome"] == "4" and e["agent"][0]["network"]["address"] == "127.0.0.1"
        assert e["period"]["start"] <= e["period"]["end"]
        assert 1 <= len(paths) <= 5, paths
    assert counts == {"HTTPS": HTTPS_REFUSALS, "MLLP": MLLP_REFUSALS}, counts
    assert len(events) <= 2 * windows, len(events)
    assert verify_chain(gw)


def verify_chain(gw):
    r = gw.audit_verify()
    return r.returncode == 0


def test_windows_close_on_time_and_the_event_is_valid_fhir(make_gateway):
    gw = make_gateway(env={"GATEWAY_AUDIT_REFUSAL_PERIOD_S": "1"})
    refuse_over_https(gw, 20)
    deadline = time.time() + 10
    while time.time() < deadline and not security_events(gw):
        time.sleep(0.1)
    events = security_events(gw)
    assert events, "the window closed without a shutdown"
    check = gw.post("/fhir/AuditEvent/$validate", events[0], cert="auditor")
    assert check.status == 200, check
    assert not [i for i in check.json()["issue"] if i["severity"] in ("error", "fatal")], check
    found = gw.get("/fhir/AuditEvent?type=110113&address=127.0.0.1", cert="auditor").json()
    assert found.get("entry"), "the auditor finds it by type and address"
    gw.stop()
    assert sum(tally(e)[1] for e in security_events(gw)) == 20
