"""Issue 12 (groundwork): the suite's own PostgreSQL server, and a gateway serving a
postgresql:// store."""

import os
import subprocess

import pytest

from conftest import BINARY, REPO


def test_server_is_private_to_the_run_and_unprivileged(pg_server):
    listen, sockets, data = pg_server.psql(
        "SELECT current_setting('listen_addresses') || '|' ||"
        " current_setting('unix_socket_directories') || '|' || current_setting('data_directory')"
    ).strip().split("|")
    assert listen == "127.0.0.1"
    assert sockets == pg_server.folder
    assert data.startswith(pg_server.folder + "/")
    with open(os.path.join(pg_server.folder, "data", "postmaster.pid")) as f:
        pid = int(f.readline())
    with open("/proc/%d/status" % pid) as f:
        uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
    assert uid != 0, "the server runs as root"
    assert pg_server.url.startswith("postgresql://gateway@127.0.0.1:")


def test_server_stops_and_starts_again_with_its_url_and_data(pg_server):
    pg_server.psql("DROP TABLE IF EXISTS kept; CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    url = pg_server.url
    pg_server.stop("immediate")  # as a crash
    with pytest.raises(RuntimeError):
        pg_server.psql("SELECT 1")
    pg_server.start()
    assert pg_server.url == url
    assert pg_server.psql("SELECT n FROM kept").strip() == "7"
    pg_server.psql("DROP TABLE kept")


def test_each_test_gets_its_own_database(pg_server, pg_url):
    assert pg_url != pg_server.url and pg_url.startswith(pg_server.url.rsplit("/", 1)[0])
    assert pg_url.rsplit("/", 1)[1] in pg_server.psql("SELECT datname FROM pg_database")


def test_gateway_serves_a_postgresql_store_without_printing_its_password(pg_url):
    url = pg_url.replace("postgresql://gateway@", "postgresql://gateway:s3cret@")
    p = subprocess.Popen([BINARY, "serve", "--store", url, "--listen", "127.0.0.1:0",
                          "--mllp-listen", "127.0.0.1:0"], cwd=REPO, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if '"event":"listening"' in line:
            break
    p.terminate()
    out, err = p.communicate(timeout=60)
    text = "".join(lines) + out + err
    assert p.returncode == 0, text
    assert any('"event":"listening"' in line for line in lines), text
    assert "gateway@127.0.0.1:" in text
    assert "s3cret" not in text
