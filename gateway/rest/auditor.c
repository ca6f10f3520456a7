/* auditor.c -- what the auditor's console asks of the trail, beyond the
 * AuditEvent search itself:
 *
 *   GET  /fhir/AuditEvent?patient.identifier=X | patient.name=X
 *        the chained patient search: the Patients of every organisation
 *        that match (at most AUDITOR_MAX_PATIENTS) become patient=...;
 *   POST /fhir/AuditEvent/$verify    the chain check `audit verify` runs;
 *   GET  /fhir/AuditEvent/$activity  hourly counts by class and the
 *        clients of a period, from the roll-up (never the events);
 *   GET  /fhir/AuditEvent/$export    the matches of a search as NDJSON,
 *        streamed from one cursor: constant memory, however many.
 *
 * Each is audited like every other interaction (BALP: subtype operation),
 * and answered once its AuditEvent is durable (the request waits
 * suspended). $verify and $activity read much of the store: their routes
 * are HTTP_BLOCKING. An export's rows are read on the blocking threads too,
 * a chunk at a time, as the client takes them (http/stream.c).
 */
#include "rest/rest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define AUDITOR_MAX_PATIENTS   100
#define AUDITOR_MAX_CLIENTS    200
#define AUDITOR_DEFAULT_PERIOD (7 * 24 * STORE_HOUR_MS)
#define AUDITOR_MAX_JOINED     (AUDITOR_MAX_PATIENTS * 80)

/* ------------------------------------------------------------ chained patient search */

/* The Patient search parameter a chain names, or NULL when name is none. */
static const char *patient_chain(const char *name)
{
    if (strcmp(name, "patient.identifier") == 0)
        return "identifier";
    if (strcmp(name, "patient.name") == 0)
        return "name";
    return NULL;
}

/* "Patient/a,Patient/b" of the Patients (any organisation) matching
 * param=value: a new string, or NULL with resp set (400, 503). */
static char *matching_patients(struct rest_ctx *ctx, const struct http_request *req,
                               const char *param, const char *value, struct http_response *resp)
{
    struct http_request sub = *req;
    struct rest_search s;
    struct store_page page;
    struct gw_error err;
    struct gw_buf joined;
    json_t *outcome = fhir_outcome_create();
    char *out = NULL;
    size_t i, len;
    enum gw_code rc;

    memset(&page, 0, sizeof page);
    sub.params[0] = (struct http_param){param, value};
    sub.n_params = 1;
    rc = outcome ? rest_search_parse("Patient", ctx->base, &sub, &s, outcome, &err) : GW_E_NOMEM;
    if (!rc) {
        s.q.count = AUDITOR_MAX_PATIENTS;
        s.q.owner = NULL; /* the trail is about every organisation's patients */
        s.q.sites = NULL;
        rc = store_search(ctx->store, &s.q, &page, &err);
    }
    if (rc == GW_E_INPUT)
        http_respond_resource(resp, 400, outcome);
    else if (rc)
        http_respond_gw_error(resp, &err);
    else if (page.has_more)
        http_respond_error(resp, 400, "too-costly",
                           "more than 100 patients match: give more of the name, or the INS-NIR",
                           NULL);
    gw_buf_init(&joined, AUDITOR_MAX_JOINED);
    for (i = 0; !rc && !page.has_more && i < page.n_items; i++)
        gw_buf_printf(&joined, "%sPatient/%s", i ? "," : "", page.items[i].id);
    if (!rc && !page.has_more) {
        gw_buf_puts(&joined, "");
        out = gw_buf_steal(&joined, &len);
        if (!out)
            http_respond_error(resp, 503, "transient", "no memory for the search", NULL);
    }
    gw_buf_cleanup(&joined);
    store_page_cleanup(&page);
    if (outcome)
        rest_search_cleanup(&s);
    json_decref(outcome);
    return out;
}

/* Rewrites the chained patient parameters of req in place; their values
 * are kept in owned. False with resp set when one cannot be resolved. */
static bool resolve_patient_chains(struct rest_ctx *ctx, struct http_request *req,
                                   struct rest_strings *owned, struct http_response *resp)
{
    size_t i;

    for (i = 0; i < req->n_params; i++) {
        const char *param = patient_chain(req->params[i].name);
        char *refs;

        if (!param)
            continue;
        refs = matching_patients(ctx, req, param, req->params[i].value, resp);
        if (!refs)
            return false;
        if (!rest_strings_keep(owned, refs)) {
            http_respond_error(resp, 503, "transient", "no memory for the search", NULL);
            return false;
        }
        /* no patient matches: an id no event has, so nothing matches */
        req->params[i] = *refs ? (struct http_param){"patient", refs}
                               : (struct http_param){"_id", "-no-such-patient-"};
    }
    return true;
}

/* Answers a refused auditor request once it is audited; resp holds the refusal. */
static void audit_refusal(struct rest_ctx *ctx, struct http_request *req,
                          struct http_response *resp, const char *operation)
{
    struct audit_event ev;
    char path[300];

    snprintf(path, sizeof path, "%s %s", req->method, req->path);
    rest_audit_init(&ev, req, "operation", 'E');
    ev.path = path;
    ev.entities[ev.n_entities++] = (struct audit_entity){
        .role = "24", .type = "2", .query = req->query, .description = operation};
    rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "refused");
}

void rest_handle_audit_search(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct rest_strings owned = {0};

    req->captures[0] = "AuditEvent";
    if (resolve_patient_chains(ctx, req, &owned, resp))
        rest_handle_search(req, resp, vctx);
    else
        audit_refusal(ctx, req, resp, "search-type");
    rest_strings_free(&owned);
}

/* ------------------------------------------------------------ $verify */

static json_t *verify_result(const struct audit_verify_result *res)
{
    char ref[sizeof res->broken_id + 16];
    json_t *p = json_pack("{s:s, s:[{s:s, s:b}, {s:s, s:I}]}", "resourceType", "Parameters",
                          "parameter", "name", "intact", "valueBoolean", res->intact, "name",
                          "checked", "valueInteger", (json_int_t)res->checked);
    json_t *list = json_object_get(p, "parameter");

    if (!p || res->intact)
        return p;
    snprintf(ref, sizeof ref, "AuditEvent/%s", res->broken_id);
    if (json_array_append_new(list, json_pack("{s:s, s:{s:s}}", "name", "brokenEvent",
                                              "valueReference", "reference", ref)) ||
        json_array_append_new(list, json_pack("{s:s, s:I}", "name", "brokenSequence",
                                              "valueInteger", (json_int_t)res->broken_seq)) ||
        json_array_append_new(
            list, json_pack("{s:s, s:s}", "name", "reason", "valueString", res->reason))) {
        json_decref(p);
        return NULL;
    }
    return p;
}

void rest_handle_audit_verify(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct audit_verify_result res;
    struct audit_event ev;
    struct gw_error err;
    char path[300], desc[GW_ERROR_MSG_MAX + 200];
    json_t *answer = NULL;
    enum gw_code rc;

    snprintf(path, sizeof path, "%s %s", req->method, req->path);
    rest_audit_init(&ev, req, "operation", 'E');
    ev.path = path;
    ev.entities[ev.n_entities++] =
        (struct audit_entity){.role = "24", .type = "2", .description = "$verify"};
    rc = audit_verify(ctx->store, ctx->cfg->audit_hmac_key, &res, &err);
    if (rc) {
        http_respond_gw_error(resp, &err);
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, err.msg);
        return;
    }
    answer = verify_result(&res);
    if (!answer) {
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "no memory");
        return;
    }
    /* as `audit verify` does: a broken chain is recorded as a finding */
    ev.outcome = res.intact ? AUDIT_SUCCESS : AUDIT_MINOR_FAILURE;
    snprintf(desc, sizeof desc, "the chain is broken at event %s (sequence %lld): %s",
             res.broken_id, (long long)res.broken_seq, res.reason);
    ev.outcome_desc = res.intact ? NULL : desc;
    ev.http_status = 200;
    http_respond_resource(resp, 200, answer);
    rest_answer_after_event(ctx, req, resp, &ev);
    json_decref(answer);
}

/* ------------------------------------------------------------ $activity */

/* The period of start and end (FHIR dates or dateTimes; end defaults to now,
 * start to a week before end). False with resp set when unreadable. */
static bool activity_period(const struct http_request *req, int64_t *since, int64_t *until,
                            struct http_response *resp)
{
    const char *start = http_request_param(req, "start"), *end = http_request_param(req, "end");
    int64_t lo, hi;

    *until = gw_now_ms();
    if (end && !gw_time_parse_fhir(end, &lo, until)) {
        http_respond_error(resp, 400, "value", "end is not a FHIR date or dateTime", "end");
        return false;
    }
    *since = *until - AUDITOR_DEFAULT_PERIOD;
    if (start && !gw_time_parse_fhir(start, since, &hi)) {
        http_respond_error(resp, 400, "value", "start is not a FHIR date or dateTime", "start");
        return false;
    }
    if (*since >= *until) {
        http_respond_error(resp, 400, "value", "start must come before end", "start");
        return false;
    }
    return true;
}

static int add_instant(json_t *parts, const char *name, int64_t ms)
{
    char at[GW_INSTANT_LEN];

    gw_time_instant(ms, at);
    return json_array_append_new(parts, json_pack("{s:s, s:s}", "name", name, "valueInstant", at));
}

static int add_counts(json_t *parts, const long n[AUDIT_N_CLASSES])
{
    int k;

    for (k = 0; k < AUDIT_N_CLASSES; k++)
        if (n[k] &&
            json_array_append_new(parts, json_pack("{s:s, s:I}", "name", audit_class_names[k],
                                                   "valueInteger", (json_int_t)n[k])))
            return -1;
    return 0;
}

static json_t *hour_part(const struct store_activity_hour *h)
{
    json_t *p = json_pack("{s:s, s:[]}", "name", "hour", "part");

    if (p && (add_instant(json_object_get(p, "part"), "start", h->hour_ms) ||
              add_counts(json_object_get(p, "part"), h->n))) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *client_part(const struct store_activity_client *c)
{
    json_t *p = json_pack("{s:s, s:[]}", "name", "client", "part");
    json_t *parts = json_object_get(p, "part");
    long total = 0;
    int k;

    for (k = 0; k < AUDIT_N_CLASSES; k++)
        total += c->n[k];
    if (!p ||
        json_array_append_new(parts,
                              json_pack("{s:s, s:s}", "name", *c->client ? "name" : "address",
                                        "valueString", *c->client ? c->client : c->address)) ||
        json_array_append_new(parts, json_pack("{s:s, s:I}", "name", "requests", "valueInteger",
                                               (json_int_t)total)) ||
        add_counts(parts, c->n) || add_instant(parts, "lastSeen", c->last_ms)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *activity_answer(const struct store_activity *a, int64_t since, int64_t until)
{
    json_t *p = json_pack("{s:s, s:[]}", "resourceType", "Parameters", "parameter");
    json_t *list = json_object_get(p, "parameter");
    size_t i;

    if (!p || add_instant(list, "start", since) || add_instant(list, "end", until) ||
        json_array_append_new(
            list, json_pack("{s:s, s:b}", "name", "moreClients", "valueBoolean", a->more_clients)))
        goto fail;
    for (i = 0; i < a->n_hours; i++)
        if (json_array_append_new(list, hour_part(&a->hours[i])))
            goto fail;
    for (i = 0; i < a->n_clients; i++)
        if (json_array_append_new(list, client_part(&a->clients[i])))
            goto fail;
    return p;
fail:
    json_decref(p);
    return NULL;
}

void rest_handle_audit_activity(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct store_activity a;
    struct audit_event ev;
    struct gw_error err;
    char path[300];
    json_t *answer = NULL;
    int64_t since, until;

    memset(&a, 0, sizeof a);
    snprintf(path, sizeof path, "%s %s", req->method, req->path);
    rest_audit_init(&ev, req, "operation", 'E');
    ev.path = path;
    ev.entities[ev.n_entities++] = (struct audit_entity){
        .role = "24", .type = "2", .query = req->query, .description = "$activity"};
    if (!activity_period(req, &since, &until, resp)) {
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "refused");
        return;
    }
    if (store_audit_activity(ctx->store, since, until, AUDITOR_MAX_CLIENTS, &a, &err) != GW_OK) {
        http_respond_gw_error(resp, &err);
        if (err.code == GW_E_LIMIT)
            resp->status = 400;
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, err.msg);
        return;
    }
    answer = activity_answer(&a, since, until);
    if (answer) {
        rest_answer_audited(ctx, req, &ev, resp, 200, answer);
    } else {
        http_respond_error(resp, 503, "transient", "no memory for the answer", NULL);
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "no memory");
    }
    json_decref(answer);
    store_activity_cleanup(&a);
}

/* ------------------------------------------------------------ $export */

/* One export in flight: the cursor and the rest of the row being sent. */
struct export_stream {
    struct rest_ctx *ctx;
    struct rest_search search; /* the query the cursor's statement binds */
    struct store_cursor *cursor;
    const char *row; /* borrowed from the cursor until its next step */
    size_t row_len, row_sent;
    bool newline_due;
    bool finished; /* the cursor said there is no more: never step it again */
    bool failed;
    long n_rows;
};

static size_t copy_pending(struct export_stream *x, char *buf, size_t max)
{
    size_t n = 0, chunk;

    if (x->row && x->row_sent < x->row_len) {
        chunk = x->row_len - x->row_sent;
        if (chunk > max)
            chunk = max;
        memcpy(buf, x->row + x->row_sent, chunk);
        x->row_sent += chunk;
        n = chunk;
    }
    if (x->newline_due && x->row_sent == x->row_len && n < max) {
        buf[n++] = '\n';
        x->newline_due = false;
    }
    return n;
}

static long export_read(void *vx, char *buf, size_t max)
{
    struct export_stream *x = vx;
    struct gw_error err;
    size_t n = 0;
    enum gw_code rc;

    while (n < max) {
        n += copy_pending(x, buf + n, max - n);
        if (n == max || x->newline_due)
            break;
        if (x->finished)
            return n ? (long)n : HTTP_STREAM_END;
        rc = x->failed ? GW_E_STORE : store_cursor_next(x->cursor, &x->row, &x->row_len, &err);
        if (rc == GW_E_NOTFOUND) {
            x->finished = true;
            return n ? (long)n : HTTP_STREAM_END;
        }
        if (rc) {
            if (!x->failed)
                gw_log(GW_LOG_ERROR, "export-failed", "%s", err.msg);
            x->failed = true;
            return n ? (long)n : HTTP_STREAM_FAILED; /* the cut shows: no final newline */
        }
        x->row_sent = 0;
        x->newline_due = true;
        x->n_rows++;
    }
    return (long)n;
}

static void export_done(void *vx)
{
    struct export_stream *x = vx;

    if (!x)
        return;
    gw_log(GW_LOG_INFO, "export-finished", "%ld AuditEvents sent", x->n_rows);
    if (x->cursor)
        atomic_fetch_sub(&x->ctx->exports, 1);
    store_cursor_close(x->cursor);
    rest_search_cleanup(&x->search);
    free(x);
}

/* A cursor holds a reader connection for the whole export: exports may take
 * half of them at most, so that reads (on the epoll threads) always find one. */
static enum gw_code open_cursor(struct rest_ctx *ctx, struct export_stream *x, struct gw_error *err)
{
    long most = ctx->cfg->read_connections / 2;
    enum gw_code rc;

    if (atomic_fetch_add(&ctx->exports, 1) >= (most > 1 ? most : 1)) {
        atomic_fetch_sub(&ctx->exports, 1);
        return gw_fail(err, GW_E_STORE,
                       "as many exports run as read_connections allows: "
                       "try again when one has finished");
    }
    rc = store_search_cursor(ctx->store, &x->search.q, &x->cursor, err);
    if (rc)
        atomic_fetch_sub(&ctx->exports, 1);
    return rc;
}

/* Opens the cursor of the search req asks for; resp set on failure. */
static struct export_stream *export_open(struct rest_ctx *ctx, struct http_request *req,
                                         struct http_response *resp)
{
    struct gw_error err;
    json_t *outcome = fhir_outcome_create();
    struct export_stream *x = calloc(1, sizeof *x);
    enum gw_code rc = outcome && x ? GW_OK : GW_E_NOMEM;

    if (!rc) {
        x->ctx = ctx;
        rc = rest_search_parse("AuditEvent", ctx->base, req, &x->search, outcome, &err);
    }
    if (!rc) {
        rest_scope_query(req->who, &x->search.q);
        rc = open_cursor(ctx, x, &err);
    }
    if (rc == GW_E_INPUT)
        http_respond_resource(resp, 400, outcome);
    else if (rc == GW_E_NOMEM && !outcome)
        http_respond_error(resp, 503, "transient", "no memory for the export", NULL);
    else if (rc)
        http_respond_gw_error(resp, &err);
    json_decref(outcome);
    if (rc && x) {
        rest_search_cleanup(&x->search);
        free(x);
    }
    return rc ? NULL : x;
}

void rest_handle_audit_export(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    struct rest_strings owned = {0};
    struct audit_event ev;
    struct export_stream *x = NULL;
    struct http_stream stream;
    char path[300], disposition[120], at[GW_INSTANT_LEN];

    snprintf(path, sizeof path, "%s %s", req->method, req->path);
    rest_audit_init(&ev, req, "operation", 'E');
    ev.path = path;
    ev.entities[ev.n_entities++] = (struct audit_entity){
        .role = "24", .type = "2", .query = req->query, .description = "$export"};
    if (resolve_patient_chains(ctx, req, &owned, resp))
        x = export_open(ctx, req, resp);
    rest_strings_free(&owned);
    if (!x) {
        rest_answer_after_audit(ctx, req, resp, &ev, resp->status, "refused");
        return;
    }
    stream = (struct http_stream){export_read, export_done, x};
    http_respond_stream(resp, 200, "application/fhir+ndjson", &stream);
    gw_time_instant(gw_now_ms(), at);
    at[19] = '\0'; /* 2026-11-25T14:36:33 */
    snprintf(disposition, sizeof disposition, "attachment; filename=\"auditevents-%s.ndjson\"", at);
    for (char *c = disposition; *c; c++)
        if (*c == ':')
            *c = '-';
    http_header_add(resp, "Content-Disposition", disposition);
    /* the export is recorded before its first byte leaves (unaudited: a 503,
     * and the stream's done() closes the cursor) */
    rest_answer_after_audit(ctx, req, resp, &ev, 200, NULL);
}

/* ------------------------------------------------------------ CapabilityStatement */

int rest_auditor_capability(json_t *entry)
{
    static const char *const ops[][2] = {
        {"verify", "the hash chain checked as `fhir-gateway audit verify` does: Parameters "
                   "intact, checked, and for a broken chain brokenEvent, brokenSequence, reason"},
        {"activity", "start, end (default: the last 7 days): Parameters with one hour part per "
                     "hour with events (counts of success, refused, rejected, failed) and one "
                     "client part per client (requests, counts, lastSeen)"},
        {"export", "the AuditEvents a search with the same parameters matches, as NDJSON "
                   "(application/fhir+ndjson), streamed"},
    };
    json_t *list = json_array(), *param;
    char def[80];
    size_t i;

    if (!list || json_object_set_new(entry, "operation", list))
        return -1;
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        snprintf(def, sizeof def, "urn:fhir-gateway:OperationDefinition:AuditEvent-%s", ops[i][0]);
        if (json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name", ops[i][0],
                                                  "definition", def, "documentation", ops[i][1])))
            return -1;
    }
    json_array_foreach (json_object_get(entry, "searchParam"), i, param) {
        const char *name = json_string_value(json_object_get(param, "name"));

        if (name && strcmp(name, "patient") == 0 &&
            json_object_set_new(param, "documentation",
                                json_string("also chained: patient.identifier (e.g. the INS-NIR) "
                                            "and patient.name, over every organisation's "
                                            "patients (at most 100)")))
            return -1;
    }
    return 0;
}
