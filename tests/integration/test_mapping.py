"""Issue: indication → injection procedure. The maps as FHIR resources,
$translate over HTTP, the referral path filling ServiceRequest.code, triage
flags on the Task, reload on SIGHUP with a broken file, and the command line."""

import json
import os
import shutil
import signal
import time
import urllib.parse

from conftest import REPO
from referrals import ICD10, SNOMED, contained_referral, transaction_bundle

CCAM = "https://smt.esante.gouv.fr/terminologie-ccam"


def param(params, name):
    return [p for p in params["parameter"] if p["name"] == name]


def test_conceptmaps_are_served(gateway):
    b = gateway.get("/fhir/ConceptMap").json()
    assert b["type"] == "searchset"
    maps = [e["resource"] for e in b["entry"]]
    assert all(m["resourceType"] == "ConceptMap" for m in maps)
    one = gateway.get("/fhir/ConceptMap/" + maps[0]["id"]).json()
    assert one["url"] == maps[0]["url"]
    assert gateway.get("/fhir/ConceptMap/nope").status == 404


def test_translate_get_and_post(gateway):
    r = gateway.get("/fhir/ConceptMap/$translate?system=%s&code=M51.1&targetsystem=%s"
                    % (urllib.parse.quote(ICD10, safe=""), urllib.parse.quote(CCAM, safe="")))
    assert r.status == 200, r
    out = r.json()
    assert out["resourceType"] == "Parameters"
    assert param(out, "result")[0]["valueBoolean"] is True
    concepts = [p["valueCoding"]["code"] for m in param(out, "match") for p in m["part"]
                if p["name"] == "concept"]
    assert "AHLH014" in concepts  # foraminal (periradicular) injection, CCAM
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": ICD10}, {"name": "code", "valueCode": "J45.0"}]}
    out = gateway.post("/fhir/ConceptMap/$translate", body).json()
    assert param(out, "result")[0]["valueBoolean"] is False
    bad = gateway.get("/fhir/ConceptMap/$translate?colour=blue")
    assert bad.status == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_referral_without_code_gets_the_mapped_procedure(gateway):
    sr = gateway.post("/fhir/ServiceRequest", contained_referral(icd10="M47.8")).json()
    codes = {(c["system"], c["code"]) for c in sr["code"]["coding"]}
    assert (CCAM, "LHLH003") in codes or (CCAM, "LHLH002") in codes  # facet joint injection
    assert any("code-chosen-by-map" in e["url"] for e in sr["code"]["extension"])


def test_gp_code_is_kept_and_a_disagreement_is_a_warning(gateway):
    body = contained_referral(icd10="M47.8")  # facet syndrome
    body["code"] = {"coding": [{"system": CCAM, "code": "AHLH014"}]}  # foraminal
    r = gateway.post("/fhir/ServiceRequest", body)
    assert r.status == 201
    assert r.json()["code"]["coding"][0]["code"] == "AHLH014"
    assert r.header("Warning"), "the disagreement comes back as a warning"


def test_triage_flags_are_on_the_task(gateway):
    bundle = transaction_bundle()
    bundle["entry"][2]["resource"]["onsetDateTime"] = "2026-11-10"  # 10 days before authoredOn
    bundle["entry"].append({"resource": {
        "resourceType": "Condition", "code": {"coding": [{"system": ICD10, "code": "E11.9"}]},
        "subject": {"reference": bundle["entry"][0]["fullUrl"]}},
        "request": {"method": "POST", "url": "Condition"}})
    answer = gateway.post("/fhir", bundle).json()
    sr_id = [e["response"]["location"].split("/")[1] for e in answer["entry"]
             if e["response"]["location"].startswith("ServiceRequest/")][0]
    task = gateway.get("/fhir/Task?focus=ServiceRequest/" + sr_id).json()["entry"][0]["resource"]
    flags = {i["type"]["coding"][0]["code"] for i in task.get("input", [])}
    assert "diabetes" in flags, task
    assert any("onset" in f or "six" in f or "conservative" in f for f in flags), flags
    assert all(i["valueString"] for i in task["input"])


def test_sighup_reload_with_a_broken_file_keeps_the_previous_maps(make_gateway, workdir):
    maps = os.path.join(workdir, "mappings")
    shutil.copytree(os.path.join(REPO, "mappings"), maps)
    gw = make_gateway(args=["--mappings", maps])
    assert b"mappings: ok" in gw.get("/readyz", cert=None).body
    with open(os.path.join(maps, "indication-procedure.json"), "w") as f:
        f.write('{"resourceType": "ConceptMap", "status": ')
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_for_log("mappings-reload-failed")
    ready = gw.get("/readyz", cert=None)
    assert b"the last reload failed" in ready.body and b"indication-procedure.json" in ready.body
    sr = gw.post("/fhir/ServiceRequest", contained_referral(icd10="M47.8"))
    assert sr.status == 201 and "code" in sr.json(), "the previous maps still answer"
    shutil.copy(os.path.join(REPO, "mappings", "indication-procedure.json"), maps)
    gw.proc.send_signal(signal.SIGHUP)
    assert gw.wait_for_log("mappings-reloaded")
    assert b"reload failed" not in gw.get("/readyz", cert=None).body


def test_mappings_check_and_translate_commands(gateway, workdir):
    r = gateway.run_cli("mappings", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"12/12 listed indications mapped: 0 errors" in r.stdout
    broken = os.path.join(REPO, "tests", "data", "mapping", "check-broken")
    r = gateway.run_cli("mappings", "check", broken)
    assert r.returncode != 0
    r = gateway.run_cli("translate", "--system", ICD10, "--code", "M54.4",
                        "--laterality", "left", "--region", "lumbar")
    assert r.returncode == 0, r.stderr
    assert b"AHLH014" in r.stdout and b"64483" in r.stdout
    r = gateway.run_cli("translate", "--system", ICD10)
    assert r.returncode == 2 and b"--code" in r.stderr
