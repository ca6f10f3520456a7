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

struct http_server {
    struct MHD_Daemon *daemon;
    struct tls_files tls;
    pthread_mutex_t retire_lock;
    pthread_t retire_thread; /* drains the daemon a TLS reload replaced */
    bool retiring;
    struct http_server_config hc;
    const struct config *cfg;
    pthread_mutex_t clients_lock;
    struct auth_table *clients;
    atomic_long in_flight;
    int port;
};

/* Per TCP connection: the identity is worked out once per TLS session. */
struct conn_ctx {
    bool identified;
    struct auth_table *table; /* the table the identity came from (a reference) */
    struct auth_identity who;
    char peer[HTTP_MAX_PEER];
};

/* Per request, from the first call of the access handler to completion. */
struct req_ctx {
    struct gw_buf body;
    bool answered; /* a response is queued already */
    bool too_large;
    int64_t started_ms;
    int64_t started_mono;
    char request_id[GW_UUID_LEN];
};

/* dispatch.c */
enum MHD_Result http_dispatch(struct http_server *srv, struct MHD_Connection *conn,
                              struct req_ctx *rc, const char *url, const char *method);
enum MHD_Result http_refuse_early(struct http_server *srv, struct MHD_Connection *conn,
                                  struct req_ctx *rc, const char *url, const char *method,
                                  int status, const char *issue, const char *why);
/* server.c */
struct conn_ctx *http_conn_identify(struct http_server *srv, struct MHD_Connection *conn);
/* response.c */
void http_response_cleanup(struct http_response *resp);

#endif
