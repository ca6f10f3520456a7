/* db.h -- the statement layer under the store's SQL: one API over SQLite and
 * PostgreSQL, shaped like the sqlite3 statement API the store was written on
 * (prepare, bind, step → DB_ROW | DB_DONE, column_*, reset, finalize).
 *
 * Owns:      a connection (struct db: a sqlite3 handle or a struct pgc) and its
 *            statements (struct db_stmt).
 * Promises:  the same SQL text runs on both: "?" and "?N" placeholders become
 *            PostgreSQL's "$N" at prepare time (outside quoted strings); a
 *            PostgreSQL statement runs at its first step and its rows are walked
 *            from the result; a persistent statement is prepared once per session
 *            (again after a reconnection); a statement outside a transaction that
 *            only reads is run again once when the connection turned out lost.
 *            bytea columns read as their bytes (db_column_text/_bytes).
 * Never:     splices a value into SQL.
 * Threads:   a struct db and its statements belong to one thread at a time.
 * Ownership: bound text and bytes are borrowed until the statement is reset or
 *            finalized; column pointers are valid until the next step or reset.
 *
 * Internal to store/ and its unit tests.
 */
#ifndef GW_STORE_DB_H
#define GW_STORE_DB_H

#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

struct pgc;
struct pgc_opts;

enum db_dialect { DB_SQLITE, DB_PG };

/* Outcomes of db_step() and the binding/reset calls (SQLite's values). */
#define DB_OK    0
#define DB_ERROR 1
#define DB_ROW   100
#define DB_DONE  101

struct db;
struct db_stmt;

/* SQLite: opens path (created when create), with the store's pragmas. */
enum gw_code db_open_sqlite(const char *path, bool create, struct db **out, struct gw_error *err);
/* PostgreSQL: connects as pgc_open() does (retries, should_stop). */
enum gw_code db_open_pg(const struct pgc_opts *opts, struct db **out, struct gw_error *err);
void db_close(struct db *db); /* NULL is fine */

enum db_dialect db_dialect(const struct db *db);
sqlite3 *db_sqlite(struct db *db); /* NULL on PostgreSQL */
struct pgc *db_pgc(struct db *db); /* NULL on SQLite */

/* Prepares sql (one statement); persistent: kept and run many times. DB_OK or
 * DB_ERROR (db_fail() says why). */
int db_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out);
/* The same for a statement whose rows may be many: PostgreSQL hands them over one at
 * a time (bounded memory); nothing else may run on db until it is done, reset or
 * finalized. */
int db_prepare_stream(struct db *db, const char *sql, struct db_stmt **out);
int db_bind_int64(struct db_stmt *s, int i, int64_t v);
int db_bind_text(struct db_stmt *s, int i, const char *text); /* NULL binds NULL */
int db_bind_blob(struct db_stmt *s, int i, const void *data, int len);
int db_bind_null(struct db_stmt *s, int i);
int db_step(struct db_stmt *s);
/* A statement that returns no rows and whose outcome may wait: PostgreSQL sends a kept
 * statement inside a transaction without waiting for it (pipeline mode: the index rows
 * of a version travel in one round trip). DB_DONE or DB_ERROR as far as known now;
 * db_flush() gives the outcome of all of them, and any other statement on db waits for
 * them first (failing if they did). On SQLite, db_step(). */
int db_step_deferred(struct db_stmt *s);
int db_flush(struct db *db);
int64_t db_column_int64(struct db_stmt *s, int i);
int db_column_int(struct db_stmt *s, int i);
const char *db_column_text(struct db_stmt *s, int i); /* NULL for NULL */
int db_column_bytes(struct db_stmt *s, int i);
bool db_column_null(struct db_stmt *s, int i);
int db_reset(struct db_stmt *s); /* bindings stay */
void db_clear_bindings(struct db_stmt *s);
void db_finalize(struct db_stmt *s); /* NULL is fine */
struct db *db_of(struct db_stmt *s);

/* Rows the last INSERT/UPDATE/DELETE changed. */
int64_t db_changes(struct db *db);
/* SQLite: the rowid of the connection's last INSERT (0 on PostgreSQL). */
int64_t db_last_rowid(struct db *db);
/* Runs sql (several statements, no parameters). */
int db_exec(struct db *db, const char *sql);
/* The last failure as a gw_code and message prefixed with what. */
enum gw_code db_fail(struct db *db, struct gw_error *err, const char *what);
const char *db_errmsg(struct db *db);

/* Translates ? and ?N to $N outside quotes and comments; NULL on OOM.
 * *n_params: the highest parameter number. */
char *db_pg_translate(const char *sql, int *n_params);

#endif
