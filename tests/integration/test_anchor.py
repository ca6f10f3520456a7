"""Anchoring the audit chain: `audit verify` prints the last event's SEQ:HASH;
kept elsewhere and given back with --anchor, it shows what the chain alone
cannot: events cut from its end, or a chain rewritten and re-hashed whole."""

import hashlib
import re

from referrals import contained_referral


def verify(gw, *extra):
    return gw.audit_verify(*extra)


def anchor_of(r):
    m = re.search(rb"^anchor: (\d+:[0-9a-f]{64})$", r.stdout, re.M)
    assert m, r.stdout
    return m.group(1).decode()


def rehash_from(gw, first_seq):
    """Recomputes every hash from first_seq on (no HMAC key), as a forger would."""
    db = gw.db()
    prev = db.execute("SELECT hash FROM audit WHERE seq = ?", (first_seq - 1,)).fetchone()[0]
    rows = db.execute("SELECT seq, json FROM audit WHERE seq >= ? ORDER BY seq",
                      (first_seq,)).fetchall()
    db.close()
    statements = []
    for seq, text in rows:
        h = hashlib.sha256((prev + text).encode()).hexdigest()
        statements.append(("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?",
                           (prev, h, seq)))
        prev = h
    gw.tamper_audit(*statements)


def test_an_anchor_catches_a_cut_end_and_a_rewritten_chain(make_gateway):
    gw = make_gateway()
    for _ in range(3):
        assert gw.post("/fhir/ServiceRequest", contained_referral()).status == 201
    anchor = anchor_of(verify(gw))
    seq = int(anchor.split(":")[0])
    for _ in range(2):
        assert gw.post("/fhir/ServiceRequest", contained_referral()).status == 201
    gw.stop()
    r = verify(gw, "--anchor", anchor)
    assert r.returncode == 0, r.stdout + r.stderr
    assert anchor_of(r) != anchor  # the chain went on; the new last event is the next anchor

    # events cut from the end: the chain alone still verifies, the anchor does not
    gw.tamper_audit(("DELETE FROM audit WHERE seq >= ?", (seq,)))
    r = verify(gw, "--anchor", anchor)
    assert r.returncode == 1
    assert b"anchored event %d is gone" % seq in r.stdout and b"cut" in r.stdout
    assert verify(gw).returncode == 0


def test_an_anchor_catches_a_chain_rewritten_and_rehashed(make_gateway):
    gw = make_gateway()
    for _ in range(3):
        assert gw.post("/fhir/ServiceRequest", contained_referral()).status == 201
    anchor = anchor_of(verify(gw))
    seq = int(anchor.split(":")[0])
    gw.stop()
    db = gw.db()
    text = db.execute("SELECT json FROM audit WHERE seq = 2").fetchone()[0]
    db.close()
    gw.tamper_audit(("UPDATE audit SET json = ? WHERE seq = 2",
                     (text.replace('"outcome":"0"', '"outcome":"4"'),)))
    rehash_from(gw, 2)
    assert verify(gw).returncode == 0  # without a key, a forger can re-hash a whole chain
    r = verify(gw, "--anchor", anchor)
    assert r.returncode == 1
    assert b"(sequence %d)" % seq in r.stdout and b"rewritten" in r.stdout


def test_a_malformed_anchor_is_refused(gateway):
    for bad in ["12", "x:" + "a" * 64, "3:" + "A" * 64, "3:abc", "0:" + "a" * 64]:
        r = gateway.audit_verify("--anchor", bad)
        assert r.returncode == 2, bad
        assert b"--anchor takes SEQ:HASH" in r.stderr
