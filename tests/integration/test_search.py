"""Issue: FHIR search for referrals. Parameters of DESIGN §3, paging that stays
correct while referrals arrive, _include, _sort, _total, strict and lenient
handling, and organisation isolation on every read and search path."""

import threading
import urllib.parse

from referrals import ICD10, INS_NIR, PLACER, contained_referral, transaction_bundle


def q(value):
    return urllib.parse.quote(value, safe="")


def matches(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def create_many(gw, n, cert="gp", prefix="bulk"):
    ids, lock = [], threading.Lock()

    def worker(k):
        for i in range(k, n, 8):
            r = gw.post("/fhir/ServiceRequest", contained_referral(identifier="%s-%d" % (prefix, i)),
                        cert=cert, headers={"Prefer": "return=minimal"})
            assert r.status == 201
            with lock:
                ids.append(r.header("Location").split("/")[-3])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def page_through(gw, url, cert="gp", after_first_page=None):
    seen, pages = [], 0
    while url:
        if pages == 1 and after_first_page:
            after_first_page()
        r = gw.get(url, cert=cert)
        assert r.status == 200, r
        b = r.json()
        seen += [m["id"] for m in matches(b)]
        nxt = [l["url"] for l in b["link"] if l["relation"] == "next"]
        url = nxt[0].split("/fhir", 1)[1] if nxt else None
        url = "/fhir" + url if url else None
        pages += 1
        assert pages < 100
    return seen


def test_paging_over_250_referrals_returns_each_once_while_new_ones_arrive(gateway):
    ids = create_many(gateway, 250)
    stop = threading.Event()

    def arrivals():
        while not stop.is_set():
            gateway.post("/fhir/ServiceRequest", contained_referral(identifier="late"),
                         headers={"Prefer": "return=minimal"})

    t = threading.Thread(target=arrivals)
    try:
        seen = page_through(gateway, "/fhir/ServiceRequest?_count=40&_total=accurate",
                            after_first_page=t.start)
    finally:
        stop.set()
        t.join()
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == set(ids)
    late = gateway.get("/fhir/ServiceRequest?identifier=%s|late&_total=accurate" % PLACER).json()
    assert late["total"] > 0, "referrals arrived while paging"


def test_count_is_bounded_and_total_on_request(gateway):
    create_many(gateway, 12)
    b = gateway.get("/fhir/ServiceRequest?_count=5&_total=accurate").json()
    assert b["total"] == 12 and len(matches(b)) == 5
    assert "total" not in gateway.get("/fhir/ServiceRequest?_count=5").json()
    b = gateway.get("/fhir/ServiceRequest?_count=100000").json()
    assert len(matches(b)) == 12
    prev = gateway.get("/fhir/ServiceRequest?_count=5&_snapshot=%d&_offset=5" % 10 ** 9).json()
    assert any(l["relation"] == "previous" for l in prev["link"])


def test_token_reference_date_and_string_parameters(gateway):
    a = gateway.post("/fhir", transaction_bundle(icd10="M54.4")).json()
    b = gateway.post("/fhir", transaction_bundle(ins="194017512345653", icd10="M51.1")).json()
    sr_a = [e for e in a["entry"] if "ServiceRequest/" in e["response"]["location"]][0]
    sr_a_id = sr_a["response"]["location"].split("/")[1]
    pat_a = a["entry"][0]["response"]["location"].split("/")[1]
    # token system|code, |code-less, code only, :not
    found = gateway.get("/fhir/ServiceRequest?status=active&intent=order").json()
    assert len(matches(found)) == 2
    assert len(matches(gateway.get("/fhir/ServiceRequest?status=revoked").json())) == 0
    assert len(matches(gateway.get("/fhir/ServiceRequest?status:not=active").json())) == 0
    assert len(matches(gateway.get("/fhir/Patient?identifier=%s|194017512345653"
                                   % q(INS_NIR)).json())) == 1
    assert len(matches(gateway.get("/fhir/Patient?identifier=194017512345653").json())) == 1
    assert len(matches(gateway.get("/fhir/Patient?identifier=other|194017512345653").json())) == 0
    # reference: Type/id, bare id, absolute URL of this server
    for value in ("Patient/" + pat_a, pat_a,
                  "https://127.0.0.1:%d/fhir/Patient/%s" % (gateway.port, pat_a)):
        got = matches(gateway.get("/fhir/ServiceRequest?subject=" + q(value)).json())
        assert [g["id"] for g in got] == [sr_a_id], value
    assert len(matches(gateway.get("/fhir/ServiceRequest?patient=" + pat_a).json())) == 1
    # dates with prefixes
    for query, n in (("authored=2026-11-20", 2), ("authored=gt2026-11-20", 0),
                     ("authored=ge2026-11-20", 2), ("authored=lt2026-11-21", 2),
                     ("authored=sa2026-11-19", 2), ("authored=eb2026-11-19", 0),
                     ("authored=ne2026-11", 0), ("authored=2026", 2)):
        assert len(matches(gateway.get("/fhir/ServiceRequest?" + query).json())) == n, query
    # string: starts-with, accent and case folding, :exact, :contains
    assert len(matches(gateway.get("/fhir/Patient?family=dupre").json())) == 2
    assert len(matches(gateway.get("/fhir/Patient?family:exact=Dupr%C3%A9").json())) == 2
    assert len(matches(gateway.get("/fhir/Patient?family:exact=dupre").json())) == 0
    assert len(matches(gateway.get("/fhir/Patient?given:contains=lene").json())) == 2
    # code of the Condition, and ANDed parameters
    assert len(matches(gateway.get("/fhir/Condition?code=%s|M51.1" % q(ICD10)).json())) == 1
    assert len(matches(gateway.get("/fhir/Condition?code=M51.1,M54.4").json())) == 2
    both = "/fhir/ServiceRequest?status=active&subject=Patient/" + pat_a
    assert len(matches(gateway.get(both).json())) == 1


def test_last_updated_and_sort(gateway):
    create_many(gateway, 6)
    asc = [m["meta"]["lastUpdated"] for m in matches(
        gateway.get("/fhir/ServiceRequest?_sort=_lastUpdated").json())]
    desc = [m["meta"]["lastUpdated"] for m in matches(
        gateway.get("/fhir/ServiceRequest?_sort=-_lastUpdated").json())]
    assert asc == sorted(asc) and desc == sorted(desc, reverse=True)
    assert len(matches(gateway.get("/fhir/ServiceRequest?_lastUpdated=gt2000-01-01").json())) == 6
    assert len(matches(gateway.get("/fhir/ServiceRequest?_lastUpdated=lt2000-01-01").json())) == 0


def test_include_subject_and_requester(gateway):
    gateway.post("/fhir", transaction_bundle())
    b = gateway.get("/fhir/ServiceRequest?_include=ServiceRequest:subject"
                    "&_include=ServiceRequest:requester").json()
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in b["entry"])
    assert modes == [("include", "Patient"), ("include", "Practitioner"),
                     ("match", "ServiceRequest")]


def test_unknown_parameters_lenient_warns_strict_refuses(gateway):
    create_many(gateway, 2)
    b = gateway.get("/fhir/ServiceRequest?colour=blue").json()
    assert len(matches(b)) == 2
    outcome = [e for e in b["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and outcome[0]["resource"]["issue"][0]["severity"] == "warning"
    r = gateway.get("/fhir/ServiceRequest?colour=blue", headers={"Prefer": "handling=strict"})
    assert r.status == 400
    assert r.json()["issue"][0]["code"] == "not-supported"
    bad_date = gateway.get("/fhir/ServiceRequest?authored=yesterday")
    assert bad_date.status == 400


def test_organisation_isolation_on_every_path(gateway):
    a = gateway.post("/fhir", transaction_bundle()).json()
    sr = [e for e in a["entry"] if "ServiceRequest/" in e["response"]["location"]][0]
    sr_id = sr["response"]["location"].split("/")[1]
    pat = a["entry"][0]["response"]["location"].split("/")[1]
    for path in ("/fhir/ServiceRequest/" + sr_id, "/fhir/ServiceRequest/%s/_history" % sr_id,
                 "/fhir/ServiceRequest/%s/_history/1" % sr_id, "/fhir/Patient/" + pat):
        assert gateway.get(path, cert="gp2").status == 404, path
        assert gateway.get(path, cert="gp").status == 200, path
    for path in ("/fhir/ServiceRequest", "/fhir/Patient", "/fhir/Task", "/fhir/Condition",
                 "/fhir/ServiceRequest?_include=ServiceRequest:subject",
                 "/fhir/Task?focus=ServiceRequest/" + sr_id,
                 "/fhir/ServiceRequest?subject=Patient/" + pat,
                 "/fhir/Patient?identifier=%s|283052724101267" % q(INS_NIR)):
        assert matches(gateway.get(path, cert="gp2").json()) == [], path
        assert gateway.get(path, cert="gp").json()["entry"], path
    # the RIS sees what is routed to its sites; the auditor sees none of it
    assert gateway.get("/fhir/ServiceRequest/" + sr_id, cert="ris").status == 200
    assert len(matches(gateway.get("/fhir/ServiceRequest", cert="ris").json())) == 1
    assert gateway.get("/fhir/ServiceRequest/" + sr_id, cert="auditor").status == 403
    assert gateway.get("/fhir/ServiceRequest", cert="auditor").status == 403


def test_capability_statement_lists_search_parameters_that_work(gateway):
    cs = gateway.get("/fhir/metadata", cert=None).json()
    res = {r["type"]: r for r in cs["rest"][0]["resource"]}
    sr_params = {p["name"] for p in res["ServiceRequest"]["searchParam"]}
    assert {"_id", "_lastUpdated", "identifier", "patient", "subject", "status", "requester",
            "performer", "authored", "code", "based-on"} <= sr_params
    assert "ServiceRequest:subject" in res["ServiceRequest"]["searchInclude"]
    assert {i["code"] for i in res["Task"]["interaction"]} == {
        "read", "vread", "history-instance", "search-type"}
    assert "focus" in {p["name"] for p in res["Task"]["searchParam"]}
    assert {i["code"] for i in cs["rest"][0]["interaction"]} == {"transaction", "batch"}
    # every listed parameter of every type is accepted in strict mode, and so is
    # every listed _include
    for rtype, r_entry in res.items():
        cert = "auditor" if rtype == "AuditEvent" else "gp"
        for p in r_entry.get("searchParam", []):
            value = {"date": "2026", "reference": "Patient/x", "token": "x",
                     "string": "x", "uri": "http://x"}.get(p["type"], "x")
            r = gateway.get("/fhir/%s?%s=%s" % (rtype, p["name"], q(value)), cert=cert,
                            headers={"Prefer": "handling=strict"})
            assert r.status == 200, (rtype, p, r)
        for inc in r_entry.get("searchInclude", []):
            r = gateway.get("/fhir/%s?_include=%s" % (rtype, q(inc)), cert=cert,
                            headers={"Prefer": "handling=strict"})
            assert r.status == 200, (rtype, inc, r)
