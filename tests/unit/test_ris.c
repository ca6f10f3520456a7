/* test_ris.c -- the RIS side: orders built from referrals (OMI^O23, ORM^O01)
 * read back field by field, escapes and accents, cancel and change, times,
 * and on a temporary store: the outbox in the referral's commit, pulls with
 * leases and their expiry, ACKs and dead letters on the Task, inbound status,
 * appointments and reports (valid FHIR), unknown orders and duplicates. */
#include "check.h"
#include "ris/ris_int.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fhir/fhir.h"

static char dir[] = "/tmp/gw-ris-XXXXXX";
static int n_db;
static char store_url[200];
static struct config cfg;
static struct config_site test_sites[2];

/* ------------------------------------------------------------ fixtures */

static void setup_config(void)
{
    static char *ris_sites[] = {"bachaumont", "drouot"};

    memset(&cfg, 0, sizeof cfg);
    test_sites[0] = (struct config_site){"bachaumont",
                                         "Bachaumont Radiology",
                                         "urn:oid:1.2.250.1.71.4.2.2",
                                         "750000102",
                                         NULL,
                                         "FHIRGW",
                                         "FHIRGW",
                                         "RIS",
                                         "BACHAUMONT",
                                         "OMI^O23",
                                         "pull",
                                         NULL,
                                         0};
    test_sites[1] = (struct config_site){"drouot",
                                         "Clinique Drouot",
                                         "urn:oid:1.2.250.1.71.4.2.2",
                                         "750000109",
                                         NULL,
                                         "FHIRGW",
                                         "FHIRGW",
                                         "RIS",
                                         "DROUOT",
                                         "ORM^O01",
                                         "pull",
                                         NULL,
                                         0};
    cfg.sites = test_sites;
    cfg.n_sites = 2;
    cfg.default_site = "bachaumont";
    cfg.store = store_url;
    cfg.commit_timeout_ms = 10000;
    cfg.max_batch = 64;
    cfg.read_connections = 2;
    cfg.audit_hmac_key = "";
    cfg.mllp_listen = "";
    cfg.mllp_max_frame_bytes = 1 << 20;
    cfg.mllp_timeout_s = 5;
    cfg.lease_s = 1;
    cfg.max_pull = 100;
    cfg.push_backoff_min_ms = 100;
    cfg.push_backoff_max_ms = 400;
    cfg.push_ack_timeout_ms = 500;
    (void)ris_sites;
}

/* The put hook rest/ gives in production, reduced to the index these tests search. */
static enum gw_code test_put(void *ctx, struct store_txn *txn, json_t *res, const char *owner,
                             const char *site, long if_match, struct store_written *out,
                             struct gw_error *err)
{
    struct store_index_entry idx[2];
    size_t n = 0;
    const char *type = fhir_resource_type(res);
    const char *focus =
        json_string_value(json_object_get(json_object_get(res, "focus"), "reference"));
    const char *based = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "basedOn"), 0), "reference"));
    struct store_put put = {.type = type,
                            .id = json_string_value(json_object_get(res, "id")),
                            .resource = res,
                            .owner = owner,
                            .site = site,
                            .index = idx,
                            .if_match = if_match};

    (void)ctx;
    if (type && strcmp(type, "Task") == 0 && focus)
        idx[n++] = (struct store_index_entry){"focus", NULL, focus, 0, 0};
    if (based)
        idx[n++] = (struct store_index_entry){"based-on", NULL, based, 0, 0};
    put.n_index = n;
    return store_txn_put(txn, &put, out, err);
}

struct fixture {
    struct store *st;
    struct ris *ris;
};

static bool open_fixture(struct fixture *f)
{
    struct ris_hooks hooks = {test_put, NULL};
    struct gw_error err;

    memset(f, 0, sizeof *f);
    snprintf(store_url, sizeof store_url, "sqlite:%s/t%d.db", dir, n_db++);
    if (store_open(&cfg, &f->st, &err) != GW_OK ||
        ris_create(&cfg, f->st, &hooks, &f->ris, &err) != GW_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        store_destroy(f->st);
        return false;
    }
    return true;
}

static void close_fixture(struct fixture *f)
{
    ris_destroy(f->ris);
    store_destroy(f->st);
}

/* A referral as rest/ stores it: contained patient and GP, ICD-10 reason. */
static const char referral_json[] =
    "{\"resourceType\": \"ServiceRequest\", \"meta\": {\"versionId\": \"1\"},"
    " \"contained\": [{\"resourceType\": \"Patient\", \"id\": \"pat\", \"identifier\":"
    "   [{\"system\": \"urn:oid:1.2.250.1.213.1.4.8\", \"value\": \"283052724101267\"}],"
    "   \"name\": [{\"use\": \"official\", \"family\": \"Dupré\", \"given\": [\"Hélène\", "
    "\"Zoë\"]}],"
    "   \"gender\": \"female\", \"birthDate\": \"1983-05-27\"},"
    "  {\"resourceType\": \"Practitioner\", \"id\": \"gp\", \"identifier\":"
    "   [{\"system\": \"urn:oid:1.2.250.1.71.4.2.1\", \"value\": \"10003456789\"}],"
    "   \"name\": [{\"family\": \"Martin\", \"given\": [\"Claire\"]}]}],"
    " \"status\": \"active\", \"intent\": \"order\", \"priority\": \"urgent\","
    " \"code\": {\"coding\": [{\"system\": \"https://smt.esante.gouv.fr/terminologie-ccam\","
    "   \"code\": \"AHLH014\", \"display\": \"Infiltration de nerf spinal\"}]},"
    " \"subject\": {\"reference\": \"#pat\"}, \"requester\": {\"reference\": \"#gp\"},"
    " \"reasonCode\": [{\"coding\": [{\"system\": \"http://hl7.org/fhir/sid/icd-10\","
    "   \"code\": \"M54.4\", \"display\": \"Lumbago with sciatica\"}],"
    "   \"text\": \"Lombosciatique gauche\"}],"
    " \"authoredOn\": \"2026-11-20T09:30:00+01:00\", \"patientInstruction\": \"Venir accompagné\"}";

static json_t *make_referral(const char *id, const char *note)
{
    json_t *sr = json_loads(referral_json, 0, NULL);

    if (!sr)
        return NULL;
    json_object_set_new(sr, "id", json_string(id));
    if (note)
        json_object_set_new(sr, "note", json_pack("[{s:s}]", "text", note));
    return sr;
}

static void fill_decision(struct map_decision *d, struct map_flag *flag)
{
    memset(d, 0, sizeof *d);
    d->ccam = (struct map_coding){(char *)MAP_SYS_CCAM, (char *)"LHLH003",
                                  (char *)"Infiltration d'articulation vertébrale postérieure"};
    d->cpt = (struct map_coding){(char *)MAP_SYS_CPT, (char *)"64493", (char *)"Facet, lumbar"};
    d->region = MAP_REGION_LUMBAR;
    d->laterality = MAP_LAT_LEFT;
    *flag = (struct map_flag){(char *)"diabetes", (char *)"Diabetes",
                              (char *)"Steroids raise blood glucose",
                              (char *)"Condition E11.9 | matches", (char *)"Condition[0].code"};
    d->flags = flag;
    d->n_flags = 1;
}

static struct hl7_msg *build(const struct ris_referral *r, enum ris_order_kind kind)
{
    char *text = NULL;
    size_t len = 0;
    struct hl7_msg *msg = NULL;
    struct gw_error err;

    if (ris_order_build(r, kind, "GW0000000000000000001", 1764000000000, NULL, &text, &len, &err) !=
        GW_OK) {
        fprintf(stderr, "build: %s\n", err.msg);
        return NULL;
    }
    if (hl7_msg_parse(text, len, &msg, NULL, &err) != GW_OK)
        fprintf(stderr, "parse back: %s\n", err.msg);
    free(text);
    return msg;
}

static const char *get(const struct hl7_msg *m, const char *seg, int field, int comp, int sub)
{
    return hl7_msg_get(m, seg, 0, field, 0, comp, sub);
}

/* ------------------------------------------------------------ orders */

static void omi_order_carries_patient_provider_procedure_and_imaging_fields(void)
{
    json_t *sr = make_referral("4c1f0a56-2b7e-4a43-9e0c-2d1c8f6b7a10", NULL);
    json_t *pat = json_array_get(json_object_get(sr, "contained"), 0);
    json_t *gp = json_array_get(json_object_get(sr, "contained"), 1);
    struct map_decision d;
    struct map_flag flag;
    struct ris_referral r = {sr, pat, gp, NULL, 0, &d, &test_sites[0], "montorgueil"};
    struct hl7_msg *m;

    fill_decision(&d, &flag);
    m = build(&r, RIS_ORDER_NEW);
    CHECK(m != NULL);
    if (!m)
        goto out;
    CHECK_STR(hl7_msg_type(m), "OMI");
    CHECK_STR(hl7_msg_structure(m), "OMI_O23");
    CHECK_STR(hl7_msg_version(m), "2.5.1");
    CHECK_STR(hl7_msg_control_id(m), "GW0000000000000000001");
    CHECK_STR(hl7_msg_receiving_facility(m), "BACHAUMONT");
    CHECK_STR(hl7_msg_charset(m), "UNICODE UTF-8");
    CHECK_STR(get(m, "PID", 3, 1, 1), "283052724101267");
    CHECK_STR(get(m, "PID", 3, 4, 1), "INS-NIR");
    CHECK_STR(get(m, "PID", 3, 4, 2), "1.2.250.1.213.1.4.8");
    CHECK_STR(get(m, "PID", 3, 4, 3), "ISO");
    CHECK_STR(get(m, "PID", 3, 5, 1), "INS");
    CHECK_STR(get(m, "PID", 5, 1, 1), "Dupré");
    CHECK_STR(get(m, "PID", 5, 2, 1), "Hélène");
    CHECK_STR(get(m, "PID", 5, 3, 1), "Zoë");
    CHECK_STR(get(m, "PID", 7, 1, 1), "19830527");
    CHECK_STR(get(m, "PID", 8, 1, 1), "F");
    CHECK_STR(get(m, "PV1", 2, 1, 1), "O");
    CHECK_STR(get(m, "ORC", 1, 1, 1), "NW");
    CHECK_STR(get(m, "ORC", 2, 1, 1), "4c1f0a56-2b7e-4a43-9e0c-2d1c8f6b7a10");
    CHECK_STR(get(m, "ORC", 2, 2, 1), "FHIRGW");
    CHECK_STR(get(m, "ORC", 12, 1, 1), "10003456789");
    CHECK_STR(get(m, "ORC", 12, 2, 1), "Martin");
    CHECK_STR(get(m, "ORC", 12, 9, 1), "RPPS");
    CHECK_STR(get(m, "ORC", 12, 9, 2), "1.2.250.1.71.4.2.1");
    CHECK_STR(get(m, "TQ1", 9, 1, 1), "A");
    CHECK_STR(get(m, "OBR", 2, 1, 1), "4c1f0a56-2b7e-4a43-9e0c-2d1c8f6b7a10");
    CHECK_STR(get(m, "OBR", 4, 1, 1), "LHLH003");
    CHECK_STR(get(m, "OBR", 4, 3, 1), "CCAM");
    CHECK_STR(get(m, "OBR", 15, 4, 1), "122496007");
    CHECK_STR(get(m, "OBR", 15, 5, 1), "L");
    CHECK_STR(get(m, "OBR", 16, 1, 1), "10003456789");
    CHECK_STR(get(m, "OBR", 31, 1, 1), "M54.4");
    CHECK_STR(get(m, "OBR", 31, 3, 1), "I10");
    CHECK_STR(get(m, "DG1", 3, 1, 1), "M54.4");
    CHECK_STR(get(m, "DG1", 3, 3, 1), "I10");
    CHECK_STR(get(m, "DG1", 6, 1, 1), "W");
    CHECK(strstr(get(m, "NTE", 3, 1, 1), "Steroids raise blood glucose") != NULL);
    CHECK(strstr(get(m, "NTE", 3, 1, 1), "E11.9 | matches") != NULL);
    CHECK_STR(hl7_msg_get(m, "NTE", 1, 3, 0, 1, 1), "Venir accompagné");
    CHECK_STR(hl7_msg_get(m, "NTE", 1, 4, 0, 1, 1), "PI");
    CHECK_STR(get(m, "IPC", 1, 1, 1), "4c1f0a56-2b7e-4a43-9e0c-2d1c8f6b7a10");
    CHECK_STR(get(m, "IPC", 3, 1, 1), "2.25.101182498533446729518640448166670596624");
    CHECK_STR(get(m, "IPC", 5, 1, 1), "XA");
    CHECK(strlen(get(m, "IPC", 2, 1, 1)) <= 16 && strlen(get(m, "IPC", 4, 1, 1)) <= 16);
    CHECK_INT(hl7_msg_count(m, "MSH") + hl7_msg_count(m, "IPC"), 2);
out:
    hl7_msg_destroy(m);
    json_decref(sr);
}

static void orm_order_is_v2_3_1_with_timing_in_orc_and_a_zds(void)
{
    json_t *sr = make_referral("order-2", NULL);
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, NULL, &test_sites[1], "montorgueil"};
    struct hl7_msg *m;

    json_object_set_new(sr, "code",
                        json_pack("{s:[{s:s, s:s, s:s}]}", "coding", "system", MAP_SYS_CPT, "code",
                                  "64493", "display", "Facet"));
    m = build(&r, RIS_ORDER_NEW);
    CHECK(m != NULL);
    if (!m)
        goto out;
    CHECK_STR(hl7_msg_type(m), "ORM");
    CHECK_STR(hl7_msg_trigger(m), "O01");
    CHECK_STR(hl7_msg_version(m), "2.3.1");
    CHECK_INT(hl7_msg_count(m, "TQ1"), 0);
    CHECK_INT(hl7_msg_count(m, "IPC"), 0);
    CHECK_STR(get(m, "ORC", 7, 6, 1), "A");
    CHECK_STR(get(m, "OBR", 4, 1, 1), "64493");
    CHECK_STR(get(m, "OBR", 4, 3, 1), "C4");
    CHECK_STR(get(m, "OBR", 18, 1, 1), "order-2");
    CHECK(strncmp(get(m, "ZDS", 1, 1, 1), "2.25.", 5) == 0);
    CHECK_STR(get(m, "ZDS", 1, 4, 1), "DICOM");
    CHECK_STR(get(m, "DG1", 2, 1, 1), "I10");
out:
    hl7_msg_destroy(m);
    json_decref(sr);
}

static void notes_with_separators_and_line_breaks_round_trip(void)
{
    const char *note = "a|b^c~d\\e&f\nsecond line — é";
    json_t *sr = make_referral("order-3", note);
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, NULL, &test_sites[0], "montorgueil"};
    struct hl7_msg *m = build(&r, RIS_ORDER_NEW);
    size_t i;
    bool found = false;

    CHECK(m != NULL);
    for (i = 0; m && i < hl7_msg_count(m, "NTE"); i++)
        if (strcmp(hl7_msg_get(m, "NTE", i, 3, 0, 1, 1), note) == 0)
            found = true;
    CHECK(found);
    hl7_msg_destroy(m);
    json_decref(sr);
}

static void an_order_without_a_procedure_is_refused_but_a_cancel_is_not(void)
{
    json_t *sr = make_referral("order-4", NULL);
    struct map_decision d;
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, &d, &test_sites[0], "montorgueil"};
    char *text = NULL;
    size_t len = 0;
    struct gw_error err;

    memset(&d, 0, sizeof d);
    d.is_unmapped = true;
    json_object_del(sr, "code");
    CHECK_INT(ris_order_build(&r, RIS_ORDER_NEW, "GW0000000000000000004", 1764000000000, NULL,
                              &text, &len, &err),
              GW_E_INPUT);
    CHECK(text == NULL);
    CHECK(strstr(err.msg, "OBR-4") != NULL);
    CHECK_INT(ris_order_build(&r, RIS_ORDER_CHANGE, "GW0000000000000000005", 1764000000000, NULL,
                              &text, &len, &err),
              GW_E_INPUT);
    CHECK_INT(ris_order_build(&r, RIS_ORDER_CANCEL, "GW0000000000000000006", 1764000000000, NULL,
                              &text, &len, &err),
              GW_OK);
    free(text);
    json_decref(sr);
}

static void snomed_indications_go_to_dg1_as_sct_with_the_bodysite_side(void)
{
    json_t *sr = make_referral("order-6", NULL);
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, NULL, &test_sites[0], "montorgueil"};
    struct hl7_msg *m;
    size_t i;
    bool sct = false;

    json_object_set_new(sr, "reasonCode",
                        json_pack("[{s:[{s:s, s:s, s:s}]}]", "coding", "system", MAP_SYS_SNOMED,
                                  "code", "18347007", "display",
                                  "Spinal stenosis of lumbar region"));
    json_object_set_new(sr, "bodySite",
                        json_pack("[{s:[{s:s, s:s}]}, {s:[{s:s, s:s}]}]", "coding", "system",
                                  MAP_SYS_SNOMED, "code", "122496007", "coding", "system",
                                  MAP_SYS_SNOMED, "code", "24028007"));
    m = build(&r, RIS_ORDER_NEW);
    CHECK(m != NULL);
    for (i = 0; m && i < hl7_msg_count(m, "DG1"); i++)
        if (strcmp(hl7_msg_get(m, "DG1", i, 3, 0, 1, 1), "18347007") == 0 &&
            strcmp(hl7_msg_get(m, "DG1", i, 3, 0, 3, 1), "SCT") == 0)
            sct = true;
    CHECK(sct);
    CHECK_STR(m ? get(m, "OBR", 31, 3, 1) : NULL, "SCT");
    CHECK_STR(m ? get(m, "OBR", 15, 4, 1) : NULL, "122496007");
    CHECK_STR(m ? get(m, "OBR", 15, 5, 1) : NULL, "R"); /* the separate laterality coding */
    hl7_msg_destroy(m);
    json_decref(sr);
}

static void a_procedure_the_practice_chose_is_said_in_a_note(void)
{
    json_t *sr = make_referral("order-7", NULL);
    struct map_decision d;
    struct map_flag flag;
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, &d, &test_sites[0], "montorgueil"};
    struct hl7_msg *m;
    size_t i;
    bool said = false;

    fill_decision(&d, &flag);
    d.is_chosen_by_practice = true;
    m = build(&r, RIS_ORDER_NEW);
    CHECK(m != NULL);
    CHECK_STR(m ? get(m, "OBR", 4, 1, 1) : NULL, "LHLH003");
    for (i = 0; m && i < hl7_msg_count(m, "NTE"); i++)
        said = said || strstr(hl7_msg_get(m, "NTE", i, 3, 0, 1, 1), "chosen by the practice");
    CHECK(said);
    hl7_msg_destroy(m);
    json_decref(sr);
}

static void change_and_cancel_use_xo_and_ca(void)
{
    json_t *sr = make_referral("order-5", NULL);
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, NULL, &test_sites[0], "montorgueil"};
    struct hl7_msg *xo = build(&r, RIS_ORDER_CHANGE), *ca = build(&r, RIS_ORDER_CANCEL);

    CHECK_STR(xo ? get(xo, "ORC", 1, 1, 1) : NULL, "XO");
    CHECK_STR(ca ? get(ca, "ORC", 1, 1, 1) : NULL, "CA");
    CHECK_STR(ca ? get(ca, "ORC", 5, 1, 1) : NULL, "CA");
    CHECK_STR(ca ? get(ca, "ORC", 2, 1, 1) : NULL, "order-5");
    hl7_msg_destroy(xo);
    hl7_msg_destroy(ca);
    json_decref(sr);
}

static void study_uid_is_the_decimal_of_the_uuid_and_stable(void)
{
    char a[RIS_UID_LEN], b[RIS_UID_LEN];

    ris_study_uid("00000000-0000-0000-0000-00000000000a", a);
    CHECK_STR(a, "2.25.10");
    ris_study_uid("ffffffff-ffff-ffff-ffff-ffffffffffff", a);
    CHECK_STR(a, "2.25.340282366920938463463374607431768211455");
    ris_study_uid("not-a-uuid", a);
    ris_study_uid("not-a-uuid", b);
    CHECK_STR(a, b);
    CHECK(strlen(a) > 10 && strlen(a) < 64);
}

/* MSH-10 is an ST of at most 20 characters; the gateway's start with "GW" and,
 * made in a row, sort in that order (the outbox's unique index grows at its end). */
static void control_ids_are_twenty_characters_that_sort_in_creation_order(void)
{
    char a[RIS_MAX_CONTROL_ID], b[RIS_MAX_CONTROL_ID];
    struct gw_error err;

    CHECK_INT(ris_control_id(a, &err), GW_OK);
    nanosleep(&(struct timespec){0, 2000000}, NULL);
    CHECK_INT(ris_control_id(b, &err), GW_OK);
    CHECK_INT(strlen(a), 20);
    CHECK(strncmp(a, "GW", 2) == 0);
    CHECK(strspn(a + 2, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 18);
    CHECK(strcmp(a, b) < 0);
}

static void hl7_times_without_offset_are_paris_time(void)
{
    int64_t ms;
    char out[GW_INSTANT_LEN];

    CHECK(ris_dtm_to_ms("202612031430", &ms));
    gw_time_instant(ms, out);
    CHECK_STR(out, "2026-12-03T13:30:00.000Z"); /* CET */
    CHECK(ris_dtm_to_ms("20260615143000", &ms));
    gw_time_instant(ms, out);
    CHECK_STR(out, "2026-06-15T12:30:00.000Z"); /* CEST */
    CHECK(ris_dtm_to_ms("20260615143000.25-0500", &ms));
    gw_time_instant(ms, out);
    CHECK_STR(out, "2026-06-15T19:30:00.000Z");
    CHECK(!ris_dtm_to_ms("20260231", &ms));
    CHECK(!ris_dtm_to_ms("202602311200", &ms));
    CHECK(!ris_dtm_to_ms("2026061514x", &ms));
    CHECK(ris_fhir_to_dtm("2026-11-20T09:30:00+01:00", out));
    CHECK_STR(out, "20261120093000+0100");
}

/* ------------------------------------------------------------ store helpers */

struct seed {
    struct fixture *f;
    const char *id;
    const struct config_site *site;
    char control_id[RIS_MAX_CONTROL_ID];
    const char *subject; /* "Patient/<id>" instead of the contained patient, or NULL */
};

static enum gw_code seed_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    struct seed *s = ctx;
    json_t *sr = make_referral(s->id, NULL), *task;
    struct ris_referral r = {sr, NULL, NULL, NULL, 0, NULL, s->site, "montorgueil"};
    struct store_written w;
    char focus[RIS_MAX_REF], id[GW_UUID_LEN];
    enum gw_code rc;

    json_object_del(sr, "meta");
    if (s->subject)
        json_object_set_new(sr, "subject", json_pack("{s:s}", "reference", s->subject));
    snprintf(focus, sizeof focus, "ServiceRequest/%s", s->id);
    gw_uuid(id, NULL);
    task = json_pack("{s:s, s:s, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}}", "resourceType", "Task",
                     "id", id, "status", "requested", "intent", "order", "businessStatus", "coding",
                     "system", RIS_STATUS_SYSTEM, "code", RIS_STATUS_RECEIVED, "focus", "reference",
                     focus);
    rc = test_put(NULL, txn, sr, "montorgueil", s->site->id, 0, &w, err);
    if (!rc)
        rc = test_put(NULL, txn, task, "montorgueil", s->site->id, 0, &w, err);
    if (!rc)
        rc = ris_order_enqueue(s->f->ris, txn, &r, RIS_ORDER_NEW, s->control_id, err);
    json_decref(sr);
    json_decref(task);
    return rc;
}

static bool seed(struct fixture *f, const char *id, struct seed *s)
{
    struct gw_error err;

    const char *subject = s->subject;

    *s = (struct seed){f, id, &test_sites[0], "", subject};
    if (store_write(f->st, seed_apply, NULL, s, &err) != GW_OK) {
        fprintf(stderr, "seed: %s\n", err.msg);
        return false;
    }
    return true;
}

static json_t *read_resource(struct store *st, const char *type, const char *id, long *version)
{
    struct store_resource row;
    json_t *res = NULL;

    if (store_read(st, type, id, 0, &row, NULL) != GW_OK)
        return NULL;
    res = json_loads(row.json, 0, NULL);
    if (version)
        *version = row.version;
    store_resource_cleanup(&row);
    return res;
}

/* The resources of type whose index param names ServiceRequest/id (at most 10). */
static size_t find(struct store *st, const char *type, const char *param, const char *sr_id,
                   json_t **out)
{
    char ref[RIS_MAX_REF];
    struct store_value v = {.value = ref};
    struct store_cond c = {.param = param, .kind = STORE_REFERENCE, .values = &v, .n_values = 1};
    struct store_query q = {.type = type, .conds = &c, .n_conds = 1, .count = 10};
    struct store_page page;
    size_t i, n = 0;

    snprintf(ref, sizeof ref, "ServiceRequest/%s", sr_id);
    if (store_search(st, &q, &page, NULL) != GW_OK)
        return 0;
    for (i = 0; i < page.n_items && n < 10; i++)
        if ((out[n] = json_loads(page.items[i].json, 0, NULL)) != NULL)
            n++;
    store_page_cleanup(&page);
    return n;
}

static json_t *task_of(struct store *st, const char *sr_id)
{
    json_t *found[10];
    size_t n = find(st, "Task", "focus", sr_id, found);

    while (n > 1)
        json_decref(found[--n]);
    return n ? found[0] : NULL;
}

static const char *business(json_t *task)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(task, "businessStatus"), "coding"), 0),
        "code"));
}

static bool valid_fhir(json_t *res)
{
    json_t *outcome = fhir_outcome_create();
    int n = fhir_validate(res, outcome);

    if (n != 0) {
        char *text = json_dumps(outcome, 0);

        fprintf(stderr, "    invalid: %s\n", text ? text : "?");
        free(text);
    }
    json_decref(outcome);
    return n == 0;
}

/* Sends text inbound from from; returns the parsed ACK (and its text in *raw when asked). */
static struct hl7_msg *send_inbound_from(struct fixture *f, const struct ris_sender *from,
                                         const char *text, char **raw)
{
    char *ack = NULL;
    size_t len = 0;
    struct hl7_msg *msg = NULL;
    struct gw_error err;

    if (ris_inbound(f->ris, from, text, strlen(text), &ack, &len, &err) != GW_OK) {
        fprintf(stderr, "inbound: %s\n", err.msg);
        return NULL;
    }
    if (hl7_msg_parse(ack, len, &msg, NULL, &err) != GW_OK)
        fprintf(stderr, "ack: %s\n", err.msg);
    if (raw)
        *raw = ack;
    else
        free(ack);
    return msg;
}

/* As send_inbound_from, from a trusted MLLP peer that speaks for every site. */
static struct hl7_msg *send_inbound(struct fixture *f, const char *text, char **raw)
{
    struct ris_sender from = {"127.0.0.1:9", "test-ris", NULL, true};

    return send_inbound_from(f, &from, text, raw);
}

static const char *msa(const struct hl7_msg *ack)
{
    return ack ? hl7_msg_get(ack, "MSA", 0, 1, 0, 1, 1) : NULL;
}

#define MSH_FROM_RIS(type, id)                                                                     \
    "MSH|^~\\&|RIS|BACHAUMONT|FHIRGW|FHIRGW|20261125100000||" type "|" id "|P|2.5.1\r"

static char *order_status(const char *control_id, const char *sr_id, const char *control,
                          const char *status)
{
    char *text = malloc(1024);

    if (text)
        snprintf(text, 1024,
                 MSH_FROM_RIS("ORM^O01^ORM_O01", "%s") "ORC|%s|%s^FHIRGW|F-9^RIS||%s\r"
                                                       "OBR|1|%s^FHIRGW|F-9^RIS|LHLH003^Inf^CCAM\r",
                 control_id, control, sr_id, status, sr_id);
    return text;
}

/* ------------------------------------------------------------ HTTP handlers */

static char *ris_client_sites[] = {"bachaumont", "drouot"};
static struct auth_identity ris_who = {
    .role = AUTH_RIS, .client_name = "ris", .sites = ris_client_sites, .n_sites = 2};

typedef void (*ris_handler)(struct ris *, struct http_request *, struct http_response *);

static void call(struct fixture *f, ris_handler h, const char *body, const char *max,
                 struct http_response *resp)
{
    struct http_request req = {.method = body ? "POST" : "GET",
                               .path = "/ris",
                               .query = "",
                               .body = body ? body : "",
                               .body_len = body ? strlen(body) : 0,
                               .body_format = HTTP_FORMAT_HL7,
                               .who = &ris_who,
                               .peer = "127.0.0.1",
                               .request_id = "test"};

    if (max)
        req.params[req.n_params++] = (struct http_param){"max", max};
    memset(resp, 0, sizeof *resp);
    h(f->ris, &req, resp);
}

static void response_cleanup(struct http_response *resp)
{
    size_t i;

    free(resp->body);
    json_decref(resp->resource);
    for (i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->audit_note);
}

/* Pulls; returns the batch (NULL on failure) and checks the answer is HL7. */
static struct hl7_batch *pull(struct fixture *f, const char *max)
{
    struct http_response resp;
    struct hl7_batch *b = NULL;

    call(f, ris_handle_pull, NULL, max, &resp);
    CHECK_INT(resp.status, 200);
    CHECK(resp.content_type && strncmp(resp.content_type, "application/hl7-v2", 18) == 0);
    if (resp.status == 200 && hl7_batch_parse(resp.body, resp.body_len, &b, NULL, NULL) != GW_OK)
        b = NULL;
    response_cleanup(&resp);
    return b;
}

/* Posts the ACK (code) of msg to /ris/acks; returns the answer's MSA-1 (static copy). */
static const char *post_ack(struct fixture *f, const struct hl7_msg *msg, const char *code)
{
    static char answer[8];
    struct hl7_ack_spec spec = {.msg = msg,
                                .code = code,
                                .control_id = "RIS-ACK-1",
                                .text = strcmp(code, "AA") ? "unknown procedure" : NULL};
    struct http_response resp;
    struct hl7_msg *reply = NULL;
    char *text = NULL;
    size_t len;

    answer[0] = '\0';
    if (hl7_ack_build(&spec, &text, &len, NULL) != GW_OK)
        return answer;
    call(f, ris_handle_acks, text, NULL, &resp);
    if (resp.status == 200 && hl7_msg_parse(resp.body, resp.body_len, &reply, NULL, NULL) == GW_OK)
        snprintf(answer, sizeof answer, "%s", msa(reply));
    hl7_msg_destroy(reply);
    response_cleanup(&resp);
    free(text);
    return answer;
}

/* ------------------------------------------------------------ outbox cases */

struct stored_patient {
    const char *id, *owner, *family;
};

static enum gw_code patient_apply(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    const struct stored_patient *sp = ctx;
    json_t *pat =
        json_pack("{s:s, s:s, s:[{s:s}], s:s, s:s}", "resourceType", "Patient", "id", sp->id,
                  "name", "family", sp->family, "gender", "male", "birthDate", "1961-02-03");
    struct store_written w;
    enum gw_code rc = pat ? test_put(NULL, txn, pat, sp->owner, NULL, 0, &w, err)
                          : gw_fail(err, GW_E_NOMEM, "no memory");

    json_decref(pat);
    return rc;
}

/* The PID-5 family name of the order seeded for a referral whose subject is
 * a stored Patient owned by owner (the referral belongs to montorgueil). */
static char *family_in_order(const char *owner)
{
    struct fixture f;
    struct seed s = {0};
    struct stored_patient sp = {"p-stored", owner, "Valmontier"};
    struct store_outbox_msg *list = NULL;
    size_t n = 0;
    struct hl7_msg *m = NULL;
    char *family = NULL;

    if (!open_fixture(&f))
        return NULL;
    s.subject = "Patient/p-stored";
    if (store_write(f.st, patient_apply, NULL, &sp, NULL) == GW_OK && seed(&f, "ref-own", &s) &&
        store_outbox_for(f.st, "ServiceRequest", "ref-own", &list, &n, NULL) == GW_OK && n == 1 &&
        hl7_msg_parse(list[0].message, list[0].message_len, &m, NULL, NULL) == GW_OK)
        family = gw_strdup(get(m, "PID", 5, 1, 1) ? get(m, "PID", 5, 1, 1) : "");
    hl7_msg_destroy(m);
    store_outbox_list_free(list, n);
    close_fixture(&f);
    return family;
}

static void order_reads_a_stored_patient_only_of_the_referrals_organisation(void)
{
    char *own = family_in_order("montorgueil"), *other = family_in_order("batignolles");

    CHECK_STR(own, "Valmontier");
    CHECK_STR(other, ""); /* another organisation's patient never reaches PID */
    free(own);
    free(other);
}

static void enqueue_writes_the_order_in_the_referral_commit(void)
{
    struct fixture f;
    struct seed s = {0};
    struct store_outbox_msg *list = NULL;
    size_t n = 0;
    struct hl7_msg *m = NULL;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-1", &s));
    CHECK(store_outbox_for(f.st, "ServiceRequest", "ref-1", &list, &n, NULL) == GW_OK);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(list[0].control_id, s.control_id);
        CHECK_STR(list[0].kind, "order");
        CHECK_STR(list[0].site, "bachaumont");
        CHECK_INT(list[0].state, STORE_OUTBOX_PENDING);
        CHECK_INT(strlen(s.control_id), 20);
        CHECK(hl7_msg_parse(list[0].message, list[0].message_len, &m, NULL, NULL) == GW_OK);
        CHECK_STR(m ? get(m, "ORC", 2, 1, 1) : NULL, "ref-1");
        CHECK_STR(m ? get(m, "PID", 5, 1, 1) : NULL, "Dupré"); /* resolved from contained */
    }
    hl7_msg_destroy(m);
    store_outbox_list_free(list, n);
    close_fixture(&f);
}

static void pull_leases_and_an_expired_lease_offers_the_same_message_again(void)
{
    struct fixture f;
    struct seed s1 = {0}, s2 = {0};
    struct hl7_batch *b;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-a", &s1) && seed(&f, "ref-b", &s2));
    b = pull(&f, "10");
    CHECK_INT(b ? hl7_batch_count(b) : 0, 2);
    CHECK(b && hl7_batch_has_headers(b));
    if (b && hl7_batch_count(b) == 2) {
        CHECK_STR(hl7_msg_control_id(hl7_batch_msg(b, 0)), s1.control_id);
        CHECK_STR(post_ack(&f, hl7_batch_msg(b, 0), "AA"), "AA");
    }
    hl7_batch_destroy(b);
    b = pull(&f, "10");
    CHECK_INT(b ? hl7_batch_count(b) : 1, 0); /* the other one is still leased */
    hl7_batch_destroy(b);
    gw_sleep_ms(1100); /* lease_s = 1 */
    b = pull(&f, "1");
    CHECK_INT(b ? hl7_batch_count(b) : 0, 1);
    CHECK_STR(b && hl7_batch_count(b) ? hl7_msg_control_id(hl7_batch_msg(b, 0)) : NULL,
              s2.control_id);
    hl7_batch_destroy(b);
    close_fixture(&f);
}

static void refused_ack_makes_a_dead_letter_shown_on_the_task(void)
{
    struct fixture f;
    struct seed s = {0};
    struct hl7_batch *b;
    struct store_outbox_msg *list = NULL;
    size_t n = 0;
    json_t *task;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-dead", &s));
    b = pull(&f, NULL);
    CHECK_STR(b && hl7_batch_count(b) ? post_ack(&f, hl7_batch_msg(b, 0), "AR") : NULL, "AA");
    hl7_batch_destroy(b);
    task = task_of(f.st, "ref-dead");
    CHECK_STR(json_string_value(json_object_get(task, "status")), "failed");
    CHECK_STR(business(task), RIS_STATUS_DELIVERY_FAILED);
    CHECK(strstr(json_string_value(json_object_get(json_object_get(task, "statusReason"), "text")),
                 "unknown procedure") != NULL);
    CHECK(valid_fhir(task));
    CHECK(store_outbox_for(f.st, "ServiceRequest", "ref-dead", &list, &n, NULL) == GW_OK);
    CHECK(n == 1 && list[0].state == STORE_OUTBOX_DEAD);
    store_outbox_list_free(list, n);
    json_decref(task);
    close_fixture(&f);
}

static void acks_for_unknown_messages_and_bad_bodies_are_refused(void)
{
    struct fixture f;
    struct http_response resp;
    struct hl7_msg *reply = NULL;
    const char *unknown = "MSH|^~\\&|RIS|X|FHIRGW|FHIRGW|20261125||ACK^O23^ACK|R1|P|2.5.1\r"
                          "MSA|AA|GWNOTOURS\r";

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    call(&f, ris_handle_acks, unknown, NULL, &resp);
    CHECK_INT(resp.status, 200);
    CHECK(resp.body && hl7_msg_parse(resp.body, resp.body_len, &reply, NULL, NULL) == GW_OK);
    CHECK_STR(msa(reply), "AE");
    CHECK_STR(reply ? hl7_msg_get(reply, "ERR", 0, 3, 0, 1, 1) : NULL, "204");
    hl7_msg_destroy(reply);
    response_cleanup(&resp);
    call(&f, ris_handle_acks, "BHS|^~\\&\rMSH|^~\\&|x\rBTS|5\r", NULL, &resp);
    CHECK_INT(resp.status, 400);
    response_cleanup(&resp);
    call(&f, ris_handle_pull, NULL, "lots", &resp);
    CHECK_INT(resp.status, 400);
    response_cleanup(&resp);
    close_fixture(&f);
}

/* ------------------------------------------------------------ inbound cases */

static void ok_and_scheduled_move_the_task_and_record_the_filler(void)
{
    struct fixture f;
    struct seed s = {0};
    char *ok = NULL, *sc = NULL;
    struct hl7_msg *a1 = NULL, *a2 = NULL;
    json_t *task = NULL, *sr = NULL, *ids;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-ok", &s));
    ok = order_status("RIS-1", "ref-ok", "OK", "");
    sc = order_status("RIS-2", "ref-ok", "SC", "SC");
    a1 = send_inbound(&f, ok, NULL);
    CHECK_STR(msa(a1), "AA");
    task = task_of(f.st, "ref-ok");
    CHECK_STR(business(task), RIS_STATUS_ACCEPTED);
    CHECK_STR(json_string_value(json_object_get(task, "status")), "accepted");
    json_decref(task);
    a2 = send_inbound(&f, sc, NULL);
    CHECK_STR(msa(a2), "AA");
    task = task_of(f.st, "ref-ok");
    CHECK_STR(business(task), RIS_STATUS_SCHEDULED);
    CHECK(valid_fhir(task));
    sr = read_resource(f.st, "ServiceRequest", "ref-ok", NULL);
    ids = json_object_get(sr, "identifier");
    CHECK_INT(json_array_size(ids), 1); /* the filler number, once */
    CHECK_STR(json_string_value(json_object_get(json_array_get(ids, 0), "value")), "F-9");
    CHECK(valid_fhir(sr));
    json_decref(sr);
    json_decref(task);
    hl7_msg_destroy(a1);
    hl7_msg_destroy(a2);
    free(ok);
    free(sc);
    close_fixture(&f);
}

static const char siu_template[] = MSH_FROM_RIS(
    "SIU^S12^SIU_S12",
    "%s") "SCH|A-1^RIS|A-1^RIS|||||Infiltration||45|min|^^^202612031430|||||||||||||||%s^FHIRGW\r"
          "RGS|1\r"
          "AIS|1||LHLH003^Infiltration articulaire^CCAM|202612031430|||45|min\r";

static void siu_makes_a_valid_appointment_linked_from_the_task(void)
{
    struct fixture f;
    struct seed s = {0};
    char text[1024];
    struct hl7_msg *ack;
    json_t *found[10], *task;
    size_t n;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    s.subject = "Patient/p-1";
    CHECK(seed(&f, "ref-siu", &s));
    snprintf(text, sizeof text, siu_template, "SIU-1", "ref-siu");
    ack = send_inbound(&f, text, NULL);
    CHECK_STR(msa(ack), "AA");
    n = find(f.st, "Appointment", "based-on", "ref-siu", found);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK(valid_fhir(found[0]));
        CHECK_STR(json_string_value(json_object_get(found[0], "status")), "booked");
        CHECK_STR(json_string_value(json_object_get(found[0], "start")),
                  "2026-12-03T13:30:00.000Z");
        CHECK_STR(json_string_value(json_object_get(found[0], "end")), "2026-12-03T14:15:00.000Z");
    }
    task = task_of(f.st, "ref-siu");
    CHECK_STR(business(task), RIS_STATUS_SCHEDULED);
    CHECK_INT(json_array_size(json_object_get(task, "output")), 1);
    while (n)
        json_decref(found[--n]);
    json_decref(task);
    hl7_msg_destroy(ack);
    close_fixture(&f);
}

static const char oru_template[] = MSH_FROM_RIS(
    "ORU^R01^ORU_R01",
    "%s") "ORC|RE|%s^FHIRGW|F-9^RIS\r"
          "OBR|1|%s^FHIRGW|F-9^RIS|LHLH003^Infiltration^CCAM|||20261203143000|||||||||||||||"
          "20261203160000|||F\r"
          "OBX|1|FT|REPORT^Compte rendu^L||Infiltration L5-S1\\.br\\sans incident \\F\\ "
          "suivi||||||F\r";

static void oru_makes_a_valid_report_and_completes_the_referral(void)
{
    struct fixture f;
    struct seed s = {0};
    char text[1024];
    struct hl7_msg *ack;
    json_t *found[10], *task, *sr;
    size_t n;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-oru", &s));
    snprintf(text, sizeof text, oru_template, "ORU-1", "ref-oru", "ref-oru");
    ack = send_inbound(&f, text, NULL);
    CHECK_STR(msa(ack), "AA");
    n = find(f.st, "DiagnosticReport", "based-on", "ref-oru", found);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK(valid_fhir(found[0]));
        CHECK_STR(json_string_value(json_object_get(found[0], "status")), "final");
        CHECK_STR(json_string_value(json_object_get(found[0], "conclusion")),
                  "Infiltration L5-S1\nsans incident | suivi");
        CHECK_STR(json_string_value(json_object_get(found[0], "issued")),
                  "2026-12-03T15:00:00.000Z");
    }
    task = task_of(f.st, "ref-oru");
    CHECK_STR(business(task), RIS_STATUS_REPORTED);
    CHECK_STR(json_string_value(json_object_get(task, "status")), "completed");
    sr = read_resource(f.st, "ServiceRequest", "ref-oru", NULL);
    CHECK_STR(json_string_value(json_object_get(sr, "status")), "completed");
    while (n)
        json_decref(found[--n]);
    json_decref(task);
    json_decref(sr);
    hl7_msg_destroy(ack);
    close_fixture(&f);
}

static void unknown_order_is_answered_ae_and_changes_nothing(void)
{
    struct fixture f;
    char *text = order_status("RIS-U", "no-such-order", "SC", "SC");
    struct hl7_msg *ack;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    ack = send_inbound(&f, text, NULL);
    CHECK_STR(msa(ack), "AE");
    CHECK_STR(ack ? hl7_msg_get(ack, "ERR", 0, 3, 0, 1, 1) : NULL, "204");
    CHECK(ack && strstr(hl7_msg_get(ack, "ERR", 0, 8, 0, 1, 1), "no-such-order"));
    hl7_msg_destroy(ack);
    free(text);
    close_fixture(&f);
}

static void the_same_message_twice_gets_the_same_ack_and_one_effect(void)
{
    struct fixture f;
    struct seed s = {0};
    char text[1024], *first = NULL, *second = NULL;
    struct hl7_msg *a1, *a2;
    json_t *found[10];
    size_t n;
    long v1 = 0, v2 = 0;
    json_t *t1, *t2;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-dup", &s));
    snprintf(text, sizeof text, siu_template, "SIU-DUP", "ref-dup");
    a1 = send_inbound(&f, text, &first);
    t1 = task_of(f.st, "ref-dup");
    a2 = send_inbound(&f, text, &second);
    t2 = task_of(f.st, "ref-dup");
    CHECK_STR(first, second);
    CHECK_STR(msa(a2), "AA");
    json_decref(read_resource(f.st, "Task", json_string_value(json_object_get(t1, "id")), &v1));
    json_decref(read_resource(f.st, "Task", json_string_value(json_object_get(t2, "id")), &v2));
    CHECK_INT(v1, v2);
    n = find(f.st, "Appointment", "based-on", "ref-dup", found);
    CHECK_INT(n, 1);
    while (n)
        json_decref(found[--n]);
    json_decref(t1);
    json_decref(t2);
    hl7_msg_destroy(a1);
    hl7_msg_destroy(a2);
    free(first);
    free(second);
    close_fixture(&f);
}

static void duplicates_are_per_client_and_a_client_speaks_only_for_its_sites(void)
{
    static char *drouot_only[] = {"drouot"};
    struct auth_identity drouot = {.role = AUTH_RIS, .sites = drouot_only, .n_sites = 1};
    struct ris_sender a = {"127.0.0.1:9", "ris-a", NULL, true};
    struct ris_sender b = {"127.0.0.1:9", "ris-b", NULL, true};
    struct ris_sender d = {"127.0.0.1:9", "ris-d", &drouot, true};
    struct fixture f;
    struct seed s = {0};
    char text[1024], *first = NULL, *other = NULL, *again = NULL;
    struct hl7_msg *a1, *b1, *a2, *d1;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-who", &s));
    snprintf(text, sizeof text, siu_template, "SIU-WHO", "ref-who");
    a1 = send_inbound_from(&f, &a, text, &first);
    b1 = send_inbound_from(&f, &b, text, &other);
    a2 = send_inbound_from(&f, &a, text, &again);
    d1 = send_inbound_from(&f, &d, text, NULL); /* MSH-4 BACHAUMONT: not a Drouot facility */
    CHECK_STR(msa(a1), "AA");
    CHECK_STR(msa(b1), "AA");
    CHECK(first && other && strcmp(first, other) != 0); /* b never gets a's recorded ACK */
    CHECK_STR(first, again);
    CHECK_STR(msa(d1), "AR");
    CHECK_STR(d1 ? hl7_msg_get(d1, "ERR", 0, 3, 0, 1, 1) : NULL, "103");
    hl7_msg_destroy(a1);
    hl7_msg_destroy(b1);
    hl7_msg_destroy(a2);
    hl7_msg_destroy(d1);
    free(first);
    free(other);
    free(again);
    close_fixture(&f);
}

static void unreadable_or_unsupported_messages_get_ar(void)
{
    struct fixture f;
    struct hl7_msg *a1, *a2, *a3;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    a1 = send_inbound(&f, "this is no HL7 at all", NULL);
    CHECK_STR(msa(a1), "AR");
    a2 = send_inbound(&f,
                      "MSH|^~\\&|RIS|BACHAUMONT|FHIRGW|FHIRGW|20261125||ORM^O01|V1|P|3.0\r"
                      "ORC|SC|x^FHIRGW||SC\r",
                      NULL);
    CHECK_STR(msa(a2), "AR");
    CHECK_STR(a2 ? hl7_msg_get(a2, "ERR", 0, 3, 0, 1, 1) : NULL, "203");
    a3 = send_inbound(&f, "MSH|^~\\&|RIS|BACHAUMONT|FHIRGW|FHIRGW|20261125||ADT^A01|V2|P|2.5.1\r",
                      NULL);
    CHECK_STR(msa(a3), "AE");
    CHECK_STR(a3 ? hl7_msg_get(a3, "ERR", 0, 3, 0, 1, 1) : NULL, "200");
    hl7_msg_destroy(a1);
    hl7_msg_destroy(a2);
    hl7_msg_destroy(a3);
    close_fixture(&f);
}

static void a_revoked_referral_stays_revoked_when_the_ris_schedules_it(void)
{
    struct fixture f;
    struct seed s = {0};
    char *cancel = NULL, *sched = NULL;
    struct hl7_msg *a1, *a2;
    json_t *sr, *task;

    if (!open_fixture(&f)) {
        check_fail(__FILE__, __LINE__, "the fixture did not open");
        return;
    }
    CHECK(seed(&f, "ref-rev", &s));
    cancel = order_status("RIS-C", "ref-rev", "OC", "CA");
    sched = order_status("RIS-S", "ref-rev", "SC", "SC");
    a1 = send_inbound(&f, cancel, NULL);
    a2 = send_inbound(&f, sched, NULL);
    CHECK_STR(msa(a1), "AA");
    CHECK_STR(msa(a2), "AA");
    sr = read_resource(f.st, "ServiceRequest", "ref-rev", NULL);
    task = task_of(f.st, "ref-rev");
    CHECK_STR(json_string_value(json_object_get(sr, "status")), "revoked");
    CHECK_STR(json_string_value(json_object_get(task, "status")), "cancelled");
    CHECK_STR(business(task), RIS_STATUS_CANCELLED);
    json_decref(sr);
    json_decref(task);
    hl7_msg_destroy(a1);
    hl7_msg_destroy(a2);
    free(cancel);
    free(sched);
    close_fixture(&f);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gw_log_set_level(GW_LOG_WARN);
    json_object_seed(1);
    fhir_init();
    setup_config();
    RUN(control_ids_are_twenty_characters_that_sort_in_creation_order);
    RUN(omi_order_carries_patient_provider_procedure_and_imaging_fields);
    RUN(orm_order_is_v2_3_1_with_timing_in_orc_and_a_zds);
    RUN(notes_with_separators_and_line_breaks_round_trip);
    RUN(an_order_without_a_procedure_is_refused_but_a_cancel_is_not);
    RUN(snomed_indications_go_to_dg1_as_sct_with_the_bodysite_side);
    RUN(a_procedure_the_practice_chose_is_said_in_a_note);
    RUN(change_and_cancel_use_xo_and_ca);
    RUN(study_uid_is_the_decimal_of_the_uuid_and_stable);
    RUN(hl7_times_without_offset_are_paris_time);
    RUN(enqueue_writes_the_order_in_the_referral_commit);
    RUN(order_reads_a_stored_patient_only_of_the_referrals_organisation);
    RUN(pull_leases_and_an_expired_lease_offers_the_same_message_again);
    RUN(refused_ack_makes_a_dead_letter_shown_on_the_task);
    RUN(acks_for_unknown_messages_and_bad_bodies_are_refused);
    RUN(ok_and_scheduled_move_the_task_and_record_the_filler);
    RUN(siu_makes_a_valid_appointment_linked_from_the_task);
    RUN(oru_makes_a_valid_report_and_completes_the_referral);
    RUN(unknown_order_is_answered_ae_and_changes_nothing);
    RUN(the_same_message_twice_gets_the_same_ack_and_one_effect);
    RUN(duplicates_are_per_client_and_a_client_speaks_only_for_its_sites);
    RUN(unreadable_or_unsupported_messages_get_ar);
    RUN(a_revoked_referral_stays_revoked_when_the_ris_schedules_it);
    {
        char cmd[160];

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_summary();
}
