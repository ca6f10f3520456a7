"""Issue: the auditor's console. /console/ for auditors only (HTML refusal
pages, strict CSP, odd paths refused); the operations it uses: $verify (the
chain check `audit verify` runs), $activity (hourly roll-up, per client),
$export (the current search as streamed NDJSON, audited); the chained
patient search and entity-name (one request's events); the
CapabilityStatement lists them."""

import json
import time
import sqlite3
import urllib.parse

import pytest

from conftest import REPO
from referrals import contained_referral, transaction_bundle
from store_schema import downgrade_to_schema_1

INS = "283052724101267"


def matches(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def params(resource):
    return {p["name"]: p for p in resource["parameter"]}


def security_events(gw):
    return gw.db().execute("SELECT COUNT(*) FROM audit WHERE json LIKE '%\"110113\"%'").fetchone()[0]


def audit_get(gw, path):
    r = gw.get(path, cert="auditor")
    assert r.status == 200, (path, r)
    return r.json()


# ---------------------------------------------------------------- the page

def test_console_is_served_to_auditors_with_strict_headers(gateway):
    r = gateway.get("/console/", cert="auditor")
    assert r.status == 200
    assert r.header("content-type") == "text/html; charset=utf-8"
    page = r.body.decode()
    assert '<script src="console.js" defer></script>' in page
    assert "<script>" not in page and "style=" not in page  # nothing inline
    with open(REPO + "/console/index.html", "rb") as f:
        assert r.body == f.read()
    csp = r.header("content-security-policy")
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                      "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.header("x-frame-options") == "DENY"
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("strict-transport-security")
    assert r.header("cache-control") == "no-store"
    assert r.header("referrer-policy") == "no-referrer"
    js = gateway.get("/console/console.js", cert="auditor")
    assert js.status == 200 and js.header("content-type").startswith("text/javascript")
    css = gateway.get("/console/console.css", cert="auditor")
    assert css.status == 200 and css.header("content-type").startswith("text/css")
    moved = gateway.get("/console", cert="auditor")
    assert moved.status == 301 and moved.header("location") == "/console/"


def test_other_roles_get_a_403_page_and_no_certificate_a_401_page(make_gateway):
    gateway = make_gateway(env={"GATEWAY_AUDIT_REFUSAL_PERIOD_S": "1"})
    for cert in ("gp", "gp2", "ris"):
        for path in ("/console/", "/console/console.js"):
            r = gateway.get(path, cert=cert)
            assert r.status == 403, (cert, path, r)
            assert r.header("content-type") == "text/html; charset=utf-8"
            assert b"<h1>403 Forbidden</h1>" in r.body
            assert b"<script" not in r.body and b"resourceType" not in r.body
            assert "default-src 'none'" in r.header("content-security-policy")
    r = gateway.get("/console/", cert=None)
    assert r.status == 401 and r.header("content-type").startswith("text/html")
    assert b"401" in r.body and b"certificate" in r.body
    r = gateway.get("/console/", cert="unlisted")  # signed by the CA, in no client table
    assert r.status == 401
    refusals = [json.loads(t) for (t,) in gateway.db().execute(
        "SELECT json FROM audit WHERE json LIKE '%GET /console/%' AND json LIKE '%\"outcome\":\"4\"%'"
        " AND json NOT LIKE '%\"110113\"%'")]
    assert len(refusals) == 6, "each identified client's refusal is audited"
    # the two without an identity are counted in one event when their period ends
    deadline = time.time() + 10
    while security_events(gateway) == 0 and time.time() < deadline:
        time.sleep(0.1)
    counted = [json.loads(t) for (t,) in gateway.db().execute(
        "SELECT json FROM audit WHERE json LIKE '%\"110113\"%'")]
    assert len(counted) == 1 and "GET /console/" in json.dumps(counted[0])
    details = [d for e in counted[0]["entity"] for d in e.get("detail", [])]
    assert [d["valueString"] for d in details if d["type"] == "count"] == ["2"]


def test_odd_paths_are_refused(gateway):
    odd = ["/console/..%2f..%2fMakefile", "/console/..%2F..%2Fcerts%2Fdev%2Fauditor.key",
           "/console/%2e%2e", "/console/.", "/console/.htaccess", "/console/a/b",
           "/console/../Makefile", "/console/INDEX.HTML", "/console/index.html.bak",
           "/console/readme", "/console/index.", "/console/nope.js", "/console/x.sh",
           "/console/%2fetc%2fpasswd", "/console//index.html", "/console/index.html/"]
    for path in odd:
        r = gateway.get(path, cert="auditor")
        assert r.status == 404, (path, r)
        assert b"PRIVATE KEY" not in r.body and b"root:" not in r.body and b"CC " not in r.body
    assert gateway.request("POST", "/console/", "x", cert="auditor").status == 405


def test_a_link_in_the_console_folder_is_not_followed(make_gateway, workdir):
    import os
    import shutil
    folder = os.path.join(workdir, "console")
    shutil.copytree(os.path.join(REPO, "console"), folder)
    os.symlink(os.path.join(REPO, "certs", "dev", "auditor.key"), os.path.join(folder, "key.js"))
    gw = make_gateway(env={"GATEWAY_CONSOLE_DIR": folder})
    assert gw.get("/console/", cert="auditor").status == 200
    r = gw.get("/console/key.js", cert="auditor")
    assert r.status == 404 and b"PRIVATE KEY" not in r.body


# ---------------------------------------------------------------- the search it uses

def test_patient_chains_find_the_events_of_a_patient_by_ins_or_name(gateway):
    answer = gateway.post("/fhir", transaction_bundle(ins=INS)).json()
    locations = [e["response"]["location"] for e in answer["entry"]]
    patient = "/".join(locations[0].split("/")[:2])
    sr = [l for l in locations if l.startswith("ServiceRequest/")][0].split("/")[1]
    gateway.get("/fhir/ServiceRequest/" + sr)
    gateway.post("/fhir", transaction_bundle(ins="194017512345653"))  # another patient
    by_ref = {e["id"] for e in matches(audit_get(gateway, "/fhir/AuditEvent?_count=100&patient=" + patient))}
    assert by_ref
    by_ins = {e["id"] for e in matches(audit_get(
        gateway, "/fhir/AuditEvent?_count=100&patient.identifier=" + INS))}
    assert by_ins == by_ref
    by_system = {e["id"] for e in matches(audit_get(
        gateway, "/fhir/AuditEvent?_count=100&patient.identifier=" +
        urllib.parse.quote("urn:oid:1.2.250.1.213.1.4.8|" + INS)))}
    assert by_system == by_ref
    by_name = {e["id"] for e in matches(audit_get(
        gateway, "/fhir/AuditEvent?_count=100&patient.name=dupre"))}  # accents folded
    assert by_ref <= by_name and len(by_name) > len(by_ref)  # both Dupré patients
    assert matches(audit_get(gateway, "/fhir/AuditEvent?patient.identifier=000000000000000")) == []
    r = gateway.get("/fhir/AuditEvent?patient.name:nonsense=x", cert="auditor",
                    headers={"Prefer": "handling=strict"})
    assert r.status == 400
    searches = [json.loads(t) for (t,) in gateway.db().execute(
        "SELECT json FROM audit WHERE json LIKE '%search-type%' ORDER BY seq DESC LIMIT 6")]
    asked = [e["entity"][0].get("query") for e in searches]
    import base64
    assert any(q and INS in base64.b64decode(q).decode() for q in asked), \
        "the audit records the INS the auditor asked for"


def test_entity_name_links_the_events_of_one_request(gateway):
    r = gateway.post("/fhir", transaction_bundle())
    request_id = r.header("x-request-id")
    events = matches(audit_get(gateway, "/fhir/AuditEvent?_count=100&entity-name:exact=" + request_id))
    assert len(events) >= 4  # the transaction and each of its entries
    for e in events:
        names = [x.get("name") for x in e["entity"]]
        assert request_id in names
    assert len(matches(audit_get(gateway, "/fhir/AuditEvent?entity-name=" + request_id[:8]))) >= 4
    assert matches(audit_get(gateway, "/fhir/AuditEvent?entity-name:exact=" + request_id[:8])) == []


def test_events_record_the_http_status(gateway):
    gateway.get("/fhir/ServiceRequest/nope")
    gateway.get("/fhir/AuditEvent", cert="gp")
    gateway.post("/fhir/ServiceRequest", contained_referral())
    last = [json.loads(t) for (t,) in gateway.db().execute(
        "SELECT json FROM audit ORDER BY seq DESC LIMIT 3")]
    statuses = []
    for e in reversed(last):
        req = [x for x in e["entity"] if x["role"]["code"] == "20" and "what" not in x][-1]
        statuses.append(req["detail"][0])
    assert [d["valueString"] for d in statuses] == ["404", "403", "201"]
    assert all(d["type"] == "http-status" for d in statuses)


def test_capability_statement_lists_what_the_audit_index_serves(gateway):
    cs = gateway.get("/fhir/metadata", cert=None).json()
    ae = [r for r in cs["rest"][0]["resource"] if r["type"] == "AuditEvent"][0]
    names = {p["name"] for p in ae["searchParam"]}
    assert {"date", "agent", "entity", "entity-name", "patient", "type", "subtype", "action",
            "outcome", "address"} <= names
    assert not names & {"agent-name", "entity-type", "policy", "site", "source", "altid"}, \
        "parameters the audit index does not hold are not offered"
    assert "patient.identifier" in [p for p in ae["searchParam"] if p["name"] == "patient"][0][
        "documentation"]
    assert {o["name"] for o in ae["operation"]} == {"verify", "activity", "export"}
    for name in names - {"_id", "_lastUpdated"}:  # each one is accepted in strict mode
        r = gateway.get("/fhir/AuditEvent?%s=x" % name if name != "date" else
                        "/fhir/AuditEvent?date=gt2020", cert="auditor",
                        headers={"Prefer": "handling=strict"})
        assert r.status == 200, (name, r)


# ---------------------------------------------------------------- $verify

def tamper(gw, seq):
    event_id, text = gw.db().execute("SELECT id, json FROM audit WHERE seq = ?", (seq,)).fetchone()
    gw.tamper_audit(("UPDATE audit SET json = ? WHERE seq = ?",
                     (text.replace('"action":"', '"action":"X', 1), seq)))
    return event_id


def test_verify_operation_shares_the_cli_check(gateway):
    for _ in range(3):
        gateway.post("/fhir/ServiceRequest", contained_referral())
    assert gateway.post("/fhir/AuditEvent/$verify", None, cert="gp").status == 403
    r = gateway.post("/fhir/AuditEvent/$verify", None, cert="auditor")
    assert r.status == 200
    p = params(r.json())
    assert p["intact"]["valueBoolean"] is True
    n = gateway.db().execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert p["checked"]["valueInteger"] == n - 1  # all but its own event, written after
    broken = tamper(gateway, 5)
    r = gateway.post("/fhir/AuditEvent/$verify", None, cert="auditor")
    p = params(r.json())
    assert p["intact"]["valueBoolean"] is False
    assert p["brokenEvent"]["valueReference"]["reference"] == "AuditEvent/" + broken
    assert p["brokenSequence"]["valueInteger"] == 5
    assert "altered" in p["reason"]["valueString"]
    assert p["checked"]["valueInteger"] == 4
    cli = gateway.audit_verify()
    assert cli.returncode == 1 and ("event %s (sequence 5)" % broken).encode() in cli.stdout
    xml = gateway.request("POST", "/fhir/AuditEvent/$verify", cert="auditor",
                          headers={"Accept": "application/fhir+xml"})
    assert xml.status == 200 and b"<Parameters" in xml.body
    last = json.loads(gateway.db().execute(
        "SELECT json FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert last["outcome"] == "4" and broken in last["outcomeDesc"], "the finding is audited"


# ---------------------------------------------------------------- $activity

def test_activity_counts_by_hour_and_client_with_refusals_apart(make_gateway):
    # refusals without a certificate are counted per address and period (one event with
    # the count, issue 16): a period of one second lets their event land during the test
    gateway = make_gateway(env={"GATEWAY_AUDIT_REFUSAL_PERIOD_S": "1"})
    gateway.post("/fhir/ServiceRequest", contained_referral())
    for _ in range(3):
        gateway.get("/fhir/ServiceRequest", cert=None)      # 401
    gateway.get("/fhir/AuditEvent", cert="gp")               # 403
    gateway.get("/fhir/ServiceRequest/nope")                 # 404
    gateway.post("/fhir/ServiceRequest", "{", content_type="application/fhir+json")  # 400
    deadline = time.time() + 10
    while security_events(gateway) == 0 and time.time() < deadline:
        time.sleep(0.1)
    assert security_events(gateway) == 1
    r = audit_get(gateway, "/fhir/AuditEvent/$activity")
    hours = [params({"parameter": p["part"]}) for p in r["parameter"] if p["name"] == "hour"]
    clients = [params({"parameter": p["part"]}) for p in r["parameter"] if p["name"] == "client"]

    def n(d, k):
        return d[k]["valueInteger"] if k in d else 0
    assert sum(n(h, "refused") for h in hours) == 5
    assert sum(n(h, "rejected") for h in hours) == 1
    gp = [c for c in clients if c.get("name", {}).get("valueString") == "gp"][0]
    assert n(gp, "requests") == 4 and n(gp, "refused") == 2 and n(gp, "rejected") == 1
    assert gp["lastSeen"]["valueInstant"].endswith("Z")
    anonymous = [c for c in clients if "address" in c][0]
    assert anonymous["address"]["valueString"] == "127.0.0.1" and n(anonymous, "refused") == 3
    total = sum(n(h, k) for h in hours for k in ("success", "refused", "rejected", "failed"))
    # every event counts once, but the security event counts its three refusals
    assert total == gateway.db().execute("SELECT COUNT(*) FROM audit").fetchone()[0] - 1 + 2
    # the same counts come from the roll-up table, not from reading events
    rolled = gateway.db().execute("SELECT SUM(n) FROM audit_rollup").fetchone()[0]
    assert rolled == total + 1  # and the $activity call itself
    old = audit_get(gateway, "/fhir/AuditEvent/$activity?start=2020-01-01&end=2020-01-02")
    assert [p for p in old["parameter"] if p["name"] in ("hour", "client")] == []
    for bad in ("start=yesterday", "start=2020-01-02&end=2020-01-01", "start=2000-01-01"):
        assert gateway.get("/fhir/AuditEvent/$activity?" + bad, cert="auditor").status == 400, bad
    assert gateway.get("/fhir/AuditEvent/$activity", cert="ris").status == 403


@pytest.mark.sqlite_only("rewinds the SQLite file to schema 1")
def test_roll_up_is_filled_from_the_events_of_an_older_store(make_gateway, workdir):
    gw = make_gateway()
    for _ in range(4):
        gw.post("/fhir/ServiceRequest", contained_referral())
        gw.get("/fhir/ServiceRequest", cert=None)
    gw.stop()
    db = sqlite3.connect(gw.store_path)
    assert db.execute("SELECT COUNT(*) FROM audit_rollup").fetchone()[0]
    db.close()
    # back to the first schema, before the roll-up: every later migration runs again,
    # the roll-up's among them, over the events the store holds
    downgrade_to_schema_1(gw.store_path)
    db = sqlite3.connect(gw.store_path)
    assert not db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_rollup'"
                          ).fetchone()[0]
    db.close()
    gw.start()
    r = audit_get(gw, "/fhir/AuditEvent/$activity")
    clients = {(c["part"][0]["name"], c["part"][0]["valueString"]): c for c in r["parameter"]
               if c["name"] == "client"}
    gp = params({"parameter": clients[("name", "gp")]["part"]})
    assert gp["requests"]["valueInteger"] == 4
    # the four without a certificate: one event counting them, recorded at shutdown
    anonymous = params({"parameter": clients[("address", "127.0.0.1")]["part"]})
    assert anonymous["refused"]["valueInteger"] == 4


# ---------------------------------------------------------------- $export

def test_export_streams_the_current_search_and_is_audited(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()["id"]
    for _ in range(3):
        gateway.get("/fhir/ServiceRequest/" + sr)
    gateway.get("/fhir/ServiceRequest/" + sr, cert="gp2")
    query = "entity=ServiceRequest/" + sr
    searched = {e["id"] for e in matches(audit_get(gateway, "/fhir/AuditEvent?_count=100&" + query))}
    r = gateway.get("/fhir/AuditEvent/$export?" + query, cert="auditor")
    assert r.status == 200
    assert r.header("content-type") == "application/fhir+ndjson"
    assert r.header("transfer-encoding") == "chunked"  # streamed, no length known up front
    assert r.header("content-disposition").startswith('attachment; filename="auditevents-')
    lines = r.body.decode().splitlines()
    exported = [json.loads(l) for l in lines]
    assert {e["id"] for e in exported} == searched and len(exported) == len(searched) == 5
    assert all(e["resourceType"] == "AuditEvent" for e in exported)
    last = json.loads(gateway.db().execute(
        "SELECT json FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert last["entity"][0]["description"] == "$export" and last["outcome"] == "0"
    everything = gateway.get("/fhir/AuditEvent/$export", cert="auditor").body.splitlines()
    assert len(everything) == gateway.db().execute("SELECT COUNT(*) FROM audit").fetchone()[0] - 1
    assert gateway.get("/fhir/AuditEvent/$export", cert="gp").status == 403
    bad = gateway.get("/fhir/AuditEvent/$export?date=yesterday", cert="auditor")
    assert bad.status == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_export_of_many_events_is_streamed_in_bounded_memory(make_gateway):
    """100,000 events through HTTP: the gateway's memory does not follow the export."""
    import os
    from test_audit import forge_chain
    # under AddressSanitizer (make check) freed memory waits in a quarantine of
    # 256 MiB by default: keep it small so that RSS shows what is really held
    asan = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1").lstrip(":")
    gw = make_gateway(env={"ASAN_OPTIONS": asan})
    gw.stop()
    forge_chain(gw, 100000)
    gw.start()

    def rss_kb():
        with open("/proc/%d/status" % gw.proc.pid) as f:
            return int([l for l in f if l.startswith("VmRSS")][0].split()[1])
    before = rss_kb()
    conn = gw.connection("auditor")
    conn.request("GET", "/fhir/AuditEvent/$export")  # forged rows have no index rows
    resp = conn.getresponse()
    n, size, peak = 0, 0, before
    while True:
        line = resp.readline()
        if not line:
            break
        n += 1
        size += len(line)
        if n % 10000 == 0:
            peak = max(peak, rss_kb())
    conn.close()
    assert n >= 100000 and size > 50 * 1024 * 1024
    assert peak - before < 32 * 1024, "RSS grew by %d KiB for a %d-byte export" % (peak - before, size)
