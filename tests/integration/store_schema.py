"""Rewrites a store written by this gateway as the first gateway's schema (1) held it,
so that migration tests run the whole chain from there (gateway/store/schema.c).

What schema 1 had that later schemas dropped comes back from what they keep:
versions carry type, id, owner and site again (the resource's), resources point at
versions by (type, id), inbound dedupe is keyed on the sender alone, and the indexes
migration 5 drops exist again. What later schemas added is dropped (resource_sites,
the roll-up, subscriptions, the index tables of migration 5...). The search index
rows of schema 1 named their parameter, which later schemas hash: they cannot be
rebuilt here, so search_index and audit_index come back empty (reads by id, the
outbox, the audit chain and its events are whole). tests/data/store/schema1.sql is a
schema-1 store with its index, for the tests that search migrated data.
"""

import sqlite3

SCHEMA_1 = """
    CREATE TABLE versions_v1 (
      seq INTEGER PRIMARY KEY,
      type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
      last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
      owner TEXT, site TEXT, json TEXT NOT NULL,
      UNIQUE (type, id, version));
    INSERT INTO versions_v1 (seq, type, id, version, last_updated, deleted, owner, site, json)
      SELECT v.seq, r.type, r.id, v.version, v.last_updated, v.deleted, r.owner,
             COALESCE(r.site, :stamp_site), v.json
      FROM versions v JOIN resources r ON r.rid = v.rid ORDER BY v.seq;
    CREATE TABLE resources_v1 (
      type TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL,
      PRIMARY KEY (type, id)) WITHOUT ROWID;
    INSERT INTO resources_v1 (type, id, seq, version) SELECT type, id, seq, version FROM resources;
    CREATE TABLE inbound_v1 (
      sender TEXT NOT NULL, control_id TEXT NOT NULL, received INTEGER NOT NULL,
      ack BLOB NOT NULL, PRIMARY KEY (sender, control_id)) WITHOUT ROWID;
    INSERT OR IGNORE INTO inbound_v1 SELECT sender, control_id, received, ack FROM inbound;
"""

INDEXES_1 = """
    CREATE INDEX versions_by_id ON versions (type, id, seq);
    CREATE INDEX versions_by_type ON versions (type, seq);
    CREATE TABLE search_index (
      seq INTEGER NOT NULL, param TEXT NOT NULL, system TEXT, value TEXT,
      lo INTEGER, hi INTEGER);
    CREATE INDEX search_by_value ON search_index (param, value, seq);
    CREATE INDEX search_by_seq ON search_index (seq, param);
    CREATE INDEX outbox_by_site ON outbox (site, state, seq);
    CREATE INDEX audit_by_recorded ON audit (recorded);
    CREATE TABLE audit_index (
      seq INTEGER NOT NULL, param TEXT NOT NULL, system TEXT, value TEXT,
      lo INTEGER, hi INTEGER);
    CREATE INDEX audit_index_by_value ON audit_index (param, value, seq);
    CREATE INDEX audit_index_by_seq ON audit_index (seq, param);
    CREATE TRIGGER versions_append_only_update BEFORE UPDATE ON versions
      BEGIN SELECT RAISE(ABORT, 'versions are append-only'); END;
    PRAGMA user_version = 1;
"""

KEPT = {"outbox", "audit"}  # the same in every schema so far


def downgrade_to_schema_1(db_path, stamp_site=None):
    """Rewrites the store at db_path as schema 1. stamp_site, when given, is the site
    every row without one gets (schema 1 stamped a transaction's rows with its last
    referral's site)."""
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 5
    db.execute("BEGIN")
    db.execute("DROP TRIGGER IF EXISTS versions_append_only_update")
    for statement in SCHEMA_1.split(";"):
        if statement.strip():
            db.execute(statement, {"stamp_site": stamp_site} if ":stamp_site" in statement else {})
    tables = [name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name NOT LIKE '%_v1'")]
    for name in tables:
        if name not in KEPT:
            db.execute("DROP TABLE %s" % name)
    db.execute("DROP INDEX IF EXISTS outbox_open")
    db.execute("DROP INDEX IF EXISTS outbox_dead")
    for name in ("versions", "resources", "inbound"):
        db.execute("ALTER TABLE %s_v1 RENAME TO %s" % (name, name))
    db.commit()
    db.executescript(INDEXES_1)
    db.commit()
    db.close()
