/* check.c -- `fhir-gateway mappings check`: what a person editing mappings/ needs to know
 * before a reload. Errors (exit status 1): a file that does not load, a system no one knows,
 * a row given twice, two targets that contradict each other under the same dependsOn, a listed
 * indication with no target; in the synonym table, a code that maps to no procedure and a
 * phrase given to two codes. Warnings: a procedure without CCAM / CPT / SNOMED CT code, a row
 * without targets, a missing rules, indication or synonym file, a phrase a negation starts or
 * given twice, a listed indication no phrase reads. Info: coverage, one line per listed
 * indication and procedure, and the synonym table's counts.
 *
 * Promises: the check never stops at the first problem of a loaded set: it lists them all.
 */
#include "mapping/mapping_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COVERAGE_MAX (256 * 1024)

static enum gw_code issue(struct map_report *r, enum map_severity sev, const char *kind,
                          const char *file, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static enum gw_code issue(struct map_report *r, enum map_severity sev, const char *kind,
                          const char *file, const char *path, const char *fmt, ...)
{
    char buf[MAP_TEXT_MAX];
    struct map_issue *grown, *is;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return GW_E_INTERNAL;
    grown = realloc(r->issues, (r->n_issues + 1) * sizeof *grown);
    if (!grown)
        return GW_E_NOMEM;
    r->issues = grown;
    is = &r->issues[r->n_issues];
    is->severity = sev;
    is->kind = gw_strdup(kind);
    is->file = file ? gw_strdup(file) : NULL;
    is->path = path ? gw_strdup(path) : NULL;
    is->message = gw_strdup(buf);
    r->n_issues++;
    r->n_errors += sev == MAP_SEV_ERROR;
    r->n_warnings += sev == MAP_SEV_WARNING;
    if (!is->kind || !is->message || (file && !is->file) || (path && !is->path))
        return GW_E_NOMEM;
    return GW_OK;
}

static bool usable(const struct map_target *t)
{
    return t->code && t->eq != MAP_EQ_UNMATCHED && t->eq != MAP_EQ_DISJOINT;
}

static bool same_deps(const struct map_target *a, const struct map_target *b)
{
    size_t i, j;

    if (a->n_deps != b->n_deps)
        return false;
    for (i = 0; i < a->n_deps; i++) {
        for (j = 0; j < b->n_deps; j++)
            if (a->deps[i].kind == b->deps[j].kind && a->deps[i].value == b->deps[j].value)
                break;
        if (j == b->n_deps)
            return false;
    }
    return true;
}

static const char *sysname(const char *s)
{
    const char *n = map_system_name(s);

    return n ? n : s;
}

/* ---------------------------------------------------------------- systems and rows */

static enum gw_code check_group(struct map_report *r, const struct map_group *g)
{
    const char *file = g->map->file;
    char path[96];
    enum gw_code rc = GW_OK;
    size_t i, j, k;

    gw_format(path, sizeof path, "ConceptMap.group[%zu]", g->index);
    if (!map_system_known(g->source))
        rc = issue(r, MAP_SEV_ERROR, "unknown-system", file, path, "source system %s is unknown",
                   g->source_written);
    if (!rc && !map_system_known(g->target))
        rc = issue(r, MAP_SEV_ERROR, "unknown-system", file, path, "target system %s is unknown",
                   g->target_written);
    for (i = 0; !rc && i < g->n_elements; i++) {
        const struct map_element *e = &g->elements[i];

        gw_format(path, sizeof path, "ConceptMap.group[%zu].element[%zu]", g->index, i);
        for (j = 0; !rc && j < i; j++)
            if (strcmp(g->elements[j].key, e->key) == 0)
                rc = issue(r, MAP_SEV_ERROR, "duplicate", file, path,
                           "code %s is already mapped by element[%zu]", e->code, j);
        if (!rc && e->n_targets == 0)
            rc = issue(r, MAP_SEV_WARNING, "no-target", file, path, "code %s has no target",
                       e->code);
        for (j = 0; !rc && j < e->n_targets; j++) {
            for (k = 0; !rc && k < j; k++) {
                const struct map_target *a = &e->targets[k], *b = &e->targets[j];

                if (!same_deps(a, b) || !usable(a) || !usable(b))
                    continue;
                if (strcmp(a->code, b->code) == 0)
                    rc = issue(r, MAP_SEV_WARNING, "duplicate", file, path,
                               "target[%zu] repeats target[%zu] (%s)", j, k, b->code);
                else
                    rc = issue(r, MAP_SEV_ERROR, "conflict", file, path,
                               "code %s maps to both %s and %s under the same dependsOn", e->code,
                               a->code, b->code);
            }
        }
    }
    return rc;
}

/* Rows of the same source code in different groups with the same target system. */
static enum gw_code check_across(struct map_report *r, const struct map_set *set)
{
    enum gw_code rc = GW_OK;
    size_t i, j, a, b;

    for (i = 0; !rc && i < set->n_index; i++) {
        const struct map_element *x = set->index[i].el;

        for (j = i + 1;
             !rc && j < set->n_index && strcmp(set->index[j].system, x->group->source) == 0 &&
             strcmp(set->index[j].key, x->key) == 0;
             j++) {
            const struct map_element *y = set->index[j].el;

            if (y->group == x->group || strcmp(y->group->target, x->group->target) != 0)
                continue;
            for (a = 0; !rc && a < x->n_targets; a++) {
                for (b = 0; !rc && b < y->n_targets; b++) {
                    if (!usable(&x->targets[a]) || !usable(&y->targets[b]) ||
                        !same_deps(&x->targets[a], &y->targets[b]) ||
                        strcmp(x->targets[a].code, y->targets[b].code) == 0)
                        continue;
                    rc =
                        issue(r, MAP_SEV_ERROR, "conflict", y->group->map->file, NULL,
                              "%s %s maps to %s here and to %s in %s", sysname(x->group->source),
                              x->code, y->targets[b].code, x->targets[a].code, x->group->map->file);
                }
            }
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- indications */

/* The first row of (system, code) mapping to a procedure with a usable target, or NULL. */
static const struct map_target *procedure_of(const struct map_set *set, const char *system,
                                             const char *code)
{
    char key[MAP_MAX_CODE + 1];
    int len = map_code_key(system, code, key, sizeof key);
    int min = map_system_norm(system) == MAP_NORM_ICD ? 3 : len;
    size_t lo, hi, i, k;

    for (; len > 0 && len >= min; len--) {
        key[len] = '\0';
        map_index_range(set, system, key, &lo, &hi);
        for (i = lo; i < hi; i++) {
            const struct map_element *e = set->index[i].el;

            if (strcmp(e->group->target, MAP_CS_PROCEDURE) != 0 || e->group->map->is_retired)
                continue;
            for (k = 0; k < e->n_targets; k++)
                if (usable(&e->targets[k]))
                    return &e->targets[k];
        }
    }
    if (map_system_fallback(system))
        return procedure_of(set, map_system_fallback(system), code);
    return NULL;
}

static enum gw_code check_indications(struct map_report *r, const struct map_set *set)
{
    enum gw_code rc = GW_OK;
    size_t i, j;
    char path[64];

    for (i = 0; !rc && i < set->n_indications; i++) {
        const struct map_indication *ind = &set->indications[i];
        bool all = true;

        gw_buf_printf(&r->coverage, "%-28s", ind->id);
        for (j = 0; !rc && j < ind->n_codings; j++) {
            const struct map_codeset *c = &ind->codings[j];
            const struct map_target *t = procedure_of(set, c->system, c->codes[0]);

            gw_format(path, sizeof path, "indications[%zu].codings[%zu]", i, j);
            if (!map_system_known(c->system))
                rc = issue(r, MAP_SEV_ERROR, "unknown-system", set->indications_file, path,
                           "system %s is unknown", c->system);
            gw_buf_printf(&r->coverage, " %s %s -> %s;", sysname(c->system), c->codes[0],
                          t ? t->code : "(none)");
            if (!t) {
                all = false;
                if (!rc)
                    rc = issue(r, MAP_SEV_ERROR, "unmapped", set->indications_file, path,
                               "listed indication %s (%s): %s %s has no target", ind->id,
                               ind->label, sysname(c->system), c->codes[0]);
            }
        }
        gw_buf_putc(&r->coverage, '\n');
        r->n_indications++;
        r->n_indications_mapped += all;
    }
    return rc;
}

static void cover_procedure(struct map_report *r, const struct map_set *set, const char *code)
{
    char key[MAP_MAX_CODE + 1];
    size_t lo, hi, i, k, d;

    if (map_code_key(MAP_CS_PROCEDURE, code, key, sizeof key) < 0)
        return;
    map_index_range(set, MAP_CS_PROCEDURE, key, &lo, &hi);
    for (i = lo; i < hi; i++) {
        const struct map_element *e = set->index[i].el;

        for (k = 0; k < e->n_targets; k++) {
            const struct map_target *t = &e->targets[k];

            gw_buf_printf(&r->coverage, " %s %s", sysname(e->group->target),
                          t->code ? t->code : "(unmatched)");
            for (d = 0; d < t->n_deps; d++)
                gw_buf_printf(&r->coverage, "%s%s", d ? "," : "[",
                              t->deps[d].kind == MAP_DEP_REGION
                                  ? map_region_name((enum map_region)t->deps[d].value)
                              : t->deps[d].kind == MAP_DEP_LATERALITY
                                  ? map_laterality_name((enum map_laterality)t->deps[d].value)
                                  : map_guidance_name((enum map_guidance)t->deps[d].value));
            gw_buf_puts(&r->coverage, t->n_deps ? "];" : ";");
        }
    }
}

/* True when procedure code has a usable target in system; *comment gets the comment of an
 * unmatched target, *inexact the first usable target whose equivalence is inexact (it
 * serves, but a person should know how loosely). */
static bool has_code_in(const struct map_set *set, const char *code, const char *system,
                        const char **comment, const struct map_target **inexact)
{
    char key[MAP_MAX_CODE + 1];
    size_t lo, hi, i, k;
    bool found = false;

    *comment = NULL;
    *inexact = NULL;
    if (map_code_key(MAP_CS_PROCEDURE, code, key, sizeof key) < 0)
        return false;
    map_index_range(set, MAP_CS_PROCEDURE, key, &lo, &hi);
    for (i = lo; i < hi; i++) {
        const struct map_element *e = set->index[i].el;

        if (strcmp(e->group->target, system) != 0)
            continue;
        for (k = 0; k < e->n_targets; k++) {
            if (usable(&e->targets[k])) {
                found = true;
                if (e->targets[k].eq == MAP_EQ_INEXACT && !*inexact)
                    *inexact = &e->targets[k];
            } else if (e->targets[k].comment) {
                *comment = e->targets[k].comment;
            }
        }
    }
    return found;
}

static enum gw_code check_procedures(struct map_report *r, const struct map_set *set)
{
    enum gw_code rc = GW_OK;
    const struct map_target *inexact;
    const char *comment;
    size_t i, j;
    char path[64];

    for (i = 0; !rc && i < set->n_procedures; i++) {
        const struct map_procedure_def *p = &set->procedures[i];

        gw_buf_printf(&r->coverage, "%-28s", p->code);
        cover_procedure(r, set, p->code);
        gw_buf_putc(&r->coverage, '\n');
        gw_format(path, sizeof path, "procedures[%zu]", i);
        for (j = 0; !rc && j < p->n_systems; j++) {
            if (has_code_in(set, p->code, p->systems[j], &comment, &inexact)) {
                if (inexact)
                    rc = issue(r, MAP_SEV_WARNING, "inexact", set->indications_file, path,
                               "procedure %s is billed as %s %s, an inexact code: %s", p->code,
                               sysname(p->systems[j]), inexact->code,
                               inexact->comment ? inexact->comment : "(no comment)");
                continue;
            }
            rc = issue(r, MAP_SEV_WARNING, "no-code", set->indications_file, path,
                       "procedure %s has no %s code%s%s", p->code, sysname(p->systems[j]),
                       comment ? ": " : "", comment ? comment : "");
        }
    }
    return rc;
}

static enum gw_code check_rules(struct map_report *r, const struct map_set *set)
{
    enum gw_code rc = GW_OK;
    size_t i, j;
    char path[64];

    if (!set->rules)
        return issue(r, MAP_SEV_WARNING, "missing", NULL, NULL,
                     "no triage-rules.json: referrals get no triage flags");
    for (i = 0; !rc && i < set->n_rules; i++) {
        const struct map_rule *ru = &set->rules[i];

        for (j = 0; !rc && j < ru->n_conditions + ru->n_medications; j++) {
            const struct map_codeset *cs =
                j < ru->n_conditions ? &ru->conditions[j] : &ru->medications[j - ru->n_conditions];

            gw_format(path, sizeof path, "rules[%zu]", i);
            if (!map_system_known(cs->system))
                rc = issue(r, MAP_SEV_ERROR, "unknown-system", set->rules_file, path,
                           "system %s is unknown", cs->system);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- synonyms */

static bool phrase_same(const struct map_phrase *a, const struct map_phrase *b)
{
    return a->len == b->len && memcmp(a->compact, b->compact, a->len) == 0;
}

/* A negation cue that starts p ("pas de ..."): the reader would never find p. */
static bool starts_negated(const struct map_synonyms *syn, const struct map_phrase *p)
{
    size_t i;

    for (i = 0; i < syn->neg_before.n; i++) {
        const struct map_phrase *n = &syn->neg_before.items[i];

        if (n->n_tokens < p->n_tokens && strncmp(p->compact, n->compact, n->len) == 0)
            return true;
    }
    return false;
}

static enum gw_code check_entry_code(struct map_report *r, const struct map_set *set, size_t i,
                                     const char *code)
{
    const struct map_synonym *e = &set->synonyms->entries[i];
    char path[64];

    gw_format(path, sizeof path, "entries[%zu]", i);
    if (!map_system_known(e->system))
        return issue(r, MAP_SEV_ERROR, "unknown-system", set->synonyms->file, path,
                     "system %s is unknown", e->system);
    if (!procedure_of(set, e->system, code))
        return issue(r, MAP_SEV_ERROR, "unmapped", set->synonyms->file, path,
                     "%s %s maps to no procedure: the words would be read for nothing",
                     sysname(e->system), code);
    return GW_OK;
}

/* Phrase j of entry i against the phrases before it. */
static enum gw_code check_phrase(struct map_report *r, const struct map_synonyms *syn, size_t i,
                                 size_t j)
{
    const struct map_synonym *e = &syn->entries[i];
    const struct map_phrase *p = &e->phrases.items[j];
    char path[80];
    size_t a, b;

    gw_format(path, sizeof path, "entries[%zu].phrases[%zu]", i, j);
    if (starts_negated(syn, p))
        return issue(r, MAP_SEV_WARNING, "negation", syn->file, path,
                     "\"%s\" starts with a negation: the reader never takes it", p->compact);
    for (a = 0; a <= i; a++) {
        const struct map_synonym *o = &syn->entries[a];

        for (b = 0; b < (a == i ? j : o->phrases.n); b++) {
            if (!phrase_same(p, &o->phrases.items[b]))
                continue;
            if (strcmp(o->code, e->code) == 0 && o->laterality == e->laterality)
                return issue(r, MAP_SEV_WARNING, "duplicate", syn->file, path,
                             "\"%s\" is already entries[%zu].phrases[%zu]", p->compact, a, b);
            return issue(r, MAP_SEV_ERROR, "conflict", syn->file, path,
                         "\"%s\" means %s here and %s in entries[%zu]", p->compact, e->code,
                         o->code, a);
        }
    }
    return GW_OK;
}

/* True when (system, code) is one of ind's codings or, in ICD-10, a code under one (M48.06
 * under M48.0). */
static bool reads_indication(const struct map_indication *ind, const char *system, const char *code)
{
    char have[MAP_MAX_CODE + 1], want[MAP_MAX_CODE + 1];
    size_t i, n;

    if (!code || map_code_key(system, code, have, sizeof have) < 0)
        return false;
    for (i = 0; i < ind->n_codings; i++) {
        const struct map_codeset *c = &ind->codings[i];

        if (strcmp(c->system, system) != 0 ||
            map_code_key(system, c->codes[0], want, sizeof want) < 0)
            continue;
        n = strlen(want);
        if (map_system_norm(system) == MAP_NORM_ICD ? strncmp(have, want, n) == 0
                                                    : strcmp(have, want) == 0)
            return true;
    }
    return false;
}

/* True when a synonym entry reads one of indication ind's codings. */
static bool has_words(const struct map_synonyms *syn, const struct map_indication *ind)
{
    size_t i, k;

    for (i = 0; i < syn->n_entries; i++) {
        const struct map_synonym *e = &syn->entries[i];

        if (reads_indication(ind, e->system, e->code))
            return true;
        for (k = 1; k < 5; k++)
            if (reads_indication(ind, e->system, e->by_region[k]))
                return true;
    }
    return false;
}

static enum gw_code check_synonyms(struct map_report *r, const struct map_set *set)
{
    const struct map_synonyms *syn = set->synonyms;
    enum gw_code rc = GW_OK;
    size_t i, j, k, with_words = 0;

    if (!syn)
        return issue(r, MAP_SEV_WARNING, "missing", NULL, NULL,
                     "no " MAP_SYNONYMS_FILE ": indications written in words go to triage");
    for (i = 0; !rc && i < syn->n_entries; i++) {
        const struct map_synonym *e = &syn->entries[i];

        r->n_synonyms++;
        r->n_phrases += e->phrases.n;
        rc = check_entry_code(r, set, i, e->code);
        for (k = 1; !rc && k < 5; k++)
            if (e->by_region[k])
                rc = check_entry_code(r, set, i, e->by_region[k]);
        for (j = 0; !rc && j < e->phrases.n; j++)
            rc = check_phrase(r, syn, i, j);
    }
    for (i = 0; !rc && i < set->n_indications; i++) {
        if (has_words(syn, &set->indications[i])) {
            with_words++;
            continue;
        }
        rc = issue(r, MAP_SEV_WARNING, "no-words", syn->file, NULL,
                   "listed indication %s (%s) has no phrase: in words it goes to triage",
                   set->indications[i].id, set->indications[i].label);
    }
    gw_buf_printf(&r->coverage,
                  "%-28s %zu entries, %zu phrases; %zu/%zu listed indications read "
                  "from words\n",
                  "synonyms", r->n_synonyms, r->n_phrases, with_words, set->n_indications);
    return rc;
}

/* ---------------------------------------------------------------- entry points */

static enum gw_code check_into(const struct map_set *set, struct map_report *r,
                               struct gw_error *err)
{
    enum gw_code rc = GW_OK;
    size_t i, j;

    for (i = 0; !rc && i < set->n_maps; i++) {
        r->n_maps++;
        for (j = 0; !rc && j < set->maps[i].n_groups; j++) {
            r->n_rows += set->maps[i].groups[j].n_elements;
            rc = check_group(r, &set->maps[i].groups[j]);
        }
    }
    if (!rc)
        rc = check_across(r, set);
    if (!rc && !set->indications)
        rc = issue(r, MAP_SEV_WARNING, "missing", NULL, NULL,
                   "no indications.json: coverage of the practice's indications is not checked");
    if (!rc)
        rc = check_indications(r, set);
    if (!rc)
        rc = check_procedures(r, set);
    if (!rc)
        rc = check_rules(r, set);
    if (!rc)
        rc = check_synonyms(r, set);
    if (!rc && r->coverage.err)
        rc = r->coverage.err;
    return rc ? gw_fail(err, rc, "no memory for the mappings report") : GW_OK;
}

enum gw_code map_check_set(const struct map_set *set, struct map_report *r, struct gw_error *err)
{
    memset(r, 0, sizeof *r);
    gw_buf_init(&r->coverage, COVERAGE_MAX);
    return check_into(set, r, err);
}

enum gw_code map_check_dir(const char *dir, struct map_report *r, struct gw_error *err)
{
    struct map_set *set = NULL;
    struct gw_error lerr;
    enum gw_code rc;

    memset(r, 0, sizeof *r);
    gw_buf_init(&r->coverage, COVERAGE_MAX);
    rc = map_set_load(dir, &set, &lerr);
    if (rc == GW_E_NOMEM)
        return gw_fail(err, rc, "%s", lerr.msg);
    if (rc)
        return issue(r, MAP_SEV_ERROR, "load", NULL, NULL, "%s", lerr.msg)
                   ? gw_fail(err, GW_E_NOMEM, "no memory for the mappings report")
                   : GW_OK;
    rc = check_into(set, r, err);
    map_set_unref(set);
    return rc;
}

void map_report_cleanup(struct map_report *r)
{
    size_t i;

    if (!r)
        return;
    for (i = 0; i < r->n_issues; i++) {
        free(r->issues[i].kind);
        free(r->issues[i].file);
        free(r->issues[i].path);
        free(r->issues[i].message);
    }
    free(r->issues);
    gw_buf_cleanup(&r->coverage);
    memset(r, 0, sizeof *r);
}

static const char *sev_name(enum map_severity s)
{
    return s == MAP_SEV_ERROR ? "error" : s == MAP_SEV_WARNING ? "warning" : "info";
}

void map_report_print(const struct map_report *r, struct gw_buf *b)
{
    size_t i;

    for (i = 0; i < r->n_issues; i++) {
        const struct map_issue *is = &r->issues[i];

        gw_buf_printf(b, "%-7s %-14s %s%s%s%s%s\n", sev_name(is->severity), is->kind,
                      is->file ? is->file : "", is->path ? " " : "", is->path ? is->path : "",
                      is->file || is->path ? ": " : "", is->message);
    }
    if (r->coverage.len) {
        gw_buf_puts(b, "coverage:\n");
        gw_buf_append(b, r->coverage.data, r->coverage.len);
    }
    gw_buf_printf(b,
                  "%zu map%s, %zu row%s, %zu/%zu listed indications mapped: %zu error%s, %zu "
                  "warning%s\n",
                  r->n_maps, r->n_maps == 1 ? "" : "s", r->n_rows, r->n_rows == 1 ? "" : "s",
                  r->n_indications_mapped, r->n_indications, r->n_errors,
                  r->n_errors == 1 ? "" : "s", r->n_warnings, r->n_warnings == 1 ? "" : "s");
}

json_t *map_report_json(const struct map_report *r)
{
    json_t *issues = json_array();
    size_t i;

    for (i = 0; issues && i < r->n_issues; i++) {
        const struct map_issue *is = &r->issues[i];

        if (json_array_append_new(issues,
                                  json_pack("{s:s, s:s, s:s*, s:s*, s:s}", "severity",
                                            sev_name(is->severity), "kind", is->kind, "file",
                                            is->file, "path", is->path, "message", is->message))) {
            json_decref(issues);
            return NULL;
        }
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "errors", (json_int_t)r->n_errors,
                     "warnings", (json_int_t)r->n_warnings, "indications",
                     (json_int_t)r->n_indications, "indicationsMapped",
                     (json_int_t)r->n_indications_mapped, "synonyms", (json_int_t)r->n_synonyms,
                     "phrases", (json_int_t)r->n_phrases, "issues", issues);
}

int map_report_exit_status(const struct map_report *r)
{
    return r->n_errors ? 1 : 0;
}
