/* outcome.c -- OperationOutcome building and counting, FHIRPath expressions built during a
 * walk, limits and module start-up.
 *
 * Promises: an issue is appended whole or not at all (-1 when memory runs out); counting
 * never fails.
 */
#include "fhir/fhir_int.h"

#include <libxml/parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fhir_init(void)
{
    xmlInitParser(); /* idempotent; makes libxml2's globals ready for threads */
}

void fhir_limits_default(struct fhir_limits *lim)
{
    const struct fhir_limits def = FHIR_LIMITS_DEFAULT;

    *lim = def;
}

/* ---------------------------------------------------------------- OperationOutcome */

static const char *const severity_names[] = {"fatal", "error", "warning", "information"};

const char *fhir_severity_name(enum fhir_severity sev)
{
    return (unsigned)sev < 4 ? severity_names[sev] : "error";
}

json_t *fhir_outcome_create(void)
{
    return json_pack("{s:s}", "resourceType", "OperationOutcome");
}

/* A new JSON string of s with each byte that does not start a valid UTF-8 sequence replaced
 * by '?' (diagnostics quote cut user text; a cut may split a character). */
static json_t *utf8_string(const char *s)
{
    size_t n = strlen(s), i = 0;
    char *copy;
    json_t *j;

    if (gw_utf8_valid(s, n))
        return json_string(s);
    copy = gw_strndup(s, n);
    if (!copy)
        return NULL;
    while (i < n) {
        unsigned char c = (unsigned char)copy[i];
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

        if (len <= n - i && gw_utf8_valid(copy + i, len)) {
            i += len;
            continue;
        }
        copy[i++] = '?';
    }
    j = json_string(copy);
    free(copy);
    return j;
}

int fhir_outcome_add(json_t *outcome, enum fhir_severity sev, const char *code,
                     const char *diagnostics, const char *expression)
{
    json_t *issues = json_object_get(outcome, "issue"); /* borrowed */
    json_t *issue;

    if (!json_is_object(outcome))
        return -1;
    if (!issues) {
        if (json_object_set_new(outcome, "issue", json_array()))
            return -1;
        issues = json_object_get(outcome, "issue");
    }
    issue = json_pack("{s:s, s:s}", "severity", fhir_severity_name(sev), "code", code);
    if (!issue)
        return -1;
    if ((diagnostics && json_object_set_new(issue, "diagnostics", utf8_string(diagnostics))) ||
        (expression &&
         json_object_set_new(issue, "expression", json_pack("[o]", utf8_string(expression))))) {
        json_decref(issue);
        return -1;
    }
    return json_array_append_new(issues, issue); /* steals issue, even on failure */
}

int fhir_outcome_addf(json_t *outcome, enum fhir_severity sev, const char *code,
                      const char *expression, const char *fmt, ...)
{
    struct gw_buf b;
    va_list ap;
    int rc;

    gw_buf_init(&b, 64 * 1024);
    va_start(ap, fmt);
    gw_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (b.err == GW_E_NOMEM) {
        gw_buf_cleanup(&b);
        return -1;
    }
    if (b.err) /* only a diagnostics longer than 64 KiB: keep what fits */
        b.err = GW_OK;
    rc = fhir_outcome_add(outcome, sev, code, b.data ? b.data : "", expression);
    gw_buf_cleanup(&b);
    return rc;
}

static size_t count_severity(const json_t *outcome, const char *a, const char *b)
{
    json_t *issues = json_object_get(outcome, "issue");
    size_t i, n = 0;

    for (i = 0; i < json_array_size(issues); i++) {
        const char *sev = json_string_value(json_object_get(json_array_get(issues, i), "severity"));

        if (sev && (strcmp(sev, a) == 0 || (b && strcmp(sev, b) == 0)))
            n++;
    }
    return n;
}

size_t fhir_outcome_errors(const json_t *outcome)
{
    return count_severity(outcome, "error", "fatal");
}

size_t fhir_outcome_warnings(const json_t *outcome)
{
    return count_severity(outcome, "warning", NULL);
}

/* ---------------------------------------------------------------- paths */

void fhir_path_init(struct fhir_path *p, const char *root)
{
    gw_buf_init(&p->buf, FHIR_PATH_MAX);
    gw_buf_puts(&p->buf, root);
}

void fhir_path_cleanup(struct fhir_path *p)
{
    gw_buf_cleanup(&p->buf);
}

/* "[index]" (index >= 0), without printf: every array item of every resource gets one. */
static void put_index(struct gw_buf *b, long index)
{
    char text[24];
    size_t at = sizeof text;

    text[--at] = ']';
    do {
        text[--at] = (char)('0' + index % 10);
        index /= 10;
    } while (index > 0);
    text[--at] = '[';
    gw_buf_append(b, text + at, sizeof text - at);
}

size_t fhir_path_push(struct fhir_path *p, const char *name, size_t len, long index)
{
    size_t mark = p->buf.len;

    if (name) {
        if (p->buf.len > 0)
            gw_buf_putc(&p->buf, '.');
        if (len > FHIR_PATH_NAME_MAX) { /* a hostile key: its start names it well enough */
            gw_buf_append(&p->buf, name, FHIR_PATH_NAME_MAX);
            gw_buf_puts(&p->buf, "...");
        } else {
            gw_buf_append(&p->buf, name, len);
        }
    }
    if (index >= 0)
        put_index(&p->buf, index);
    return mark;
}

size_t fhir_path_push_elem(struct fhir_path *p, const char *name, const struct fhir_elem_def *e,
                           const struct fhir_type_ref *t, long index)
{
    size_t mark;

    if (!e || !t || !(e->flags & FHIR_EL_CHOICE))
        return fhir_path_push(p, name, strlen(name), index);
    mark = fhir_path_push(p, fhir_elem_name(e), strlen(fhir_elem_name(e)), -1);
    gw_buf_puts(&p->buf, ".ofType(");
    gw_buf_puts(&p->buf, fhir_struct_name(fhir_type_struct(t)));
    gw_buf_putc(&p->buf, ')');
    if (index >= 0)
        put_index(&p->buf, index);
    return mark;
}

void fhir_path_pop(struct fhir_path *p, size_t mark)
{
    /* Only a nesting far past any limit fills FHIR_PATH_MAX; expressions then read
     * "(path too long)" until the walk pops back. */
    if (mark <= p->buf.len) {
        p->buf.len = mark;
        if (p->buf.data)
            p->buf.data[mark] = '\0';
    }
    if (p->buf.err == GW_E_LIMIT)
        p->buf.err = GW_OK;
}

const char *fhir_path_text(const struct fhir_path *p)
{
    if (p->buf.err)
        return "(path too long)";
    return p->buf.data ? p->buf.data : "";
}
