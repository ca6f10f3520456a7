/* record.c -- appending AuditEvents to the chain with their search index.
 *
 * Index entries follow the R4 AuditEvent search parameters the auditor API
 * serves: date, agent, entity, patient, type, subtype, action, outcome,
 * address. The canonical text (compact, sorted keys) is what gets hashed.
 */
#include "audit/audit_int.h"

#include <stdlib.h>
#include <string.h>

#define AUDIT_MAX_INDEX (3 * AUDIT_MAX_ENTITIES + 16)

struct index_list {
    struct store_index_entry e[AUDIT_MAX_INDEX];
    size_t n;
    char *lowered[AUDIT_MAX_ENTITIES + 1]; /* entity-name values in lower case */
    size_t n_lowered;
    bool nomem;
    char action[2]; /* the action code's text: entries point at it */
};

static void add(struct index_list *l, const char *param, const char *system, const char *value)
{
    if (!value || l->n == AUDIT_MAX_INDEX)
        return;
    l->e[l->n++] = (struct store_index_entry){param, system, value, 0, 0};
}

/* entity-name: the store matches strings as normalised text (lower case),
 * the names here (request ids, message control ids) are ASCII; :exact
 * compares them as written. */
static void add_name(struct index_list *l, const char *name)
{
    char *low;
    size_t i;

    if (!name || l->n_lowered == sizeof l->lowered / sizeof l->lowered[0])
        return;
    low = gw_strdup(name);
    if (!low) {
        l->nomem = true;
        return;
    }
    for (i = 0; low[i]; i++)
        if (low[i] >= 'A' && low[i] <= 'Z')
            low[i] = (char)(low[i] - 'A' + 'a');
    l->lowered[l->n_lowered++] = low;
    add(l, "entity-name", NULL, low);
    add(l, "entity-name:exact", NULL, name);
}

static void index_cleanup(struct index_list *l)
{
    while (l->n_lowered)
        free(l->lowered[--l->n_lowered]);
}

static void index_event(struct index_list *l, const struct audit_event *ev, int64_t recorded_ms)
{
    struct audit_code type = audit_type_code(ev), subtype = audit_subtype_code(ev);
    size_t i;

    l->n = 0;
    l->n_lowered = 0;
    l->nomem = false;
    l->action[0] = ev->action ? ev->action : 'E';
    l->action[1] = '\0';
    add(l, "type", type.system, type.code);
    add(l, "subtype", subtype.system, subtype.code);
    add(l, "action", NULL, l->action);
    add(l, "outcome", NULL, audit_outcome_code(ev->outcome));
    if (ev->who && ev->who->client_name)
        add(l, "agent", NULL, ev->who->client_name);
    if (ev->who && ev->who->org_id)
        add(l, "agent", NULL, ev->who->org_id);
    if (ev->who && ev->who->subject)
        add(l, "agent", NULL, ev->who->subject);
    if (ev->actor_name)
        add(l, "agent", NULL, ev->actor_name);
    add(l, "address", NULL, ev->peer);
    for (i = 0; i < ev->n_entities; i++)
        add(l, "entity", NULL, ev->entities[i].reference);
    /* entity-name: request ids and message control ids link the events of
     * one request or one message */
    for (i = 0; i < ev->n_entities; i++)
        add_name(l, ev->entities[i].name);
    add_name(l, ev->request_id);
    add(l, "patient", NULL, ev->patient);
    add(l, "entity", NULL, ev->patient);
    if (l->n < AUDIT_MAX_INDEX)
        l->e[l->n++] = (struct store_index_entry){"date", NULL, NULL, recorded_ms, recorded_ms + 1};
}

static const char *const indexed_params[] = {"date",    "agent",   "entity",  "entity-name",
                                             "patient", "type",    "subtype", "action",
                                             "outcome", "address", NULL};

bool audit_param_indexed(const char *name)
{
    size_t i;

    for (i = 0; indexed_params[i]; i++)
        if (strcmp(indexed_params[i], name) == 0)
            return true;
    return false;
}

/* Counts ev in the hourly activity roll-up: identified clients by name,
 * the others by network address; an aggregated event counts its refusals. */
static enum gw_code tally(struct store_txn *txn, const struct audit_event *ev, int64_t recorded,
                          struct gw_error *err)
{
    const char *client = ev->who && ev->who->client_name ? ev->who->client_name
                         : ev->actor_name                ? ev->actor_name
                                                         : "";
    const char *address = *client ? "" : ev->peer ? ev->peer : "";

    long n = ev->tally ? ev->tally->count : 1;

    return store_txn_audit_tally(txn, recorded, client, address, (int)audit_class_of(ev), n, err);
}

enum gw_code audit_record(struct store_txn *txn, const struct audit_event *ev, struct gw_error *err)
{
    char id[GW_UUID_LEN];
    int64_t recorded = store_txn_now(txn);
    struct index_list *idx;
    char *text;
    enum gw_code rc;

    rc = gw_uuid7(id, err);
    if (rc)
        return rc;
    text = audit_event_text(ev, id, recorded); /* the canonical form, written directly */
    idx = malloc(sizeof *idx);
    if (!text || !idx) {
        rc = gw_fail(err, GW_E_NOMEM, "no memory for an AuditEvent");
        goto out;
    }
    index_event(idx, ev, recorded);
    rc = idx->nomem ? gw_fail(err, GW_E_NOMEM, "no memory for an AuditEvent")
                    : store_txn_audit_append(txn, id, recorded, text, idx->e, idx->n, err);
    index_cleanup(idx);
    if (!rc)
        rc = tally(txn, ev, recorded, err);
out:
    free(idx);
    free(text);
    return rc;
}

static enum gw_code record_alone_cb(struct store_txn *txn, void *ctx, enum gw_code outcome,
                                    const struct gw_error *why, struct gw_error *err)
{
    (void)outcome;
    (void)why;
    return audit_record(txn, ctx, err);
}

enum gw_code audit_record_alone(struct store *st, const struct audit_event *ev,
                                struct gw_error *err)
{
    return store_write(st, NULL, record_alone_cb, (void *)ev, err);
}
