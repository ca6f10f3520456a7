"""Issue: the FHIR R4 model over HTTP. JSON and XML both ways on every route,
content negotiation (406/415), validation with every issue and its
expression (400/422), $validate storing nothing, and hostile inputs."""

import json
import socket
import ssl
import time
import xml.etree.ElementTree as ET

from conftest import CERTS, tls_context
from referrals import contained_referral, transaction_bundle

NS = "{http://hl7.org/fhir}"
XML = "application/fhir+xml"

SR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ServiceRequest xmlns="http://hl7.org/fhir">
  <contained><Patient><id value="pat"/>
    <identifier><system value="urn:oid:1.2.250.1.213.1.4.8"/><value value="283052724101267"/></identifier>
    <name><family value="Dupré"/><given value="Hélène"/></name>
    <gender value="female"/><birthDate value="1983-05-27"/></Patient></contained>
  <contained><Practitioner><id value="gp"/>
    <identifier><system value="urn:oid:1.2.250.1.71.4.2.1"/><value value="10003456789"/></identifier>
    <name><family value="Martin"/></name></Practitioner></contained>
  <status value="active"/>
  <intent value="order"/>
  <subject><reference value="#pat"/></subject>
  <authoredOn value="2026-11-20T09:30:00+01:00"/>
  <requester><reference value="#gp"/></requester>
  <reasonCode><coding><system value="http://hl7.org/fhir/sid/icd-10"/><code value="M54.4"/></coding></reasonCode>
</ServiceRequest>"""


def xml_root(r):
    assert r.header("Content-Type").startswith(XML), r.headers
    return ET.fromstring(r.body)


def count_rows(gw):
    return gw.db().execute("SELECT COUNT(*) FROM versions").fetchone()[0]


def test_xml_in_and_out(gateway):
    r = gateway.post("/fhir/ServiceRequest", SR_XML, content_type=XML, headers={"Accept": XML})
    assert r.status == 201, r
    root = xml_root(r)
    assert root.tag == NS + "ServiceRequest"
    sr_id = root.find(NS + "id").get("value")
    as_json = gateway.get("/fhir/ServiceRequest/" + sr_id).json()
    assert as_json["contained"][0]["name"][0]["family"] == "Dupré"
    assert as_json["subject"] == {"reference": "#pat"}
    for q in ("?_format=xml", "?_format=application/fhir%2Bxml"):
        assert xml_root(gateway.get("/fhir/ServiceRequest/" + sr_id + q)).tag == \
            NS + "ServiceRequest"
    alias = gateway.get("/fhir/ServiceRequest/" + sr_id, headers={"Accept": "application/json"})
    assert alias.header("Content-Type").startswith("application/fhir+json")


def test_content_negotiation_on_every_fhir_route(gateway):
    created = gateway.post("/fhir", transaction_bundle()).json()
    sr = [e["response"]["location"] for e in created["entry"]
          if e["response"]["location"].startswith("ServiceRequest/")][0].split("/")[1]
    gets = ["/fhir/metadata", "/fhir/ServiceRequest?status=active", "/fhir/ServiceRequest/" + sr,
            "/fhir/ServiceRequest/%s/_history" % sr, "/fhir/ServiceRequest/%s/_history/1" % sr,
            "/fhir/Task?focus=ServiceRequest/" + sr, "/fhir/ConceptMap",
            "/fhir/ConceptMap/$translate?system=http://hl7.org/fhir/sid/icd-10&code=M54.4",
            "/fhir/ServiceRequest/nope"]
    for path in gets:
        assert xml_root(gateway.get(path, headers={"Accept": XML})) is not None, path
        r = gateway.get(path, headers={"Accept": "text/html"})
        assert r.status == 406, path
        assert r.json()["issue"][0]["code"] == "not-supported"
    posts = [("/fhir", transaction_bundle(ins="194017512345653")),
             ("/fhir/$validate", contained_referral()),
             ("/fhir/ServiceRequest/$validate", contained_referral()),
             ("/fhir/ServiceRequest", contained_referral())]
    for path, body in posts:
        r = gateway.post(path, body, headers={"Accept": XML})
        assert r.status in (200, 201), (path, r)
        xml_root(r)
        r = gateway.post(path, json.dumps(body), content_type="text/plain")
        assert r.status == 415, path
        r = gateway.post(path, json.dumps(body), content_type="application/fhir+json; charset=iso-8859-1")
        assert r.status == 415, path
    r = gateway.get("/fhir/audit-nowhere", cert="auditor", headers={"Accept": XML})
    assert r.status == 404


def test_errors_list_every_issue_with_code_and_expression(gateway):
    sr = contained_referral()
    sr["colour"] = "blue"
    sr["authoredOn"] = "20-11-2026"
    sr["status"] = "sleeping"
    sr["reasonCode"][0]["coding"][0]["code"] = ""
    r = gateway.post("/fhir/ServiceRequest", sr)
    assert r.status == 400
    issues = {(i["code"], i.get("expression", [""])[0]) for i in r.json()["issue"]}
    assert ("structure", "ServiceRequest.colour") in issues, issues
    assert ("value", "ServiceRequest.authoredOn") in issues, issues
    assert ("code-invalid", "ServiceRequest.status") in issues, issues
    assert any(e.startswith("ServiceRequest.reasonCode[0].coding[0].code") for _, e in issues)
    assert all(i["diagnostics"] for i in r.json()["issue"])


def test_referral_profile_violations_are_422_with_expressions(gateway):
    sr = contained_referral()
    sr["intent"] = "plan"
    del sr["authoredOn"]
    r = gateway.post("/fhir/ServiceRequest", sr)
    assert r.status == 422
    expressions = {i.get("expression", [""])[0] for i in r.json()["issue"]
                   if i["severity"] == "error"}
    assert {"ServiceRequest.intent", "ServiceRequest.authoredOn"} <= expressions, expressions


def test_validate_reports_and_stores_nothing(gateway):
    before = count_rows(gateway)
    good = gateway.post("/fhir/ServiceRequest/$validate", contained_referral())
    assert good.status == 200
    assert good.json()["issue"][0]["severity"] == "information"
    bad = contained_referral()
    bad["status"] = "sleeping"
    r = gateway.post("/fhir/$validate", {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": bad}]})
    assert r.status == 200
    assert any(i["severity"] == "error" for i in r.json()["issue"])
    r = gateway.post("/fhir/Patient/$validate", contained_referral())
    assert any(i["severity"] == "error" for i in r.json()["issue"])
    r = gateway.post("/fhir/$validate", SR_XML, content_type=XML, headers={"Accept": XML})
    assert xml_root(r).tag == NS + "OperationOutcome"
    assert count_rows(gateway) == before


# ---------------------------------------------------------------- hostile inputs

def raw_request(gw, head, body=b"", timeout=20):
    ctx = tls_context("gp")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(head + body)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionError, ssl.SSLError):
                pass
    return data


def test_xxe_and_billion_laughs_are_refused(gateway):
    xxe = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<Patient xmlns="http://hl7.org/fhir"><name><family value="&x;"/></name></Patient>')
    r = gateway.post("/fhir/Patient", xxe, content_type=XML)
    assert r.status == 400 and b"root:" not in r.body
    laughs = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
        '<!ENTITY %s "%s">' % (chr(98 + i), ("&%s;" % chr(97 + i)) * 10) for i in range(9)) + \
        ']><Patient xmlns="http://hl7.org/fhir"><name><family value="&j;"/></name></Patient>'
    t0 = time.time()
    r = gateway.post("/fhir/Patient", laughs, content_type=XML)
    assert r.status == 400 and time.time() - t0 < 5


def test_deep_nesting_invalid_utf8_and_duplicate_keys(gateway):
    deep = '{"resourceType":"Patient","extension":' + '[' * 10000 + ']' * 10000 + '}'
    r = gateway.post("/fhir/Patient", deep, content_type="application/fhir+json")
    assert r.status in (400, 413)
    assert "depth" in json.dumps(r.json())
    r = gateway.post("/fhir/Patient", b'{"resourceType":"Patient","gender":"\xff"}',
                     content_type="application/fhir+json")
    assert r.status == 400
    r = gateway.post("/fhir/Patient", '{"resourceType":"Patient","gender":"male","gender":"female"}',
                     content_type="application/fhir+json")
    assert r.status == 400 and "gender" in json.dumps(r.json())


def test_fifty_megabytes_are_refused_before_they_are_read(gateway):
    head = (b"POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/fhir+json\r\nContent-Length: 52428800\r\n\r\n")
    t0 = time.time()
    answer = raw_request(gateway, head, b"{" * 65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.time() - t0 < 10
    assert gateway.get("/healthz", cert=None).status == 200


def test_string_and_array_limits_name_themselves(make_gateway):
    gw = make_gateway(env={"GATEWAY_MAX_STRING_BYTES": "1024", "GATEWAY_MAX_ARRAY_ITEMS": "16"})
    body = contained_referral()
    body["note"][0]["text"] = "x" * 5000
    r = gw.post("/fhir/ServiceRequest", body)
    assert r.status == 413 and "string" in r.json()["issue"][0]["diagnostics"]
    body = contained_referral()
    body["note"] = [{"text": "n"}] * 40
    r = gw.post("/fhir/ServiceRequest", body)
    assert r.status == 413 and "array" in r.json()["issue"][0]["diagnostics"]
