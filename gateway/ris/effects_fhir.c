/* effects_fhir.c -- the FHIR resources an inbound message makes: an
 * Appointment from a SIU, a DiagnosticReport from an ORU, both based on the
 * ServiceRequest so the GP finds them with ?based-on=ServiceRequest/<id>.
 *
 * Promises: what is built is valid FHIR R4: an Appointment booked or marked
 * no-show has a start and an end (app-2, app-3: the end is start plus the
 * given duration, else RIS_DEFAULT_APPT_MINUTES) and at least one
 * participant; a DiagnosticReport has a status and a code, its text both as
 * conclusion and as a text/plain presentedForm (att-1: contentType given).
 * Times are written as UTC instants (see v2time.c for times without offset).
 */
#include "ris/ris_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define V2_0074 "http://terminology.hl7.org/CodeSystem/v2-0074"

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

int ris_set_instant(json_t *obj, const char *name, int64_t ms)
{
    char instant[GW_INSTANT_LEN];

    gw_time_instant(ms, instant);
    return json_object_set_new(obj, name, json_string(instant));
}

json_t *ris_concept_from_v2(const struct hl7_seg *seg, int field)
{
    const char *code = hl7_seg_get(seg, field, 0, 1, 1), *text = hl7_seg_get(seg, field, 0, 2, 1);
    const char *system = ris_fhir_system(hl7_seg_get(seg, field, 0, 3, 1));
    json_t *cc = json_object(), *coding;

    if (!cc || (!code && !text))
        goto fail;
    if (code) {
        coding = json_pack("{s:s}", "code", code);
        if (!coding || (system && json_object_set_new(coding, "system", json_string(system))) ||
            (text && json_object_set_new(coding, "display", json_string(text))) ||
            json_object_set_new(cc, "coding", json_pack("[o]", coding)))
            goto fail;
    }
    if (json_object_set_new(cc, "text", json_string(text ? text : code)))
        goto fail;
    return cc;
fail:
    json_decref(cc);
    return NULL;
}

/* The resource's id: the previous version's, else a new UUID. */
static json_t *new_resource(const char *type, json_t *previous)
{
    char id[GW_UUID_LEN];
    const char *old = str(previous, "id");

    if (!old && gw_uuid7(id, NULL) != GW_OK) /* time-ordered, as every new id */
        return NULL;
    return json_pack("{s:s, s:s}", "resourceType", type, "id", old ? old : id);
}

static const char *site_name(struct ris_plan *p, const struct ris_order_ref *o)
{
    const struct config_site *s = config_site_find(p->ris->cfg, o->row.site);

    return s && s->name ? s->name : o->row.site ? o->row.site : "the radiology practice";
}

/* The order's subject as a reference others can follow: a stored Patient,
 * else the contained patient's first identifier. New reference or NULL. */
static json_t *subject_of(json_t *sr)
{
    const char *ref = str(json_object_get(sr, "subject"), "reference");
    json_t *v;
    size_t i;

    if (ref && strncmp(ref, "Patient/", 8) == 0)
        return json_pack("{s:s}", "reference", ref);
    json_array_foreach (json_object_get(sr, "contained"), i, v) {
        json_t *ident = json_array_get(json_object_get(v, "identifier"), 0);

        if (ref && ref[0] == '#' && str(v, "id") && strcmp(str(v, "id"), ref + 1) == 0 && ident)
            return json_pack("{s:O}", "identifier", ident);
    }
    return NULL;
}

static int set_identifier(json_t *res, const char *prefix, const char *site, const char *value)
{
    char system[RIS_MAX_REF + 64];

    if (!value)
        return 0;
    snprintf(system, sizeof system, "%s%s", prefix, site ? site : "");
    return json_object_set_new(res, "identifier",
                               json_pack("[{s:s, s:s}]", "system", system, "value", value));
}

/* ------------------------------------------------------------ Appointment */

/* Minutes from a duration value and its units (ISO+ "min", "h", "s"; default minutes). */
static long minutes_of(const char *value, const char *units)
{
    long v;

    if (!value || !gw_parse_long(value, 0, 100000, &v))
        return 0;
    if (units && (strcmp(units, "h") == 0 || strcmp(units, "hr") == 0 || strcmp(units, "H") == 0))
        return v * 60;
    if (units && strcmp(units, "s") == 0)
        return v / 60;
    return v;
}

struct slot_times {
    const char *start_text, *end_text;
    const char *segment;
    int field;
    long minutes;
};

/* AIS-4 start and AIS-7/8 duration, else TQ1-7/8, else SCH-11.4/.5 with SCH-9/10. */
static void slot_times(const struct hl7_msg *msg, struct slot_times *t)
{
    const struct hl7_seg *ais = hl7_msg_find(msg, "AIS", 0), *tq1 = hl7_msg_find(msg, "TQ1", 0);
    const struct hl7_seg *sch = hl7_msg_find(msg, "SCH", 0);

    memset(t, 0, sizeof *t);
    if (ais && hl7_seg_field(ais, 4)) {
        *t = (struct slot_times){hl7_seg_field(ais, 4), NULL, "AIS", 4,
                                 minutes_of(hl7_seg_field(ais, 7), hl7_seg_field(ais, 8))};
    } else if (tq1 && hl7_seg_field(tq1, 7)) {
        *t = (struct slot_times){hl7_seg_field(tq1, 7), hl7_seg_field(tq1, 8), "TQ1", 7, 0};
    } else if (sch) {
        *t = (struct slot_times){hl7_seg_get(sch, 11, 0, 4, 1), hl7_seg_get(sch, 11, 0, 5, 1),
                                 "SCH", 11, 0};
    }
    if (sch && !t->minutes)
        t->minutes = minutes_of(hl7_seg_field(sch, 9), hl7_seg_get(sch, 10, 0, 1, 1));
}

/* Sets start, end and minutesDuration; refuses the plan when a time is bad
 * or a booked appointment has none. Returns -1 on OOM or refusal. */
static int appointment_times(struct ris_plan *p, json_t *app, const char *status)
{
    struct slot_times t;
    int64_t start, end;
    bool needed = strcmp(status, "cancelled") != 0;

    slot_times(p->msg, &t);
    if (!t.start_text) {
        if (needed)
            ris_plan_refuse(p, "AE", HL7_ERR_REQUIRED_FIELD, "AIS", 1, 4,
                            "the appointment has no start time (AIS-4, TQ1-7 or SCH-11.4)");
        return needed ? -1 : 0;
    }
    if (!ris_dtm_to_ms(t.start_text, &start) || (t.end_text && !ris_dtm_to_ms(t.end_text, &end))) {
        ris_plan_refuse(p, "AE", HL7_ERR_DATA_TYPE, t.segment, 1, t.field,
                        "the appointment time is not an HL7 date and time to the minute");
        return -1;
    }
    if (!t.end_text)
        end = start + (t.minutes > 0 ? t.minutes : RIS_DEFAULT_APPT_MINUTES) * 60000LL;
    if (end < start) {
        ris_plan_refuse(p, "AE", HL7_ERR_DATA_TYPE, t.segment, 1, t.field,
                        "the appointment ends before it starts");
        return -1;
    }
    if (ris_set_instant(app, "start", start) || ris_set_instant(app, "end", end))
        return -1;
    if ((end - start) / 60000 > 0 &&
        json_object_set_new(app, "minutesDuration", json_integer((end - start) / 60000)))
        return -1;
    return 0;
}

static int appointment_participants(struct ris_plan *p, const struct ris_order_ref *o, json_t *app)
{
    const char *ref = str(json_object_get(o->sr, "subject"), "reference");
    json_t *list = json_array();

    if (!list || json_object_set_new(app, "participant", list))
        return -1;
    if (ref && strncmp(ref, "Patient/", 8) == 0 &&
        json_array_append_new(list, json_pack("{s:{s:s}, s:s, s:s}", "actor", "reference", ref,
                                              "required", "required", "status", "accepted")))
        return -1;
    return json_array_append_new(list, json_pack("{s:{s:s, s:s}, s:s, s:s}", "actor", "type",
                                                 "Location", "display", site_name(p, o), "required",
                                                 "required", "status", "accepted"));
}

json_t *ris_appointment_build(struct ris_plan *p, const struct ris_order_ref *o, const char *status,
                              json_t *previous)
{
    const struct hl7_seg *sch = hl7_msg_find(p->msg, "SCH", 0);
    const struct hl7_seg *ais = hl7_msg_find(p->msg, "AIS", 0);
    const char *appt_id =
        hl7_seg_get(sch, 2, 0, 1, 1) ? hl7_seg_get(sch, 2, 0, 1, 1) : hl7_seg_get(sch, 1, 0, 1, 1);
    const char *what = ais ? hl7_seg_get(ais, 3, 0, 2, 1) : NULL;
    char based[RIS_MAX_REF];
    json_t *app = new_resource("Appointment", previous), *reason;

    snprintf(based, sizeof based, "ServiceRequest/%s", o->id);
    if (!app || json_object_set_new(app, "status", json_string(status)) ||
        set_identifier(app, RIS_APPOINTMENT_SYSTEM, o->row.site, appt_id))
        goto fail;
    if (strcmp(status, "cancelled") == 0 && (reason = ris_concept_from_v2(sch, 6)) &&
        json_object_set_new(app, "cancelationReason", reason))
        goto fail;
    if (!what)
        what = str(json_object_get(o->sr, "code"), "text");
    if (what && json_object_set_new(app, "description", json_string(what)))
        goto fail;
    if (appointment_times(p, app, status) ||
        json_object_set_new(app, "basedOn", json_pack("[{s:s}]", "reference", based)) ||
        appointment_participants(p, o, app))
        goto fail;
    return app;
fail:
    json_decref(app);
    return NULL;
}

/* ------------------------------------------------------------ DiagnosticReport */

static const char *report_status(const char *obr25)
{
    static const char *const map[][2] = {
        {"F", "final"},      {"C", "corrected"},       {"P", "preliminary"}, {"R", "preliminary"},
        {"I", "registered"}, {"O", "registered"},      {"S", "registered"},  {"A", "partial"},
        {"X", "cancelled"},  {"D", "entered-in-error"}};
    size_t i;

    for (i = 0; obr25 && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(obr25, map[i][0]) == 0)
            return map[i][1];
    return "final";
}

/* The text of the OBX TX/FT/ST values that follow obr (to the next OBR). */
static enum gw_code report_text(const struct hl7_msg *msg, const struct hl7_seg *obr,
                                struct gw_buf *b, struct gw_error *err)
{
    size_t i, n = hl7_msg_count_segments(msg);
    int r;

    for (i = hl7_seg_index(obr) + 1; i < n; i++) {
        const struct hl7_seg *s = hl7_msg_segment(msg, i);
        const char *vt = hl7_seg_field(s, 2);

        if (strcmp(hl7_seg_name(s), "OBR") == 0 || strcmp(hl7_seg_name(s), "ORC") == 0)
            break;
        if (strcmp(hl7_seg_name(s), "OBX") != 0 || !vt ||
            (strcmp(vt, "TX") && strcmp(vt, "FT") && strcmp(vt, "ST")))
            continue;
        for (r = 0; r < hl7_seg_count_reps(s, 5); r++) {
            const char *line = hl7_seg_get(s, 5, r, 1, 1);

            if (b->len)
                gw_buf_putc(b, '\n');
            gw_buf_puts(b, line ? line : "");
        }
    }
    return gw_buf_finish(b, "the report text", err);
}

static int report_text_members(json_t *dr, const char *text, size_t len)
{
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    int rc;

    if (!b64)
        return -1;
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text, (int)len);
    rc =
        json_object_set_new(dr, "conclusion", json_string(text)) ||
        json_object_set_new(dr, "presentedForm",
                            json_pack("[{s:s, s:s, s:s}]", "contentType",
                                      "text/plain; charset=utf-8", "data", b64, "title", "Report"));
    free(b64);
    return rc ? -1 : 0;
}

/* status, code, category, basedOn, subject, dates, identifier, performer. */
static int report_members(struct ris_plan *p, const struct ris_order_ref *o,
                          const struct hl7_seg *obr, json_t *dr)
{
    json_t *code = ris_concept_from_v2(obr, 4), *subject = subject_of(o->sr);
    const char *issued = hl7_seg_field(obr, 22) ? hl7_seg_field(obr, 22) : hl7_msg_time(p->msg);
    char based[RIS_MAX_REF];
    int64_t ms;

    snprintf(based, sizeof based, "ServiceRequest/%s", o->id);
    if (!code)
        code = json_pack("{s:s}", "text", "Imaging report");
    if (json_object_set_new(dr, "status", json_string(report_status(hl7_seg_field(obr, 25)))) ||
        json_object_set_new(dr, "category",
                            json_pack("[{s:[{s:s, s:s, s:s}]}]", "coding", "system", V2_0074,
                                      "code", "RAD", "display", "Radiology")) ||
        json_object_set_new(dr, "code", code) ||
        json_object_set_new(dr, "basedOn", json_pack("[{s:s}]", "reference", based)) ||
        (subject && json_object_set_new(dr, "subject", json_incref(subject))) ||
        set_identifier(dr, RIS_FILLER_SYSTEM, o->row.site, hl7_seg_get(obr, 3, 0, 1, 1)) ||
        json_object_set_new(dr, "performer", json_pack("[{s:s}]", "display", site_name(p, o)))) {
        json_decref(subject);
        return -1;
    }
    json_decref(subject);
    if (hl7_seg_field(obr, 7) && ris_dtm_to_ms(hl7_seg_field(obr, 7), &ms) &&
        ris_set_instant(dr, "effectiveDateTime", ms))
        return -1;
    if (!issued || !ris_dtm_to_ms(issued, &ms))
        ms = store_txn_now(p->txn);
    return ris_set_instant(dr, "issued", ms);
}

json_t *ris_report_build(struct ris_plan *p, const struct ris_order_ref *o,
                         const struct hl7_seg *obr, json_t *previous)
{
    json_t *dr = new_resource("DiagnosticReport", previous);
    struct gw_buf text;
    struct gw_error err;

    gw_buf_init(&text, RIS_MAX_REPORT_BYTES);
    if (!dr || report_members(p, o, obr, dr))
        goto fail;
    if (report_text(p->msg, obr, &text, &err) != GW_OK) {
        if (err.code == GW_E_LIMIT)
            ris_plan_refuse(p, "AE", HL7_ERR_INTERNAL, "OBX", 1, 5,
                            "the report text exceeds %d bytes", RIS_MAX_REPORT_BYTES);
        goto fail;
    }
    if (text.len && report_text_members(dr, text.data, text.len))
        goto fail;
    gw_buf_cleanup(&text);
    return dr;
fail:
    gw_buf_cleanup(&text);
    json_decref(dr);
    return NULL;
}
