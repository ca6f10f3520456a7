"""Issue: the foundation. HTTPS with client certificates, the create/read slice,
organisation isolation, errors as OperationOutcomes, health and metrics, logs,
durability across SIGKILL, graceful drain, one AuditEvent per request."""

import json
import os
import signal
import ssl
import subprocess
import threading

import pytest

from conftest import CERTS, Gateway
from referrals import contained_referral


def create(gw, cert="gp", body=None):
    r = gw.post("/fhir/ServiceRequest", body or contained_referral(), cert=cert)
    assert r.status == 201, r
    return r


def test_create_answers_201_with_location_etag_and_stored_resource(gateway):
    r = create(gateway)
    res = r.json()
    assert res["resourceType"] == "ServiceRequest"
    assert res["id"]
    assert res["meta"]["versionId"] == "1"
    assert res["meta"]["lastUpdated"].endswith("Z")
    assert r.header("ETag") == 'W/"1"'
    assert r.header("Last-Modified").endswith("GMT")
    assert r.header("Location") == "https://127.0.0.1:%d/fhir/ServiceRequest/%s/_history/1" % (
        gateway.port, res["id"])
    assert list(json.loads(r.body.decode()).keys())[0] == "resourceType"


def test_read_returns_what_was_created(gateway):
    created = create(gateway).json()
    r = gateway.get("/fhir/ServiceRequest/" + created["id"])
    assert r.status == 200
    assert r.json() == created
    assert r.header("ETag") == 'W/"1"'


def test_client_supplied_id_is_replaced_by_the_server(gateway):
    body = contained_referral()
    body["id"] = "chosen-by-client"
    res = create(gateway, body=body).json()
    assert res["id"] != "chosen-by-client"


def test_other_organisation_gets_404_not_403(gateway):
    created = create(gateway).json()
    r = gateway.get("/fhir/ServiceRequest/" + created["id"], cert="gp2")
    assert r.status == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    missing = gateway.get("/fhir/ServiceRequest/does-not-exist", cert="gp2")
    assert missing.status == 404
    # The two answers do not tell existence apart beyond the id they name.
    assert r.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]


def test_auditor_may_not_read_referrals(gateway):
    created = create(gateway).json()
    assert gateway.get("/fhir/ServiceRequest/" + created["id"], cert="auditor").status == 403


def test_ris_may_not_create_referrals(gateway):
    r = gateway.post("/fhir/ServiceRequest", contained_referral(), cert="ris")
    assert r.status == 403
    assert r.json()["issue"][0]["code"] == "forbidden"


def test_no_certificate_gets_401_outcome(gateway):
    r = gateway.get("/fhir/ServiceRequest/x", cert=None)
    assert r.status == 401
    assert r.json()["issue"][0]["code"] == "login"


def test_certificate_not_in_the_client_table_gets_401(gateway):
    r = gateway.get("/fhir/ServiceRequest/x", cert="unlisted")
    assert r.status == 401


def test_certificate_from_another_ca_is_refused(gateway, workdir):
    key, pem = os.path.join(workdir, "rogue.key"), os.path.join(workdir, "rogue.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", pem,
                    "-days", "2", "-subj", "/CN=rogue"], check=True, capture_output=True)
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    ctx.load_cert_chain(pem, key)
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/fhir/ServiceRequest/x")
        status = conn.getresponse().status
    except (ssl.SSLError, ConnectionError):
        status = "handshake refused"
    finally:
        conn.close()
    assert status in (401, "handshake refused")


def test_public_endpoints_need_no_certificate(gateway):
    assert gateway.get("/fhir/metadata", cert=None).status == 200
    assert gateway.get("/healthz", cert=None).status == 200
    assert gateway.get("/readyz", cert=None).status == 200
    assert gateway.get("/metrics", cert=None).status == 200


def test_unparseable_json_gets_400_outcome(gateway):
    r = gateway.post("/fhir/ServiceRequest", '{"resourceType": "ServiceRequest", ',
                     content_type="application/fhir+json")
    assert r.status == 400
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["severity"] in ("fatal", "error")


def test_body_over_the_limit_gets_413(make_gateway):
    gw = make_gateway(env={"GATEWAY_MAX_BODY_BYTES": "4096"})
    body = contained_referral()
    body["note"][0]["text"] = "x" * 8000
    r = gw.post("/fhir/ServiceRequest", body)
    assert r.status == 413
    assert r.json()["issue"][0]["code"] == "too-costly"
    assert gw.get("/healthz", cert=None).status == 200


def test_unknown_route_404_and_wrong_method_405(gateway):
    assert gateway.get("/nowhere").status == 404
    r = gateway.request("DELETE", "/fhir/metadata")
    assert r.status == 405
    assert r.json()["resourceType"] == "OperationOutcome"


def test_capability_statement_lists_only_what_works(gateway):
    cs = gateway.get("/fhir/metadata", cert=None).json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    codes = {i["code"] for i in resources["ServiceRequest"]["interaction"]}
    assert {"create", "read"} <= codes
    for r in cs["rest"][0]["resource"]:
        for interaction in r["interaction"]:
            assert interaction["code"] in ("read", "vread", "update", "history-instance",
                                           "create", "search-type", "delete")


def test_metrics_count_requests_and_commit_batches(gateway):
    create(gateway)
    text = gateway.get("/metrics", cert=None).body.decode()
    assert 'gateway_http_requests_total{route="create",method="POST",status="201"} 1' in text
    assert "gateway_store_commit_batch_size_count" in text
    assert "gateway_http_request_seconds_bucket" in text


def test_logs_are_json_lines_without_patient_data(gateway):
    create(gateway)
    gateway.get("/fhir/ServiceRequest/nope")
    gateway.stop()
    assert gateway.logs
    for entry in gateway.logs:
        assert "raw" not in entry, entry
        text = json.dumps(entry, ensure_ascii=False)
        for secret in ("Dupré", "Hélène", "283052724101267", "1983-05-27"):
            assert secret not in text
    assert any(e.get("event") == "http-request" and e.get("status") == 201 for e in gateway.logs)


def test_created_referral_survives_sigkill_right_after_201(make_gateway, workdir):
    gw = make_gateway()
    ids = [create(gw).json()["id"] for _ in range(5)]
    gw.kill()
    gw.start()
    for i in ids:
        assert gw.get("/fhir/ServiceRequest/" + i).status == 200


def test_sigterm_drains_and_exits_zero(gateway):
    create(gateway)
    assert gateway.stop(signal.SIGTERM) == 0
    assert any(e.get("event") == "stopped" for e in gateway.logs)


def test_concurrent_creates_all_commit_and_share_commits(gateway):
    results = []

    def worker():
        for _ in range(5):
            results.append(gateway.post("/fhir/ServiceRequest", contained_referral()).status)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 80
    with gateway.db() as db:
        n = db.execute("SELECT COUNT(*) FROM resources WHERE type = 'ServiceRequest'").fetchone()
    assert n[0] == 80


def test_every_request_writes_an_audit_event(gateway):
    before = gateway.db().execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    created = create(gateway).json()
    gateway.get("/fhir/ServiceRequest/" + created["id"])
    gateway.get("/fhir/ServiceRequest/x", cert=None)
    gateway.post("/fhir/ServiceRequest", "{", content_type="application/fhir+json")
    gateway.stop()  # the refusal without a certificate is counted, and recorded by the stop
    rows = gateway.db().execute("SELECT json FROM audit ORDER BY seq").fetchall()[before:]
    events = [json.loads(r[0]) for r in rows]
    subtypes = [e["subtype"][0]["code"] for e in events]
    assert subtypes[:3] == ["create", "read", "create"]
    assert [e["outcome"] for e in events][:3] == ["0", "0", "4"]
    assert events[0]["entity"][0]["what"]["reference"] == "ServiceRequest/" + created["id"]
    anonymous = [e for e in events if e["type"]["code"] == "110113"]
    assert len(anonymous) == 1 and anonymous[0]["outcome"] == "4"
