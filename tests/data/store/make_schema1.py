#!/usr/bin/python3
"""make_schema1.py -- writes schema1.sql, a store at schema 1 (the layout of
migration 1) filled through the HTTP and RIS interfaces of the gateway at
commit 55ff2fd, for the migration test (tests/integration/test_store_migration.py).

  GATEWAY_BIN=<a build of 55ff2fd> tests/data/store/make_schema1.py

It makes transaction referrals sharing a Patient (conditional create), plain
referrals for both sites, a revocation (a second version of the referral and
its Task), a pulled and acknowledged order, a refused one (a dead letter on
its Task), a full RIS loop (status, appointment, report) and reads and
searches (AuditEvents), then dumps the store as SQL text.
"""

import os
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))

import mllp_peer as peer  # noqa: E402
from conftest import Gateway  # noqa: E402
from referrals import contained_referral, transaction_bundle  # noqa: E402

HL7 = "application/hl7-v2"
DROUOT = {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000109"}


def main():
    work = tempfile.mkdtemp(prefix="gw-schema1-")
    gw = Gateway(work).start()
    post = gw.post
    for i, (ins, icd) in enumerate([("283052724101267", "M54.4"), ("283052724101267", "M51.1"),
                                     ("194017512345653", "M54.4")]):
        r = post("/fhir", transaction_bundle(ins=ins, icd10=icd, placer="mig-tx-%d" % i))
        assert r.status == 200, r
    plain = []
    for i in range(4):
        body = contained_referral(identifier="mig-plain-%d" % i)
        if i % 2:
            body["performer"] = [{"identifier": DROUOT}]
        r = post("/fhir/ServiceRequest", body)
        assert r.status == 201, r
        plain.append(r.json())
    revoked = plain[0]
    revoked["status"] = "revoked"
    r = gw.put("/fhir/ServiceRequest/" + revoked["id"], revoked, headers={"If-Match": 'W/"1"'})
    assert r.status == 200, r
    r = gw.get("/ris/orders?max=3", cert="ris")
    msgs = peer.split_batch(r.body)
    assert len(msgs) == 3, r
    post("/ris/acks", peer.ack_for(msgs[0], "AA"), cert="ris", content_type=HL7)
    post("/ris/acks", peer.ack_for(msgs[1], "AR", "unknown procedure"), cert="ris",
         content_type=HL7)
    loop = plain[2]["id"]
    for text in (peer.order_status(loop, "OK", filler="F-9"),
                 peer.order_status(loop, "SC", "SC", filler="F-9"),
                 peer.siu(loop, start="202612031430", minutes=45),
                 peer.oru(loop, ["Infiltration L5-S1."], filler="F-9")):
        r = post("/ris/messages", text, cert="ris", content_type=HL7)
        assert r.status == 200 and peer.Message(r.body).get("MSA", 1) == "AA", r
    gw.get("/fhir/ServiceRequest?identifier=mig-plain-1")
    gw.get("/fhir/Task?focus=ServiceRequest/" + loop)
    gw.get("/fhir/AuditEvent?action=C", cert="auditor")
    gw.assert_clean_exit()
    db = sqlite3.connect(gw.store_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    with open(os.path.join(HERE, "schema1.sql"), "w") as f:
        f.write("-- A store at schema 1, written by the gateway at 55ff2fd through HTTP and the\n"
                "-- RIS endpoints (tests/data/store/make_schema1.py). Load with executescript.\n")
        for line in db.iterdump():
            f.write(line + "\n")
        f.write("PRAGMA user_version=1;\n")
    db.close()


if __name__ == "__main__":
    main()
