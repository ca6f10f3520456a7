"""Issue 16, part 2: one RIS cannot suppress another site's messages. Inbound
duplicate detection is keyed on the authenticated client (certificate over HTTPS,
the configured identity of an MLLP peer) with MSH-3^MSH-4 and MSH-10, and the
sending facility (MSH-4) must be one of the client's own sites. The two scenarios
of the issue, over HTTPS and over MLLP (peers told apart by their loopback
address: 127.0.0.2 speaks as ris-bachaumont, 127.0.0.3 as a Drouot-only peer)."""

import socket

import mllp_peer as peer
from mllp_peer import Message
from referrals import contained_referral

HL7 = "application/hl7-v2"
DROUOT = {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000109"}
MLLP_PEERS = [{"address": "127.0.0.2", "client": "ris-bachaumont"},
              {"address": "127.0.0.3", "name": "drouot-mllp", "sites": ["drouot"]}]


def referral(gw, site=None):
    body = contained_referral()
    if site == "drouot":
        body["performer"] = [{"identifier": DROUOT}]
    r = gw.post("/fhir/ServiceRequest", body)
    assert r.status == 201, r
    return r.json()["id"]


def business(gw, sr_id):
    r = gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id)
    return r.json()["entry"][0]["resource"]["businessStatus"]["coding"][0]["code"]


def status_message(sr_id, control, control_id, facility):
    text = peer.order_status(sr_id, control, control_id=control_id)
    return text.replace("|RIS|BACHAUMONT|", "|RIS|%s|" % facility, 1)


def over_https(gw, cert):
    def send(text):
        r = gw.post("/ris/messages", text, cert=cert, content_type=HL7)
        assert r.status == 200, r
        return Message(r.body)
    return send


def over_mllp(gw, source):
    def send(text):
        with socket.create_connection(("127.0.0.1", gw.mllp_port), timeout=10,
                                      source_address=(source, 0)) as s:
            s.sendall(peer.frame(text))
            data = peer.read_frame(s, 10)
        assert data is not None, "the peer got no ACK"
        return Message(data)
    return send


def suppression_is_impossible(gw, as_bachaumont, as_drouot, tag):
    mine, theirs = referral(gw), referral(gw, "drouot")
    # RIS B speaks as Drouot about its own order: refused, nothing recorded for Drouot.
    forged = as_bachaumont(status_message(mine, "OK", tag + "-200", "DROUOT"))
    assert forged.get("MSA", 1) == "AR", forged.text
    assert forged.get("ERR", 3, 1) == "103" and forged.get("ERR", 2, 3) == "4", forged.text
    assert "DROUOT" in forged.get("ERR", 8) and "MSH-4" in forged.get("ERR", 8)
    assert business(gw, mine) == "received", "a refused message changes nothing"
    # RIS D's real cancellation with the same control id is applied.
    real = as_drouot(status_message(theirs, "CA", tag + "-200", "DROUOT"))
    assert real.get("MSA", 1) == "AA" and real.get("MSA", 2) == tag + "-200", real.text
    assert business(gw, theirs) == "cancelled"
    # RIS D's resend gets its own recorded ACK.
    assert as_drouot(status_message(theirs, "CA", tag + "-200", "DROUOT")).text == real.text


def replay_gets_no_one_elses_ack(gw, as_bachaumont, as_drouot, tag):
    theirs = referral(gw, "drouot")
    first = as_drouot(status_message(theirs, "OK", tag + "-300", "DROUOT"))
    assert first.get("MSA", 1) == "AA"
    replay = as_bachaumont(status_message(theirs, "OK", tag + "-300", "DROUOT"))
    assert replay.text != first.text and replay.control_id != first.control_id
    assert replay.get("MSA", 1) == "AR", replay.text


def test_https_client_cannot_suppress_or_replay_another_sites_messages(gateway):
    suppression_is_impossible(gateway, over_https(gateway, "ris-bachaumont"),
                              over_https(gateway, "ris-drouot"), "H")
    replay_gets_no_one_elses_ack(gateway, over_https(gateway, "ris-bachaumont"),
                                 over_https(gateway, "ris-drouot"), "H")
    # A client serving both sites replays Drouot's message: a fresh answer, not Drouot's.
    theirs = referral(gateway, "drouot")
    text = status_message(theirs, "OK", "H-400", "DROUOT")
    first = over_https(gateway, "ris-drouot")(text)
    again = over_https(gateway, "ris")(text)
    assert again.get("MSA", 1) == "AA" and again.control_id != first.control_id


def test_mllp_peers_speak_as_their_configured_identity(make_gateway):
    gw = make_gateway(config={"mllp_peers": MLLP_PEERS})
    suppression_is_impossible(gw, over_mllp(gw, "127.0.0.2"), over_mllp(gw, "127.0.0.3"), "M")
    replay_gets_no_one_elses_ack(gw, over_mllp(gw, "127.0.0.2"), over_mllp(gw, "127.0.0.3"), "M")
    # The same identity over a new connection (another source port) is still deduplicated.
    theirs = referral(gw, "drouot")
    text = status_message(theirs, "OK", "M-500", "DROUOT")
    assert over_mllp(gw, "127.0.0.3")(text).text == over_mllp(gw, "127.0.0.3")(text).text
    refused = gw.get("/fhir/AuditEvent?outcome=4&agent=ris-bachaumont", cert="auditor").json()
    assert any("MSH-4" in e["resource"].get("outcomeDesc", "") for e in refused.get("entry", [])), \
        "the refusal is audited under the peer's identity"


def test_mllp_peer_rows_are_checked_at_start(workdir):
    from conftest import Gateway
    for bad in ([{"address": "127.0.0.2", "client": "gp"}],
                [{"address": "127.0.0.2", "name": "x", "sites": ["nowhere"]}],
                [{"address": "ris.example", "client": "ris"}],
                [{"address": "127.0.0.2"}]):
        gw = Gateway(workdir, config={"mllp_peers": bad})
        try:
            gw.start()
        except RuntimeError as e:
            assert "mllp_peers" in str(e), e
        else:
            gw.stop()
            raise AssertionError("started with mllp_peers %r" % bad)
