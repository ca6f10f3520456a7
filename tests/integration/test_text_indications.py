"""Issue: indications the GP wrote in words, not codes. A referral whose indication is only
words (reasonCode.text, a note, a Condition's code.text) is accepted; the synonym table
reads the indication, the spinal level and the side; the coding read is marked on the
referral and the referral waits in the practice's triage with the proposed procedure until
the practice confirms it. Negated words read nothing; a coded indication is never replaced."""

import copy
import uuid

from mllp_peer import split_batch
from referrals import ICD10, PATIENT, PRACTITIONER, contained_referral

FROM_TEXT = "https://fhir-gateway.example/fhir/StructureDefinition/coding-from-text"
PROPOSED = "proposed-procedure"
PROCEDURES = "https://fhir-gateway.example/fhir/CodeSystem/spinal-injection"


def words_only(text=None, note=None):
    """A referral without any coding: its indication is in words."""
    body = contained_referral(note=False)
    del body["bodySite"]
    body["reasonCode"] = [{"text": text}] if text else []
    if not text:
        del body["reasonCode"]
    if note:
        body["note"] = [{"text": note}]
    return body


def task_of(gw, sr_id, cert="gp"):
    return gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id, cert=cert).json()["entry"][0][
        "resource"]


def business(task):
    return task["businessStatus"]["coding"][0]["code"]


def pull(gw):
    return split_batch(gw.get("/ris/orders?max=20", cert="ris").body)


def proposal(task):
    inputs = [i for i in task.get("input", []) if i["type"]["coding"][0]["code"] == PROPOSED]
    return {c["code"] for c in inputs[0]["valueCodeableConcept"]["coding"]} if inputs else set()


def flags(task):
    return {i["type"]["coding"][0]["code"] for i in task.get("input", [])}


def marked(sr):
    """The codings the gateway read from words: (code, source)."""
    out = []
    for cc in sr.get("reasonCode", []):
        for c in cc.get("coding", []):
            for e in c.get("extension", []):
                if e["url"] == FROM_TEXT:
                    parts = {p["url"]: p["valueString"] for p in e["extension"]}
                    assert c.get("userSelected") is False
                    out.append((c["code"], parts["source"], parts["words"]))
    return out


def test_words_in_reason_code_text_are_read_and_wait_for_the_practice(gateway):
    r = gateway.post("/fhir/ServiceRequest",
                     words_only("lombosciatique gauche L5-S1 depuis 10 semaines"),
                     headers={"Prefer": "return=OperationOutcome"})
    assert r.status == 201, r
    assert "warning" in r.header("Warning")
    assert any("read from the words" in i.get("diagnostics", "") for i in r.json()["issue"])
    sr = gateway.get("/fhir/ServiceRequest/" + r.header("Location").split("/")[-3]).json()
    assert "code" not in sr  # not confirmed yet
    assert marked(sr) == [("M54.4", "ServiceRequest.reasonCode[0].text", "lombosciatique")]
    task = task_of(gateway, sr["id"], cert="practice")
    assert business(task) == "triage"
    assert "indication-from-text" in flags(task)
    assert {"periradicular-injection", "AHLH014", "64483"} <= proposal(task)
    assert "conservative-treatment-short" not in flags(task)  # ten weeks
    assert pull(gateway) == []
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "decision", "valueCode": "accept"},
        {"name": "procedure", "valueCoding": {"system": PROCEDURES,
                                              "code": "periradicular-injection"}}]}
    r = gateway.post("/fhir/Task/%s/$decide" % task["id"], body, cert="practice")
    assert r.status == 200, r
    msgs = pull(gateway)
    assert len(msgs) == 1 and msgs[0].get("OBR", 4, 1) == "AHLH014"
    assert msgs[0].get("DG1", 3, 1) == "M54.4" and msgs[0].get("DG1", 3, 3) == "I10"
    assert msgs[0].get("OBR", 15, 5, 1) == "L"  # the side read from the words


def test_words_in_a_note_are_read(gateway):
    r = gateway.post("/fhir/ServiceRequest",
                     words_only(note="IRM : hernie discale C6-C7 droite. Merci pour "
                                     "l'infiltration, douleur depuis 3 semaines."))
    assert r.status == 201, r
    sr = r.json()
    assert marked(sr) == [("M50.1", "ServiceRequest.note[0].text", "hernie discale")]
    task = task_of(gateway, sr["id"])
    assert {"periradicular-injection", "64479"} <= proposal(task)  # cervical
    assert "conservative-treatment-short" in flags(task)  # three weeks is under six
    why = [i["valueString"] for i in task["input"]
           if i["type"]["coding"][0]["code"] == "conservative-treatment-short"][0]
    assert "depuis 3 semaines" in why


def test_words_in_a_conditions_code_text_are_read(gateway):
    pat, gp, cond, sr_url = ("urn:uuid:" + str(uuid.uuid4()) for _ in range(4))
    sr = words_only()
    sr["subject"] = {"reference": pat}
    sr["requester"] = {"reference": gp}
    del sr["contained"]
    sr["reasonReference"] = [{"reference": cond}]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pat, "resource": copy.deepcopy(PATIENT),
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": gp, "resource": copy.deepcopy(PRACTITIONER),
         "request": {"method": "POST", "url": "Practitioner"}},
        {"fullUrl": cond, "resource": {"resourceType": "Condition",
                                       "code": {"text": "Canal lombaire étroit"},
                                       "subject": {"reference": pat}},
         "request": {"method": "POST", "url": "Condition"}},
        {"fullUrl": sr_url, "resource": sr, "request": {"method": "POST",
                                                        "url": "ServiceRequest"}}]}
    r = gateway.post("/fhir", bundle)
    assert r.status == 200, r
    sr_id = [e["response"]["location"].split("/")[1] for e in r.json()["entry"]
             if e["response"]["location"].startswith("ServiceRequest/")][0]
    stored = gateway.get("/fhir/ServiceRequest/" + sr_id).json()
    assert marked(stored) == [("M48.06", "Condition[0].code.text", "Canal lombaire étroit")]
    assert {"epidural-injection", "AFLB007", "62323"} <= proposal(task_of(gateway, sr_id))
    assert pull(gateway) == []


def test_negated_words_read_nothing_and_the_referral_waits_unmapped(gateway):
    r = gateway.post("/fhir/ServiceRequest",
                     words_only("pas de sciatique, pas de hernie discale"))
    assert r.status == 201, r
    sr = r.json()
    assert marked(sr) == []
    task = task_of(gateway, sr["id"])
    assert business(task) == "triage" and "indication-from-text" not in flags(task)
    assert pull(gateway) == []


def test_a_coded_indication_is_never_replaced_by_words(gateway):
    body = contained_referral(icd10="M47.8", note=False)  # facet syndrome, coded
    body["reasonCode"][0]["text"] = "lombosciatique gauche"
    r = gateway.post("/fhir/ServiceRequest", body)
    assert r.status == 201, r
    sr = r.json()
    assert marked(sr) == []
    assert {c["code"] for c in sr["code"]["coding"]} >= {"LHLH003"}
    assert pull(gateway)[0].get("OBR", 4, 1) == "LHLH003"


def test_a_referral_with_neither_codes_nor_words_is_refused(gateway):
    body = words_only()
    r = gateway.post("/fhir/ServiceRequest", body)
    assert r.status == 422
    assert "an indication, coded or in words" in r.json()["issue"][0]["diagnostics"]
    body["reasonCode"] = [{"coding": [{"system": ICD10, "code": "M54.5"}]}]
    assert gateway.post("/fhir/ServiceRequest", body).status == 201


def test_the_readme_example_in_words_goes_through_the_practices_decision(gateway):
    """README, "Triage: the practice decides": the same files and calls."""
    import json
    import os
    from conftest import REPO

    with open(os.path.join(REPO, "tests", "data", "fhir", "examples",
                           "referral-in-words.json")) as f:
        body = json.load(f)
    r = gateway.post("/fhir/ServiceRequest", body)
    assert r.status == 201, r
    worklist = gateway.get("/fhir/Task?business-status=triage", cert="practice").json()
    task = worklist["entry"][0]["resource"]
    assert {"periradicular-injection", "AHLH014"} <= proposal(task)
    decision = {"resourceType": "Parameters", "parameter": [
        {"name": "decision", "valueCode": "accept"},
        {"name": "procedure", "valueCoding": {"system": PROCEDURES,
                                              "code": "periradicular-injection"}}]}
    r = gateway.post("/fhir/Task/%s/$decide" % task["id"], decision, cert="practice",
                     headers={"If-Match": 'W/"1"'})
    assert r.status == 200, r
    assert pull(gateway)[0].get("OBR", 4, 1) == "AHLH014"
    assert gateway.get("/fhir/Task?business-status=triage", cert="practice").json().get(
        "entry") in (None, [])
