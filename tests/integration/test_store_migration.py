"""Issue 10: a store written by the gateway before the index-driven schema
(tests/data/store/schema1.sql, schema 1, made through HTTP and the RIS
endpoints) opens, migrates, and answers every kind of read as before: searches
by identifier, patient, Task focus, based-on, dates; history and vread of a
revoked referral; conditional creates that match migrated resources; the RIS
pull of the orders left pending; the intact audit chain."""

import os
import sqlite3

import pytest

import mllp_peer as peer
from referrals import INS_NIR, PLACER, transaction_bundle

pytestmark = pytest.mark.sqlite_only("a SQLite store written before the index-driven schema")

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "store", "schema1.sql")


def matches(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def load_fixture(workdir):
    path = os.path.join(workdir, "gateway.db")
    db = sqlite3.connect(path)
    with open(FIXTURE) as f:
        db.executescript(f.read())
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    referrals = {json_id: ident for json_id, ident in db.execute(
        "SELECT id, json_extract(json, '$.identifier[0].value') FROM versions"
        " WHERE type = 'ServiceRequest' AND version = 1")}
    # orders a RIS may be offered: unfinished, with every earlier order of the same
    # referral final (pending, or leased long ago: the fixture's leases have ended)
    offered = db.execute(
        "SELECT COUNT(*) FROM outbox o WHERE o.state IN (0, 1) AND NOT EXISTS (SELECT 1 FROM"
        " outbox e WHERE e.ref_id = o.ref_id AND e.seq < o.seq AND e.state IN (0, 1))").fetchone()[0]
    n_audit = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    db.close()
    return path, {ident: i for i, ident in referrals.items()}, offered, n_audit


def test_a_schema_1_store_migrates_and_answers_as_before(make_gateway, workdir):
    path, sr, offered, n_audit = load_fixture(workdir)
    gw = make_gateway(store=path)
    assert gw.db().execute("PRAGMA user_version").fetchone()[0] == 5
    for ident in ("mig-tx-0", "mig-tx-1", "mig-tx-2", "mig-plain-1", "mig-plain-3"):
        got = matches(gw.get("/fhir/ServiceRequest?identifier=%s|%s" % (PLACER, ident)).json())
        assert [g["id"] for g in got] == [sr[ident]], ident
    # the patient two transactions shared, and its referrals
    pats = matches(gw.get("/fhir/Patient?identifier=%s|283052724101267" % INS_NIR).json())
    assert len(pats) == 1
    by_patient = matches(gw.get("/fhir/ServiceRequest?patient=" + pats[0]["id"]).json())
    assert {r["identifier"][0]["value"] for r in by_patient} == {"mig-tx-0", "mig-tx-1"}
    # the revoked referral: current version 2, its history, its cancelled Task
    revoked = sr["mig-plain-0"]
    assert gw.get("/fhir/ServiceRequest/" + revoked).json()["status"] == "revoked"
    history = gw.get("/fhir/ServiceRequest/%s/_history" % revoked).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert gw.get("/fhir/ServiceRequest/%s/_history/1" % revoked).json()["status"] == "active"
    tasks = matches(gw.get("/fhir/Task?focus=ServiceRequest/" + revoked).json())
    assert [t["status"] for t in tasks] == ["cancelled"]
    assert matches(gw.get("/fhir/ServiceRequest?status=revoked").json())[0]["id"] == revoked
    assert len(matches(gw.get("/fhir/ServiceRequest?status=active&_count=50").json())) == 5
    # the full RIS loop: Task completed, one Appointment, one DiagnosticReport
    done = sr["mig-plain-2"]
    task = matches(gw.get("/fhir/Task?focus=ServiceRequest/" + done).json())
    assert [t["status"] for t in task] == ["completed"]
    assert len(matches(gw.get("/fhir/Appointment?based-on=ServiceRequest/" + done).json())) == 1
    assert len(matches(gw.get("/fhir/DiagnosticReport?based-on=ServiceRequest/" + done).json())) == 1
    assert len(matches(gw.get("/fhir/Task?status=requested&_count=50").json())) == 4
    # dates and _lastUpdated over migrated rows
    assert len(matches(gw.get("/fhir/ServiceRequest?authored=2026-11-20&_count=50").json())) == 7
    assert len(matches(gw.get("/fhir/ServiceRequest?_lastUpdated=gt2020-01-01&_count=50")
                       .json())) == 7
    # a conditional create matches the migrated Patient, new writes go on
    answer = gw.post("/fhir", transaction_bundle(placer="after-migration")).json()
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert "Patient/%s/_history/1" % pats[0]["id"] in locations
    assert answer["entry"][0]["response"]["status"].startswith("200")
    # the RIS gets exactly the orders it could have had before, then the new one
    r = gw.get("/ris/orders?max=50", cert="ris")
    assert r.status == 200
    assert len(peer.split_batch(r.body)) == offered + 1
    # the audit chain goes on from the migrated events
    events = matches(gw.get("/fhir/AuditEvent?entity=ServiceRequest/%s" % revoked,
                            cert="auditor").json())
    assert len(events) >= 2
    gw.restart()
    assert gw.db().execute("PRAGMA user_version").fetchone()[0] == 5
    verify = gw.run_cli("audit", "verify", "--store", "sqlite:" + path)
    assert verify.returncode == 0, verify.stderr
    assert int(verify.stdout.split()[3]) > n_audit
