"""Issue 10: a pull's orders are leased, and a batch of ACKs settled, as sets. A
batch longer than one set (64), with an order acknowledged twice, another site's
order and an unknown control id, settles exactly what n single ACKs would, and
every order stays an entity of the pull's and of the ACKs' AuditEvents."""

import re
import time

import mllp_peer as peer_mod
from mllp_peer import Message, split_batch
from referrals import contained_referral

HL7 = "application/hl7-v2"
N = 70  # more than one set of 64


def matches(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def ack_batch(acks):
    return "BHS|^~\\&\r" + "".join(acks) + "BTS|%d\r" % len(acks)


def post_acks(gw, acks, cert="ris"):
    r = gw.post("/ris/acks", ack_batch(acks), cert=cert, content_type=HL7)
    assert r.status == 200, r
    return {Message(m.text).get("MSA", 2): m.get("MSA", 1) for m in split_batch(r.body)}


def acked(gw):
    text = gw.get("/metrics", cert=None).body.decode()
    m = re.search(r'^gateway_ris_deliveries_total\{[^}]*result="acked"[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0


def test_a_batch_of_acks_settles_each_order_once_and_audits_every_one(make_gateway):
    gw = make_gateway(env={"GATEWAY_LEASE_S": "1"})
    ids = []
    for _ in range(N):
        r = gw.post("/fhir/ServiceRequest", contained_referral())
        assert r.status == 201, r
        ids.append(r.json()["id"])
    r = gw.get("/ris/orders?max=100", cert="ris")
    assert r.status == 200, r
    orders = split_batch(r.body)
    assert [m.get("ORC", 2) for m in orders] == ids  # each leased once, in order
    assert split_batch(gw.get("/ris/orders?max=100", cert="ris").body) == []

    # another site's client: these orders are not its own, nothing settles
    foreign = [peer_mod.ack_for(orders[0])]
    assert list(post_acks(gw, foreign, cert="ris-drouot").values()) == ["AE"]

    acks = [peer_mod.ack_for(m) for m in orders]
    acks.insert(2, peer_mod.ack_for(orders[0]))  # twice in one set
    acks.append(peer_mod.ack_for(orders[1]))  # and again in the next set
    unknown = Message(peer_mod.order_status("x", "OK", control_id="NOT-OURS-7"))
    acks.append(peer_mod.ack_for(unknown))
    answers = post_acks(gw, acks)
    codes = [answers[Message(a).control_id] for a in acks]
    assert codes == ["AA"] * (N + 2) + ["AE"]
    assert acked(gw) == N  # a twice-acknowledged order is delivered once

    time.sleep(1.3)  # past the lease: acknowledged orders are never offered again
    assert split_batch(gw.get("/ris/orders?max=100", cert="ris").body) == []

    for i in (0, 1, 63, 64, N - 1):  # both sides of the set boundary
        events = matches(gw.get("/fhir/AuditEvent?entity=ServiceRequest/%s&_count=50" % ids[i],
                                cert="auditor").json())
        kinds = sorted(e["subtype"][0]["code"] for e in events if e["type"]["code"] != "rest")
        assert "ACK" in kinds and any(k.startswith("OMI") for k in kinds), (i, kinds)
        named = matches(gw.get("/fhir/AuditEvent?entity-name:exact=" + orders[i].control_id,
                               cert="auditor").json())
        assert len(named) >= 2, i  # the pull's and the ACK's
    verify = gw.post("/fhir/AuditEvent/$verify", None, cert="auditor")
    assert verify.status == 200, verify
    intact = [p for p in verify.json()["parameter"] if p["name"] == "intact"]
    assert intact[0]["valueBoolean"] is True
