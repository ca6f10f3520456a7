/* order.c -- a referral becomes an HL7 v2 order in the outbox, in the same
 * commit as the referral (DESIGN §1).
 *
 * OMI^O23 (v2.5.1, IHE Radiology Scheduled Workflow), the default:
 *   MSH PID PV1 ORC TQ1 OBR {NTE} {DG1} IPC
 * ORM^O01 (v2.3.1, for older RISes; no TQ1 or IPC in that version):
 *   MSH PID PV1 ORC OBR {NTE} {DG1} ZDS
 * ORC-1 is NW (new), XO (amended) or CA (revoked). Placer order number
 * (ORC-2, OBR-2, IPC-1 accession) = <ServiceRequest id>^FHIRGW; the filler
 * number (ORC-3, OBR-3) once the RIS gave one. Priority: TQ1-9 in OMI, the
 * sixth component of ORC-7/OBR-27 (TQ) in ORM. Body site and laterality:
 * OBR-15 specimen source as v2.5.1 keeps it for body sites (SPS-4 body
 * site, SNOMED CT; SPS-5 site modifier, table 0495 L/R/B), in both forms.
 * ORC-5 (order status) belongs to the filler: empty on NW and XO, CA on a
 * cancel request. OBR-31 and DG1 carry the ICD-10 and SNOMED CT indications
 * (DG1-3 coding system I10, I10C or SCT); NTE the triage flags, the GP's
 * notes and the patient instructions. A new or changed order always names
 * its procedure in OBR-4: without one it is refused (the referral waits in
 * the practice's triage instead). IPC-1 accession
 * = the placer id, IPC-2 / IPC-4 requested procedure and step ids "RP" / "SP"
 * + 14 hex digits of a SHA-256 of the id (DICOM SH, 16 characters), IPC-3 the
 * study UID 2.25.<decimal of a UUID>, IPC-5 XA or CT (in ORM: OBR-18/19/20/24
 * and ZDS-1, as IHE did before v2.5). MSH-10 is "GW" + 18 hex digits, kept
 * across redeliveries; MSH-15/16 stay empty (original acknowledgment mode:
 * the RIS answers AA, AE or AR); MSH-18 is UNICODE UTF-8 in both forms.
 */
#include "ris/ris_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RIS_MAX_DIAGNOSES 32 /* DG1 segments (ICD-10, SNOMED CT indications) in one order */

struct order {
    const struct ris_referral *r;
    enum ris_order_kind kind;
    json_t *prior;
    bool omi;
    const char *sr_id;
    struct ris_code proc;
    const char *filler, *filler_ns;
    const char *modality;
    char uid[RIS_UID_LEN];
    char rp_id[24], sps_id[24];
    char now[GW_HL7_TS_LEN], start[GW_HL7_TS_LEN];
    struct ris_code icd[RIS_MAX_DIAGNOSES];
    size_t n_icd;
};

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ------------------------------------------------------------ gathering */

static bool is_filler_identifier(json_t *ident)
{
    json_t *c;
    size_t i;

    json_array_foreach (json_object_get(json_object_get(ident, "type"), "coding"), i, c) {
        if (str(c, "code") && strcmp(str(c, "code"), "FILL") == 0)
            return true;
    }
    return false;
}

static void find_filler(struct order *o, json_t *sr)
{
    json_t *v;
    size_t i;

    json_array_foreach (json_object_get(sr, "identifier"), i, v) {
        if (is_filler_identifier(v) && str(v, "value")) {
            o->filler = str(v, "value");
            o->filler_ns = str(json_object_get(v, "assigner"), "display");
            return;
        }
    }
}

static bool is_diagnosis_system(const char *canon)
{
    return canon && (strcmp(canon, MAP_SYS_ICD10) == 0 || strcmp(canon, MAP_SYS_ICD10CM) == 0 ||
                     strcmp(canon, MAP_SYS_SNOMED) == 0);
}

/* The indication codings of concept (ICD-10, ICD-10-CM, SNOMED CT) for OBR-31 and DG1-3. */
static void add_icd(struct order *o, json_t *concept)
{
    json_t *c;
    size_t i, k;

    json_array_foreach (json_object_get(concept, "coding"), i, c) {
        const char *canon = map_system_canonical(str(c, "system")), *code = str(c, "code");

        if (!code || !is_diagnosis_system(canon))
            continue;
        for (k = 0; k < o->n_icd; k++)
            if (strcmp(o->icd[k].code, code) == 0)
                break;
        if (k == o->n_icd && o->n_icd < RIS_MAX_DIAGNOSES)
            o->icd[o->n_icd++] = (struct ris_code){code, str(c, "display"), ris_v2_system(canon)};
    }
}

/* "RP" / "SP" and 14 hex digits from the SHA-256 of the id: DICOM SH (16). */
static void derived_id(const char *prefix, const char *sr_id, char out[24])
{
    char hex[65], text[RIS_MAX_ID + 8];

    snprintf(text, sizeof text, "%s:%s", prefix, sr_id);
    gw_sha256_hex(text, strlen(text), hex);
    snprintf(out, 24, "%s%.14s", prefix, hex);
}

static void gather(struct order *o, int64_t now_ms)
{
    json_t *sr = o->r->service_request, *v, *occ;
    size_t i;

    o->omi = !o->r->site->message_type || strcmp(o->r->site->message_type, "ORM^O01") != 0;
    o->sr_id = str(sr, "id");
    ris_order_procedure(o->r, o->prior, &o->proc);
    find_filler(o, sr);
    if (!o->filler && o->prior)
        find_filler(o, o->prior);
    o->modality = ris_order_modality(o->r, &o->proc);
    ris_study_uid(o->sr_id, o->uid);
    derived_id("RP", o->sr_id, o->rp_id);
    derived_id("SP", o->sr_id, o->sps_id);
    gw_time_hl7(now_ms, o->now);
    occ = json_object_get(sr, "occurrencePeriod");
    if (!ris_fhir_to_dtm(str(sr, "occurrenceDateTime"), o->start) &&
        !ris_fhir_to_dtm(str(occ, "start"), o->start))
        o->start[0] = '\0';
    json_array_foreach (json_object_get(sr, "reasonCode"), i, v)
        add_icd(o, v);
    for (i = 0; i < o->r->n_conditions; i++)
        add_icd(o, json_object_get(o->r->conditions[i], "code"));
}

/* ------------------------------------------------------------ segments */

static const char *priority_code(json_t *sr, const char **text)
{
    const char *p = str(sr, "priority");

    *text = "Routine";
    if (p && strcmp(p, "stat") == 0) {
        *text = "Stat";
        return "S";
    }
    if (p && (strcmp(p, "asap") == 0 || strcmp(p, "urgent") == 0)) {
        *text = "ASAP";
        return "A";
    }
    return "R";
}

static void write_msh(struct hl7_writer *w, const struct order *o, const char *control_id)
{
    const struct config_site *s = o->r->site;
    struct hl7_header h = {.sending_app = s->sending_app,
                           .sending_facility = s->sending_facility,
                           .receiving_app = s->receiving_app,
                           .receiving_facility = s->receiving_facility,
                           .time = o->now,
                           .type = o->omi ? "OMI" : "ORM",
                           .trigger = o->omi ? "O23" : "O01",
                           .structure = o->omi ? "OMI_O23" : "ORM_O01",
                           .control_id = control_id,
                           .processing_id = "P",
                           .version = o->omi ? "2.5.1" : "2.3.1",
                           .charset = "UNICODE UTF-8"};

    hl7_writer_msh(w, &h);
}

static void write_ei(struct hl7_writer *w, int field, const char *id, const char *ns)
{
    hl7_writer_put(w, field, 0, 1, 1, id);
    hl7_writer_put(w, field, 0, 2, 1, ns);
}

/* TQ (ORC-7 / OBR-27 in v2.3.1): ^^^start^^priority. */
static void write_tq(struct hl7_writer *w, int field, const struct order *o)
{
    const char *text, *prio = priority_code(o->r->service_request, &text);

    hl7_writer_put(w, field, 0, 4, 1, o->start);
    hl7_writer_put(w, field, 0, 6, 1, prio);
}

static void write_orc(struct hl7_writer *w, const struct order *o)
{
    static const char *const controls[] = {"NW", "XO", "CA"};

    hl7_writer_segment(w, "ORC");
    hl7_writer_field(w, 1, controls[o->kind]);
    write_ei(w, 2, o->sr_id, RIS_PLACER_NAMESPACE);
    write_ei(w, 3, o->filler, o->filler_ns);
    if (o->kind == RIS_ORDER_CANCEL)
        hl7_writer_field(w, 5, "CA");
    if (!o->omi)
        write_tq(w, 7, o);
    hl7_writer_field(w, 9, o->now);
    ris_write_provider(w, 12, o->r->requester, o->r->service_request);
}

static void write_tq1(struct hl7_writer *w, const struct order *o)
{
    const char *text, *prio = priority_code(o->r->service_request, &text);

    hl7_writer_segment(w, "TQ1");
    hl7_writer_field(w, 1, "1");
    hl7_writer_field(w, 7, o->start);
    hl7_writer_put(w, 9, 0, 1, 1, prio);
    hl7_writer_put(w, 9, 0, 2, 1, text);
    hl7_writer_put(w, 9, 0, 3, 1, "HL70485");
}

static const struct {
    enum map_region region;
    const char *code, *display;
} regions[] = {
    {MAP_REGION_CERVICAL, "122494005", "Cervical spine structure"},
    {MAP_REGION_THORACIC, "122495006", "Thoracic spine structure"},
    {MAP_REGION_LUMBAR, "122496007", "Lumbar spine structure"},
    {MAP_REGION_SACRAL, "54735007", "Sacrum structure"},
};

static const struct {
    enum map_laterality lat;
    const char *snomed, *code, *display;
} sides[] = {
    {MAP_LAT_LEFT, "7771000", "L", "Left"},
    {MAP_LAT_RIGHT, "24028007", "R", "Right"},
    {MAP_LAT_BILATERAL, "51440002", "B", "Bilateral"},
};

/* Region and laterality: the mapping's, else the SNOMED CT bodySite codes. */
static void body_site(const struct order *o, enum map_region *region, enum map_laterality *lat)
{
    json_t *site, *c;
    size_t i, k, n;

    *region = o->r->decision ? o->r->decision->region : MAP_REGION_NONE;
    *lat = o->r->decision ? o->r->decision->laterality : MAP_LAT_NONE;
    json_array_foreach (json_object_get(o->r->service_request, "bodySite"), i, site) {
        json_array_foreach (json_object_get(site, "coding"), n, c) {
            const char *code = str(c, "code");

            if (!code || !str(c, "system") || strcmp(str(c, "system"), MAP_SYS_SNOMED))
                continue;
            for (k = 0; *region == MAP_REGION_NONE && k < sizeof regions / sizeof *regions; k++)
                if (strcmp(code, regions[k].code) == 0)
                    *region = regions[k].region;
            for (k = 0; *lat == MAP_LAT_NONE && k < sizeof sides / sizeof *sides; k++)
                if (strcmp(code, sides[k].snomed) == 0)
                    *lat = sides[k].lat;
        }
    }
}

/* OBR-15 SPS: ^^^<site code&text&SCT>^<modifier code&text&HL70495>. */
static void write_body_site(struct hl7_writer *w, const struct order *o)
{
    enum map_region region;
    enum map_laterality lat;
    size_t k;

    body_site(o, &region, &lat);
    for (k = 0; k < sizeof regions / sizeof *regions; k++)
        if (regions[k].region == region) {
            hl7_writer_put(w, 15, 0, 4, 1, regions[k].code);
            hl7_writer_put(w, 15, 0, 4, 2, regions[k].display);
            hl7_writer_put(w, 15, 0, 4, 3, "SCT");
        }
    for (k = 0; k < sizeof sides / sizeof *sides; k++)
        if (sides[k].lat == lat) {
            hl7_writer_put(w, 15, 0, 5, 1, sides[k].code);
            hl7_writer_put(w, 15, 0, 5, 2, sides[k].display);
            hl7_writer_put(w, 15, 0, 5, 3, "HL70495");
        }
}

static void write_obr(struct hl7_writer *w, const struct order *o)
{
    const char *indication = ris_indication_text(o->r);
    size_t i;

    hl7_writer_segment(w, "OBR");
    hl7_writer_field(w, 1, "1");
    write_ei(w, 2, o->sr_id, RIS_PLACER_NAMESPACE);
    write_ei(w, 3, o->filler, o->filler_ns);
    hl7_writer_put(w, 4, 0, 1, 1, o->proc.code);
    hl7_writer_put(w, 4, 0, 2, 1, o->proc.text);
    hl7_writer_put(w, 4, 0, 3, 1, o->proc.code ? o->proc.system : NULL);
    hl7_writer_field(w, 13, indication);
    write_body_site(w, o);
    ris_write_provider(w, 16, o->r->requester, o->r->service_request);
    if (!o->omi) { /* IHE RAD-2 in v2.3.1: accession, requested procedure, step, modality */
        hl7_writer_field(w, 18, o->sr_id);
        hl7_writer_field(w, 19, o->rp_id);
        hl7_writer_field(w, 20, o->sps_id);
        hl7_writer_field(w, 24, o->modality);
        write_tq(w, 27, o);
    }
    for (i = 0; i < o->n_icd; i++) {
        hl7_writer_put(w, 31, (int)i, 1, 1, o->icd[i].code);
        hl7_writer_put(w, 31, (int)i, 2, 1, o->icd[i].text);
        hl7_writer_put(w, 31, (int)i, 3, 1, o->icd[i].system);
    }
    if (o->n_icd == 0)
        hl7_writer_put(w, 31, 0, 2, 1, indication);
}

static void write_nte(struct hl7_writer *w, int *n, const char *type, const char *text)
{
    if (!text || !*text)
        return;
    hl7_writer_segment(w, "NTE");
    hl7_writer_field_int(w, 1, ++*n);
    hl7_writer_field(w, 2, "P");
    hl7_writer_field(w, 3, text);
    hl7_writer_field(w, 4, type);
}

/* Triage flags (the practice's message and why), the GP's notes, and the
 * patient instructions, one NTE each. */
static enum gw_code write_notes(struct hl7_writer *w, const struct order *o, struct gw_error *err)
{
    const struct map_decision *d = o->r->decision;
    json_t *note;
    size_t i;
    int n = 0;
    enum gw_code rc;

    if (d && d->is_chosen_by_practice)
        write_nte(w, &n, "RE", "PROCEDURE: chosen by the practice at triage");
    for (i = 0; d && i < d->n_flags; i++) {
        struct gw_buf b;

        gw_buf_init(&b, RIS_MAX_ORDER_BYTES);
        gw_buf_printf(&b, "TRIAGE %s: %s",
                      d->flags[i].display ? d->flags[i].display : d->flags[i].code,
                      d->flags[i].message ? d->flags[i].message : "");
        if (d->flags[i].why)
            gw_buf_printf(&b, " (%s)", d->flags[i].why);
        rc = gw_buf_finish(&b, "a triage note", err);
        if (rc) {
            gw_buf_cleanup(&b);
            return rc;
        }
        write_nte(w, &n, "RE", b.data);
        gw_buf_cleanup(&b);
    }
    json_array_foreach (json_object_get(o->r->service_request, "note"), i, note)
        write_nte(w, &n, "RE", str(note, "text"));
    write_nte(w, &n, "PI", str(o->r->service_request, "patientInstruction"));
    return GW_OK;
}

static void write_dg1(struct hl7_writer *w, const struct order *o)
{
    size_t i;

    for (i = 0; i < o->n_icd; i++) {
        hl7_writer_segment(w, "DG1");
        hl7_writer_field_int(w, 1, (long)i + 1);
        if (!o->omi)
            hl7_writer_field(w, 2, o->icd[i].system); /* coding method, still used in 2.3.1 */
        hl7_writer_put(w, 3, 0, 1, 1, o->icd[i].code);
        hl7_writer_put(w, 3, 0, 2, 1, o->icd[i].text);
        hl7_writer_put(w, 3, 0, 3, 1, o->icd[i].system);
        hl7_writer_field(w, 6, "W");
    }
}

static void write_ipc(struct hl7_writer *w, const struct order *o)
{
    if (!o->omi) { /* IHE ZDS: the study instance UID in v2.3.1 orders */
        hl7_writer_segment(w, "ZDS");
        hl7_writer_put(w, 1, 0, 1, 1, o->uid);
        hl7_writer_put(w, 1, 0, 2, 1, RIS_PLACER_NAMESPACE);
        hl7_writer_put(w, 1, 0, 3, 1, "Application");
        hl7_writer_put(w, 1, 0, 4, 1, "DICOM");
        return;
    }
    hl7_writer_segment(w, "IPC");
    write_ei(w, 1, o->sr_id, RIS_PLACER_NAMESPACE);
    hl7_writer_field(w, 2, o->rp_id);
    hl7_writer_field(w, 3, o->uid);
    hl7_writer_field(w, 4, o->sps_id);
    hl7_writer_field(w, 5, o->modality);
}

enum gw_code ris_order_build(const struct ris_referral *r, enum ris_order_kind kind,
                             const char *control_id, int64_t now_ms, json_t *prior, char **out,
                             size_t *out_len, struct gw_error *err)
{
    struct order o;
    struct hl7_writer w;
    enum gw_code rc;

    *out = NULL;
    *out_len = 0;
    memset(&o, 0, sizeof o);
    o.r = r;
    o.kind = kind;
    o.prior = prior;
    if (!r->site || !ris_is_fhir_id(str(r->service_request, "id")))
        return gw_fail(err, GW_E_INTERNAL, "an order needs a site and a stored ServiceRequest");
    gather(&o, now_ms);
    if (!o.proc.code && kind != RIS_ORDER_CANCEL)
        return gw_fail(err, GW_E_INPUT,
                       "ServiceRequest/%s names no procedure for OBR-4: no order is sent until "
                       "the practice chooses one",
                       o.sr_id);
    hl7_writer_init(&w, RIS_MAX_ORDER_BYTES);
    write_msh(&w, &o, control_id);
    rc = ris_write_patient(&w, r->patient, r->service_request, err);
    hl7_writer_segment(&w, "PV1");
    hl7_writer_field(&w, 1, "1");
    hl7_writer_field(&w, 2, "O");
    write_orc(&w, &o);
    if (o.omi)
        write_tq1(&w, &o);
    write_obr(&w, &o);
    if (!rc)
        rc = write_notes(&w, &o, err);
    write_dg1(&w, &o);
    write_ipc(&w, &o);
    if (!rc)
        rc = hl7_writer_finish(&w, out, out_len, err);
    hl7_writer_cleanup(&w);
    return rc;
}

/* ------------------------------------------------------------ enqueue */

/* A resource the ServiceRequest refers to at element: contained ("#id", in
 * the ServiceRequest or in prior) or stored ("Type/id") and owned by owner,
 * as a read by the referral's organisation would see it. New reference or NULL. */
static json_t *resolve(struct store_txn *txn, json_t *sr, json_t *prior, const char *element,
                       const char *owner)
{
    const char *ref = str(json_object_get(sr, element), "reference");
    struct store_resource row;
    json_t *v, *found = NULL;
    size_t i, k;
    char type[64];
    const char *slash;

    if (!ref)
        return NULL;
    if (ref[0] == '#') {
        json_t *holders[2] = {sr, prior};

        for (k = 0; k < 2 && !found; k++)
            json_array_foreach (json_object_get(holders[k], "contained"), i, v) {
                if (str(v, "id") && strcmp(str(v, "id"), ref + 1) == 0)
                    return json_incref(v);
            }
        return NULL;
    }
    slash = strchr(ref, '/');
    if (!slash || (size_t)(slash - ref) >= sizeof type || !ris_is_fhir_id(slash + 1))
        return NULL;
    snprintf(type, sizeof type, "%.*s", (int)(slash - ref), ref);
    if (!owner || store_txn_read(txn, type, slash + 1, 0, &row, NULL) != GW_OK)
        return NULL;
    if (!row.deleted && row.owner && strcmp(row.owner, owner) == 0)
        found = gw_json_loads(row.json, 0, NULL);
    store_resource_cleanup(&row);
    return found;
}

/* The version before the current one of an amended or revoked referral. */
static json_t *load_prior(struct store_txn *txn, json_t *sr)
{
    long version = 0;
    struct store_resource row;
    json_t *prior = NULL;

    if (!gw_parse_long(str(json_object_get(sr, "meta"), "versionId"), 2, 1L << 40, &version))
        return NULL;
    if (store_txn_read(txn, "ServiceRequest", str(sr, "id"), version - 1, &row, NULL) != GW_OK)
        return NULL;
    if (!row.deleted)
        prior = gw_json_loads(row.json, 0, NULL);
    store_resource_cleanup(&row);
    return prior;
}

enum gw_code ris_order_enqueue(struct ris *ris, struct store_txn *txn, const struct ris_referral *r,
                               enum ris_order_kind kind, char *control_id, struct gw_error *err)
{
    static const char *const kinds[] = {"order", "change", "cancel"};
    struct ris_referral view = *r;
    json_t *prior = NULL, *patient = NULL, *requester = NULL;
    char id[RIS_MAX_CONTROL_ID];
    char *msg = NULL;
    size_t len = 0;
    enum gw_code rc;

    if (!r->site || !ris_is_fhir_id(str(r->service_request, "id")))
        return gw_fail(err, GW_E_INTERNAL, "an order needs a site and a stored ServiceRequest");
    if (kind != RIS_ORDER_NEW)
        prior = load_prior(txn, r->service_request);
    if (!view.patient)
        view.patient = patient = resolve(txn, r->service_request, prior, "subject", r->owner);
    if (!view.requester)
        view.requester = requester = resolve(txn, r->service_request, prior, "requester", r->owner);
    rc = ris_control_id(id, err);
    if (!rc)
        rc = ris_order_build(&view, kind, id, store_txn_now(txn), prior, &msg, &len, err);
    if (!rc) {
        struct store_outbox_new m = {
            id,  r->site->id, kinds[kind], "ServiceRequest", str(r->service_request, "id"),
            msg, len};

        rc = store_txn_outbox_add(txn, &m, err);
    }
    if (!rc && control_id)
        snprintf(control_id, RIS_MAX_CONTROL_ID, "%s", id);
    if (!rc && ris && r->site->delivery && strcmp(r->site->delivery, "push") == 0)
        ris_wake(ris); /* before the commit: the worker also polls (RIS_PUSH_POLL_MS) */
    free(msg);
    json_decref(prior);
    json_decref(patient);
    json_decref(requester);
    return rc;
}
