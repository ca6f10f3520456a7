"""Issue 16, part 1: another organisation's patient must never reach an HL7 order,
a Task or an AuditEvent. A revocation or amendment may not change the referral's
subject or requester (422 naming the element); the orders every RIS client pulls
and the AuditEvents of the second GP organisation are then searched for the first
organisation's patient and GP."""

import copy
import json

from mllp_peer import ack_for, split_batch
from referrals import PRACTITIONER, RPPS, contained_referral, transaction_bundle

RIS_CLIENTS = ("ris", "ris-bachaumont", "ris-drouot")


def nir(first13):
    """A valid INS-NIR: 13 digits and their 2-digit key."""
    return first13 + "%02d" % (97 - int(first13) % 97)


# GP1's (Montorgueil) patient and GP: distinctive values searched for in every order.
GP1_INS = nir("1610275108042")
GP1_FAMILY, GP1_GIVEN, GP1_BIRTH = "Valmontier", "Octave", "1961-02-03"
GP1_RPPS, GP1_GP_FAMILY = "10009999991", "Roquelaure"


def locations(answer):
    out = {}
    for e in answer["entry"]:
        rtype, rid = e["response"]["location"].split("/")[:2]
        out[rtype] = rid
    return out


def gp1_referral(gw):
    """GP1's transaction: its Patient and Practitioner become stored resources."""
    bundle = transaction_bundle(ins=GP1_INS)
    patient = bundle["entry"][0]["resource"]
    patient["name"] = [{"family": GP1_FAMILY, "given": [GP1_GIVEN]}]
    patient["birthDate"] = GP1_BIRTH
    gp = bundle["entry"][1]
    gp["resource"]["identifier"][0]["value"] = GP1_RPPS
    gp["resource"]["name"] = [{"family": GP1_GP_FAMILY, "given": ["Anne"]}]
    gp["request"]["ifNoneExist"] = "identifier=%s|%s" % (RPPS, GP1_RPPS)
    r = gw.post("/fhir", bundle, cert="gp")
    assert r.status == 200, r
    return locations(r.json())


def gp2_referral(gw):
    r = gw.post("/fhir/ServiceRequest", contained_referral(), cert="gp2")
    assert r.status == 201, r
    return r.json()


def put_as_gp2(gw, sr, changes):
    body = copy.deepcopy(sr)
    body.pop("meta", None)
    body.update(changes)
    # dom-3: a contained resource no longer referenced must go (as a GP system would do).
    rest = json.dumps({k: v for k, v in body.items() if k != "contained"})
    kept = [c for c in body.get("contained", []) if '"#%s"' % c["id"] in rest]
    if kept:
        body["contained"] = kept
    else:
        body.pop("contained", None)
    return gw.put("/fhir/ServiceRequest/" + sr["id"], body, cert="gp2",
                  headers={"If-Match": 'W/"%s"' % sr["meta"]["versionId"]})


def expressions(outcome):
    return [x for i in outcome["issue"] for x in i.get("expression", [])]


def pull_everything(gw):
    """Every order the RIS clients are handed, each acked so the next one about
    the same referral (a change, a cancel) is offered too."""
    msgs = []
    for _ in range(5):
        got = 0
        for cert in RIS_CLIENTS:
            r = gw.get("/ris/orders?max=100", cert=cert)
            assert r.status == 200, (cert, r)
            for m in split_batch(r.body):
                a = gw.post("/ris/acks", ack_for(m), cert=cert, content_type="application/hl7-v2")
                assert a.status == 200, a
                msgs.append(m)
                got += 1
        if not got:
            return msgs
    return msgs


def assert_no_gp1_data(msgs, gp2_ids):
    about_gp2 = [m for m in msgs if m.get("ORC", 2) in gp2_ids]
    assert about_gp2, "the test must see the second organisation's orders"
    for m in about_gp2:
        for needle in (GP1_INS, GP1_FAMILY, GP1_GIVEN, GP1_BIRTH.replace("-", ""), GP1_RPPS,
                       GP1_GP_FAMILY):
            assert needle not in m.text, (needle, m.text)
        assert m.get("PID", 5, 1) == "Dupré", m.text  # GP2's own patient is there
    return about_gp2


def assert_gp2_events_do_not_name(gw, patient_id):
    r = gw.get("/fhir/AuditEvent?agent=batignolles&_count=500", cert="auditor")
    assert r.status == 200, r
    events = [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]
    assert events, "GP2's interactions are audited"
    for ev in events:
        assert patient_id not in json.dumps(ev), ev


def test_revocation_cannot_carry_another_organisations_patient(gateway):
    gp1 = gp1_referral(gateway)
    sr = gp2_referral(gateway)
    attack = put_as_gp2(gateway, sr, {
        "status": "revoked",
        "subject": {"reference": "Patient/" + gp1["Patient"]},
        "requester": {"reference": "Practitioner/" + gp1["Practitioner"]}})
    assert attack.status == 422, attack
    where = expressions(attack.json())
    assert "ServiceRequest.subject" in where and "ServiceRequest.requester" in where, where
    # Only the subject, or only the requester: each is refused alone.
    for element, ref in (("subject", "Patient/" + gp1["Patient"]),
                         ("requester", "Practitioner/" + gp1["Practitioner"])):
        r = put_as_gp2(gateway, sr, {"status": "revoked", element: {"reference": ref}})
        assert r.status == 422 and "ServiceRequest." + element in expressions(r.json()), r
    # The honest revocation still works and its cancel order names GP2's patient.
    honest = put_as_gp2(gateway, sr, {"status": "revoked"})
    assert honest.status == 200, honest
    msgs = pull_everything(gateway)
    mine = assert_no_gp1_data(msgs, {sr["id"]})
    assert sorted(m.get("ORC", 1) for m in mine) == ["CA", "NW"]
    assert any(m.get("ORC", 2) == gp1["ServiceRequest"] and GP1_FAMILY in m.text for m in msgs), \
        "GP1's own order carries GP1's patient"
    assert_gp2_events_do_not_name(gateway, gp1["Patient"])


def test_amendment_may_not_change_subject_or_requester(gateway):
    gp1 = gp1_referral(gateway)
    sr = gp2_referral(gateway)
    other = gateway.post("/fhir", transaction_bundle(ins=nir("2900775056123")), cert="gp2")
    assert other.status == 200, other
    own_patient = locations(other.json())["Patient"]
    amend = {"note": [{"text": "Douleur majorée depuis une semaine."}]}
    cases = [("subject", {"reference": "Patient/" + gp1["Patient"]}),
             ("requester", {"reference": "Practitioner/" + gp1["Practitioner"]}),
             ("subject", {"reference": "Patient/" + own_patient}),  # GP2's own, still a change
             ("requester", {"display": "Dr Someone Else"})]
    for element, value in cases:
        r = put_as_gp2(gateway, sr, dict(amend, **{element: value}))
        assert r.status == 422, (element, value, r)
        assert "ServiceRequest." + element in expressions(r.json()), r.json()
    # The contained patient may not be swapped for another person behind the same "#pat".
    swapped = copy.deepcopy(sr["contained"])
    swapped[0]["name"] = [{"family": GP1_FAMILY, "given": [GP1_GIVEN]}]
    r = put_as_gp2(gateway, sr, dict(amend, contained=swapped))
    assert r.status == 422 and "ServiceRequest.subject" in expressions(r.json()), r
    ok = put_as_gp2(gateway, sr, amend)
    assert ok.status == 200, ok
    mine = assert_no_gp1_data(pull_everything(gateway), {sr["id"]})
    assert sorted(m.get("ORC", 1) for m in mine) == ["NW", "XO"]
    assert_gp2_events_do_not_name(gateway, gp1["Patient"])


def test_transaction_entries_cannot_point_the_audit_at_another_patient(gateway):
    gp1 = gp1_referral(gateway)
    bundle = transaction_bundle(ins=nir("1850675056789"))
    stray = {"resourceType": "Condition",
             "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]},
             "subject": {"reference": "Patient/" + gp1["Patient"]}}
    bundle["entry"].insert(0, {"resource": stray,
                               "request": {"method": "POST", "url": "Condition"}})
    r = gateway.post("/fhir", bundle, cert="gp2")
    assert r.status in (200, 422), r
    if r.status == 200:  # GP2 reads its own Condition back: still not GP1's patient's event
        stray_id = [e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                    if e["response"]["location"].startswith("Condition/")][0]
        assert gateway.get("/fhir/Condition/" + stray_id, cert="gp2").status == 200
    assert_gp2_events_do_not_name(gateway, gp1["Patient"])
