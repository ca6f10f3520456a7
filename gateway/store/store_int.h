/* store_int.h -- what the store's own files share: the handles, the writer
 * queue, statement helpers. Not for other modules. */
#ifndef GW_STORE_INT_H
#define GW_STORE_INT_H

#include "store/store.h"

#include <pthread.h>

#include "store/db.h"

#define STORE_BUSY_TIMEOUT_MS     10000
#define STORE_MAX_BINDS           4096 /* values one dynamic statement binds */
#define STORE_MAX_SQL             (256 * 1024)
#define STORE_MAX_JSON            (64 * 1024 * 1024)
#define STORE_CHECKPOINT_EVERY_MS 100
#define STORE_WAL_RESTART_FRAMES  8192 /* a WAL longer (32 MB of 4 KB pages) is emptied */
#define STORE_WAL_RESTART_WAIT_MS 200  /* longest wait for readers when emptying it */
#define STORE_WAL_KEPT_BYTES      (64LL * 1024 * 1024) /* a restarted WAL's file is cut to this */
#define STORE_WAL_RETRY_MS        2000    /* readers held it past that: the next try, after */
#define STORE_WAL_NUDGE_FRAMES    2048    /* the WAL grew by that much: checkpoint it now */
#define STORE_STMT_CACHE          64      /* prepared statements kept for the writer */
#define STORE_WIDTHS_KEPT         16      /* date parameters whose width a writer txn keeps */
#define STORE_WRITER_CACHE_KB     "16384" /* the writer's page cache (SQLite's default: 2 MB) */
#define STORE_WALBUF_VFS          "gw-walbuf"
#define STORE_WAL_BUFFER_BYTES    (4u * 1024 * 1024) /* WAL writes gathered before one write() */

/* A queued write. state: QUEUED (in the list) → RUNNING (writer took it) → DONE.
 * A job of store_write() lives on its caller's stack and is woken through
 * done_cv; a job of store_submit() is allocated by the store, answered through
 * on_done and freed right after. */
enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct store_recording;

struct job {
    struct job *next;
    store_apply_fn apply;
    store_audit_fn audit;
    void *ctx;
    struct store_recording *rec; /* store_submit_prepared(): what to replay */
    store_reset_fn reset;        /* ...and how to start over when it cannot be */
    bool redo;                   /* reset and run on the writer (it was, in an earlier run) */
    store_done_fn on_done;       /* NULL: a store_write() caller waits for it */
    void *done_ctx;
    int64_t queued_mono_ms;
    enum job_state state;
    enum gw_code rc;
    struct gw_error err;
};

/* The writer's health, for store_ping() (/readyz): the last failure that says the
 * store cannot write (a failed commit, or a job that met an I/O error: a full disk,
 * a read-only file), kept until a commit succeeds again. Guarded by its lock. */
struct store_fault {
    pthread_mutex_t lock;
    enum gw_code code; /* GW_OK: healthy */
    char msg[GW_ERROR_MSG_MAX];
    int64_t since_ms;      /* first failure of this run of failures (epoch ms) */
    int64_t last_ms;       /* the latest one */
    int64_t probe_mono_ms; /* when store_ping() last tried a write */
};

/* Prepared statements of dynamic SQL, kept by their text (the writer's
 * conditional lookups repeat a few shapes; preparing one costs more than
 * running it). Least recently used goes first. */
#define STORE_TEXT_CACHE 16

struct text_cache {
    char *text[STORE_TEXT_CACHE];
    struct db_stmt *stmt[STORE_TEXT_CACHE];
    uint64_t used[STORE_TEXT_CACHE];
    uint64_t tick;
};

/* The writer's prepared statements, keyed by their (static) SQL text. */
struct stmt_cache {
    const char *sql[STORE_STMT_CACHE];
    struct db_stmt *stmt[STORE_STMT_CACHE];
    size_t n;
};

struct store {
    char *path;
    /* PostgreSQL (pg_store.c): set when the store is one */
    bool pg;
    char *instance_id;
    char target[256]; /* store_target() */
    char *owner;      /* instance_id/nonce: this process, in push leases */
    long push_lease_s;
    int64_t pg_retry_mono_ms; /* the writer's next reconnection attempt, not before */
    int pg_failures;          /* failed reconnections in a row */
    char *hmac_key;
    long commit_timeout_ms;
    long max_batch;
    /* readers: a pool guarded by pool_lock */
    struct db **readers;
    bool *reader_busy;
    size_t n_readers;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cv;
    /* the writer */
    struct db *wdb;
    struct stmt_cache wcache; /* only the writer thread touches it */
    struct text_cache wtext;  /* the same, for dynamic statements (searches in a txn) */
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cv;    /* work queued, or stopping */
    pthread_cond_t done_cv; /* some store_write() job finished */
    struct job *q_head, *q_tail;
    bool stopping;
    int64_t last_commit_ms;
    bool wal_restart;          /* a commit left the WAL long: empty it (writer thread only) */
    int64_t wal_retry_mono_ms; /* not before (readers held it last time) */
    int wal_nudged;            /* the WAL length (in STORE_WAL_NUDGE_FRAMES) that last woke
                                * the checkpointer (writer thread only) */
    int schema_version;
    struct store_fault fault;
    /* the checkpointer: copies the WAL into the database off the writer's path */
    struct db *cdb;
    pthread_cond_t ckpt_cv; /* wakes the checkpointer (stopping, or the WAL grew) */
    pthread_mutex_t ckpt_lock; /* held by whoever checkpoints: the checkpointer, or the
                                * writer restarting the log (restart_wal()) */
    pthread_t checkpointer;
    bool checkpointer_started;
    /* notifications: commits that changed them wake store_note_wait() (q_lock) */
    pthread_cond_t note_cv;
    uint64_t note_changes;
};

/* The audit chain's last event: the next one links to its hash and takes
 * seq + 1 (gapless, under the write lock). */
struct audit_head {
    char hash[65];
    int64_t seq; /* 0: no event yet */
};

struct store_txn {
    struct store *st;
    struct db *db; /* NULL while recording */
    int64_t now_ms;
    struct audit_head audit; /* the chain's last event, this txn's view */
    /* SQLite: date_widths rows as committed before this txn (the first read of
     * each pid, before any write of it), so that narrower ranges skip the
     * upsert (resources.c raise_width); a few pids, others always upsert */
    struct {
        int64_t pid, width;
    } widths[STORE_WIDTHS_KEPT];
    size_t n_widths;
    bool widths_off;             /* a read failed: the rest of the txn always upserts */
    bool notes_changed;          /* a notification was queued, settled or dropped */
    struct store_recording *rec; /* set: writes are recorded, reads go to a reader */
    char xid[32];                /* PostgreSQL: the transaction's id, to resolve a lost COMMIT */
};

/* A bound value for dynamically built statements. */
struct bind {
    bool is_int;
    int64_t i;
    const char *s;
};

/* A statement being built: text, its binds (borrowed strings, or strings
 * the statement owns), and a sticky failure (too many binds, no memory). */
struct sql {
    struct gw_buf text;
    struct bind *binds;
    size_t n_binds, cap_binds;
    char **owned;
    size_t n_owned, cap_owned;
    bool overflow; /* more than STORE_MAX_BINDS */
    bool nomem;
    bool pg; /* PostgreSQL's dialect (else SQLite's) */
};

void sql_init(struct sql *q);
void sql_cleanup(struct sql *q);
void sql_text(struct sql *q, const char *s);
void sql_textf(struct sql *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sql_bind_text(struct sql *q, const char *s); /* appends "?" and binds s (borrowed) */
void sql_bind_owned(struct sql *q, char *s);      /* the same, taking s (free()d at cleanup) */
void sql_bind_int(struct sql *q, int64_t v);      /* appends "?" and binds v */
/* Failure of the building so far: GW_OK, GW_E_LIMIT or GW_E_NOMEM. */
enum gw_code sql_status(const struct sql *q, struct gw_error *err);
/* Prepares q on db with its binds; GW_E_LIMIT/GW_E_STORE on failure. */
enum gw_code sql_prepare(struct db *db, struct sql *q, struct db_stmt **out, struct gw_error *err);
/* The same for a statement whose rows may be many (db_prepare_stream()). */
enum gw_code sql_prepare_stream(struct db *db, struct sql *q, struct db_stmt **out,
                                struct gw_error *err);

/* A connection and, for the writer, its statement cache (NULL: none). */
struct conn {
    struct db *db;
    struct text_cache *cache;
};
/* Prepares q (binds included) on c, from its cache when it has one. */
enum gw_code conn_prepare(struct conn *c, struct sql *q, struct db_stmt **out,
                          struct gw_error *err);
/* The same for a fixed statement without binds yet. */
enum gw_code conn_prepare_fixed(struct conn *c, const char *text, struct db_stmt **out,
                                struct gw_error *err);
/* Gives a statement of conn_prepare*() back (NULL is fine). */
void conn_done(struct conn *c, struct db_stmt *s);
void text_cache_clear(struct text_cache *c);

/* Prepares sql and binds texts (NULL binds NULL); one-shot helpers. */
enum gw_code stmt_prepare(struct db *db, const char *sql, struct db_stmt **out,
                          struct gw_error *err);
enum gw_code stmt_prepare_stream(struct db *db, const char *sql, struct db_stmt **out,
                                 struct gw_error *err);
enum gw_code stmt_exec(struct db *db, const char *sql, struct gw_error *err);
enum gw_code store_fail_db(struct db *db, struct gw_error *err, const char *what);
/* A writer statement for sql, a static string: prepared once, then reused.
 * Give it back with stmt_release() (reset, binds cleared), never finalize it. */
enum gw_code stmt_txn(struct store_txn *txn, const char *sql, struct db_stmt **out,
                      struct gw_error *err);
void stmt_release(struct db_stmt *s);
void stmt_cache_clear(struct stmt_cache *c);
/* Copies column i as a new string (NULL stays NULL); false on OOM. */
bool column_dup(struct db_stmt *s, int i, char **out);

/* pg_store.c: the PostgreSQL side of opening, the writer's batch and its commit. */
enum gw_code pg_store_open(struct store *st, const struct config *cfg, struct gw_error *err);
void pg_store_close(struct store *st);
/* Before a batch: the writer's connection usable (reconnecting at most once per
 * backoff step), else fails at once with the reason. */
enum gw_code pg_batch_ready(struct store *st, struct gw_error *err);
/* After BEGIN: the head row locked (every instance's writes serialise on it),
 * txn->now_ms and txn->xid set. */
enum gw_code pg_batch_begin(struct store_txn *txn, struct gw_error *err);
/* The head written back and COMMIT; a COMMIT whose answer was lost is resolved
 * with the transaction's status. Rolls back on failure. */
enum gw_code pg_batch_commit(struct store_txn *txn, struct gw_error *err);
/* schema_pg.c: the PostgreSQL schema, same version numbers as SQLite's. */
enum gw_code schema_migrate_pg(struct db *db, const char *instance_id, int *version,
                               struct gw_error *err);

/* schema.c */
enum gw_code schema_migrate(struct db *db, int *version, struct gw_error *err);
/* Ends the migration to version begun on db: COMMIT when rc (its steps' outcome) is
 * GW_OK, else (or when COMMIT fails) ROLLBACK and a failure naming the version. */
enum gw_code schema_migration_end(struct db *db, int version, enum gw_code rc,
                                  struct gw_error *err);
/* The id of search parameter name of type: a 31-bit FNV-1a hash of
 * "Type.name", the same in C and in SQL (gw_param_id, for migrations).
 * tests/unit/test_search.c checks the R4 model's parameters never collide. */
int64_t store_param_id(const char *type, const char *name);

/* statements.c: the fixed statements, by name (the plan test reads them all). */
struct store_statement {
    const char *name;
    const char *sql;
};
extern const struct store_statement store_statements[];
extern const size_t store_n_statements;
extern const char SQL_RESOURCE_LOOKUP[], SQL_NEXT_SEQ[], SQL_RESOURCE_INSERT[], SQL_RESOURCE_ADD[],
    SQL_RESOURCE_UPDATE[], SQL_VERSION_INSERT[], SQL_INDEX_RETIRE[], SQL_INDEX_RETIRE_DELETE[],
    SQL_INDEX_INSERT[], SQL_WIDTH_RAISE[], SQL_WIDTH_READ[], SQL_READ_CURRENT[], SQL_READ_VERSION[],
    SQL_HISTORY[], SQL_SNAPSHOT[], SQL_VERSION_AT_OR_AFTER[], SQL_LAST_TIME[], SQL_AUDIT_HEAD[],
    SQL_AUDIT_INSERT[], SQL_AUDIT_INDEX_INSERT[], SQL_AUDIT_INDEX_INSERT_8[],
    SQL_AUDIT_INDEX_INSERT_32[], SQL_AUDIT_INDEX_INSERT_8_PG[], SQL_AUDIT_INDEX_INSERT_32_PG[],
    SQL_AUDIT_SNAPSHOT[], SQL_AUDIT_AT_OR_AFTER[], SQL_AUDIT_LAST_TIME[], SQL_AUDIT_SCAN[],
    SQL_OUTBOX_INSERT[], SQL_OUTBOX_LEASE_SET[], SQL_OUTBOX_SETTLE[], SQL_OUTBOX_BY_CONTROL_ID[],
    SQL_OUTBOX_BY_CONTROL_IDS[], SQL_OUTBOX_ACCEPT_SET[], SQL_OUTBOX_ATTEMPT[], SQL_OUTBOX_NEXT[],
    SQL_OUTBOX_FOR[], SQL_OUTBOX_OPEN_COUNTS[], SQL_OUTBOX_DEAD_COUNTS[], SQL_OUTBOX_OLDEST[],
    SQL_INBOUND_SEEN[], SQL_INBOUND_RECORD[], SQL_SITE_GRANT[], SQL_SITE_VISIBLE[],
    SQL_ROLLUP_TALLY[], SQL_ROLLUP_HOURS[], SQL_ROLLUP_CLIENTS[], SQL_SUBSCRIPTION_PUT[],
    SQL_SUBSCRIPTION_REMOVE[], SQL_SUBSCRIPTIONS_OF[], SQL_SUBSCRIPTION_GET[], SQL_NOTE_NUMBERS[],
    SQL_NOTE_ADD[], SQL_NOTE_DROP[], SQL_NOTE_HEADS[], SQL_NOTE_PENDING[], SQL_NOTE_SETTLE[],
    SQL_NOTE_STATS[];
#define OUTBOX_LEASE_SET                                                                           \
    64 /* seqs (control ids) in SQL_OUTBOX_LEASE_SET, _BY_CONTROL_IDS, _ACCEPT_SET */
/* Leasable messages of the sites, oldest first, at most max. */
void outbox_lease_sql(struct sql *q, const char *const *sites, size_t n_sites, int64_t now_ms,
                      size_t max);

/* searchsql.c: the statements of a search, built from a query and the bounds
 * search.c works out first (no database calls here). */
#define SEARCH_WIDTH_UNKNOWN INT64_MAX /* no bound on a parameter's date ranges */

struct search_bounds {
    int64_t snapshot;       /* versions (audit rows) committed up to this seq */
    bool settled;           /* nothing was committed after snapshot: no version
                               visible at it has been superseded since */
    int64_t seq_lo, seq_hi; /* _lastUpdated (audit: date) as a seq range [lo, hi] */
    const int64_t *widths;  /* per cond: widest date range of its parameter, or NULL */
};

enum search_part {
    SEARCH_PAGE,  /* the page's rows, in resource_from_row() order */
    SEARCH_COUNT, /* one row: the number of matches */
    SEARCH_ALL,   /* every match, in order, without a page's bounds (a cursor) */
};

/* True when q searches the audit log rather than versioned resources. */
bool search_is_audit(const struct store_query *q);
/* Builds the statement for part of q into out (check sql_status()). */
void search_sql_build(const struct store_query *q, const struct search_bounds *b,
                      enum search_part part, struct sql *out);
/* The index of the cond that drives q (-1: the scope or type listing does). */
int search_driver(const struct store_query *q);
/* The date range [lo, hi) of times a date cond of _lastUpdated (or AuditEvent
 * date) allows; the whole line when it cannot narrow it. */
void search_time_range(const struct store_cond *c, int64_t *lo, int64_t *hi);

/* readers (store.c) */
struct db *reader_acquire(struct store *st);
void reader_release(struct store *st, struct db *db);

/* resources.c */
enum gw_code resources_read(struct db *db, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err);
/* What the store holds of a resource before a put (rid 0: nothing). */
struct resource_current {
    int64_t rid, seq;
    long version;
};
/* The current row of type/id in the txn (writer thread): one seek of
 * resources' (type, id). */
enum gw_code resources_current(struct store_txn *txn, const char *type, const char *id,
                               struct resource_current *cur, struct gw_error *err);
/* Sets meta.versionId and meta.lastUpdated on the resource. */
enum gw_code resources_stamp_meta(json_t *resource, long version, int64_t ms, struct gw_error *err);
/* GW_E_CONFLICT when p's create or if_match does not fit the current version. */
enum gw_code resources_check_preconditions(const struct store_put *p, long current,
                                           struct gw_error *err);
/* Writes version cur->version + 1 of p->type/p->id with its text json: the
 * version row, the resources row, the move of the previous version's index
 * entries to search_history, the new entries and the site grant (no
 * precondition checked). cur is what resources_current() found; a new
 * resource's rid is set in it. *seq gets the version's seq. */
enum gw_code resources_insert(struct store_txn *txn, const struct store_put *p,
                              struct resource_current *cur, const char *json, int64_t *seq,
                              struct gw_error *err);
enum gw_code resource_from_row(struct db_stmt *s, struct store_resource *out);

/* search.c */
enum gw_code search_run(struct conn *c, const struct store_query *q, bool in_txn,
                        struct store_page *out, struct gw_error *err);
/* The first seq whose time (versions' last_updated, or audit's recorded) is
 * at least t_ms: a binary search, as times never go backwards with seq. */
enum gw_code search_seq_at(struct conn *c, bool audit, int64_t t_ms, int64_t *seq,
                           struct gw_error *err);
/* The newest commit time in the store (0 when empty): the writer starts its
 * clock there, so times keep growing with seq across restarts. */
int64_t store_last_time(struct db *db);

/* notes.c: after a COMMIT of a txn whose notes_changed is set. */
void notes_committed(struct store *st);

/* auditlog.c */
/* The chain's last event (hash and seq), read on the writer inside its
 * transaction (a statement it keeps prepared). */
enum gw_code audit_head_load(struct store_txn *txn, struct audit_head *out, struct gw_error *err);

/* record.c: store_submit_prepared()'s recording transactions. Each
 * store_txn_* function hands a recording txn to its record_* twin. */
enum gw_code record_read(struct store_txn *txn, const char *type, const char *id, long version,
                         struct store_resource *out, struct gw_error *err);
enum gw_code record_search(struct store_txn *txn, const struct store_query *q,
                           struct store_page *out, struct gw_error *err);
enum gw_code record_put(struct store_txn *txn, const struct store_put *p, struct store_written *out,
                        struct gw_error *err);
enum gw_code record_outbox_add(struct store_txn *txn, const struct store_outbox_new *m,
                               struct gw_error *err);
enum gw_code record_audit_append(struct store_txn *txn, const char *id, int64_t recorded_ms,
                                 const char *canonical, const struct store_index_entry *index,
                                 size_t n_index, struct gw_error *err);
enum gw_code record_audit_tally(struct store_txn *txn, const char *client, const char *address,
                                int cls, long n, struct gw_error *err);
enum gw_code record_site_grant(struct store_txn *txn, const char *type, const char *id,
                               const char *site, struct gw_error *err);
enum gw_code record_site_visible(struct store_txn *txn, const char *type, const char *id,
                                 const char *const *sites, size_t n_sites, bool *visible,
                                 struct gw_error *err);
enum gw_code record_writer_step(struct store_txn *txn, store_step_fn step, const void *arg,
                                size_t arg_len, struct gw_error *err);
struct store_recording *record_begin(void); /* NULL on OOM */
int64_t record_now(const struct store_recording *rec);
/* Whether what follows is the apply step's (true) or the audit step's. */
void record_set_phase(struct store_recording *rec, bool in_apply);
/* The apply step failed: its writes are dropped, its outcome kept. */
void record_apply_failed(struct store_recording *rec, enum gw_code rc, const struct gw_error *why);
/* False when something could not be recorded: the writer must do it all. */
bool record_usable(const struct store_recording *rec);
/* For the writes a recording cannot hold: the work is redone on the writer. */
enum gw_code record_unsupported(struct store_txn *txn, struct gw_error *err);
/* What record_replay() did. */
enum replay_outcome {
    REPLAY_DONE,    /* every write made; j->rc and j->err are the recorded outcome */
    REPLAY_CHANGED, /* an answer changed: nothing was written, the job is redone */
    REPLAY_FAILED,  /* a write failed (why says): the txn may hold part of the job */
};
/* On the writer: asks every question of j's recording again (reads, searches,
 * site visibility, each put's current version) before any write, then makes
 * the writes. The recording stays with j (a batch may be run twice: replaying
 * again gives the same rows, stamped with that run's commit time). */
enum replay_outcome record_replay(struct store_txn *txn, struct job *j, struct gw_error *why);
void record_free(struct store_recording *rec);

/* ---------------------------------------------------------------- walbuf.c */

/* The name of the VFS that gathers each commit's WAL writes into one write() (see
 * walbuf.c), registered on the first call; NULL (SQLite's default VFS) if it could
 * not be. It relies on synchronous=FULL, which every store connection sets. */
const char *store_walbuf_vfs(void);
/* WAL writes SQLite asked for, and writes that reached the file, since the start. */
void store_walbuf_counts(long long *received, long long *issued);

#endif
