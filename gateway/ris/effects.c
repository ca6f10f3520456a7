/* effects.c -- what an inbound RIS message changes in FHIR.
 *
 * Accepted messages and how they find their order (the placer order number
 * the gateway issued, <ServiceRequest id>^FHIRGW):
 *   ORM^O01, OMI^O23, ORR^O02, ORI^O24, OMG^O19: each ORC group, by ORC-2
 *     (else the group's OBR-2). ORC-1 OK / UA / OC CR CA OD DR DC / HD OH /
 *     RL OE say what happened; SC (and XR, SN, NW) carry it in ORC-5:
 *     SC scheduled, IP or A in progress, CM completed, CA or DC cancelled,
 *     HD on hold, ER error. ORC-3 (or OBR-3) gives the filler number.
 *   SIU^S12/S13/S14 (booked), S15/S17 (cancelled), S26 (no-show): SCH-26,
 *     else the first OBR-2, else the first ORC-2; an Appointment.
 *   ORU^R01: each OBR, by OBR-2 (else the ORC-2 before it); a DiagnosticReport.
 * A message is planned whole before anything is written: an unknown order,
 * an unhandled type or event or an unusable value refuses it with AE, a
 * missing ORC / SCH / OBR (a structure the gateway cannot read) with AR;
 * either way nothing changes. A referral that
 * reached a final status (revoked, completed, entered-in-error) keeps it
 * unless the message gives another final status; links are still added.
 */
#include "ris/ris_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

void ris_plan_refuse(struct ris_plan *p, const char *code, enum hl7_err_code ec,
                     const char *segment, int sequence, int field, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->code && strcmp(p->code, "AA") != 0)
        return; /* the first refusal says why */
    p->code = code;
    hl7_err_set(&p->where, ec, segment, sequence, field, 0);
    p->why.code = GW_E_INPUT;
    va_start(ap, fmt);
    n = vsnprintf(p->why.msg, sizeof p->why.msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        p->why.msg[0] = '\0';
    else if ((size_t)n >= sizeof p->why.msg)
        memcpy(p->why.msg + sizeof p->why.msg - 4, "...", 4);
}

static bool refused(const struct ris_plan *p)
{
    return p->code && strcmp(p->code, "AA") != 0;
}

/* ------------------------------------------------------------ orders */

void ris_order_ref_cleanup(struct ris_order_ref *o)
{
    store_resource_cleanup(&o->row);
    json_decref(o->sr);
    memset(o, 0, sizeof *o);
}

enum gw_code ris_order_lookup(struct ris_plan *p, const char *placer, const char *ns,
                              struct ris_order_ref *out, struct gw_error *err)
{
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    if (!placer)
        return gw_fail(err, GW_E_NOTFOUND, "the message names no placer order number");
    if (ns && *ns && strcmp(ns, RIS_PLACER_NAMESPACE) != 0)
        return gw_fail(err, GW_E_NOTFOUND, "placer order number %s^%s was not issued here (%s)",
                       placer, ns, RIS_PLACER_NAMESPACE);
    if (!ris_is_fhir_id(placer))
        return gw_fail(err, GW_E_NOTFOUND, "no order has placer order number %s", placer);
    rc = store_txn_read(p->txn, "ServiceRequest", placer, 0, &out->row, err);
    if (rc == GW_OK && (out->row.deleted || (p->who && !auth_serves_site(p->who, out->row.site)))) {
        store_resource_cleanup(&out->row);
        rc = GW_E_NOTFOUND;
    }
    if (rc == GW_E_NOTFOUND)
        return gw_fail(err, GW_E_NOTFOUND, "no order has placer order number %s", placer);
    if (rc)
        return rc;
    out->sr = gw_json_loads(out->row.json, 0, NULL);
    if (!out->sr) {
        store_resource_cleanup(&out->row);
        return gw_fail(err, GW_E_INTERNAL, "the stored ServiceRequest %s does not parse", placer);
    }
    memmove(out->id, placer, strlen(placer) + 1); /* a FHIR id: it fits */
    return GW_OK;
}

/* Takes the next effect slot for an order; NULL (and the plan refused) when full. */
static struct ris_effect *new_effect(struct ris_plan *p)
{
    struct ris_effect *e;

    if (p->n_effects == RIS_MAX_ORDER_GROUPS) {
        ris_plan_refuse(p, "AE", HL7_ERR_INTERNAL, NULL, 0, 0,
                        "a message may concern at most %d orders", RIS_MAX_ORDER_GROUPS);
        return NULL;
    }
    e = &p->effects[p->n_effects++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Looks the order up into a new effect; an unknown order refuses the plan. */
static enum gw_code effect_for(struct ris_plan *p, const char *placer, const char *ns,
                               const char *segment, int sequence, int field,
                               struct ris_effect **out, struct gw_error *err)
{
    struct ris_effect *e = new_effect(p);
    struct gw_error why;
    enum gw_code rc;

    *out = NULL;
    if (!e)
        return GW_OK;
    rc = ris_order_lookup(p, placer, ns, &e->order, &why);
    if (rc == GW_E_NOTFOUND) {
        p->n_effects--;
        ris_plan_refuse(p, "AE", HL7_ERR_UNKNOWN_KEY, segment, sequence, field, "%s", why.msg);
        return GW_OK;
    }
    if (rc) {
        p->n_effects--;
        if (err)
            *err = why;
        return rc;
    }
    gw_format(e->sr_ref, sizeof e->sr_ref, "ServiceRequest/%s", e->order.id);
    if (!p->patient) {
        const char *subject = str(json_object_get(e->order.sr, "subject"), "reference");

        if (subject && strncmp(subject, "Patient/", 8) == 0) {
            snprintf(p->patient_buf, sizeof p->patient_buf, "%s", subject);
            p->patient = p->patient_buf;
        }
    }
    *out = e;
    return GW_OK;
}

struct transition {
    const char *code, *sr, *task, *business;
    bool status_wins; /* ORC-5, when valued, says more than ORC-1 */
};

static const struct transition controls[] = {
    {"OK", "active", "accepted", RIS_STATUS_ACCEPTED, true},
    {"UA", "revoked", "rejected", RIS_STATUS_REJECTED, false},
    {"OC", "revoked", "cancelled", RIS_STATUS_CANCELLED, false},
    {"CR", "revoked", "cancelled", RIS_STATUS_CANCELLED, false},
    {"CA", "revoked", "cancelled", RIS_STATUS_CANCELLED, false},
    {"OD", "revoked", "cancelled", RIS_STATUS_CANCELLED, false},
    {"DR", "revoked", "cancelled", RIS_STATUS_CANCELLED, false},
    {"DC", "revoked", "cancelled", RIS_STATUS_CANCELLED, false},
    {"HD", "on-hold", "on-hold", RIS_STATUS_ON_HOLD, false},
    {"OH", "on-hold", "on-hold", RIS_STATUS_ON_HOLD, false},
    {"RL", "active", "accepted", RIS_STATUS_ACCEPTED, true},
    {"OE", "active", "accepted", RIS_STATUS_ACCEPTED, true},
    {"SC", NULL, NULL, NULL, true},
    {"XR", NULL, NULL, NULL, true},
    {"SN", NULL, NULL, NULL, true},
    {"NW", NULL, NULL, NULL, true},
};

static const struct transition statuses[] = {
    {"SC", "active", "accepted", RIS_STATUS_SCHEDULED, true},
    {"IP", "active", "in-progress", RIS_STATUS_IN_PROGRESS, true},
    {"A", "active", "in-progress", RIS_STATUS_IN_PROGRESS, true},
    {"CM", "completed", "completed", RIS_STATUS_COMPLETED, true},
    {"CA", "revoked", "cancelled", RIS_STATUS_CANCELLED, true},
    {"DC", "revoked", "cancelled", RIS_STATUS_CANCELLED, true},
    {"HD", "on-hold", "on-hold", RIS_STATUS_ON_HOLD, true},
    {"ER", "entered-in-error", "failed", RIS_STATUS_REJECTED, true},
};

static const struct transition *find_transition(const struct transition *t, size_t n,
                                                const char *code)
{
    size_t i;

    for (i = 0; code && i < n; i++)
        if (strcmp(t[i].code, code) == 0)
            return &t[i];
    return NULL;
}

/* The segment named name that follows index from (up to the next ORC), or NULL. */
static const struct hl7_seg *next_in_group(const struct hl7_msg *msg, size_t from, const char *name)
{
    size_t i, n = hl7_msg_count_segments(msg);

    for (i = from + 1; i < n; i++) {
        const struct hl7_seg *s = hl7_msg_segment(msg, i);

        if (strcmp(hl7_seg_name(s), "ORC") == 0)
            return NULL;
        if (strcmp(hl7_seg_name(s), name) == 0)
            return s;
    }
    return NULL;
}

/* ORC-16 (order control reason), else the group's first NTE-3. */
static const char *group_reason(const struct hl7_msg *msg, const struct hl7_seg *orc)
{
    const char *text = hl7_seg_get(orc, 16, 0, 2, 1);
    const struct hl7_seg *nte = next_in_group(msg, hl7_seg_index(orc), "NTE");

    if (!text)
        text = hl7_seg_get(orc, 16, 0, 1, 1);
    if (!text && nte)
        text = hl7_seg_field(nte, 3);
    return text;
}

static enum gw_code plan_order_group(struct ris_plan *p, const struct hl7_seg *orc,
                                     struct gw_error *err)
{
    const struct hl7_seg *obr = next_in_group(p->msg, hl7_seg_index(orc), "OBR");
    int seq = hl7_seg_sequence(orc);
    const char *control = hl7_seg_field(orc, 1), *status = hl7_seg_field(orc, 5);
    const struct transition *t =
        find_transition(controls, sizeof controls / sizeof *controls, control);
    const struct transition *s =
        find_transition(statuses, sizeof statuses / sizeof *statuses, status);
    bool from_orc = hl7_seg_get(orc, 2, 0, 1, 1) != NULL;
    const struct hl7_seg *placer_seg = from_orc ? orc : obr;
    struct ris_effect *e;
    enum gw_code rc;

    if (!t)
        ris_plan_refuse(p, "AE", HL7_ERR_TABLE_VALUE, "ORC", seq, 1,
                        "order control %s is not handled here", control ? control : "(empty)");
    else if (!t->sr && !s)
        ris_plan_refuse(p, "AE", status ? HL7_ERR_TABLE_VALUE : HL7_ERR_REQUIRED_FIELD, "ORC", seq,
                        5, "order control %s needs an order status in ORC-5 (SC, IP, CM...)",
                        control);
    if (refused(p))
        return GW_OK;
    rc =
        effect_for(p, placer_seg ? hl7_seg_get(placer_seg, 2, 0, 1, 1) : NULL,
                   placer_seg ? hl7_seg_get(placer_seg, 2, 0, 2, 1) : NULL, "ORC", seq, 2, &e, err);
    if (rc || !e)
        return rc;
    if (s && t->status_wins)
        t = s;
    e->sr_status = t->sr;
    e->task = (struct ris_task_change){t->task, t->business, NULL, NULL, NULL};
    if (t->business && (strcmp(t->business, RIS_STATUS_REJECTED) == 0 ||
                        strcmp(t->business, RIS_STATUS_CANCELLED) == 0))
        e->task.reason = group_reason(p->msg, orc);
    e->filler = hl7_seg_get(orc, 3, 0, 1, 1);
    e->filler_ns = hl7_seg_get(orc, 3, 0, 2, 1);
    if (!e->filler && obr) {
        e->filler = hl7_seg_get(obr, 3, 0, 1, 1);
        e->filler_ns = hl7_seg_get(obr, 3, 0, 2, 1);
    }
    return GW_OK;
}

static enum gw_code plan_orders(struct ris_plan *p, struct gw_error *err)
{
    size_t i, n = hl7_msg_count(p->msg, "ORC");
    enum gw_code rc = GW_OK;

    if (n == 0)
        ris_plan_refuse(p, "AR", HL7_ERR_SEGMENT_SEQUENCE, "ORC", 1, 0,
                        "an order message needs an ORC segment");
    for (i = 0; !rc && !refused(p) && i < n; i++)
        rc = plan_order_group(p, hl7_msg_find(p->msg, "ORC", i), err);
    return rc;
}

/* ------------------------------------------------------------ SIU, ORU */

/* The stored resource of type based on the order whose identifier (in
 * system) is value; with value NULL, the first one. New reference or NULL. */
static json_t *find_related(struct ris_plan *p, const char *type, const struct ris_effect *e,
                            const char *system, const char *value, long *version, enum gw_code *rc,
                            struct gw_error *err)
{
    struct store_value v = {.value = e->sr_ref};
    struct store_cond c = {
        .param = "based-on", .kind = STORE_REFERENCE, .values = &v, .n_values = 1};
    struct store_query q = {.type = type, .conds = &c, .n_conds = 1, .count = RIS_MAX_RELATED};
    struct store_page page;
    json_t *found = NULL, *id;
    size_t i, k;

    memset(&page, 0, sizeof page);
    *rc = store_txn_search(p->txn, &q, &page, err);
    for (i = 0; !*rc && !found && i < page.n_items; i++) {
        json_t *res = page.items[i].deleted ? NULL : gw_json_loads(page.items[i].json, 0, NULL);

        json_array_foreach (json_object_get(res, "identifier"), k, id) {
            if (value && str(id, "system") && str(id, "value") &&
                strcmp(str(id, "system"), system) == 0 && strcmp(str(id, "value"), value) == 0)
                break;
        }
        if (res && (!value || k < json_array_size(json_object_get(res, "identifier")))) {
            found = res;
            *version = page.items[i].version;
        } else {
            json_decref(res);
        }
    }
    store_page_cleanup(&page);
    return found;
}

static enum gw_code plan_siu(struct ris_plan *p, struct gw_error *err)
{
    const char *trigger = hl7_msg_trigger(p->msg), *placer, *ns, *status;
    const struct hl7_seg *sch = hl7_msg_find(p->msg, "SCH", 0);
    const struct hl7_seg *obr = hl7_msg_find(p->msg, "OBR", 0);
    const struct hl7_seg *orc = hl7_msg_find(p->msg, "ORC", 0);
    struct ris_effect *e;
    json_t *previous;
    char system[RIS_MAX_REF + 64];
    const char *appt_id;
    enum gw_code rc;

    if (!trigger || (strcmp(trigger, "S12") && strcmp(trigger, "S13") && strcmp(trigger, "S14") &&
                     strcmp(trigger, "S15") && strcmp(trigger, "S17") && strcmp(trigger, "S26"))) {
        ris_plan_refuse(p, "AE", HL7_ERR_UNSUPPORTED_EVENT, "MSH", 1, 9,
                        "SIU event %s is not handled here (S12, S13, S14, S15, S17, S26)",
                        trigger ? trigger : "(empty)");
        return GW_OK;
    }
    if (!sch) {
        ris_plan_refuse(p, "AR", HL7_ERR_SEGMENT_SEQUENCE, "SCH", 1, 0, "a SIU needs an SCH");
        return GW_OK;
    }
    placer = hl7_seg_get(sch, 26, 0, 1, 1);
    ns = hl7_seg_get(sch, 26, 0, 2, 1);
    if (!placer && (obr || orc)) {
        placer = hl7_seg_get(obr ? obr : orc, 2, 0, 1, 1);
        ns = hl7_seg_get(obr ? obr : orc, 2, 0, 2, 1);
    }
    rc = effect_for(p, placer, ns, "SCH", 1, 26, &e, err);
    if (rc || !e)
        return rc;
    status = strcmp(trigger, "S15") == 0 || strcmp(trigger, "S17") == 0 ? "cancelled"
             : strcmp(trigger, "S26") == 0                              ? "noshow"
                                                                        : "booked";
    appt_id =
        hl7_seg_get(sch, 2, 0, 1, 1) ? hl7_seg_get(sch, 2, 0, 1, 1) : hl7_seg_get(sch, 1, 0, 1, 1);
    snprintf(system, sizeof system, "%s%s", RIS_APPOINTMENT_SYSTEM, e->order.row.site);
    previous = find_related(p, "Appointment", e, system, appt_id, &e->resource_version, &rc, err);
    if (!rc)
        e->resource = ris_appointment_build(p, &e->order, status, previous);
    json_decref(previous);
    if (rc || refused(p))
        return rc;
    if (!e->resource)
        return gw_fail(err, GW_E_NOMEM, "no memory for an Appointment");
    e->output_kind = "appointment";
    e->task = (struct ris_task_change){
        "accepted", strcmp(status, "booked") == 0 ? RIS_STATUS_SCHEDULED : RIS_STATUS_ACCEPTED,
        NULL, NULL, NULL};
    return GW_OK;
}

static enum gw_code plan_report(struct ris_plan *p, const struct hl7_seg *obr, struct gw_error *err)
{
    const struct hl7_seg *orc = NULL, *s;
    struct ris_effect *e;
    json_t *previous;
    char system[RIS_MAX_REF + 64];
    const char *placer = hl7_seg_get(obr, 2, 0, 1, 1), *ns = hl7_seg_get(obr, 2, 0, 2, 1), *st;
    bool is_final;
    size_t i;
    enum gw_code rc;

    for (i = 0; !placer && i < hl7_seg_index(obr); i++)
        if (strcmp(hl7_seg_name(s = hl7_msg_segment(p->msg, i)), "ORC") == 0)
            orc = s;
    if (!placer && orc) {
        placer = hl7_seg_get(orc, 2, 0, 1, 1);
        ns = hl7_seg_get(orc, 2, 0, 2, 1);
    }
    rc = effect_for(p, placer, ns, "OBR", hl7_seg_sequence(obr), 2, &e, err);
    if (rc || !e)
        return rc;
    snprintf(system, sizeof system, "%s%s", RIS_FILLER_SYSTEM, e->order.row.site);
    previous = find_related(p, "DiagnosticReport", e, system, hl7_seg_get(obr, 3, 0, 1, 1),
                            &e->resource_version, &rc, err);
    if (!rc)
        e->resource = ris_report_build(p, &e->order, obr, previous);
    json_decref(previous);
    if (rc || refused(p))
        return rc;
    if (!e->resource)
        return gw_fail(err, GW_E_NOMEM, "no memory for a DiagnosticReport");
    e->output_kind = "report";
    st = str(e->resource, "status");
    is_final =
        strcmp(st, "final") == 0 || strcmp(st, "corrected") == 0 || strcmp(st, "amended") == 0;
    e->sr_status = is_final ? "completed" : NULL;
    e->task = (struct ris_task_change){is_final ? "completed" : "in-progress", RIS_STATUS_REPORTED,
                                       NULL, NULL, NULL};
    e->filler = hl7_seg_get(obr, 3, 0, 1, 1);
    e->filler_ns = hl7_seg_get(obr, 3, 0, 2, 1);
    return GW_OK;
}

static enum gw_code plan_oru(struct ris_plan *p, struct gw_error *err)
{
    size_t i, n = hl7_msg_count(p->msg, "OBR");
    const char *trigger = hl7_msg_trigger(p->msg);
    enum gw_code rc = GW_OK;

    if (!trigger || strcmp(trigger, "R01") != 0)
        ris_plan_refuse(p, "AE", HL7_ERR_UNSUPPORTED_EVENT, "MSH", 1, 9,
                        "ORU event %s is not handled here (R01)", trigger ? trigger : "(empty)");
    else if (n == 0)
        ris_plan_refuse(p, "AR", HL7_ERR_SEGMENT_SEQUENCE, "OBR", 1, 0,
                        "a report needs an OBR segment");
    for (i = 0; !rc && !refused(p) && i < n; i++)
        rc = plan_report(p, hl7_msg_find(p->msg, "OBR", i), err);
    return rc;
}

enum gw_code ris_plan_build(struct ris_plan *p, struct gw_error *err)
{
    static const char *const order_types[] = {"ORM", "OMI", "ORR", "ORI", "OMG", "ORG"};
    const char *type = hl7_msg_type(p->msg);
    size_t i;

    for (i = 0; type && i < sizeof order_types / sizeof *order_types; i++)
        if (strcmp(type, order_types[i]) == 0)
            return plan_orders(p, err);
    if (type && strcmp(type, "SIU") == 0)
        return plan_siu(p, err);
    if (type && strcmp(type, "ORU") == 0)
        return plan_oru(p, err);
    ris_plan_refuse(p, "AE", HL7_ERR_UNSUPPORTED_TYPE, "MSH", 1, 9,
                    "message type %s is not handled here (ORM, OMI, ORR, ORI, SIU, ORU; ACKs "
                    "of pulled orders go to POST /ris/acks)",
                    type ? type : "(empty)");
    return GW_OK;
}
