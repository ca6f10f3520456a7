"""Online backup of the SQLite store: `fhir-gateway store backup FILE` copies a
consistent snapshot while the gateway serves and referrals keep coming."""

import os
import sqlite3
import threading

import pytest

from referrals import contained_referral

pytestmark = pytest.mark.sqlite_only("copies the SQLite file; on PostgreSQL, pg_dump (test_pg_store.py)")


def backup(gw, target, *extra):
    return gw.run_cli("store", "backup", target, "--store", "sqlite:" + gw.store_path, *extra)


class Referrer:
    """Threads that create referrals until stopped, keeping every acknowledged id."""

    def __init__(self, gw, n_threads=3):
        self.gw = gw
        self.lock = threading.Lock()
        self.acknowledged = []
        self.failures = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n_threads)]

    def run(self):
        while not self.stopping.is_set():
            r = self.gw.post("/fhir/ServiceRequest", contained_referral())
            with self.lock:
                if r.status == 201:
                    self.acknowledged.append(r.header("location").split("/")[-3])
                else:
                    self.failures.append(r)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def wait_for(self, n, timeout=120):
        done = threading.Event()
        for _ in range(timeout * 20):
            with self.lock:
                if len(self.acknowledged) >= n or self.failures:
                    done.set()
            if done.is_set():
                return
            self.stopping.wait(0.05)

    def snapshot(self):
        with self.lock:
            return list(self.acknowledged)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(120)


def test_backup_while_referrals_are_created_holds_every_acknowledged_one(gateway, workdir):
    referrer = Referrer(gateway).start()
    try:
        referrer.wait_for(30)
        copies = []
        for i in range(2):  # two copies, each taken while the threads keep writing
            before = referrer.snapshot()
            target = os.path.join(workdir, "copy-%d.db" % i)
            r = backup(gateway, target)
            copies.append((before, target, r))
            referrer.wait_for(len(before) + 10)
    finally:
        referrer.stop()
    assert not referrer.failures, referrer.failures[:3]
    for before, target, r in copies:
        assert r.returncode == 0, r.stderr
        assert b"backup written to " + target.encode() in r.stdout
        assert os.stat(target).st_mode & 0o077 == 0  # patient data: owner only
        assert not [f for f in os.listdir(workdir) if f.startswith(os.path.basename(target) + ".")]
        db = sqlite3.connect("file:%s?mode=ro" % target, uri=True)
        ids = {row[0] for row in db.execute(
            "SELECT id FROM resources WHERE type = 'ServiceRequest'")}
        assert len(before) >= 30 and set(before) <= ids, set(before) - ids
        # a consistent snapshot: every referral in the copy has its Task and its RIS order
        tasks = db.execute("SELECT count(*) FROM resources WHERE type = 'Task'").fetchone()[0]
        orders = {row[0] for row in db.execute(
            "SELECT ref_id FROM outbox WHERE ref_type = 'ServiceRequest'")}
        assert tasks == len(ids) and orders == ids
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        v = gateway.run_cli("audit", "verify", "--store", "sqlite:" + target)
        assert v.returncode == 0, v.stdout + v.stderr
        assert b"audit chain intact" in v.stdout
    audited = gateway.db().execute(
        "SELECT count(*) FROM audit WHERE json LIKE '%\"store-backup\"%'").fetchone()[0]
    assert audited == 2  # taking a copy of the store is an audited action


def test_backup_refuses_to_overwrite_unless_forced(gateway, workdir):
    assert gateway.post("/fhir/ServiceRequest", contained_referral()).status == 201
    target = os.path.join(workdir, "copy.db")
    with open(target, "wb") as f:
        f.write(b"keep me")
    r = backup(gateway, target)
    assert r.returncode == 2
    assert b"exists (--force replaces it)" in r.stderr
    with open(target, "rb") as f:
        assert f.read() == b"keep me"
    r = backup(gateway, target, "--force")
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(target)
    assert db.execute("SELECT count(*) FROM resources WHERE type = 'ServiceRequest'").fetchone()[0] == 1
    db.close()


def test_backup_errors_are_clear(gateway, workdir):
    cases = [
        (["store", "backup", os.path.join(workdir, "x.db"), "--store",
          "sqlite:" + os.path.join(workdir, "none.db")], 2, b"no store at"),
        (["store", "backup", gateway.store_path, "--store", "sqlite:" + gateway.store_path,
          "--force"], 2, b"is the store itself"),
        (["store", "backup", workdir, "--store", "sqlite:" + gateway.store_path], 2,
         b"is a folder"),
        (["store", "backup", os.path.join(workdir, "no", "such", "dir.db"), "--store",
          "sqlite:" + gateway.store_path], 1, b"cannot create a file beside"),
        (["store", "backup", "--store", "sqlite:" + gateway.store_path], 2, b"usage:"),
        (["store", "copy", "x.db"], 2, b"usage:"),
    ]
    for args, status, message in cases:
        r = gateway.run_cli(*args)
        assert r.returncode == status, (args, r.returncode, r.stderr)
        assert message in r.stderr, (args, r.stderr)
    assert not os.path.exists(os.path.join(workdir, "none.db"))
    assert sorted(f for f in os.listdir(workdir) if not f.startswith("gateway.db")) == []
