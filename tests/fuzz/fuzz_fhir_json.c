/* fuzz_fhir_json.c -- libFuzzer target: FHIR JSON bytes -> parse -> validate -> referral
 * profile -> JSON and XML writers -> XML parse. Nothing may crash, hang or leak, and a
 * resource that validates must write and read back as XML. */
#include "fhir/fhir.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *no_resolve(void *ctx, const char *reference)
{
    (void)ctx;
    (void)reference;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fhir_limits lim = FHIR_LIMITS_DEFAULT;
    json_t *oc = fhir_outcome_create(), *res = NULL, *back = NULL;
    struct gw_error err;
    struct gw_buf b;

    fhir_init();
    lim.max_body_bytes = 1 << 20;
    if (fhir_json_parse((const char *)data, size, &lim, &res, oc, &err) == GW_OK) {
        int errors = fhir_validate(res, oc);

        if (errors == 0)
            fhir_validate_referral(res, NULL, no_resolve, NULL, oc);
        gw_buf_init(&b, 8 << 20);
        fhir_json_write(res, FHIR_WRITE_PRETTY, &b, &err);
        gw_buf_reset(&b);
        if (fhir_xml_write(res, 0, &b, &err) == GW_OK &&
            fhir_xml_parse(b.data, b.len, NULL, &back, oc, &err) != GW_OK && errors == 0)
            abort(); /* a valid resource must read back from its own XML */
        gw_buf_cleanup(&b);
    }
    json_decref(back);
    json_decref(res);
    json_decref(oc);
    return 0;
}
