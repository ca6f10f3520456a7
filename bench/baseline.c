/* baseline.c -- the bench's yardstick: a libmicrohttpd HTTPS server with the
 * gateway's TLS setup (same certificates, client certificates requested and
 * verified, TLS 1.2+, one thread per connection) that reads the POST body and
 * answers 201 with a small JSON body, doing nothing else. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

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

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    static const char body[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[]}";
    const union MHD_ConnectionInfo *ci;
    struct MHD_Response *r;
    unsigned int status = 0;
    enum MHD_Result ok;

    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (!*state) {
        *state = conn;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status) ||
        status)
        return MHD_NO;
    r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/fhir+json");
    ok = MHD_queue_response(conn, 201, r);
    MHD_destroy_response(r);
    return ok;
}

int main(int argc, char **argv)
{
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
    d = MHD_start_daemon(MHD_USE_TLS | MHD_USE_THREAD_PER_CONNECTION |
                             MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL,
                         (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
                         MHD_OPTION_HTTPS_MEM_CERT, slurp(argv[2]), MHD_OPTION_HTTPS_MEM_KEY,
                         slurp(argv[3]), MHD_OPTION_HTTPS_MEM_TRUST, slurp(argv[4]),
                         MHD_OPTION_HTTPS_PRIORITIES,
                         "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE",
                         MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_END);
    if (!d)
        return 1;
    fprintf(stderr, "baseline listening on %s\n", argv[1]);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
