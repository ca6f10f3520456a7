/* baseline.c -- the bench's honest floor: exactly what the gateway's HTTP
 * layer must do for a referral, and nothing more.
 *
 * Same as gateway/http/server.c: libmicrohttpd over GnuTLS with the same
 * priorities, server certificate and client CA (client certificates are
 * requested in the handshake); the same threading mode (epoll, a pool of
 * one thread per core, suspend/resume allowed); the same idle timeout.
 * The client certificate is verified and identified once per connection
 * (chain check, SHA-256 fingerprint and subject DN), kept in the socket
 * context, as the gateway does. Each request's body (the 2.4 KB referral)
 * is read into a buffer, then a small fixed JSON answer leaves.
 *
 * usage: baseline PORT CERT KEY CA
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
#define MAX_BODY       (4 * 1024 * 1024)

/* Per connection: who the certificate names, worked out once. */
struct peer {
    bool identified;
    bool trusted;
    unsigned char fingerprint[32];
    char subject[512];
};

/* Per request: the body read so far. */
struct request {
    char *body;
    size_t len, cap;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        exit(2);
    buf = calloc(1, (size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        exit(2);
    fclose(f);
    return buf;
}

static void identify(struct MHD_Connection *conn, struct peer *p)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    const gnutls_datum_t *peers;
    gnutls_x509_crt_t crt;
    unsigned int status = 0, n = 0;
    size_t fp_len = sizeof p->fingerprint, dn_len = sizeof p->subject;

    p->identified = true;
    if (!session || gnutls_certificate_verify_peers2(session, &status) || status)
        return;
    peers = gnutls_certificate_get_peers(session, &n);
    if (!peers || !n || gnutls_fingerprint(GNUTLS_DIG_SHA256, &peers[0], p->fingerprint, &fp_len))
        return;
    if (gnutls_x509_crt_init(&crt))
        return;
    if (!gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) &&
        !gnutls_x509_crt_get_dn(crt, p->subject, &dn_len))
        p->trusted = true;
    gnutls_x509_crt_deinit(crt);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls, (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = calloc(1, sizeof(struct peer));
    else {
        free(*socket_context);
        *socket_context = NULL;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *r = *state;

    (void)cls, (void)conn, (void)toe;
    if (r)
        free(r->body);
    free(r);
    *state = NULL;
}

static bool keep(struct request *r, const char *data, size_t n)
{
    if (r->len + n > MAX_BODY)
        return false;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        char *grown;

        while (cap < r->len + n)
            cap *= 2;
        grown = realloc(r->body, cap);
        if (!grown)
            return false;
        r->body = grown;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return true;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    static const char body[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[]}";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct peer *p = ci ? ci->socket_context : NULL;
    struct request *r = *state;
    struct MHD_Response *resp;
    enum MHD_Result ok;

    (void)cls, (void)url, (void)method, (void)version;
    if (!r) {
        if (!p)
            return MHD_NO;
        if (!p->identified)
            identify(conn, p);
        if (!p->trusted)
            return MHD_NO;
        *state = r = calloc(1, sizeof *r);
        return r ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        if (!keep(r, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    resp = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/fhir+json");
    ok = MHD_queue_response(conn, 201, resp);
    MHD_destroy_response(resp);
    return ok;
}

int main(int argc, char **argv)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct MHD_Daemon *d;
    sigset_t set;
    int sig;

    if (argc != 5) {
        fprintf(stderr, "usage: baseline PORT CERT KEY CA\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    d = MHD_start_daemon(
        MHD_USE_TLS | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME,
        (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)(cores > 0 ? cores : 1), MHD_OPTION_HTTPS_MEM_CERT, slurp(argv[2]),
        MHD_OPTION_HTTPS_MEM_KEY, slurp(argv[3]), MHD_OPTION_HTTPS_MEM_TRUST, slurp(argv[4]),
        MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_CONNECTION_LIMIT, 1024u,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    if (!d)
        return 1;
    fprintf(stderr, "baseline listening on %s\n", argv[1]);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
