/* outbox.c -- what pulled and pushed orders share: settling a message with
 * the RIS's ACK (a refusal makes it a dead letter and shows on the Task), the
 * Task changes of the RIS side, and the AuditEvents of HL7 exchanges.
 *
 * Promises: a dead letter is never deleted: its outbox row stays with the
 * RIS's reason, the Task says failed / delivery-failed with that reason, and
 * both land in the same commit as the AuditEvent of the ACK.
 */
#include "ris/ris_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RIS_REASON_MAX 1200 /* bytes of a Task.statusReason text */

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ------------------------------------------------------------ Task */

json_t *ris_task_find(struct store_txn *txn, const char *sr_id, struct store_resource *row,
                      struct gw_error *err, enum gw_code *rc)
{
    char focus[RIS_MAX_REF];
    struct store_value v = {.value = focus};
    struct store_cond c = {.param = "focus", .kind = STORE_REFERENCE, .values = &v, .n_values = 1};
    struct store_query q = {.type = "Task", .conds = &c, .n_conds = 1, .count = 1};
    struct store_page page;
    json_t *task = NULL;

    memset(row, 0, sizeof *row);
    snprintf(focus, sizeof focus, "ServiceRequest/%s", sr_id);
    *rc = store_txn_search(txn, &q, &page, err);
    if (*rc)
        return NULL;
    if (page.n_items >= 1 && !page.items[0].deleted) {
        task = gw_json_loads(page.items[0].json, 0, NULL);
        if (!task) {
            *rc = gw_fail(err, GW_E_INTERNAL, "the stored Task of %s does not parse", focus);
        } else {
            *row = page.items[0];
            memset(&page.items[0], 0, sizeof page.items[0]);
        }
    }
    store_page_cleanup(&page);
    return task;
}

static json_t *status_concept(const char *code)
{
    return json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system", RIS_STATUS_SYSTEM, "code", code,
                     "text", code);
}

/* Appends an output naming ref unless the Task already has it. */
static int add_output(json_t *task, const char *kind, const char *ref)
{
    json_t *outputs = json_object_get(task, "output"), *v;
    size_t i;

    json_array_foreach (outputs, i, v) {
        const char *have = str(json_object_get(v, "valueReference"), "reference");

        if (have && strcmp(have, ref) == 0)
            return 0;
    }
    if (!outputs) {
        if (json_object_set_new(task, "output", json_array()))
            return -1;
        outputs = json_object_get(task, "output");
    }
    return json_array_append_new(outputs,
                                 json_pack("{s:{s:[{s:s, s:s}], s:s}, s:{s:s}}", "type", "coding",
                                           "system", RIS_OUTPUT_SYSTEM, "code", kind, "text", kind,
                                           "valueReference", "reference", ref));
}

static int change_task(json_t *task, const struct ris_task_change *c, int64_t now_ms)
{
    char instant[GW_INSTANT_LEN];

    gw_time_instant(now_ms, instant);
    if (c->status && json_object_set_new(task, "status", json_string(c->status)))
        return -1;
    if (c->business && json_object_set_new(task, "businessStatus", status_concept(c->business)))
        return -1;
    if (c->reason) {
        if (json_object_set_new(task, "statusReason", json_pack("{s:s}", "text", c->reason)))
            return -1;
    } else if (c->status) {
        json_object_del(task, "statusReason"); /* the old reason no longer holds */
    }
    if (c->output_ref && add_output(task, c->output_kind, c->output_ref))
        return -1;
    return json_object_set_new(task, "lastModified", json_string(instant));
}

enum gw_code ris_task_apply(struct ris *ris, struct store_txn *txn, const char *sr_id,
                            const struct ris_task_change *change, char *ref, struct gw_error *err)
{
    struct store_resource row;
    struct store_written w;
    enum gw_code rc;
    json_t *task = ris_task_find(txn, sr_id, &row, err, &rc);

    if (ref)
        ref[0] = '\0';
    if (!task) {
        store_resource_cleanup(&row);
        return rc;
    }
    if (change_task(task, change, store_txn_now(txn)))
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the Task");
    else
        rc = ris->hooks.put(ris->hooks.ctx, txn, task, row.owner, row.site, row.version, &w, err);
    if (!rc && ref)
        snprintf(ref, RIS_MAX_REF, "Task/%s", row.id);
    json_decref(task);
    store_resource_cleanup(&row);
    return rc;
}

/* ------------------------------------------------------------ settling */

bool ris_ack_accepted(const char *code)
{
    return strcmp(code, "AA") == 0 || strcmp(code, "CA") == 0;
}

/* out for the message m found (was_final and is_dead left to the caller). */
static void settled_from(struct ris_settled *out, const struct store_outbox_msg *m)
{
    out->found = true;
    snprintf(out->site, sizeof out->site, "%s", m->site ? m->site : "");
    snprintf(out->ref, sizeof out->ref, "%s/%s", m->ref_type ? m->ref_type : "",
             m->ref_id ? m->ref_id : "");
}

enum gw_code ris_settle(struct ris *ris, struct store_txn *txn, const char *control_id,
                        const char *const *sites, size_t n_sites, const char *code,
                        const char *text, struct ris_settled *out, struct gw_error *err)
{
    struct store_outbox_msg m;
    char reason[RIS_REASON_MAX];
    struct ris_task_change change = {"failed", RIS_STATUS_DELIVERY_FAILED, reason, NULL, NULL};
    bool accepted = ris_ack_accepted(code);
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    rc = store_txn_outbox_settle(txn, control_id, sites, n_sites, code, text, &m, &out->was_final,
                                 err);
    if (rc == GW_E_NOTFOUND) {
        gw_error_clear(err);
        return GW_OK;
    }
    if (rc)
        return rc;
    settled_from(out, &m);
    out->is_dead = !out->was_final && !accepted;
    if (out->is_dead && m.ref_id && m.ref_type && strcmp(m.ref_type, "ServiceRequest") == 0) {
        snprintf(reason, sizeof reason, "the RIS refused the %s message %s (%s): %s",
                 m.kind ? m.kind : "order", control_id, code,
                 text && *text ? text : "no reason given");
        rc = ris_task_apply(ris, txn, m.ref_id, &change, NULL, err);
    }
    store_outbox_msg_cleanup(&m);
    return rc;
}

enum gw_code ris_settle_accepted(struct store_txn *txn, const char *const *control_ids, size_t n,
                                 const char *const *sites, size_t n_sites, struct ris_settled *out,
                                 struct gw_error *err)
{
    struct store_outbox_msg *msgs = calloc(n + 1, sizeof *msgs);
    bool *was_final = calloc(n + 1, sizeof *was_final);
    enum gw_code rc;
    size_t i;

    if (!msgs || !was_final) {
        free(msgs);
        free(was_final);
        return gw_fail(err, GW_E_NOMEM, "no memory for settling ACKs");
    }
    rc = store_txn_outbox_accept(txn, control_ids, n, sites, n_sites, msgs, was_final, err);
    for (i = 0; !rc && i < n; i++) {
        const struct store_outbox_msg *m = &msgs[i];

        memset(&out[i], 0, sizeof out[i]);
        if (!m->seq)
            continue;
        settled_from(&out[i], m);
        out[i].was_final = was_final[i];
    }
    store_outbox_list_free(msgs, n);
    free(was_final);
    return rc;
}

/* ------------------------------------------------------------ audit */

void ris_message_type(const char *er7, size_t len, char out[16])
{
    size_t i, field = 2, k = 0; /* er7[3] is MSH-1, MSH-2 starts at er7[4] */
    char fs, cs;

    out[0] = '\0';
    if (!er7 || len < 9 || memcmp(er7, "MSH", 3) != 0)
        return;
    fs = er7[3];
    cs = er7[4];
    for (i = 4; i < len && er7[i] != '\r' && er7[i] != '\n' && field < 9; i++)
        if (er7[i] == fs)
            field++;
    for (; i < len && field == 9 && k + 1 < 16; i++) {
        if (er7[i] == fs || er7[i] == '\r' || er7[i] == '\n')
            break;
        if (er7[i] == cs && strchr(out, '^')) /* type^trigger only */
            break;
        out[k++] = er7[i] == cs ? '^' : er7[i];
        out[k] = '\0';
    }
}

enum gw_code ris_audit_items(struct store_txn *txn, struct audit_event *base,
                             const struct ris_audit_item *items, size_t n, struct gw_error *err)
{
    size_t i = 0;
    enum gw_code rc;

    if (n == 0)
        return audit_record(txn, base, err);
    while (i < n) {
        struct audit_event ev = *base;
        const char *type = items[i].type;

        ev.n_entities = 0;
        if (type && *type)
            ev.subtype = type;
        while (i < n && ev.n_entities < AUDIT_MAX_ENTITIES &&
               ((!type && !items[i].type) ||
                (type && items[i].type && strcmp(type, items[i].type) == 0))) {
            audit_add_entity(&ev, items[i].ref, "20", "2", items[i].control_id);
            i++;
        }
        rc = audit_record(txn, &ev, err);
        if (rc)
            return rc;
    }
    return GW_OK;
}
