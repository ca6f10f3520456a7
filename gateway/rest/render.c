/* render.c -- FHIR resources to bytes in the negotiated format, through the
 * model (resourceType first, element order, decimals as written, XML). */
#include "rest/rest_int.h"

#include "fhir/fhir.h"

enum gw_code rest_render(json_t *resource, enum http_format fmt, struct gw_buf *out,
                         struct gw_error *err)
{
    return fhir_write(fmt == HTTP_FORMAT_XML ? FHIR_FORMAT_XML : FHIR_FORMAT_JSON, resource, 0, out,
                      err);
}
