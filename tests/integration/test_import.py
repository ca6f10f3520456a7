"""Issue 10: fhir-gateway import loads FHIR NDJSON (a resource or a transaction
Bundle per line) as the named GP client would over HTTP: same validation,
profile, mapping, Task, RIS order and AuditEvents; a per-line error report and
a non-zero exit when lines failed; nothing created twice on a second run."""

import json
import os

import mllp_peer as peer
from referrals import PLACER, contained_referral, transaction_bundle

PLACER_Q = "urn:oid:1.2.250.1.999.1.1"


def matches(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def write_ndjson(path, lines):
    with open(path, "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def import_file(gw, store, path, *extra, input=None):
    return gw.run_cli("import", "--client", "gp", "--store", store, *extra, path, input=input)


def test_import_writes_what_http_would_and_reports_each_failed_line(make_gateway, workdir, store):
    """Imports into the test's store (SQLite or PostgreSQL) while a gateway on another
    store runs the command."""
    source = os.path.join(workdir, "referrals.ndjson")
    no_indication = contained_referral(identifier="imp-bad", note=False)  # no words to read either
    del no_indication["reasonCode"]
    write_ndjson(source, [
        contained_referral(identifier="imp-1"),                          # 1
        "",                                                              # 2: blank, skipped
        transaction_bundle(placer="imp-2"),                              # 3
        "{not json",                                                     # 4: 400
        no_indication,                                                   # 5: 422
        {"resourceType": "Bundle", "type": "batch",                      # 6: 400
         "entry": [{"resource": contained_referral(identifier="imp-x"),
                    "request": {"method": "POST", "url": "ServiceRequest"}}]},
        {"resourceType": "Task", "status": "requested", "intent": "order"},  # 7: 405
        contained_referral(identifier="imp-1"),                          # 8: already there
    ])
    gw = make_gateway(store=os.path.join(workdir, "other.db"))
    done = import_file(gw, store, source)
    assert done.returncode == 1, done
    report = [l for l in done.stderr.decode().splitlines() if l.startswith("line ")]
    assert [l.split(":")[0] for l in report] == ["line 4", "line 5", "line 6", "line 7"]
    assert report[0].startswith("line 4: 400 ") and "JSON" in report[0]
    assert report[1].startswith("line 5: 422 ") and "reasonCode" in report[1]
    assert report[2].startswith("line 6: 400 ") and "transaction" in report[2]
    assert report[3].startswith("line 7: 405 ")
    assert b"7 lines, 3 imported (1 already there), 4 failed" in done.stdout
    # the imported data, served: searchable, mapped, with its Task and RIS order
    served = make_gateway()
    sr = matches(served.get("/fhir/ServiceRequest?identifier=%s|imp-1" % PLACER_Q).json())
    assert len(sr) == 1
    assert sr[0]["code"]["coding"][0]["code"] == "AHLH014"  # the map chose the procedure
    tasks = matches(served.get("/fhir/Task?focus=ServiceRequest/" + sr[0]["id"]).json())
    assert len(tasks) == 1 and tasks[0]["status"] == "requested"
    tx = matches(served.get("/fhir/ServiceRequest?identifier=%s|imp-2" % PLACER).json())
    assert len(tx) == 1 and tx[0]["subject"]["reference"].startswith("Patient/")
    assert served.get("/fhir/" + tx[0]["subject"]["reference"]).status == 200
    assert matches(served.get("/fhir/ServiceRequest?identifier=%s|imp-1" % PLACER_Q,
                              cert="gp2").json()) == []  # owned by the client named
    orders = peer.split_batch(served.get("/ris/orders?max=50", cert="ris").body)
    assert len(orders) == 2
    # an AuditEvent per line, as over HTTP, and an intact chain
    events = matches(served.get("/fhir/AuditEvent?entity=ServiceRequest/" + sr[0]["id"],
                                cert="auditor").json())
    assert any(e["subtype"][0]["code"] == "create" and e["outcome"] == "0" for e in events)
    refused = matches(served.get("/fhir/AuditEvent?outcome=4&_count=50", cert="auditor").json())
    assert len(refused) >= 4
    served.stop()
    # a second run matches what is there: nothing twice (stdin this time), but the
    # transaction's Condition, which has no identifier to match by

    with open(source, "rb") as f:
        again = import_file(gw, store, "-", input=f.read())
    assert b"7 lines, 3 imported (2 already there)" in again.stdout, again
    verify = gw.run_cli("audit", "verify", "--store", store)
    assert verify.returncode == 0, verify.stderr
    served = make_gateway()
    assert len(matches(served.get("/fhir/ServiceRequest?_count=50").json())) == 2
    assert len(matches(served.get("/fhir/Patient?_count=50").json())) == 1
    assert len(matches(served.get("/fhir/Condition?_count=50").json())) == 2


def test_import_needs_a_gp_client_and_a_readable_file(gateway, workdir):
    store = ("sqlite:" + os.path.join(workdir, "x.db") if gateway.backend == "sqlite"
             else gateway.store_url)  # on PostgreSQL, beside the running gateway
    source = os.path.join(workdir, "one.ndjson")
    write_ndjson(source, [contained_referral()])
    for args, why in ((["--client", "ris"], b"role ris"), (["--client", "nobody"], b"nobody"),
                      ([], b"--client")):
        r = gateway.run_cli("import", *args, "--store", store, source)
        assert r.returncode == 2 and why in r.stderr, (args, r)
    r = gateway.run_cli("import", "--client", "gp", "--store", store,
                        os.path.join(workdir, "missing.ndjson"))
    assert r.returncode == 2 and b"cannot open" in r.stderr
    r = gateway.run_cli("import", "--client", "gp", "--store", store, source)
    assert r.returncode == 0 and b"1 lines, 1 imported" in r.stdout, r
