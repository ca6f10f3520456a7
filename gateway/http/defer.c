/* defer.c -- answers that wait: a request whose handler waits for a commit
 * is suspended, not a blocked thread, and resumed when it is ready; and the
 * few handlers that may block (and the producers of streamed answers,
 * stream.c) run on threads of their own.
 *
 * The phases are drawn in http_int.h. The race this file settles: the work
 * a handler started (a store commit) may end before or after the handler
 * has returned and the connection is suspended. http_pending_ready() swaps
 * the phase to READY and resumes the connection only if it saw SUSPENDED;
 * the connection's thread suspends first, then moves RUNNING to SUSPENDED
 * with a compare-and-swap, and resumes the connection itself when READY
 * came first. libmicrohttpd calls the access handler again once a resumed
 * connection is processed, and that call answers.
 *
 * A handler on a blocking thread runs while its request is deferred
 * already; it may defer again (to wait for a commit without holding the
 * thread): the request is then ready only once both the handler has
 * returned and its own wait is over (rc->waits counts down to zero).
 *
 * Invariant: a deferred request counts in its daemon's `deferred` until
 * http_pending_ready() is done with its connection, so a daemon is never
 * stopped with a connection suspended (libmicrohttpd forbids it).
 */
#include "http/http_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct blocking_job {
    struct blocking_job *next;
    void (*run)(void *arg);
    void *arg;
};

/* A handler run on a blocking thread for a deferred request. */
struct blocking_call {
    struct req_ctx *rc;
    http_handler_fn handler;
    void *ctx;
    struct http_pending *pending;
};

static struct req_ctx *req_ctx_of(struct http_request *req)
{
    return (struct req_ctx *)(void *)((char *)req - offsetof(struct req_ctx, req));
}

/* A handler on a blocking thread defers its (already deferred) request:
 * one more wait before it is ready. Only that thread touches rc meanwhile. */
static struct http_pending *defer_again(struct req_ctx *rc, struct http_response *resp,
                                        http_finish_fn finish, void *state, http_release_fn release)
{
    if (resp != &rc->held) {
        http_response_cleanup(&rc->held);
        rc->held = *resp;
        memset(resp, 0, sizeof *resp);
    }
    rc->finish = finish;
    rc->state = state;
    rc->release = release;
    rc->redeferred = true;
    atomic_fetch_add(&rc->waits, 1);
    return (struct http_pending *)rc;
}

struct http_pending *http_defer(struct http_request *req, struct http_response *resp,
                                http_finish_fn finish, void *state, http_release_fn release)
{
    struct req_ctx *rc = req_ctx_of(req);

    if (atomic_load(&rc->phase) != DEFER_NONE) {
        if (rc->in_blocking_call && !rc->redeferred)
            return defer_again(rc, resp, finish, state, release);
        gw_log(GW_LOG_ERROR, "defer-twice", "route %s deferred its answer twice", req->route);
        return NULL;
    }
    rc->held = *resp;
    memset(resp, 0, sizeof *resp);
    rc->finish = finish;
    rc->state = state;
    rc->release = release;
    atomic_store(&rc->waits, 1);
    atomic_fetch_add(&rc->dmn->deferred, 1);
    atomic_store(&rc->phase, DEFER_RUNNING);
    return (struct http_pending *)rc;
}

void http_pending_ready(struct http_pending *pending)
{
    struct req_ctx *rc = (struct req_ctx *)pending;
    struct http_daemon *dmn = rc->dmn;
    struct MHD_Connection *conn = rc->conn;

    if (atomic_fetch_sub(&rc->waits, 1) != 1)
        return; /* a handler that deferred again: the other wait is not over */
    /* Once READY is seen by the connection's thread, rc may be gone: only
     * the locals are used after the exchange. */
    if (atomic_exchange(&rc->phase, DEFER_READY) == DEFER_SUSPENDED)
        MHD_resume_connection(conn);
    atomic_fetch_sub(&dmn->deferred, 1);
}

enum MHD_Result http_complete(struct req_ctx *rc, struct http_response *resp)
{
    int expected = DEFER_RUNNING;

    if (atomic_load(&rc->phase) == DEFER_NONE)
        return http_answer_now(rc, resp);
    http_response_cleanup(resp); /* the held answer is the one that leaves */
    if (atomic_load(&rc->phase) == DEFER_READY)
        return http_answer_deferred(rc);
    MHD_suspend_connection(rc->conn);
    if (!atomic_compare_exchange_strong(&rc->phase, &expected, DEFER_SUSPENDED))
        MHD_resume_connection(rc->conn); /* it became ready meanwhile */
    return MHD_YES;
}

/* ------------------------------------------------------------ blocking threads */

static void *blocking_main(void *arg)
{
    struct blocking_pool *pool = arg;
    struct blocking_job *job;

    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (!pool->head && !pool->stopping)
            pthread_cond_wait(&pool->work, &pool->lock);
        job = pool->head;
        if (job) {
            pool->head = job->next;
            if (!pool->head)
                pool->tail = NULL;
        }
        pthread_mutex_unlock(&pool->lock);
        if (!job)
            return NULL;
        job->run(job->arg);
        free(job);
    }
}

bool http_pool_submit(struct blocking_pool *pool, void (*run)(void *arg), void *arg)
{
    struct blocking_job *job = calloc(1, sizeof *job);

    if (!job)
        return false;
    job->run = run;
    job->arg = arg;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    return true;
}

/* The connection waits suspended (or about to be): only this thread touches
 * the request and its held answer until the handler returns. */
static void run_call(void *arg)
{
    struct blocking_call *call = arg;
    struct req_ctx *rc = call->rc;

    rc->in_blocking_call = true;
    call->handler(&rc->req, &rc->held, call->ctx);
    rc->in_blocking_call = false;
    http_pending_ready(call->pending);
    free(call);
}

enum gw_code http_pool_start(struct blocking_pool *pool, size_t n, struct gw_error *err)
{
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work, NULL);
    pool->threads = calloc(n, sizeof *pool->threads);
    if (!pool->threads)
        return gw_fail(err, GW_E_NOMEM, "no memory for the blocking threads");
    for (; pool->n_threads < n; pool->n_threads++)
        if (pthread_create(&pool->threads[pool->n_threads], NULL, blocking_main, pool) != 0)
            return gw_fail(err, GW_E_INTERNAL, "cannot start the blocking threads");
    return GW_OK;
}

/* Finishes the queued handlers, then stops the threads. */
void http_pool_stop(struct blocking_pool *pool)
{
    size_t i;

    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->lock);
}

void http_run_blocking(struct req_ctx *rc, const struct http_route *route,
                       struct http_response *resp)
{
    struct blocking_call *call = calloc(1, sizeof *call);

    if (call)
        call->pending = http_defer(&rc->req, resp, NULL, NULL, NULL);
    if (call && call->pending) {
        call->rc = rc;
        call->handler = route->handler;
        call->ctx = rc->dmn->srv->hc.handler_ctx;
        if (http_pool_submit(&rc->dmn->srv->pool, run_call, call))
            return;
        http_respond_error(&rc->held, 503, "transient", "no memory for the request", NULL);
        http_pending_ready(call->pending); /* answered at once: nothing runs */
        free(call);
        return;
    }
    free(call);
    http_respond_error(resp, 503, "transient", "no memory for the request", NULL);
}
