"""Issue: the auditor's console in a real browser. The real gateway (the
black-box fixture, a temporary store) gets referrals, reads, refusals and RIS
messages; Debian's Chromium, driven by console.mjs with the auditor's client
certificate, loads the page, searches by patient, opens an event and its
referral's events, verifies an intact chain, exports, and sees the tampered
event named after the SQLite file is altered; a GP certificate gets a 403
page. Screenshots: build/test-output/console/."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from conftest import CERTS, REPO, Gateway  # noqa: E402
import mllp_peer as peer  # noqa: E402
from referrals import transaction_bundle  # noqa: E402

OUT = os.path.join(REPO, "build", "test-output", "console")
INS = "283052724101267"


@pytest.fixture
def gateway(tmp_path):
    # refusals without a certificate are counted per address and period (one event):
    # a one-second period lets theirs land before the page is read
    gw = Gateway(str(tmp_path), env={"GATEWAY_AUDIT_REFUSAL_PERIOD_S": "1"}).start()
    yield gw
    gw.assert_clean_exit()


def drive(gw, phase):
    env = dict(os.environ, GW_URL="https://127.0.0.1:%d" % gw.port, CERTS=CERTS, OUT=OUT,
               PHASE=phase, PATIENT=INS,
               NODE_EXTRA_CA_CERTS=os.path.join(CERTS, "ca.pem"))  # Playwright's TLS trusts the dev CA
    p = subprocess.run(["node", os.path.join(HERE, "console.mjs")], cwd=HERE, env=env,
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    seen = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert "error" not in seen, seen["error"]
    assert seen["cspViolations"] == [] and seen["pageErrors"] == [], seen
    return seen


def traffic(gw):
    """Referrals, reads, refusals and the RIS side of one referral."""
    answer = gw.post("/fhir", transaction_bundle(ins=INS)).json()
    sr = [e["response"]["location"] for e in answer["entry"]
          if e["response"]["location"].startswith("ServiceRequest/")][0].split("/")[1]
    gw.post("/fhir", transaction_bundle(ins="194017512345653"))
    gw.get("/fhir/ServiceRequest/" + sr)
    gw.get("/fhir/ServiceRequest/" + sr, cert="gp2")        # 404: another organisation
    for _ in range(3):
        gw.get("/fhir/ServiceRequest", cert=None)            # 401
    gw.get("/fhir/AuditEvent", cert="gp")                    # 403
    orders = peer.split_batch(gw.get("/ris/orders?max=10", cert="ris").body)
    for msg in orders:
        gw.post("/ris/acks", peer.ack_for(msg), cert="ris", content_type="application/hl7-v2")
    for text in (peer.order_status(sr, "SC", "SC"), peer.siu(sr, trigger="S12")):
        assert peer.send("127.0.0.1", gw.mllp_port, text).get("MSA", 1) == "AA"
    deadline = time.time() + 10
    while time.time() < deadline and not gw.db().execute(
            "SELECT 1 FROM audit WHERE json LIKE '%\"110113\"%'").fetchone():
        time.sleep(0.1)
    return sr


def tamper(gw):
    db = sqlite3.connect(gw.store_path, timeout=10)
    db.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
    seq, event_id, text = db.execute(
        "SELECT seq, id, json FROM audit WHERE json LIKE '%\"action\":\"R\"%' ORDER BY seq LIMIT 1"
    ).fetchone()
    db.execute("UPDATE audit SET json = ? WHERE seq = ?",
               (text.replace('"outcome":"0"', '"outcome":"4"'), seq))
    db.commit()
    db.close()
    return event_id


def test_the_auditor_reads_verifies_and_exports_the_trail_in_chromium(gateway):
    os.makedirs(OUT, exist_ok=True)
    sr = traffic(gateway)
    seen = drive(gateway, "intact")

    assert seen["status"] == 200 and "frame-ancestors 'none'" in seen["csp"]
    assert seen["heading"] == "Audit trail" and "Europe/Paris" in seen["zone"]
    assert 15 <= seen["firstRows"] <= 25                 # the first page, newest first
    assert seen["bars"] >= 1 and seen["alarmBars"] >= 1  # today's refusals stand out
    assert any(c.startswith("no certificate, from 127.0.0.1") for c in seen["clients"])
    assert "refused" in seen["timelineCaption"]
    assert seen["tabOrder"][:4] == ["skip", "verify", "export", "from"]
    assert seen["focusVisible"]

    # by INS-NIR: the referral's creation and its reads, nothing of the other patient
    assert seen["patientRows"], seen["patientSummary"]
    assert all("Patient/" in refs for refs in seen["patientRows"])
    assert "sent a transaction" in seen["patientWhat"] or "created" in seen["patientWhat"]

    event = seen["eventJson"]
    assert event["resourceType"] == "AuditEvent" and seen["dialogFocus"] == "close-detail"
    assert "Events of this request" in seen["eventLinks"]
    assert "Events of this referral" in seen["eventLinks"]
    assert seen["referralLinked"] == "Events about ServiceRequest/" + sr
    what = seen["referralWhat"]
    for kind in ("created", "read", "order (OMI^O23) — sent", "acknowledgement — received",
                 "order or status (ORM^O01) — received", "appointment booked — received"):
        assert kind in what, (kind, what)

    assert seen["verifyClass"] == "verify intact"
    n = gateway.db().execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert "The chain is intact" in seen["verifyText"]
    checked = int(seen["verifyText"].split(":")[1].split()[0])
    assert 0 < checked < n

    assert seen["exportName"].startswith("auditevents-") and seen["exportName"].endswith(".ndjson")
    assert "entity=ServiceRequest" in seen["exportHref"]  # the current search, not the trail
    with open(seen["exportFile"]) as f:
        exported = [json.loads(line) for line in f]
    assert len(exported) == len(what)
    assert all(("ServiceRequest/" + sr) in json.dumps(e) for e in exported)

    assert seen["tabletOverflow"] <= 0
    assert seen["frenchHeading"] == "Journal d'audit" and seen["frenchVerify"] == "Vérifier la chaîne"
    assert seen["gpStatus"] == 403 and seen["gpContentType"].startswith("text/html")
    assert "403 Forbidden" in seen["gpText"]

    broken = tamper(gateway)
    seen = drive(gateway, "tampered")
    assert seen["verifyClass"] == "verify broken"
    assert broken in seen["verifyText"] and "altered" in seen["verifyText"]
    assert broken in seen["brokenEventJson"]
    for name in ("01-overview", "02-search-by-patient", "03-event", "04-referral-events",
                 "05-verify-intact", "06-tablet", "07-french", "08-gp-forbidden",
                 "09-verify-broken", "10-broken-event"):
        assert os.path.getsize(os.path.join(OUT, name + ".png")) > 5000, name
