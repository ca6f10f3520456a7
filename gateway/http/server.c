/* server.c -- the libmicrohttpd daemon: TLS with client certificates,
 * connection and request life cycles, graceful drain.
 *
 * One thread per connection: handlers may block on the store's group commit
 * without stalling other clients. Limits (connections in all and per address,
 * idle time, header memory, body size) come from the configuration.
 * Client certificates are requested (MHD_OPTION_HTTPS_MEM_TRUST) and verified
 * by GnuTLS against the configured CA; auth/ then names them.
 */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define HTTP_MAX_PEM (1024 * 1024)
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
#define HTTP_HEADER_MEMORY (64 * 1024)

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

static void peer_text(struct MHD_Connection *conn, char out[HTTP_MAX_PEER])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(out, HTTP_MAX_PEER, "unknown");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  HTTP_MAX_PEER);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  HTTP_MAX_PEER);
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
    if (!cc->identified || stale) {
        peer_text(conn, cc->peer);
        identify(srv, conn, cc);
    }
    return cc;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct conn_ctx *cc = *socket_context;

    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(struct conn_ctx));
        return;
    }
    if (cc) {
        auth_identity_cleanup(&cc->who);
        auth_table_destroy(cc->table);
        free(cc);
    }
    *socket_context = NULL;
}

static struct req_ctx *request_begin(struct http_server *srv)
{
    struct req_ctx *rc = calloc(1, sizeof *rc);

    if (!rc)
        return NULL;
    gw_buf_init(&rc->body, (size_t)srv->cfg->max_body_bytes);
    rc->started_ms = gw_now_ms();
    rc->started_mono = gw_mono_ms();
    if (gw_uuid(rc->request_id, NULL) != GW_OK)
        snprintf(rc->request_id, sizeof rc->request_id, "unknown");
    atomic_fetch_add(&srv->in_flight, 1);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct req_ctx *rc = *con_cls;

    (void)conn;
    (void)toe;
    if (!rc)
        return;
    gw_buf_cleanup(&rc->body);
    free(rc);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* Content-Length beyond the limit is refused before any byte is read. */
static bool declared_too_large(struct http_server *srv, struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    long n;

    return cl && (!gw_parse_long(cl, 0, (long)1 << 62, &n) || n > srv->cfg->max_body_bytes);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *srv = cls;
    struct req_ctx *rc = *con_cls;
    char why[160];

    (void)version;
    if (!rc) {
        rc = *con_cls = request_begin(srv);
        if (!rc)
            return MHD_NO;
        if (!declared_too_large(srv, conn))
            return MHD_YES;
        rc->too_large = true;
    }
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
    if (rc->too_large) {
        snprintf(why, sizeof why, "the request body exceeds max_body_bytes (%ld bytes)",
                 srv->cfg->max_body_bytes);
        return http_refuse_early(srv, conn, rc, url, method, 413, "too-costly", why);
    }
    return http_dispatch(srv, conn, rc, url, method);
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
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

static enum gw_code start_daemon(struct http_server *srv, struct gw_error *err)
{
    const struct config *cfg = srv->cfg;
    unsigned flags = MHD_USE_TLS | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    int fd;
    enum gw_code rc = bind_listener(cfg->listen, &fd, &srv->port, err);

    if (rc)
        return rc;
    if (srv->hc.on_bound)
        srv->hc.on_bound(srv->hc.handler_ctx, srv->port);
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_HTTPS_MEM_KEY, srv->key_pem, MHD_OPTION_HTTPS_MEM_CERT, srv->cert_pem,
        MHD_OPTION_HTTPS_MEM_TRUST, srv->ca_pem, MHD_OPTION_HTTPS_PRIORITIES, HTTP_TLS_PRIORITIES,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_HEADER_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        close(fd);
        return gw_fail(err, GW_E_IO, "cannot serve HTTPS on %s (bad TLS files?)", cfg->listen);
    }
    return GW_OK;
}

enum gw_code http_server_start(const struct http_server_config *hc, struct auth_table *clients,
                               struct http_server **out, struct gw_error *err)
{
    struct http_server *srv;
    enum gw_code rc;

    *out = NULL;
    srv = calloc(1, sizeof *srv);
    if (!srv)
        return gw_fail(err, GW_E_NOMEM, "no memory for the HTTP server");
    srv->hc = *hc;
    srv->cfg = hc->cfg;
    pthread_mutex_init(&srv->clients_lock, NULL);
    atomic_init(&srv->in_flight, 0);
    srv->clients = auth_table_ref(clients);
    rc = read_file(srv->cfg->tls_cert, &srv->cert_pem, err);
    if (!rc)
        rc = read_file(srv->cfg->tls_key, &srv->key_pem, err);
    if (!rc)
        rc = read_file(srv->cfg->tls_ca, &srv->ca_pem, err);
    if (!rc)
        rc = start_daemon(srv, err);
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

/* Stops accepting, then waits for requests in flight (not idle keep-alives). */
static void drain(struct http_server *srv)
{
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    int64_t deadline = gw_mono_ms() + srv->cfg->drain_timeout_s * 1000;

    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    while (atomic_load(&srv->in_flight) > 0 && gw_mono_ms() < deadline)
        gw_sleep_ms(20);
    if (atomic_load(&srv->in_flight) > 0)
        gw_log(GW_LOG_WARN, "drain-timeout", "%ld requests still in flight",
               (long)atomic_load(&srv->in_flight));
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    if (srv->daemon) {
        drain(srv);
        MHD_stop_daemon(srv->daemon);
    }
    auth_table_destroy(srv->clients);
    if (srv->key_pem)
        memset(srv->key_pem, 0, strlen(srv->key_pem));
    free(srv->key_pem);
    free(srv->cert_pem);
    free(srv->ca_pem);
    pthread_mutex_destroy(&srv->clients_lock);
    free(srv);
}
