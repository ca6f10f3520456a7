/* response.c -- the helpers handlers answer with. */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *http_outcome_new(const char *severity, const char *code, const char *diagnostics,
                         const char *expression)
{
    json_t *issue = json_pack("{s:s, s:s, s:s}", "severity", severity, "code", code, "diagnostics",
                              diagnostics ? diagnostics : "");
    json_t *oo;

    if (!issue)
        return NULL;
    if (expression && json_object_set_new(issue, "expression", json_pack("[s]", expression))) {
        json_decref(issue);
        return NULL;
    }
    oo = json_pack("{s:s, s:[o]}", "resourceType", "OperationOutcome", "issue", issue);
    return oo;
}

/* Seconds a client is asked to wait before retrying a 503 (RFC 9110 §10.2.3): the
 * store's failures (a full disk, a lost database) and overload are transient, and
 * /readyz notices recovery within a second or two. */
#define HTTP_RETRY_AFTER_S "5"

static bool has_header(const struct http_response *resp, const char *name)
{
    size_t i;

    for (i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return true;
    return false;
}

/* Every 503 says when to come back. */
static void set_status(struct http_response *resp, int status)
{
    resp->status = status;
    if (status == 503 && !has_header(resp, "Retry-After"))
        http_header_add(resp, "Retry-After", HTTP_RETRY_AFTER_S);
}

static void replace_body(struct http_response *resp)
{
    if (resp->stream.done)
        resp->stream.done(resp->stream.ctx);
    memset(&resp->stream, 0, sizeof resp->stream);
    json_decref(resp->resource);
    resp->resource = NULL;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

void http_respond_resource(struct http_response *resp, int status, json_t *resource)
{
    replace_body(resp);
    set_status(resp, status);
    resp->resource = json_incref(resource);
}

void http_respond_error(struct http_response *resp, int status, const char *issue_code,
                        const char *diagnostics, const char *expression)
{
    json_t *oo = http_outcome_new("error", issue_code, diagnostics, expression);

    replace_body(resp);
    set_status(resp, status);
    resp->resource = oo; /* NULL on OOM: the server answers 500 */
}

void http_respond_gw_error(struct http_response *resp, const struct gw_error *err)
{
    http_respond_error(resp, gw_code_http_status(err->code), gw_code_issue_code(err->code),
                       err->msg, NULL);
}

void http_respond_owned(struct http_response *resp, int status, const char *content_type,
                        char *data, size_t len)
{
    replace_body(resp);
    set_status(resp, status);
    resp->content_type = content_type;
    resp->body = data;
    resp->body_len = len;
}

void http_respond_bytes(struct http_response *resp, int status, const char *content_type,
                        const char *data, size_t len)
{
    char *copy = gw_strndup(data, len);

    if (!copy) {
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
        return;
    }
    http_respond_owned(resp, status, content_type, copy, len);
}

void http_respond_stream(struct http_response *resp, int status, const char *content_type,
                         const struct http_stream *stream)
{
    replace_body(resp);
    resp->status = status;
    resp->content_type = content_type;
    resp->stream = *stream;
}

static void html_escaped(struct gw_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            gw_buf_puts(b, "&lt;");
            break;
        case '>':
            gw_buf_puts(b, "&gt;");
            break;
        case '&':
            gw_buf_puts(b, "&amp;");
            break;
        case '"':
            gw_buf_puts(b, "&quot;");
            break;
        default:
            gw_buf_putc(b, *s);
        }
    }
}

void http_respond_page(struct http_response *resp, int status, const char *title, const char *text)
{
    struct gw_buf b;
    size_t len;
    char *page;

    gw_buf_init(&b, 16 * 1024);
    gw_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    gw_buf_printf(&b, "%d ", status);
    html_escaped(&b, title);
    gw_buf_puts(&b, "</title></head>\n<body><main><h1>");
    gw_buf_printf(&b, "%d ", status);
    html_escaped(&b, title);
    gw_buf_puts(&b, "</h1><p>");
    html_escaped(&b, text);
    gw_buf_puts(&b, "</p></main></body></html>\n");
    page = b.err ? NULL : gw_buf_steal(&b, &len);
    gw_buf_cleanup(&b);
    if (!page) {
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
        return;
    }
    http_respond_owned(resp, status, "text/html; charset=utf-8", page, len);
    /* the page loads nothing, runs nothing and may not be framed */
    http_header_add(resp, "Content-Security-Policy",
                    "default-src 'none'; base-uri 'none'; form-action 'none'; "
                    "frame-ancestors 'none'");
}

void http_header_add(struct http_response *resp, const char *name, const char *value)
{
    struct http_header *h;

    if (resp->n_headers == HTTP_MAX_HEADERS) {
        gw_log(GW_LOG_ERROR, "http-header-dropped", "header %s dropped: too many", name);
        return;
    }
    h = &resp->headers[resp->n_headers];
    h->name = gw_strdup(name);
    h->value = gw_strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return;
    }
    resp->n_headers++;
}

void http_response_cleanup(struct http_response *resp)
{
    size_t i;

    replace_body(resp);
    for (i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    resp->n_headers = 0;
    free(resp->audit_note);
    resp->audit_note = NULL;
}
