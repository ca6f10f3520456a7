/* http.h -- the HTTPS front door: libmicrohttpd with GnuTLS, client
 * certificates, bounded requests, the routing table and content negotiation.
 *
 * Owns:      the daemon, its threads (one per connection) and each request's
 *            memory until libmicrohttpd reports it complete.
 * Promises:  a handler runs only for a matched route whose role check passed,
 *            with the whole body read (at most max_body_bytes: else 413), the
 *            client identified (401 for a missing or unknown certificate
 *            except on public routes), the answer format negotiated (406/415
 *            otherwise). Every request is answered exactly once, counted in
 *            /metrics and logged as one JSON line without patient data.
 * Never:     lets a handler's failure crash the daemon: a handler that sets
 *            nothing answers 500 with an OperationOutcome.
 * Threads:   handlers run concurrently on connection threads.
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
 * done() frees ctx once the answer is finished or abandoned. Both run on the
 * thread that sends the answer; memory stays what ctx holds. */
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
/* Builds an OperationOutcome with one issue: a new reference or NULL. */
json_t *http_outcome_new(const char *severity, const char *code, const char *diagnostics,
                         const char *expression);

typedef void (*http_handler_fn)(struct http_request *req, struct http_response *resp, void *ctx);

enum http_route_flags {
    HTTP_PUBLIC = 1 << 0,    /* no client certificate needed */
    HTTP_FHIR = 1 << 1,      /* FHIR answer: negotiate JSON/XML (406 otherwise) */
    HTTP_FHIR_BODY = 1 << 2, /* FHIR body: Content-Type JSON or XML (415 otherwise) */
    HTTP_HL7_BODY = 1 << 3,  /* HL7 v2 body: application/hl7-v2 (415 otherwise) */
    HTTP_PAGE = 1 << 4,      /* a page for browsers: the server's refusals are HTML pages */
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
 * 413, 415) in the audit trail; runs before the answer is sent. */
typedef void (*http_refusal_fn)(void *ctx, const struct http_request *req, int status,
                                const char *why);

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
/* Stops accepting, waits up to drain_timeout_s for requests in flight, then
 * stops and frees. Accepts NULL. */
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
