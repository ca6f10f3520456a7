/* http.h -- the HTTPS front door: libmicrohttpd with GnuTLS, client
 * certificates, bounded requests, the routing table and content negotiation.
 *
 * Owns:      the daemon, its threads and each request's memory until
 *            libmicrohttpd reports it complete.
 * Promises:  a handler runs only for a matched route whose role check passed,
 *            with the whole body read (at most max_body_bytes: else 413), the
 *            client identified (a client without a listed certificate is
 *            refused as soon as its headers are in, before any body byte is
 *            read: 401 on routes that need one, 404/405 on no route; the
 *            connection is then closed), the answer format negotiated
 *            (406/415 otherwise). Every request is answered exactly once,
 *            counted in /metrics and logged as one JSON line without patient
 *            data. A request must arrive whole within receive_deadline_s of
 *            its first byte (else the connection is cut); connections past
 *            max_connections or max_connections_per_ip are refused, logged
 *            once per address a minute and counted.
 * Never:     lets a handler's failure crash the daemon: a handler that sets
 *            nothing answers 500 with an OperationOutcome.
 * Threads:   epoll and a pool of http_threads threads (one per core by
 *            default) serve every connection; an open connection costs no
 *            thread. Handlers run on those threads and must not block: one
 *            that waits for the store defers its answer (http_defer) and the
 *            connection is suspended until http_pending_ready(). Routes
 *            flagged HTTP_BLOCKING run on a small pool of threads that may
 *            block instead (such a handler may still defer, to wait for a
 *            commit without holding its thread); streamed bodies are
 *            produced there too.
 * Ownership: the response takes a reference on any json_t given to it.
 */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "config/config.h"
#include "util/util.h"

enum http_format {
    HTTP_FORMAT_NONE = 0,
    HTTP_FORMAT_JSON, /* application/fhir+json */
    HTTP_FORMAT_XML,  /* application/fhir+xml */
    HTTP_FORMAT_HL7,  /* application/hl7-v2 */
    HTTP_FORMAT_TEXT, /* text/plain (metrics, health) */
};

#define HTTP_MAX_PARAMS   64
#define HTTP_MAX_CAPTURES 4
#define HTTP_MAX_HEADERS  16

struct http_param {
    const char *name;
    const char *value;
};

/* One request, as handlers see it. Strings are valid until the handler returns. */
struct http_request {
    const char *method;
    const char *path;                          /* without the query string */
    const char *route;                         /* the matched route's name, for metrics and audit */
    const char *captures[HTTP_MAX_CAPTURES];   /* {x} parts of the pattern, in order */
    struct http_param params[HTTP_MAX_PARAMS]; /* query parameters, in order, repeats kept */
    size_t n_params;
    const char *query; /* the raw query string as received ("" when none) */
    const char *body;  /* NUL-terminated; body_len bytes */
    size_t body_len;
    enum http_format body_format; /* from Content-Type */
    enum http_format want_format; /* negotiated answer format */
    const struct auth_identity *who;
    const char *peer;       /* client address, text */
    const char *request_id; /* UUID, also in X-Request-Id */
    int64_t started_ms;
    void *conn; /* libmicrohttpd's connection, for http_request_header() */
};

/* A request header by name (case-insensitive), or NULL (always NULL for a
 * request without a connection, one the gateway builds itself). */
const char *http_request_header(const struct http_request *req, const char *name);
/* The first query parameter called name, or NULL. */
const char *http_request_param(const struct http_request *req, const char *name);

struct http_header {
    char *name;
    char *value;
};

/* A body produced while it is sent (exports): read() fills at most max bytes
 * of buf and returns how many (0 is not allowed: block until some are ready),
 * HTTP_STREAM_END when done or HTTP_STREAM_FAILED to cut the connection;
 * done() frees ctx once the answer is finished or abandoned (it must be
 * cheap). read() runs on the server's blocking threads (it may query the
 * store), done() wherever the answer ends; never both at once. Memory stays
 * what ctx holds and two chunks in flight. */
#define HTTP_STREAM_END    (-1)
#define HTTP_STREAM_FAILED (-2)
struct http_stream {
    long (*read)(void *ctx, char *buf, size_t max);
    void (*done)(void *ctx);
    void *ctx;
};

/* What a handler answers. Set with the http_respond_* helpers. */
struct http_response {
    int status;
    json_t *resource; /* a FHIR resource to render in the negotiated format */
    char *body;       /* or raw bytes (free()d by the server) */
    size_t body_len;
    const char *content_type; /* for raw bodies */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    char *audit_note; /* what the auditing hook should record about a refusal, may be NULL */
    struct http_stream stream; /* set by http_respond_stream(): the body is streamed */
};

/* Answers a FHIR resource (borrowed: the response takes its own reference). */
void http_respond_resource(struct http_response *resp, int status, json_t *resource);
/* Answers an OperationOutcome with one error issue (code: FHIR IssueType). */
void http_respond_error(struct http_response *resp, int status, const char *issue_code,
                        const char *diagnostics, const char *expression);
/* Answers an OperationOutcome from a gw_error (status and code from the table). */
void http_respond_gw_error(struct http_response *resp, const struct gw_error *err);
/* Answers raw bytes (copied). */
void http_respond_bytes(struct http_response *resp, int status, const char *content_type,
                        const char *data, size_t len);
/* Answers bytes, taking ownership of data (malloc()ed). */
void http_respond_owned(struct http_response *resp, int status, const char *content_type,
                        char *data, size_t len);
/* Answers a body produced by stream (which the response now owns: its done()
 * runs even when the answer is never sent). */
void http_respond_stream(struct http_response *resp, int status, const char *content_type,
                         const struct http_stream *stream);
/* Answers a small HTML page for browsers (refusals of HTTP_PAGE routes):
 * title and text are escaped; the page loads nothing. */
void http_respond_page(struct http_response *resp, int status, const char *title, const char *text);
/* Adds a header (copied); ignored past HTTP_MAX_HEADERS (logged). */
void http_header_add(struct http_response *resp, const char *name, const char *value);
/* Frees what resp holds, leaving it empty. */
void http_response_cleanup(struct http_response *resp);
/* Builds an OperationOutcome with one issue: a new reference or NULL. */
json_t *http_outcome_new(const char *severity, const char *code, const char *diagnostics,
                         const char *expression);

typedef void (*http_handler_fn)(struct http_request *req, struct http_response *resp, void *ctx);

/* ------------------------------------------------------------ deferred answers */

/* A request whose answer waits for something (a commit). */
struct http_pending;
/* Runs on a server thread once the request is ready; may change resp. */
typedef void (*http_finish_fn)(struct http_request *req, struct http_response *resp, void *state);
/* Frees a deferred request's state once the request is over. */
typedef void (*http_release_fn)(void *state);

/* For a handler (or the refusal hook) that must wait before it can answer:
 * the server keeps resp as it stands (moved out: resp is empty afterwards),
 * suspends the connection when the handler returns, and once
 * http_pending_ready() was called runs finish(req, resp, state) (finish may
 * be NULL) on one of its threads and sends resp. req stays valid until
 * then. release(state) (may be NULL) runs when the request is over, also
 * when the client went away first. At most once per request (a handler of
 * an HTTP_BLOCKING route may call it too: the request is then answered once
 * the handler returned and http_pending_ready() was called, and the
 * handler must not touch resp after deferring); NULL when out of memory
 * (nothing was taken: answer at once). */
struct http_pending *http_defer(struct http_request *req, struct http_response *resp,
                                http_finish_fn finish, void *state, http_release_fn release);
/* The work a deferred request waited for is done: from any thread, exactly
 * once per http_defer(), cheap (it wakes the connection's thread). */
void http_pending_ready(struct http_pending *pending);

enum http_route_flags {
    HTTP_PUBLIC = 1 << 0,    /* no client certificate needed */
    HTTP_FHIR = 1 << 1,      /* FHIR answer: negotiate JSON/XML (406 otherwise) */
    HTTP_FHIR_BODY = 1 << 2, /* FHIR body: Content-Type JSON or XML (415 otherwise) */
    HTTP_HL7_BODY = 1 << 3,  /* HL7 v2 body: application/hl7-v2 (415 otherwise) */
    HTTP_PAGE = 1 << 4,      /* a page for browsers: the server's refusals are HTML pages */
    HTTP_BLOCKING = 1 << 5,  /* the handler may block: it runs on a blocking thread */
};

/* One row of the routing table. pattern segments are literals or {name};
 * the first row whose method and pattern match wins. */
struct http_route {
    const char *method;
    const char *pattern;
    const char *name;
    unsigned roles; /* AUTH_* mask that may call it (ignored when HTTP_PUBLIC) */
    unsigned flags;
    http_handler_fn handler;
};

/* Renders a FHIR resource in fmt into out (the fhir module's serializer). */
typedef enum gw_code (*http_render_fn)(json_t *resource, enum http_format fmt, struct gw_buf *out,
                                       struct gw_error *err);
/* Records a request the server refused by itself (401, 403, 404, 405, 406,
 * 413, 415) in the audit trail before the answer is sent: resp holds the
 * refusal; the hook leaves it as it is, deferring it (http_defer) until
 * what it records is durable. */
typedef void (*http_refusal_fn)(void *ctx, struct http_request *req, struct http_response *resp,
                                int status, const char *why);

struct http_server_config {
    const struct config *cfg;
    const struct http_route *routes;
    size_t n_routes;
    void *handler_ctx; /* passed to every handler */
    http_render_fn render;
    http_refusal_fn on_refusal;
    void *refusal_ctx;
    /* Called once the listening socket is bound, before any request is
     * accepted, with the port bound (useful when the configured port is 0). */
    void (*on_bound)(void *ctx, int port);
};

struct http_server;

/* Starts serving HTTPS on cfg->listen. On GW_OK *out is new. */
enum gw_code http_server_start(const struct http_server_config *hc, struct auth_table *clients,
                               struct http_server **out, struct gw_error *err);
/* Replaces the client table (SIGHUP); the server takes a reference. */
void http_server_set_clients(struct http_server *srv, struct auth_table *clients);
/* SIGHUP: reads cfg's TLS files again and, when they load, serves new
 * connections with them on the same socket; connections already open finish
 * on the old ones. On failure (err says which file) nothing changes. */
enum gw_code http_server_reload_tls(struct http_server *srv, const struct config *cfg,
                                    struct gw_error *err);
/* Stops accepting, answers 503 to requests that begin on connections
 * already open, waits up to drain_timeout_s for requests in flight (and
 * always for deferred ones: the store answers them within its commit
 * timeout), then stops and frees. Accepts NULL. */
void http_server_stop(struct http_server *srv);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *srv);

/* Content negotiation (negotiate.c), exposed for tests. */
enum http_format http_format_from_content_type(const char *content_type, bool *charset_ok);
/* The answer format from _format (wins) or Accept; NONE when nothing fits. */
enum http_format http_format_negotiate(const char *format_param, const char *accept);
const char *http_format_media_type(enum http_format fmt);

/* Matches path against pattern; fills captures (pointers into copy, which
 * holds path's segments); true on a match. Exposed for tests. */
bool http_route_match(const char *pattern, const char *path, char *copy, size_t copy_cap,
                      const char *captures[HTTP_MAX_CAPTURES]);

#endif
