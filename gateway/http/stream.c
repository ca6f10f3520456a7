/* stream.c -- answers whose body is produced while it is sent (exports):
 * the producer (http_stream.read, which may query the store) runs on the
 * blocking threads, one chunk at a time, never on the epoll threads.
 *
 * A relay holds two buffers. libmicrohttpd asks for the body on the
 * connection's thread (relay_read), which copies out of `ready`; one fill
 * job at a time, on a blocking thread, calls the stream's read() into
 * `next`. When ready is spent and next is full they swap and the next fill
 * is queued. When next is not in yet, the connection is suspended (counted
 * in its daemon's `deferred`, so a daemon never stops with it suspended)
 * and relay_read returns 0, as libmicrohttpd allows for a suspended
 * connection; the fill resumes it once its chunk is in. A slow client holds
 * no thread: its fill ends as soon as next is full.
 *
 * Invariant: read() and done() of a stream never run at the same time, and
 * done() runs once: when libmicrohttpd is finished with the answer and no
 * fill is running, or by the last fill when the answer ended first.
 */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

#define HTTP_STREAM_CHUNK (32 * 1024)

struct relay {
    pthread_mutex_t lock;
    struct http_stream stream;
    struct http_daemon *dmn;
    struct MHD_Connection *conn;
    struct blocking_pool *pool;
    char *ready, *next; /* HTTP_STREAM_CHUNK bytes each */
    size_t ready_len, ready_off, next_len;
    bool next_full; /* next holds next_len bytes to send */
    bool filling;   /* a fill is queued or running: it alone touches next and stream */
    bool ended;     /* read() said HTTP_STREAM_END */
    bool failed;    /* read() said HTTP_STREAM_FAILED, or a fill could not be queued */
    bool suspended; /* the connection waits for the fill */
    bool abandoned; /* libmicrohttpd is done with the answer */
};

static void relay_free(struct relay *r)
{
    r->stream.done(r->stream.ctx);
    pthread_mutex_destroy(&r->lock);
    free(r->ready);
    free(r->next);
    free(r);
}

static void fill(void *arg);

/* Queues the next fill; caller holds r->lock. A fill that cannot be queued
 * (no memory) ends the answer as failed. */
static void queue_fill(struct relay *r)
{
    r->filling = http_pool_submit(r->pool, fill, r);
    if (!r->filling) {
        gw_log(GW_LOG_ERROR, "stream-failed", "no memory to produce a streamed answer");
        r->failed = true;
    }
}

/* On a blocking thread: the next chunk. */
static void fill(void *arg)
{
    struct relay *r = arg;
    long n = r->stream.read(r->stream.ctx, r->next, HTTP_STREAM_CHUNK);
    struct http_daemon *dmn = r->dmn;
    struct MHD_Connection *conn = r->conn;
    bool resume, gone;

    pthread_mutex_lock(&r->lock);
    r->filling = false;
    if (n > 0 && n <= HTTP_STREAM_CHUNK) {
        r->next_len = (size_t)n;
        r->next_full = true;
    } else if (n == HTTP_STREAM_END) {
        r->ended = true;
    } else {
        if (n != HTTP_STREAM_FAILED)
            gw_log(GW_LOG_ERROR, "stream-failed", "a stream's read() returned %ld", n);
        r->failed = true;
    }
    resume = r->suspended;
    r->suspended = false;
    gone = r->abandoned;
    pthread_mutex_unlock(&r->lock);
    if (gone) {
        relay_free(r);
        return;
    }
    if (resume) { /* r may be freed once the connection runs again: locals only */
        MHD_resume_connection(conn);
        atomic_fetch_sub(&dmn->deferred, 1);
    }
}

/* Waits for the fill under way without a thread; caller holds r->lock. */
static ssize_t wait_for_fill(struct relay *r)
{
    if (!r->filling)
        queue_fill(r);
    if (r->failed)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    /* counted before stopping is read (see wait_deferred in server.c) */
    atomic_fetch_add(&r->dmn->deferred, 1);
    if (atomic_load(&r->dmn->stopping)) { /* it may not be left suspended: cut it */
        atomic_fetch_sub(&r->dmn->deferred, 1);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    return 0;
}

/* libmicrohttpd's content reader, on the connection's thread. */
static ssize_t relay_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct relay *r = cls;
    ssize_t out;
    char *spent;
    size_t n;

    (void)pos;
    pthread_mutex_lock(&r->lock);
    if (r->ready_off == r->ready_len && r->next_full) {
        spent = r->ready;
        r->ready = r->next;
        r->next = spent;
        r->ready_len = r->next_len;
        r->ready_off = 0;
        r->next_full = false;
    }
    if (r->ready_off < r->ready_len) {
        n = r->ready_len - r->ready_off;
        if (n > max)
            n = max;
        memcpy(buf, r->ready + r->ready_off, n);
        r->ready_off += n;
        out = (ssize_t)n;
        if (!r->filling && !r->next_full && !r->ended && !r->failed)
            queue_fill(r);
    } else if (r->failed) {
        out = MHD_CONTENT_READER_END_WITH_ERROR; /* the cut shows: chunked, unterminated */
    } else if (r->ended) {
        out = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        out = wait_for_fill(r);
    }
    pthread_mutex_unlock(&r->lock);
    return out;
}

/* libmicrohttpd is finished with the answer (sent, or the client gone). */
static void relay_done(void *cls)
{
    struct relay *r = cls;
    bool now;

    pthread_mutex_lock(&r->lock);
    r->abandoned = true;
    now = !r->filling;
    pthread_mutex_unlock(&r->lock);
    if (now)
        relay_free(r);
}

struct MHD_Response *http_stream_response(struct req_ctx *rc, struct http_response *resp)
{
    struct relay *r = calloc(1, sizeof *r);
    struct MHD_Response *mr = NULL;

    if (r) {
        r->ready = malloc(HTTP_STREAM_CHUNK);
        r->next = malloc(HTTP_STREAM_CHUNK);
    }
    if (r && r->ready && r->next) {
        pthread_mutex_init(&r->lock, NULL);
        r->stream = resp->stream;
        r->dmn = rc->dmn;
        r->conn = rc->conn;
        r->pool = &rc->dmn->srv->pool;
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_CHUNK, relay_read, r,
                                               relay_done);
        if (!mr)
            pthread_mutex_destroy(&r->lock);
    }
    if (!mr) { /* the stream stays the response's: its cleanup ends it */
        if (r) {
            free(r->ready);
            free(r->next);
        }
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    queue_fill(r); /* the first chunk is made while the headers go out */
    pthread_mutex_unlock(&r->lock);
    return mr;
}
