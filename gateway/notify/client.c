/* client.c -- one HTTPS POST to a subscriber's endpoint (OpenSSL).
 *
 * The gateway presents its own client certificate and verifies the
 * endpoint's chain against the configured CA and its name (DNS name or IP
 * address) against the URL. Everything runs non-blocking against two
 * deadlines (connect + handshake, then request + answer), and only the head
 * of the answer is read, at most NOTIFY_MAX_RESPONSE_HEAD bytes: a 3xx is an
 * answer like any other (the caller does not follow it). One connection per
 * attempt, closed after it (Connection: close).
 */
#include "notify/notify_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define NOTIFY_MAX_REQUEST_HEAD (NOTIFY_MAX_HEADERS * NOTIFY_MAX_HEADER + 2 * NOTIFY_MAX_URL + 1024)

/* The first queued OpenSSL error as text (or what). */
static void tls_reason(char *out, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    char text[200];

    if (!e) {
        gw_format(out, cap, "%s", what);
        return;
    }
    ERR_error_string_n(e, text, sizeof text);
    gw_format(out, cap, "%s: %s", what, text);
    ERR_clear_error();
}

enum gw_code notify_tls_load(const struct config *cfg, SSL_CTX **out, struct gw_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[GW_ERROR_MSG_MAX];
    const char *key = NULL, *file = NULL;

    *out = NULL;
    if (!ctx)
        return gw_fail(err, GW_E_NOMEM, "no memory for the notification TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->subscription_tls_cert) != 1) {
        key = "subscription_tls_cert";
        file = cfg->subscription_tls_cert;
    } else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->subscription_tls_key, SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_check_private_key(ctx) != 1) {
        key = "subscription_tls_key";
        file = cfg->subscription_tls_key;
    } else if (SSL_CTX_load_verify_locations(ctx, cfg->subscription_tls_ca, NULL) != 1) {
        key = "subscription_tls_ca";
        file = cfg->subscription_tls_ca;
    }
    if (key) {
        tls_reason(why, sizeof why, file);
        SSL_CTX_free(ctx);
        return gw_fail(err, GW_E_INPUT, "%s: cannot load %s", key, why);
    }
    *out = ctx;
    return GW_OK;
}

/* Milliseconds left before deadline (a monotonic time), at least 0. */
static int left(int64_t deadline)
{
    int64_t now = gw_mono_ms();

    return now >= deadline ? 0 : (int)(deadline - now);
}

static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol), soerr = 0;
    socklen_t len = sizeof soerr;
    struct pollfd pf;

    if (fd < 0)
        return -1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        goto fail;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    pf = (struct pollfd){fd, POLLOUT, 0};
    if (poll(&pf, 1, left(deadline)) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) ||
        soerr)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static enum gw_code connect_tcp(const struct notify_url *url, int64_t deadline, int *fd,
                                struct gw_error *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res, *ai;
    char port[8];
    int gai;

    snprintf(port, sizeof port, "%d", url->port);
    gai = getaddrinfo(url->host, port, &hints, &res);
    if (gai)
        return gw_fail(err, GW_E_IO, "cannot resolve %s: %s", url->host, gai_strerror(gai));
    *fd = -1;
    for (ai = res; ai && *fd < 0 && left(deadline) > 0; ai = ai->ai_next)
        *fd = connect_one(ai, deadline);
    freeaddrinfo(res);
    if (*fd < 0)
        return gw_fail(err, GW_E_IO, "cannot connect to %s:%d%s", url->host, url->port,
                       left(deadline) ? "" : " in time");
    return GW_OK;
}

/* Waits for what OpenSSL asked (r: the failed call's return); false on
 * timeout or a real error. */
static bool wait_io(SSL *ssl, int fd, int r, int64_t deadline)
{
    int e = SSL_get_error(ssl, r);
    struct pollfd pf = {fd, 0, 0};

    if (e == SSL_ERROR_WANT_READ)
        pf.events = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        pf.events = POLLOUT;
    else
        return false;
    return poll(&pf, 1, left(deadline)) == 1;
}

static enum gw_code handshake(SSL *ssl, int fd, int64_t deadline, struct gw_error *err)
{
    char why[GW_ERROR_MSG_MAX];
    int r;

    while ((r = SSL_connect(ssl)) != 1) {
        if (wait_io(ssl, fd, r, deadline))
            continue;
        if (SSL_get_verify_result(ssl) != X509_V_OK)
            return gw_fail(err, GW_E_IO, "the endpoint's certificate is not trusted: %s",
                           X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        tls_reason(why, sizeof why,
                   left(deadline) ? "TLS handshake failed" : "TLS handshake timed out");
        return gw_fail(err, GW_E_IO, "%s", why);
    }
    return GW_OK;
}

static enum gw_code send_all(SSL *ssl, int fd, const char *data, size_t len, int64_t deadline,
                             struct gw_error *err)
{
    size_t done = 0;

    while (done < len) {
        size_t n = 0;
        int r = SSL_write_ex(ssl, data + done, len - done, &n);

        if (r == 1)
            done += n;
        else if (!wait_io(ssl, fd, r, deadline))
            return gw_fail(err, GW_E_IO, "sending the notification %s",
                           left(deadline) ? "failed" : "timed out");
    }
    return GW_OK;
}

/* Reads until the end of the answer's head; parses its status. */
static enum gw_code read_status(SSL *ssl, int fd, int64_t deadline, int *status,
                                struct gw_error *err)
{
    char *head = malloc(NOTIFY_MAX_RESPONSE_HEAD + 1);
    size_t len = 0;
    int code = 0;
    enum gw_code rc = GW_OK;

    if (!head)
        return gw_fail(err, GW_E_NOMEM, "no memory for the answer");
    head[0] = '\0';
    while (!strstr(head, "\r\n\r\n") && rc == GW_OK) {
        size_t n = 0;
        int r;

        if (len == NOTIFY_MAX_RESPONSE_HEAD) {
            rc = gw_fail(err, GW_E_LIMIT, "the answer's head exceeds %d bytes",
                         NOTIFY_MAX_RESPONSE_HEAD);
            break;
        }
        r = SSL_read_ex(ssl, head + len, NOTIFY_MAX_RESPONSE_HEAD - len, &n);
        if (r == 1) {
            len += n;
            head[len] = '\0';
        } else if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ||
                   !wait_io(ssl, fd, r, deadline)) {
            if (!strstr(head, "\r\n")) /* a status line alone before the close is enough */
                rc = gw_fail(err, GW_E_IO, "no answer from the endpoint%s",
                             left(deadline) ? "" : " in time");
            break;
        }
    }
    if (rc == GW_OK && (sscanf(head, "HTTP/1.%*1[01] %3d", &code) != 1 || code < 100 || code > 599))
        rc = gw_fail(err, GW_E_IO, "the endpoint's answer is not HTTP/1.x");
    free(head);
    if (!rc)
        *status = code;
    return rc;
}

/* The request head: line, Host, framing, then the channel's headers. */
static enum gw_code request_head(const struct notify_post *post, struct gw_buf *b,
                                 struct gw_error *err)
{
    const struct notify_url *u = post->url;
    size_t i;

    gw_buf_printf(b, "POST %s HTTP/1.1\r\nHost: %s%s%s", u->target,
                  u->host_is_ip && strchr(u->host, ':') ? "[" : "", u->host,
                  u->host_is_ip && strchr(u->host, ':') ? "]" : "");
    if (u->port != 443)
        gw_buf_printf(b, ":%d", u->port);
    gw_buf_printf(b, "\r\nUser-Agent: fhir-gateway\r\nConnection: close\r\nContent-Length: %zu\r\n",
                  post->body ? post->body_len : 0);
    if (post->body)
        gw_buf_puts(b, "Content-Type: " NOTIFY_JSON "; charset=utf-8\r\n");
    for (i = 0; i < post->n_headers; i++) {
        if (notify_header_check(post->headers[i], err) != GW_OK)
            return GW_E_INPUT;
        gw_buf_printf(b, "%s\r\n", post->headers[i]);
    }
    gw_buf_puts(b, "\r\n");
    return gw_buf_finish(b, "the request head", err);
}

/* Sends the request on an established TLS session and reads the status. */
static enum gw_code exchange(SSL *ssl, int fd, const struct notify_post *post, int *status,
                             struct gw_error *err)
{
    int64_t deadline = gw_mono_ms() + post->timeout_ms;
    struct gw_buf head;
    enum gw_code rc;

    gw_buf_init(&head, NOTIFY_MAX_REQUEST_HEAD);
    rc = request_head(post, &head, err);
    if (!rc)
        rc = send_all(ssl, fd, head.data, head.len, deadline, err);
    if (!rc && post->body && post->body_len)
        rc = send_all(ssl, fd, post->body, post->body_len, deadline, err);
    if (!rc)
        rc = read_status(ssl, fd, deadline, status, err);
    gw_buf_cleanup(&head);
    return rc;
}

static enum gw_code name_check(SSL *ssl, const struct notify_url *url, struct gw_error *err)
{
    if (url->host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url->host) != 1)
            return gw_fail(err, GW_E_INTERNAL, "cannot check the endpoint's address");
        return GW_OK;
    }
    if (SSL_set_tlsext_host_name(ssl, url->host) != 1 || SSL_set1_host(ssl, url->host) != 1)
        return gw_fail(err, GW_E_NOMEM, "cannot set the endpoint's name");
    return GW_OK;
}

enum gw_code notify_https_post(SSL_CTX *tls, const struct notify_post *post, int *status,
                               struct gw_error *err)
{
    int64_t deadline = gw_mono_ms() + post->connect_timeout_ms;
    SSL *ssl = NULL;
    int fd = -1;
    enum gw_code rc;

    *status = 0;
    if (!tls)
        return gw_fail(err, GW_E_DENIED, "no endpoint is allowed (subscription_endpoints)");
    ERR_clear_error();
    rc = connect_tcp(post->url, deadline, &fd, err);
    if (!rc && !(ssl = SSL_new(tls)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a TLS session");
    if (!rc && SSL_set_fd(ssl, fd) != 1)
        rc = gw_fail(err, GW_E_INTERNAL, "cannot attach the TLS session");
    if (!rc)
        rc = name_check(ssl, post->url, err);
    if (!rc)
        rc = handshake(ssl, fd, deadline, err);
    if (!rc)
        rc = exchange(ssl, fd, post, status, err);
    if (ssl && !rc)
        SSL_shutdown(ssl); /* best effort: non-blocking, the answer is already in */
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    ERR_clear_error();
    return rc;
}
