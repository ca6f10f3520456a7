/* system.c -- metadata, health, readiness and metrics. */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rest_metadata(struct http_request *req, struct http_response *resp, void *vctx)
{
    json_t *cs = rest_capability_statement(vctx);

    (void)req;
    if (!cs) {
        http_respond_error(resp, 503, "transient", "no memory for the CapabilityStatement", NULL);
        return;
    }
    http_respond_resource(resp, 200, cs);
    json_decref(cs);
}

void rest_healthz(struct http_request *req, struct http_response *resp, void *vctx)
{
    (void)req;
    (void)vctx;
    http_respond_bytes(resp, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

/* Mappings: loaded, and whether the last reload failed. A failed reload
 * keeps the previous maps in force, so the instance stays ready (taking every
 * instance out of service for a bad file would lose referrals); /readyz says
 * "degraded" so the operator knows. */
static bool mappings_ready(struct rest_ctx *ctx, struct gw_buf *b)
{
    struct gw_error err;
    struct map_set *set = ctx->maps ? map_holder_get(ctx->maps) : NULL;
    bool ok = set != NULL;

    if (!set)
        gw_buf_puts(b, "mappings: none loaded\n");
    else
        gw_buf_printf(b, "mappings: ok (%zu maps from %s)\n", map_set_count(set),
                      map_set_label(set));
    if (ctx->maps && map_holder_error(ctx->maps, &err)) {
        gw_buf_printf(b,
                      "mappings: degraded: the last reload failed, the previous maps stay "
                      "in force: %s\n",
                      err.msg);
    }
    map_set_unref(set);
    return ok;
}

void rest_readyz(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct gw_error err;
    struct gw_buf b;
    bool ready = true;
    size_t len;
    char *text;

    (void)req;
    gw_buf_init(&b, 64 * 1024);
    if (store_ping(ctx->store, &err) != GW_OK) {
        ready = false;
        gw_buf_printf(&b, "store: %s\n", err.msg);
    } else {
        gw_buf_printf(&b, "store: ok (schema %d)\n", store_schema_version(ctx->store));
    }
    ready = mappings_ready(ctx, &b) && ready;
    text = gw_buf_steal(&b, &len);
    gw_buf_cleanup(&b);
    if (!text) {
        http_respond_bytes(resp, 503, "text/plain; charset=utf-8", "no memory\n", 10);
        return;
    }
    http_respond_owned(resp, ready ? 200 : 503, "text/plain; charset=utf-8", text, len);
}

void rest_metrics(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct gw_buf b;
    size_t len;
    char *text;

    (void)req;
    (void)vctx;
    gw_buf_init(&b, 16 * 1024 * 1024);
    gw_metrics_render(&b);
    text = gw_buf_steal(&b, &len);
    gw_buf_cleanup(&b);
    if (!text) {
        http_respond_bytes(resp, 503, "text/plain; charset=utf-8", "metrics unavailable\n", 20);
        return;
    }
    http_respond_owned(resp, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
