"""Issue 12 (SQLite faults): a full disk under the store. /readyz answers 503 with the
reason while writes fail (not `store: ok`), writes answer 503 with Retry-After, nothing
acknowledged is lost and nothing refused appears, and once space returns the gateway is
ready and writes again without a restart.

The disk is a small tmpfs mounted for the test (root with CAP_SYS_ADMIN, as in CI); root
ignores file permissions, so filling a real filesystem is the fault that works as root."""

import errno
import os
import sqlite3
import subprocess
import time

import pytest

from referrals import PLACER, contained_referral

# a full disk under the SQLite file; the database going away is in test_ha.py
pytestmark = pytest.mark.sqlite_only("a full disk under the SQLite file")

DISK_KB = 16 * 1024


@pytest.fixture
def small_disk(workdir):
    path = os.path.join(workdir, "disk")
    os.mkdir(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0700" % DISK_KB, "tmpfs",
                        path], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN): "
                    + r.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def fill(path):
    """Takes every free byte of the filesystem; returns the filler's path."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)
    st = os.statvfs(path)
    assert st.f_bavail == 0, "the disk still has room"
    return filler


def truncate_wal(store):
    """Copies the WAL into the database and cuts its file to nothing, so that no commit
    can reuse space the WAL file already holds (an idle gateway lets the checkpoint through)."""
    db = sqlite3.connect(store, timeout=10)
    try:
        for _ in range(50):
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0 and os.path.getsize(store + "-wal") == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the WAL could not be truncated")
    finally:
        db.close()


def referral(placer):
    return contained_referral(identifier=placer)


def found(gw, placer):
    r = gw.get("/fhir/ServiceRequest?identifier=%s|%s" % (PLACER, placer))
    assert r.status == 200, r
    return [e["resource"]["id"] for e in r.json().get("entry", [])]


def wait_ready(gw, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = gw.get("/readyz", cert=None)
        if r.status == 200:
            return r
        time.sleep(0.2)
    return r


def test_full_disk_fails_readiness_and_writes_then_recovers_without_restart(small_disk,
                                                                            make_gateway):
    store = os.path.join(small_disk, "gateway.db")
    gw = make_gateway(store=store)
    ready = gw.get("/readyz", cert=None)
    assert ready.status == 200 and b"store: ok" in ready.body, ready

    acked = {}  # placer -> id of every referral answered 201
    for i in range(5):
        r = gw.post("/fhir/ServiceRequest", referral("before-%d" % i))
        assert r.status == 201, r
        acked["before-%d" % i] = r.json()["id"]

    truncate_wal(store)  # no room left in the WAL file either: every commit needs new bytes
    filler = fill(small_disk)
    refused = []
    for i in range(60):  # the WAL still has room for a few commits: write until it has not
        placer = "during-%d" % i
        r = gw.post("/fhir/ServiceRequest", referral(placer))
        if r.status == 201:
            acked[placer] = r.json()["id"]
            continue
        assert r.status == 503, r
        assert r.header("Retry-After") and int(r.header("Retry-After")) > 0, r.headers
        oo = r.json()
        assert oo["resourceType"] == "OperationOutcome"
        assert oo["issue"][0]["code"] == "transient"
        refused.append(placer)
        if len(refused) == 3:
            break
    assert refused, "no write failed on a full disk"

    ready = gw.get("/readyz", cert=None)
    assert ready.status == 503, ready
    assert b"store: writes fail since" in ready.body, ready.body
    assert b"full" in ready.body, ready.body  # SQLite: "database or disk is full"
    assert ready.header("Retry-After"), ready.headers
    assert gw.wait_for_log("store-writes-failing")
    # A read is audited, and an unaudited access is no access: 503 too, never a guess.
    r = gw.get("/fhir/ServiceRequest/" + acked["before-0"])
    assert r.status == 503 and r.header("Retry-After"), r

    os.unlink(filler)  # space is back; no request writes: /readyz finds out by itself
    ready = wait_ready(gw)
    assert ready.status == 200 and b"store: ok" in ready.body, ready.body
    assert gw.wait_for_log("store-writes-recovered")
    r = gw.post("/fhir/ServiceRequest", referral("after"))
    assert r.status == 201, r
    acked["after"] = r.json()["id"]

    for placer, rid in acked.items():
        assert found(gw, placer) == [rid], placer
    for placer in refused:
        assert found(gw, placer) == [], "a refused referral was stored: " + placer

    gw.restart()  # and it is all on disk
    for placer, rid in acked.items():
        assert found(gw, placer) == [rid], placer
    verify = gw.run_cli("audit", "verify", "--store", "sqlite:" + store)
    assert verify.returncode == 0, verify.stdout + verify.stderr
