/* inbound.c -- one inbound HL7 v2 message from the RIS (MLLP listener or POST
 * /ris/messages): parse, dedupe, apply, answer.
 *
 * Promises: the message's effects, its dedupe row (the authenticated client,
 * sender = MSH-3^MSH-4, control id = MSH-10, with the ACK text) and its
 * Import AuditEvent land in one commit, and the ACK is handed back only
 * after it; the same message from the same client again gets the recorded
 * ACK and changes nothing, while another client never gets it (one RIS
 * cannot replay, or pre-empt, another's control ids). A client speaks only
 * for its own sites: MSH-4 must be the receiving_facility the gateway
 * addresses one of them as, else AR. ACK codes: AA accepted;
 * AE for a message the gateway understood but cannot apply (unknown order,
 * unhandled message type or event, a missing or bad value); AR for what it
 * cannot read (no parse, unsupported version or processing id, a missing
 * ORC / SCH / OBR) and for its own transient failures (store busy: not
 * recorded, so a resend is applied).
 */
#include "ris/ris_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inbound {
    struct ris *ris;
    const char *peer;
    const struct auth_identity *who; /* NULL: every site */
    const char *client;              /* the authenticated identity: part of the dedupe key */
    bool is_mllp;
    const char *raw;
    size_t raw_len;
    struct hl7_msg *msg;
    const char *control_id;
    char *sender; /* MSH-3^MSH-4 */
    char type[24];
    struct ris_plan plan;
    char *ack;
    size_t ack_len;
    bool duplicate;
};

/* ------------------------------------------------------------ applying */

static bool is_final_status(const char *s)
{
    return s && (strcmp(s, "revoked") == 0 || strcmp(s, "completed") == 0 ||
                 strcmp(s, "entered-in-error") == 0);
}

static bool has_filler(json_t *sr, const char *value)
{
    json_t *v;
    size_t i;

    json_array_foreach (json_object_get(sr, "identifier"), i, v) {
        const char *have = json_string_value(json_object_get(v, "value"));
        json_t *code = json_object_get(
            json_array_get(json_object_get(json_object_get(v, "type"), "coding"), 0), "code");

        if (have && strcmp(have, value) == 0 && json_string_value(code) &&
            strcmp(json_string_value(code), "FILL") == 0)
            return true;
    }
    return false;
}

/* Adds the filler order number as identifier type FILL (v2 table 0203). */
static int add_filler(json_t *sr, const struct ris_effect *e, const char *site)
{
    char system[RIS_MAX_REF + 64];
    json_t *ids = json_object_get(sr, "identifier"), *id;

    snprintf(system, sizeof system, "%s%s", RIS_FILLER_SYSTEM, site ? site : "");
    id = json_pack("{s:{s:[{s:s, s:s, s:s}]}, s:s, s:s}", "type", "coding", "system", RIS_V2_0203,
                   "code", "FILL", "display", "Filler Identifier", "system", system, "value",
                   e->filler);
    if (!id || (e->filler_ns &&
                json_object_set_new(id, "assigner", json_pack("{s:s}", "display", e->filler_ns)))) {
        json_decref(id);
        return -1;
    }
    if (!ids) {
        if (json_object_set_new(sr, "identifier", json_array()))
            return -1;
        ids = json_object_get(sr, "identifier");
    }
    return json_array_append_new(ids, id);
}

/* Writes the resource (Appointment, DiagnosticReport) with the order's owner and site. */
static enum gw_code put_resource(struct ris_plan *p, struct ris_effect *e,
                                 const struct store_resource *row, struct gw_error *err)
{
    struct store_written w;
    enum gw_code rc = p->ris->hooks.put(p->ris->hooks.ctx, p->txn, e->resource, row->owner,
                                        row->site, e->resource_version, &w, err);

    if (!rc)
        snprintf(e->resource_ref, sizeof e->resource_ref, "%s/%s",
                 json_string_value(json_object_get(e->resource, "resourceType")),
                 json_string_value(json_object_get(e->resource, "id")));
    return rc;
}

static enum gw_code apply_effect(struct ris_plan *p, struct ris_effect *e, struct gw_error *err)
{
    struct ris_order_ref now;
    struct ris_task_change change = e->task;
    struct store_written w;
    const char *current;
    bool keep, changed = false;
    enum gw_code rc = ris_order_lookup(p, e->order.id, NULL, &now, err); /* fresh version */

    if (rc)
        return rc;
    current = json_string_value(json_object_get(now.sr, "status"));
    keep = is_final_status(current) && !is_final_status(e->sr_status);
    if (e->resource)
        rc = put_resource(p, e, &now.row, err);
    if (!rc && !keep && e->sr_status && (!current || strcmp(current, e->sr_status) != 0)) {
        changed = true;
        if (json_object_set_new(now.sr, "status", json_string(e->sr_status)))
            rc = gw_fail(err, GW_E_NOMEM, "no memory for the ServiceRequest");
    }
    if (!rc && e->filler && !has_filler(now.sr, e->filler)) {
        changed = true;
        if (add_filler(now.sr, e, now.row.site))
            rc = gw_fail(err, GW_E_NOMEM, "no memory for the ServiceRequest");
    }
    if (!rc && changed)
        rc = p->ris->hooks.put(p->ris->hooks.ctx, p->txn, now.sr, now.row.owner, now.row.site,
                               now.row.version, &w, err);
    if (keep)
        change.status = change.business = change.reason = NULL;
    change.output_ref = e->resource ? e->resource_ref : NULL;
    change.output_kind = e->output_kind;
    if (!rc && (change.status || change.output_ref))
        rc = ris_task_apply(p->ris, p->txn, e->order.id, &change, e->task_ref, err);
    ris_order_ref_cleanup(&now);
    return rc;
}

enum gw_code ris_plan_apply(struct ris_plan *p, struct gw_error *err)
{
    size_t i;
    enum gw_code rc = GW_OK;

    for (i = 0; !rc && i < p->n_effects; i++)
        rc = apply_effect(p, &p->effects[i], err);
    return rc;
}

void ris_plan_cleanup(struct ris_plan *p)
{
    size_t i;

    for (i = 0; i < p->n_effects; i++) {
        ris_order_ref_cleanup(&p->effects[i].order);
        json_decref(p->effects[i].resource);
    }
    p->n_effects = 0;
}

/* ------------------------------------------------------------ the commit */

/* MSH-11 P (or empty) and a v2.3 to v2.9 MSH-12; otherwise AR. */
static void check_header(struct inbound *in)
{
    const char *pid = hl7_msg_processing_id(in->msg), *v = hl7_msg_version(in->msg);

    if (pid && strcmp(pid, "P") != 0)
        ris_plan_refuse(&in->plan, "AR", HL7_ERR_UNSUPPORTED_PROCESSING, "MSH", 1, 11,
                        "processing id %s is not handled: this is a production interface (P)", pid);
    else if (!v || v[0] != '2' || v[1] != '.' || v[2] < '3' || v[2] > '9' || (v[3] && v[3] != '.'))
        ris_plan_refuse(&in->plan, "AR", HL7_ERR_UNSUPPORTED_VERSION, "MSH", 1, 12,
                        "HL7 version %s is not handled (2.3 to 2.9)", v ? v : "(empty)");
}

/* True when site serves as facility and the sender speaks for it. */
static bool speaks_for(const struct inbound *in, const struct config_site *site,
                       const char *facility)
{
    return strcmp(site->receiving_facility, facility) == 0 &&
           (!in->who || auth_serves_site(in->who, site->id));
}

/* MSH-4 must name a site of the sender: the receiving_facility the gateway
 * addresses that site's RIS as (MSH-6 of its orders); otherwise AR. */
static void check_facility(struct inbound *in)
{
    const struct config *cfg = in->ris->cfg;
    const char *facility = hl7_msg_sending_facility(in->msg);
    size_t i;

    for (i = 0; facility && i < cfg->n_sites; i++)
        if (speaks_for(in, &cfg->sites[i], facility))
            return;
    ris_plan_refuse(&in->plan, "AR", HL7_ERR_TABLE_VALUE, "MSH", 1, 4,
                    "sending facility %s (MSH-4) is not a site client %s may speak for: use the "
                    "receiving facility of its own site's orders (MSH-6)",
                    facility ? facility : "(empty)", in->client);
}

static enum gw_code build_ack(struct inbound *in, struct gw_error *err)
{
    char id[RIS_MAX_CONTROL_ID];
    bool accepted = strcmp(in->plan.code, "AA") == 0;
    struct hl7_ack_spec spec = {in->msg,
                                in->raw,
                                in->raw_len,
                                in->plan.code,
                                id,
                                NULL,
                                accepted ? NULL : &in->plan.where,
                                accepted ? NULL : in->plan.why.msg};
    enum gw_code rc = ris_control_id(id, err);

    if (!rc)
        rc = hl7_ack_build(&spec, &in->ack, &in->ack_len, err);
    return rc;
}

static enum gw_code inbound_apply(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    struct inbound *in = vctx;
    char *seen = NULL;
    enum gw_code rc =
        store_txn_inbound_seen(txn, in->client, in->sender, in->control_id, &seen, err);

    if (rc == GW_OK) {
        in->duplicate = true;
        in->ack = seen;
        in->ack_len = strlen(seen);
        return GW_OK;
    }
    if (rc != GW_E_NOTFOUND)
        return rc;
    gw_error_clear(err);
    rc = GW_OK;
    in->plan.txn = txn;
    check_header(in);
    if (strcmp(in->plan.code, "AA") == 0)
        check_facility(in);
    if (strcmp(in->plan.code, "AA") == 0)
        rc = ris_plan_build(&in->plan, err);
    if (!rc && strcmp(in->plan.code, "AA") == 0)
        rc = ris_plan_apply(&in->plan, err);
    if (!rc)
        rc = build_ack(in, err);
    if (!rc)
        rc = store_txn_inbound_record(txn, in->client, in->sender, in->control_id, in->ack, err);
    return rc;
}

static void base_event(struct audit_event *ev, const struct inbound *in)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = AUDIT_HL7_IMPORT;
    ev->subtype = in->type[0] ? in->type : "unknown";
    ev->action = 'U';
    ev->who = in->who;
    ev->peer = in->peer;
    ev->actor_name = in->sender ? in->sender : in->peer;
    ev->request_id = in->control_id;
    ev->path = in->is_mllp ? "MLLP" : "POST /ris/messages";
}

static enum gw_code inbound_audit(struct store_txn *txn, void *vctx, enum gw_code outcome,
                                  const struct gw_error *why, struct gw_error *err)
{
    struct inbound *in = vctx;
    struct audit_event ev;
    size_t i;

    base_event(&ev, in);
    ev.outcome = audit_outcome_of(outcome);
    ev.outcome_desc = outcome ? why->msg : NULL;
    if (!outcome && !in->duplicate && strcmp(in->plan.code, "AA") != 0) {
        ev.outcome = AUDIT_MINOR_FAILURE;
        ev.outcome_desc = in->plan.why.msg;
    }
    audit_add_entity(&ev, NULL, "20", "2", in->control_id);
    if (in->duplicate)
        ev.entities[0].description = "a repeated message: answered with the first ACK";
    for (i = 0; !outcome && !in->duplicate && i < in->plan.n_effects; i++) {
        const struct ris_effect *e = &in->plan.effects[i];

        audit_add_entity(&ev, e->sr_ref, "4", "2", NULL);
        if (e->task_ref[0])
            audit_add_entity(&ev, e->task_ref, "4", "2", NULL);
        if (e->resource_ref[0])
            audit_add_entity(&ev, e->resource_ref,
                             e->output_kind && strcmp(e->output_kind, "report") == 0 ? "3" : "4",
                             "2", NULL);
    }
    ev.patient = outcome || in->duplicate ? NULL : in->plan.patient;
    return audit_record(txn, &ev, err);
}

/* ------------------------------------------------------------ entry */

/* An ACK for a message that is not applied: it did not parse, or the store failed. */
static enum gw_code refuse_now(struct inbound *in, const char *code, const struct hl7_err *where,
                               const char *text, struct gw_error *err)
{
    char id[RIS_MAX_CONTROL_ID];
    struct hl7_ack_spec spec = {in->msg, in->raw, in->raw_len, code, id, NULL, where, text};
    enum gw_code rc = ris_control_id(id, err);

    return rc ? rc : hl7_ack_build(&spec, &in->ack, &in->ack_len, err);
}

/* A message that does not parse: AR with where it failed, audited alone. */
static enum gw_code unreadable(struct inbound *in, const struct hl7_err *where,
                               const struct gw_error *why, struct gw_error *err)
{
    struct audit_event ev;
    struct gw_error aerr;

    ris_message_type(in->raw, in->raw_len, in->type);
    base_event(&ev, in);
    ev.outcome = AUDIT_MINOR_FAILURE;
    ev.outcome_desc = why->msg;
    if (audit_record_alone(in->ris->store, &ev, &aerr) != GW_OK)
        gw_log(GW_LOG_ERROR, "audit-failed", "unreadable HL7 message: %s", aerr.msg);
    return refuse_now(in, "AR", where, why->msg, err);
}

static char *sender_key(const struct hl7_msg *msg)
{
    const char *app = hl7_msg_sending_app(msg), *fac = hl7_msg_sending_facility(msg);
    size_t n = (app ? strlen(app) : 0) + (fac ? strlen(fac) : 0) + 2;
    char *key = malloc(n);

    if (key)
        snprintf(key, n, "%s^%s", app ? app : "", fac ? fac : "");
    return key;
}

/* Commits the message's effects; a store failure answers AR/AE unrecorded. */
static enum gw_code commit(struct inbound *in, struct gw_error *err)
{
    struct gw_error why;
    struct hl7_err where;
    char text[GW_ERROR_MSG_MAX + 80];
    enum gw_code rc = store_write(in->ris->store, inbound_apply, inbound_audit, in, &why);

    if (!rc)
        return GW_OK;
    free(in->ack);
    in->ack = NULL;
    gw_log(GW_LOG_WARN, "ris-inbound-failed", "%s", why.msg);
    hl7_err_set(&where, HL7_ERR_INTERNAL, NULL, 0, 0, 0);
    snprintf(text, sizeof text, "the gateway could not record the message (%s); send it again",
             why.msg);
    return refuse_now(in, gw_code_hl7_ack(rc), &where, text, err);
}

enum gw_code ris_inbound(struct ris *ris, const struct ris_sender *from, const char *data,
                         size_t len, char **ack, size_t *ack_len, struct gw_error *err)
{
    struct inbound in = {.ris = ris,
                         .peer = from->address,
                         .who = from->who,
                         .client = from->identity ? from->identity : from->address,
                         .is_mllp = from->is_mllp,
                         .raw = data,
                         .raw_len = len};
    struct hl7_err where;
    struct gw_error why;
    enum gw_code rc;

    *ack = NULL;
    *ack_len = 0;
    in.plan = (struct ris_plan){.ris = ris, .who = from->who, .code = "AA"};
    if (!in.client)
        return gw_fail(err, GW_E_INTERNAL, "an inbound message needs a sender");
    if (hl7_msg_parse(data, len, &in.msg, &where, &why) != GW_OK) {
        rc = unreadable(&in, &where, &why, err);
        goto out;
    }
    in.plan.msg = in.msg;
    in.control_id = hl7_msg_control_id(in.msg);
    snprintf(in.type, sizeof in.type, "%s%s%s", hl7_msg_type(in.msg),
             hl7_msg_trigger(in.msg) ? "^" : "",
             hl7_msg_trigger(in.msg) ? hl7_msg_trigger(in.msg) : "");
    in.sender = sender_key(in.msg);
    rc = in.sender ? commit(&in, err) : gw_fail(err, GW_E_NOMEM, "no memory for a message");
out:
    if (!rc) {
        *ack = in.ack;
        *ack_len = in.ack_len;
        in.ack = NULL;
    }
    free(in.ack);
    free(in.sender);
    ris_plan_cleanup(&in.plan);
    hl7_msg_destroy(in.msg);
    return rc;
}
