"""Issue 16, part 6: Warning headers carry no patient data (logs and proxies keep
headers) and are RFC 9110 quoted-strings in ASCII; the full detail stays in the
OperationOutcome a client gets with Prefer: return=OperationOutcome."""

import json
import re

from referrals import INS_NIR, contained_referral

# RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, here in ASCII.
QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'
WARNING = re.compile(r'^199 fhir-gateway %s$' % QUOTED)
BAD_INS = '28305"2724\\é1'


def referral_with_quotes_and_accents():
    body = contained_referral()
    patient = body["contained"][0]
    patient["identifier"] = [{"system": INS_NIR, "value": BAD_INS}]  # a warning: a bad INS-NIR
    patient["name"] = [{"family": 'O"Brién', "given": ["Zoë"]}]
    body["reasonReference"] = [{"reference": "Condition/no-such-condition"}]  # not found
    return body


def post(gw, body, prefer=None):
    """POSTs a referral; returns (status, every Warning header value as raw bytes, body)."""
    conn = gw.connection("gp")
    headers = {"Content-Type": "application/fhir+json"}
    if prefer:
        headers["Prefer"] = prefer
    try:
        conn.request("POST", "/fhir/ServiceRequest", body=json.dumps(body).encode(),
                     headers=headers)
        r = conn.getresponse()
        data = r.read()
        # http.client decodes header bytes as latin-1: encoding back gives the wire bytes
        warnings = [v.encode("latin-1") for k, v in r.getheaders() if k.lower() == "warning"]
        return r.status, warnings, json.loads(data)
    finally:
        conn.close()


def test_warning_headers_are_quoted_ascii_without_patient_data(gateway):
    status, warnings, _ = post(gateway, referral_with_quotes_and_accents())
    assert status == 201
    assert len(warnings) >= 2, warnings  # the bad INS-NIR and the missing indication
    for raw in warnings:
        assert all(0x20 <= b <= 0x7e for b in raw), raw
        value = raw.decode("ascii")
        assert WARNING.match(value), value
        for secret in ("28305", "2724", "Brién", "Zoë", "no-such"):
            assert secret not in value, (secret, value)
        assert "return=OperationOutcome" in value
    status, warnings, outcome = post(gateway, referral_with_quotes_and_accents(),
                                     prefer="return=OperationOutcome")
    assert status == 201
    texts = [i.get("diagnostics", "") for i in outcome["issue"]]
    assert any(BAD_INS in t for t in texts), texts  # the detail stays in the body
    assert warnings and all(WARNING.match(w.decode("ascii")) for w in warnings)
