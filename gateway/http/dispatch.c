/* dispatch.c -- one request through the pipeline: route, identify, check
 * role, negotiate, run the handler, render, answer, count, log.
 *
 * Refusals made here (401, 403, 404 for unknown routes, 405, 406, 413, 415)
 * go to the auditing hook before the answer leaves, as handlers' do. A
 * client without a listed certificate is refused as soon as its headers are
 * in (http_receive_begin), so it cannot make the server read or buffer a
 * body; libmicrohttpd then closes the connection. The refusals of HTTP_PAGE
 * routes are HTML pages, the others OperationOutcomes.
 */
#include "http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_ALLOW    128
#define HTTP_MAX_RESPONSE (256 * 1024 * 1024)
#define HTTP_MAX_QUERY    (64 * 1024)

struct param_walk {
    struct http_request *req;
    bool overflow;
};

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct param_walk *w = cls;

    (void)kind;
    if (w->req->n_params == HTTP_MAX_PARAMS) {
        w->overflow = true;
        return MHD_NO;
    }
    w->req->params[w->req->n_params++] = (struct http_param){key, value ? value : ""};
    return MHD_YES;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    if (!req->conn)
        return NULL; /* a request the gateway made up (a Subscription's criteria) */
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_param(const struct http_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->n_params; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

/* The query parameters joined back as name=value&... (decoded), for the audit
 * trail: a new string, or NULL when out of memory. */
static char *join_params(const struct http_request *req)
{
    struct gw_buf b;
    size_t i, len;
    char *out;

    gw_buf_init(&b, HTTP_MAX_QUERY);
    gw_buf_puts(&b, "");
    for (i = 0; i < req->n_params; i++)
        gw_buf_printf(&b, "%s%s=%s", i ? "&" : "", req->params[i].name, req->params[i].value);
    out = gw_buf_steal(&b, &len);
    gw_buf_cleanup(&b);
    return out;
}

/* The route for method and path; *path_known tells 404 from 405 and allow
 * lists the methods the path has. */
static const struct http_route *find_route(const struct http_server *srv, struct http_request *req,
                                           char *scratch, size_t cap, bool *path_known,
                                           char allow[HTTP_MAX_ALLOW])
{
    const char *caps[HTTP_MAX_CAPTURES];
    size_t i;

    memset(caps, 0, sizeof caps);
    *path_known = false;
    allow[0] = '\0';
    for (i = 0; i < srv->hc.n_routes; i++) {
        const struct http_route *r = &srv->hc.routes[i];

        memset(caps, 0, sizeof caps);
        if (!http_route_match(r->pattern, req->path, scratch, cap, caps))
            continue;
        if (strcmp(r->method, req->method) == 0) {
            memcpy(req->captures, caps, sizeof caps);
            return r;
        }
        *path_known = true;
        if (!strstr(allow, r->method) && strlen(allow) + strlen(r->method) + 3 < HTTP_MAX_ALLOW) {
            if (allow[0])
                strncat(allow, ", ", HTTP_MAX_ALLOW - strlen(allow) - 1);
            strncat(allow, r->method, HTTP_MAX_ALLOW - strlen(allow) - 1);
        }
    }
    return NULL;
}

static enum gw_code render(struct http_server *srv, struct http_request *req,
                           struct http_response *resp, struct gw_error *err)
{
    struct gw_buf out;
    enum http_format fmt = req->want_format == HTTP_FORMAT_XML ? HTTP_FORMAT_XML : HTTP_FORMAT_JSON;
    enum gw_code rc;
    size_t len;

    if (!resp->resource)
        return GW_OK;
    gw_buf_init(&out, HTTP_MAX_RESPONSE);
    rc = srv->hc.render(resp->resource, fmt, &out, err);
    if (!rc)
        rc = gw_buf_finish(&out, "the answer", err);
    if (!rc) {
        char *body = gw_buf_steal(&out, &len);

        json_decref(resp->resource);
        resp->resource = NULL;
        resp->body = body;
        resp->body_len = len;
        resp->content_type = http_format_media_type(fmt);
    }
    gw_buf_cleanup(&out);
    return rc;
}

static void count_and_log(const struct http_request *req, int status, int64_t started_mono)
{
    char labels[200];
    double seconds = (double)(gw_mono_ms() - started_mono) / 1000.0;
    json_t *fields;

    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%d\"", req->route,
             req->method, status);
    gw_metric_add("gateway_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", req->route);
    gw_metric_observe("gateway_http_request_seconds", labels, seconds);
    fields =
        json_pack("{s:s, s:s, s:s, s:i, s:f, s:s, s:s}", "request_id", req->request_id, "method",
                  req->method, "route", req->route, "status", status, "seconds", seconds, "client",
                  req->who->client_name ? req->who->client_name : "-", "peer", req->peer);
    gw_log_fields(GW_LOG_INFO, "http-request", fields, "%s", "");
    json_decref(fields);
}

static void add_headers(struct MHD_Response *r, const struct http_request *req,
                        const struct http_response *resp)
{
    size_t i;

    MHD_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "text/plain");
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
    for (i = 0; i < resp->n_headers; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
}

enum MHD_Result http_answer_now(struct req_ctx *rc, struct http_response *resp)
{
    struct http_server *srv = rc->dmn->srv;
    struct http_request *req = &rc->req;
    struct gw_error err;
    struct MHD_Response *r;
    enum MHD_Result ok;

    if (!resp->status || (!resp->resource && !resp->body && !resp->stream.read &&
                          resp->status != 204 && resp->status != 304)) {
        gw_log(GW_LOG_ERROR, "handler-set-nothing", "route %s", req->route);
        http_respond_error(resp, 500, "exception", "the server failed to answer", NULL);
    }
    if (render(srv, req, resp, &err) != GW_OK) {
        gw_log(GW_LOG_ERROR, "render-failed", "%s", err.msg);
        http_response_cleanup(resp);
        http_respond_bytes(resp, 500, "text/plain", "the answer could not be rendered\n", 33);
    }
    r = resp->stream.read
            ? http_stream_response(rc, resp)
            : MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        http_response_cleanup(resp);
        return MHD_NO;
    }
    resp->body = NULL; /* now owned by r */
    memset(&resp->stream, 0, sizeof resp->stream);
    add_headers(r, req, resp);
    ok = MHD_queue_response(rc->conn, (unsigned int)resp->status, r);
    MHD_destroy_response(r);
    rc->answered = true;
    count_and_log(req, resp->status, rc->started_mono);
    http_response_cleanup(resp);
    return ok;
}

enum MHD_Result http_answer_deferred(struct req_ctx *rc)
{
    if (atomic_load(&rc->phase) != DEFER_READY)
        return MHD_YES; /* not ready: this call has nothing to do */
    atomic_store(&rc->phase, DEFER_ANSWERED);
    if (rc->finish)
        rc->finish(&rc->req, &rc->held, rc->state);
    return http_answer_now(rc, &rc->held);
}

void http_request_release(struct req_ctx *rc)
{
    if (rc->release)
        rc->release(rc->state);
    rc->release = NULL;
    rc->state = NULL;
    http_response_cleanup(&rc->held);
    free(rc->scratch);
    free(rc->query);
    rc->scratch = rc->query = NULL;
}

/* The request as handlers see it, before its body is read. */
static void request_init(struct req_ctx *rc, const char *url, const char *method)
{
    static const struct auth_identity nobody;
    struct http_request *req = &rc->req;
    struct conn_ctx *cc = http_conn_identify(rc->dmn->srv, rc->conn);

    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = url;
    req->route = "unknown";
    req->query = "";
    req->body = "";
    req->who = cc ? &cc->who : &nobody;
    req->peer = cc ? cc->peer : "unknown";
    req->request_id = rc->request_id;
    req->started_ms = rc->started_ms;
    req->want_format = HTTP_FORMAT_JSON;
    req->conn = rc->conn;
}

/* Answers a refusal the server makes by itself, once the hook recorded it:
 * a page a person can read for an HTTP_PAGE route (flags: the route's, 0
 * when none matched), an OperationOutcome otherwise. */
static enum MHD_Result refuse(struct req_ctx *rc, unsigned flags, int status, const char *issue,
                              const char *why)
{
    const struct http_server_config *hc = &rc->dmn->srv->hc;
    struct http_response resp;

    memset(&resp, 0, sizeof resp);
    if (flags & HTTP_PAGE)
        http_respond_page(&resp, status,
                          status == 401   ? "Certificate required"
                          : status == 403 ? "Forbidden"
                                          : "Refused",
                          why);
    else
        http_respond_error(&resp, status, issue, why, NULL);
    if (status == 401)
        http_header_add(&resp, "WWW-Authenticate", "Mutual-TLS");
    if (hc->on_refusal)
        hc->on_refusal(hc->refusal_ctx, &rc->req, &resp, status, why);
    return http_complete(rc, &resp);
}

enum MHD_Result http_refuse_too_large(struct req_ctx *rc, const char *url, const char *method)
{
    char why[160];

    if (!rc->req.method)
        request_init(rc, url, method);
    http_conns_received(rc->cc);
    snprintf(why, sizeof why, "the request body exceeds max_body_bytes (%ld bytes)",
             rc->dmn->srv->cfg->max_body_bytes);
    return refuse(rc, 0, 413, "too-costly", why);
}

enum MHD_Result http_refuse_stopping(struct req_ctx *rc, const char *url, const char *method)
{
    struct http_response resp;

    if (!rc->req.method)
        request_init(rc, url, method);
    http_conns_received(rc->cc);
    memset(&resp, 0, sizeof resp);
    http_respond_error(&resp, 503, "transient", "the server is stopping", NULL);
    http_header_add(&resp, "Connection", "close");
    return http_answer_now(rc, &resp);
}

/* Role, format and body checks; returns 0 or the status to refuse with. */
static int admit(const struct http_route *route, struct http_request *req, const char **issue,
                 const char **why)
{
    bool charset_ok = true;
    bool has_body = strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0;

    if (!(route->flags & HTTP_PUBLIC) && req->who->role == AUTH_NONE) {
        *issue = "login";
        *why = "a client certificate issued to a registered client is required";
        return 401;
    }
    if (!(route->flags & HTTP_PUBLIC) && !auth_allows(req->who, route->roles)) {
        *issue = "forbidden";
        *why = "this client's role may not use this interaction";
        return 403;
    }
    req->want_format = HTTP_FORMAT_JSON;
    if (route->flags & HTTP_FHIR) {
        req->want_format = http_format_negotiate(http_request_param(req, "_format"),
                                                 http_request_header(req, "Accept"));
        if (req->want_format == HTTP_FORMAT_NONE) {
            req->want_format = HTTP_FORMAT_JSON;
            *issue = "not-supported";
            *why = "the answer can be application/fhir+json or application/fhir+xml only";
            return 406;
        }
    }
    if (has_body && (route->flags & (HTTP_FHIR_BODY | HTTP_HL7_BODY))) {
        req->body_format =
            http_format_from_content_type(http_request_header(req, "Content-Type"), &charset_ok);
        if (!charset_ok ||
            ((route->flags & HTTP_FHIR_BODY) && req->body_format != HTTP_FORMAT_JSON &&
             req->body_format != HTTP_FORMAT_XML) ||
            ((route->flags & HTTP_HL7_BODY) && req->body_format != HTTP_FORMAT_HL7)) {
            *issue = "not-supported";
            *why = (route->flags & HTTP_HL7_BODY)
                       ? "the body must be application/hl7-v2 in UTF-8"
                       : "the body must be application/fhir+json or application/fhir+xml in UTF-8";
            return 415;
        }
    }
    return 0;
}

/* Content-Length beyond the limit is refused before any byte is read. */
static bool declared_too_large(const struct http_server *srv, struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    long n;

    return cl && (!gw_parse_long(cl, 0, (long)1 << 62, &n) || n > srv->cfg->max_body_bytes);
}

/* What a client without a listed certificate may not do, refused before its
 * body: every route but the public ones (401), and unknown paths (404, 405).
 * Returns 0 when the request may go on; *flags gets the route's flags. */
static int refuse_unidentified(struct req_ctx *rc, unsigned *flags, const char **issue,
                               const char **why)
{
    struct http_server *srv = rc->dmn->srv;
    struct http_request *req = &rc->req;
    const struct http_route *route;
    char allow[HTTP_MAX_ALLOW], *scratch;
    bool path_known;

    if (req->who->role != AUTH_NONE)
        return 0;
    scratch = malloc(strlen(req->path) + 1);
    if (!scratch) {
        *issue = "transient";
        *why = "no memory for the request";
        return 503;
    }
    route = find_route(srv, req, scratch, strlen(req->path) + 1, &path_known, allow);
    memset(req->captures, 0, sizeof req->captures); /* they pointed into scratch */
    free(scratch);
    if (route && (route->flags & HTTP_PUBLIC))
        return 0;
    if (route) {
        *flags = route->flags;
        req->route = route->name;
        *issue = "login";
        *why = "a client certificate issued to a registered client is required";
        return 401;
    }
    *issue = path_known ? "not-supported" : "not-found";
    *why = path_known ? "this method is not supported here" : "no such endpoint";
    return path_known ? 405 : 404;
}

enum MHD_Result http_receive_begin(struct req_ctx *rc, const char *url, const char *method)
{
    const char *issue = NULL, *why = NULL;
    unsigned flags = 0;
    int status;

    request_init(rc, url, method);
    if (declared_too_large(rc->dmn->srv, rc->conn))
        return http_refuse_too_large(rc, url, method);
    status = refuse_unidentified(rc, &flags, &issue, &why);
    if (!status)
        return MHD_YES;
    http_conns_received(rc->cc); /* nothing more is read: the connection closes */
    return refuse(rc, flags, status, issue, why);
}

enum MHD_Result http_dispatch(struct req_ctx *rc, const char *url, const char *method)
{
    struct http_server *srv = rc->dmn->srv;
    struct http_request *req = &rc->req;
    struct http_response resp;
    struct param_walk walk = {req, false};
    const struct http_route *route;
    char allow[HTTP_MAX_ALLOW];
    const char *issue = NULL, *why = NULL;
    bool path_known;
    int status;

    if (!req->method)
        request_init(rc, url, method);
    rc->dispatched = true;
    req->body = rc->body.data ? rc->body.data : "";
    req->body_len = rc->body.len;
    MHD_get_connection_values(rc->conn, MHD_GET_ARGUMENT_KIND, collect_param, &walk);
    if (walk.overflow)
        return refuse(rc, 0, 400, "too-costly", "more than 64 query parameters");
    rc->query = join_params(req);
    rc->scratch = malloc(strlen(url) + 1);
    if (!rc->scratch || !rc->query)
        return MHD_NO;
    req->query = rc->query;
    route = find_route(srv, req, rc->scratch, strlen(url) + 1, &path_known, allow);
    if (!route)
        return path_known ? refuse(rc, 0, 405, "not-supported", "this method is not supported here")
                          : refuse(rc, 0, 404, "not-found", "no such endpoint");
    req->route = route->name;
    status = admit(route, req, &issue, &why);
    if (status)
        return refuse(rc, route->flags, status, issue, why);
    memset(&resp, 0, sizeof resp);
    if (route->flags & HTTP_BLOCKING)
        http_run_blocking(rc, route, &resp);
    else
        route->handler(req, &resp, srv->hc.handler_ctx);
    return http_complete(rc, &resp);
}
