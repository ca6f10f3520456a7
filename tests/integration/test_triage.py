"""Issue: triage ends in a decision. A referral without a procedure waits in the
practice's triage with no order at the RIS; the practice (role practice, its own
certificate) finds it with Task?business-status=triage and decides with
POST /fhir/Task/{id}/$decide: accept with a procedure (the order leaves in that
commit; before scheduling an accepted order is amended with XO) or decline with a
reason the GP reads. Every decision is audited; refusals are clear."""

import copy
import json
import os

import mllp_peer as peer_mod
from conftest import CERTS
from mllp_peer import Message, split_batch
from referrals import ICD10, contained_referral

PROCEDURES = "https://fhir-gateway.example/fhir/CodeSystem/spinal-injection"
CCAM = "https://smt.esante.gouv.fr/terminologie-ccam"
HL7 = "application/hl7-v2"


def unmapped_referral():
    """Asthma, coded and written: no injection is mapped and no words are read."""
    body = contained_referral(icd10="J45.9", note=False)
    body["reasonCode"][0]["coding"][0]["display"] = "Asthma, unspecified"
    body["reasonCode"][0]["text"] = "Asthme"
    return body


def create(gw, body):
    r = gw.post("/fhir/ServiceRequest", body)
    assert r.status == 201, r
    return r


def task_of(gw, sr_id, cert="gp"):
    r = gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id, cert=cert)
    assert r.status == 200, r
    return r.json()["entry"][0]["resource"]


def business(task):
    return task["businessStatus"]["coding"][0]["code"]


def pull(gw):
    r = gw.get("/ris/orders?max=20", cert="ris")
    assert r.status == 200, r
    return split_batch(r.body)


def ack(gw, msg):
    r = gw.post("/ris/acks", peer_mod.ack_for(msg), cert="ris", content_type=HL7)
    assert r.status == 200 and Message(r.body).get("MSA", 1) == "AA", r


def decide(gw, task_id, cert="practice", headers=None, **params):
    body = {"resourceType": "Parameters", "parameter": []}
    for name, value in params.items():
        if name == "procedure":
            system, code = value
            body["parameter"].append({"name": name, "valueCoding": {"system": system,
                                                                     "code": code}})
        elif name == "reason":
            body["parameter"].append({"name": name, "valueString": value})
        else:
            body["parameter"].append({"name": name, "valueCode": value})
    return gw.post("/fhir/Task/%s/$decide" % task_id, body, cert=cert, headers=headers)


def outbox_rows(gw, sr_id):
    with gw.db() as db:
        return db.execute("SELECT kind FROM outbox WHERE ref_id = ? ORDER BY seq",
                          (sr_id,)).fetchall()


def audit_events(gw, subtype):
    r = gw.get("/fhir/AuditEvent?subtype=%s&_count=100" % subtype, cert="auditor")
    assert r.status == 200, r
    return [e["resource"] for e in r.json().get("entry", [])]


def decide_events(gw):
    return [e for e in audit_events(gw, "operation")
            if "$decide" in json.dumps(e)]


# ---------------------------------------------------------------- triage waits


def test_an_unmapped_referral_waits_in_triage_and_no_order_leaves(gateway):
    r = gateway.post("/fhir/ServiceRequest", unmapped_referral(),
                     headers={"Prefer": "return=OperationOutcome"})
    assert r.status == 201, r
    assert r.header("Warning").startswith('199 fhir-gateway "business-rule warning')
    assert any("no procedure is mapped" in i.get("diagnostics", "") for i in r.json()["issue"])
    sr = gateway.get("/fhir/ServiceRequest/" + r.header("Location").split("/")[-3]).json()
    assert "code" not in sr
    task = task_of(gateway, sr["id"])
    assert task["status"] == "requested" and business(task) == "triage"
    assert pull(gateway) == []
    assert outbox_rows(gateway, sr["id"]) == []


def test_the_worklist_is_task_business_status_triage_for_the_practice(gateway):
    waiting = create(gateway, unmapped_referral()).json()
    mapped = create(gateway, contained_referral()).json()  # M54.4 left: ordered at once
    r = gateway.get("/fhir/Task?business-status=triage", cert="practice")
    assert r.status == 200, r
    focus = [e["resource"]["focus"]["reference"] for e in r.json().get("entry", [])]
    assert focus == ["ServiceRequest/" + waiting["id"]]
    # the practice reads the referral it decides on, and its patient
    assert gateway.get("/fhir/ServiceRequest/" + waiting["id"], cert="practice").status == 200
    assert gateway.get("/fhir/Task?business-status=received", cert="practice").json()[
        "entry"][0]["resource"]["focus"]["reference"] == "ServiceRequest/" + mapped["id"]
    # another GP organisation sees nothing of it
    assert gateway.get("/fhir/Task?business-status=triage", cert="gp2").json().get("entry") \
        in (None, [])


def test_a_practice_sees_the_referrals_of_its_sites_only(make_gateway):
    with open(os.path.join(CERTS, "clients.json")) as f:
        clients = json.load(f)["clients"]
    for c in clients:
        if c["role"] == "practice":
            c["sites"] = ["drouot"]  # this practice reads Clinique Drouot's referrals only
    gw = make_gateway(config={"clients": clients})
    sr = create(gw, unmapped_referral()).json()  # the default site: Bachaumont
    assert gw.get("/fhir/Task?business-status=triage", cert="practice").json().get(
        "entry") in (None, [])
    assert gw.get("/fhir/ServiceRequest/" + sr["id"], cert="practice").status == 404
    task = task_of(gw, sr["id"])
    r = decide(gw, task["id"], decision="decline", reason="pas chez nous")
    assert r.status == 404, r
    assert business(task_of(gw, sr["id"])) == "triage"


def test_the_capability_statement_lists_the_worklist_and_the_operation(gateway):
    cs = gateway.get("/fhir/metadata", cert=None).json()
    task = [r for r in cs["rest"][0]["resource"] if r["type"] == "Task"][0]
    assert "business-status" in {p["name"] for p in task["searchParam"]}
    assert task["operation"] == [{
        "name": "decide",
        "definition": "https://fhir-gateway.example/fhir/OperationDefinition/Task-decide"}]
    od = gateway.get("/fhir/OperationDefinition/Task-decide", cert="practice")
    assert od.status == 200
    od = od.json()
    assert od["resourceType"] == "OperationDefinition" and od["code"] == "decide"
    assert od["url"] == task["operation"][0]["definition"] and od["instance"] is True
    assert {p["name"] for p in od["parameter"]} == {
        "decision", "procedure", "region", "laterality", "guidance", "reason", "return"}
    assert gateway.get("/fhir/OperationDefinition/nope", cert="practice").status == 404


# ---------------------------------------------------------------- accept


def test_the_practice_chooses_the_procedure_and_the_order_leaves_in_that_commit(gateway):
    sr = create(gateway, unmapped_referral()).json()
    task = task_of(gateway, sr["id"], cert="practice")
    r = decide(gateway, task["id"], decision="accept",
               procedure=(PROCEDURES, "periradicular-injection"),
               reason="radiculalgie L5 gauche à l'examen")
    assert r.status == 200, r
    after = r.json()
    assert after["resourceType"] == "Task" and after["id"] == task["id"]
    assert after["status"] == "accepted" and business(after) == "received"
    assert r.header("ETag") == 'W/"%s"' % after["meta"]["versionId"]
    assert "radiculalgie L5 gauche" in after["note"][-1]["text"]
    stored = gateway.get("/fhir/ServiceRequest/" + sr["id"]).json()
    assert (CCAM, "AHLH014") in {(c["system"], c["code"]) for c in stored["code"]["coding"]}
    chosen = [e for e in stored["code"]["extension"]
              if e["url"].endswith("code-chosen-by-practice")]
    assert chosen[0]["valueReference"]["reference"] == "Task/" + task["id"]
    assert outbox_rows(gateway, sr["id"]) == [("order",)]
    msgs = pull(gateway)
    assert len(msgs) == 1 and msgs[0].get("ORC", 1) == "NW"
    assert msgs[0].get("OBR", 4, 1) == "AHLH014" and msgs[0].get("OBR", 4, 3) == "CCAM"
    assert msgs[0].get("OBR", 15, 5, 1) == "L"  # the referral's bodySite side travels
    notes = [msgs[0].get("NTE", 3, occurrence=i) for i in range(len(msgs[0].all("NTE")))]
    assert any("chosen by the practice" in n for n in notes)
    events = decide_events(gateway)
    assert events and events[-1]["outcome"] == "0"
    entities = {e["what"]["reference"] for e in events[-1]["entity"] if "what" in e}
    assert {"Task/" + task["id"], "ServiceRequest/" + sr["id"]} <= entities


def test_an_order_not_yet_scheduled_is_amended_with_xo_then_refused_once_scheduled(gateway):
    sr = create(gateway, contained_referral()).json()  # left lumbosciatica: foraminal
    first = pull(gateway)
    assert first[0].get("OBR", 4, 1) == "AHLH014"
    ack(gateway, first[0])
    task = task_of(gateway, sr["id"], cert="practice")
    r = decide(gateway, task["id"], decision="accept", procedure=(CCAM, "LHLH002"))
    assert r.status == 200, r
    assert business(r.json()) == "received"
    amended = pull(gateway)
    assert len(amended) == 1 and amended[0].get("ORC", 1) == "XO"
    assert amended[0].get("OBR", 4, 1) == "LHLH002" and amended[0].get("IPC", 5) == "CT"
    ack(gateway, amended[0])
    scheduled = peer_mod.order_status(sr["id"], "SC", "SC", filler="F-9")
    r = gateway.post("/ris/messages", scheduled, cert="ris", content_type=HL7)
    assert Message(r.body).get("MSA", 1) == "AA"
    task = task_of(gateway, sr["id"], cert="practice")
    assert business(task) == "scheduled"
    r = decide(gateway, task["id"], decision="accept", procedure=(PROCEDURES,
                                                                   "epidural-injection"))
    assert r.status == 409, r
    assert "scheduled at the RIS" in r.json()["issue"][0]["diagnostics"]
    r = decide(gateway, task["id"], decision="decline", reason="trop tard")
    assert r.status == 409
    assert pull(gateway) == []
    assert decide_events(gateway)[-1]["outcome"] == "4"  # refused, and audited


# ---------------------------------------------------------------- decline


def test_the_practice_declines_with_a_reason_the_gp_reads(gateway):
    sr = create(gateway, unmapped_referral()).json()
    task = task_of(gateway, sr["id"], cert="practice")
    reason = "Pas d'indication d'infiltration : avis rhumatologique d'abord"
    r = decide(gateway, task["id"], decision="decline", reason=reason)
    assert r.status == 200, r
    seen = task_of(gateway, sr["id"], cert="gp")
    assert seen["status"] == "rejected" and business(seen) == "declined"
    assert seen["statusReason"]["text"] == reason
    assert pull(gateway) == [] and outbox_rows(gateway, sr["id"]) == []
    assert decide_events(gateway)[-1]["outcome"] == "0"
    r = decide(gateway, task["id"], decision="accept", procedure=(PROCEDURES,
                                                                   "facet-joint-injection"))
    assert r.status == 409 and "already declined" in r.json()["issue"][0]["diagnostics"]
    stored = gateway.get("/fhir/ServiceRequest/" + sr["id"]).json()
    amended = copy.deepcopy(stored)
    amended["note"] = [{"text": "je précise"}]
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], amended,
                    headers={"If-Match": 'W/"%s"' % stored["meta"]["versionId"]})
    assert r.status == 422 and "declined" in r.json()["issue"][0]["diagnostics"]


def test_declining_an_order_already_sent_cancels_it(gateway):
    sr = create(gateway, contained_referral()).json()
    ack(gateway, pull(gateway)[0])
    task = task_of(gateway, sr["id"], cert="practice")
    r = decide(gateway, task["id"], decision="decline", reason="contre-indication")
    assert r.status == 200, r
    cancel = pull(gateway)
    assert len(cancel) == 1 and cancel[0].get("ORC", 1) == "CA"
    assert cancel[0].get("ORC", 2) == sr["id"]


# ---------------------------------------------------------------- amendments and refusals


def test_an_amendment_that_now_maps_sends_the_first_order(gateway):
    body = unmapped_referral()
    sr = create(gateway, body).json()
    amended = copy.deepcopy(sr)
    amended["reasonCode"] = [{"coding": [{"system": ICD10, "code": "M47.8"}]}]
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], amended,
                    headers={"If-Match": 'W/"%s"' % sr["meta"]["versionId"]})
    assert r.status == 200, r
    msgs = pull(gateway)
    assert len(msgs) == 1 and msgs[0].get("ORC", 1) == "NW"  # its first order, not an XO
    assert msgs[0].get("OBR", 4, 1) == "LHLH003"
    assert business(task_of(gateway, sr["id"])) == "received"


def test_revoking_a_referral_in_triage_sends_no_cancel(gateway):
    sr = create(gateway, unmapped_referral()).json()
    revoked = copy.deepcopy(sr)
    revoked["status"] = "revoked"
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], revoked,
                    headers={"If-Match": 'W/"%s"' % sr["meta"]["versionId"]})
    assert r.status == 200, r
    assert task_of(gateway, sr["id"])["status"] == "cancelled"
    assert pull(gateway) == [] and outbox_rows(gateway, sr["id"]) == []


def test_decide_refuses_clearly(gateway):
    sr = create(gateway, unmapped_referral()).json()
    task = task_of(gateway, sr["id"], cert="practice")
    accept = {"decision": "accept", "procedure": (PROCEDURES, "facet-joint-injection")}
    assert decide(gateway, task["id"], cert="gp", **accept).status == 403
    assert decide(gateway, task["id"], cert="ris", **accept).status == 403
    assert decide(gateway, "no-such-task", **accept).status == 404
    r = decide(gateway, task["id"], decision="perhaps")
    assert r.status == 400 and "accept or decline" in r.json()["issue"][0]["diagnostics"]
    r = decide(gateway, task["id"], decision="decline")
    assert r.status == 400 and "reason" in r.json()["issue"][0]["diagnostics"]
    r = decide(gateway, task["id"], decision="accept")
    assert r.status == 400 and "procedure" in r.json()["issue"][0]["diagnostics"]
    r = decide(gateway, task["id"], decision="accept", procedure=(CCAM, "ZZZZ999"))
    assert r.status == 422 and "ZZZZ999" in r.json()["issue"][0]["diagnostics"]
    r = decide(gateway, task["id"], decision="accept", procedure=(PROCEDURES,
                                                                   "facet-joint-injection"),
               laterality="sideways")
    assert r.status == 400
    r = decide(gateway, task["id"], headers={"If-Match": 'W/"7"'}, **accept)
    assert r.status == 412, r
    r = gateway.post("/fhir/Task/%s/$decide" % task["id"],
                     {"resourceType": "Patient"}, cert="practice")
    assert r.status == 400
    assert business(task_of(gateway, sr["id"])) == "triage" and pull(gateway) == []
    r = decide(gateway, task["id"], headers={"If-Match": 'W/"%s"' % task["meta"]["versionId"]},
               **accept)
    assert r.status == 200, r


def test_a_gp_amendment_keeps_the_procedure_the_practice_chose(gateway):
    body = unmapped_referral()
    sr = create(gateway, body).json()
    task = task_of(gateway, sr["id"], cert="practice")
    r = decide(gateway, task["id"], decision="accept", procedure=(CCAM, "LHLH002"))
    assert r.status == 200, r
    ack(gateway, pull(gateway)[0])
    own_copy = copy.deepcopy(body)  # the GP's software resends what it sent, without code
    own_copy["id"] = sr["id"]
    own_copy["note"] = [{"text": "Douleur aggravée"}]
    version = gateway.get("/fhir/ServiceRequest/" + sr["id"]).json()["meta"]["versionId"]
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], own_copy,
                    headers={"If-Match": 'W/"%s"' % version})
    assert r.status == 200, r
    assert "LHLH002" in {c["code"] for c in r.json()["code"]["coding"]}
    amended = pull(gateway)
    assert len(amended) == 1 and amended[0].get("ORC", 1) == "XO"
    assert amended[0].get("OBR", 4, 1) == "LHLH002"
