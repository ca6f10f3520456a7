"""Black-box fixtures: start the real fhir-gateway binary on free ports with a
temporary store and the development PKI, and talk to it over HTTPS with client
certificates (standard library only: ssl, http.client, socket)."""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CERTS = os.path.join(REPO, "certs", "dev")
BINARY = os.environ.get("GATEWAY_BIN", os.path.join(REPO, "build", "fhir-gateway"))
START_TIMEOUT = 20


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.body[:300])


def tls_context(cert):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(CERTS, cert + ".pem"), os.path.join(CERTS, cert + ".key"))
    return ctx


def store_url(store):
    """A store URL from a URL or a SQLite file's path."""
    if store.startswith(("sqlite:", "postgresql://", "postgres://")):
        return store
    return "sqlite:" + store


class PgDb:
    """A psycopg2 connection with sqlite3's shape for the tests: execute(sql, args) with ?
    placeholders returns a cursor; autocommit unless told otherwise."""

    def __init__(self, url, autocommit=True):
        import psycopg2
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = autocommit

    def execute(self, sql, args=()):
        cur = self.conn.cursor()
        if args:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(args))
        else:
            cur.execute(sql)
        return cur

    def commit(self):
        self.conn.commit()

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.conn.autocommit:
            self.conn.commit() if exc[0] is None else self.conn.rollback()
        self.conn.close()


class Gateway:
    """One running gateway process."""

    def __init__(self, workdir, store=None, env=None, config=None, args=()):
        """store: a store URL (sqlite:PATH, postgresql://...), a SQLite file's path, or
        None for workdir/gateway.db."""
        self.workdir = workdir
        self.store_url = store_url(store or os.path.join(workdir, "gateway.db"))
        self.backend = "sqlite" if self.store_url.startswith("sqlite:") else "postgresql"
        # the SQLite file, for the tests about SQLite itself; None on PostgreSQL
        self.store_path = self.store_url[len("sqlite:"):] if self.backend == "sqlite" else None
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.config = config
        self.args = list(args)
        self.proc = None
        self.port = None
        self.mllp_port = None
        self.logs = []
        self._contexts = {}

    # ---------------------------------------------------------------- process
    def start(self):
        self.launch()
        return self.wait_started()

    def launch(self):
        """Starts the process without waiting for it to listen (see wait_started)."""
        cmd = [BINARY, "serve", "--listen", "127.0.0.1:0", "--mllp-listen", "127.0.0.1:0",
               "--store", self.store_url, "--mappings",
               os.path.join(REPO, "mappings")] + self.args
        if self.config is not None:
            path = os.path.join(self.workdir, "config.json")
            with open(path, "w") as f:
                json.dump(self.config, f)
            cmd += ["--config", path]
        self.logs = []
        self.port = self.mllp_port = None
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_logs, args=(self._ready,), daemon=True)
        self._reader.start()
        return self

    def wait_started(self, timeout=START_TIMEOUT):
        if not self._ready.wait(timeout) or self.port is None:
            self.kill()
            raise RuntimeError("gateway did not start:\n" + "\n".join(map(str, self.logs)))
        return self

    def _read_logs(self, ready):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"raw": line}
            self.logs.append(entry)
            if entry.get("event") == "mllp-listening":
                self.mllp_port = entry.get("port")
            if entry.get("event") == "listening":  # HTTPS comes last: everything is up
                self.port = entry.get("port")
                ready.set()
        ready.set()

    def wait_for_log(self, event, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for entry in self.logs:
                if entry.get("event") == event:
                    return entry
            time.sleep(0.05)
        return None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            # the process has exited; its last log lines may still be in the
            # pipe: the reader ends at end of file, once it has them all
            self._reader.join(10)
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def assert_clean_exit(self):
        """A SIGTERM stop exits 0, and nothing a sanitizer or the runtime
        printed appears among the log lines (every line is JSON otherwise)."""
        rc = self.stop()
        raw = [e["raw"] for e in self.logs if "raw" in e]
        assert rc == 0, "exit %s; stderr:\n%s" % (rc, "\n".join(raw[-40:]))
        assert not raw, "non-JSON output on stderr:\n" + "\n".join(raw[-40:])

    def restart(self):
        self.stop()
        return self.start()

    # ---------------------------------------------------------------- HTTP
    def connection(self, cert="gp"):
        if cert not in self._contexts:
            self._contexts[cert] = tls_context(cert)
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self._contexts[cert],
                                           timeout=60)

    def request(self, method, path, body=None, cert="gp", headers=None, content_type=None):
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", content_type or "application/fhir+json")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None and content_type:
            hdrs["Content-Type"] = content_type
        conn = self.connection(cert)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path, cert="gp", headers=None):
        return self.request("GET", path, cert=cert, headers=headers)

    def post(self, path, body, cert="gp", headers=None, content_type=None):
        return self.request("POST", path, body, cert=cert, headers=headers,
                            content_type=content_type)

    def put(self, path, body, cert="gp", headers=None):
        return self.request("PUT", path, body, cert=cert, headers=headers)

    # ---------------------------------------------------------------- state
    def db(self):
        """A connection to the store's database (sqlite3, or PgDb with the same execute()
        and ? placeholders): tests read the tables through it."""
        if self.backend == "postgresql":
            return PgDb(self.store_url)
        import sqlite3
        return sqlite3.connect(self.store_path)

    def tamper_audit(self, *statements):
        """Runs (sql, args) statements on the audit table as its owner would: on SQLite by
        dropping the append-only triggers, on PostgreSQL by disabling them for the
        transaction (only the table's owner or a superuser can)."""
        if self.backend == "postgresql":
            db = PgDb(self.store_url, autocommit=False)
            db.execute("ALTER TABLE audit DISABLE TRIGGER USER")
            for sql, args in statements:
                db.execute(sql, args)
            db.execute("ALTER TABLE audit ENABLE TRIGGER USER")
            db.commit()
            db.close()
            return
        import sqlite3
        db = sqlite3.connect(self.store_path)
        db.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
        db.execute("DROP TRIGGER IF EXISTS audit_append_only_delete")
        for sql, args in statements:
            db.execute(sql, args)
        db.commit()
        db.close()

    def audit_verify(self, *extra):
        return self.run_cli("audit", "verify", "--store", self.store_url, *extra)

    def run_cli(self, *args, input=None):
        cmd = [BINARY] + list(args)
        return subprocess.run(cmd, cwd=REPO, env=self.env, input=input, capture_output=True,
                              timeout=120)


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="gw-test-") as d:
        yield d


@pytest.fixture
def gateway(workdir, store):
    gw = Gateway(workdir, store=store).start()
    yield gw
    gw.assert_clean_exit()


@pytest.fixture
def make_gateway(workdir, store):
    """make_gateway(**Gateway arguments): gateways on the test's store unless told another."""
    started = []

    def make(**kwargs):
        kwargs.setdefault("store", store)
        gw = Gateway(workdir, **kwargs).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.assert_clean_exit()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- PostgreSQL (issue 12)

PGTEST = os.path.join(REPO, "tools", "pgtest.sh")


class PgServer:
    """The suite's throwaway PostgreSQL server (tools/pgtest.sh): its URL, a fresh
    database per test, psql, and stop/start for the tests where the database goes away
    (the URL stays the same across a restart)."""

    def __init__(self, folder):
        self.folder = folder
        self.url = self._script("url").strip()

    def _script(self, *args, input=None):
        r = subprocess.run([PGTEST] + list(args[:1]) + [self.folder] + list(args[1:]),
                           input=input, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("tools/pgtest.sh %s: %s" % (args[0], r.stderr.strip()))
        return r.stdout

    def stop(self, mode="fast"):
        """fast: a clean shutdown; immediate: as a crash (recovery at the next start)."""
        self._script("stop", mode)

    def start(self):
        self._script("start")

    def psql(self, sql):
        """Runs sql on the database gateway; returns psql's unaligned, tuples-only output."""
        return self._script("psql", "-A", "-t", "-q", "-c", sql)

    def new_database(self):
        """A new empty database; returns its URL."""
        name = "t_" + os.urandom(6).hex()
        self.psql("CREATE DATABASE %s" % name)
        return self.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_server():
    """Starts the server once for the session and destroys it at the end, even when tests
    fail (and, through PGTEST_WATCH, even when the run is killed). Under `make test`
    (GW_PG_REQUIRED=1) a server that cannot start fails every test that needs it;
    elsewhere those tests are skipped with the reason."""
    env = dict(os.environ, PGTEST_WATCH=str(os.getpid()))
    r = subprocess.run([PGTEST, "start"], capture_output=True, text=True, env=env, timeout=180)
    if r.returncode != 0:
        why = "the PostgreSQL test server did not start: " + (r.stderr.strip() or r.stdout)
        if os.environ.get("GW_PG_REQUIRED") == "1":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    server = PgServer(r.stdout.strip().splitlines()[-1])
    try:
        yield server
    finally:
        subprocess.run([PGTEST, "destroy", server.folder], capture_output=True, timeout=120)


@pytest.fixture
def pg_url(pg_server):
    """The URL of a new, empty database on the test server."""
    return pg_server.new_database()


# ---------------------------------------------------------------- both stores (issue 12)

STORES = ("sqlite", "postgresql")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only(why): the test is about SQLite itself (its file, WAL, a full "
        "tmpfs, store backup): it runs on the SQLite store only")


def pytest_generate_tests(metafunc):
    """Every test that uses a gateway runs once per store: [sqlite] and [postgresql].
    GW_STORES=sqlite (or postgresql) runs one of them."""
    if "store" not in metafunc.fixturenames:
        return
    stores = list(STORES)
    if metafunc.definition.get_closest_marker("sqlite_only"):
        stores = ["sqlite"]
    wanted = os.environ.get("GW_STORES")
    if wanted:
        stores = [s for s in stores if s in wanted.split(",")]
    metafunc.parametrize("store", stores, indirect=True)


@pytest.fixture
def store(request, workdir):
    """The test's store URL: sqlite:<workdir>/gateway.db, or a new database on the test
    PostgreSQL server (dropped after the test)."""
    if request.param == "sqlite":
        yield "sqlite:" + os.path.join(workdir, "gateway.db")
        return
    server = request.getfixturevalue("pg_server")
    url = server.new_database()
    yield url
    try:
        server.psql("DROP DATABASE %s WITH (FORCE)" % url.rsplit("/", 1)[1])
    except RuntimeError:
        pass  # a test that left the server stopped: the folder goes at the session's end
