/* test_audit.c -- the AuditEvents of refusals without an identity: counted per
 * channel and address, one event per window with the count, the period and a
 * sample of paths; addresses past the cap share a window; the counts add up
 * exactly once the counters are destroyed. Each case uses a fresh store. The
 * events of each kind are built exactly as recorded in tests/data/audit/events.txt
 * (their canonical text, which the chain hashes, and their member order;
 * AUDIT_EVENTS_WRITE=1 rewrites the file, for a change made on purpose). */
#include "check.h"
#include "audit/audit_int.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/gw-audit-XXXXXX";
static int n_db;

static struct store *open_fresh(void)
{
    static char url[200];
    struct config cfg;
    struct store *st = NULL;
    struct gw_error err;

    memset(&cfg, 0, sizeof cfg);
    snprintf(url, sizeof url, "sqlite:%s/t%d.db", dir, n_db++);
    cfg.store = url;
    cfg.commit_timeout_ms = 10000;
    cfg.max_batch = 64;
    cfg.read_connections = 1;
    cfg.audit_hmac_key = "";
    if (store_open(&cfg, &st, &err) != GW_OK)
        fprintf(stderr, "store_open: %s\n", err.msg);
    return st;
}

/* What the Security Alert events of a store add up to. */
struct sums {
    long events, other_windows;
    long count[2]; /* HTTPS, MLLP */
    long max_samples;
};

static long detail_count(json_t *ev, long *n_paths, const char **channel)
{
    json_t *ent, *d;
    size_t i, k;
    long count = -1;

    *n_paths = 0;
    json_array_foreach (json_object_get(ev, "entity"), i, ent) {
        json_array_foreach (json_object_get(ent, "detail"), k, d) {
            const char *type = json_string_value(json_object_get(d, "type"));

            if (strcmp(type, "count") == 0)
                gw_parse_long(json_string_value(json_object_get(d, "valueString")), 0, 1L << 40,
                              &count);
            else if (strcmp(type, "path") == 0)
                (*n_paths)++;
        }
        if (json_object_get(ent, "detail"))
            *channel = json_string_value(json_object_get(ent, "name"));
    }
    return count;
}

static bool add_row(const struct store_audit_row *row, void *ctx)
{
    struct sums *s = ctx;
    json_t *ev = json_loads(row->json, 0, NULL);
    const char *type = json_string_value(json_object_get(json_object_get(ev, "type"), "code"));
    const char *channel = "";
    long n_paths, count;

    if (type && strcmp(type, "110113") == 0) {
        count = detail_count(ev, &n_paths, &channel);
        s->events++;
        s->count[strcmp(channel, "MLLP") == 0] += count;
        if (n_paths > s->max_samples)
            s->max_samples = n_paths;
        if (!json_object_get(json_object_get(ev, "agent"), "network") &&
            !json_object_get(json_array_get(json_object_get(ev, "agent"), 0), "network"))
            s->other_windows++;
        CHECK(json_string_value(json_object_get(json_object_get(ev, "period"), "start")) != NULL);
    }
    json_decref(ev);
    return true;
}

static void many_addresses_share_a_window_past_the_cap_and_the_counts_add_up(void)
{
    struct store *st = open_fresh();
    struct audit_refusals *r = NULL;
    struct sums s = {0};
    char addr[32], path[64];
    int i, k;

    CHECK(st && audit_refusals_create(st, 3600, &r, NULL) == GW_OK);
    if (!r) {
        store_destroy(st);
        return;
    }
    for (i = 0; i < AUDIT_REFUSAL_MAX_PEERS + 44; i++)
        for (k = 0; k < 3; k++) {
            snprintf(addr, sizeof addr, "10.0.%d.%d", i / 250, i % 250);
            snprintf(path, sizeof path, "GET /fhir/Patient/%d", k + i);
            audit_refusals_note(r, "HTTPS", addr, path, "no certificate");
        }
    for (i = 0; i < 7; i++)
        audit_refusals_note(r, "MLLP", "192.0.2.7", "MLLP connection", "not allowed");
    audit_refusals_destroy(r); /* records every open window */
    CHECK(store_audit_scan(st, 0, 0, add_row, &s, NULL) == GW_OK);
    CHECK_INT(s.count[0], 3 * (AUDIT_REFUSAL_MAX_PEERS + 44));
    CHECK_INT(s.count[1], 7);
    CHECK_INT(s.events, AUDIT_REFUSAL_MAX_PEERS + 1 + 1); /* + the others' window, + MLLP */
    CHECK_INT(s.other_windows, 1);
    CHECK(s.max_samples >= 1 && s.max_samples <= AUDIT_REFUSAL_SAMPLES);
    store_destroy(st);
}

static void an_aggregated_event_carries_its_period_count_and_samples(void)
{
    const char *samples[] = {"GET /fhir/Patient", "POST /fhir"};
    struct audit_tally t = {"HTTPS", 42, 1700000000000, 1700000059000, samples, 2, false};
    struct audit_event ev = {.kind = AUDIT_SECURITY,
                             .action = 'E',
                             .outcome = AUDIT_MINOR_FAILURE,
                             .outcome_desc = "no certificate",
                             .peer = "203.0.113.9",
                             .tally = &t};
    json_t *ae = audit_event_build(&ev, "id-1", 1700000060000);
    json_t *ent = json_array_get(json_object_get(ae, "entity"), 0);
    char *text = ae ? json_dumps(ae, JSON_COMPACT) : NULL;

    CHECK_STR(json_string_value(json_object_get(json_object_get(ae, "type"), "code")), "110113");
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(ae, "subtype"), 0), "code")),
              "110126");
    CHECK_STR(json_string_value(json_object_get(json_object_get(ae, "period"), "start")),
              "2023-11-14T22:13:20.000Z");
    CHECK_STR(json_string_value(json_object_get(ent, "name")), "HTTPS");
    CHECK_INT(json_array_size(json_object_get(ent, "detail")), 5); /* count, first, last, 2 paths */
    CHECK(text && strstr(text, "\"valueString\":\"42\"") != NULL);
    CHECK(text && strstr(text, "203.0.113.9") != NULL);
    free(text);
    json_decref(ae);
}

/* ------------------------------------------------------------ events as recorded */

#define EVENTS_DATA "tests/data/audit/events.txt"

static void describe_event(struct gw_buf *out, const char *name, const struct audit_event *ev)
{
    json_t *ae = audit_event_build(ev, "0f1e2d3c-4b5a-4987-8654-3210fedcba98", 1795617393123);
    char *sorted = ae ? json_dumps(ae, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *ordered = ae ? json_dumps(ae, JSON_COMPACT) : NULL;
    char *text = audit_event_text(ev, "0f1e2d3c-4b5a-4987-8654-3210fedcba98", 1795617393123);

    CHECK((!text && !sorted) || (text && sorted && strcmp(text, sorted) == 0));
    free(text);

    gw_buf_printf(out, "%s\n%s\n%s\n", name, sorted ? sorted : "(none)",
                  ordered ? ordered : "(none)");
    free(sorted);
    free(ordered);
    json_decref(ae);
}

static void events_are_built_as_recorded(void)
{
    char fp[65] = "3f0c9a2b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    struct auth_identity gp = {AUTH_GP,
                               "gp-montorgueil",
                               "CN=Cabinet Montorgueil,O=GP",
                               {0},
                               "montorgueil",
                               "Cabinet médical Montorgueil",
                               NULL,
                               NULL,
                               NULL,
                               0};
    struct auth_identity ris = {AUTH_RIS, "ris", NULL, {0}, NULL, NULL, NULL, NULL, NULL, 0};
    const char *samples[] = {"GET /fhir/Patient", "POST /fhir"};
    struct audit_tally t = {"HTTPS", 42, 1700000000000, 1700000059000, samples, 2, false};
    struct audit_event create = {.kind = AUDIT_REST,
                                 .subtype = "create",
                                 .action = 'C',
                                 .outcome = AUDIT_SUCCESS,
                                 .who = &gp,
                                 .peer = "127.0.0.1",
                                 .request_id = "req-1",
                                 .path = "POST /fhir/ServiceRequest",
                                 .patient = "Patient/p-1",
                                 .http_status = 201};
    struct audit_event refused = {.kind = AUDIT_REST,
                                  .subtype = "read",
                                  .action = 'R',
                                  .outcome = AUDIT_MINOR_FAILURE,
                                  .outcome_desc = "not visible to this client \"gp\"",
                                  .who = &ris,
                                  .request_id = "req-2",
                                  .path = "GET /fhir/Patient/x",
                                  .http_status = 404};
    struct audit_event hl7 = {.kind = AUDIT_HL7_IMPORT,
                              .subtype = "ORU^R01",
                              .action = 'C',
                              .outcome = AUDIT_SERIOUS_FAILURE,
                              .actor_name = "RIS-BACHAUMONT",
                              .peer = "192.0.2.1",
                              .request_id = "MSG0001"};
    struct audit_event cli = {.kind = AUDIT_CLI, .subtype = "start", .actor_name = "operator"};
    struct audit_event security = {.kind = AUDIT_SECURITY,
                                   .action = 'E',
                                   .outcome = AUDIT_MINOR_FAILURE,
                                   .outcome_desc = "no certificate",
                                   .peer = "203.0.113.9",
                                   .tally = &t};
    struct audit_event broken = {.kind = AUDIT_REST, .subtype = "create", .who = &gp};
    struct gw_buf got;
    char *expected;
    FILE *f;

    memcpy(gp.fingerprint, fp, sizeof fp);
    audit_add_entity(&create, "ServiceRequest/sr-1", "4", "2", NULL);
    audit_add_entity(&create, "Task/t-1", "4", "2", "the referral's Task");
    audit_add_entity(&hl7, "Task/t-1", "4", "2", NULL);
    audit_add_entity(&broken, NULL, "4", "2", "\xff not UTF-8");
    gw_buf_init(&got, 1024 * 1024);
    describe_event(&got, "create", &create);
    describe_event(&got, "refused", &refused);
    describe_event(&got, "hl7", &hl7);
    describe_event(&got, "cli", &cli);
    describe_event(&got, "security", &security);
    describe_event(&got, "broken", &broken);
    if (getenv("AUDIT_EVENTS_WRITE") && (f = fopen(EVENTS_DATA, "wb")) != NULL) {
        fwrite(got.data, 1, got.len, f);
        fclose(f);
    }
    expected = check_read_file(EVENTS_DATA, NULL);
    if (!expected || !got.data || strcmp(expected, got.data) != 0) {
        fprintf(stderr, "%s", got.data ? got.data : "");
        check_fail(__FILE__, __LINE__, "events as recorded in " EVENTS_DATA);
    }
    free(expected);
    gw_buf_cleanup(&got);
}

/* ------------------------------------------------------------ the text against the tree */

static unsigned long long event_seed = 0x243F6A8885A308D3ULL;

static unsigned pick(unsigned bound)
{
    event_seed ^= event_seed << 13;
    event_seed ^= event_seed >> 7;
    event_seed ^= event_seed << 17;
    return (unsigned)(event_seed % bound);
}

/* A string or NULL: plain, escaped, UTF-8 of 2 to 4 bytes, now and then not UTF-8. */
static const char *maybe(char *buf, size_t cap, int null_in)
{
    static const char *const pieces[] = {
        "Patient/p-1",        "a\"b", "c\\d", "\t", "\x01", "é", "\xf0\x9f\x98\x80",
        "GET /fhir/Task?x=1", " ",    "/"};
    size_t len = 0, n = 1 + pick(4), i;

    if (pick((unsigned)null_in) == 0)
        return NULL;
    for (i = 0; i < n; i++) {
        const char *p = pick(60) == 0 ? "\xff" : pieces[pick(10)];
        size_t k = strlen(p);

        if (len + k + 1 >= cap)
            break;
        memcpy(buf + len, p, k);
        len += k;
    }
    buf[len] = '\0';
    return buf;
}

static void event_text_is_the_sorted_text_of_the_event(void)
{
    char s[24][64];
    const char *samples[3];
    int round, differ = 0, refused = 0;

    for (round = 0; round < 4000; round++) {
        struct auth_identity who = {0};
        struct audit_tally tally = {0};
        struct audit_event ev = {0};
        json_t *ae;
        char *text, *want;
        const char *id;
        int64_t at;
        unsigned k, i;

        who.role = (enum auth_role)pick(4);
        who.client_name = (char *)maybe(s[0], 64, 3);
        who.subject = (char *)maybe(s[1], 64, 2);
        who.org_id = (char *)maybe(s[2], 64, 2);
        who.org_name = (char *)maybe(s[3], 64, 2);
        if (pick(2))
            memcpy(who.fingerprint, "ab12", 5);
        ev.kind = (enum audit_kind)pick(6);
        ev.subtype = maybe(s[4], 64, 4);
        ev.action = "CRUDE\0"[pick(6)];
        ev.outcome = (enum audit_outcome)(pick(4) * 4);
        ev.outcome_desc = maybe(s[5], 64, 2);
        ev.who = pick(4) ? &who : NULL;
        ev.peer = maybe(s[6], 64, 2);
        ev.actor_name = maybe(s[7], 64, 2);
        ev.request_id = maybe(s[8], 64, 2);
        ev.path = maybe(s[9], 64, 2);
        ev.patient = maybe(s[10], 64, 2);
        ev.http_status = pick(3) ? 0 : 201 + (int)pick(300);
        for (k = pick(4), i = 0; i < k; i++)
            audit_add_entity(&ev, maybe(s[11 + 3 * i], 64, 3), pick(2) ? "4" : NULL,
                             pick(2) ? "2" : NULL, maybe(s[12 + 3 * i], 64, 2));
        if (ev.n_entities && pick(2))
            ev.entities[0].query = maybe(s[13], 64, 2);
        if (ev.n_entities > 1)
            ev.entities[1].description = maybe(s[16], 64, 2);
        if (pick(4) == 0) {
            for (i = 0; i < 3; i++)
                samples[i] = maybe(s[20 + i], 64, 8);
            tally =
                (struct audit_tally){maybe(s[23], 64, 8), (long)pick(3), 1700000000000 + pick(9),
                                     1700000059000,       samples,       pick(4),
                                     pick(2) != 0};
            ev.tally = &tally;
        }
        id = pick(20) ? "id-1" : NULL;
        at = 1795617393123 + pick(1000);
        ae = audit_event_build(&ev, id, at);
        want = ae ? json_dumps(ae, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        text = audit_event_text(&ev, id, at);
        if (!((!text && !want) || (text && want && strcmp(text, want) == 0)) && differ++ < 3)
            fprintf(stderr, "    text: %s\n    tree: %s\n", text ? text : "(none)",
                    want ? want : "(none)");
        refused += want == NULL;
        json_decref(ae);
        free(want);
        free(text);
    }
    CHECK_INT(differ, 0);
    CHECK(refused > 0 && refused < 4000);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    gw_log_set_level(GW_LOG_ERROR);
    RUN(many_addresses_share_a_window_past_the_cap_and_the_counts_add_up);
    RUN(an_aggregated_event_carries_its_period_count_and_samples);
    RUN(events_are_built_as_recorded);
    RUN(event_text_is_the_sorted_text_of_the_event);
    return check_summary();
}
