/* test_torture.c -- out-of-memory torture (STYLE.md "OOM torture"): each
 * operation below runs once to count its allocations, then again with
 * allocation 1, 2, ... N failing. Every failure must come back as an error,
 * never a crash; under `make check` AddressSanitizer and LeakSanitizer also
 * prove no failure path leaks or touches freed memory.
 *
 * The binary is linked with -Wl,--wrap for malloc, calloc, realloc, strdup
 * and strndup, so the gateway's own allocations come through here. The
 * libraries' are not: Jansson 2.14's parser (json_loadb) and libxml2 2.9.14's
 * xmlParseDocument both dereference NULL after an allocation fails inside
 * them (seen with their allocator hooks pointed here), which is theirs to fix;
 * what this proves is that every allocation the gateway makes is checked. */
#include "check.h"
#include "fhir/fhir.h"
#include "hl7v2/hl7v2.h"
#include "mapping/mapping.h"

#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static long countdown = -1; /* fail when it reaches 0; -1: never */
static long allocations;
static int injected;

static int should_fail(void)
{
    allocations++;
    if (countdown < 0)
        return 0;
    if (--countdown == 0) {
        injected++;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return should_fail() ? NULL : __real_strndup(s, n);
}

/* ------------------------------------------------------------ inputs */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = __real_malloc((size_t)n + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

static char *oru, *referral;
static size_t oru_len, referral_len;
static struct map_file maps[16];
static size_t n_maps;

static void load_inputs(void)
{
    static const char *names[] = {"indication-procedure.json", "procedure-codes.json",
                                  "region-laterality.json",    "indications.json",
                                  "triage-rules.json",         "indication-synonyms.json"};
    char path[256];
    size_t i, len;

    oru = slurp("tests/data/hl7v2/oru_r01.hl7", &oru_len);
    referral = slurp("bench/servicerequest.json", &referral_len);
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "mappings/%s", names[i]);
        maps[n_maps].name = names[i];
        maps[n_maps].data = slurp(path, &len);
        maps[n_maps].len = len;
        if (maps[n_maps].data)
            n_maps++;
    }
}

/* ------------------------------------------------------------ operations */

/* Each returns 0 when it completed, -1 when it reported a failure. */

static int hl7_round(void)
{
    struct hl7_msg *msg = NULL;
    struct hl7_err where;
    struct gw_error err;
    struct hl7_ack_spec spec = {0};
    char *ack = NULL;
    size_t ack_len;
    int rc = -1;

    if (hl7_msg_parse(oru, oru_len, &msg, &where, &err) != GW_OK)
        return -1;
    spec.msg = msg;
    spec.code = "AA";
    spec.control_id = "ACK1";
    if (hl7_msg_get(msg, "PID", 0, 5, 0, 1, 1) &&
        hl7_ack_build(&spec, &ack, &ack_len, &err) == GW_OK)
        rc = 0;
    free(ack);
    hl7_msg_destroy(msg);
    return rc;
}

static int fhir_round(void)
{
    json_t *outcome = fhir_outcome_create(), *res = NULL, *back = NULL;
    struct gw_buf json, xml;
    struct gw_error err;
    int rc = -1;

    gw_buf_init(&json, 1 << 20);
    gw_buf_init(&xml, 1 << 20);
    if (outcome && fhir_json_parse(referral, referral_len, NULL, &res, outcome, &err) == GW_OK &&
        fhir_validate(res, outcome) == 0 &&
        fhir_validate_referral(res, NULL, NULL, NULL, outcome) >= 0 &&
        fhir_json_write(res, 0, &json, &err) == GW_OK &&
        fhir_xml_write(res, 0, &xml, &err) == GW_OK &&
        fhir_xml_parse(xml.data, xml.len, NULL, &back, outcome, &err) == GW_OK)
        rc = 0;
    gw_buf_cleanup(&json);
    gw_buf_cleanup(&xml);
    json_decref(back);
    json_decref(res);
    json_decref(outcome);
    return rc;
}

/* A referral whose indication is only words: the synonym table reads it, the practice
 * chooses the procedure. 0 when both completed. */
static int words_round(const struct map_set *set)
{
    json_t *sr = json_pack("{s:s, s:s, s:[{s:s}], s:[{s:s}]}", "resourceType", "ServiceRequest",
                           "authoredOn", "2026-03-02", "reasonCode", "text",
                           "Lombosciatique gauche L5-S1 depuis 10 jours, pas de déficit", "note",
                           "text", "IRM: hernie discale L5-S1 gauche");
    struct map_referral ref = {.service_request = sr};
    struct map_choice c = {MAP_SYS_CCAM, "LHLH002", MAP_REGION_LUMBAR, 0, 0};
    struct map_decision d;
    struct gw_error err;
    int rc = -1;

    if (sr && map_referral_decide(set, &ref, &d, &err) == GW_OK) {
        if (d.is_from_text && map_decision_mark_text(&d, sr) == 0 &&
            map_decision_choose(set, &d, &c, &err) == GW_OK)
            rc = 0;
        map_decision_cleanup(&d);
    }
    json_decref(sr);
    return rc;
}

static int mapping_round(void)
{
    struct map_set *set = NULL;
    struct map_decision d;
    struct gw_error err;
    json_t *sr = json_loadb(referral, referral_len, 0, NULL);
    struct map_referral ref = {.service_request = sr};
    int rc = -1;

    if (sr && map_set_load_files(maps, n_maps, "torture", &set, &err) == GW_OK &&
        map_referral_decide(set, &ref, &d, &err) == GW_OK) {
        json_t *code = map_decision_code(&d);

        rc = code || d.is_unmapped ? 0 : -1;
        json_decref(code);
        map_decision_cleanup(&d);
        if (rc == 0)
            rc = words_round(set);
    }
    map_set_unref(set);
    json_decref(sr);
    return rc;
}

/* Runs op with every allocation failing in turn; true when it always came
 * back (a crash never returns) and completed once nothing was injected. */
static bool torture(int (*op)(void), long *n_runs)
{
    long k, total;

    countdown = -1;
    allocations = 0;
    if (op() != 0)
        return false; /* must work without injection */
    total = allocations;
    for (k = 1; k <= total; k++) {
        countdown = k;
        injected = 0;
        op();
        (*n_runs)++;
    }
    countdown = -1;
    printf("  %ld allocations, each failed once\n", total);
    return total > 0;
}

static void hl7v2_survives_every_allocation_failure(void)
{
    long runs = 0;

    CHECK(oru != NULL);
    CHECK(torture(hl7_round, &runs));
    CHECK(runs >= 5);
}

static void fhir_survives_every_allocation_failure(void)
{
    long runs = 0;

    CHECK(referral != NULL);
    CHECK(torture(fhir_round, &runs));
    CHECK(runs >= 10);
}

static void mapping_survives_every_allocation_failure(void)
{
    long runs = 0;

    CHECK(n_maps == 6);
    CHECK(torture(mapping_round, &runs));
    CHECK(runs >= 10);
}

int main(void)
{
    size_t i;

    fhir_init();
    load_inputs();
    RUN(hl7v2_survives_every_allocation_failure);
    RUN(fhir_survives_every_allocation_failure);
    RUN(mapping_survives_every_allocation_failure);
    free(oru);
    free(referral);
    for (i = 0; i < n_maps; i++)
        free((void *)maps[i].data);
    return check_summary();
}
