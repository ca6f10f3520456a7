/* server.c -- the libmicrohttpd daemon: TLS with client certificates,
 * connection and request life cycles, graceful drain, TLS reload.
 *
 * epoll and a pool of threads, one per core (http_threads): a connection,
 * open or waiting for its commit, costs no thread. A handler that waits for
 * the store defers its answer and the connection is suspended until the
 * store's writer has committed (defer.c), so group commits stay large with
 * few threads. Limits (connections in all and per address, the receive
 * deadline, idle time, header memory, body size) come from the
 * configuration (conns.c). Client certificates are requested
 * (MHD_OPTION_HTTPS_MEM_TRUST) and verified by GnuTLS against the
 * configured CA once per connection; auth/ then names them.
 *
 * The listening socket is the server's, not libmicrohttpd's: an acceptor
 * thread takes each connection and hands it to the current daemon
 * (MHD_add_connection, where the connection limits apply as for any
 * other). So a TLS reload starts a daemon with the new files and makes it
 * the current one, and a stop closes the listener, without
 * MHD_quiesce_daemon(): on an epoll daemon with its own threads that call
 * races a worker taking the same socket out of its epoll set, and
 * libmicrohttpd aborts the process when the worker wins ("Failed to remove
 * listen FD from epoll set").
 */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define HTTP_MAX_PEM          (1024 * 1024)
#define HTTP_TLS_PRIORITIES   "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
/* Each connection's libmicrohttpd memory pool (headers, read buffer). Above 32 KiB the
 * pool is mmap()ed, so an idle connection costs only the pages it touched (2,000 idle TLS
 * connections: 43 MB RSS, against 80 MB with 32 KiB pools, which are malloc()ed and
 * written whole). libmicrohttpd zeroes the whole pool each time a request ends. */
#define HTTP_HEADER_MEMORY    (36 * 1024)
#define HTTP_BLOCKING_THREADS 4   /* threads for HTTP_BLOCKING routes */
#define HTTP_FD_RESERVE       256 /* descriptors beyond max_connections: store, logs, MLLP */

static enum gw_code read_file(const char *path, char **out, struct gw_error *err)
{
    FILE *f = fopen(path, "rb");
    struct gw_buf b;
    char chunk[4096];
    size_t n;
    enum gw_code rc;

    *out = NULL;
    if (!f)
        return gw_fail(err, GW_E_IO, "cannot read %s (run `make certs` for the development PKI)",
                       path);
    gw_buf_init(&b, HTTP_MAX_PEM);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        gw_buf_append(&b, chunk, n);
    fclose(f);
    rc = gw_buf_finish(&b, path, err);
    if (!rc && !(*out = gw_buf_steal(&b, &n)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for %s", path);
    gw_buf_cleanup(&b);
    return rc;
}

/* Verifies and names the peer certificate of conn's TLS session. */
static void identify(struct http_server *srv, struct MHD_Connection *conn, struct conn_ctx *cc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    const gnutls_datum_t *peers;
    unsigned int status = 0, n = 0;
    struct gw_error err;
    struct auth_table *table;

    auth_identity_cleanup(&cc->who);
    auth_table_destroy(cc->table);
    pthread_mutex_lock(&srv->clients_lock);
    table = cc->table = auth_table_ref(srv->clients);
    pthread_mutex_unlock(&srv->clients_lock);
    cc->identified = true;
    if (!session || gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS ||
        status != 0)
        return; /* none, or not signed by our CA, expired, revoked... */
    peers = gnutls_certificate_get_peers(session, &n);
    if (!peers || n == 0)
        return;
    if (auth_identify(table, peers[0].data, peers[0].size, &cc->who, &err) != GW_OK)
        gw_log(GW_LOG_WARN, "client-certificate-unreadable", "%s", err.msg);
}

struct conn_ctx *http_conn_identify(struct http_server *srv, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_ctx *cc = ci ? ci->socket_context : NULL;
    bool stale;

    if (!cc)
        return NULL;
    pthread_mutex_lock(&srv->clients_lock);
    stale = cc->table != srv->clients; /* the client table was reloaded */
    pthread_mutex_unlock(&srv->clients_lock);
    if (!cc->identified || stale)
        identify(srv, conn, cc);
    return cc;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_daemon *dmn = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = http_conns_open(dmn->srv, conn);
        return;
    }
    if (*socket_context)
        http_conns_close(dmn->srv, *socket_context);
    *socket_context = NULL;
}

static struct req_ctx *request_begin(struct http_daemon *dmn, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct req_ctx *rc = calloc(1, sizeof *rc);

    if (!rc)
        return NULL;
    rc->dmn = dmn;
    rc->conn = conn;
    rc->cc = ci ? ci->socket_context : NULL;
    gw_buf_init(&rc->body, (size_t)dmn->srv->cfg->max_body_bytes);
    rc->started_ms = gw_now_ms();
    rc->started_mono = gw_mono_ms();
    atomic_init(&rc->phase, DEFER_NONE);
    atomic_init(&rc->waits, 0);
    if (gw_uuid7(rc->request_id, NULL) != GW_OK) /* time-ordered: indexed by the audit */
        snprintf(rc->request_id, sizeof rc->request_id, "unknown");
    atomic_fetch_add(&dmn->in_flight, 1);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_daemon *dmn = cls;
    struct req_ctx *rc = *con_cls;

    (void)conn;
    (void)toe;
    if (!rc)
        return;
    http_request_release(rc);
    gw_buf_cleanup(&rc->body);
    free(rc);
    *con_cls = NULL;
    atomic_fetch_sub(&dmn->in_flight, 1);
}

/* One call of the access handler (on_request counts it). */
static enum MHD_Result handle_request(struct http_daemon *dmn, struct MHD_Connection *conn,
                                      const char *url, const char *method, const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
    struct req_ctx *rc = *con_cls;
    int phase;

    if (!rc) {
        rc = *con_cls = request_begin(dmn, conn);
        if (!rc)
            return MHD_NO;
        if (atomic_load(&dmn->draining) || atomic_load(&dmn->stopping))
            return http_refuse_stopping(rc, url, method);
        return http_receive_begin(rc, url, method);
    }
    phase = atomic_load(&rc->phase);
    if (phase != DEFER_NONE && phase != DEFER_ANSWERED)
        return http_answer_deferred(rc);
    if (rc->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        gw_buf_append(&rc->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (!rc->body.err)
            return MHD_YES;
        rc->too_large = true;
    }
    if (atomic_load(&dmn->stopping))
        return http_refuse_stopping(rc, url, method);
    if (rc->too_large)
        return http_refuse_too_large(rc, url, method);
    http_conns_received(rc->cc);
    return http_dispatch(rc, url, method);
}

/* libmicrohttpd's access handler: first call once the headers are in, then
 * one per piece of body, then a last one with nothing; a deferred request
 * is called again once resumed. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_daemon *dmn = cls;
    enum MHD_Result ok;

    (void)version;
    atomic_fetch_add(&dmn->in_handler, 1); /* before stopping is read: see drain_and_stop */
    ok = handle_request(dmn, conn, url, method, upload_data, upload_data_size, con_cls);
    atomic_fetch_sub(&dmn->in_handler, 1);
    return ok;
}

static enum gw_code listen_address(const char *hostport, struct sockaddr_storage *ss,
                                   struct gw_error *err)
{
    char host[256];
    int port;
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char service[16];
    enum gw_code rc = config_split_hostport(hostport, host, sizeof host, &port, err);

    if (rc)
        return rc;
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &ai) != 0 || !ai)
        return gw_fail(err, GW_E_INPUT, "cannot resolve listen address %s", hostport);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return GW_OK;
}

/* Binds and listens on hostport; the port bound goes to *port. */
static enum gw_code bind_listener(const char *hostport, int *fd_out, int *port,
                                  struct gw_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int one = 1, fd;
    enum gw_code rc = listen_address(hostport, &ss, err);

    *fd_out = -1;
    if (rc)
        return rc;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return gw_fail(err, GW_E_IO, "cannot create a socket for %s", hostport);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss,
             ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) ||
        listen(fd, 256) || getsockname(fd, (struct sockaddr *)&ss, &len)) {
        close(fd);
        return gw_fail(err, GW_E_IO, "cannot listen on %s (address in use?)", hostport);
    }
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)(void *)&ss)->sin_port);
    *fd_out = fd;
    return GW_OK;
}

static void tls_files_free(struct tls_files *t)
{
    if (t->key)
        memset(t->key, 0, strlen(t->key));
    free(t->key);
    free(t->cert);
    free(t->ca);
    memset(t, 0, sizeof *t);
}

/* Reads the three PEM files and checks with GnuTLS that they load, so a bad
 * file is refused before anything changes. */
static enum gw_code tls_files_load(const struct config *cfg, struct tls_files *t,
                                   struct gw_error *err)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_datum_t cert, key, ca;
    enum gw_code rc;

    memset(t, 0, sizeof *t);
    rc = read_file(cfg->tls_cert, &t->cert, err);
    if (!rc)
        rc = read_file(cfg->tls_key, &t->key, err);
    if (!rc)
        rc = read_file(cfg->tls_ca, &t->ca, err);
    if (!rc && gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
        rc = gw_fail(err, GW_E_NOMEM, "no memory to check the TLS files");
    if (!rc) {
        cert = (gnutls_datum_t){(unsigned char *)t->cert, (unsigned)strlen(t->cert)};
        key = (gnutls_datum_t){(unsigned char *)t->key, (unsigned)strlen(t->key)};
        ca = (gnutls_datum_t){(unsigned char *)t->ca, (unsigned)strlen(t->ca)};
        if (gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0) <
            0)
            rc = gw_fail(err, GW_E_INPUT, "%s and %s are not a certificate and its key",
                         cfg->tls_cert, cfg->tls_key);
        else if (gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM) <= 0)
            rc = gw_fail(err, GW_E_INPUT, "%s holds no CA certificate", cfg->tls_ca);
    }
    if (cred)
        gnutls_certificate_free_credentials(cred);
    if (rc)
        tls_files_free(t);
    return rc;
}

/* libmicrohttpd's messages (a client gone mid-request, a failed
 * handshake...) join the JSON log, at debug level: clients cause most. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512];
    size_t n;

    (void)cls;
    vsnprintf(text, sizeof text, fmt, ap);
    n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    gw_log(GW_LOG_DEBUG, "libmicrohttpd", "%s", text);
}

static void daemon_free(struct http_daemon *dmn)
{
    if (!dmn)
        return;
    tls_files_free(&dmn->tls);
    free(dmn);
}

/* Starts a daemon, without a listening socket of its own (the acceptor
 * gives it its connections), with the PEM texts tls (taken on success).
 * NULL when libmicrohttpd refuses. */
static struct http_daemon *start_daemon(struct http_server *srv, struct tls_files *tls)
{
    const struct config *cfg = srv->cfg;
    /* conns.c enforces the limits (and logs refusals); libmicrohttpd's own
     * total is only a backstop above it. */
    unsigned backstop = (unsigned)cfg->max_connections + 4 * srv->n_threads;
    struct http_daemon *dmn = calloc(1, sizeof *dmn);

    if (!dmn)
        return NULL;
    dmn->srv = srv;
    atomic_init(&dmn->in_flight, 0);
    atomic_init(&dmn->deferred, 0);
    atomic_init(&dmn->in_handler, 0);
    atomic_init(&dmn->draining, false);
    atomic_init(&dmn->stopping, false);
    /* the logger comes first: libmicrohttpd reports on the options that follow
     * it; a pool of one thread is libmicrohttpd's own internal thread */
    dmn->mhd = MHD_start_daemon(
        MHD_USE_TLS | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG,
        0, http_conns_accept, srv, on_request, dmn, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, srv->n_threads > 1 ? srv->n_threads : 0,
        MHD_OPTION_HTTPS_MEM_KEY, tls->key, MHD_OPTION_HTTPS_MEM_CERT, tls->cert,
        MHD_OPTION_HTTPS_MEM_TRUST, tls->ca, MHD_OPTION_HTTPS_PRIORITIES, HTTP_TLS_PRIORITIES,
        MHD_OPTION_CONNECTION_LIMIT, backstop, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)cfg->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_HEADER_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, dmn,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, dmn, MHD_OPTION_END);
    if (!dmn->mhd) {
        free(dmn);
        return NULL;
    }
    dmn->tls = *tls;
    memset(tls, 0, sizeof *tls);
    return dmn;
}

/* Open connections need descriptors: raise the soft limit toward the hard
 * one when max_connections would not fit (a common default is 1024). */
static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_connections + HTTP_FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        gw_log(GW_LOG_WARN, "fd-limit",
               "the descriptor limit (%ld) is below max_connections + %d: connections past "
               "it will be refused by the system",
               (long)rl.rlim_cur, HTTP_FD_RESERVE);
}

static unsigned thread_count(const struct config *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (cfg->http_threads > 0)
        return (unsigned)cfg->http_threads;
    return cores > 0 ? (unsigned)cores : 1;
}

/* ------------------------------------------------------------ the acceptor */

/* Takes one waiting connection and gives it to the current daemon (which
 * closes it when a limit refuses it); false when none waits. A stopping
 * server closes it at once. Out of descriptors or memory, it waits a little
 * (those connections stay queued) rather than spin. */
static bool accept_one(struct http_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept(srv->listen_fd, (struct sockaddr *)&ss, &len);

    if (fd >= 0 && (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)) {
        close(fd);
        return true;
    }
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            gw_metric_add("gateway_http_accept_failures_total", "", 1);
            gw_sleep_ms(10);
        }
        return errno == EINTR || errno == ECONNABORTED;
    }
    pthread_mutex_lock(&srv->current_lock);
    if (srv->current && !atomic_load(&srv->stopping))
        MHD_add_connection(srv->current->mhd, fd, (struct sockaddr *)&ss, len);
    else
        close(fd);
    pthread_mutex_unlock(&srv->current_lock);
    return true;
}

static void *acceptor_main(void *arg)
{
    struct http_server *srv = arg;
    struct pollfd p[2] = {{srv->listen_fd, POLLIN, 0}, {srv->wake[0], POLLIN, 0}};

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno != EINTR)
                gw_sleep_ms(10);
            continue;
        }
        if (p[1].revents)
            return NULL;
        while (accept_one(srv))
            ;
    }
}

static enum gw_code start_acceptor(struct http_server *srv, struct gw_error *err)
{
    if (pipe(srv->wake) != 0 || fcntl(srv->wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(srv->wake[1], F_SETFD, FD_CLOEXEC) != 0) {
        if (srv->wake[0] >= 0)
            close(srv->wake[0]);
        if (srv->wake[1] >= 0)
            close(srv->wake[1]);
        srv->wake[0] = srv->wake[1] = -1;
        return gw_fail(err, GW_E_IO, "cannot make the acceptor's pipe");
    }
    srv->acceptor_started = pthread_create(&srv->acceptor, NULL, acceptor_main, srv) == 0;
    return srv->acceptor_started ? GW_OK : gw_fail(err, GW_E_INTERNAL, "cannot start the acceptor");
}

/* Stops the acceptor and closes the listener: from now on the kernel
 * refuses new connections. */
static void stop_acceptor(struct http_server *srv)
{
    if (srv->acceptor_started) {
        if (write(srv->wake[1], "x", 1) != 1)
            gw_log(GW_LOG_WARN, "acceptor-wake-failed", "the acceptor could not be woken");
        pthread_join(srv->acceptor, NULL);
        srv->acceptor_started = false;
    }
    if (srv->wake[0] >= 0)
        close(srv->wake[0]);
    if (srv->wake[1] >= 0)
        close(srv->wake[1]);
    srv->wake[0] = srv->wake[1] = -1;
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    srv->listen_fd = -1;
}

/* Makes next the daemon new connections go to; returns the one it replaces. */
static struct http_daemon *make_current(struct http_server *srv, struct http_daemon *next)
{
    struct http_daemon *old;

    pthread_mutex_lock(&srv->current_lock);
    old = srv->current;
    srv->current = next;
    pthread_mutex_unlock(&srv->current_lock);
    return old;
}

enum gw_code http_server_start(const struct http_server_config *hc, struct auth_table *clients,
                               struct http_server **out, struct gw_error *err)
{
    struct http_server *srv;
    struct tls_files tls;
    enum gw_code rc;

    *out = NULL;
    srv = calloc(1, sizeof *srv);
    if (!srv)
        return gw_fail(err, GW_E_NOMEM, "no memory for the HTTP server");
    srv->hc = *hc;
    srv->cfg = hc->cfg;
    srv->n_threads = thread_count(srv->cfg);
    srv->listen_fd = srv->wake[0] = srv->wake[1] = -1;
    atomic_init(&srv->stopping, false);
    pthread_mutex_init(&srv->current_lock, NULL);
    pthread_mutex_init(&srv->clients_lock, NULL);
    srv->clients = auth_table_ref(clients);
    pthread_mutex_init(&srv->retire_lock, NULL);
    raise_fd_limit(srv->cfg);
    rc = tls_files_load(srv->cfg, &tls, err);
    if (!rc && (rc = http_conns_start(srv, err)) != GW_OK)
        tls_files_free(&tls);
    if (!rc && (rc = http_pool_start(&srv->pool, HTTP_BLOCKING_THREADS, err)) != GW_OK)
        tls_files_free(&tls);
    if (!rc && (rc = bind_listener(srv->cfg->listen, &srv->listen_fd, &srv->port, err)) != GW_OK)
        tls_files_free(&tls);
    if (rc) {
        http_server_stop(srv);
        return rc;
    }
    if (srv->hc.on_bound)
        srv->hc.on_bound(srv->hc.handler_ctx, srv->port);
    srv->current = start_daemon(srv, &tls);
    if (!srv->current) {
        tls_files_free(&tls);
        http_server_stop(srv);
        return gw_fail(err, GW_E_IO, "cannot serve HTTPS on %s", srv->cfg->listen);
    }
    rc = start_acceptor(srv, err);
    if (rc) {
        http_server_stop(srv);
        return rc;
    }
    *out = srv;
    return GW_OK;
}

void http_server_set_clients(struct http_server *srv, struct auth_table *clients)
{
    struct auth_table *old;

    pthread_mutex_lock(&srv->clients_lock);
    old = srv->clients;
    srv->clients = auth_table_ref(clients);
    pthread_mutex_unlock(&srv->clients_lock);
    auth_table_destroy(old);
}

int http_server_port(const struct http_server *srv)
{
    return srv->port;
}

/* Waits until no request of dmn can be suspended any more: libmicrohttpd
 * must not be stopped with a connection suspended. Once stopping is set, a
 * call of the access handler that starts after it answers at once; one
 * that started before (in_handler counts it first) may still defer, so
 * these are waited for, then the deferred ones: the store answers every
 * submitted job within its commit timeout. */
static void wait_deferred(struct http_daemon *dmn)
{
    int64_t next_log = gw_mono_ms() + 5000;

    atomic_store(&dmn->stopping, true);
    while (atomic_load(&dmn->in_handler) > 0)
        gw_sleep_ms(1);
    while (atomic_load(&dmn->deferred) > 0) {
        if (gw_mono_ms() >= next_log) {
            gw_log(GW_LOG_WARN, "drain-waiting", "%ld requests still wait for the store",
                   (long)atomic_load(&dmn->deferred));
            next_log += 5000;
        }
        gw_sleep_ms(10);
    }
}

/* Waits up to drain_timeout_s for dmn's requests in flight (not idle
 * keep-alives) and, when connections is set (a TLS reload retires dmn),
 * for its connections to close; otherwise (SIGTERM) requests that begin
 * meanwhile are refused. Then waits for its deferred requests, always; then
 * stops and frees it. */
static void drain_and_stop(struct http_daemon *dmn, long drain_timeout_s, bool connections)
{
    int64_t deadline = gw_mono_ms() + drain_timeout_s * 1000;
    const union MHD_DaemonInfo *info;

    if (!connections)
        atomic_store(&dmn->draining, true);
    for (;;) {
        bool busy = atomic_load(&dmn->in_flight) > 0;

        if (!busy && connections) {
            info = MHD_get_daemon_info(dmn->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
            busy = info && info->num_connections > 0;
        }
        if (!busy || gw_mono_ms() >= deadline)
            break;
        gw_sleep_ms(20);
    }
    if (atomic_load(&dmn->in_flight) > 0)
        gw_log(GW_LOG_WARN, "drain-timeout", "%ld requests still in flight",
               (long)atomic_load(&dmn->in_flight));
    wait_deferred(dmn);
    MHD_stop_daemon(dmn->mhd);
    daemon_free(dmn);
}

/* The daemon a reload replaced: stopped once its connections are done. */
struct retired {
    struct http_daemon *dmn;
    long drain_timeout_s;
};

static void *retire_main(void *arg)
{
    struct retired *r = arg;

    drain_and_stop(r->dmn, r->drain_timeout_s, true);
    free(r);
    return NULL;
}

static void join_retired(struct http_server *srv)
{
    pthread_mutex_lock(&srv->retire_lock);
    if (srv->retiring) {
        pthread_join(srv->retire_thread, NULL);
        srv->retiring = false;
    }
    pthread_mutex_unlock(&srv->retire_lock);
}

/* Hands the replaced daemon to a thread that stops it once its connections
 * are done. */
static void retire(struct http_server *srv, struct http_daemon *dmn)
{
    struct retired *r = calloc(1, sizeof *r);

    if (!r) { /* no memory: stop it now, cutting its idle connections */
        drain_and_stop(dmn, 0, false);
        return;
    }
    *r = (struct retired){dmn, srv->cfg->drain_timeout_s};
    pthread_mutex_lock(&srv->retire_lock);
    srv->retiring = pthread_create(&srv->retire_thread, NULL, retire_main, r) == 0;
    pthread_mutex_unlock(&srv->retire_lock);
    if (!srv->retiring)
        retire_main(r);
}

enum gw_code http_server_reload_tls(struct http_server *srv, const struct config *cfg,
                                    struct gw_error *err)
{
    struct tls_files fresh;
    struct http_daemon *next;
    enum gw_code rc = tls_files_load(cfg, &fresh, err);

    if (rc)
        return rc;
    join_retired(srv); /* one reload drains at a time */
    next = start_daemon(srv, &fresh);
    if (!next) { /* the checked files did not start: the daemon in force goes on */
        tls_files_free(&fresh);
        return gw_fail(err, GW_E_IO, "the new TLS files did not start; the old ones stay in force");
    }
    retire(srv, make_current(srv, next));
    return GW_OK;
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    join_retired(srv);
    atomic_store(&srv->stopping, true);
    stop_acceptor(srv);
    if (srv->current)
        drain_and_stop(make_current(srv, NULL), srv->cfg->drain_timeout_s, false);
    if (srv->pool.threads)
        http_pool_stop(&srv->pool);
    if (srv->conns.peers)
        http_conns_stop(srv);
    auth_table_destroy(srv->clients);
    pthread_mutex_destroy(&srv->clients_lock);
    pthread_mutex_destroy(&srv->retire_lock);
    pthread_mutex_destroy(&srv->current_lock);
    free(srv);
}
