"""Issue: FHIR REST for referrals. Transactions, idempotent retries, versions,
search and paging, organisation isolation, the Task of each referral."""

import copy
import json
import threading
import urllib.parse
import uuid

import pytest

from referrals import (ICD10, INS_NIR, PLACER, SNOMED, contained_referral, service_request,
                       transaction_bundle)


def post_transaction(gw, bundle, cert="gp", headers=None):
    return gw.post("/fhir", bundle, cert=cert, headers=headers)


def ids_by_type(answer):
    out = {}
    for e in answer["entry"]:
        t, i = e["response"]["location"].split("/")[:2]
        out.setdefault(t, []).append(i)
    return out


def count_rows(gw, type_=None):
    sql = "SELECT COUNT(*) FROM resources" + (" WHERE type = ?" if type_ else "")
    return gw.db().execute(sql, (type_,) if type_ else ()).fetchone()[0]


def task_of(gw, sr_id, cert="gp"):
    r = gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id, cert=cert)
    assert r.status == 200, r
    tasks = [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]
    assert len(tasks) == 1, tasks
    return tasks[0]


# ---------------------------------------------------------------- transactions

def test_transaction_creates_all_and_rewrites_references(gateway):
    r = post_transaction(gateway, transaction_bundle())
    assert r.status == 200, r
    answer = r.json()
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 4
    ids = ids_by_type(answer)
    sr = gateway.get("/fhir/ServiceRequest/" + ids["ServiceRequest"][0]).json()
    assert sr["subject"]["reference"] == "Patient/" + ids["Patient"][0]
    assert sr["requester"]["reference"] == "Practitioner/" + ids["Practitioner"][0]
    assert sr["reasonReference"][0]["reference"] == "Condition/" + ids["Condition"][0]
    cond = gateway.get("/fhir/Condition/" + ids["Condition"][0]).json()
    assert cond["subject"]["reference"] == "Patient/" + ids["Patient"][0]
    for e in answer["entry"]:
        assert e["response"]["etag"] == 'W/"1"'
        assert e["response"]["lastModified"]


def test_transaction_with_an_invalid_fourth_entry_leaves_nothing(gateway):
    before = count_rows(gateway)
    bundle = transaction_bundle()
    bundle["entry"][3]["resource"]["status"] = "not-a-status"
    r = post_transaction(gateway, bundle)
    assert r.status == 400
    issues = r.json()["issue"]
    assert any("Bundle.entry[3]" in " ".join(i.get("expression", [])) for i in issues), issues
    bundle = transaction_bundle()
    del bundle["entry"][3]["resource"]["subject"]
    r = post_transaction(gateway, bundle)
    assert r.status in (400, 422), r
    assert count_rows(gateway) == before


def test_transaction_referral_breaking_the_profile_gets_422_and_nothing(gateway):
    before = count_rows(gateway)
    bundle = transaction_bundle()
    del bundle["entry"][3]["resource"]["authoredOn"]
    r = post_transaction(gateway, bundle)
    assert r.status == 422, r
    assert r.json()["issue"][0]["severity"] == "error"
    assert count_rows(gateway) == before


def test_conditional_create_reuses_the_patient_by_ins(gateway):
    first = ids_by_type(post_transaction(gateway, transaction_bundle()).json())
    second_answer = post_transaction(gateway, transaction_bundle()).json()
    second = ids_by_type(second_answer)
    assert second["Patient"] == first["Patient"]
    assert second["Practitioner"] == first["Practitioner"]
    assert second_answer["entry"][0]["response"]["status"] == "200 OK"
    assert second["ServiceRequest"] != first["ServiceRequest"]
    assert count_rows(gateway, "Patient") == 1
    sr = gateway.get("/fhir/ServiceRequest/" + second["ServiceRequest"][0]).json()
    assert sr["subject"]["reference"] == "Patient/" + first["Patient"][0]


def test_each_organisation_gets_its_own_patient(gateway):
    a = ids_by_type(post_transaction(gateway, transaction_bundle()).json())
    b = ids_by_type(post_transaction(gateway, transaction_bundle(), cert="gp2").json())
    assert a["Patient"] != b["Patient"]


def test_batch_runs_entries_independently(gateway):
    good = {"resource": contained_referral(), "request": {"method": "POST",
                                                          "url": "ServiceRequest"}}
    bad = copy.deepcopy(good)
    del bad["resource"]["authoredOn"]
    r = gateway.post("/fhir", {"resourceType": "Bundle", "type": "batch",
                               "entry": [good, bad, copy.deepcopy(good)]})
    assert r.status == 200, r
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[2].startswith("201")
    assert statuses[1].startswith("422")
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


# ---------------------------------------------------------------- idempotent retries

def test_if_none_exist_retry_returns_the_existing_referral(gateway):
    sr = contained_referral(identifier="retry-1")
    cond = {"If-None-Exist": "identifier=%s|retry-1" % PLACER}
    first = gateway.post("/fhir/ServiceRequest", sr, headers=cond)
    again = gateway.post("/fhir/ServiceRequest", sr, headers=cond)
    assert first.status == 201
    assert again.status == 200
    assert again.json()["id"] == first.json()["id"]


def test_twenty_concurrent_retries_create_exactly_one(gateway):
    sr = contained_referral(identifier="concurrent-1")
    cond = {"If-None-Exist": "identifier=%s|concurrent-1" % PLACER}
    results = []

    def retry():
        r = gateway.post("/fhir/ServiceRequest", sr, headers=cond)
        results.append((r.status, r.json()["id"]))

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200] * 19 + [201]
    assert len({i for _, i in results}) == 1
    found = gateway.get("/fhir/ServiceRequest?identifier=%s|concurrent-1" % PLACER).json()
    assert len(found["entry"]) == 1


def test_several_matches_answer_412(gateway):
    for _ in range(2):
        gateway.post("/fhir/ServiceRequest", contained_referral(identifier="dup"))
    r = gateway.post("/fhir/ServiceRequest", contained_referral(identifier="dup"),
                     headers={"If-None-Exist": "identifier=%s|dup" % PLACER})
    assert r.status == 412


# ---------------------------------------------------------------- versions

def test_update_with_if_match_history_and_vread(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()
    sr["priority"] = "urgent"
    stale = gateway.put("/fhir/ServiceRequest/" + sr["id"], sr, headers={"If-Match": 'W/"7"'})
    assert stale.status == 412
    ok = gateway.put("/fhir/ServiceRequest/" + sr["id"], sr, headers={"If-Match": 'W/"1"'})
    assert ok.status == 200, ok
    assert ok.json()["meta"]["versionId"] == "2"
    assert ok.header("ETag") == 'W/"2"'
    again = gateway.put("/fhir/ServiceRequest/" + sr["id"], sr, headers={"If-Match": 'W/"1"'})
    assert again.status == 412
    hist = gateway.get("/fhir/ServiceRequest/%s/_history" % sr["id"]).json()
    assert hist["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in hist["entry"]] == ["2", "1"]
    v1 = gateway.get("/fhir/ServiceRequest/%s/_history/1" % sr["id"])
    assert v1.status == 200 and v1.json()["priority"] == "routine"
    assert gateway.get("/fhir/ServiceRequest/%s/_history/9" % sr["id"]).status == 404


def test_update_of_an_unknown_or_foreign_referral_is_404(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()
    assert gateway.put("/fhir/ServiceRequest/" + sr["id"], sr, cert="gp2").status == 404
    other = copy.deepcopy(sr)
    other["id"] = "nope"
    assert gateway.put("/fhir/ServiceRequest/nope", other).status == 404


def test_update_body_id_must_match_url(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()
    assert gateway.put("/fhir/ServiceRequest/other", sr).status == 400


def test_prefer_minimal_and_operation_outcome(gateway):
    r = gateway.post("/fhir/ServiceRequest", contained_referral(),
                     headers={"Prefer": "return=minimal"})
    assert r.status == 201 and r.body == b"" and r.header("Location")
    r = gateway.post("/fhir/ServiceRequest", contained_referral(),
                     headers={"Prefer": "return=OperationOutcome"})
    assert r.status == 201 and r.json()["resourceType"] == "OperationOutcome"


# ---------------------------------------------------------------- the Task

def test_accepted_referral_gets_a_task(gateway):
    ids = ids_by_type(post_transaction(gateway, transaction_bundle()).json())
    sr_id = ids["ServiceRequest"][0]
    task = task_of(gateway, sr_id)
    assert task["status"] == "requested"
    assert task["intent"] == "order"
    assert task["focus"]["reference"] == "ServiceRequest/" + sr_id
    assert task["for"]["reference"] == "Patient/" + ids["Patient"][0]
    assert task["requester"]["reference"] == "Practitioner/" + ids["Practitioner"][0]
    assert task["businessStatus"]["coding"][0]["code"] == "received"
    assert task["owner"]["display"] == "Bachaumont Radiology"
    sr = gateway.get("/fhir/ServiceRequest/" + sr_id).json()
    assert "code" in sr, "the mapping fills an empty code"


def test_unmapped_indication_is_accepted_with_triage_and_a_warning(gateway):
    r = post_transaction(gateway, transaction_bundle(icd10="J45.0"))  # asthma: no injection
    assert r.status == 200, r
    sr_entry = [e for e in r.json()["entry"] if "ServiceRequest" in e["response"]["location"]][0]
    outcome = sr_entry["response"].get("outcome", {})
    assert any(i["severity"] == "warning" for i in outcome.get("issue", [])), sr_entry
    sr_id = sr_entry["response"]["location"].split("/")[1]
    assert task_of(gateway, sr_id)["businessStatus"]["coding"][0]["code"] == "triage"


def test_performer_routes_to_drouot_and_unknown_performer_is_422(gateway):
    drouot = {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000109"}
    ids = ids_by_type(post_transaction(gateway, transaction_bundle(performer=drouot)).json())
    assert task_of(gateway, ids["ServiceRequest"][0])["owner"]["display"] == "Clinique Drouot"
    r = post_transaction(gateway, transaction_bundle(
        performer={"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "999"}))
    assert r.status == 422


def test_revoking_the_referral_cancels_its_task(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral()).json()
    sr["status"] = "revoked"
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], sr, headers={"If-Match": 'W/"1"'})
    assert r.status == 200, r
    task = task_of(gateway, sr["id"])
    assert task["status"] == "cancelled"
    assert task["businessStatus"]["coding"][0]["code"] == "cancelled"
    sr["status"] = "active"
    assert gateway.put("/fhir/ServiceRequest/" + sr["id"], sr).status == 422
