/* fuzz_fhir_xml.c -- libFuzzer target: FHIR XML bytes -> parse (DTDs refused, limits before
 * libxml2) -> validate -> JSON and XML writers. Nothing may crash, hang or leak. */
#include "fhir/fhir.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fhir_limits lim = FHIR_LIMITS_DEFAULT;
    json_t *oc = fhir_outcome_create(), *res = NULL;
    struct gw_error err;
    struct gw_buf b;

    fhir_init();
    lim.max_body_bytes = 1 << 20;
    if (fhir_xml_parse((const char *)data, size, &lim, &res, oc, &err) == GW_OK) {
        fhir_validate(res, oc);
        gw_buf_init(&b, 8 << 20);
        fhir_json_write(res, 0, &b, &err);
        gw_buf_reset(&b);
        fhir_xml_write(res, FHIR_WRITE_PRETTY, &b, &err);
        gw_buf_cleanup(&b);
    }
    json_decref(res);
    json_decref(oc);
    return 0;
}
