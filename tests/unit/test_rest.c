/* test_rest.c -- Subscription criteria: which are accepted (the parameters
 * the CapabilityStatement lists for the watched types) and which refused,
 * and matching on a temporary store: a change matches exactly what the
 * subscriber's search returns, never another organisation's resources, and
 * a match queues a numbered notification in the change's own commit. The
 * search index entries of the FHIR corpus, and which parameters are
 * searchable, against tests/data/rest/index (REST_INDEX_WRITE=1 rewrites
 * those files, for a change of the index rules made on purpose). */
#include "check.h"
#include "rest/rest_int.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "fhir/fhir.h"

#define BASE "https://gw.example/fhir"

static char dir[] = "/tmp/gw-rest-XXXXXX";
static struct config cfg;
static struct rest_ctx *ctx;
static struct store *st;

static enum gw_code parse(const char *criteria, json_t **issues)
{
    struct rest_criteria *c = NULL;
    json_t *outcome = fhir_outcome_create();
    enum gw_code rc =
        rest_criteria_parse(BASE, criteria, "Subscription.criteria", &c, outcome, NULL);

    rest_criteria_destroy(c);
    if (issues)
        *issues = json_incref(json_object_get(outcome, "issue"));
    json_decref(outcome);
    return rc;
}

static void criteria_with_listed_parameters_are_accepted(void)
{
    static const char *const good[] = {
        "Task?status=requested",
        "Task?business-status=accepted,completed&status=accepted",
        "Task?focus=ServiceRequest/sr-1",
        "Task?status:not=cancelled",
        "Task?_lastUpdated=ge2026-01-01&_id=t-1",
        "ServiceRequest?identifier=urn:oid:1.2.250.1.999.1.1%7C42",
        "Appointment?based-on=ServiceRequest/sr-1&status=booked",
        "DiagnosticReport?status=final,corrected",
    };
    struct rest_criteria *c = NULL;
    size_t i;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_t *outcome = fhir_outcome_create();

        CHECK_INT(rest_criteria_parse(BASE, good[i], NULL, &c, outcome, NULL), GW_OK);
        CHECK_INT(fhir_outcome_errors(outcome), 0);
        if (c)
            CHECK_INT(strncmp(good[i], rest_criteria_type(c), strlen(rest_criteria_type(c))), 0);
        rest_criteria_destroy(c);
        c = NULL;
        json_decref(outcome);
    }
    CHECK_INT(parse("Task", NULL), GW_OK);
    CHECK_INT(parse("DiagnosticReport", NULL), GW_OK);
}

static void criteria_outside_the_capability_statement_are_refused(void)
{
    static const char *const bad[] = {
        "Patient?name=dupre",
        "Observation",
        "task?status=requested",
        "Task?foo=bar",
        "Task?_sort=status",
        "Task?_count=1",
        "Task?_include=Task:focus",
        "Task?focus.identifier=x",
        "Task?status:contains=req",
        "Task?authored-on=lundi",
        "Task?status=",
        "Task?=x",
        "Task?_text=douleur",
        "",
        "?status=x",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *issues = NULL;

        CHECK_INT(parse(bad[i], &issues), GW_E_INPUT);
        CHECK(json_array_size(issues) >= 1);
        CHECK_STR(json_string_value(
                      json_array_get(json_object_get(json_array_get(issues, 0), "expression"), 0)),
                  "Subscription.criteria");
        json_decref(issues);
    }
    CHECK_INT(parse(NULL, NULL), GW_E_INPUT);
}

/* ------------------------------------------------------------ on a store */

struct task_spec {
    const char *id, *owner, *status, *business;
};

static const struct task_spec tasks[] = {
    {"t-1", "orgA", "requested", "received"},
    {"t-2", "orgA", "accepted", "accepted"},
    {"t-3", "orgB", "accepted", "accepted"},
    {"t-4", "orgA", "completed", "reported"},
};

static json_t *task(const struct task_spec *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}}", "resourceType", "Task",
                     "id", t->id, "status", t->status, "intent", "order", "businessStatus",
                     "coding", "system", RIS_STATUS_SYSTEM, "code", t->business, "focus",
                     "reference", "ServiceRequest/sr-1");
}

static enum gw_code put_tasks(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    size_t i;
    enum gw_code rc = GW_OK;

    (void)vctx;
    for (i = 0; !rc && i < sizeof tasks / sizeof tasks[0]; i++) {
        json_t *t = task(&tasks[i]);

        rc = rest_put(ctx, txn, t, tasks[i].owner, "bachaumont", 0, false, NULL, err);
        json_decref(t);
    }
    return rc;
}

struct agree {
    const char *criteria;
    const char *owner;
    const char *expect[4]; /* the ids that match, in order */
};

static enum gw_code check_agreement(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    const struct agree *a = vctx;
    struct rest_criteria *c = NULL;
    json_t *outcome = fhir_outcome_create();
    size_t i, k = 0;
    enum gw_code rc = rest_criteria_parse(BASE, a->criteria, NULL, &c, outcome, err);

    json_decref(outcome);
    if (rc)
        return rc;
    for (i = 0; !rc && i < sizeof tasks / sizeof tasks[0]; i++) {
        bool match = false;

        rc = rest_criteria_matches(c, txn, a->owner, tasks[i].id, &match, err);
        if (match) {
            CHECK_STR(tasks[i].id, a->expect[k] ? a->expect[k] : "(none)");
            k++;
        }
    }
    CHECK(a->expect[k] == NULL);
    rest_criteria_destroy(c);
    return rc;
}

static void matching_agrees_with_search_within_the_subscribers_organisation(void)
{
    static const struct agree cases[] = {
        {"Task", "orgA", {"t-1", "t-2", "t-4", NULL}},
        {"Task", "orgB", {"t-3", NULL}},
        {"Task?status=accepted", "orgA", {"t-2", NULL}},
        {"Task?status:not=accepted", "orgA", {"t-1", "t-4", NULL}},
        {"Task?business-status=accepted,reported", "orgA", {"t-2", "t-4", NULL}},
        {"Task?business-status=accepted&status=completed", "orgA", {NULL}},
        {"Task?focus=ServiceRequest/sr-1&_id=t-4", "orgA", {"t-4", NULL}},
        {"Task?focus=ServiceRequest/sr-2", "orgA", {NULL}},
    };
    size_t i;

    CHECK_INT(store_write(st, put_tasks, NULL, NULL, NULL), GW_OK);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_INT(store_write(st, check_agreement, NULL, (void *)&cases[i], NULL), GW_OK);
}

static enum gw_code subscribe(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    struct store_subscription s = {.id = "sub-a",
                                   .owner = "orgA",
                                   .type = "Task",
                                   .criteria = "Task?status=accepted",
                                   .enabled = true};

    (void)vctx;
    return store_txn_subscription_put(txn, &s, err);
}

static enum gw_code move_task(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    const struct task_spec *t = vctx;
    json_t *res = task(t);
    enum gw_code rc = rest_put(ctx, txn, res, t->owner, "bachaumont", 0, false, NULL, err);

    json_decref(res);
    return rc;
}

static void a_matching_change_queues_a_numbered_event_in_its_commit(void)
{
    static const struct task_spec steps[] = {
        {"t-9", "orgA", "requested", "received"}, /* no match */
        {"t-9", "orgA", "accepted", "accepted"},  /* event 1 */
        {"t-8", "orgB", "accepted", "accepted"},  /* another organisation: nothing */
        {"t-9", "orgA", "accepted", "scheduled"}, /* event 2 */
    };
    struct store_note *heads = NULL;
    size_t i, n = 0;

    CHECK_INT(store_write(st, subscribe, NULL, NULL, NULL), GW_OK);
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++)
        CHECK_INT(store_write(st, move_task, NULL, (void *)&steps[i], NULL), GW_OK);
    CHECK_INT(store_note_heads(st, 10, &heads, &n, NULL), GW_OK);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(heads[0].subscription, "sub-a");
        CHECK_INT(heads[0].event, 1);
        CHECK_STR(heads[0].focus_id, "t-9");
        CHECK_INT(heads[0].focus_version, 2);
    }
    store_note_list_free(heads, n);
    {
        struct store_subscription row;

        CHECK_INT(store_subscription_get(st, "sub-a", &row, NULL), GW_OK);
        CHECK_INT(row.events, 2);
        store_subscription_cleanup(&row);
    }
}

static bool setup(void)
{
    static char url[200];
    struct rest_parts parts;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    snprintf(url, sizeof url, "sqlite:%s/rest.db", dir);
    cfg.store = url;
    cfg.listen = "127.0.0.1:8443";
    cfg.public_base = BASE;
    cfg.commit_timeout_ms = 10000;
    cfg.max_batch = 16;
    cfg.read_connections = 2;
    cfg.audit_hmac_key = "";
    if (store_open(&cfg, &st, &err) != GW_OK) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return false;
    }
    parts = (struct rest_parts){.cfg = &cfg, .store = st, .maps = NULL};
    return rest_create(&parts, &ctx, &err) == GW_OK;
}

/* ------------------------------------------------------------ index entries */

#define INDEX_DATA "tests/data/rest/index"

/* The entries of the resource in file, one a line, then its type's parameters with
 * whether they are searchable. */
static void describe_index(const char *file, struct gw_buf *out)
{
    json_t *outcome = fhir_outcome_create(), *res = NULL;
    char *text = check_read_file(file, NULL);
    struct rest_index ix;
    struct gw_error err;
    size_t i, n;

    if (!text || fhir_json_parse(text, strlen(text), NULL, &res, outcome, &err) ||
        rest_index_build(BASE, res, &ix, &err)) {
        gw_buf_printf(out, "cannot index %s\n", file);
        goto out;
    }
    for (i = 0; i < ix.n; i++)
        gw_buf_printf(out, "%s|%s|%s|%lld|%lld\n", ix.e[i].param,
                      ix.e[i].system ? ix.e[i].system : "-", ix.e[i].value ? ix.e[i].value : "-",
                      (long long)ix.e[i].lo, (long long)ix.e[i].hi);
    rest_index_cleanup(&ix);
    n = fhir_search_param_count(fhir_resource_type(res));
    for (i = 0; i < n; i++) {
        struct fhir_search_param sp;

        if (fhir_search_param_get(fhir_resource_type(res), i, &sp))
            gw_buf_printf(out, "searchable %s %s\n", sp.name,
                          rest_index_supported(fhir_resource_type(res), sp.name) ? "yes" : "no");
    }
out:
    free(text);
    json_decref(res);
    json_decref(outcome);
}

static void index_case(const char *folder, const char *name)
{
    char path[512], expected_path[512], *expected;
    struct gw_buf got;

    snprintf(path, sizeof path, "%s/%s", folder, name);
    snprintf(expected_path, sizeof expected_path, "%s/%s-%s.txt", INDEX_DATA,
             strrchr(folder, '/') ? strrchr(folder, '/') + 1 : folder, name);
    gw_buf_init(&got, 16 * 1024 * 1024);
    describe_index(path, &got);
    if (getenv("REST_INDEX_WRITE")) {
        FILE *f = fopen(expected_path, "wb");

        if (f) {
            fwrite(got.data, 1, got.len, f);
            fclose(f);
        }
    }
    expected = check_read_file(expected_path, NULL);
    if (!expected || !got.data || strcmp(expected, got.data) != 0) {
        fprintf(stderr, "    %s:\n%s", expected_path, got.data ? got.data : "");
        check_fail(__FILE__, __LINE__, "index entries as recorded");
    }
    free(expected);
    gw_buf_cleanup(&got);
}

static void index_entries_of_the_corpus_are_as_recorded(void)
{
    static const char *const dirs[] = {"tests/data/fhir/roundtrip", "tests/data/fhir/examples",
                                       "bench"};
    size_t d, cases = 0;

    for (d = 0; d < 3; d++) {
        DIR *dh = opendir(dirs[d]);
        struct dirent *de;

        while (dh && (de = readdir(dh)) != NULL) {
            size_t len = strlen(de->d_name);

            if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0) {
                index_case(dirs[d], de->d_name);
                cases++;
            }
        }
        if (dh)
            closedir(dh);
    }
    CHECK(cases >= 16);
}

/* ------------------------------------------------------------ a plan starts over */

static void a_reset_plan_gets_back_each_entry_as_it_was(void)
{
    static const char *const texts[] = {
        "{\"resourceType\":\"Observation\",\"id\":\"o\",\"valueQuantity\":{\"value\":\"0.10\"},"
        "\"component\":[{\"valueInteger\":-7},{\"valueBoolean\":false},{\"valueString\":"
        "\"\\\"quoted\\\" \\\\ tab\\t é \\u20ac \\ud83d\\ude00\"}],\"z\":[1.5e300,0.1,null,true]}",
        "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"B\"]}],\"_birthDate\":{}}"};
    struct rest_plan p;
    size_t i;

    rest_plan_init(&p, ctx, NULL, "transaction");
    for (i = 0; i < 2; i++)
        rest_plan_add(&p, i ? "Patient" : "Observation", json_loads(texts[i], 0, NULL));
    CHECK_INT(p.n_entries, 2);
    CHECK(rest_plan_snapshot(&p));
    for (i = 0; i < p.n_entries; i++) { /* what apply does: ids, meta, changed values */
        json_object_set_new(p.entries[i].resource, "id", json_string("new-id"));
        json_object_set_new(p.entries[i].resource, "meta", json_pack("{s:s}", "versionId", "1"));
        json_object_del(p.entries[i].resource, "resourceType");
    }
    rest_plan_reset(&p);
    CHECK(!p.reset_failed);
    for (i = 0; i < p.n_entries; i++) {
        json_t *want = json_loads(texts[i], 0, NULL);
        char *a = json_dumps(p.entries[i].resource, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *b = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER);

        CHECK(json_equal(p.entries[i].resource, want));
        CHECK(a && b && strcmp(a, b) == 0); /* the same members in the same order */
        free(a);
        free(b);
        json_decref(want);
    }
    rest_plan_cleanup(&p);
}

int main(void)
{
    char cmd[160];
    int status;

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gw_log_set_level(GW_LOG_ERROR);
    fhir_init();
    if (!setup())
        return 1;
    RUN(criteria_with_listed_parameters_are_accepted);
    RUN(criteria_outside_the_capability_statement_are_refused);
    RUN(matching_agrees_with_search_within_the_subscribers_organisation);
    RUN(a_matching_change_queues_a_numbered_event_in_its_commit);
    RUN(index_entries_of_the_corpus_are_as_recorded);
    RUN(a_reset_plan_gets_back_each_entry_as_it_was);
    rest_destroy(ctx);
    store_destroy(st);
    status = check_summary();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return status;
}
