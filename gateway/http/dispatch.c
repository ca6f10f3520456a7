/* dispatch.c -- one request through the pipeline: route, identify, check
 * role, negotiate, run the handler, render, answer, count, log.
 *
 * Refusals made here (401, 403, 404 for unknown routes, 405, 406, 413, 415)
 * go to the auditing hook before the answer leaves, as handlers' do.
 */
#include "http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_ALLOW    128
#define HTTP_MAX_RESPONSE (256 * 1024 * 1024)
#define HTTP_MAX_QUERY    (64 * 1024)
#define HTTP_STREAM_BLOCK (32 * 1024)

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

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_stream *st = cls;
    long n;

    (void)pos;
    n = st->read(st->ctx, buf, max);
    if (n == HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : (ssize_t)n;
}

static void stream_done(void *cls)
{
    struct http_stream *st = cls;

    st->done(st->ctx);
    free(st);
}

/* A response whose body resp->stream produces while it is sent; on success
 * the stream belongs to the response. */
static struct MHD_Response *stream_response(struct http_response *resp)
{
    struct http_stream *st = malloc(sizeof *st);
    struct MHD_Response *r;

    if (!st)
        return NULL;
    *st = resp->stream;
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_read, st,
                                          stream_done);
    if (!r)
        free(st);
    return r;
}

/* Renders, queues the answer, counts and logs; consumes resp. */
static enum MHD_Result answer(struct http_server *srv, struct MHD_Connection *conn,
                              struct req_ctx *rc, struct http_request *req,
                              struct http_response *resp)
{
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
            ? stream_response(resp)
            : MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        http_response_cleanup(resp);
        return MHD_NO;
    }
    resp->body = NULL; /* now owned by r */
    memset(&resp->stream, 0, sizeof resp->stream);
    add_headers(r, req, resp);
    ok = MHD_queue_response(conn, (unsigned int)resp->status, r);
    MHD_destroy_response(r);
    rc->answered = true;
    count_and_log(req, resp->status, rc->started_mono);
    http_response_cleanup(resp);
    return ok;
}

static void request_init(struct http_request *req, struct conn_ctx *cc, struct req_ctx *rc,
                         struct MHD_Connection *conn, const char *url, const char *method)
{
    static const struct auth_identity nobody;

    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = url;
    req->route = "unknown";
    req->query = "";
    req->body = rc->body.data ? rc->body.data : "";
    req->body_len = rc->body.len;
    req->who = cc ? &cc->who : &nobody;
    req->peer = cc ? cc->peer : "unknown";
    req->request_id = rc->request_id;
    req->started_ms = rc->started_ms;
    req->conn = conn;
}

/* The refusal of an HTTP_PAGE route: a page a person can read. */
static enum MHD_Result refuse_page(struct http_server *srv, struct MHD_Connection *conn,
                                   struct req_ctx *rc, struct http_request *req, int status,
                                   const char *why)
{
    struct http_response resp;

    memset(&resp, 0, sizeof resp);
    if (srv->hc.on_refusal)
        srv->hc.on_refusal(srv->hc.refusal_ctx, req, status, why);
    http_respond_page(&resp, status,
                      status == 401   ? "Certificate required"
                      : status == 403 ? "Forbidden"
                                      : "Refused",
                      why);
    return answer(srv, conn, rc, req, &resp);
}

static enum MHD_Result refuse(struct http_server *srv, struct MHD_Connection *conn,
                              struct req_ctx *rc, struct http_request *req, int status,
                              const char *issue, const char *why)
{
    struct http_response resp;

    memset(&resp, 0, sizeof resp);
    if (srv->hc.on_refusal)
        srv->hc.on_refusal(srv->hc.refusal_ctx, req, status, why);
    http_respond_error(&resp, status, issue, why, NULL);
    if (status == 401)
        http_header_add(&resp, "WWW-Authenticate", "Mutual-TLS");
    return answer(srv, conn, rc, req, &resp);
}

enum MHD_Result http_refuse_early(struct http_server *srv, struct MHD_Connection *conn,
                                  struct req_ctx *rc, const char *url, const char *method,
                                  int status, const char *issue, const char *why)
{
    struct http_request req;

    request_init(&req, http_conn_identify(srv, conn), rc, conn, url, method);
    req.want_format = HTTP_FORMAT_JSON;
    return refuse(srv, conn, rc, &req, status, issue, why);
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

enum MHD_Result http_dispatch(struct http_server *srv, struct MHD_Connection *conn,
                              struct req_ctx *rc, const char *url, const char *method)
{
    struct http_request req;
    struct http_response resp;
    struct param_walk walk = {&req, false};
    const struct http_route *route;
    char allow[HTTP_MAX_ALLOW], *scratch;
    const char *issue = NULL, *why = NULL;
    char *query;
    bool path_known;
    int status;
    enum MHD_Result ok;

    request_init(&req, http_conn_identify(srv, conn), rc, conn, url, method);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_param, &walk);
    if (walk.overflow)
        return refuse(srv, conn, rc, &req, 400, "too-costly", "more than 64 query parameters");
    query = join_params(&req);
    scratch = malloc(strlen(url) + 1);
    if (!scratch || !query) {
        free(scratch);
        free(query);
        return MHD_NO;
    }
    req.query = query;
    route = find_route(srv, &req, scratch, strlen(url) + 1, &path_known, allow);
    if (!route) {
        memset(&resp, 0, sizeof resp);
        ok = path_known ? refuse(srv, conn, rc, &req, 405, "not-supported",
                                 "this method is not supported here")
                        : refuse(srv, conn, rc, &req, 404, "not-found", "no such endpoint");
        free(scratch);
        free(query);
        return ok;
    }
    req.route = route->name;
    status = admit(route, &req, &issue, &why);
    if (status && (route->flags & HTTP_PAGE)) {
        ok = refuse_page(srv, conn, rc, &req, status, why);
    } else if (status) {
        ok = refuse(srv, conn, rc, &req, status, issue, why);
    } else {
        memset(&resp, 0, sizeof resp);
        route->handler(&req, &resp, srv->hc.handler_ctx);
        ok = answer(srv, conn, rc, &req, &resp);
    }
    free(scratch);
    free(query);
    return ok;
}
