/* http_int.h -- what the http module's files share. */
#ifndef GW_HTTP_INT_H
#define GW_HTTP_INT_H

#include "http/http.h"

#include <pthread.h>
#include <stdatomic.h>

#include <microhttpd.h>

#define HTTP_MAX_PEER 64

/* The PEM texts a daemon was started with (kept while it runs). */
struct tls_files {
    char *cert;
    char *key;
    char *ca;
};

/* One libmicrohttpd daemon. A TLS reload starts another on the same socket
 * and retires this one once its requests are done; its requests and
 * connections point here, so it is freed only after they are all gone. */
struct http_daemon {
    struct http_server *srv;
    struct MHD_Daemon *mhd;
    struct tls_files tls;
    atomic_long in_flight;  /* requests begun and not yet completed */
    atomic_long deferred;   /* requests waiting for http_pending_ready() */
    atomic_long in_handler; /* calls of the access handler running now */
    atomic_bool draining;   /* SIGTERM: new requests are refused, begun ones go on */
    atomic_bool stopping;   /* no request may start work that waits any more */
};

/* conns.c: every open connection, for the connection limits and the
 * receive deadline. Guarded by lock. */
struct conn_ctx;
struct peer_count;
struct conn_registry {
    pthread_mutex_t lock;
    struct conn_ctx *head;
    long total;
    struct peer_count **peers; /* hash table by address */
    size_t n_buckets;
    pthread_t sweeper;
    pthread_cond_t wake;
    bool sweeper_started;
    bool stopping;
};

/* Work the server runs on one of its blocking threads: handlers of
 * HTTP_BLOCKING routes, producers of streamed answers. */
struct blocking_job;
struct blocking_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct blocking_job *head, *tail;
    pthread_t *threads;
    size_t n_threads;
    bool stopping;
};

struct http_server {
    struct http_daemon *current;
    pthread_mutex_t retire_lock;
    pthread_t retire_thread; /* drains the daemon a TLS reload replaced */
    bool retiring;
    struct http_server_config hc;
    const struct config *cfg;
    pthread_mutex_t clients_lock;
    struct auth_table *clients;
    struct conn_registry conns;
    struct blocking_pool pool;
    unsigned n_threads; /* libmicrohttpd's pool: one per core unless configured */
    int port;
    atomic_bool stopping; /* the acceptor closes what it still takes (http_server_stop) */
    /* the listener is ours (server.c): the acceptor thread hands each new
     * connection to the current daemon; current_lock guards current */
    int listen_fd;
    int wake[2]; /* a byte on wake[1] stops the acceptor */
    pthread_t acceptor;
    bool acceptor_started;
    pthread_mutex_t current_lock;
};

/* Per TCP connection: the identity is worked out once per TLS session. */
struct conn_ctx {
    struct conn_ctx *prev, *next; /* in the registry */
    struct http_server *srv;
    int fd;
    unsigned char addr[16]; /* the peer's address (IPv4 in the first 4 bytes) */
    int family;
    atomic_llong receiving_since_ms; /* mono ms of the first byte of the request
                                        being received; 0 when none is */
    bool cut;                        /* shut down by the deadline sweeper */
    bool identified;
    struct auth_table *table; /* the table the identity came from (a reference) */
    struct auth_identity who;
    char peer[HTTP_MAX_PEER];
};

/* A deferred request's progress (http_defer, http_pending_ready).
 *
 *   NONE --http_defer--> RUNNING --handler returns, connection suspended--> SUSPENDED
 *                          |                                                    |
 *                          +--http_pending_ready (before the suspension)--+     |
 *                                                                         v     v
 *                                      ready (resumed if it was suspended) READY
 *
 * RUNNING: the handler (or a blocking thread) still works; SUSPENDED: the
 * connection waits, libmicrohttpd does not touch it; READY: the server
 * answers on its next call for the connection. */
enum defer_phase { DEFER_NONE, DEFER_RUNNING, DEFER_SUSPENDED, DEFER_READY, DEFER_ANSWERED };

/* Per request, from the first call of the access handler to completion. */
struct req_ctx {
    struct http_daemon *dmn;
    struct MHD_Connection *conn;
    struct conn_ctx *cc; /* NULL when the connection could not be tracked */
    struct gw_buf body;
    bool answered; /* a response is queued already */
    bool too_large;
    bool dispatched;
    int64_t started_ms;
    int64_t started_mono;
    char request_id[GW_UUID_LEN];
    /* the request as handlers see it, kept until completion for deferred answers */
    struct http_request req;
    char *scratch; /* the path's segments (captures point here) */
    char *query;   /* req.query */
    /* a deferred answer */
    atomic_int phase;      /* enum defer_phase */
    atomic_int waits;      /* http_pending_ready() calls still due before READY */
    bool in_blocking_call; /* its handler runs on a blocking thread now */
    bool redeferred;       /* ...and deferred the request again (defer.c) */
    struct http_response held;
    http_finish_fn finish;
    void *state;
    http_release_fn release;
};

/* dispatch.c */
/* The first call for a request: refusals that need no body (413 by
 * Content-Length, a client without a listed certificate). MHD_YES to go on
 * reading the body. */
enum MHD_Result http_receive_begin(struct req_ctx *rc, const char *url, const char *method);
/* The whole request is in: route, admit, run the handler, answer or defer. */
enum MHD_Result http_dispatch(struct req_ctx *rc, const char *url, const char *method);
/* Answers 413 for a body past max_body_bytes. */
enum MHD_Result http_refuse_too_large(struct req_ctx *rc, const char *url, const char *method);
/* A stopping daemon answers a new request at once (503): no work that
 * waits may start, or a connection could be left suspended when it stops. */
enum MHD_Result http_refuse_stopping(struct req_ctx *rc, const char *url, const char *method);
/* Renders and queues resp (consumed), counts and logs the request. */
enum MHD_Result http_answer_now(struct req_ctx *rc, struct http_response *resp);
/* A call for a deferred request after http_pending_ready(): finish and answer. */
enum MHD_Result http_answer_deferred(struct req_ctx *rc);
/* Releases what the request kept (its deferred state too). */
void http_request_release(struct req_ctx *rc);

/* defer.c */
/* After a handler or a refusal hook ran: answers resp, or when the request
 * was deferred, suspends the connection until it is ready. */
enum MHD_Result http_complete(struct req_ctx *rc, struct http_response *resp);
/* Blocking threads for HTTP_BLOCKING routes. */
enum gw_code http_pool_start(struct blocking_pool *pool, size_t n, struct gw_error *err);
void http_pool_stop(struct blocking_pool *pool);
/* Runs route's handler on a blocking thread; the request is deferred. */
void http_run_blocking(struct req_ctx *rc, const struct http_route *route,
                       struct http_response *resp);
/* Queues run(arg) for a blocking thread; false when out of memory. */
bool http_pool_submit(struct blocking_pool *pool, void (*run)(void *arg), void *arg);

/* stream.c */
/* A response whose body resp->stream produces on the blocking threads; on
 * success the stream is the response's (its done() runs when libmicrohttpd
 * is finished with it), NULL (the stream still resp's) when out of memory. */
struct MHD_Response *http_stream_response(struct req_ctx *rc, struct http_response *resp);

/* server.c */
struct conn_ctx *http_conn_identify(struct http_server *srv, struct MHD_Connection *conn);

/* conns.c */
enum gw_code http_conns_start(struct http_server *srv, struct gw_error *err);
void http_conns_stop(struct http_server *srv);
/* libmicrohttpd's accept policy: the connection limits, refusals logged
 * once per peer a minute and counted. */
enum MHD_Result http_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* Tracks a new connection (and its TLS reads, for the deadline); NULL on OOM. */
struct conn_ctx *http_conns_open(struct http_server *srv, struct MHD_Connection *conn);
void http_conns_close(struct http_server *srv, struct conn_ctx *cc);
/* The request on cc has been received whole: its deadline no longer runs. */
void http_conns_received(struct conn_ctx *cc);

#endif
