/* mapping.h -- indications to procedures through FHIR R4 ConceptMaps, and triage flags.
 *
 * A map set is everything loaded from one mappings/ folder: the ConceptMap JSON files, the
 * practice's list of indications (indications.json), its triage rules (triage-rules.json) and
 * the synonym table that reads indications from the GP's words (indication-synonyms.json).
 * Translation follows the maps: an indication code (ICD-10 / CIM-10, SNOMED CT) maps to the
 * practice's procedure code (MAP_CS_PROCEDURE), which maps on to CCAM, CPT and SNOMED CT;
 * dependsOn on spinal region, laterality and image guidance picks between targets.
 *
 * Owns:      immutable map sets (the parsed files, their lookup index, an arena of strings)
 *            and the holder that swaps sets on reload.
 * Promises:  a set loads whole or not at all; a failed load names the file and the JSON path
 *            at fault; a set never changes once loaded; map_translate() allocates nothing.
 * Never:     reads files after loading; keeps a pointer into a caller's json_t past a call;
 *            aborts on bad input (bad input is GW_E_INPUT with a message).
 * Threads:   a map_set is read-only and may be shared by any number of threads; its reference
 *            count is atomic; map_holder functions may be called from any thread.
 * Ownership: json_t arguments are borrowed; json_t results are new references; strings in
 *            map_match point into the set and live as long as the caller's reference to it.
 */
#ifndef GW_MAPPING_H
#define GW_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/util.h"

/* ---------------------------------------------------------------- code systems */

#define MAP_SYS_ICD10   "http://hl7.org/fhir/sid/icd-10"
#define MAP_SYS_ICD10CM "http://hl7.org/fhir/sid/icd-10-cm"
#define MAP_SYS_SNOMED  "http://snomed.info/sct"
#define MAP_SYS_CCAM    "https://smt.esante.gouv.fr/terminologie-ccam"
#define MAP_SYS_CPT     "http://www.ama-assn.org/go/cpt"
#define MAP_SYS_LOINC   "http://loinc.org"
#define MAP_SYS_ATC     "http://www.whocc.no/atc"

/* The gateway's own canonical base and the code systems it defines (mappings/README.md). */
#define MAP_BASE          "https://fhir-gateway.example/fhir"
#define MAP_CS_PROCEDURE  MAP_BASE "/CodeSystem/spinal-injection"
#define MAP_CS_REGION     MAP_BASE "/CodeSystem/spinal-region"
#define MAP_CS_LATERALITY MAP_BASE "/CodeSystem/laterality"
#define MAP_CS_GUIDANCE   MAP_BASE "/CodeSystem/image-guidance"
#define MAP_CS_TRIAGE     MAP_BASE "/CodeSystem/triage-flag"
/* dependsOn.property values (and $translate dependency.element values). */
#define MAP_PROP_REGION     MAP_BASE "/ConceptMap/property/region"
#define MAP_PROP_LATERALITY MAP_BASE "/ConceptMap/property/laterality"
#define MAP_PROP_GUIDANCE   MAP_BASE "/ConceptMap/property/guidance"
/* Extension on ServiceRequest.code naming the maps (url|version) that chose the code. */
#define MAP_EXT_CHOSEN_BY MAP_BASE "/StructureDefinition/code-chosen-by-map"
/* Extension on ServiceRequest.code: the practice chose the procedure (valueReference to the
 * Task that records the decision). */
#define MAP_EXT_CHOSEN_BY_PRACTICE MAP_BASE "/StructureDefinition/code-chosen-by-practice"
/* Extension on a reasonCode coding the gateway read from the GP's words (sub-extensions
 * "source", the FHIRPath of the text, and "words", the words read). */
#define MAP_EXT_FROM_TEXT MAP_BASE "/StructureDefinition/coding-from-text"
/* The flag (MAP_CS_TRIAGE) raised when the indication was read from words. */
#define MAP_FLAG_FROM_TEXT "indication-from-text"

/* Limits: reaching one is GW_E_LIMIT naming the file. */
#define MAP_MAX_FILE_BYTES (4 * 1024 * 1024)
#define MAP_MAX_FILES      256
#define MAP_MAX_CODE       64    /* characters in a code, after normalisation */
#define MAP_MAX_ELEMENTS   50000 /* rows over all maps of a set */
#define MAP_MAX_TARGETS    64    /* targets of one element */
#define MAP_MAX_DEPENDS    8     /* dependsOn (and product) entries of one target */

/* Returns the canonical URI for system (an alias such as the CIM-10 URI or an OID gives WHO
 * ICD-10), or system itself when it is not one we know, or NULL for NULL. */
const char *map_system_canonical(const char *system);
/* Short name of a known system ("ICD-10", "CCAM"...) or NULL. */
const char *map_system_name(const char *system);

/* ---------------------------------------------------------------- small enums */

enum map_region {
    MAP_REGION_NONE = 0,
    MAP_REGION_CERVICAL,
    MAP_REGION_THORACIC,
    MAP_REGION_LUMBAR,
    MAP_REGION_SACRAL,
};
enum map_laterality { MAP_LAT_NONE = 0, MAP_LAT_LEFT, MAP_LAT_RIGHT, MAP_LAT_BILATERAL };
enum map_guidance { MAP_GUIDANCE_NONE = 0, MAP_GUIDANCE_FLUOROSCOPY, MAP_GUIDANCE_CT };

/* R4 ConceptMapEquivalence, in the order of the value set. */
enum map_equivalence {
    MAP_EQ_RELATEDTO,
    MAP_EQ_EQUIVALENT,
    MAP_EQ_EQUAL,
    MAP_EQ_WIDER,
    MAP_EQ_SUBSUMES,
    MAP_EQ_NARROWER,
    MAP_EQ_SPECIALIZES,
    MAP_EQ_INEXACT,
    MAP_EQ_UNMATCHED,
    MAP_EQ_DISJOINT,
};

/* Codes of MAP_CS_REGION / _LATERALITY / _GUIDANCE ("lumbar", "left", "ct") and back.
 * _name() gives NULL for _NONE; _parse() is case-sensitive and returns false on junk. */
const char *map_region_name(enum map_region r);
bool map_region_parse(const char *s, enum map_region *out);
const char *map_laterality_name(enum map_laterality l);
bool map_laterality_parse(const char *s, enum map_laterality *out);
const char *map_guidance_name(enum map_guidance g);
bool map_guidance_parse(const char *s, enum map_guidance *out);
const char *map_equivalence_name(enum map_equivalence e);
bool map_equivalence_parse(const char *s, enum map_equivalence *out);

/* ---------------------------------------------------------------- sets */

struct map_set;

/* One file given from memory (tests, fuzzing): name as it would be in the folder. */
struct map_file {
    const char *name; /* "indication-procedure.json", "triage-rules.json", "indications.json" */
    const char *data;
    size_t len;
};

/* Loads every *.json file of dir (sorted by name; README and other files ignored).
 * triage-rules.json and indications.json are the rules and the indication list; every other
 * JSON file must be a valid R4 ConceptMap. On GW_OK *out is a new set (reference count 1)
 * the caller releases with map_set_unref(); on failure *out is NULL and err names the file and
 * the JSON path at fault (GW_E_INPUT), or says why the folder could not be read (GW_E_IO). */
enum gw_code map_set_load(const char *dir, struct map_set **out, struct gw_error *err);
/* As map_set_load() from files in memory; label names the set in messages. */
enum gw_code map_set_load_files(const struct map_file *files, size_t n, const char *label,
                                struct map_set **out, struct gw_error *err);
/* Adds a reference (returns set; NULL-safe) / drops one, freeing the set at zero. */
struct map_set *map_set_ref(struct map_set *set);
void map_set_unref(struct map_set *set);

/* The folder or label the set came from, when it was loaded, and how many ConceptMaps. */
const char *map_set_label(const struct map_set *set);
int64_t map_set_loaded_at_ms(const struct map_set *set);
size_t map_set_count(const struct map_set *set);
/* {"label","loadedAt","maps":[{"id","url","version","file"}],"rules":"version",
 *  "indications":"version","synonyms":"version"}: for /readyz and logs. New reference, NULL
 *  on OOM. */
json_t *map_set_summary(const struct map_set *set);

/* GET /fhir/ConceptMap: a searchset Bundle of the loaded ConceptMaps (copies), each entry's
 * fullUrl base_url + "/ConceptMap/" + id; url (may be NULL) keeps only maps with that url.
 * New reference, NULL on OOM. */
json_t *map_set_bundle(const struct map_set *set, const char *base_url, const char *url);
/* GET /fhir/ConceptMap/{id}: a copy of the ConceptMap (new reference) or NULL when absent. */
json_t *map_set_read(const struct map_set *set, const char *id);

/* ---------------------------------------------------------------- holder (SIGHUP) */

struct map_holder;

/* Loads dir into a new holder. On failure *out is NULL and err says why. */
enum gw_code map_holder_create(const char *dir, struct map_holder **out, struct gw_error *err);
void map_holder_destroy(struct map_holder *h);
/* The current set with a new reference: the caller calls map_set_unref() when done. */
struct map_set *map_holder_get(struct map_holder *h);
/* Loads the folder again; on success the new set replaces the old one (readers holding the
 * old one keep it until they unref); on failure the old set stays in force, the error is
 * remembered for map_holder_error() and returned. */
enum gw_code map_holder_reload(struct map_holder *h, struct gw_error *err);
/* True when the last reload failed (err, may be NULL, gets its message): for /readyz. */
bool map_holder_error(struct map_holder *h, struct gw_error *err);

/* ---------------------------------------------------------------- translate */

struct map_query {
    const char *system;        /* required; aliases accepted */
    const char *code;          /* required; ICD-10 with or without the dot */
    const char *target_system; /* NULL: every target, plus the codes behind a procedure */
    const char *url;           /* NULL, or only this ConceptMap: "url" or "url|version" */
    enum map_region region;
    enum map_laterality laterality;
    enum map_guidance guidance;
};

struct map_match {
    const char *system; /* target system (canonical) */
    const char *code;   /* NULL when equivalence is unmatched */
    const char *display;
    const char *comment;
    enum map_equivalence equivalence;
    const char *map_id, *map_url, *map_version; /* the ConceptMap that gave this target */
    const char *source_system;                  /* canonical system of the row that matched */
    const char *source_code;                    /* that row's code as written in the map */
    const char *via_code;                       /* the practice's procedure code when chained */
    bool is_prefix;                             /* the row is less specific than the query */
    bool is_chained;                            /* reached through a procedure code */
};

/* Translates q. Rules: the code is normalised for its system (ICD-10: dot, case, trailing
 * '+', '*' and dagger ignored) and, for ICD-10, the most specific row that is a prefix of it
 * is used (M51.16 -> M51.1); ICD-10-CM falls back on WHO ICD-10 rows. A target applies when
 * every dependsOn is satisfied by q; of the targets of one row that apply, only those with
 * the most dependsOn are kept (a target without dependsOn is the default). Targets in
 * MAP_CS_PROCEDURE are followed one step on to the systems behind them (is_chained).
 * Writes at most max matches into out, in map order, and returns how many were written;
 * *n_total (may be NULL) gets how many there were. Allocates nothing. */
size_t map_translate(const struct map_set *set, const struct map_query *q, struct map_match *out,
                     size_t max, size_t *n_total);

/* Appends a readable account of map_translate(q) to b (command line `translate`). Returns
 * the number of matches. */
size_t map_translate_print(const struct map_set *set, const struct map_query *q, struct gw_buf *b);

/* $translate: params is the R4 Parameters of the request (borrowed): code+system(+version),
 * coding or codeableConcept; url, conceptMapVersion, source, target, targetsystem, and
 * dependency (element = a MAP_PROP_* uri or "region"/"laterality"/"guidance" or
 * "ServiceRequest.bodySite"; concept = a coding in our region/laterality/guidance systems or a
 * SNOMED CT body structure or laterality). On GW_OK *out is a new Parameters with result,
 * message and match (equivalence, concept, source = the map url, product = region and
 * laterality used); GW_E_INPUT when the request is malformed (err says which parameter),
 * GW_E_NOMEM. */
enum gw_code map_translate_params(const struct map_set *set, json_t *params, json_t **out,
                                  struct gw_error *err);
/* Builds the Parameters of a GET $translate from its query parameters (name/value pairs,
 * already URL-decoded): code, system, version, url, conceptMapVersion, source, target,
 * targetsystem, and region / laterality / guidance as dependencies. Unknown names are
 * GW_E_INPUT. On GW_OK *out is a new reference. */
enum gw_code map_params_from_query(const char *const *names, const char *const *values, size_t n,
                                   json_t **out, struct gw_error *err);

/* ---------------------------------------------------------------- referral decision */

/* What the referral path hands over; every json_t is borrowed for the call. Resources are
 * addressed in flags and warnings by type and index: Condition[i] is conditions[i],
 * Observation[i] is observations[i], MedicationStatement[i] / MedicationRequest[i] count the
 * entries of medications of that type in order. */
struct map_referral {
    json_t *service_request; /* required */
    json_t *const *conditions;
    size_t n_conditions;
    json_t *patient; /* may be NULL */
    json_t *const *observations;
    size_t n_observations;
    json_t *const *medications; /* MedicationStatement and MedicationRequest */
    size_t n_medications;
};

struct map_coding {
    char *system, *code, *display; /* all NULL when absent */
};

struct map_flag {
    char *code;       /* in MAP_CS_TRIAGE: "onset-under-threshold", "pregnancy", ... */
    char *display;    /* short label from the rules */
    char *message;    /* the practice's text for the RIS (NTE) and the Task */
    char *why;        /* what was found: "Condition code ICD-10 E11.9 matches diabetes" */
    char *expression; /* the element: "Condition[0].onsetDateTime" */
};

enum map_gp_code {
    MAP_GP_ABSENT,    /* ServiceRequest.code was empty: fill it from map_decision_code() */
    MAP_GP_AGREES,    /* the GP's code is one the map allows for the chosen procedure */
    MAP_GP_DIFFERS,   /* the GP's code differs from the map: keep it, warn */
    MAP_GP_UNCHECKED, /* the GP's code is in a system we cannot compare, or nothing mapped */
};

struct map_decision {
    bool is_unmapped;             /* no indication mapped: Task businessStatus triage */
    bool is_from_text;            /* the indication was read from words: the practice confirms */
    bool is_chosen_by_practice;   /* map_decision_choose() set the procedure */
    struct map_coding indication; /* the coding that chose the procedure */
    char *indication_expression;  /* "ServiceRequest.reasonCode[0].coding[0]" */
    struct map_coding procedure;  /* in MAP_CS_PROCEDURE */
    struct map_coding ccam, snomed, cpt;
    enum map_region region;
    char *region_expression; /* element it came from, NULL when unknown */
    enum map_laterality laterality;
    char *laterality_expression;
    enum map_guidance guidance; /* NONE: fluoroscopy, the default */
    char *text_words;           /* is_from_text: the words read ("lombosciatique") */
    long text_reason_index;     /* is_from_text: the reasonCode holding them, -1 otherwise */
    long text_days;             /* a duration read from the words, in days; -1 when none */
    char *text_days_words;      /* "depuis 10 semaines" */
    char *text_days_expression; /* "ServiceRequest.reasonCode[0].text" */
    char *chosen_by; /* "url|version" of the map that chose the procedure (NULL: the practice) */
    char *codes_by;  /* "url|version" of the map that gave CCAM/CPT/SNOMED CT */
    enum map_gp_code gp_code;
    struct map_flag *flags;
    size_t n_flags;
    char **warnings; /* for the response's OperationOutcome (severity warning) */
    size_t n_warnings;
};

/* Decides the procedure, region, laterality and triage flags of a referral. On GW_OK *d is
 * filled (the caller calls map_decision_cleanup()); an unmapped indication is not an error:
 * d->is_unmapped is set with a warning. When no coding maps, the words of the referral are
 * read with the synonym table: an indication found there is marked is_from_text (with a
 * warning and the MAP_FLAG_FROM_TEXT flag) and never replaces a coded one that maps. A
 * duration read from the words feeds the onset rule when no indication Condition has an
 * onset. GW_E_INPUT when service_request is not a ServiceRequest, GW_E_NOMEM. On failure *d
 * is left empty. */
enum gw_code map_referral_decide(const struct map_set *set, const struct map_referral *ref,
                                 struct map_decision *d, struct gw_error *err);
void map_decision_cleanup(struct map_decision *d);
/* The CodeableConcept for ServiceRequest.code (CCAM, CPT, SNOMED CT and the practice's code,
 * text, and the MAP_EXT_CHOSEN_BY extension): new reference, NULL when unmapped or OOM. */
json_t *map_decision_code(const struct map_decision *d);
/* The whole decision as JSON (for the Task, logs and tests): new reference, NULL on OOM. */
json_t *map_decision_json(const struct map_decision *d);
/* Appends a flag to d (strings copied; why and expression may be NULL): GW_OK or
 * GW_E_NOMEM. Drops every flag of d. For decisions rebuilt from a stored Task. */
enum gw_code map_decision_add_flag(struct map_decision *d, const char *code, const char *display,
                                   const char *message, const char *why, const char *expression);
void map_decision_clear_flags(struct map_decision *d);
/* When d->is_from_text, adds the indication read (marked with MAP_EXT_FROM_TEXT and
 * userSelected false) to service_request (borrowed): to the codings of the reasonCode whose
 * text it came from, else as a new reasonCode; nothing when it is there already. Codings so
 * marked are never read as the GP's own: map_referral_decide() reads their words again.
 * Returns 0, or -1 when out of memory. */
int map_decision_mark_text(const struct map_decision *d, json_t *service_request);

/* The practice's choice of procedure (the triage decision). */
struct map_choice {
    const char *system; /* MAP_CS_PROCEDURE, or a CCAM / CPT code of a procedure */
    const char *code;
    enum map_region region;         /* NONE: keep the decision's */
    enum map_laterality laterality; /* NONE: keep the decision's */
    enum map_guidance guidance;     /* NONE: what the code implies, else fluoroscopy */
};

/* The practice's procedure (*procedure, borrowed from the set) that (system, code) names: the
 * procedure code itself, or a CCAM / CPT code the maps give for one (*guidance gets the
 * guidance that code depends on, NONE otherwise). False when no procedure has it. */
bool map_procedure_of_code(const struct map_set *set, const char *system, const char *code,
                           const char **procedure, enum map_guidance *guidance);
/* Applies the practice's choice to d (from map_referral_decide()): the procedure, the region
 * and laterality given, and the CCAM / CPT / SNOMED CT codes for them; d is no longer
 * unmapped nor waiting for confirmation, chosen_by is NULL and is_chosen_by_practice set.
 * GW_E_INPUT when c names no procedure of the maps (err says so), GW_E_NOMEM. */
enum gw_code map_decision_choose(const struct map_set *set, struct map_decision *d,
                                 const struct map_choice *c, struct gw_error *err);

/* ---------------------------------------------------------------- check */

enum map_severity { MAP_SEV_ERROR, MAP_SEV_WARNING, MAP_SEV_INFO };

struct map_issue {
    enum map_severity severity;
    char *kind; /* "load", "unknown-system", "duplicate", "conflict", "unmapped", ... */
    char *file; /* may be NULL */
    char *path; /* JSON path, may be NULL */
    char *message;
};

struct map_report {
    struct map_issue *issues;
    size_t n_issues, n_errors, n_warnings;
    size_t n_maps, n_rows, n_indications, n_indications_mapped;
    size_t n_synonyms, n_phrases; /* entries and phrases of indication-synonyms.json */
    struct gw_buf coverage;       /* one line per listed indication: codes -> procedure -> codes */
};

/* `mappings check DIR`: loads dir (a load failure is reported as an error issue) and checks
 * unknown systems, duplicate and conflicting targets, listed indications without a target,
 * procedures without CCAM / CPT / SNOMED CT codes, and the synonym table (a code that maps to
 * no procedure, a phrase given to two codes, a phrase that a negation starts). GW_OK when the check
 * ran (whatever it found), GW_E_NOMEM otherwise. The caller calls map_report_cleanup(). */
enum gw_code map_check_dir(const char *dir, struct map_report *r, struct gw_error *err);
/* The same checks on a loaded set. */
enum gw_code map_check_set(const struct map_set *set, struct map_report *r, struct gw_error *err);
void map_report_cleanup(struct map_report *r);
/* Appends the report as text (one issue a line, then coverage and a summary line). */
void map_report_print(const struct map_report *r, struct gw_buf *b);
/* New reference: {"errors":n,"warnings":n,"issues":[...]}; NULL on OOM. */
json_t *map_report_json(const struct map_report *r);
/* 0 without errors, 1 with: the process exit status of `mappings check`. */
int map_report_exit_status(const struct map_report *r);

#endif
