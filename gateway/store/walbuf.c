/* walbuf.c -- a SQLite VFS that writes each commit's WAL frames in one call.
 *
 * SQLite appends a WAL frame as two writes: its 24-byte header, then the page.
 * A referral's commit share is about a dozen frames, so the writer thread made
 * two dozen pwrite() calls per referral, and the kernel's per-call and per-page
 * work took more of its time than SQLite's own. This VFS ("gw-walbuf") wraps the
 * default one. Every file but a WAL is the default VFS's own, untouched. A WAL's
 * writes that follow each other are gathered in a buffer and reach the file as
 * one write:
 *   - before xSync: the store runs synchronous=FULL, so SQLite syncs the WAL
 *     before it publishes a commit in the WAL index. Readers (other connections)
 *     therefore never look for a frame that is still in the buffer;
 *   - before every other call that reads or sizes the file (xRead, xFileSize,
 *     xTruncate, xFileControl, xLock...), so the connection that wrote the
 *     frames (a spilled page it reads back, a checkpoint) sees them too;
 *   - when a write does not follow the buffered ones, or would overflow it;
 *   - at xClose.
 * A write that fails while being flushed fails the call that flushed it with the
 * default VFS's own code (SQLITE_FULL for a full disk), and the buffered frames
 * are dropped: SQLite then rolls the transaction back, as it would have after the
 * failed write itself. When the buffer cannot be allocated, writes go straight
 * through.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* The unix VFS writes at most 128 KB - 1 bytes per call (it masks the length to
 * 17 bits), so a flush hands it pieces of 124 KB. */
#define WALBUF_CHUNK ((size_t)124 * 1024)

struct walbuf_file {
    sqlite3_file base;    /* pMethods: walbuf_methods */
    sqlite3_file *real;   /* the default VFS's file, right after this struct */
    unsigned char *buf;   /* gathered writes, NULL until the first write */
    size_t len;           /* bytes in buf */
    sqlite3_int64 at;     /* file offset of buf[0] */
    bool unbuffered;      /* the buffer could not be allocated */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs walbuf_vfs;
static pthread_once_t walbuf_once = PTHREAD_ONCE_INIT;
static int walbuf_register_rc = SQLITE_ERROR;
static atomic_llong writes_received, writes_issued;

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((struct walbuf_file *)f)->real;
}

/* Writes what is buffered, in pieces of WALBUF_CHUNK; on a failure the buffer is
 * dropped all the same. */
static int flush(struct walbuf_file *wf)
{
    size_t done = 0;
    int rc = SQLITE_OK;

    while (rc == SQLITE_OK && done < wf->len) {
        size_t n = wf->len - done < WALBUF_CHUNK ? wf->len - done : WALBUF_CHUNK;

        rc = wf->real->pMethods->xWrite(wf->real, wf->buf + done, (int)n,
                                        wf->at + (sqlite3_int64)done);
        atomic_fetch_add_explicit(&writes_issued, 1, memory_order_relaxed);
        done += n;
    }
    wf->len = 0;
    return rc;
}

static int wb_close(sqlite3_file *f)
{
    struct walbuf_file *wf = (struct walbuf_file *)f;
    int rc = flush(wf);
    int rc_close = wf->real->pMethods->xClose(wf->real);

    free(wf->buf);
    wf->buf = NULL;
    return rc != SQLITE_OK ? rc : rc_close;
}

static int wb_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xRead(real_of(f), out, n, off);
}

static bool follows(const struct walbuf_file *wf, int n, sqlite3_int64 off)
{
    return wf->len > 0 && off == wf->at + (sqlite3_int64)wf->len &&
           (size_t)n <= STORE_WAL_BUFFER_BYTES - wf->len;
}

static int wb_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
    struct walbuf_file *wf = (struct walbuf_file *)f;
    int rc;

    atomic_fetch_add_explicit(&writes_received, 1, memory_order_relaxed);
    if (!follows(wf, n, off)) {
        rc = flush(wf);
        if (rc != SQLITE_OK)
            return rc;
        if (!wf->buf && !wf->unbuffered) {
            wf->buf = malloc(STORE_WAL_BUFFER_BYTES);
            wf->unbuffered = wf->buf == NULL;
        }
        if (!wf->buf || (size_t)n > WALBUF_CHUNK) {
            atomic_fetch_add_explicit(&writes_issued, 1, memory_order_relaxed);
            return wf->real->pMethods->xWrite(wf->real, data, n, off);
        }
        wf->at = off;
    }
    memcpy(wf->buf + wf->len, data, (size_t)n);
    wf->len += (size_t)n;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int wb_sync(sqlite3_file *f, int flags)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int wb_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xFileSize(real_of(f), size);
}

static int wb_lock(sqlite3_file *f, int level)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xLock(real_of(f), level);
}

static int wb_unlock(sqlite3_file *f, int level)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xUnlock(real_of(f), level);
}

static int wb_check_reserved_lock(sqlite3_file *f, int *out)
{
    return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}

static int wb_file_control(sqlite3_file *f, int op, void *arg)
{
    int rc = flush((struct walbuf_file *)f);

    return rc != SQLITE_OK ? rc : real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}

static int wb_sector_size(sqlite3_file *f)
{
    return real_of(f)->pMethods->xSectorSize(real_of(f));
}

static int wb_device_characteristics(sqlite3_file *f)
{
    return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}

/* Version 1: SQLite maps and shares memory through the database file, never the WAL. */
static const sqlite3_io_methods walbuf_methods = {
    .iVersion = 1,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved_lock,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
};

/* Where the default VFS's file lives inside ours: after it, aligned for any type. */
static size_t real_offset(void)
{
    size_t a = _Alignof(max_align_t);

    return (sizeof(struct walbuf_file) + a - 1) / a * a;
}

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct walbuf_file *wf = (struct walbuf_file *)f;
    int rc;

    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL))
        return real_vfs->xOpen(real_vfs, name, f, flags, out_flags);
    memset(wf, 0, sizeof *wf);
    wf->real = (sqlite3_file *)((unsigned char *)f + real_offset());
    rc = real_vfs->xOpen(real_vfs, name, wf->real, flags, out_flags);
    wf->base.pMethods = rc == SQLITE_OK && wf->real->pMethods ? &walbuf_methods : NULL;
    return rc;
}

/* The rest is the default VFS's, called with its own handle. */
static int wb_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *wb_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void wb_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*wb_dl_sym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, lib, sym);
}

static void wb_dl_close(sqlite3_vfs *vfs, void *lib)
{
    (void)vfs;
    real_vfs->xDlClose(real_vfs, lib);
}

static int wb_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int wb_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}

static int wb_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int wb_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int wb_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    double days;
    int rc;

    (void)vfs;
    if (real_vfs->iVersion >= 2 && real_vfs->xCurrentTimeInt64)
        return real_vfs->xCurrentTimeInt64(real_vfs, out);
    rc = real_vfs->xCurrentTime(real_vfs, &days);
    *out = (sqlite3_int64)(days * 86400000.0);
    return rc;
}

static void register_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        return;
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)real_offset() + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = STORE_WALBUF_VFS,
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xDlOpen = wb_dl_open,
        .xDlError = wb_dl_error,
        .xDlSym = wb_dl_sym,
        .xDlClose = wb_dl_close,
        .xRandomness = wb_randomness,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_current_time,
        .xGetLastError = wb_get_last_error,
        .xCurrentTimeInt64 = wb_current_time_int64,
    };
    walbuf_register_rc = sqlite3_vfs_register(&walbuf_vfs, 0);
}

const char *store_walbuf_vfs(void)
{
    pthread_once(&walbuf_once, register_vfs);
    return walbuf_register_rc == SQLITE_OK ? STORE_WALBUF_VFS : NULL;
}

void store_walbuf_counts(long long *received, long long *issued)
{
    *received = atomic_load(&writes_received);
    *issued = atomic_load(&writes_issued);
}
