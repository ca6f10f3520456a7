/* mapping_int.h -- the mapping module's own types, for its .c files and its unit tests only.
 *
 * Invariants of a loaded set: every string pointer points into a json_t document the set
 * keeps (never modified after parse) or into the set's arena; the index is sorted by
 * (system, key) and never changes; nothing is freed before the last map_set_unref().
 */
#ifndef GW_MAPPING_INT_H
#define GW_MAPPING_INT_H

#include "mapping/mapping.h"

#include <stdatomic.h>

/* ---------------------------------------------------------------- arena */

struct map_chunk;
struct map_arena {
    struct map_chunk *head;
};
void *map_arena_alloc(struct map_arena *a, size_t n); /* zeroed, NULL on OOM */
char *map_arena_strdup(struct map_arena *a, const char *s);
void map_arena_free(struct map_arena *a);

/* ---------------------------------------------------------------- systems */

enum map_norm {
    MAP_NORM_EXACT, /* compared as written (SNOMED CT, CPT, LOINC, ours) */
    MAP_NORM_UPPER, /* case-insensitive (CCAM, ATC) */
    MAP_NORM_ICD,   /* dot, case, '+', '*', dagger ignored; prefix fallback */
};
/* How codes of system (canonical) compare. */
enum map_norm map_system_norm(const char *system);
/* The system whose rows serve when system has none (ICD-10-CM -> ICD-10), or NULL. */
const char *map_system_fallback(const char *system);
bool map_system_known(const char *system);
/* Writes the normalised key of code into buf (cap bytes with NUL). Returns its length, or -1
 * when the code is empty, too long or has characters the system never uses. */
int map_code_key(const char *system, const char *code, char *buf, size_t cap);

/* ---------------------------------------------------------------- maps */

enum map_dep_kind { MAP_DEP_REGION, MAP_DEP_LATERALITY, MAP_DEP_GUIDANCE };

struct map_dep {
    enum map_dep_kind kind;
    int value; /* enum map_region / map_laterality / map_guidance */
};

struct map_group;

struct map_target {
    const char *code, *display, *comment; /* code NULL only when unmatched */
    enum map_equivalence eq;
    const struct map_dep *deps;
    size_t n_deps;
};

struct map_element {
    const char *code, *display; /* as written */
    const char *key;            /* normalised */
    const struct map_target *targets;
    size_t n_targets;
    const struct map_group *group;
    size_t index; /* position in the group */
};

struct map_cmap;

struct map_group {
    const char *source, *target; /* canonical */
    const char *source_written, *target_written;
    const struct map_cmap *map;
    const struct map_element *elements;
    size_t n_elements;
    size_t index;
};

struct map_cmap {
    const char *id, *url, *version, *name, *status, *file;
    bool is_retired;
    json_t *doc; /* owned, never modified */
    const struct map_group *groups;
    size_t n_groups;
};

struct map_entry {
    const char *system; /* canonical source system */
    const char *key;
    const struct map_element *el;
};

/* A code list of the rules and indication files: codes and/or prefixes of one system. */
struct map_codeset {
    const char *system; /* canonical */
    const char **codes; /* normalised keys */
    size_t n_codes;
    const char **prefixes; /* normalised keys */
    size_t n_prefixes;
};

struct map_obs_rule {
    const struct map_codeset *codes; /* Observation.code */
    size_t n_codes;
    const struct map_codeset *values; /* valueCodeableConcept; none = presence is enough */
    size_t n_values;
};

enum map_rule_kind { MAP_RULE_CODES, MAP_RULE_ONSET };

struct map_rule {
    enum map_rule_kind kind;
    const char *code, *display, *message;
    long min_days; /* MAP_RULE_ONSET */
    const struct map_codeset *conditions;
    size_t n_conditions;
    const struct map_obs_rule *observations;
    size_t n_observations;
    const struct map_codeset *medications;
    size_t n_medications;
    /* "unrecorded": flag when no observation of the rule was recorded for such a patient */
    bool has_unrecorded;
    const char *unrecorded_gender;
    long unrecorded_min_age, unrecorded_max_age;
};

struct map_indication {
    const char *id, *label;
    const struct map_codeset *codings; /* one code per entry, in codes[0] */
    size_t n_codings;
};

struct map_procedure_def {
    const char *code, *display;
    const char **systems; /* canonical systems the procedure should have codes in */
    size_t n_systems;
};

/* ---------------------------------------------------------------- words (synonyms.c, words.c) */

#define MAP_WORDS_MAX      64   /* characters of a phrase once folded, spaces removed */
#define MAP_WORDS_TEXT_MAX 8192 /* bytes of one text read for words; the rest is not read */
#define MAP_WORDS_FIELDS   32   /* texts read per referral */
#define MAP_WORDS_MAX_DAYS 36500

/* A phrase as the reader compares it: accents folded, lower case, spaces and punctuation
 * removed ("canal lombaire étroit" -> "canallombaireetroit"). */
struct map_phrase {
    const char *compact;
    size_t len, n_tokens;
};

struct map_wordlist {
    const struct map_phrase *items;
    size_t n;
};

/* One entry of indication-synonyms.json: phrases that mean an indication code. */
struct map_synonym {
    const char *system, *code, *display; /* canonical system */
    const char *by_region[5];            /* the code for each enum map_region; NULL: code */
    enum map_region region;              /* the entry's own region (an abbreviation's), or NONE */
    enum map_laterality laterality;      /* the entry's own side ("LSG"), or NONE */
    struct map_wordlist phrases;
    size_t index; /* position in the file: the first entry that matches wins */
};

struct map_level {
    char letter; /* "c", "d", "t", "l", "s" */
    enum map_region region;
    long max; /* highest vertebra number */
};

struct map_amount {
    const char *word; /* a number word ("six") or a unit ("semaines") */
    long value;       /* the number, or the unit in days */
};

struct map_synonyms {
    const char *file, *version;
    struct map_synonym *entries;
    size_t n_entries;
    struct map_wordlist neg_before, neg_after, neg_end; /* negation cues and scope ends */
    struct map_wordlist sides[4];                       /* by enum map_laterality; [0] unused */
    struct map_wordlist regions[5];                     /* by enum map_region; [0] unused */
    struct map_wordlist markers;                        /* words before a duration */
    struct map_wordlist not_level_after;                /* "vitamine" before "D3" */
    struct map_level *levels;
    size_t n_levels;
    struct map_amount *numbers, *units;
    size_t n_numbers, n_units;
};

/* What the words of a referral say (map_words_read). Strings are malloc'ed. */
struct map_words {
    const struct map_synonym *entry; /* the indication read, NULL when none */
    const char *code;                /* the entry's code for the region (borrowed from the set) */
    char *phrase;                    /* the words as written */
    char *expr;                      /* "ServiceRequest.note[0].text" */
    long reason_index;               /* the reasonCode the words are in, -1 otherwise */
    enum map_region region;          /* from the entry, a spinal level or a region word */
    char *region_words;              /* "L5-S1" */
    enum map_laterality laterality;  /* from the entry or side words */
    char *side_words;                /* "gauche" */
    long days;                       /* a duration, -1 when none was read */
    char *days_words, *days_expr;    /* "depuis 10 semaines", where */
    size_t n_cut;                    /* texts longer than MAP_WORDS_TEXT_MAX, read in part */
};

struct map_set {
    atomic_long refs;
    struct map_arena arena;
    char *label;
    int64_t loaded_at_ms;
    struct map_cmap *maps;
    size_t n_maps;
    struct map_entry *index;
    size_t n_index;
    json_t *rules_doc, *indications_doc, *synonyms_doc;
    const char *rules_file, *indications_file;
    const char *rules_version, *indications_version;
    struct map_synonyms *synonyms; /* NULL without indication-synonyms.json */
    struct map_rule *rules;
    size_t n_rules;
    struct map_indication *indications;
    size_t n_indications;
    struct map_procedure_def *procedures;
    size_t n_procedures;
};

/* ---------------------------------------------------------------- between files */

/* load.c: parses and validates one ConceptMap document (stolen: doc_new) into m. */
enum gw_code map_cmap_parse(struct map_set *set, const char *file, json_t *doc_new,
                            struct map_cmap *m, struct gw_error *err);
/* rules.c: the triage rules and indication list files. */
enum gw_code map_rules_parse(struct map_set *set, const char *file, json_t *doc,
                             struct gw_error *err);
enum gw_code map_indications_parse(struct map_set *set, const char *file, json_t *doc,
                                   struct gw_error *err);
/* synonyms.c: indication-synonyms.json. */
#define MAP_SYNONYMS_FILE "indication-synonyms.json"
enum gw_code map_synonyms_parse(struct map_set *set, const char *file, json_t *doc,
                                struct gw_error *err);
/* words.c: folds text (accents, case) into out without spaces or punctuation; *n_tokens gets
 * the number of words. Returns the length, 0 when there is no word, -1 when it does not fit
 * in cap bytes (with NUL), -2 when out of memory. */
long map_words_compact(const char *text, size_t len, char *out, size_t cap, size_t *n_tokens);
/* words.c: reads the words of ref (reasonCode[].text, the Conditions' code.text, note[].text,
 * in that order). With want_indication, the first entry of the synonym table that a text says
 * (not negated) is the indication; region (may be NONE) picks its code by region. Durations
 * are always read. On GW_OK *out is filled (map_words_cleanup()); GW_E_NOMEM otherwise. */
enum gw_code map_words_read(const struct map_set *set, const struct map_referral *ref,
                            bool want_indication, enum map_region region, struct map_words *out,
                            struct gw_error *err);
void map_words_cleanup(struct map_words *w);
/* rules.c: true when (system, code) is in cs (code or prefix). */
bool map_codeset_has(const struct map_codeset *cs, size_t n, const char *system, const char *code);
/* translate.c: sorts the index of a set whose maps are parsed. */
enum gw_code map_index_build(struct map_set *set, struct gw_error *err);
/* translate.c: the index range of (system, key): [*lo, *hi). */
void map_index_range(const struct map_set *set, const char *system, const char *key, size_t *lo,
                     size_t *hi);
/* triage.c: appends the flags of the practice's rules to d. */
enum gw_code map_triage_flags(const struct map_set *set, const struct map_referral *ref,
                              struct map_decision *d, struct gw_error *err);
/* referral.c helpers shared with triage.c and check.c. */
const char *map_json_str(json_t *obj, const char *key);
bool map_is_indication_condition(const struct map_set *set, json_t *sr, json_t *cond);
/* Appends a malloc'ed copy of a printf-formatted warning to d. Returns -1 on OOM. */
int map_decision_warn(struct map_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A malloc'ed printf (NULL on OOM or too long for MAP_TEXT_MAX). */
#define MAP_TEXT_MAX 2048
char *map_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* JSON paths for messages are formatted with gw_format() into this many bytes. */
#define MAP_PATH_MAX 192

#endif
