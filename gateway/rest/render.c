/* render.c -- FHIR resources to bytes in the negotiated format. */
#include "rest/rest_int.h"

#include <stdlib.h>
#include <string.h>

/* JSON with resourceType first (FHIR R4 §2.6.2), other members in order. */
static enum gw_code render_json(json_t *resource, struct gw_buf *out, struct gw_error *err)
{
    json_t *rt = json_object_get(resource, "resourceType");
    json_t *ordered = json_object();
    const char *key;
    json_t *v;
    char *text;

    if (!ordered || (rt && json_object_set(ordered, "resourceType", rt)))
        goto nomem;
    json_object_foreach(resource, key, v)
    {
        if (strcmp(key, "resourceType") != 0 && json_object_set(ordered, key, v))
            goto nomem;
    }
    text = json_dumps(ordered, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ordered);
    if (!text)
        return gw_fail(err, GW_E_NOMEM, "no memory to render");
    gw_buf_puts(out, text);
    free(text);
    return gw_buf_finish(out, "the answer", err);
nomem:
    json_decref(ordered);
    return gw_fail(err, GW_E_NOMEM, "no memory to render");
}

enum gw_code rest_render(json_t *resource, enum http_format fmt, struct gw_buf *out,
                         struct gw_error *err)
{
    (void)fmt;
    return render_json(resource, out, err);
}
