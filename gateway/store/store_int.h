/* store_int.h -- what the store's own files share: the handles, the writer
 * queue, statement helpers. Not for other modules. */
#ifndef GW_STORE_INT_H
#define GW_STORE_INT_H

#include "store/store.h"

#include <pthread.h>

#include <sqlite3.h>

#define STORE_BUSY_TIMEOUT_MS     10000
#define STORE_MAX_BINDS           512
#define STORE_MAX_SQL             (256 * 1024)
#define STORE_MAX_JSON            (64 * 1024 * 1024)
#define STORE_CHECKPOINT_EVERY_MS 100
#define STORE_WAL_RESTART_FRAMES  8192   /* a WAL longer (32 MB of 4 KB pages) is restarted */
#define STORE_STMT_CACHE          48     /* prepared statements kept for the writer */
#define STORE_WRITER_CACHE_KB     "8192" /* the writer's page cache: a batch of ~100 referrals */

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

/* The writer's prepared statements, keyed by their (static) SQL text. */
struct stmt_cache {
    const char *sql[STORE_STMT_CACHE];
    sqlite3_stmt *stmt[STORE_STMT_CACHE];
    size_t n;
};

struct store {
    char *path;
    char *hmac_key;
    long commit_timeout_ms;
    long max_batch;
    /* readers: a pool guarded by pool_lock */
    sqlite3 **readers;
    bool *reader_busy;
    size_t n_readers;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cv;
    /* the writer */
    sqlite3 *wdb;
    struct stmt_cache wcache; /* only the writer thread touches it */
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cv;    /* work queued, or stopping */
    pthread_cond_t done_cv; /* some store_write() job finished */
    struct job *q_head, *q_tail;
    bool stopping;
    int64_t last_commit_ms;
    bool wal_restart; /* the checkpointer asks the writer to restart the WAL (q_lock) */
    int schema_version;
    struct store_fault fault;
    /* the checkpointer: copies the WAL into the database off the writer's path */
    sqlite3 *cdb;
    pthread_cond_t ckpt_cv; /* wakes the checkpointer (stopping) */
    pthread_t checkpointer;
    bool checkpointer_started;
    /* notifications: commits that changed them wake store_note_wait() (q_lock) */
    pthread_cond_t note_cv;
    uint64_t note_changes;
};

struct store_txn {
    struct store *st;
    sqlite3 *db; /* NULL while recording */
    int64_t now_ms;
    char chain_head[65];         /* the last audit hash, this txn's view */
    bool notes_changed;          /* a notification was queued, settled or dropped */
    struct store_recording *rec; /* set: writes are recorded, reads go to a reader */
};

/* A bound value for dynamically built statements. */
struct bind {
    bool is_int;
    int64_t i;
    const char *s;
};

struct sql {
    struct gw_buf text;
    struct bind binds[STORE_MAX_BINDS];
    size_t n_binds;
    bool overflow;
};

void sql_init(struct sql *q);
void sql_cleanup(struct sql *q);
void sql_text(struct sql *q, const char *s);
void sql_bind_text(struct sql *q, const char *s); /* appends "?" and binds s */
void sql_bind_int(struct sql *q, int64_t v);      /* appends "?" and binds v */
/* Prepares q on db with its binds; GW_E_LIMIT/GW_E_STORE on failure. */
enum gw_code sql_prepare(sqlite3 *db, struct sql *q, sqlite3_stmt **out, struct gw_error *err);

/* Prepares sql and binds texts (NULL binds NULL); one-shot helpers. */
enum gw_code stmt_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, struct gw_error *err);
enum gw_code stmt_exec(sqlite3 *db, const char *sql, struct gw_error *err);
enum gw_code store_fail_db(sqlite3 *db, struct gw_error *err, const char *what);
/* A writer statement for sql, a static string: prepared once, then reused.
 * Give it back with stmt_release() (reset, binds cleared), never finalize it. */
enum gw_code stmt_txn(struct store_txn *txn, const char *sql, sqlite3_stmt **out,
                      struct gw_error *err);
void stmt_release(sqlite3_stmt *s);
void stmt_cache_clear(struct stmt_cache *c);
/* Copies column i as a new string (NULL stays NULL); false on OOM. */
bool column_dup(sqlite3_stmt *s, int i, char **out);

/* schema.c */
enum gw_code schema_migrate(sqlite3 *db, int *version, struct gw_error *err);

/* readers (store.c) */
sqlite3 *reader_acquire(struct store *st);
void reader_release(struct store *st, sqlite3 *db);

/* resources.c */
enum gw_code resources_read(sqlite3 *db, const char *type, const char *id, long version,
                            struct store_resource *out, struct gw_error *err);
/* Current version of type/id in the txn, 0 when it does not exist. */
enum gw_code resources_current_version(struct store_txn *txn, const char *type, const char *id,
                                       long *version, struct gw_error *err);
/* Sets meta.versionId and meta.lastUpdated on the resource. */
enum gw_code resources_stamp_meta(json_t *resource, long version, int64_t ms, struct gw_error *err);
/* GW_E_CONFLICT when p's create or if_match does not fit the current version. */
enum gw_code resources_check_preconditions(const struct store_put *p, long current,
                                           struct gw_error *err);
/* Inserts version `version` of p->type/p->id with its text and index rows
 * (no precondition checked); *seq gets the version's seq. */
enum gw_code resources_insert(struct store_txn *txn, const struct store_put *p, long version,
                              const char *json, int64_t *seq, struct gw_error *err);
enum gw_code resource_from_row(sqlite3_stmt *s, struct store_resource *out);
/* Writes index rows for seq into search_index, or audit_index when audit. */
enum gw_code index_insert(struct store_txn *txn, bool audit, int64_t seq,
                          const struct store_index_entry *e, size_t n, struct gw_error *err);

/* search.c */
enum gw_code search_run(sqlite3 *db, const struct store_query *q, const char *history_id,
                        bool history, struct store_page *out, struct gw_error *err);

/* notes.c: after a COMMIT of a txn whose notes_changed is set. */
void notes_committed(struct store *st);

/* auditlog.c */
/* The chain's last hash, read on the writer inside its transaction (a
 * statement it keeps prepared). */
enum gw_code audit_head_load(struct store_txn *txn, char out[65], struct gw_error *err);

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
/* On the writer: replays j's recording when what it read is unchanged
 * (j->rc, j->err set); false when it must be redone (the caller rolls back). */
bool record_replay(struct store_txn *txn, struct job *j);
void record_free(struct store_recording *rec);

#endif
