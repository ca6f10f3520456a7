"""Issue 16, part 3: a RIS sees exactly the resources its sites' referrals
reference. One transaction with a Patient, a Condition that is the reason for
referral A (Bachaumont) only, referral A and referral B (Drouot); then a Patient
reused through ifNoneExist by a later transaction for the other site. Reads,
vreads, histories, searches and _include as each site's RIS client."""

import copy
import uuid

import pytest

from referrals import INS_NIR, transaction_bundle
from store_schema import downgrade_to_schema_1

BACHAUMONT = {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000102"}
DROUOT = {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000109"}


def two_site_transaction():
    """Patient, Practitioner, Condition (reason of A only), A at Bachaumont, B at Drouot."""
    bundle = transaction_bundle(performer=BACHAUMONT)
    a = bundle["entry"][3]["resource"]
    b = copy.deepcopy(a)
    b["identifier"][0]["value"] = str(uuid.uuid4())
    b["performer"] = [{"identifier": DROUOT}]
    del b["reasonReference"]
    bundle["entry"].append({"fullUrl": "urn:uuid:" + str(uuid.uuid4()), "resource": b,
                            "request": {"method": "POST", "url": "ServiceRequest"}})
    return bundle


def ids_of(answer):
    """{type: [ids in entry order]}."""
    out = {}
    for e in answer["entry"]:
        rtype, rid = e["response"]["location"].split("/")[:2]
        out.setdefault(rtype, []).append(rid)
    return out


def status(gw, path, cert):
    return gw.get(path, cert=cert).status


def found(gw, query, cert):
    r = gw.get(query, cert=cert)
    assert r.status == 200, (query, cert, r)
    return {(e["resource"]["resourceType"], e["resource"]["id"])
            for e in r.json().get("entry", []) if e["search"]["mode"] in ("match", "include")}


def test_each_site_sees_what_its_referrals_reference(gateway):
    r = gateway.post("/fhir", two_site_transaction())
    assert r.status == 200, r
    ids = ids_of(r.json())
    patient, gp, cond = ids["Patient"][0], ids["Practitioner"][0], ids["Condition"][0]
    a, b = ids["ServiceRequest"]
    expect = {
        "ris-bachaumont": {"Patient/" + patient: 200, "Practitioner/" + gp: 200,
                           "Condition/" + cond: 200, "ServiceRequest/" + a: 200,
                           "ServiceRequest/" + b: 404},
        "ris-drouot": {"Patient/" + patient: 200, "Practitioner/" + gp: 200,
                       "Condition/" + cond: 404, "ServiceRequest/" + a: 404,
                       "ServiceRequest/" + b: 200},
        "ris": {"Patient/" + patient: 200, "Condition/" + cond: 200,
                "ServiceRequest/" + a: 200, "ServiceRequest/" + b: 200},
    }
    for cert, paths in expect.items():
        for path, want in paths.items():
            for suffix in ("", "/_history", "/_history/1"):
                assert status(gateway, "/fhir/" + path + suffix, cert) == want, \
                    (cert, path + suffix, want)
    # Searches and _include follow the same scope.
    assert ("Condition", cond) in found(gateway, "/fhir/Condition", "ris-bachaumont")
    assert ("Condition", cond) not in found(gateway, "/fhir/Condition", "ris-drouot")
    assert not found(gateway, "/fhir/Condition?_id=" + cond, "ris-drouot")
    for cert in ("ris-bachaumont", "ris-drouot"):
        assert ("Patient", patient) in found(
            gateway, "/fhir/Patient?identifier=%s|283052724101267" % INS_NIR, cert)
    drouot = found(gateway, "/fhir/ServiceRequest?_include=ServiceRequest:subject"
                            "&_include=ServiceRequest:requester", "ris-drouot")
    assert drouot == {("ServiceRequest", b), ("Patient", patient), ("Practitioner", gp)}, drouot
    tasks = found(gateway, "/fhir/Task", "ris-drouot")
    assert len(tasks) == 1, "B's Task only"


def test_a_reused_patient_becomes_visible_to_the_later_referrals_site(gateway):
    ins = "185067505678941"
    first = gateway.post("/fhir", transaction_bundle(ins=ins, performer=BACHAUMONT))
    assert first.status == 200, first
    patient = ids_of(first.json())["Patient"][0]
    cond_a = ids_of(first.json())["Condition"][0]
    assert status(gateway, "/fhir/Patient/" + patient, "ris-drouot") == 404
    second = gateway.post("/fhir", transaction_bundle(ins=ins, performer=DROUOT))
    assert second.status == 200, second
    ids = ids_of(second.json())
    assert ids["Patient"] == [patient], "ifNoneExist reused the stored Patient"
    for cert in ("ris-bachaumont", "ris-drouot"):
        assert status(gateway, "/fhir/Patient/" + patient, cert) == 200, cert
        assert ("Patient", patient) in found(gateway, "/fhir/Patient?_id=" + patient, cert)
    assert status(gateway, "/fhir/Condition/" + ids["Condition"][0], "ris-drouot") == 200
    assert status(gateway, "/fhir/Condition/" + ids["Condition"][0], "ris-bachaumont") == 404
    assert status(gateway, "/fhir/Condition/" + cond_a, "ris-drouot") == 404


def test_a_reference_to_another_organisations_resource_makes_nothing_visible(gateway):
    gp1 = ids_of(gateway.post("/fhir", transaction_bundle(ins="185067505678941",
                                                          with_condition=True)).json())
    bundle = transaction_bundle(ins="283052724101267", performer=DROUOT, with_condition=False)
    bundle["entry"][-1]["resource"]["supportingInfo"] = [
        {"reference": "Condition/" + gp1["Condition"][0]}]
    r = gateway.post("/fhir", bundle, cert="gp2")
    assert r.status == 200, r
    assert status(gateway, "/fhir/Condition/" + gp1["Condition"][0], "ris-drouot") == 404


@pytest.mark.sqlite_only("rewinds the SQLite file to schema 1")
def test_migration_derives_each_sites_view_from_the_referrals(make_gateway):
    gw = make_gateway()
    ids = ids_of(gw.post("/fhir", two_site_transaction()).json())
    other = ids_of(gw.post("/fhir", transaction_bundle(ins="185067505678941",
                                                       performer=DROUOT), cert="gp2").json())
    gw.stop()
    # as schema 1 held it: no resource_sites, inbound keyed on the sender alone, and
    # every non-referral row stamped with one site (a transaction's last referral's)
    downgrade_to_schema_1(gw.store_path, "drouot")
    gw.start()
    assert gw.db().execute("PRAGMA user_version").fetchone()[0] >= 5
    patient, cond = ids["Patient"][0], ids["Condition"][0]
    a, b = ids["ServiceRequest"]
    want = {("ris-bachaumont", "Patient/" + patient): 200,
            ("ris-bachaumont", "Condition/" + cond): 200,
            ("ris-bachaumont", "ServiceRequest/" + a): 200,
            ("ris-bachaumont", "ServiceRequest/" + b): 404,
            ("ris-bachaumont", "Condition/" + other["Condition"][0]): 404,
            ("ris-drouot", "Patient/" + patient): 200,
            ("ris-drouot", "Condition/" + cond): 404,
            ("ris-drouot", "ServiceRequest/" + b): 200,
            ("ris-drouot", "Condition/" + other["Condition"][0]): 200}
    for (cert, path), code in want.items():
        assert status(gw, "/fhir/" + path, cert) == code, (cert, path, code)
