"""Issue: GP software told when its referral moves. FHIR R4 Subscriptions
(criteria-based, rest-hook) delivered to an independent HTTPS receiver that
requires the gateway's client certificate: every change of the referral's
Task as the RIS reports it, in order and once per change; the receiver down,
the gateway restarted, an endpoint failing then back; what a GP may and may
not subscribe to; another organisation never told."""

import copy
import re
import time

import mllp_peer as peer_mod
from conftest import free_port
from mllp_peer import Message
from receiver import Receiver
from referrals import contained_referral

HL7 = "application/hl7-v2"
PATH = "/fhir-notify"
FAST = {"GATEWAY_SUBSCRIPTION_BACKOFF_MIN_MS": "100", "GATEWAY_SUBSCRIPTION_BACKOFF_MAX_MS": "400"}


def subscription(endpoint, criteria="Task", payload="application/fhir+json", headers=None):
    sub = {"resourceType": "Subscription", "status": "requested",
           "reason": "Suivre mes demandes d'infiltration", "criteria": criteria,
           "channel": {"type": "rest-hook", "endpoint": endpoint}}
    if payload:
        sub["channel"]["payload"] = payload
    if headers:
        sub["channel"]["header"] = headers
    return sub


def start(make_gateway, receiver, **env):
    allowed = "https://127.0.0.1:%d/" % receiver.port
    return make_gateway(env=dict(FAST, GATEWAY_SUBSCRIPTION_ENDPOINTS=allowed, **env))


def subscribe(gw, receiver, cert="gp", path=PATH, **kwargs):
    """Creates a Subscription and waits until its handshake made it active."""
    r = gw.post("/fhir/Subscription", subscription(receiver.url(path), **kwargs), cert=cert)
    assert r.status == 201, r
    sub = r.json()
    assert sub["status"] == "requested"
    assert wait_status(gw, sub["id"], "active", cert=cert), gw.get("/fhir/Subscription/" + sub["id"], cert=cert)
    return sub


def wait_status(gw, sub_id, status, cert="gp", timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        sub = gw.get("/fhir/Subscription/" + sub_id, cert=cert).json()
        if sub.get("status") == status:
            return sub
        time.sleep(0.05)
    return None


def create_referral(gw):
    r = gw.post("/fhir/ServiceRequest", contained_referral())
    assert r.status == 201, r
    return r.json()


def ris(gw, text):
    r = gw.post("/ris/messages", text, cert="ris", content_type=HL7)
    assert r.status == 200, r
    assert Message(r.body).get("MSA", 1) == "AA", r.body


def task_of(gw, sr_id):
    entries = gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id).json().get("entry", [])
    assert len(entries) == 1
    return entries[0]["resource"]


def business(task):
    return task["businessStatus"]["coding"][0]["code"]


def metric(gw, name, sub_id, result=None):
    text = gw.get("/metrics", cert=None).body.decode()
    labels = 'subscription="%s"' % sub_id + (',result="%s"' % result if result else "")
    m = re.search(r"^%s\{%s\} (\S+)$" % (name, re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def task_versions(notifications):
    return [int(n.focus()["meta"]["versionId"]) for n in notifications]


# ---------------------------------------------------------------- the referral's life


def test_each_change_of_the_task_is_notified_in_order_once(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv)
    sub = subscribe(gw, rcv, headers=["Authorization: Bearer jeton-cabinet-42"])
    hello = rcv.on(PATH)[0]
    assert hello.kind() == "handshake" and hello.status()["events-since-subscription-start"] == "0"
    sr = create_referral(gw)
    steps = [
        (None, "received"),
        (peer_mod.order_status(sr["id"], "OK", filler="F-77"), "accepted"),
        (peer_mod.siu(sr["id"], start="202612031430", minutes=45), "scheduled"),
        (peer_mod.order_status(sr["id"], "SC", "CM", filler="F-77"), "completed"),
        (peer_mod.oru(sr["id"], ["Infiltration L5-S1 gauche.", "Pas de complication."],
                      filler="F-77"), "reported"),
    ]
    for message, expected in steps:
        if message:
            ris(gw, message)
        version = int(task_of(gw, sr["id"])["meta"]["versionId"])
        got = rcv.wait_for(lambda: len(rcv.events(PATH)) >= version and rcv.events(PATH))
        assert got, "no notification for the Task at version %d" % version
        assert business(got[-1].focus()) == expected
    events = rcv.events(PATH)
    task = task_of(gw, sr["id"])
    # once per change: every Task version exactly once, in commit order, numbered 1, 2, 3...
    assert task_versions(events) == list(range(1, int(task["meta"]["versionId"]) + 1))
    assert [n.event_number() for n in events] == list(range(1, len(events) + 1))
    assert [business(n.focus()) for n in events][-1] == "reported"
    for n in events:
        assert n.client_cn == "fhir-gateway notifications"
        assert n.headers["content-type"].startswith("application/fhir+json")
        assert n.headers["authorization"] == "Bearer jeton-cabinet-42"
        status = n.status()
        assert status["subscription"]["reference"].endswith("/Subscription/" + sub["id"])
        assert status["notification-event"]["focus"]["reference"].endswith("/Task/" + task["id"])
        bundle = n.bundle()
        assert bundle["type"] == "history"
        assert gw.post("/fhir/$validate", bundle).json()["issue"][0]["severity"] == "information"
    time.sleep(0.3)  # nothing more arrives: once per change
    assert len(rcv.events(PATH)) == len(events)
    assert metric(gw, "gateway_subscription_deliveries_total", sub["id"], "delivered") == len(events) + 1
    assert metric(gw, "gateway_subscription_queue_depth", sub["id"]) == 0
    audit = gw.get("/fhir/AuditEvent?subtype=event-notification&entity=Subscription/" + sub["id"],
                   cert="auditor").json()
    # each event is audited when queued (action C) and when sent (action E)
    actions = [e["resource"]["action"] for e in audit.get("entry", [])]
    assert actions.count("C") == len(events) and actions.count("E") == len(events)
    rcv.stop()


def test_another_organisation_is_never_told(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv)
    mine = subscribe(gw, rcv, path="/montorgueil")
    theirs = subscribe(gw, rcv, cert="gp2", path="/batignolles", payload=None)
    sr = create_referral(gw)
    ris(gw, peer_mod.order_status(sr["id"], "OK"))
    assert rcv.wait_for(lambda: len(rcv.events("/montorgueil")) == 2)
    time.sleep(0.5)
    pings = rcv.on("/batignolles")
    assert len(pings) == 1 and pings[0].body == b""  # its handshake, an empty ping, and nothing else
    assert "content-type" not in pings[0].headers
    assert gw.get("/fhir/Subscription/" + mine["id"], cert="gp2").status == 404
    assert gw.get("/fhir/Subscription/" + theirs["id"], cert="gp").status == 404
    assert len(gw.get("/fhir/Subscription", cert="gp2").json().get("entry", [])) == 1
    rcv.stop()


# ---------------------------------------------------------------- durability


def test_receiver_down_then_back_gets_everything_in_order(make_gateway):
    rcv = Receiver().start()
    port = rcv.port
    gw = start(make_gateway, rcv)
    subscribe(gw, rcv)
    rcv.stop()
    ids = [create_referral(gw)["id"] for _ in range(3)]
    ris(gw, peer_mod.order_status(ids[0], "OK"))
    time.sleep(1)  # refused connections and backoffs
    back = Receiver(port=port).start()
    events = back.wait_for(lambda: len(back.events(PATH)) >= 4 and back.events(PATH))
    assert [n.event_number() for n in events] == [1, 2, 3, 4]
    focus = [(n.focus()["focus"]["reference"], business(n.focus())) for n in events]
    assert focus == [("ServiceRequest/" + ids[0], "received"), ("ServiceRequest/" + ids[1], "received"),
                     ("ServiceRequest/" + ids[2], "received"), ("ServiceRequest/" + ids[0], "accepted")]
    assert len([n for n in back.on(PATH) if n.body]) == 1  # what waited goes in one notification
    back.stop()


def test_undelivered_notifications_are_delivered_after_a_restart(make_gateway):
    rcv = Receiver().start()
    port = rcv.port
    gw = start(make_gateway, rcv)
    sub = subscribe(gw, rcv)
    rcv.stop()
    ids = [create_referral(gw)["id"] for _ in range(2)]
    assert gw.stop() == 0
    back = Receiver(port=port).start()
    gw.start()
    events = back.wait_for(lambda: len(back.events(PATH)) >= 2 and back.events(PATH))
    assert [n.event_number() for n in events] == [1, 2]
    assert [n.focus()["focus"]["reference"] for n in events] == ["ServiceRequest/" + i for i in ids]
    assert gw.get("/fhir/Subscription/" + sub["id"]).json()["status"] == "active"
    back.stop()


def test_failing_endpoint_moves_the_subscription_to_error_then_back_to_active(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv, GATEWAY_SUBSCRIPTION_ERROR_AFTER="2",
               GATEWAY_SUBSCRIPTION_MAX_ATTEMPTS="3")
    sub = subscribe(gw, rcv)
    rcv.status = 500
    create_referral(gw)
    failed = wait_status(gw, sub["id"], "error")
    assert failed and "answered 500" in failed["error"]
    assert rcv.wait_for(lambda: metric(gw, "gateway_subscription_dead_letters", sub["id"]) == 1)
    assert len(rcv.events(PATH)) == 3  # three attempts, then the dead letter
    assert "given up after 3 attempts" in gw.get("/fhir/Subscription/" + sub["id"]).json()["error"]
    rcv.status = 200
    create_referral(gw)
    back = wait_status(gw, sub["id"], "active")
    assert back and "error" not in back
    assert rcv.events(PATH)[-1].event_number() == 2
    audit = gw.get("/fhir/AuditEvent?subtype=event-notification&outcome=8", cert="auditor").json()
    assert len(audit.get("entry", [])) == 1  # the dead letter
    rcv.stop()


def test_an_endpoint_the_gateway_cannot_trust_is_never_told(make_gateway):
    rcv = Receiver().start()
    # the endpoint's certificate must chain to this CA: the GP's certificate is not a CA
    gw = start(make_gateway, rcv, GATEWAY_SUBSCRIPTION_TLS_CA="certs/dev/gp.pem",
               GATEWAY_SUBSCRIPTION_ERROR_AFTER="1")
    r = gw.post("/fhir/Subscription", subscription(rcv.url()))
    assert r.status == 201
    failed = wait_status(gw, r.json()["id"], "error")
    assert failed and "not trusted" in failed["error"]
    assert rcv.on(PATH) == []
    rcv.stop()


def test_the_receiver_refuses_a_gateway_without_the_client_certificate(make_gateway):
    rcv = Receiver(ca="receiver.pem").start()  # trusts no CA that signed the gateway's certificate
    gw = start(make_gateway, rcv, GATEWAY_SUBSCRIPTION_ERROR_AFTER="1")
    r = gw.post("/fhir/Subscription", subscription(rcv.url()))
    assert wait_status(gw, r.json()["id"], "error")
    assert rcv.on(PATH) == [] and rcv.refused_handshakes >= 1
    rcv.stop()


def test_a_redirect_is_a_failure_and_is_not_followed(make_gateway):
    rcv = Receiver(status=307).start()
    gw = start(make_gateway, rcv, GATEWAY_SUBSCRIPTION_ERROR_AFTER="1")
    r = gw.post("/fhir/Subscription", subscription(rcv.url()))
    failed = wait_status(gw, r.json()["id"], "error")
    assert failed and "answered 307 (redirects are not followed)" in failed["error"]
    assert {n.path for n in rcv.received} == {PATH}
    rcv.stop()


def test_an_endpoint_taken_off_the_allow_list_is_no_longer_called(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv, GATEWAY_SUBSCRIPTION_ERROR_AFTER="1")
    sub = subscribe(gw, rcv)
    gw.stop()
    gw.env["GATEWAY_SUBSCRIPTION_ENDPOINTS"] = "https://127.0.0.1:%d/" % free_port()
    gw.start()
    create_referral(gw)
    failed = wait_status(gw, sub["id"], "error")
    assert failed and "allow-list" in failed["error"]
    assert rcv.events(PATH) == []  # checked again before the attempt: nothing was sent
    rcv.stop()


# ---------------------------------------------------------------- what may be subscribed


def test_endpoints_off_the_allow_list_are_refused_422(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv)
    other = free_port()
    for endpoint in ["https://127.0.0.1:%d/x" % other,            # another port
                     "https://localhost:%d/x" % rcv.port,         # another host name
                     "http://127.0.0.1:%d/x" % rcv.port,          # plain HTTP
                     "https://127.0.0.1:%d@evil.test/x" % rcv.port,
                     "https://evil.test/?https://127.0.0.1:%d/" % rcv.port]:
        r = gw.post("/fhir/Subscription", subscription(endpoint))
        assert r.status == 422, (endpoint, r)
        issue = r.json()["issue"][0]
        assert issue["expression"] == ["Subscription.channel.endpoint"], (endpoint, issue)
    for header in ["Host: evil.test", "Content-Length: 0", "Transfer-Encoding: chunked",
                   "X-Ok: a\r\nX-Injected: b", "Bad Name: x"]:
        r = gw.post("/fhir/Subscription", subscription(rcv.url(), headers=[header]))
        assert r.status == 422, (header, r)
    assert not gw.get("/fhir/Subscription").json().get("entry")
    rcv.stop()


def test_criteria_outside_what_search_offers_are_refused_422(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv)
    for criteria in ["Patient?name=dupre",             # not a watched type
                     "Observation",
                     "Task?foo=bar",                    # no such parameter
                     "Task?_sort=status",               # a result parameter
                     "Task?focus.identifier=x",         # a chain
                     "Task?status:contains=req",        # a modifier tokens do not take
                     "Task?authored-on=lundi",          # not a date
                     "Task?status="]:                   # no value
        r = gw.post("/fhir/Subscription", subscription(rcv.url(), criteria=criteria))
        assert r.status == 422, (criteria, r)
        assert r.json()["issue"][0]["expression"] == ["Subscription.criteria"], (criteria, r.json())
    for channel in [{"type": "websocket", "endpoint": rcv.url()},
                    {"type": "rest-hook", "endpoint": rcv.url(), "payload": "application/fhir+xml"}]:
        body = subscription(rcv.url())
        body["channel"] = channel
        assert gw.post("/fhir/Subscription", body).status == 422
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": subscription(rcv.url()), "request": {"method": "POST", "url": "Subscription"}}]}
    assert gw.post("/fhir", bundle).status == 422
    rcv.stop()


def test_criteria_match_as_search_does(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv)
    sub = subscribe(gw, rcv, criteria="Task?business-status=accepted,completed&status=accepted")
    sr = create_referral(gw)
    ris(gw, peer_mod.order_status(sr["id"], "OK"))
    events = rcv.wait_for(lambda: rcv.events(PATH))
    task = task_of(gw, sr["id"])
    assert len(events) == 1 and events[0].focus()["id"] == task["id"]
    search = gw.get("/fhir/Task?business-status=accepted,completed&status=accepted").json()
    assert [e["resource"]["id"] for e in search["entry"]] == [task["id"]]
    assert metric(gw, "gateway_subscription_deliveries_total", sub["id"], "delivered") == 2
    rcv.stop()


def test_a_gp_manages_its_own_subscriptions(make_gateway):
    rcv = Receiver().start()
    gw = start(make_gateway, rcv)
    sub = subscribe(gw, rcv)
    assert [e["resource"]["id"] for e in gw.get("/fhir/Subscription?status=active").json()["entry"]] \
        == [sub["id"]]
    current = gw.get("/fhir/Subscription/" + sub["id"]).json()
    changed = copy.deepcopy(current)
    changed["criteria"] = "Task?status=completed"
    r = gw.put("/fhir/Subscription/" + sub["id"], changed,
               headers={"If-Match": 'W/"%s"' % current["meta"]["versionId"]})
    assert r.status == 200 and r.json()["status"] == "active"  # same channel: no new handshake
    r = gw.put("/fhir/Subscription/" + sub["id"], changed, headers={"If-Match": 'W/"1"'})
    assert r.status == 412
    assert gw.put("/fhir/Subscription/" + sub["id"], changed, cert="gp2").status == 404
    changed = gw.get("/fhir/Subscription/" + sub["id"]).json()
    changed["channel"]["endpoint"] = rcv.url("/moved")
    r = gw.put("/fhir/Subscription/" + sub["id"], changed)
    assert r.status == 200 and r.json()["status"] == "requested"
    assert wait_status(gw, sub["id"], "active")
    assert rcv.on("/moved")[0].kind() == "handshake"
    assert gw.request("DELETE", "/fhir/Subscription/" + sub["id"], cert="gp2").status == 404
    assert gw.request("DELETE", "/fhir/Subscription/" + sub["id"]).status == 204
    assert gw.get("/fhir/Subscription/" + sub["id"]).status == 410
    create_referral(gw)
    time.sleep(0.5)
    assert rcv.events("/moved") == [] and rcv.events(PATH) == []
    cs = gw.get("/fhir/metadata", cert=None).json()
    entry = [r for r in cs["rest"][0]["resource"] if r["type"] == "Subscription"][0]
    assert {i["code"] for i in entry["interaction"]} == {
        "read", "vread", "history-instance", "search-type", "create", "update", "delete"}
    assert "criteria" in {p["name"] for p in entry["searchParam"]}
    assert "rest-hook" in entry["documentation"] and entry["conditionalCreate"] is False
    rcv.stop()
