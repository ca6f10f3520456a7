/* error.c -- the one error enum's table and gw_fail().
 *
 * Each gw_code maps to exactly one HTTP status, one OperationOutcome
 * issue.code (FHIR R4 IssueType) and one HL7 v2 acknowledgment code (table
 * 0008), so every module answers the same failure the same way.
 */
#include "util/util.h"

#include <stdio.h>
#include <string.h>

struct code_row {
    const char *name;
    int http_status;
    const char *issue_code; /* http://hl7.org/fhir/issue-type */
    const char *hl7_ack;    /* HL7 v2 table 0008 */
};

static const struct code_row code_table[] = {
    [GW_OK] = {"ok", 200, "informational", "AA"},
    [GW_E_INPUT] = {"input", 400, "invalid", "AE"},
    [GW_E_LIMIT] = {"limit", 413, "too-costly", "AR"},
    [GW_E_NOTFOUND] = {"not-found", 404, "not-found", "AE"},
    [GW_E_CONFLICT] = {"conflict", 409, "conflict", "AE"},
    [GW_E_DENIED] = {"denied", 403, "forbidden", "AR"},
    [GW_E_NOMEM] = {"no-memory", 503, "transient", "AR"},
    [GW_E_IO] = {"io", 503, "transient", "AR"},
    [GW_E_STORE] = {"store", 503, "transient", "AR"},
    [GW_E_INTERNAL] = {"internal", 500, "exception", "AR"},
};

static const struct code_row *row_of(enum gw_code code)
{
    if ((size_t)code >= sizeof code_table / sizeof code_table[0])
        return &code_table[GW_E_INTERNAL];
    return &code_table[code];
}

const char *gw_code_name(enum gw_code code)
{
    return row_of(code)->name;
}

int gw_code_http_status(enum gw_code code)
{
    return row_of(code)->http_status;
}

const char *gw_code_issue_code(enum gw_code code)
{
    return row_of(code)->issue_code;
}

const char *gw_code_hl7_ack(enum gw_code code)
{
    return row_of(code)->hl7_ack;
}

void gw_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(dst, cap, fmt, ap);

    if (n < 0)
        dst[0] = '\0';
    else if ((size_t)n >= cap && cap > 4)
        memcpy(dst + cap - 4, "...", 4);
}

void gw_format(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    gw_vformat(dst, cap, fmt, ap);
    va_end(ap);
}

enum gw_code gw_fail(struct gw_error *err, enum gw_code code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    gw_vformat(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void gw_error_clear(struct gw_error *err)
{
    if (!err)
        return;
    err->code = GW_OK;
    err->msg[0] = '\0';
}
