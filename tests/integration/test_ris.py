"""Issue: the RIS side. Orders made from referrals (OMI^O23, ORM^O01) pulled with
leases and ACKs or pushed over MLLP to a test RIS; status, appointments and
reports coming back over HTTP and MLLP; the GP reading Task, Appointment and
DiagnosticReport; dead letters, redelivery, ordering, metrics."""

import copy
import json
import re
import time
import urllib.parse

import mllp_peer as peer_mod
from mllp_peer import Message, Peer, batch_trailer_counts, split_batch
from referrals import PATIENT, contained_referral

HL7 = "application/hl7-v2"
DROUOT = {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000109"}
FAST_PUSH = {"push_backoff_min_ms": 100, "push_backoff_max_ms": 400, "push_ack_timeout_ms": 600}


def sites(push_port=None):
    """The two Paris sites; bachaumont pushes to the test RIS when push_port is given."""
    base = {"sending_app": "FHIRGW", "sending_facility": "FHIRGW", "receiving_app": "RIS",
            "org_system": "urn:oid:1.2.250.1.71.4.2.2"}
    bach = dict(base, id="bachaumont", name="Bachaumont Radiology", org_value="750000102",
                receiving_facility="BACHAUMONT", message_type="OMI^O23", delivery="pull")
    if push_port:
        bach.update(delivery="push", push_host="127.0.0.1", push_port=push_port)
    drouot = dict(base, id="drouot", name="Clinique Drouot", org_value="750000109",
                  receiving_facility="DROUOT", message_type="ORM^O01", delivery="pull")
    return [bach, drouot]


def create(gw, body=None):
    r = gw.post("/fhir/ServiceRequest", body or contained_referral())
    assert r.status == 201, r
    return r.json()


def pull(gw, n=10):
    r = gw.get("/ris/orders?max=%d" % n, cert="ris")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith(HL7)
    return r, split_batch(r.body)


def post_hl7(gw, path, text):
    r = gw.post(path, text, cert="ris", content_type=HL7)
    assert r.status == 200, r
    return r


def ack(gw, msg, code="AA", text=None):
    """Posts the ACK of msg; returns the gateway's answer (MSA-2 = our ACK's MSH-10)."""
    sent = peer_mod.ack_for(msg, code, text)
    r = post_hl7(gw, "/ris/acks", sent)
    answer = Message(r.body)
    assert answer.get("MSA", 2) == Message(sent).control_id
    return answer


def task_of(gw, sr_id, cert="gp"):
    r = gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id, cert=cert)
    assert r.status == 200, r
    entries = r.json().get("entry", [])
    assert len(entries) == 1, r.json()
    return entries[0]["resource"]


def business(task):
    return task["businessStatus"]["coding"][0]["code"]


def search(gw, type_, sr_id, cert="gp"):
    r = gw.get("/fhir/%s?based-on=ServiceRequest/%s" % (type_, sr_id), cert=cert)
    assert r.status == 200, r
    return [e["resource"] for e in r.json().get("entry", [])]


def metric(gw, name, site):
    text = gw.get("/metrics", cert=None).body.decode()
    m = re.search(r'^%s\{[^}]*site="%s"[^}]*\} (\S+)$' % (name, site), text, re.M)
    return float(m.group(1)) if m else None


def wait_until(fn, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    return fn()


# ---------------------------------------------------------------- orders


def test_pulled_order_is_an_omi_batch_with_the_referral_in_it(gateway):
    body = contained_referral()
    body["note"] = [{"text": "Pipes | carets ^ tildes ~ backslash \\ amp & — end"}]
    sr = create(gateway, body)
    r, msgs = pull(gateway)
    assert r.body.startswith(b"FHS|") and b"\rBHS|" in r.body
    assert batch_trailer_counts(r.body) == {"BTS": "1", "FTS": "1"}
    assert len(msgs) == 1
    m = msgs[0]
    assert m.type == "OMI^O23" and m.get("MSH", 12) == "2.5.1"
    assert m.get("MSH", 18) == "UNICODE UTF-8"
    assert m.get("MSH", 5) == "RIS" and m.get("MSH", 6) == "BACHAUMONT"
    assert m.names()[:6] == ["MSH", "PID", "PV1", "ORC", "TQ1", "OBR"]
    assert m.names()[-1] == "IPC"
    assert m.get("PID", 5, 1) == "Dupré" and m.get("PID", 5, 2) == "Hélène"
    assert m.get("PID", 3, 1) == PATIENT["identifier"][0]["value"]
    assert m.get("PID", 3, 4, 1) == "INS-NIR" and m.get("PID", 3, 4, 2) == "1.2.250.1.213.1.4.8"
    assert m.get("PID", 3, 5) == "INS" and m.get("PID", 7) == "19830527" and m.get("PID", 8) == "F"
    assert m.get("ORC", 1) == "NW"
    assert m.get("ORC", 2, 1) == sr["id"] and m.get("ORC", 2, 2) == "FHIRGW"
    assert m.get("ORC", 12, 1) == "10003456789" and m.get("ORC", 12, 9, 1) == "RPPS"
    assert m.get("OBR", 4, 3) in ("CCAM", "C4") and m.get("OBR", 4, 1)
    assert m.get("TQ1", 9) == "R"
    assert m.get("IPC", 1) == sr["id"] and m.get("IPC", 3).startswith("2.25.")
    assert m.get("IPC", 5) in ("XA", "CT")
    notes = [m.get("NTE", 3, occurrence=i) for i in range(len(m.all("NTE")))]
    assert body["note"][0]["text"] in notes
    dg1 = m.get("DG1", 3, 1), m.get("DG1", 3, 3), m.get("DG1", 6)
    assert dg1 == ("M54.4", "I10", "W")


def test_drouot_gets_an_orm_o01_in_v2_3_1(gateway):
    body = contained_referral()
    body["performer"] = [{"identifier": DROUOT}]
    sr = create(gateway, body)
    _, msgs = pull(gateway)
    m = [x for x in msgs if x.get("ORC", 2) == sr["id"]][0]
    assert m.type == "ORM^O01" and m.get("MSH", 12) == "2.3.1" and m.get("MSH", 6) == "DROUOT"
    assert "TQ1" not in m.names() and "IPC" not in m.names() and m.names()[-1] == "ZDS"
    assert m.get("ZDS", 1, 1).startswith("2.25.")
    assert m.get("OBR", 18) == sr["id"]


def test_ack_settles_and_lease_expiry_redelivers_exactly_the_unacked(make_gateway):
    gw = make_gateway(env={"GATEWAY_LEASE_S": "1"})
    ids = [create(gw)["id"] for _ in range(3)]
    _, first = pull(gw)
    assert [m.get("ORC", 2) for m in first] == ids
    for m in first[:2]:
        answer = ack(gw, m)
        assert answer.get("MSA", 1) == "AA"
    assert pull(gw)[1] == []  # the third is still leased
    time.sleep(1.3)
    _, again = pull(gw)
    assert [m.control_id for m in again] == [first[2].control_id]
    assert again[0].text == first[2].text  # the same bytes, the same control id


def test_refused_order_is_a_dead_letter_on_the_task_and_in_metrics(gateway):
    sr = create(gateway)
    _, msgs = pull(gateway)
    answer = ack(gateway, msgs[0], "AR", "unknown procedure code")
    assert answer.get("MSA", 1) == "AA"
    task = task_of(gateway, sr["id"])
    assert task["status"] == "failed" and business(task) == "delivery-failed"
    assert "unknown procedure code" in task["statusReason"]["text"]
    assert pull(gateway)[1] == []  # never offered again
    assert metric(gateway, "gateway_outbox_dead_letters", "bachaumont") == 1
    assert metric(gateway, "gateway_outbox_depth", "bachaumont") == 0


def test_ack_for_an_unknown_control_id_is_answered_ae(gateway):
    fake = Message(peer_mod.order_status("x", "OK", control_id="NOT-OURS-1"))
    answer = ack(gateway, fake)
    assert answer.get("MSA", 1) == "AE"
    assert "NOT-OURS-1" in answer.get("ERR", 8)


def test_malformed_ack_body_is_400(gateway):
    r = gateway.post("/ris/acks", "BHS|^~\\&\rMSH|^~\\&|x\rBTS|7\r", cert="ris", content_type=HL7)
    assert r.status == 400
    assert r.json()["resourceType"] == "OperationOutcome"


def test_revoking_a_referral_sends_ca_after_the_nw(gateway):
    sr = create(gateway)
    _, msgs = pull(gateway)
    assert msgs[0].get("ORC", 1) == "NW"
    revoked = copy.deepcopy(sr)
    revoked["status"] = "revoked"
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], revoked,
                    headers={"If-Match": 'W/"%s"' % sr["meta"]["versionId"]})
    assert r.status == 200, r
    assert pull(gateway)[1] == []  # the CA waits for the NW to be settled
    ack(gateway, msgs[0])
    _, after = pull(gateway)
    assert len(after) == 1 and after[0].get("ORC", 1) == "CA"
    assert after[0].get("ORC", 2) == sr["id"] and after[0].control_id != msgs[0].control_id
    assert task_of(gateway, sr["id"])["status"] == "cancelled"


def test_amending_a_referral_sends_xo_with_the_new_content(gateway):
    sr = create(gateway)
    _, msgs = pull(gateway)
    ack(gateway, msgs[0])
    amended = copy.deepcopy(sr)
    amended["priority"] = "urgent"
    amended["note"] = [{"text": "Douleur aggravée | à voir vite"}]
    r = gateway.put("/fhir/ServiceRequest/" + sr["id"], amended,
                    headers={"If-Match": 'W/"%s"' % sr["meta"]["versionId"]})
    assert r.status == 200, r
    _, after = pull(gateway)
    assert len(after) == 1 and after[0].get("ORC", 1) == "XO"
    assert after[0].get("ORC", 2) == sr["id"]
    notes = [after[0].get("NTE", 3, occurrence=i) for i in range(len(after[0].all("NTE")))]
    assert "Douleur aggravée | à voir vite" in notes, notes
    assert after[0].get("TQ1", 9) == "A"  # urgent: as soon as possible (HL7 table 0485)
    assert task_of(gateway, sr["id"])["status"] == "requested"


def test_metrics_show_outbox_depth_and_age(gateway):
    for _ in range(2):
        create(gateway)
    assert metric(gateway, "gateway_outbox_depth", "bachaumont") == 2
    assert metric(gateway, "gateway_outbox_oldest_pending_seconds", "bachaumont") >= 0
    assert metric(gateway, "gateway_outbox_dead_letters", "drouot") == 0


# ---------------------------------------------------------------- inbound


def full_loop(gw, send):
    """referral -> pulled order -> ACK -> OK, SC -> SIU -> ORU; send(text) -> ACK Message."""
    sr = create(gw)
    _, msgs = pull(gw)
    ack(gw, msgs[0])
    assert send(peer_mod.order_status(sr["id"], "OK", filler="F-77")).get("MSA", 1) == "AA"
    assert business(task_of(gw, sr["id"])) == "accepted"
    assert send(peer_mod.order_status(sr["id"], "SC", "SC", filler="F-77")).get("MSA", 1) == "AA"
    assert business(task_of(gw, sr["id"])) == "scheduled"
    assert send(peer_mod.siu(sr["id"], start="202612031430", minutes=45)).get("MSA", 1) == "AA"
    report = ["Infiltration L5-S1 gauche sous scopie.", "Pas de complication | suivi à J15."]
    assert send(peer_mod.oru(sr["id"], report, filler="F-77")).get("MSA", 1) == "AA"
    task = task_of(gw, sr["id"])
    assert task["status"] == "completed" and business(task) == "reported"
    appointments = search(gw, "Appointment", sr["id"])
    assert len(appointments) == 1
    appt = appointments[0]
    assert appt["status"] == "booked" and appt["minutesDuration"] == 45
    assert appt["start"] == "2026-12-03T13:30:00.000Z"  # Paris winter time, UTC+1
    reports = search(gw, "DiagnosticReport", sr["id"])
    assert len(reports) == 1 and reports[0]["status"] == "final"
    assert reports[0]["conclusion"] == "\n".join(report)
    outputs = {o["valueReference"]["reference"] for o in task["output"]}
    assert outputs == {"Appointment/" + appt["id"], "DiagnosticReport/" + reports[0]["id"]}
    stored = gw.get("/fhir/ServiceRequest/" + sr["id"]).json()
    assert stored["status"] == "completed"
    assert any(i["value"] == "F-77" and i["type"]["coding"][0]["code"] == "FILL"
               for i in stored["identifier"])
    return sr


def test_full_loop_over_http(gateway):
    full_loop(gateway, lambda text: Message(post_hl7(gateway, "/ris/messages", text).body))


def test_full_loop_over_mllp(gateway):
    assert gateway.mllp_port
    full_loop(gateway, lambda text: peer_mod.send("127.0.0.1", gateway.mllp_port, text))


def test_the_same_message_twice_gets_the_same_ack_and_one_effect(gateway):
    sr = create(gateway)
    text = peer_mod.siu(sr["id"], control_id="SIU-TWICE-1")
    first = peer_mod.send("127.0.0.1", gateway.mllp_port, text)
    second = peer_mod.send("127.0.0.1", gateway.mllp_port, text)  # a new connection
    assert first.text == second.text and first.get("MSA", 1) == "AA"
    # Duplicates are per client: the HTTPS client is another identity than the
    # loopback MLLP peer, and its own repeat gets its own first answer.
    third = Message(post_hl7(gateway, "/ris/messages", text).body)
    fourth = Message(post_hl7(gateway, "/ris/messages", text).body)
    assert third.text == fourth.text and third.get("MSA", 1) == "AA"
    assert len(search(gateway, "Appointment", sr["id"])) == 1


def test_unknown_order_is_answered_ae_with_the_reason(gateway):
    answer = peer_mod.send("127.0.0.1", gateway.mllp_port,
                           peer_mod.order_status("no-such-order", "SC", "SC"))
    assert answer.get("MSA", 1) == "AE"
    assert answer.get("ERR", 3, 1) == "204" and "no-such-order" in answer.get("ERR", 8)


def test_garbage_frames_get_ar_and_the_listener_survives(gateway):
    answer = peer_mod.send("127.0.0.1", gateway.mllp_port, "this is not HL7")
    assert answer.get("MSA", 1) == "AR"
    sr = create(gateway)
    ok = peer_mod.send("127.0.0.1", gateway.mllp_port, peer_mod.order_status(sr["id"], "OK"))
    assert ok.get("MSA", 1) == "AA"


# ---------------------------------------------------------------- push


def push_gateway(make_gateway, peer, **extra):
    config = dict(FAST_PUSH, sites=sites(peer.port), **extra)
    return make_gateway(config=config)


def test_push_delivers_in_order_and_acks(make_gateway):
    peer = Peer().start()
    gw = push_gateway(make_gateway, peer)
    ids = [create(gw)["id"] for _ in range(3)]
    assert peer.wait_for(3)
    assert [m.get("ORC", 2) for m in peer.received] == ids
    assert wait_until(lambda: metric(gw, "gateway_outbox_depth", "bachaumont") == 0)
    assert pull(gw)[1] == []  # a push site's orders are never pulled
    peer.stop()


def test_push_refusal_is_a_dead_letter_on_the_task(make_gateway):
    peer = Peer(default="AR").start()
    gw = push_gateway(make_gateway, peer)
    sr = create(gw)
    task = wait_until(lambda: (lambda t: t if business(t) == "delivery-failed" else None)(
        task_of(gw, sr["id"])))
    assert task and task["status"] == "failed"
    assert metric(gw, "gateway_outbox_dead_letters", "bachaumont") == 1
    assert len(peer.received) == 1  # not retried
    peer.stop()


def test_push_retries_a_stalled_or_cut_exchange_with_the_same_control_id(make_gateway):
    peer = Peer().start()
    peer.script = ["stall", "disconnect"]
    gw = push_gateway(make_gateway, peer)
    sr = create(gw)
    assert peer.wait_for(3)
    ids = peer.control_ids()[:3]
    assert len(set(ids)) == 1 and peer.received[0].get("ORC", 2) == sr["id"]
    assert wait_until(lambda: metric(gw, "gateway_outbox_depth", "bachaumont") == 0)
    assert wait_until(lambda: metric(gw, "gateway_ris_retries_total", "bachaumont") == 2)
    peer.stop()


def test_push_survives_the_peer_down_and_delivers_everything_in_order(make_gateway):
    peer = Peer().start()
    port = peer.port
    peer.stop()
    gw = push_gateway(make_gateway, peer)
    ids = [create(gw)["id"] for _ in range(4)]
    time.sleep(1.5)  # several refused connections and backoffs
    assert metric(gw, "gateway_outbox_depth", "bachaumont") == 4
    back = Peer(port=port).start()
    assert back.wait_for(4)
    assert wait_until(lambda: metric(gw, "gateway_outbox_depth", "bachaumont") == 0)
    firsts = []
    for m in back.received:
        if m.get("ORC", 2) not in firsts:
            firsts.append(m.get("ORC", 2))
    assert firsts == ids
    back.stop()


def test_audit_trail_names_exchanged_messages(gateway):
    sr = create(gateway)
    _, msgs = pull(gateway)
    ack(gateway, msgs[0])
    r = gateway.get("/fhir/AuditEvent?subtype=" + urllib.parse.quote("OMI^O23"), cert="auditor")
    assert r.status == 200
    text = json.dumps(r.json())
    assert msgs[0].control_id in text
    assert "ServiceRequest/" + sr["id"] in text
    r = gateway.get("/fhir/AuditEvent?subtype=ACK", cert="auditor")
    assert msgs[0].control_id in json.dumps(r.json())


def test_mllp_peers_outside_the_allow_list_are_refused_and_audited(make_gateway):
    gw = make_gateway(env={"GATEWAY_MLLP_ALLOW": "10.9.9.9"})
    sr = create(gw)
    try:
        answer = peer_mod.send("127.0.0.1", gw.mllp_port, peer_mod.order_status(sr["id"], "OK"),
                               timeout=3)
    except (ConnectionError, OSError, ValueError, AssertionError):
        answer = None
    assert answer is None, "a refused peer gets no ACK"
    assert gw.wait_for_log("mllp-peer-refused")
    assert business(task_of(gw, sr["id"])) == "received", "nothing was applied"
    gw.stop()  # refusals without an identity are counted, and recorded at the latest by the stop
    rows = [json.loads(t) for (t,) in gw.db().execute("SELECT json FROM audit")]
    refused = [e for e in rows if e["type"]["code"] == "110113" and e["outcome"] == "4"]
    assert len(refused) == 1 and refused[0]["agent"][0]["network"]["address"] == "127.0.0.1"
    assert [d["valueString"] for d in refused[0]["entity"][-1]["detail"]][0] == "1"
