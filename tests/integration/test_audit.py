"""Issue: the audit trail. An AuditEvent for every interaction (walking the
CapabilityStatement), the auditor's search API and its role checks, the hash
chain verified and broken four ways, NDJSON export in bounded memory."""

import base64
import hashlib
import hmac
import json
import resource
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from conftest import BINARY, REPO
from referrals import contained_referral, transaction_bundle


def audit_rows(gw, after=0):
    rows = gw.db().execute("SELECT seq, json FROM audit WHERE seq > ? ORDER BY seq",
                           (after,)).fetchall()
    return [(seq, json.loads(text)) for seq, text in rows]


def last_seq(gw):
    return gw.db().execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]


def subtype(event):
    return event["subtype"][0]["code"]


def matches(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


# ---------------------------------------------------------------- one event per interaction

def sample_call(gw, rtype, interaction, ids):
    """One request exercising interaction on rtype; returns the client used."""
    rid = ids.get(rtype, "unknown-id")
    cert = "auditor" if rtype == "AuditEvent" else "gp"
    if interaction == "read":
        gw.get("/fhir/%s/%s" % (rtype, rid), cert=cert)
    elif interaction == "vread":
        gw.get("/fhir/%s/%s/_history/1" % (rtype, rid), cert=cert)
    elif interaction == "history-instance":
        gw.get("/fhir/%s/%s/_history" % (rtype, rid), cert=cert)
    elif interaction == "search-type":
        gw.get("/fhir/%s?_count=1" % rtype, cert=cert)
    elif interaction == "create":
        gw.post("/fhir/%s" % rtype, {"resourceType": rtype}, cert=cert)
    elif interaction == "update":
        gw.put("/fhir/%s/%s" % (rtype, rid), {"resourceType": rtype, "id": rid}, cert=cert)
    elif interaction == "delete":
        gw.request("DELETE", "/fhir/%s/%s" % (rtype, rid), cert=cert)
    else:
        raise AssertionError("untested interaction " + interaction)


def test_every_interaction_in_the_capability_statement_is_audited(gateway):
    answer = gateway.post("/fhir", transaction_bundle()).json()
    ids = {}
    for e in answer["entry"]:
        t, i = e["response"]["location"].split("/")[:2]
        ids[t] = i
    ids["ConceptMap"] = "indication-procedure"
    cs = gateway.get("/fhir/metadata", cert=None).json()
    checked = 0
    for res in cs["rest"][0]["resource"]:
        for inter in res["interaction"]:
            before = last_seq(gateway)
            sample_call(gateway, res["type"], inter["code"], ids)
            events = audit_rows(gateway, before)
            assert events, (res["type"], inter["code"])
            assert subtype(events[0][1]) in (inter["code"], "read", "vread"), \
                (res["type"], inter["code"], events)
            checked += 1
    for path, body in (("/fhir/$validate", contained_referral()),
                       ("/fhir/ServiceRequest/$validate", contained_referral()),
                       ("/fhir", transaction_bundle(ins="194017512345653"))):
        before = last_seq(gateway)
        assert gateway.post(path, body).status == 200
        assert audit_rows(gateway, before), path
    before = last_seq(gateway)
    gateway.get("/fhir/ConceptMap/$translate?system=http://hl7.org/fhir/sid/icd-10&code=M54.4")
    assert [subtype(e) for _, e in audit_rows(gateway, before)] == ["operation"]
    assert checked > 40


def test_refused_requests_are_audited_with_who_and_why(make_gateway):
    gateway = make_gateway(env={"GATEWAY_AUDIT_REFUSAL_PERIOD_S": "1"})
    before = last_seq(gateway)
    gateway.get("/fhir/ServiceRequest", cert=None)           # 401: counted, recorded within 1 s
    gateway.get("/fhir/ServiceRequest", cert="auditor")      # 403
    gateway.post("/fhir/ServiceRequest", "{", content_type="application/fhir+json")  # 400
    events = [e for _, e in audit_rows(gateway, before)][:2]
    assert [e["outcome"] for e in events] == ["4", "4"]
    assert all(e.get("outcomeDesc") for e in events)
    assert events[0]["agent"][0]["who"]["display"] == "auditor"
    assert events[0]["agent"][0]["network"]["address"] == "127.0.0.1"
    deadline = time.time() + 10
    while time.time() < deadline and len(audit_rows(gateway, before)) < 3:
        time.sleep(0.1)
    anonymous = [e for _, e in audit_rows(gateway, before)][2]
    assert anonymous["type"]["code"] == "110113" and anonymous["outcome"] == "4"
    assert anonymous.get("outcomeDesc") and "role" not in anonymous["agent"][0]
    assert anonymous["agent"][0]["network"]["address"] == "127.0.0.1"


def test_event_content_follows_balp(gateway):
    before = last_seq(gateway)
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()
    gateway.get("/fhir/ServiceRequest?status=active&_count=3")
    create, search = [e for _, e in audit_rows(gateway, before)]
    assert create["type"]["code"] == "rest"
    assert create["action"] == "C" and create["outcome"] == "0"
    assert create["recorded"].endswith("Z")
    client, server = create["agent"]
    assert client["requestor"] is True and server["requestor"] is False
    assert client["who"]["identifier"]["value"].startswith("CN=Dr Claire Martin")
    assert client["altId"] and len(client["altId"]) == 64  # certificate fingerprint
    assert create["source"]["observer"]["display"] == "fhir-gateway"
    assert {"reference": "ServiceRequest/" + sr["id"]} in [e.get("what") for e in create["entity"]]
    assert any(e.get("what", {}).get("reference", "").startswith("Task/")
               for e in create["entity"])
    query = [e for e in search["entity"] if e["role"]["code"] == "24"][0]
    assert base64.b64decode(query["query"]).decode() == "status=active&_count=3"


# ---------------------------------------------------------------- the auditor's API

def test_only_auditors_read_audit_events_and_they_read_nothing_else(gateway):
    gateway.post("/fhir/ServiceRequest", contained_referral())
    for cert in ("gp", "gp2", "ris"):
        assert gateway.get("/fhir/AuditEvent", cert=cert).status == 403
    b = gateway.get("/fhir/AuditEvent?_count=5", cert="auditor")
    assert b.status == 200 and len(matches(b.json())) == 5
    one = matches(b.json())[0]
    r = gateway.get("/fhir/AuditEvent/" + one["id"], cert="auditor")
    assert r.status == 200 and r.json()["id"] == one["id"]
    assert gateway.get("/fhir/AuditEvent/" + one["id"], cert="gp").status == 403
    assert gateway.post("/fhir/AuditEvent", one, cert="auditor").status in (403, 405)
    assert gateway.request("DELETE", "/fhir/AuditEvent/" + one["id"], cert="auditor").status == 405
    assert gateway.put("/fhir/AuditEvent/" + one["id"], one, cert="auditor").status in (403, 405)


def test_auditor_searches_by_every_parameter(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()
    pat = gateway.post("/fhir", transaction_bundle()).json()["entry"][0]["response"]["location"]
    pat = "/".join(pat.split("/")[:2])
    gateway.get("/fhir/ServiceRequest/" + sr["id"], cert="gp2")  # 404 for gp2
    a = "auditor"

    def n(query):
        r = gateway.get("/fhir/AuditEvent?_count=500&" + query, cert=a)
        assert r.status == 200, (query, r)
        return len(matches(r.json()))

    assert n("entity=ServiceRequest/" + sr["id"]) >= 2
    assert n("agent=gp2") >= 1
    assert n("agent=montorgueil") >= 2
    assert n("patient=" + pat) >= 1
    assert n("subtype=create") >= 1
    assert n("subtype=http://hl7.org/fhir/restful-interaction|read") >= 1
    assert n("type=rest") >= 3
    assert n("action=C") >= 1
    assert n("outcome=4") >= 1
    assert n("outcome=0") > n("outcome=4")
    assert n("date=gt2020-01-01") >= 4
    assert n("date=lt2020-01-01") == 0
    assert n("entity=ServiceRequest/%s&outcome=4" % sr["id"]) == 1
    assert n("address=127.0.0.1") >= 4
    searches = n("subtype=search-type")
    n("agent=auditor")
    assert n("subtype=search-type") > searches, "the auditor's own searches are audited"


def test_audit_search_pages(gateway):
    for _ in range(12):
        gateway.get("/healthz", cert=None)
        gateway.get("/fhir/ServiceRequest/x")
    seen, url = [], "/fhir/AuditEvent?_count=5&entity=ServiceRequest/x"
    while url:
        b = gateway.get(url, cert="auditor").json()
        seen += [m["id"] for m in matches(b)]
        nxt = [l["url"] for l in b["link"] if l["relation"] == "next"]
        url = "/fhir" + nxt[0].split("/fhir", 1)[1] if nxt else None
    assert len(seen) == len(set(seen)) == 12


# ---------------------------------------------------------------- the chain

def busy(gw):
    def worker():
        for _ in range(10):
            gw.post("/fhir/ServiceRequest", contained_referral())
            gw.get("/fhir/ServiceRequest?_count=2")
    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def verify(gw):
    return gw.audit_verify()


def tamper(gw, *statements):
    gw.tamper_audit(*statements)


def row(gw, seq):
    return gw.db().execute("SELECT id, json, prev_hash, hash FROM audit WHERE seq = ?",
                           (seq,)).fetchone()


@pytest.fixture
def chained(make_gateway):
    gw = make_gateway(env={"GATEWAY_AUDIT_HMAC_KEY": "chain-secret"})
    busy(gw)
    gw.stop()
    r = verify(gw)
    assert r.returncode == 0, r.stderr
    assert b"audit chain intact" in r.stdout
    return gw


def test_verify_names_an_altered_event(chained):
    event_id, text, _, _ = row(chained, 20)
    tamper(chained, ("UPDATE audit SET json = ? WHERE seq = 20",
                     (text.replace('"outcome":"0"', '"outcome":"4"').replace('"action":"', '"action":"X'),)))
    r = verify(chained)
    assert r.returncode == 1
    assert ("event %s (sequence 20)" % event_id).encode() in r.stdout
    assert b"altered" in r.stdout


def test_verify_names_where_an_event_was_removed(chained):
    next_id = row(chained, 31)[0]
    tamper(chained, ("DELETE FROM audit WHERE seq = 30", ()))
    r = verify(chained)
    assert r.returncode == 1
    assert ("event %s (sequence 31)" % next_id).encode() in r.stdout
    assert b"missing" in r.stdout


def test_verify_names_an_inserted_event_even_with_a_recomputed_sha256(chained):
    _, _, _, prev_hash = row(chained, 9)
    forged_id = str(uuid.uuid4())
    forged = json.dumps({"resourceType": "AuditEvent", "id": forged_id, "action": "R"},
                        separators=(",", ":"), sort_keys=True)
    forged_hash = hashlib.sha256((prev_hash + forged).encode()).hexdigest()  # no key
    n = chained.db().execute("SELECT MAX(seq) FROM audit").fetchone()[0]
    tamper(chained,
           ("UPDATE audit SET seq = seq + 1000000 WHERE seq >= 10", ()),
           ("UPDATE audit SET seq = seq - 1000000 + 1 WHERE seq >= 1000000", ()),
           ("INSERT INTO audit (seq, id, recorded, json, prev_hash, hash) VALUES (10, ?, 0, ?, ?, ?)",
            (forged_id, forged, prev_hash, forged_hash)))
    assert chained.db().execute("SELECT MAX(seq) FROM audit").fetchone()[0] == n + 1
    r = verify(chained)
    assert r.returncode == 1
    assert ("event %s (sequence 10)" % forged_id).encode() in r.stdout


def test_verify_names_swapped_events(chained):
    a, b = row(chained, 40), row(chained, 41)
    tamper(chained,
           ("UPDATE audit SET id = ?, json = ?, prev_hash = ?, hash = ? WHERE seq = 40",
            ("tmp-" + a[0], b[1], b[2], b[3])),
           ("UPDATE audit SET id = ?, json = ?, prev_hash = ?, hash = ? WHERE seq = 41", a),
           ("UPDATE audit SET id = ? WHERE seq = 40", (b[0],)))
    r = verify(chained)
    assert r.returncode == 1
    assert ("event %s (sequence 40)" % b[0]).encode() in r.stdout


def test_the_log_refuses_changes_even_through_sql(gateway):
    if gateway.backend == "postgresql":
        import psycopg2
        refused, db = psycopg2.errors.InsufficientPrivilege, gateway.db()
        statements = ["UPDATE audit SET json = '{}' WHERE seq = 1", "DELETE FROM audit WHERE seq = 1",
                      "TRUNCATE audit"]
    else:
        refused = sqlite3.IntegrityError
        db = sqlite3.connect(gateway.store_path, isolation_level=None, timeout=10)
        statements = ["UPDATE audit SET json = '{}' WHERE seq = 1", "DELETE FROM audit WHERE seq = 1"]
    count = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert count >= 1
    for sql in statements:
        with pytest.raises(refused, match="append-only"):
            db.execute(sql)
    assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] >= count
    db.close()


def test_cli_actions_are_audited(gateway):
    gateway.stop()
    before = last_seq(gateway)
    assert verify(gateway).returncode == 0
    r = gateway.run_cli("audit", "export", "--store", gateway.store_url)
    assert r.returncode == 0
    subs = [subtype(e) for _, e in audit_rows(gateway, before)]
    assert subs == ["audit-verify", "audit-export"]


# ---------------------------------------------------------------- export

def forge_chain(gw, n, key=None):
    """Appends n well-formed, correctly chained events straight into the (stopped)
    gateway's store (SQLite or PostgreSQL: the chain's head and number are its last row's)."""
    db = gw.db()
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = last if last else (0, "0" * 64)
    sql = "INSERT INTO audit (id, recorded, json, prev_hash, hash) VALUES "
    if gw.backend == "postgresql":  # seq given: the gateway numbers events under its lock
        from psycopg2.extras import execute_values
        rows = ((seq + 1 + i,) + e for i, e in enumerate(forged_events(n, prev, key)))
        execute_values(db.conn.cursor(), sql.replace("(id,", "(seq, id,") + "%s", rows,
                       page_size=2000)
    else:
        db.executemany(sql + "(?,?,?,?,?)", forged_events(n, prev, key))
        db.commit()
    db.close()


def forged_events(n, prev, key):
    """n chained (id, recorded_ms, json, prev_hash, hash) rows following prev."""
    base_ms = 1767225600000  # 2026-01-01
    for i in range(n):
        eid = "bulk-%06d" % i
        event = {"resourceType": "AuditEvent", "id": eid, "action": "R", "outcome": "0",
                 "recorded": "2026-01-01T00:00:00.000Z",
                 "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                          "code": "rest"},
                 "agent": [{"requestor": True, "who": {"display": "load"}}],
                 "source": {"observer": {"display": "fhir-gateway"}},
                 "entity": [{"what": {"reference": "ServiceRequest/%d" % i},
                             "description": "x" * 400}]}
        text = json.dumps(event, separators=(",", ":"), sort_keys=True)
        data = (prev + text).encode()
        h = (hmac.new(key.encode(), data, hashlib.sha256) if key else hashlib.sha256(data))
        yield eid, base_ms + i * 1000, text, prev, h.hexdigest()
        prev = h.hexdigest()


def test_export_of_100000_events_streams_in_bounded_memory(gateway, workdir):
    gateway.stop()
    forge_chain(gateway, 100000)
    assert verify(gateway).returncode == 0  # the C chain and this Python chain agree
    out = workdir + "/export.ndjson"
    with open(out, "wb") as f:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", BINARY, "audit", "export", "--store",
                            gateway.store_url], cwd=REPO, stdout=f,
                           stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0, p.stderr
    max_rss_kb = int(p.stderr.decode().strip().splitlines()[-1])
    size = 0
    lines = 0
    with open(out, "rb") as f:
        for line in f:
            json.loads(line)
            lines += 1
            size += len(line)
    assert lines >= 100000
    assert size > 50 * 1024 * 1024
    assert max_rss_kb < 64 * 1024, "export used %d KiB for a %d-byte export" % (max_rss_kb, size)
    since = gateway.run_cli("audit", "export", "--store", gateway.store_url,
                            "--since", "2026-01-01T00:00:10Z", "--until", "2026-01-01T00:00:20Z")
    assert since.returncode == 0
    assert [json.loads(l)["id"] for l in since.stdout.splitlines()] == [
        "bulk-%06d" % i for i in range(10, 20)]


# ---------------------------------------------------------------- HL7 v2 message kinds

def test_every_hl7_message_kind_is_audited(gateway):
    import mllp_peer as peer
    from mllp_peer import Message, split_batch

    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()

    def kinds_after(before):
        return [(e["type"]["code"], subtype(e), e["outcome"]) for _, e in audit_rows(gateway, before)]

    before = last_seq(gateway)
    pulled = gateway.get("/ris/orders?max=5", cert="ris")
    msgs = split_batch(pulled.body)
    assert kinds_after(before) == [("110106", "OMI^O23", "0")]  # Export of the pulled order
    before = last_seq(gateway)
    gateway.post("/ris/acks", peer.ack_for(msgs[0]), cert="ris", content_type="application/hl7-v2")
    assert kinds_after(before) == [("110107", "ACK", "0")]
    inbound = [("ORM^O01", peer.order_status(sr["id"], "OK")),
               ("ORM^O01", peer.order_status(sr["id"], "SC", "SC")),
               ("SIU^S12", peer.siu(sr["id"], trigger="S12")),
               ("SIU^S13", peer.siu(sr["id"], trigger="S13", start="202612041000")),
               ("SIU^S15", peer.siu(sr["id"], trigger="S15")),
               ("ORU^R01", peer.oru(sr["id"], ["Compte rendu."]))]
    for expected, text in inbound:
        before = last_seq(gateway)
        answer = peer.send("127.0.0.1", gateway.mllp_port, text)
        assert answer.get("MSA", 1) == "AA", (expected, answer.text)
        got = kinds_after(before)
        assert len(got) == 1 and got[0][0] == "110107" and got[0][2] == "0", (expected, got)
        assert got[0][1].startswith(expected.split("^")[0]), (expected, got)
    before = last_seq(gateway)
    answer = peer.send("127.0.0.1", gateway.mllp_port, peer.order_status("no-such", "SC", "SC"))
    assert answer.get("MSA", 1) == "AE"
    assert [(t, o) for t, _, o in kinds_after(before)] == [("110107", "4")]


def test_cli_refuses_a_missing_store_and_bad_arguments(gateway, workdir):
    r = gateway.run_cli("audit", "verify", "--store", "sqlite:" + workdir + "/nope.db")
    assert r.returncode == 2 and b"no store at" in r.stderr
    r = gateway.run_cli("audit", "export", "--store", gateway.store_url,
                        "--since", "yesterday")
    assert r.returncode == 2 and b"--since" in r.stderr
    r = gateway.run_cli("audit", "frobnicate")
    assert r.returncode == 2 and b"usage" in r.stderr
