/* backup.c -- an online copy of the store: a consistent snapshot taken while
 * the gateway keeps serving.
 *
 * VACUUM INTO on a connection of its own reads the whole store in one read
 * transaction: the copy is one committed state (every commit that returned
 * before it started, none that began after). In WAL mode a reader never
 * blocks the writer, so commits go on meanwhile; the WAL cannot be recycled
 * past the copy's snapshot until it ends, so it grows for that time. The
 * stepwise sqlite3_backup API is not used: a commit by any other connection
 * restarts it, so under steady writes it might never finish.
 *
 * The copy is written to PATH.XXXXXX (mode 0600), checked (quick_check),
 * made a single file (journal_mode=DELETE: no -wal beside it), fsynced, then
 * linked into place (or renamed over PATH with overwrite) and its folder
 * fsynced. PATH is thus either untouched or the whole, checked copy.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path's folder ("." when it has none), a new string or NULL. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return gw_strdup(".");
    if (slash == path)
        return gw_strdup("/");
    return gw_strndup(path, (size_t)(slash - path));
}

static enum gw_code fsync_path(const char *path, int flags, struct gw_error *err)
{
    int fd = open(path, flags);
    int saved;

    if (fd < 0)
        return gw_fail(err, GW_E_IO, "cannot open %s to sync it: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        saved = errno;
        close(fd);
        return gw_fail(err, GW_E_IO, "cannot sync %s: %s", path, strerror(saved));
    }
    close(fd);
    return GW_OK;
}

/* Refuses a target that exists (unless overwrite), is a folder, or is the store. */
static enum gw_code check_target(struct store *st, const char *path, bool overwrite,
                                 struct gw_error *err)
{
    struct stat target, source;

    if (!*path)
        return gw_fail(err, GW_E_INPUT, "the backup needs a file name");
    if (stat(path, &target) != 0) {
        if (errno == ENOENT)
            return GW_OK;
        return gw_fail(err, GW_E_IO, "cannot check %s: %s", path, strerror(errno));
    }
    if (S_ISDIR(target.st_mode))
        return gw_fail(err, GW_E_INPUT, "%s is a folder: name the backup file", path);
    if (stat(st->path, &source) == 0 && source.st_dev == target.st_dev &&
        source.st_ino == target.st_ino)
        return gw_fail(err, GW_E_INPUT, "%s is the store itself", path);
    if (!overwrite)
        return gw_fail(err, GW_E_CONFLICT, "%s exists (--force replaces it)", path);
    return GW_OK;
}

/* SQLite only (this file works on files): its own failure wording. */
static enum gw_code lite_fail(sqlite3 *db, struct gw_error *err, const char *what)
{
    int code = sqlite3_extended_errcode(db) & 0xff;

    return gw_fail(err, code == SQLITE_FULL || code == SQLITE_IOERR ? GW_E_IO : GW_E_STORE,
                   "%s: %s", what, sqlite3_errmsg(db));
}

static enum gw_code lite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out,
                                 struct gw_error *err)
{
    *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, out, NULL) != SQLITE_OK)
        return lite_fail(db, err, "prepare");
    return GW_OK;
}

/* VACUUM INTO tmp from a read-only connection of its own. */
static enum gw_code copy_snapshot(struct store *st, const char *tmp, struct gw_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    enum gw_code rc;

    if (sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = gw_fail(err, GW_E_STORE, "cannot open %s: %s", st->path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    rc = lite_prepare(db, "VACUUM INTO ?1", &s, err);
    if (!rc && sqlite3_bind_text(s, 1, tmp, -1, SQLITE_STATIC) != SQLITE_OK)
        rc = lite_fail(db, err, "backup");
    if (!rc && sqlite3_step(s) != SQLITE_DONE)
        rc = lite_fail(db, err, "backup");
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}

/* Runs a one-row query on db; *text (new) and/or *num get column 0 and 1. */
static enum gw_code query_row(sqlite3 *db, const char *sql, char **text, int64_t *num,
                              struct gw_error *err)
{
    sqlite3_stmt *s;
    enum gw_code rc = lite_prepare(db, sql, &s, err);
    int step;

    if (rc)
        return rc;
    step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        if (text && sqlite3_column_text(s, 0) &&
            !(*text = gw_strdup((const char *)sqlite3_column_text(s, 0))))
            rc = gw_fail(err, GW_E_NOMEM, "no memory for the backup check");
        if (num)
            *num = sqlite3_column_int64(s, text ? 1 : 0);
    } else if (step != SQLITE_DONE) {
        rc = lite_fail(db, err, "backup check");
    }
    sqlite3_finalize(s);
    return rc;
}

/* Opens the copy, makes it a single file, checks it and reads what it holds. */
static enum gw_code check_copy(const char *tmp, struct store_backup_info *info,
                               struct gw_error *err)
{
    sqlite3 *db = NULL;
    char *text = NULL;
    int64_t version = 0;
    enum gw_code rc;

    if (sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = gw_fail(err, GW_E_STORE, "cannot open the copy: %s",
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    rc = query_row(db, "PRAGMA journal_mode=DELETE", &text, NULL, err);
    free(text);
    text = NULL;
    if (!rc)
        rc = query_row(db, "PRAGMA quick_check", &text, NULL, err);
    if (!rc && (!text || strcmp(text, "ok") != 0))
        rc = gw_fail(err, GW_E_STORE, "the copy fails its check: %s", text ? text : "no answer");
    free(text);
    text = NULL;
    if (!rc)
        rc = query_row(db, "PRAGMA user_version", NULL, &version, err);
    if (!rc)
        rc = query_row(db, "SELECT hash, seq FROM audit ORDER BY seq DESC LIMIT 1", &text,
                       &info->audit_seq, err);
    if (!rc && text)
        gw_format(info->audit_hash, sizeof info->audit_hash, "%s", text);
    free(text);
    info->schema_version = (int)version;
    if (sqlite3_close(db) != SQLITE_OK && !rc)
        rc = gw_fail(err, GW_E_STORE, "cannot close the copy");
    return rc;
}

/* Puts tmp at path: link (fails when path appeared meanwhile) or rename. */
static enum gw_code install(const char *tmp, const char *path, bool overwrite, struct gw_error *err)
{
    if (overwrite) {
        if (rename(tmp, path) != 0)
            return gw_fail(err, GW_E_IO, "cannot move the copy to %s: %s", path, strerror(errno));
        return GW_OK;
    }
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            return gw_fail(err, GW_E_CONFLICT, "%s exists (--force replaces it)", path);
        return gw_fail(err, GW_E_IO, "cannot put the copy at %s: %s", path, strerror(errno));
    }
    unlink(tmp);
    return GW_OK;
}

/* Removes tmp and whatever SQLite may have left beside it. */
static void remove_temporary(const char *tmp)
{
    static const char *const suffixes[] = {"-journal", "-wal", "-shm"};
    size_t n = strlen(tmp), i;
    char *name = malloc(n + sizeof "-journal");

    unlink(tmp);
    for (i = 0; name && i < sizeof suffixes / sizeof suffixes[0]; i++) {
        memcpy(name, tmp, n);
        memcpy(name + n, suffixes[i], strlen(suffixes[i]) + 1);
        unlink(name);
    }
    free(name);
}

static enum gw_code make_temporary(const char *path, char **out, struct gw_error *err)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 8);
    int fd;

    *out = NULL;
    if (!tmp)
        return gw_fail(err, GW_E_NOMEM, "no memory for the backup");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".XXXXXX", 8);
    fd = mkstemp(tmp); /* empty, mode 0600: VACUUM INTO accepts an empty file */
    if (fd < 0) {
        enum gw_code rc =
            gw_fail(err, GW_E_IO, "cannot create a file beside %s: %s", path, strerror(errno));

        free(tmp);
        return rc;
    }
    close(fd);
    *out = tmp;
    return GW_OK;
}

enum gw_code store_backup(struct store *st, const char *path, bool overwrite,
                          struct store_backup_info *info, struct gw_error *err)
{
    struct stat sb;
    char *tmp = NULL, *folder = NULL;
    int64_t started = gw_mono_ms();
    enum gw_code rc;

    memset(info, 0, sizeof *info);
    if (st->pg)
        return gw_fail(err, GW_E_INPUT,
                       "store backup copies SQLite stores; back a PostgreSQL store up with pg_dump"
                       " (or the server's own backups: pg_basebackup, WAL archiving)");
    rc = check_target(st, path, overwrite, err);
    if (!rc)
        rc = make_temporary(path, &tmp, err);
    if (rc)
        return rc;
    rc = copy_snapshot(st, tmp, err);
    if (!rc)
        rc = check_copy(tmp, info, err);
    if (!rc)
        rc = fsync_path(tmp, O_RDONLY, err);
    if (!rc && stat(tmp, &sb) == 0)
        info->bytes = (int64_t)sb.st_size;
    if (!rc)
        rc = install(tmp, path, overwrite, err);
    if (rc) {
        remove_temporary(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    folder = folder_of(path);
    rc = folder ? fsync_path(folder, O_RDONLY | O_DIRECTORY, err)
                : gw_fail(err, GW_E_NOMEM, "no memory for the backup");
    free(folder);
    info->elapsed_ms = gw_mono_ms() - started;
    return rc;
}
