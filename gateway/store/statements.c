/* statements.c -- the text of every fixed statement the store runs, in one
 * place, apart from the code that runs them: the SQL of a backend is read
 * (and planned, in tests/unit/test_search.c) as a whole.
 *
 * Each statement names the index it seeks (schema.c, migration 5). The SQL
 * is standard where a standard form does as well (ON CONFLICT is shared by
 * SQLite and PostgreSQL); SQLite's numbered parameters ?N stand where
 * PostgreSQL writes $N.
 */
#include "store/store_int.h"

/* ------------------------------------------------------------ resources */

/* resources' UNIQUE (type, id) */
const char SQL_RESOURCE_LOOKUP[] =
    "SELECT rid, seq, version, deleted FROM resources WHERE type = ?1 AND id = ?2";
/* versions' rowid: the rightmost leaf */
const char SQL_NEXT_SEQ[] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM versions";
const char SQL_RESOURCE_INSERT[] =
    "INSERT INTO resources (type, id, seq, version, deleted, owner, site)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING rid";
/* The same on SQLite, where RETURNING would make it a journaled statement:
 * the rid is the connection's last rowid. */
const char SQL_RESOURCE_ADD[] =
    "INSERT INTO resources (type, id, seq, version, deleted, owner, site)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const char SQL_RESOURCE_UPDATE[] = "UPDATE resources SET seq = ?1, version = ?2, deleted = ?3,"
                                   " owner = ?4, site = ?5 WHERE rid = ?6";
const char SQL_VERSION_INSERT[] =
    "INSERT INTO versions (seq, rid, version, last_updated, deleted, json)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/* A superseded version's entries move to search_history (search_current_by_seq). */
const char SQL_INDEX_RETIRE[] =
    "INSERT INTO search_history (pid, value, lo, until, seq, hi, system, rid)"
    " SELECT pid, value, lo, ?2, seq, hi, system, rid FROM search_current WHERE seq = ?1";
const char SQL_INDEX_RETIRE_DELETE[] = "DELETE FROM search_current WHERE seq = ?1";
const char SQL_INDEX_INSERT[] = "INSERT INTO search_current (pid, value, lo, seq, hi, system, rid)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
/* The widest date range of a parameter: a search's lower bound on lo for gt/ge. */
const char SQL_WIDTH_RAISE[] =
    "INSERT INTO date_widths (pid, width) VALUES (?1, ?2) ON CONFLICT (pid)"
    " DO UPDATE SET width = excluded.width WHERE excluded.width > date_widths.width";
const char SQL_WIDTH_READ[] = "SELECT width FROM date_widths WHERE pid = ?1";

#define VERSION_COLUMNS                                                                            \
    "v.seq, r.type, r.id, v.version, v.last_updated, v.deleted, r.owner, r.site, v.json"

/* UNIQUE (type, id), then versions' rowid */
const char SQL_READ_CURRENT[] = "SELECT " VERSION_COLUMNS " FROM resources r CROSS JOIN versions v"
                                " WHERE r.type = ?1 AND r.id = ?2 AND v.seq = r.seq";
/* UNIQUE (type, id), then versions_by_rid */
const char SQL_READ_VERSION[] = "SELECT " VERSION_COLUMNS " FROM resources r CROSS JOIN versions v"
                                " WHERE r.type = ?1 AND r.id = ?2 AND v.rid = r.rid"
                                " AND v.version = ?3";
const char SQL_HISTORY[] = "SELECT " VERSION_COLUMNS " FROM resources r CROSS JOIN versions v"
                           " WHERE r.type = ?1 AND r.id = ?2 AND v.rid = r.rid AND v.seq <= ?3"
                           " ORDER BY v.seq DESC LIMIT ?4 OFFSET ?5";
const char SQL_SNAPSHOT[] = "SELECT COALESCE(MAX(seq), 0) FROM versions";
/* Probes of the binary search from a time to a seq (lastUpdated grows with seq). */
const char SQL_VERSION_AT_OR_AFTER[] =
    "SELECT seq, last_updated FROM versions WHERE seq >= ?1 ORDER BY seq LIMIT 1";
const char SQL_LAST_TIME[] = "SELECT COALESCE(MAX(last_updated), 0) FROM versions"
                             " WHERE seq = (SELECT MAX(seq) FROM versions)";

/* ------------------------------------------------------------ audit */

const char SQL_AUDIT_HEAD[] =
    "SELECT seq, hash FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)";
/* seq: the next after the head's (audit_head_load), gapless (the chain's
 * verification names a missing seq; a sequence would leave gaps where
 * transactions rolled back), assigned under the write lock. A plain VALUES
 * row: with a SELECT or RETURNING, SQLite would journal the statement. */
const char SQL_AUDIT_INSERT[] = "INSERT INTO audit (seq, id, recorded, json, prev_hash, hash)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const char SQL_AUDIT_INDEX_INSERT[] = "INSERT INTO audit_index (pid, value, seq, system)"
                                      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";
/* The same for 8 and 32 entries at once (an event naming many orders has a
 * hundred): one statement's overhead for many rows. SQLite journals a
 * statement of many rows that may abort; OR IGNORE cannot (no value is NULL). */
#define AUDIT_INDEX_ROW "(?, ?, ?, ?)"
#define AUDIT_INDEX_ROWS4                                                                          \
    AUDIT_INDEX_ROW ", " AUDIT_INDEX_ROW ", " AUDIT_INDEX_ROW ", " AUDIT_INDEX_ROW
#define AUDIT_INDEX_ROWS8 AUDIT_INDEX_ROWS4 ", " AUDIT_INDEX_ROWS4
#define AUDIT_INDEX_ROWS32                                                                         \
    AUDIT_INDEX_ROWS8 ", " AUDIT_INDEX_ROWS8 ", " AUDIT_INDEX_ROWS8 ", " AUDIT_INDEX_ROWS8
const char SQL_AUDIT_INDEX_INSERT_8[] =
    "INSERT OR IGNORE INTO audit_index (pid, value, seq, system)"
    " VALUES " AUDIT_INDEX_ROWS8;
const char SQL_AUDIT_INDEX_INSERT_32[] =
    "INSERT OR IGNORE INTO audit_index (pid, value, seq, system) VALUES " AUDIT_INDEX_ROWS32;
const char SQL_AUDIT_INDEX_INSERT_8_PG[] = "INSERT INTO audit_index (pid, value, seq, system)"
                                           " VALUES " AUDIT_INDEX_ROWS8 " ON CONFLICT DO NOTHING";
const char SQL_AUDIT_INDEX_INSERT_32_PG[] = "INSERT INTO audit_index (pid, value, seq, system)"
                                            " VALUES " AUDIT_INDEX_ROWS32 " ON CONFLICT DO NOTHING";
const char SQL_AUDIT_SNAPSHOT[] = "SELECT COALESCE(MAX(seq), 0) FROM audit";
const char SQL_AUDIT_AT_OR_AFTER[] =
    "SELECT seq, recorded FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT 1";
const char SQL_AUDIT_LAST_TIME[] = "SELECT COALESCE(MAX(recorded), 0) FROM audit"
                                   " WHERE seq = (SELECT MAX(seq) FROM audit)";
/* a seq range (from the recorded bounds), then the exact times */
const char SQL_AUDIT_SCAN[] = "SELECT seq, id, recorded, json, prev_hash, hash FROM audit"
                              " WHERE seq >= ?1 AND seq <= ?2 AND recorded >= ?3 AND recorded < ?4"
                              " ORDER BY seq";

/* ------------------------------------------------------------ outbox */

#define OUTBOX_COLUMNS                                                                             \
    "o.seq, o.control_id, o.site, o.kind, o.ref_type, o.ref_id, o.message, o.state,"               \
    " o.lease_until, o.attempts, o.created, o.last_error"

const char SQL_OUTBOX_INSERT[] =
    "INSERT INTO outbox (control_id, site, kind, ref_type, ref_id, message, state, created,"
    " updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7)";
/* The same for OUTBOX_LEASE_SET messages at once (a pull leases up to a
 * thousand): unused places repeat a seq. */
#define SEQ4  "?, ?, ?, ?"
#define SEQ16 SEQ4 ", " SEQ4 ", " SEQ4 ", " SEQ4
const char SQL_OUTBOX_LEASE_SET[] =
    "UPDATE outbox SET state = 1, lease_until = ?1, attempts = attempts + 1, updated = ?2"
    " WHERE seq IN (" SEQ16 ", " SEQ16 ", " SEQ16 ", " SEQ16 ")";
const char SQL_OUTBOX_SETTLE[] =
    "UPDATE outbox SET state = ?1, updated = ?2, last_error = ?3 WHERE seq = ?4";
/* UNIQUE (control_id): the settling of an ACK */
const char SQL_OUTBOX_BY_CONTROL_ID[] =
    "SELECT " OUTBOX_COLUMNS " FROM outbox o WHERE o.control_id = ?1";
/* The same for OUTBOX_LEASE_SET control ids at once, without the messages
 * (unused places repeat an id); the acknowledgement of those of them found. */
const char SQL_OUTBOX_BY_CONTROL_IDS[] =
    "SELECT o.seq, o.control_id, o.site, o.kind, o.ref_type, o.ref_id, NULL, o.state,"
    " o.lease_until, o.attempts, o.created, o.last_error FROM outbox o WHERE o.control_id IN"
    " (" SEQ16 ", " SEQ16 ", " SEQ16 ", " SEQ16 ")";
const char SQL_OUTBOX_ACCEPT_SET[] = "UPDATE outbox SET state = 2, updated = ?1, last_error = NULL"
                                     " WHERE seq IN (" SEQ16 ", " SEQ16 ", " SEQ16 ", " SEQ16 ")";
const char SQL_OUTBOX_ATTEMPT[] = "UPDATE outbox SET attempts = attempts + 1, updated = ?1,"
                                  " last_error = ?2 WHERE control_id = ?3";
/* outbox_open: the partial index of unfinished messages */
const char SQL_OUTBOX_NEXT[] = "SELECT " OUTBOX_COLUMNS " FROM outbox o WHERE o.site = ?1"
                               " AND o.state < 2 ORDER BY o.seq LIMIT 1";
const char SQL_OUTBOX_FOR[] = "SELECT " OUTBOX_COLUMNS " FROM outbox o WHERE o.ref_type = ?1"
                              " AND o.ref_id = ?2 ORDER BY o.seq LIMIT 1000";
/* counts of the unfinished (outbox_open) and dead (outbox_dead) messages */
const char SQL_OUTBOX_OPEN_COUNTS[] = "SELECT site, state, COUNT(*) FROM outbox WHERE state < 2"
                                      " GROUP BY site, state";
const char SQL_OUTBOX_DEAD_COUNTS[] =
    "SELECT site, COUNT(*) FROM outbox WHERE state = 3 GROUP BY site";
const char SQL_OUTBOX_OLDEST[] =
    "SELECT created FROM outbox WHERE site = ?1 AND state < 2 ORDER BY seq LIMIT 1";

/* ------------------------------------------------------------ inbound */

/* the primary key (client, sender, control_id) */
const char SQL_INBOUND_SEEN[] =
    "SELECT ack FROM inbound WHERE client = ?1 AND sender = ?2 AND control_id = ?3";
const char SQL_INBOUND_RECORD[] = "INSERT INTO inbound (client, sender, control_id, received, ack)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5)";

/* ------------------------------------------------------------ site visibility */

/* resource_sites' primary key (site, type, id): a check is one seek per site */
const char SQL_SITE_GRANT[] =
    "INSERT INTO resource_sites (site, type, id) VALUES (?3, ?1, ?2) ON CONFLICT DO NOTHING";
const char SQL_SITE_VISIBLE[] =
    "SELECT 1 FROM resource_sites WHERE site = ?3 AND type = ?1 AND id = ?2";

/* ------------------------------------------------------------ audit activity */

/* audit_rollup's primary key (hour, client, address, class): a period is a
 * range of hours, however many events it holds */
const char SQL_ROLLUP_TALLY[] =
    "INSERT INTO audit_rollup (hour, client, address, class, n, last)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hour, client, address, class)"
    " DO UPDATE SET n = audit_rollup.n + excluded.n, last = CASE WHEN excluded.last >"
    " audit_rollup.last THEN excluded.last ELSE audit_rollup.last END";
const char SQL_ROLLUP_HOURS[] = "SELECT hour, class, SUM(n) FROM audit_rollup"
                                " WHERE hour >= ?1 AND hour < ?2 GROUP BY hour, class"
                                " ORDER BY hour";
const char SQL_ROLLUP_CLIENTS[] =
    "SELECT client, address, SUM(CASE class WHEN 0 THEN n ELSE 0 END),"
    " SUM(CASE class WHEN 1 THEN n ELSE 0 END), SUM(CASE class WHEN 2 THEN n ELSE 0 END),"
    " SUM(CASE class WHEN 3 THEN n ELSE 0 END), MAX(last) FROM audit_rollup"
    " WHERE hour >= ?1 AND hour < ?2 GROUP BY client, address"
    " ORDER BY SUM(n) DESC, client, address LIMIT ?3";

/* ------------------------------------------------------------ subscriptions */

#define SUBSCRIPTION_COLUMNS "id, owner, type, criteria, end_ms, enabled, events"
#define NOTE_COLUMNS                                                                               \
    "seq, subscription, position, event, kind, focus_type, focus_id, focus_version, state,"        \
    " attempts, next_at, created, last_error"

const char SQL_SUBSCRIPTION_PUT[] =
    "INSERT INTO subscriptions (id, owner, type, criteria, end_ms, enabled)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET owner = ?2, type = ?3,"
    " criteria = ?4, end_ms = ?5, enabled = ?6";
const char SQL_SUBSCRIPTION_REMOVE[] = "DELETE FROM subscriptions WHERE id = ?1";
/* subscriptions_by_owner (owner, type): the matcher's question on every write */
const char SQL_SUBSCRIPTIONS_OF[] =
    "SELECT " SUBSCRIPTION_COLUMNS " FROM subscriptions"
    " WHERE owner = ?1 AND (CAST(?2 AS text) IS NULL OR type = ?2) ORDER BY id";
const char SQL_SUBSCRIPTION_GET[] =
    "SELECT " SUBSCRIPTION_COLUMNS " FROM subscriptions WHERE id = ?1";
const char SQL_NOTE_NUMBERS[] = "UPDATE subscriptions SET queued = queued + 1,"
                                " events = events + ?2 WHERE id = ?1 RETURNING queued, events";
const char SQL_NOTE_ADD[] =
    "INSERT INTO notifications (subscription, position, event, kind, focus_type, focus_id,"
    " focus_version, state, next_at, created, updated)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?8) RETURNING seq";
/* notifications_by_state (state, subscription, position) */
const char SQL_NOTE_DROP[] = "UPDATE notifications SET state = 3, updated = ?2"
                             " WHERE state = 0 AND subscription = ?1";
const char SQL_NOTE_HEADS[] =
    "SELECT " NOTE_COLUMNS " FROM notifications n WHERE n.state = 0 AND n.position ="
    " (SELECT MIN(m.position) FROM notifications m WHERE m.state = 0"
    " AND m.subscription = n.subscription) ORDER BY n.next_at, n.seq LIMIT ?1";
const char SQL_NOTE_PENDING[] = "SELECT " NOTE_COLUMNS " FROM notifications"
                                " WHERE state = 0 AND subscription = ?1 ORDER BY position LIMIT ?2";
const char SQL_NOTE_SETTLE[] =
    "UPDATE notifications SET state = ?2, attempts = attempts + 1, next_at = ?3,"
    " updated = ?4, last_error = ?5 WHERE seq = ?1 AND state = 0";
/* /metrics: one row per subscription (few), its counts by seeks */
const char SQL_NOTE_STATS[] =
    "SELECT s.id,"
    " (SELECT COUNT(*) FROM notifications n WHERE n.state = 0 AND n.subscription = s.id),"
    " (SELECT COUNT(*) FROM notifications n WHERE n.state = 2 AND n.subscription = s.id),"
    " (SELECT MIN(n.created) FROM notifications n WHERE n.state = 0"
    "  AND n.subscription = s.id) FROM subscriptions s ORDER BY s.id";

const struct store_statement store_statements[] = {
    {"resource lookup", SQL_RESOURCE_LOOKUP},
    {"next seq", SQL_NEXT_SEQ},
    {"resource insert", SQL_RESOURCE_INSERT},
    {"resource add", SQL_RESOURCE_ADD},
    {"resource update", SQL_RESOURCE_UPDATE},
    {"version insert", SQL_VERSION_INSERT},
    {"index retire", SQL_INDEX_RETIRE},
    {"index retire delete", SQL_INDEX_RETIRE_DELETE},
    {"index insert", SQL_INDEX_INSERT},
    {"width raise", SQL_WIDTH_RAISE},
    {"width read", SQL_WIDTH_READ},
    {"read current", SQL_READ_CURRENT},
    {"read version", SQL_READ_VERSION},
    {"history", SQL_HISTORY},
    {"snapshot", SQL_SNAPSHOT},
    {"version at or after", SQL_VERSION_AT_OR_AFTER},
    {"last time", SQL_LAST_TIME},
    {"audit head", SQL_AUDIT_HEAD},
    {"audit insert", SQL_AUDIT_INSERT},
    {"audit index insert", SQL_AUDIT_INDEX_INSERT},
    {"audit index insert 8", SQL_AUDIT_INDEX_INSERT_8},
    {"audit index insert 32", SQL_AUDIT_INDEX_INSERT_32},
    {"audit index insert 8 (PostgreSQL)", SQL_AUDIT_INDEX_INSERT_8_PG},
    {"audit index insert 32 (PostgreSQL)", SQL_AUDIT_INDEX_INSERT_32_PG},
    {"audit snapshot", SQL_AUDIT_SNAPSHOT},
    {"audit at or after", SQL_AUDIT_AT_OR_AFTER},
    {"audit last time", SQL_AUDIT_LAST_TIME},
    {"audit scan", SQL_AUDIT_SCAN},
    {"outbox insert", SQL_OUTBOX_INSERT},
    {"outbox lease set", SQL_OUTBOX_LEASE_SET},
    {"outbox settle", SQL_OUTBOX_SETTLE},
    {"outbox by control id", SQL_OUTBOX_BY_CONTROL_ID},
    {"outbox by control ids", SQL_OUTBOX_BY_CONTROL_IDS},
    {"outbox accept set", SQL_OUTBOX_ACCEPT_SET},
    {"outbox attempt", SQL_OUTBOX_ATTEMPT},
    {"outbox next", SQL_OUTBOX_NEXT},
    {"outbox for", SQL_OUTBOX_FOR},
    {"outbox open counts", SQL_OUTBOX_OPEN_COUNTS},
    {"outbox dead counts", SQL_OUTBOX_DEAD_COUNTS},
    {"outbox oldest", SQL_OUTBOX_OLDEST},
    {"inbound seen", SQL_INBOUND_SEEN},
    {"inbound record", SQL_INBOUND_RECORD},
    {"site grant", SQL_SITE_GRANT},
    {"site visible", SQL_SITE_VISIBLE},
    {"roll-up tally", SQL_ROLLUP_TALLY},
    {"roll-up hours", SQL_ROLLUP_HOURS},
    {"roll-up clients", SQL_ROLLUP_CLIENTS},
    {"subscription put", SQL_SUBSCRIPTION_PUT},
    {"subscription remove", SQL_SUBSCRIPTION_REMOVE},
    {"subscriptions of an owner", SQL_SUBSCRIPTIONS_OF},
    {"subscription get", SQL_SUBSCRIPTION_GET},
    {"notification numbers", SQL_NOTE_NUMBERS},
    {"notification add", SQL_NOTE_ADD},
    {"notification drop", SQL_NOTE_DROP},
    {"notification heads", SQL_NOTE_HEADS},
    {"notification pending", SQL_NOTE_PENDING},
    {"notification settle", SQL_NOTE_SETTLE},
    {"notification statistics", SQL_NOTE_STATS},
};
const size_t store_n_statements = sizeof store_statements / sizeof store_statements[0];

/* ------------------------------------------------------------ outbox, built */

/* One arm per site, each in seq order on outbox_open, merged: pending and
 * lease-expired messages, oldest first, whose earlier messages about the same
 * resource are all final (outbox_by_ref). */
void outbox_lease_sql(struct sql *q, const char *const *sites, size_t n_sites, int64_t now_ms,
                      size_t max)
{
    size_t i;

    sql_text(q, "SELECT " OUTBOX_COLUMNS " FROM (");
    for (i = 0; i < n_sites || i == 0; i++) {
        if (i)
            sql_text(q, " UNION ALL ");
        sql_text(q, "SELECT w.seq AS seq FROM outbox w WHERE w.site = ");
        if (n_sites)
            sql_bind_text(q, sites[i]);
        else
            sql_text(q, "NULL");
        sql_text(q, " AND w.state < 2 AND (w.state = 0 OR w.lease_until <= ");
        sql_bind_int(q, now_ms);
        sql_text(q, ") AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.ref_type = w.ref_type"
                    " AND e.ref_id = w.ref_id AND e.seq < w.seq AND e.state < 2)");
    }
    sql_text(q, " ORDER BY 1 LIMIT ");
    sql_bind_int(q, (int64_t)max);
    sql_text(q, ") m CROSS JOIN outbox o WHERE o.seq = m.seq ORDER BY o.seq");
}
