/* order_fields.c -- the FHIR -> HL7 v2 field mappings an order is made of:
 * patient (PID), ordering provider (XCN with RPPS), the procedure chosen for
 * OBR-4, coding system names (table 0396), the study instance UID, dates.
 *
 * Promises: every value goes through the writer, so separators in names,
 * identifiers and notes are escaped; nothing here reads the store.
 */
#include "ris/ris_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define INS_NIR_OID        "1.2.250.1.213.1.4.8"
#define RPPS_OID           "1.2.250.1.71.4.2.1"
#define PRACTICE_V2_SYSTEM "99SPI" /* local coding system (table 0396 99zzz): our procedures */

/* ------------------------------------------------------------ coding systems */

static const struct {
    const char *fhir, *v2;
} systems[] = {
    {MAP_SYS_CCAM, "CCAM"},
    {MAP_SYS_CPT, "C4"},
    {MAP_SYS_ICD10, "I10"},
    {MAP_SYS_ICD10CM, "I10C"},
    {MAP_SYS_SNOMED, "SCT"},
    {MAP_SYS_LOINC, "LN"},
    {MAP_CS_PROCEDURE, PRACTICE_V2_SYSTEM},
};

const char *ris_v2_system(const char *fhir_system)
{
    const char *canon = map_system_canonical(fhir_system);
    size_t i;

    for (i = 0; canon && i < sizeof systems / sizeof systems[0]; i++)
        if (strcmp(canon, systems[i].fhir) == 0)
            return systems[i].v2;
    return "L";
}

const char *ris_fhir_system(const char *v2_system)
{
    size_t i;

    for (i = 0; v2_system && i < sizeof systems / sizeof systems[0]; i++)
        if (strcmp(v2_system, systems[i].v2) == 0)
            return systems[i].fhir;
    if (v2_system && (strcmp(v2_system, "SNM") == 0 || strcmp(v2_system, "SNOMED-CT") == 0))
        return MAP_SYS_SNOMED;
    if (v2_system && strcmp(v2_system, "ICD10") == 0)
        return MAP_SYS_ICD10;
    return NULL;
}

/* ------------------------------------------------------------ study UID */

/* The 16 bytes of a canonical UUID, or false. */
static bool uuid_bytes(const char *s, unsigned char out[16])
{
    size_t i, k = 0;

    if (strlen(s) != 36)
        return false;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            continue;
        }
        if (gw_hex_digit(s[i]) < 0)
            return false;
        if (k % 2 == 0)
            out[k / 2] = (unsigned char)(gw_hex_digit(s[i]) << 4);
        else
            out[k / 2] |= (unsigned char)gw_hex_digit(s[i]);
        k++;
    }
    return true;
}

/* Appends the decimal form of a 128-bit big-endian number (at most 39 digits). */
static void decimal128(const unsigned char in[16], char *out, size_t cap)
{
    unsigned char n[16];
    char digits[48];
    size_t nd = 0, i;
    bool zero;

    memcpy(n, in, 16);
    do {
        unsigned rem = 0;

        zero = true;
        for (i = 0; i < 16; i++) {
            unsigned cur = rem * 256 + n[i];

            n[i] = (unsigned char)(cur / 10);
            rem = cur % 10;
            if (n[i])
                zero = false;
        }
        digits[nd++] = (char)('0' + rem);
    } while (!zero && nd < sizeof digits);
    for (i = 0; i < nd && i + 1 < cap; i++)
        out[i] = digits[nd - 1 - i];
    out[i < cap ? i : cap - 1] = '\0';
}

void ris_study_uid(const char *sr_id, char out[RIS_UID_LEN])
{
    unsigned char b[16];
    char hex[65];
    size_t i;

    if (!uuid_bytes(sr_id, b)) { /* a name-based UUID (version 5 layout) from SHA-256 */
        gw_sha256_hex(sr_id, strlen(sr_id), hex);
        for (i = 0; i < 16; i++)
            b[i] = (unsigned char)(gw_hex_digit(hex[2 * i]) << 4 | gw_hex_digit(hex[2 * i + 1]));
        b[6] = (unsigned char)((b[6] & 0x0F) | 0x50);
        b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    }
    memcpy(out, "2.25.", 5);
    decimal128(b, out + 5, RIS_UID_LEN - 5);
}

/* ------------------------------------------------------------ procedure */

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The coding of concept in a system of rank (CCAM, CPT, practice, other). */
static json_t *preferred_coding(json_t *concept)
{
    static const char *const order[] = {MAP_SYS_CCAM, MAP_SYS_CPT, MAP_CS_PROCEDURE};
    json_t *c;
    size_t i, k;

    for (k = 0; k < sizeof order / sizeof order[0]; k++)
        json_array_foreach (json_object_get(concept, "coding"), i, c) {
            const char *canon = map_system_canonical(str(c, "system"));

            if (canon && str(c, "code") && strcmp(canon, order[k]) == 0)
                return c;
        }
    json_array_foreach (json_object_get(concept, "coding"), i, c)
        if (str(c, "code"))
            return c;
    return NULL;
}

void ris_order_procedure(const struct ris_referral *r, json_t *prior, struct ris_code *out)
{
    const struct map_decision *d = r->decision;
    json_t *concept = json_object_get(r->service_request, "code"), *c;

    memset(out, 0, sizeof *out);
    if (d && !d->is_unmapped) {
        const struct map_coding *pick = d->ccam.code  ? &d->ccam
                                        : d->cpt.code ? &d->cpt
                                                      : &d->procedure;

        if (pick->code) {
            *out = (struct ris_code){pick->code, pick->display, ris_v2_system(pick->system)};
            return;
        }
    }
    if (!concept && prior)
    concept = json_object_get(prior, "code");
    c = preferred_coding(concept);
    if (c) {
        *out =
            (struct ris_code){str(c, "code"), str(c, "display"), ris_v2_system(str(c, "system"))};
        if (!out->text)
            out->text = str(concept, "text");
        return;
    }
    out->text = ris_indication_text(r);
}

const char *ris_indication_text(const struct ris_referral *r)
{
    json_t *reason = json_array_get(json_object_get(r->service_request, "reasonCode"), 0);
    json_t *coding = json_array_get(json_object_get(reason, "coding"), 0);
    size_t i;

    if (str(reason, "text"))
        return str(reason, "text");
    if (str(coding, "display"))
        return str(coding, "display");
    for (i = 0; i < r->n_conditions; i++) {
        json_t *code = json_object_get(r->conditions[i], "code");

        if (str(code, "text"))
            return str(code, "text");
        if (str(json_array_get(json_object_get(code, "coding"), 0), "display"))
            return str(json_array_get(json_object_get(code, "coding"), 0), "display");
    }
    return str(coding, "code");
}

/* True when a coding of concept is guidance "ct". */
static bool asks_ct(json_t *concept)
{
    json_t *c;
    size_t i;

    json_array_foreach (json_object_get(concept, "coding"), i, c) {
        if (str(c, "system") && strcmp(str(c, "system"), MAP_CS_GUIDANCE) == 0 && str(c, "code") &&
            strcmp(str(c, "code"), "ct") == 0)
            return true;
    }
    return false;
}

const char *ris_order_modality(const struct ris_referral *r, const struct ris_code *proc)
{
    json_t *v;
    size_t i;

    if (asks_ct(json_object_get(r->service_request, "code")))
        return "CT";
    json_array_foreach (json_object_get(r->service_request, "orderDetail"), i, v)
        if (asks_ct(v))
            return "CT";
    /* CCAM names the CT-guided acts "... avec guidage scanographique". */
    if (proc->text && strstr(proc->text, "scanograph"))
        return "CT";
    return "XA";
}

/* ------------------------------------------------------------ patient */

static const char *identifier_type(json_t *ident, const char *fallback)
{
    json_t *c;
    size_t i;

    json_array_foreach (json_object_get(json_object_get(ident, "type"), "coding"), i, c) {
        if (str(c, "system") && strcmp(str(c, "system"), RIS_V2_0203) == 0 && str(c, "code"))
            return str(c, "code");
    }
    return fallback;
}

/* One CX repetition: value^^^namespace&universal id&type^identifier type. */
static void write_cx(struct hl7_writer *w, int field, int rep, json_t *ident)
{
    const char *system = str(ident, "system"), *value = str(ident, "value");

    if (!value)
        return;
    hl7_writer_put(w, field, rep, 1, 1, value);
    if (system && strcmp(system, FHIR_INS_NIR_SYSTEM) == 0) {
        hl7_writer_put(w, field, rep, 4, 1, "INS-NIR");
        hl7_writer_put(w, field, rep, 4, 2, INS_NIR_OID);
        hl7_writer_put(w, field, rep, 4, 3, "ISO");
        hl7_writer_put(w, field, rep, 5, 1, "INS");
        return;
    }
    if (system && strncmp(system, "urn:oid:", 8) == 0) {
        hl7_writer_put(w, field, rep, 4, 2, system + 8);
        hl7_writer_put(w, field, rep, 4, 3, "ISO");
    } else if (system) {
        hl7_writer_put(w, field, rep, 4, 2, system);
        hl7_writer_put(w, field, rep, 4, 3, "URI");
    }
    hl7_writer_put(w, field, rep, 5, 1, identifier_type(ident, "PI"));
}

static const char *name_type(const char *use)
{
    static const char *const map[][2] = {
        {"official", "L"}, {"usual", "D"}, {"maiden", "M"}, {"nickname", "N"}, {"anonymous", "S"}};
    size_t i;

    for (i = 0; use && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(use, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

/* XPN: family^first given^further given names^suffix^prefix^^type. */
static enum gw_code write_xpn(struct hl7_writer *w, int field, int rep, json_t *name,
                              struct gw_error *err)
{
    json_t *given = json_object_get(name, "given");
    struct gw_buf more;
    size_t i;
    enum gw_code rc;

    hl7_writer_put(w, field, rep, 1, 1, str(name, "family"));
    hl7_writer_put(w, field, rep, 2, 1, json_string_value(json_array_get(given, 0)));
    gw_buf_init(&more, RIS_MAX_ORDER_BYTES);
    for (i = 1; i < json_array_size(given); i++) {
        if (i > 1)
            gw_buf_putc(&more, ' ');
        gw_buf_puts(&more, json_string_value(json_array_get(given, i)));
    }
    rc = gw_buf_finish(&more, "the given names", err);
    if (!rc && more.len)
        hl7_writer_put(w, field, rep, 3, 1, more.data);
    gw_buf_cleanup(&more);
    hl7_writer_put(w, field, rep, 4, 1,
                   json_string_value(json_array_get(json_object_get(name, "suffix"), 0)));
    hl7_writer_put(w, field, rep, 5, 1,
                   json_string_value(json_array_get(json_object_get(name, "prefix"), 0)));
    hl7_writer_put(w, field, rep, 7, 1, name_type(str(name, "use")));
    return rc;
}

static const char *v2_sex(const char *gender)
{
    if (!gender)
        return NULL;
    if (strcmp(gender, "male") == 0)
        return "M";
    if (strcmp(gender, "female") == 0)
        return "F";
    if (strcmp(gender, "other") == 0)
        return "O";
    return "U";
}

enum gw_code ris_write_patient(struct hl7_writer *w, json_t *patient, json_t *service_request,
                               struct gw_error *err)
{
    const char *subject = str(json_object_get(service_request, "subject"), "reference");
    json_t *v, *addr = json_array_get(json_object_get(patient, "address"), 0);
    char date[GW_HL7_TS_LEN];
    size_t i;
    int rep = 0;
    enum gw_code rc;

    hl7_writer_segment(w, "PID");
    hl7_writer_field(w, 1, "1");
    json_array_foreach (json_object_get(patient, "identifier"), i, v) {
        if (str(v, "value"))
            write_cx(w, 3, rep++, v);
    }
    if (subject && strncmp(subject, "Patient/", 8) == 0 && ris_is_fhir_id(subject + 8)) {
        hl7_writer_put(w, 3, rep, 1, 1, subject + 8);
        hl7_writer_put(w, 3, rep, 4, 1, RIS_PLACER_NAMESPACE);
        hl7_writer_put(w, 3, rep, 5, 1, "PI");
    }
    json_array_foreach (json_object_get(patient, "name"), i, v) {
        rc = write_xpn(w, 5, (int)i, v, err);
        if (rc)
            return rc;
    }
    if (ris_fhir_to_dtm(str(patient, "birthDate"), date))
        hl7_writer_field(w, 7, date);
    hl7_writer_field(w, 8, v2_sex(str(patient, "gender")));
    if (addr) {
        hl7_writer_put(w, 11, 0, 1, 1,
                       json_string_value(json_array_get(json_object_get(addr, "line"), 0)));
        hl7_writer_put(w, 11, 0, 2, 1,
                       json_string_value(json_array_get(json_object_get(addr, "line"), 1)));
        hl7_writer_put(w, 11, 0, 3, 1, str(addr, "city"));
        hl7_writer_put(w, 11, 0, 4, 1, str(addr, "state"));
        hl7_writer_put(w, 11, 0, 5, 1, str(addr, "postalCode"));
        hl7_writer_put(w, 11, 0, 6, 1, str(addr, "country"));
    }
    return GW_OK;
}

/* ------------------------------------------------------------ provider */

static const char *rpps_of(json_t *identifiers)
{
    json_t *v;
    size_t i;

    json_array_foreach (identifiers, i, v) {
        if (str(v, "system") && strcmp(str(v, "system"), FHIR_RPPS_SYSTEM) == 0 && str(v, "value"))
            return str(v, "value");
    }
    if (json_is_object(identifiers)) /* a logical reference's single identifier */
        if (str(identifiers, "system") && strcmp(str(identifiers, "system"), FHIR_RPPS_SYSTEM) == 0)
            return str(identifiers, "value");
    return NULL;
}

void ris_write_provider(struct hl7_writer *w, int field, json_t *requester, json_t *service_request)
{
    json_t *ref = json_object_get(service_request, "requester");
    json_t *name = json_array_get(json_object_get(requester, "name"), 0);
    json_t *pract = json_object_get(requester, "practitioner");
    const char *rpps = rpps_of(json_object_get(requester, "identifier"));
    const char *family = str(name, "family");

    if (!rpps)
        rpps = rpps_of(json_object_get(pract, "identifier"));
    if (!rpps)
        rpps = rpps_of(json_object_get(ref, "identifier"));
    if (!family)
        family = str(pract, "display") ? str(pract, "display") : str(ref, "display");
    hl7_writer_put(w, field, 0, 1, 1, rpps);
    hl7_writer_put(w, field, 0, 2, 1, family);
    hl7_writer_put(w, field, 0, 3, 1,
                   json_string_value(json_array_get(json_object_get(name, "given"), 0)));
    if (rpps) {
        hl7_writer_put(w, field, 0, 9, 1, "RPPS");
        hl7_writer_put(w, field, 0, 9, 2, RPPS_OID);
        hl7_writer_put(w, field, 0, 9, 3, "ISO");
    }
}
