/* fuzz_conceptmap.c -- libFuzzer target for the bytes the mapping module reads from outside:
 * a ConceptMap file, a triage-rules.json file, an indication-synonyms.json file and a
 * $translate Parameters body. Each input is tried as all four; whatever loads is then used
 * (translate, check, a referral decision reading words) and released. Seeds:
 * tests/fuzz/corpus/conceptmap/; dictionary: tests/fuzz/conceptmap.dict. */
#include "mapping/mapping.h"

#include <stdint.h>
#include <string.h>

static const char fixed_map[] =
    "{\"resourceType\":\"ConceptMap\",\"id\":\"f\",\"url\":\"urn:f\",\"version\":\"1\","
    "\"status\":\"active\",\"group\":[{\"source\":\"http://hl7.org/fhir/sid/icd-10\",\"target\":"
    "\"" MAP_CS_PROCEDURE "\",\"element\":[{\"code\":\"M54.5\",\"target\":[{\"code\":"
    "\"facet-joint-injection\",\"equivalence\":\"relatedto\"},{\"code\":"
    "\"sacroiliac-joint-injection\",\"equivalence\":\"relatedto\",\"dependsOn\":[{\"property\":"
    "\"" MAP_PROP_REGION "\",\"value\":\"sacral\"}]}]}]},{\"source\":\"" MAP_CS_PROCEDURE
    "\",\"target\":\"" MAP_SYS_CCAM "\",\"element\":[{\"code\":\"facet-joint-injection\","
    "\"target\":[{\"code\":\"LHLH003\",\"equivalence\":\"equivalent\"}]}]}]}";

static void use_set(struct map_set *set)
{
    struct map_match m[8];
    struct map_query q = {.system = MAP_SYS_ICD10, .code = "M54.56", .region = MAP_REGION_SACRAL};
    struct map_report r;
    struct gw_error err;
    json_t *sr = json_pack("{s:s, s:s, s:[{s:[{s:s, s:s}], s:s}], s:[{s:s}], s:[{s:[{s:s, s:s}]}]}",
                           "resourceType", "ServiceRequest", "authoredOn", "2026-03-02",
                           "reasonCode", "coding", "system", MAP_SYS_ICD10, "code", "J45.9", "text",
                           "Lombosciatique gauche L5-S1 depuis 10 semaines", "note", "text",
                           "pas de déficit, hernie discale C6-C7 droite", "code", "coding",
                           "system", MAP_SYS_CCAM, "code", "LHLH003");
    json_t *cond =
        json_pack("{s:s, s:s, s:{s:[{s:s, s:s}]}}", "resourceType", "Condition", "onsetDateTime",
                  "2026-02-01", "code", "coding", "system", MAP_SYS_ICD10, "code", "E11");
    json_t *const conds[1] = {cond};
    struct map_referral ref = {.service_request = sr, .conditions = conds, .n_conditions = 1};
    struct map_decision d;

    map_translate(set, &q, m, 8, NULL);
    q.target_system = MAP_SYS_CCAM;
    map_translate(set, &q, m, 8, NULL);
    if (map_check_set(set, &r, &err) == GW_OK)
        map_report_cleanup(&r);
    if (sr && cond && map_referral_decide(set, &ref, &d, &err) == GW_OK) {
        json_decref(map_decision_code(&d));
        json_decref(map_decision_json(&d));
        map_decision_cleanup(&d);
    }
    json_decref(map_set_bundle(set, "https://h", NULL));
    json_decref(sr);
    json_decref(cond);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct map_file files[2] = {{"fuzz.json", (const char *)data, size},
                                {"fixed.json", fixed_map, sizeof fixed_map - 1}};
    struct map_set *set = NULL;
    struct gw_error err;
    json_t *params, *out = NULL;

    if (map_set_load_files(files, 1, "fuzz", &set, &err) == GW_OK) {
        use_set(set);
        map_set_unref(set);
    }
    files[0].name = "triage-rules.json";
    if (map_set_load_files(files, 2, "fuzz", &set, &err) == GW_OK) {
        use_set(set);
        map_set_unref(set);
    }
    files[0].name = "indication-synonyms.json";
    if (map_set_load_files(files, 2, "fuzz", &set, &err) == GW_OK) {
        use_set(set);
        map_set_unref(set);
    }
    params = json_loadb((const char *)data, size, 0, NULL);
    if (params && map_set_load_files(files + 1, 1, "fixed", &set, &err) == GW_OK) {
        if (map_translate_params(set, params, &out, &err) == GW_OK)
            json_decref(out);
        map_set_unref(set);
    }
    json_decref(params);
    return 0;
}
