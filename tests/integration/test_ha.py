"""Issue 12: several gateway instances on one PostgreSQL database. Two instances (gw-1,
gw-2: their own instance_id, the same audit HMAC key) serve the same store: conditional
creates race-free across them, one instance killed under load with nothing acknowledged
lost, RIS pulls spread over both, the MLLP push taken over when its holder dies, the
database stopped and restarted under load, a start before the database, SIGHUP and
/readyz per instance, and the audit table append-only in the database itself."""

import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import REPO, Gateway
from mllp_peer import Peer, split_batch
from referrals import PLACER, contained_referral
from test_ris import FAST_PUSH, ack, business, sites

HMAC_KEY = "ha-chain-secret"
PUSH_LEASE_S = 3


def instance(workdir, url, name, config=None, env=None):
    """A gateway named name on the store url (not started), in its own folder."""
    folder = os.path.join(workdir, name)
    os.makedirs(folder, exist_ok=True)
    conf = dict(config or {}, instance_id=name)
    # the key in the environment: the command-line checks (audit verify) need it too
    return Gateway(folder, store=url, config=conf, env=dict(env or {}, GATEWAY_AUDIT_HMAC_KEY=HMAC_KEY))


@pytest.fixture
def ha_url(pg_server):
    url = pg_server.new_database()
    yield url
    try:
        pg_server.start()  # a test that stopped the server leaves it running again
        pg_server.psql("DROP DATABASE %s WITH (FORCE)" % url.rsplit("/", 1)[1])
    except RuntimeError:
        pass


@pytest.fixture
def one(workdir, ha_url):
    """One instance (gw-1) on a new database, started."""
    gw = instance(workdir, ha_url, "gw-1").start()
    yield gw
    if gw.proc.poll() is None:
        gw.assert_clean_exit()


@pytest.fixture
def make_pair(workdir, ha_url):
    """make_pair(config=..., env=...) -> (gw-1, gw-2), launched at the same instant on one
    empty database (both migrate under the lock: neither fails)."""
    started = []

    def make(config=None, env=None, args=None):
        pair = [instance(workdir, ha_url, "gw-%d" % n, config, env) for n in (1, 2)]
        for gw in pair:
            gw.args = list((args or {}).get(gw.config["instance_id"], []))
            gw.launch()
            started.append(gw)
        for gw in pair:
            gw.wait_started(60)
        return pair

    yield make
    for gw in started:
        if gw.proc and gw.proc.poll() is None:
            gw.assert_clean_exit()


def found(gw, placer):
    r = gw.get("/fhir/ServiceRequest?identifier=%s|%s" % (PLACER, placer))
    assert r.status == 200, r
    return [e["resource"]["id"] for e in r.json().get("entry", [])
            if e["search"]["mode"] == "match"]


def create_once(gw, placer):
    """POST with If-None-Exist on the placer number: safe to repeat."""
    return gw.post("/fhir/ServiceRequest", contained_referral(identifier=placer),
                   headers={"If-None-Exist": "identifier=%s|%s" % (PLACER, placer)})


def verify_chain(gw):
    r = gw.audit_verify()
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"audit chain intact" in r.stdout
    return r


def wait_until(fn, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    return fn()


class Load:
    """Client threads creating referrals (unique placer numbers, If-None-Exist) on the
    instances given until stopped. A referral whose answer was lost or refused is
    retried, on the next instance when its own is gone; every answer is kept."""

    def __init__(self, gateways, n_threads=8):
        self.gateways = gateways
        self.lock = threading.Lock()
        self.acked = {}  # placer -> id (201, or 200 when a retry found it)
        self.answers = []  # (instance index, status, placer)
        self.refused = set()  # placers answered 503 at least once
        self.open = set()  # placers tried and not acknowledged (yet)
        self.without_retry_after = 0  # 503 answers without Retry-After
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(n_threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def attempt(self, target, placer):
        """One try; True when acknowledged."""
        try:
            r = create_once(self.gateways[target], placer)
        except (OSError, http.client.HTTPException):
            return None  # the instance is gone, or went mid-answer
        with self.lock:
            self.answers.append((target, r.status, placer))
            if r.status in (200, 201):
                self.acked[placer] = r.json()["id"]
                self.open.discard(placer)
                return True
            if r.status == 503:
                self.refused.add(placer)
                if not r.header("Retry-After"):
                    self.without_retry_after += 1
        return False

    def run(self, n):
        target = n % len(self.gateways)
        while not self.stopping.is_set():
            placer = "load-%d-%s" % (n, uuid.uuid4().hex[:12])
            with self.lock:
                self.open.add(placer)
            while not self.stopping.is_set():
                done = self.attempt(target, placer)
                if done:
                    break
                if done is None:
                    target = (target + 1) % len(self.gateways)
                time.sleep(0.05 if done is None else 0.2)

    def count(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(120)

    def resolve(self, target):
        """After stop: retries every placer left without an answer until acknowledged,
        so that every placer tried is stored exactly once."""
        for placer in sorted(self.open):
            assert wait_until(lambda: self.attempt(target, placer), 30), placer


# ---------------------------------------------------------------- conditional creates


def test_twenty_if_none_exist_retries_over_two_instances_create_one_referral(make_pair):
    gw1, gw2 = make_pair()
    placer = "race-" + uuid.uuid4().hex
    barrier = threading.Barrier(20)
    results = []

    def retry(i):
        gw = (gw1, gw2)[i % 2]
        barrier.wait()
        r = create_once(gw, placer)
        results.append((r.status, r.json().get("id")))

    threads = [threading.Thread(target=retry, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(s for s, _ in results) == [200] * 19 + [201], results
    assert len({i for _, i in results}) == 1
    created = results[0][1]
    assert found(gw1, placer) == [created] and found(gw2, placer) == [created]
    # one chain, written by both: each event names the instance that wrote it
    with gw1.db() as db:
        observers = {json.loads(text)["source"]["observer"]["display"]
                     for (text,) in db.execute("SELECT json FROM audit")}
    assert observers == {"gw-1", "gw-2"}, observers
    verify_chain(gw1)


# ---------------------------------------------------------------- one instance killed


def test_sigkill_of_one_instance_under_load_loses_nothing_acknowledged(make_pair):
    gw1, gw2 = make_pair()
    load = Load([gw1, gw2]).start()
    assert wait_until(lambda: load.count() >= 20, 60), "no load went through"
    gw1.kill()
    before_kill = load.count()
    assert wait_until(lambda: load.count() >= before_kill + 20, 60), "gw-2 did not carry on"
    load.stop()
    assert gw2.proc.poll() is None
    # gw-2 answered everything itself: no 5xx, not even while gw-1's batch was cut
    errors = [(s, p) for i, s, p in load.answers if i == 1 and s >= 500]
    assert not errors, errors
    load.resolve(1)  # the few cut by the stop of the load (retried with If-None-Exist)
    for placer, rid in load.acked.items():
        assert found(gw2, placer) == [rid], placer
    # nothing twice: one ServiceRequest per placer number acknowledged, none unanswered
    with gw2.db() as db:
        stored = db.execute("SELECT COUNT(*) FROM resources WHERE type = 'ServiceRequest'"
                            ).fetchone()[0]
    assert stored == len(load.acked), (stored, len(load.acked))
    gw2.stop()
    verify_chain(gw2)


# ---------------------------------------------------------------- RIS pull


def test_ris_pulls_alternating_over_both_instances_get_each_order_once(make_pair):
    gw1, gw2 = make_pair()
    pair = (gw1, gw2)
    ids = [pair[i % 2].post("/fhir/ServiceRequest", contained_referral()).json()["id"]
           for i in range(30)]
    pulled, turn, empty = [], 0, 0  # (instance index, message)
    while empty < 2 and len(pulled) <= 40:  # until both have nothing more
        r = pair[turn].get("/ris/orders?max=4", cert="ris")
        assert r.status == 200, r
        msgs = split_batch(r.body)
        empty = 0 if msgs else empty + 1
        pulled += [(turn, m) for m in msgs]
        turn = 1 - turn
    controls = [m.control_id for _, m in pulled]
    assert len(controls) == len(set(controls)) == 30, controls
    assert sorted(m.get("ORC", 2) for _, m in pulled) == sorted(ids)
    assert {i for i, _ in pulled} == {0, 1}, "both instances handed out orders"
    # each ACK through the instance that did not hand the order out; every fifth refused
    refused = set()
    for k, (i, m) in enumerate(pulled):
        if k % 5 == 0:
            ack(pair[1 - i], m, "AR", "refused by the test RIS")
            refused.add(m.get("ORC", 2))
        else:
            assert ack(pair[1 - i], m).get("MSA", 1) == "AA"
    for gw in pair:
        assert split_batch(gw.get("/ris/orders?max=50", cert="ris").body) == []
    for sr_id in ids:
        views = [gw.get("/fhir/Task?focus=ServiceRequest/" + sr_id).json()["entry"][0]["resource"]
                 for gw in pair]
        assert views[0] == views[1]
        assert (business(views[0]) == "delivery-failed") == (sr_id in refused), views[0]


# ---------------------------------------------------------------- MLLP push


def lease_holder(gw):
    """(owner, token) of the push lease on bachaumont."""
    with gw.db() as db:
        row = db.execute("SELECT owner, token FROM push_leases WHERE site = 'bachaumont'"
                         ).fetchone()
    assert row, "no push lease row for the site"
    return row


def logged(gw, event):
    return [e for e in gw.logs if e.get("event") == event]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_push_is_taken_over_in_bounded_time_in_order_without_a_gap(make_pair, how):
    """SIGKILL: the other instance takes the lease once it ran out (push_lease_s = 3);
    SIGTERM: the holder hands it back, so the other takes it at once (push_lease_s = 15)."""
    lease_s, bound = (PUSH_LEASE_S, PUSH_LEASE_S + 3) if how == "SIGKILL" else (15, 5)
    peer = Peer().start()
    config = dict(FAST_PUSH, sites=sites(peer.port), push_lease_s=lease_s)
    pair = list(make_pair(config=config))
    for i in range(6):
        assert pair[i % 2].post("/fhir/ServiceRequest", contained_referral()).status == 201
    assert peer.wait_for(6, 30)
    owner, token = lease_holder(pair[0])
    holder = [gw for gw in pair if owner.startswith(gw.config["instance_id"] + "/")]
    assert len(holder) == 1, owner
    holder, other = holder[0], [gw for gw in pair if gw is not holder[0]][0]
    assert logged(holder, "push-lease-acquired") and not logged(other, "push-lease-acquired")

    load = Load([other], n_threads=2).start()  # orders keep coming, through the other
    assert wait_until(lambda: len(peer.received) >= 12, 30)
    holder.proc.send_signal(getattr(signal, how))
    signalled = time.time()
    other_id = other.config["instance_id"] + "/"
    assert wait_until(lambda: lease_holder(other)[0].startswith(other_id), lease_s + 10), \
        "the other instance did not take the lease"
    taken_over_in = time.time() - signalled
    seen = len(peer.received)
    assert wait_until(lambda: len(peer.received) > seen + 2, 15), "the new holder pushes nothing"
    load.stop()
    assert holder.stop() == (0 if how == "SIGTERM" else -signal.SIGKILL)

    with other.db() as db:
        want = [c for (c,) in db.execute(
            "SELECT control_id FROM outbox WHERE site = 'bachaumont' ORDER BY seq")]
    assert wait_until(lambda: len(set(peer.control_ids())) >= len(want), 30)
    got = peer.control_ids()
    collapsed = [c for k, c in enumerate(got) if k == 0 or got[k - 1] != c]
    assert collapsed == want, "out of order or with a gap"
    assert len(got) - len(collapsed) <= 1, "more than the in-flight message was sent twice"
    assert lease_holder(other)[1] > token, "the token did not grow"
    assert logged(other, "push-lease-acquired")
    assert taken_over_in <= bound, taken_over_in
    peer.stop()


# ---------------------------------------------------------------- the database going away


def log_tail(gw, n=12):
    """The instance's last log lines other than requests, for a failure's message."""
    return "\n".join(str(e) for e in [e for e in gw.logs if e.get("event") != "http-request"][-n:])


def readyz(gw):
    return gw.get("/readyz", cert=None)


def wait_status(gw, status, timeout):
    """/readyz until it answers status (or the time is up): the last answer."""
    deadline = time.time() + timeout
    r = readyz(gw)
    while r.status != status and time.time() < deadline:
        time.sleep(0.2)
        r = readyz(gw)
    return r


def test_database_stopped_and_restarted_under_load(make_pair, pg_server):
    gw1, gw2 = make_pair()
    load = Load([gw1, gw2], n_threads=4).start()
    assert wait_until(lambda: load.count() >= 20, 60)
    pg_server.stop("immediate")
    stopped_at = time.time()
    try:
        for gw in (gw1, gw2):
            down = wait_status(gw, 503, 15)
            assert down.status == 503, down
            assert b"PostgreSQL" in down.body, down.body
            assert down.header("Retry-After"), down.headers
        r = create_once(gw1, "while-down-" + uuid.uuid4().hex)
        assert r.status == 503 and int(r.header("Retry-After")) > 0, r
        assert r.json()["resourceType"] == "OperationOutcome"
        time.sleep(max(0.0, 3 - (time.time() - stopped_at)))
    finally:
        pg_server.start()
    for gw in (gw1, gw2):
        up = wait_status(gw, 200, 15)
        assert up.status == 200, "%s\n%s" % (up.body.decode(), log_tail(gw))
    count = load.count()
    assert wait_until(lambda: load.count() >= count + 10, 60), "writes did not resume"
    load.stop()
    assert load.refused and load.without_retry_after == 0
    # every reader connection of both is used again: none is left broken by the restart
    for gw in (gw1, gw2):
        answers = []
        readers = [threading.Thread(target=lambda: answers.append(
            gw.get("/fhir/ServiceRequest?_count=50&_sort=-_lastUpdated"))) for _ in range(16)]
        for t in readers:
            t.start()
        for t in readers:
            t.join(60)
        assert [r.status for r in answers] == [200] * 16, [r for r in answers if r.status != 200]
    # every refused one is absent, or there once (its commit's outcome was resolved)
    for placer in load.refused:
        assert len(found(gw1, placer)) <= 1, placer
    load.resolve(0)
    assert gw1.proc.poll() is None and gw2.proc.poll() is None, "an instance exited"
    for placer, rid in load.acked.items():
        assert found(gw2, placer) == [rid], placer
    gw1.stop()
    gw2.stop()
    verify_chain(gw1)


def test_start_before_the_database_retries_then_listens(workdir, ha_url, pg_server):
    pg_server.stop("fast")
    gw = instance(workdir, ha_url, "gw-1", env={"GATEWAY_PG_CONNECT_RETRY_MAX_MS": "1000"})
    try:
        gw.launch()
        assert wait_until(lambda: len([e for e in gw.logs
                                       if e.get("event") == "store-connect-retry"]) >= 3, 20)
        assert gw.proc.poll() is None, "the gateway exited instead of waiting"
        assert gw.port is None, "it listened before its store was there"
        retries = [e for e in gw.logs if e.get("event") == "store-connect-retry"]
        assert "next attempt in" in retries[0].get("msg", ""), retries[0]
        assert "gateway@127.0.0.1" in retries[0]["msg"]
    finally:
        pg_server.start()
    gw.wait_started(30)
    assert create_once(gw, "after-" + uuid.uuid4().hex).status == 201
    gw.assert_clean_exit()


def test_stopped_while_waiting_for_the_database_exits_cleanly(workdir, ha_url, pg_server):
    pg_server.stop("fast")
    gw = instance(workdir, ha_url, "gw-1")
    try:
        gw.launch()
        assert gw.wait_for_log("store-connect-retry", 20)
        assert gw.stop() == 0
    finally:
        gw.kill()
        pg_server.start()


# ---------------------------------------------------------------- per instance


def test_sighup_and_readyz_are_per_instance(make_pair, workdir):
    maps = {}
    for name in ("gw-1", "gw-2"):
        maps[name] = os.path.join(workdir, "maps-" + name)
        shutil.copytree(os.path.join(REPO, "mappings"), maps[name])
    gw1, gw2 = make_pair(args={name: ["--mappings", m] for name, m in maps.items()})
    with open(os.path.join(maps["gw-1"], "indication-procedure.json"), "w") as f:
        f.write('{"resourceType": "ConceptMap", "status": ')
    gw1.proc.send_signal(signal.SIGHUP)
    assert gw1.wait_for_log("mappings-reload-failed")
    assert b"the last reload failed" in readyz(gw1).body
    ready2 = readyz(gw2)
    assert ready2.status == 200 and b"mappings: ok" in ready2.body, ready2.body
    assert not [e for e in gw2.logs if e.get("event", "").startswith("mappings-reload")]
    gw2.proc.send_signal(signal.SIGHUP)
    assert gw2.wait_for_log("mappings-reloaded")
    assert b"the last reload failed" in readyz(gw1).body, "gw-2's reload changed gw-1"
    for gw in (gw1, gw2):
        assert gw.post("/fhir/ServiceRequest", contained_referral()).status == 201


# ---------------------------------------------------------------- append-only


def psql(url, sql, user=None):
    """The server's own psql on url (as user when given)."""
    binary = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    if user:
        url = url.replace("://gateway@", "://%s@" % user)
    return subprocess.run([binary, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql,
                           url], capture_output=True, text=True, timeout=60)


def test_audit_is_append_only_in_the_database(one, ha_url):
    gw, pg_url = one, ha_url
    for _ in range(3):
        assert gw.post("/fhir/ServiceRequest", contained_referral()).status == 201
    count = psql(pg_url, "SELECT COUNT(*) FROM audit").stdout.strip()
    for sql in ("UPDATE audit SET json = '{}' WHERE seq = 2", "DELETE FROM audit WHERE seq = 2",
                "TRUNCATE audit", "UPDATE versions SET json = '{}'"):
        r = psql(pg_url, sql)
        assert r.returncode != 0 and "append-only" in r.stderr, (sql, r.stderr)
    assert psql(pg_url, "SELECT COUNT(*) FROM audit").stdout.strip() == count

    # the owner can, and `audit verify` names what it did
    event_id = psql(pg_url, "SELECT id FROM audit WHERE seq = 2").stdout.strip()
    gw.tamper_audit(("UPDATE audit SET json = replace(json, '\"action\":\"', '\"action\":\"X')"
                     " WHERE seq = ?", (2,)))
    r = gw.audit_verify()
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("event %s (sequence 2)" % event_id).encode() in r.stdout
    r = psql(pg_url, "UPDATE audit SET json = '{}' WHERE seq = 3")
    assert r.returncode != 0 and "append-only" in r.stderr, "the trigger is on again"


def documented_grants(database, role):
    """The SQL block of docs/OPERATIONS.md that makes the gateway's own role, for database
    and role: the test runs exactly what the document says."""
    with open(os.path.join(REPO, "docs", "OPERATIONS.md")) as f:
        text = f.read()
    start = text.index("<!-- app role -->")
    block = text[text.index("```sql\n", start) + 7:text.index("```", text.index("```sql\n", start) + 7)]
    return (block.replace("gateway_app", role).replace("DATABASE gateway", "DATABASE " + database)
            .replace("PASSWORD 'change-me'", ""))


def test_a_role_with_the_documented_grants_serves_and_cannot_rewrite_the_log(workdir, ha_url):
    # the owner migrates (any command that opens the store does), then the gateway runs
    # as a role that may only read and append the log
    owner = instance(workdir, ha_url, "owner")
    assert owner.audit_verify().returncode == 0
    role = "gw_app_" + uuid.uuid4().hex[:8]
    database = ha_url.rsplit("/", 1)[1]
    r = psql(ha_url, documented_grants(database, role))
    assert r.returncode == 0, r.stderr
    try:
        app_url = ha_url.replace("://gateway@", "://%s@" % role)
        gw = instance(workdir, app_url, "gw-1").start()
        sr = gw.post("/fhir/ServiceRequest", contained_referral())
        assert sr.status == 201, sr
        pulled = split_batch(gw.get("/ris/orders?max=5", cert="ris").body)
        assert len(pulled) == 1 and ack(gw, pulled[0]).get("MSA", 1) == "AA"
        gw.assert_clean_exit()
        verify_chain(gw)
        for sql, refused in (("DELETE FROM audit WHERE seq = 2", "permission denied"),
                             ("UPDATE audit SET json = '{}' WHERE seq = 2", "permission denied"),
                             ("TRUNCATE audit", "permission denied"),
                             ("DELETE FROM versions", "permission denied"),
                             ("ALTER TABLE audit DISABLE TRIGGER USER", "must be owner")):
            r = psql(app_url, sql)
            assert r.returncode != 0 and refused in r.stderr, (sql, r.stderr)
    finally:
        psql(ha_url, "DROP OWNED BY %s; DROP ROLE %s" % (role, role))


def test_store_backup_on_postgresql_points_to_pg_dump_which_works(pg_url, workdir):
    url = pg_url.replace("postgresql://gateway@", "postgresql://gateway:s3cret@")
    gw = instance(workdir, url, "gw-1").start()
    sr = gw.post("/fhir/ServiceRequest", contained_referral()).json()
    r = gw.run_cli("store", "backup", os.path.join(workdir, "copy.db"), "--store", url)
    assert r.returncode != 0
    assert b"pg_dump" in r.stderr, r.stderr
    assert b"s3cret" not in r.stdout + r.stderr
    assert not os.path.exists(os.path.join(workdir, "copy.db"))
    # what docs/OPERATIONS.md says instead: pg_dump while it serves, pg_restore elsewhere
    bindir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1])
    dump = os.path.join(workdir, "gateway.dump")
    r = subprocess.run([bindir + "/pg_dump", "--format=custom", "--file=" + dump, pg_url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    gw.assert_clean_exit()
    restored = pg_url.rsplit("/", 1)[0] + "/r_" + uuid.uuid4().hex[:8]
    assert psql(pg_url, "CREATE DATABASE " + restored.rsplit("/", 1)[1]).returncode == 0
    try:
        r = subprocess.run([bindir + "/pg_restore", "--dbname=" + restored, dump],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        back = instance(workdir, restored, "gw-2")
        verify_chain(back)
        back.start()
        assert back.get("/fhir/ServiceRequest/" + sr["id"]).json()["id"] == sr["id"]
        back.assert_clean_exit()
    finally:
        psql(pg_url, "DROP DATABASE %s WITH (FORCE)" % restored.rsplit("/", 1)[1])
