"""Issue: the practice's page is the reference for which indication leads to which
injection. Each indication it lists (shared/research/codes.md, mappings/indications.json),
sent by a GP as a coded referral, leaves as an order whose OBR-4 names the procedure the
practice performs for it (CCAM, the code the practice bills), over the real binary."""

from mllp_peer import split_batch
from referrals import ICD10, SNOMED, contained_referral

LUMBAR, CERVICAL, SI_JOINT = "122496007", "122494005", "39723000"
LEFT, RIGHT = "7771000", "24028007"

FACET, EPIDURAL, FORAMINAL, SACROILIAC = "LHLH003", "AFLB007", "AHLH014", "NZLH002"

# (indication on the practice's page, reason codings, bodySite codes, OBR-4 code)
PAGE = [
    ("cervicalgia", [(ICD10, "M54.2")], [], FACET),
    ("thoracic back pain (dorsalgia)", [(ICD10, "M54.6")], [], FACET),
    ("low back pain (lumbago)", [(ICD10, "M54.5")], [], FACET),
    ("low back pain (SNOMED CT)", [(SNOMED, "279039007")], [], FACET),
    ("neck pain (SNOMED CT)", [(SNOMED, "81680005")], [], FACET),
    ("low back pain at the sacroiliac joint", [(ICD10, "M54.5")], [SI_JOINT], SACROILIAC),
    ("lumbosciatica, left", [(ICD10, "M54.4")], [LUMBAR, LEFT], FORAMINAL),
    ("lumbosciatica, no side", [(ICD10, "M54.4")], [LUMBAR], EPIDURAL),
    ("sciatica, right", [(ICD10, "M54.3")], [RIGHT], FORAMINAL),
    ("sciatica (SNOMED CT), no side", [(SNOMED, "23056005")], [], EPIDURAL),
    ("disc herniation with radiculopathy, lumbar", [(ICD10, "M51.1")], [LUMBAR], FORAMINAL),
    ("disc herniation with radiculopathy, cervical", [(ICD10, "M50.1")], [], FORAMINAL),
    ("disc protrusion, lumbar", [(ICD10, "M51.2")], [LUMBAR], EPIDURAL),
    ("disc protrusion, cervical", [(ICD10, "M50.2")], [], EPIDURAL),
    ("degenerative spine: spondylosis", [(ICD10, "M47.9")], [LUMBAR], FACET),
    ("degenerative spine: disc degeneration", [(ICD10, "M51.3")], [LUMBAR], FACET),
    ("facet syndrome", [(ICD10, "M47.8")], [CERVICAL], FACET),
    ("spinal stenosis, lumbar", [(ICD10, "M48.06")], [], EPIDURAL),
    ("spinal stenosis (SNOMED CT)", [(SNOMED, "18347007")], [], EPIDURAL),
    ("radiculopathy", [(ICD10, "M54.1")], [CERVICAL], FORAMINAL),
    ("spondylosis with radiculopathy", [(ICD10, "M47.2")], [LUMBAR], FORAMINAL),
    ("sacroiliac (ISG) blockage", [(ICD10, "M53.3")], [], SACROILIAC),
    ("sacroiliitis", [(ICD10, "M46.1")], [], SACROILIAC),
]

V2_SYSTEM = {ICD10: "I10", SNOMED: "SCT"}


def referral(reasons, sites):
    body = contained_referral(note=False)
    body["reasonCode"] = [{"coding": [{"system": s, "code": c} for s, c in reasons]}]
    if sites:
        body["bodySite"] = [{"coding": [{"system": SNOMED, "code": c}]} for c in sites]
    else:
        del body["bodySite"]
    return body


def test_each_indication_of_the_practices_page_leaves_as_an_order_for_its_injection(gateway):
    sent = {}
    for name, reasons, sites, _ in PAGE:
        r = gateway.post("/fhir/ServiceRequest", referral(reasons, sites))
        assert r.status == 201, (name, r)
        sent[r.json()["id"]] = name
    r = gateway.get("/ris/orders?max=%d" % (2 * len(PAGE)), cert="ris")
    assert r.status == 200, r
    orders = {m.get("ORC", 2): m for m in split_batch(r.body)}
    assert set(orders) == set(sent), "every referral leaves as one order, none waits in triage"
    wrong = []
    for sr_id, name in sent.items():
        m = orders[sr_id]
        _, reasons, _, want = [p for p in PAGE if p[0] == name][0]
        got = (m.get("ORC", 1), m.get("OBR", 4, 1), m.get("OBR", 4, 3))
        if got != ("NW", want, "CCAM"):
            wrong.append((name, got, want))
        dg1 = {(m.get("DG1", 3, 1, occurrence=i), m.get("DG1", 3, 3, occurrence=i))
               for i in range(len(m.all("DG1")))}
        if {(c, V2_SYSTEM[s]) for s, c in reasons} - dg1:
            wrong.append((name, "DG1", sorted(dg1)))
    assert not wrong, wrong
