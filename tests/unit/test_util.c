/* test_util.c -- errors, buffers, UTF-8, time parsing and formatting, ids, metrics. */
#include "check.h"
#include "util/util.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void fail_records_code_and_truncates_long_messages(void)
{
    struct gw_error err;
    char big[400];

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(gw_fail(&err, GW_E_INPUT, "bad %d", 7), GW_E_INPUT);
    CHECK_STR(err.msg, "bad 7");
    gw_fail(&err, GW_E_LIMIT, "%s", big);
    CHECK_INT(strlen(err.msg), GW_ERROR_MSG_MAX - 1);
    CHECK_STR(err.msg + GW_ERROR_MSG_MAX - 4, "...");
    CHECK_INT(gw_fail(NULL, GW_E_IO, "ignored"), GW_E_IO);
}

static void code_table_gives_http_issue_and_ack(void)
{
    CHECK_INT(gw_code_http_status(GW_E_NOTFOUND), 404);
    CHECK_INT(gw_code_http_status(GW_E_LIMIT), 413);
    CHECK_STR(gw_code_issue_code(GW_E_CONFLICT), "conflict");
    CHECK_STR(gw_code_hl7_ack(GW_E_INPUT), "AE");
    CHECK_STR(gw_code_hl7_ack(GW_OK), "AA");
    CHECK_INT(gw_code_http_status((enum gw_code)99), 500);
}

static void buf_steal_of_an_empty_buffer_is_an_empty_string(void)
{
    struct gw_buf b;
    size_t len = 99;
    char *s;

    gw_buf_init(&b, 100);
    s = gw_buf_steal(&b, &len);
    CHECK(s != NULL);
    CHECK_INT(len, 0);
    CHECK_STR(s ? s : "x", "");
    free(s);
    gw_buf_cleanup(&b);
}

static void buf_grows_and_stops_at_its_cap(void)
{
    struct gw_buf b;
    struct gw_error err;
    size_t len;
    char *p;
    int i;

    gw_buf_init(&b, 1000);
    for (i = 0; i < 100; i++)
        gw_buf_printf(&b, "%d,", i % 10);
    CHECK_INT(b.len, 200);
    CHECK_INT(gw_buf_finish(&b, "test", &err), GW_OK);
    gw_buf_append(&b, b.data, 900);
    CHECK_INT(b.err, GW_E_LIMIT);
    gw_buf_puts(&b, "more");
    CHECK_INT(b.len, 200);
    CHECK_INT(gw_buf_finish(&b, "the answer", &err), GW_E_LIMIT);
    CHECK(strstr(err.msg, "the answer") != NULL);
    CHECK(gw_buf_steal(&b, &len) == NULL);
    gw_buf_reset(&b);
    gw_buf_puts(&b, "ok");
    p = gw_buf_steal(&b, &len);
    CHECK_STR(p, "ok");
    CHECK_INT(len, 2);
    free(p);
    gw_buf_cleanup(&b);
}

static void grow_doubles_from_first_and_refuses_overflow(void)
{
    size_t cap = 0, i;
    int *a = NULL, *g;

    for (i = 0; i < 20; i++) {
        g = gw_grow(a, &cap, i, sizeof *a, 4);
        CHECK(g != NULL);
        if (!g)
            break;
        a = g;
        a[i] = (int)i;
    }
    CHECK_INT(cap, 32); /* 4, 8, 16, 32 */
    CHECK_INT(a[19], 19);
    CHECK(gw_grow(a, &cap, 5, sizeof *a, 4) == a); /* room left: unchanged */
    cap = SIZE_MAX / 2 + 1;
    CHECK(gw_grow(a, &cap, cap, sizeof *a, 4) == NULL);
    CHECK_INT(cap, SIZE_MAX / 2 + 1);
    free(a);
}

static void format_marks_a_cut_text(void)
{
    char small[8];

    gw_format(small, sizeof small, "%s", "abcdefghij");
    CHECK_STR(small, "abcd...");
    gw_format(small, sizeof small, "%d", 42);
    CHECK_STR(small, "42");
}

static void json_escape_escapes_quotes_and_controls(void)
{
    struct gw_buf b;

    gw_buf_init(&b, 100);
    gw_buf_json_escape(&b, "a\"b\\c\n\x01", 7);
    CHECK_STR(b.data, "a\\\"b\\\\c\\n\\u0001");
    gw_buf_cleanup(&b);
}

static void quoted_string_escapes_quotes_and_keeps_only_printable_ascii(void)
{
    struct gw_buf b;

    gw_buf_init(&b, 100);
    gw_buf_quoted_string(&b, "a\"b\\c\r\n\x7f\xc3\xa9 d");
    CHECK_STR(b.data, "\"a\\\"b\\\\c????? d\"");
    gw_buf_cleanup(&b);
}

static void utf8_accepts_accents_and_rejects_malformed_bytes(void)
{
    CHECK(gw_utf8_valid("Hélène Dupré", strlen("Hélène Dupré")));
    CHECK(gw_utf8_valid("\xF0\x9F\x98\x80", 4));
    CHECK(!gw_utf8_valid("\xC3", 1));
    CHECK(!gw_utf8_valid("\xC0\xAF", 2));         /* overlong */
    CHECK(!gw_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    CHECK(!gw_utf8_valid("\xF4\x90\x80\x80", 4)); /* past U+10FFFF */
    CHECK(!gw_utf8_valid("a\0b", 3));
    CHECK(!gw_utf8_valid("\xFF", 1));
}

static void parse_long_rejects_junk_and_range(void)
{
    long v = 0;

    CHECK(gw_parse_long("42", 0, 100, &v) && v == 42);
    CHECK(!gw_parse_long("42x", 0, 100, &v));
    CHECK(!gw_parse_long("", 0, 100, &v));
    CHECK(!gw_parse_long(" 4", 0, 100, &v));
    CHECK(!gw_parse_long("101", 0, 100, &v));
    CHECK(!gw_parse_long("99999999999999999999", 0, 100, &v));
}

static void time_formats_instant_http_and_hl7(void)
{
    char a[GW_INSTANT_LEN], h[GW_HTTP_DATE_LEN], v[GW_HL7_TS_LEN];
    int64_t ms = 1795617393123; /* 2026-11-25T14:36:33.123Z */

    gw_time_instant(ms, a);
    gw_time_http(ms, h);
    gw_time_hl7(ms, v);
    CHECK_STR(a, "2026-11-25T14:36:33.123Z");
    CHECK_STR(h, "Wed, 25 Nov 2026 14:36:33 GMT");
    CHECK_STR(v, "20261125143633+0000");
}

static void time_parses_fhir_precisions_as_ranges(void)
{
    int64_t lo, hi;

    CHECK(gw_time_parse_fhir("2026", &lo, &hi));
    CHECK_INT(lo, 1767225600000);
    CHECK_INT(hi, 1798761600000);
    CHECK(gw_time_parse_fhir("2024-02", &lo, &hi));
    CHECK_INT(hi - lo, 29LL * 86400000);
    CHECK(gw_time_parse_fhir("2026-11-25", &lo, &hi));
    CHECK_INT(hi - lo, 86400000);
    CHECK(gw_time_parse_fhir("2026-11-25T14:36:33.123Z", &lo, &hi));
    CHECK_INT(lo, 1795617393123);
    CHECK_INT(hi - lo, 1);
    CHECK(gw_time_parse_fhir("2026-11-25T15:36:33+01:00", &lo, &hi));
    CHECK_INT(lo, 1795617393000);
    CHECK_INT(hi - lo, 1000);
    CHECK(!gw_time_parse_fhir("2026-02-30", &lo, &hi));
    CHECK(!gw_time_parse_fhir("2026-11-25T14:36", &lo, &hi));
    CHECK(!gw_time_parse_fhir("2026-11-25T14:36:33", &lo, &hi)); /* zone required */
    CHECK(!gw_time_parse_fhir("26-11-25", &lo, &hi));
    CHECK(!gw_time_parse_fhir("2026-13", &lo, &hi));
}

static void uuid_is_version_4_text(void)
{
    char a[GW_UUID_LEN], b[GW_UUID_LEN];

    CHECK_INT(gw_uuid(a, NULL), GW_OK);
    CHECK_INT(gw_uuid(b, NULL), GW_OK);
    CHECK_INT(strlen(a), 36);
    CHECK(a[14] == '4');
    CHECK(strchr("89ab", a[19]) != NULL);
    CHECK(strcmp(a, b) != 0);
}

static void uuid7_is_version_7_text_in_time_order(void)
{
    char a[GW_UUID_LEN], b[GW_UUID_LEN], stamp[13];
    long long ms;
    int i, k = 0;

    CHECK_INT(gw_uuid7(a, NULL), GW_OK);
    nanosleep(&(struct timespec){0, 2000000}, NULL);
    CHECK_INT(gw_uuid7(b, NULL), GW_OK);
    CHECK_INT(strlen(a), 36);
    CHECK(a[14] == '7');
    CHECK(strchr("89ab", a[19]) != NULL);
    CHECK(strcmp(a, b) < 0); /* a later id sorts after */
    for (i = 0; i < 13 && k < 12; i++)
        if (a[i] != '-')
            stamp[k++] = a[i];
    stamp[k] = '\0';
    ms = strtoll(stamp, NULL, 16);
    CHECK(ms <= gw_now_ms() && ms > gw_now_ms() - 60000);
}

/* Crockford base 32: the creation millisecond in the first ten characters, so ids
 * made in a row sort in that order; the rest random; bad lengths refused. */
static void sortable_ids_start_with_their_millisecond_and_sort_in_time_order(void)
{
    static const char digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    char a[19], b[19], c[19];
    long long ms = 0, before = gw_now_ms();
    int i;

    CHECK_INT(gw_sortable_id(a, 18, NULL), GW_OK);
    nanosleep(&(struct timespec){0, 2000000}, NULL);
    CHECK_INT(gw_sortable_id(b, 18, NULL), GW_OK);
    CHECK_INT(gw_sortable_id(c, 18, NULL), GW_OK);
    CHECK_INT(strlen(a), 18);
    CHECK(strspn(a, digits) == 18 && strspn(b, digits) == 18);
    CHECK(strcmp(a, b) < 0);
    CHECK(strcmp(b, c) != 0); /* same millisecond or not, 40 random bits differ */
    for (i = 0; i < 10; i++)
        ms = ms * 32 + (long long)(strchr(digits, a[i]) - digits);
    CHECK(ms >= before && ms <= gw_now_ms());
    CHECK_INT(gw_sortable_id(a, 10, NULL), GW_E_INTERNAL);
    CHECK_INT(gw_sortable_id(a, 64, NULL), GW_E_INTERNAL);
}

static int compare_ids(const void *x, const void *y)
{
    return strcmp((const char *)x, (const char *)y);
}

/* Many in a row (several blocks of the generator's bytes): well formed and all different. */
static void uuids_in_a_row_are_well_formed_and_distinct(void)
{
    static char ids[2000][GW_UUID_LEN];
    int i, k, bad = 0, same = 0;

    for (i = 0; i < 2000; i++) {
        CHECK_INT(gw_uuid(ids[i], NULL), GW_OK);
        for (k = 0; k < 36; k++)
            bad += (k == 8 || k == 13 || k == 18 || k == 23)
                       ? ids[i][k] != '-'
                       : !strchr("0123456789abcdef", ids[i][k]);
        bad += ids[i][14] != '4' || !strchr("89ab", ids[i][19]) || ids[i][36] != '\0';
    }
    qsort(ids, 2000, sizeof ids[0], compare_ids);
    for (i = 1; i < 2000; i++)
        same += strcmp(ids[i - 1], ids[i]) == 0;
    CHECK_INT(bad, 0);
    CHECK_INT(same, 0);
}

static void sha256_matches_known_digest(void)
{
    char hex[65];

    gw_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void metrics_render_counters_and_cumulative_histograms(void)
{
    struct gw_buf b;
    static const double bounds[] = {1, 5};

    gw_metric_add("t_requests_total", "route=\"read\"", 1);
    gw_metric_add("t_requests_total", "route=\"read\"", 2);
    gw_metric_histogram("t_batch", "batch sizes", bounds, 2);
    gw_metric_observe("t_batch", "", 1);
    gw_metric_observe("t_batch", "", 3);
    gw_metric_observe("t_batch", "", 9);
    gw_buf_init(&b, 1 << 16);
    gw_metrics_render(&b);
    CHECK(strstr(b.data, "t_requests_total{route=\"read\"} 3\n") != NULL);
    CHECK(strstr(b.data, "t_batch_bucket{le=\"1\"} 1\n") != NULL);
    CHECK(strstr(b.data, "t_batch_bucket{le=\"5\"} 2\n") != NULL);
    CHECK(strstr(b.data, "t_batch_bucket{le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(b.data, "t_batch_count 3\n") != NULL);
    gw_buf_cleanup(&b);
    gw_metrics_reset();
}

/* ------------------------------------------------------------ JSON text against Jansson */

static unsigned long long json_seed = 0x9E3779B97F4A7C15ULL;

static unsigned next_random(unsigned bound)
{
    json_seed ^= json_seed << 13;
    json_seed ^= json_seed >> 7;
    json_seed ^= json_seed << 17;
    return (unsigned)(json_seed % bound);
}

/* Pieces of strings: plain, escaped, controls, UTF-8 of 2 to 4 bytes and
 * (when invalid is set) bytes Jansson refuses to write. */
static json_t *random_string(bool invalid)
{
    static const char *const pieces[] = {"a",
                                         "Zq",
                                         " ",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\n",
                                         "\t",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\b",
                                         "\f",
                                         "\r",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80"};
    static const char *const bad[] = {"\xc3", "\xed\xa0\x80", "\xc0\x80", "\xf5\x80\x80\x80"};
    char text[256];
    size_t len = 0, n = next_random(8), i;

    for (i = 0; i < n; i++) {
        const char *p =
            invalid && next_random(20) == 0 ? bad[next_random(4)] : pieces[next_random(17)];
        size_t k = strlen(p);

        memcpy(text + len, p, k);
        len += k;
    }
    if (next_random(30) == 0) /* an embedded NUL: \u0000 when written */
        text[len++] = '\0';
    return json_stringn_nocheck(text, len);
}

static json_t *random_value(int depth, bool invalid)
{
    static const json_int_t ints[] = {
        0, -1, 7, 1234567890123LL, -9223372036854775807LL - 1, 9223372036854775807LL};
    static const double reals[] = {0.5, -2.25, 1e300, 3.0, 1.0 / 3.0, -0.0, 1e-310};
    unsigned kind = next_random(depth > 4 ? 6 : 9);
    json_t *v;
    size_t i, n;

    switch (kind) {
    case 0:
        return random_string(invalid);
    case 1:
        return json_integer(ints[next_random(6)]);
    case 2:
        return json_real(reals[next_random(7)]);
    case 3:
        return json_true();
    case 4:
        return json_false();
    case 5:
        return json_null();
    case 6:
    case 7:
        v = json_object();
        n = next_random(6);
        for (i = 0; i < n; i++) {
            json_t *key = random_string(false);
            const char *k = json_string_value(key);

            if (strlen(k) == json_string_length(key)) /* keys hold no NUL */
                json_object_set_new(v, k, random_value(depth + 1, invalid));
            json_decref(key);
        }
        return v;
    default:
        v = json_array();
        n = next_random(5);
        for (i = 0; i < n; i++)
            json_array_append_new(v, random_value(depth + 1, invalid));
        return v;
    }
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void json_dumps_writes_what_jansson_writes(void)
{
    static const size_t flags[] = {JSON_COMPACT, JSON_COMPACT | JSON_SORT_KEYS,
                                   JSON_COMPACT | JSON_PRESERVE_ORDER, JSON_INDENT(2),
                                   JSON_COMPACT | JSON_ENCODE_ANY};
    int round, differ = 0;
    size_t f;

    for (round = 0; round < 3000; round++) {
        json_t *doc = random_value(0, round % 3 == 0);

        for (f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            char *mine = gw_json_dumps(doc, flags[f]), *theirs = json_dumps(doc, flags[f]);

            if (!same_text(mine, theirs) && differ++ < 3)
                fprintf(stderr, "    flags %zx: %s\n    jansson:  %s\n", flags[f],
                        mine ? mine : "(null)", theirs ? theirs : "(null)");
            free(mine);
            free(theirs);
        }
        json_decref(doc);
    }
    CHECK_INT(differ, 0);
}

/* Both readers give the same tree (compared as text, keys in their order) or both fail. */
static bool same_reading(const char *text, size_t len, size_t flags)
{
    json_error_t e1, e2;
    json_t *mine = gw_json_loadb(text, len, flags, &e1),
           *theirs = json_loadb(text, len, flags, &e2);
    char *a = mine ? json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *b = theirs ? json_dumps(theirs, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    bool same = same_text(a, b) && (mine || strcmp(e1.text, e2.text) == 0);

    free(a);
    free(b);
    json_decref(mine);
    json_decref(theirs);
    return same;
}

static void json_loadb_reads_what_jansson_reads(void)
{
    static const size_t writes[] = {JSON_COMPACT, JSON_INDENT(3), JSON_ENSURE_ASCII,
                                    JSON_ESCAPE_SLASH | JSON_COMPACT};
    int round, differ = 0;

    for (round = 0; round < 3000; round++) {
        json_t *doc = random_value(0, false);
        char *text = json_dumps(doc, writes[round % 4]);
        size_t len = text ? strlen(text) : 0;

        if (text && !same_reading(text, len, JSON_REJECT_DUPLICATES) && differ++ < 3)
            fprintf(stderr, "    read differently: %s\n", text);
        if (text && len > 2) { /* a byte changed, or the text cut short */
            char saved = text[len / 2];

            text[next_random((unsigned)len)] = "{}[],:\"\\u0-1e.tfnx \n\xc3"[next_random(21)];
            if (!same_reading(text, len, JSON_REJECT_DUPLICATES) && differ++ < 3)
                fprintf(stderr, "    read differently (changed): %s\n", text);
            text[len / 2] = saved;
            if (!same_reading(text, len - 1 - next_random((unsigned)len - 1), 0) && differ++ < 3)
                fprintf(stderr, "    read differently (cut): %s\n", text);
        }
        free(text);
        json_decref(doc);
    }
    CHECK_INT(differ, 0);
}

static void json_loadb_hands_jansson_what_it_refuses_or_rarely_sees(void)
{
    static const char *const texts[] = {"{\"a\":1,\"a\":2}",
                                        "{\"a\":\"\\u0000\"}",
                                        "{\"\\u0000\":1}",
                                        "[\"\\ud83d\\ude00\"]",
                                        "[\"\\ud83d\"]",
                                        "[\"\\ude00x\"]",
                                        "[\"\\u00e9\\u20AC\\/\"]",
                                        "[01]",
                                        "[1.]",
                                        "[-]",
                                        "[1e400]",
                                        "[-1e-400]",
                                        "[9223372036854775807]",
                                        "[9223372036854775808]",
                                        "[-9223372036854775809]",
                                        "[123456789012345678]",
                                        "[truex]",
                                        "[True]",
                                        "[nul]",
                                        "{}",
                                        "[]",
                                        " [ ] ",
                                        "[] x",
                                        "\"string\"",
                                        "7",
                                        "",
                                        "{\"a\" 1}",
                                        "{\"a\":1,}",
                                        "[1,]",
                                        "[\"tab\tin\"]",
                                        "[\"\xc3\"]",
                                        "[\"\xed\xa0\x80\"]",
                                        "{\"k\\\"q\":{\"k\\\"q\":[]}}",
                                        "[\"\\q\"]",
                                        "[\"\\u12G4\"]"};
    size_t i;
    json_error_t err;
    json_t *v;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (!same_reading(texts[i], strlen(texts[i]), JSON_REJECT_DUPLICATES))
            fprintf(stderr, "    read differently: %s\n", texts[i]);
        CHECK(same_reading(texts[i], strlen(texts[i]), JSON_REJECT_DUPLICATES));
        CHECK(same_reading(texts[i], strlen(texts[i]), 0));
    }
    v = gw_json_loadb("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &err);
    CHECK(v == NULL);
    CHECK(strstr(err.text, "duplicate object key") != NULL);
    v = gw_json_loads("{\"k\\\"q\":\"\\u00e9\",\"n\":-12,\"r\":2.5}", 0, NULL);
    CHECK_STR(json_string_value(json_object_get(v, "k\"q")), "\xc3\xa9");
    CHECK_INT(json_integer_value(json_object_get(v, "n")), -12);
    CHECK(json_real_value(json_object_get(v, "r")) == 2.5);
    json_decref(v);
}

/* The forms as snprintf() wrote them from gmtime_r(), for any instant. */
static void time_formats_agree_with_gmtime_everywhere(void)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t fixed[] = {0,
                       -1,
                       999,
                       -1000,
                       -86400001LL,
                       951782400000LL,
                       4102444799999LL,
                       -62135596800000LL,
                       253402300799999LL,
                       1795617393123LL,
                       -5000000000000000LL,
                       7000000000000000LL};
    int i, wrong = 0;

    for (i = 0; i < 20000; i++) {
        int64_t ms = i < 12 ? fixed[i]
                            : (int64_t)(next_random(2000000000u)) * 1000003LL - 1000000000000000LL +
                                  (int64_t)next_random(1000u);
        time_t secs = (time_t)(ms / 1000);
        int millis = (int)(ms % 1000);
        char a[GW_INSTANT_LEN], h[GW_HTTP_DATE_LEN], v[GW_HL7_TS_LEN];
        char ea[GW_INSTANT_LEN], eh[GW_HTTP_DATE_LEN], ev[GW_HL7_TS_LEN];
        struct tm tm;

        if (millis < 0) {
            millis += 1000;
            secs--;
        }
        if (!gmtime_r(&secs, &tm))
            continue;
        snprintf(ea, sizeof ea, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
                 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
                 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)millis);
        snprintf(eh, sizeof eh, "%s, %02u %s %04u %02u:%02u:%02u GMT", days[tm.tm_wday],
                 (unsigned)tm.tm_mday % 100u, months[tm.tm_mon],
                 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
        snprintf(ev, sizeof ev, "%04u%02u%02u%02u%02u%02u+0000",
                 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
                 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
        gw_time_instant(ms, a);
        gw_time_http(ms, h);
        gw_time_hl7(ms, v);
        if ((strcmp(a, ea) || strcmp(h, eh) || strcmp(v, ev)) && wrong++ < 3)
            fprintf(stderr, "    %lld: %s %s %s\n    want %s %s %s\n", (long long)ms, a, h, v, ea,
                    eh, ev);
    }
    CHECK_INT(wrong, 0);
}

static void json_copy_is_jansson_deep_copy(void)
{
    int round, differ = 0;

    for (round = 0; round < 2000; round++) {
        json_t *doc = random_value(0, round % 3 == 0), *mine = gw_json_copy(doc);
        json_t *theirs = json_deep_copy(doc);
        char *a = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = json_dumps(theirs, JSON_COMPACT | JSON_ENCODE_ANY);

        if ((!same_text(a, b) || !json_equal(mine, theirs) ||
             (json_is_object(doc) && mine == doc)) &&
            differ++ < 3)
            fprintf(stderr, "    copied differently: %s\n    jansson: %s\n", a ? a : "?",
                    b ? b : "?");
        if (json_is_object(mine)) /* a copy: changing it leaves the original */
            json_object_set_new(mine, "added", json_true());
        if (json_is_object(doc) && json_object_get(doc, "added"))
            differ++;
        free(a);
        free(b);
        json_decref(mine);
        json_decref(theirs);
        json_decref(doc);
    }
    CHECK_INT(differ, 0);
    CHECK(gw_json_copy(NULL) == NULL);
}

/* gw_buf_json_escape() as it was, one byte at a time: the reference for the word loop. */
static void json_escape_bytewise(struct gw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

        if (c >= 0x20 && c != '"' && c != '\\') {
            gw_buf_append(b, s + i, 1);
        } else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c;
            gw_buf_append(b, esc, 2);
        } else {
            gw_buf_append(b, esc, 6);
        }
    }
}

/* text (len bytes): plain letters with byte c at place at (when at < len), then a UTF-8
 * letter every seventh byte when accents. */
static size_t one_odd_byte(char *text, size_t len, size_t at, unsigned char c, bool accents)
{
    size_t i;

    for (i = 0; i < len; i++)
        text[i] = (char)('a' + i % 26);
    if (accents)
        for (i = 5; i + 1 < len; i += 7)
            memcpy(text + i, "\xc3\xa9", 2);
    if (at < len)
        text[at] = (char)c;
    return len;
}

static void json_escape_agrees_with_the_bytewise_escape_at_every_place(void)
{
    struct gw_buf mine, ref;
    char text[48];
    size_t len, at;
    unsigned c;
    int differ = 0;

    gw_buf_init(&mine, 1 << 20);
    gw_buf_init(&ref, 1 << 20);
    for (len = 0; len <= 40; len++)
        for (at = 0; at <= len; at++)
            for (c = 0; c < 256; c++) {
                one_odd_byte(text, len, at, (unsigned char)c, c % 2 == 0);
                gw_buf_reset(&mine);
                gw_buf_reset(&ref);
                gw_buf_json_escape(&mine, text, len);
                json_escape_bytewise(&ref, text, len);
                if ((mine.len != ref.len ||
                     (ref.len && memcmp(mine.data, ref.data, ref.len) != 0)) &&
                    differ++ < 3)
                    fprintf(stderr, "    len %zu, byte %02x at %zu: %s\n", len, c, at, mine.data);
            }
    CHECK_INT(differ, 0);
    gw_buf_cleanup(&mine);
    gw_buf_cleanup(&ref);
}

static void json_escape_of_a_long_string_stops_at_the_cap_as_the_bytewise_one(void)
{
    static const size_t caps[] = {0, 1, 7, 8, 9, 4095, 4096, 4097, 20000, 50000};
    char *text = malloc(12000);
    struct gw_buf mine, ref;
    size_t i, k;

    CHECK(text != NULL);
    if (!text)
        return;
    for (i = 0; i < 12000; i++)
        text[i] = i % 97 == 0 ? '\n' : i % 61 == 0 ? '"' : (char)('A' + i % 50);
    for (k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        gw_buf_init(&mine, caps[k]);
        gw_buf_init(&ref, caps[k]);
        gw_buf_json_escape(&mine, text, 12000);
        json_escape_bytewise(&ref, text, 12000);
        CHECK_INT(mine.err, ref.err);
        CHECK_INT(mine.len, ref.len);
        CHECK(mine.len == ref.len && (ref.len == 0 || memcmp(mine.data, ref.data, ref.len) == 0));
        gw_buf_cleanup(&mine);
        gw_buf_cleanup(&ref);
    }
    gw_buf_init(&mine, 10);
    gw_buf_json_escape(&mine, "", 0);
    CHECK_INT(mine.len, 0);
    CHECK_INT(mine.err, GW_OK);
    gw_buf_cleanup(&mine);
    free(text);
}

/* gw_buf_json_string()'s text, or NULL when it refused the string, as a new string. */
static char *json_string_text(const char *s, size_t n)
{
    struct gw_buf b;
    size_t len;
    char *text;
    bool ok;

    gw_buf_init(&b, 1 << 24);
    ok = gw_buf_json_string(&b, s, n);
    text = ok ? gw_buf_steal(&b, &len) : NULL;
    gw_buf_cleanup(&b);
    return text;
}

/* Jansson's text for the string s (n bytes), or NULL when it refuses it. */
static char *jansson_string_text(const char *s, size_t n)
{
    json_t *v = json_stringn_nocheck(s, n);
    char *text = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

    json_decref(v);
    return text;
}

static void json_string_writes_what_jansson_writes_at_every_place(void)
{
    static const char *const seqs[] = {"\xc3\xa9", "\xe2\x82\xac",    "\xf0\x9f\x98\x80",
                                       "\xc3",     "\xe2\x82",        "\xed\xa0\x80",
                                       "\xc0\xaf", "\xf4\x90\x80\x80"};
    char text[64];
    size_t len, at, k;
    unsigned c;
    int differ = 0;

    for (len = 0; len <= 40; len++)
        for (at = 0; at <= len; at++) {
            for (c = 0; c < 256 + sizeof seqs / sizeof seqs[0]; c++) {
                size_t n = one_odd_byte(text, len, at, (unsigned char)c, c % 3 == 0);
                char *mine, *theirs;

                if (c >= 256 && at < len) { /* a whole sequence at the place, valid or not */
                    k = strlen(seqs[c - 256]);
                    memmove(text + at + k, text + at + 1, len - at - 1);
                    memcpy(text + at, seqs[c - 256], k);
                    n = len - 1 + k;
                }
                mine = json_string_text(text, n);
                theirs = jansson_string_text(text, n);
                if (!same_text(mine, theirs) && differ++ < 3)
                    fprintf(stderr, "    len %zu, %u at %zu: %s\n    jansson: %s\n", n, c, at,
                            mine ? mine : "(refused)", theirs ? theirs : "(refused)");
                free(mine);
                free(theirs);
            }
        }
    CHECK_INT(differ, 0);
}

static void json_string_of_long_and_empty_strings_is_jansson_s(void)
{
    size_t n = 30000, i;
    char *text = malloc(n), *mine, *theirs;

    CHECK(text != NULL);
    if (!text)
        return;
    for (i = 0; i < n; i++) /* chunks of 4096 end inside a sequence somewhere */
        text[i] = (char)('a' + i % 26);
    for (i = 3; i + 3 < n; i += 13)
        memcpy(text + i, i % 2 ? "\xe2\x82\xac" : "\t\\\"", 3);
    mine = json_string_text(text, n);
    theirs = jansson_string_text(text, n);
    CHECK(mine && theirs && strcmp(mine, theirs) == 0);
    free(mine);
    free(theirs);
    mine = json_string_text("", 0);
    CHECK_STR(mine, "\"\"");
    free(mine);
    free(text);
}

/* gw_utf8_valid() as it was, one character at a time: the reference for the word loop. */
static bool utf8_valid_bytewise(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, k, need;

    while (i < n) {
        unsigned char c = s[i];
        uint32_t cp;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, cp = c & 0x07;
        else
            return false;
        if (n - i <= need)
            return false;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static void utf8_valid_agrees_with_the_bytewise_check_on_every_pair_at_every_place(void)
{
    char text[40];
    size_t len, at, i;
    unsigned pair;
    int differ = 0;

    for (len = 2; len <= 20; len += 3)
        for (at = 0; at + 2 <= len; at++)
            for (pair = 0; pair < 65536; pair++) {
                for (i = 0; i < len; i++)
                    text[i] = (char)('a' + i);
                text[at] = (char)(pair >> 8);
                text[at + 1] = (char)(pair & 0xFF);
                if (gw_utf8_valid(text, len) != utf8_valid_bytewise(text, len) && differ++ < 3)
                    fprintf(stderr, "    len %zu, %04x at %zu\n", len, pair, at);
            }
    for (i = 0; i < 200000; i++) { /* three and four byte sequences, some cut or misplaced */
        size_t n = 4 + next_random(24), j;

        for (j = 0; j < n; j++)
            text[j] = (char)(next_random(3) ? 'a' + next_random(26) : 0x80 + next_random(0x78));
        if (gw_utf8_valid(text, n) != utf8_valid_bytewise(text, n) && differ++ < 3)
            fprintf(stderr, "    random case %zu\n", i);
    }
    CHECK_INT(differ, 0);
    CHECK(gw_utf8_valid("", 0));
    CHECK(!gw_utf8_valid("abcdefgh\0", 9));
    CHECK(!gw_utf8_valid("abcdefg\0ijklmnop", 16));
    CHECK(gw_utf8_valid("abcdefghijklmnopqrstuvwxyz0123456789", 36));
}

/* gw_json_set_string() does what json_object_set_new(obj, key, json_string(s)) does. */
static void set_string_accepts_and_refuses_what_jansson_does(void)
{
    static const char *const texts[] = {"",
                                        "plain",
                                        "H\xc3\xa9l\xc3\xa8ne Dupr\xc3\xa9 and a longer tail",
                                        "\xf0\x9f\x98\x80 emoji at the start of 20 bytes",
                                        "cut \xc3",
                                        "overlong \xc0\xaf in the middle of it",
                                        "surrogate \xed\xa0\x80 here",
                                        "past \xf4\x90\x80\x80 the end",
                                        "a control \x01 and a quote \" stay"};
    size_t i, j;
    int differ = 0;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (j = 0; j < sizeof texts / sizeof texts[0]; j++) {
            json_t *mine = json_object(), *theirs = json_object();
            int a = gw_json_set_string(mine, texts[j], texts[i]);
            int b = json_object_set_new(theirs, texts[j], json_string(texts[i]));

            if ((a != b || !json_equal(mine, theirs)) && differ++ < 3)
                fprintf(stderr, "    key %zu, value %zu: %d, jansson %d\n", j, i, a, b);
            json_decref(mine);
            json_decref(theirs);
        }
    CHECK_INT(differ, 0);
    {
        json_t *o = json_object(), *arr = json_array(), *v;

        CHECK_INT(gw_json_set_string(o, NULL, "x"), -1);
        CHECK_INT(gw_json_set_string(o, "k", NULL), -1);
        CHECK_INT(gw_json_set_string(NULL, "k", "x"), -1);
        CHECK_INT(gw_json_set_string(arr, "k", "x"), -1);
        CHECK_INT(json_object_size(o), 0);
        v = gw_json_strings(2, "a", "1", "b", "\xff");
        CHECK(v == NULL);
        v = gw_json_strings(2, "a", "1", "b", "2");
        CHECK(v && json_object_size(v) == 2 &&
              strcmp(json_string_value(json_object_get(v, "b")), "2") == 0);
        json_decref(v);
        json_decref(o);
        json_decref(arr);
    }
}

/* The log lines of gw_log() and gw_log_fields(), read back from stderr, timestamps cut out. */
static void log_lines_carry_message_and_fields_as_json(void)
{
    char path[] = "/tmp/gw-test-log-XXXXXX", text[1024], *at;
    int fd = mkstemp(path), saved = dup(2);
    json_t *fields = json_object();
    size_t n = 0;
    FILE *f;

    CHECK(fd >= 0 && saved >= 0 && fields != NULL);
    if (fd < 0 || saved < 0 || !fields)
        return;
    fflush(stderr);
    dup2(fd, 2);
    json_object_set_new(fields, "status", json_integer(201));
    json_object_set_new(fields, "route", json_string("create \"x\""));
    json_object_set_new(fields, "ms", json_real(1.5));
    gw_log_fields(GW_LOG_INFO, "http-request", fields, "%s", "");
    gw_log_fields(GW_LOG_WARN, "ev", fields, "%s", "a \"quoted\"\nline");
    gw_log(GW_LOG_ERROR, "count", "%d of %s", 3, "four");
    gw_log(GW_LOG_DEBUG, "hidden", "%s", "below the level");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    f = fdopen(fd, "r");
    if (f) {
        rewind(f);
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    unlink(path);
    json_decref(fields);
    for (at = strstr(text, "\"ts\":\""); at; at = strstr(at + 1, "\"ts\":\""))
        memset(at + 6, 'T', 24); /* 2026-11-30T14:37:27.408Z */
    CHECK_STR(text,
              "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"info\",\"event\":\"http-request\","
              "\"status\":201,\"route\":\"create \\\"x\\\"\",\"ms\":1.5}\n"
              "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"warn\",\"event\":\"ev\","
              "\"msg\":\"a \\\"quoted\\\"\\nline\",\"status\":201,\"route\":\"create \\\"x\\\"\","
              "\"ms\":1.5}\n"
              "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"error\",\"event\":\"count\","
              "\"msg\":\"3 of four\"}\n");
}

/* A string of 0 to 40 bytes with any byte, or an escape, at any place: read as Jansson reads
 * it (long runs of plain bytes are skipped eight at a time). */
static void json_loadb_reads_every_odd_byte_at_every_place_as_jansson(void)
{
    static const char *const escapes[] = {"\\\"", "\\\\", "\\n", "\\u00e9", "\\x", "\\"};
    char text[64], doc[80];
    size_t len, at, n, k;
    unsigned c;
    int differ = 0;

    for (len = 0; len <= 40; len++)
        for (at = 0; at <= len; at++)
            for (c = 0; c < 256 + sizeof escapes / sizeof escapes[0]; c++) {
                n = one_odd_byte(text, len, at, (unsigned char)c, c % 3 == 0);
                if (c >= 256 && at < len) {
                    k = strlen(escapes[c - 256]);
                    memmove(text + at + k, text + at + 1, len - at - 1);
                    memcpy(text + at, escapes[c - 256], k);
                    n = len - 1 + k;
                }
                doc[0] = '[';
                doc[1] = '"';
                memcpy(doc + 2, text, n);
                memcpy(doc + 2 + n, "\"]", 2);
                if (!same_reading(doc, n + 4, 0) && differ++ < 3)
                    fprintf(stderr, "    len %zu, %u at %zu\n", len, c, at);
                if (!same_reading(doc, n + 3, 0) && differ++ < 3) /* the bracket cut off */
                    fprintf(stderr, "    len %zu, %u at %zu, cut\n", len, c, at);
            }
    CHECK_INT(differ, 0);
}

int main(void)
{
    RUN(fail_records_code_and_truncates_long_messages);
    RUN(code_table_gives_http_issue_and_ack);
    RUN(buf_grows_and_stops_at_its_cap);
    RUN(buf_steal_of_an_empty_buffer_is_an_empty_string);
    RUN(grow_doubles_from_first_and_refuses_overflow);
    RUN(format_marks_a_cut_text);
    RUN(json_escape_escapes_quotes_and_controls);
    RUN(quoted_string_escapes_quotes_and_keeps_only_printable_ascii);
    RUN(utf8_accepts_accents_and_rejects_malformed_bytes);
    RUN(json_escape_agrees_with_the_bytewise_escape_at_every_place);
    RUN(json_escape_of_a_long_string_stops_at_the_cap_as_the_bytewise_one);
    RUN(json_string_writes_what_jansson_writes_at_every_place);
    RUN(json_string_of_long_and_empty_strings_is_jansson_s);
    RUN(utf8_valid_agrees_with_the_bytewise_check_on_every_pair_at_every_place);
    RUN(parse_long_rejects_junk_and_range);
    RUN(time_formats_instant_http_and_hl7);
    RUN(time_formats_agree_with_gmtime_everywhere);
    RUN(time_parses_fhir_precisions_as_ranges);
    RUN(uuid_is_version_4_text);
    RUN(uuid7_is_version_7_text_in_time_order);
    RUN(sortable_ids_start_with_their_millisecond_and_sort_in_time_order);
    RUN(uuids_in_a_row_are_well_formed_and_distinct);
    RUN(sha256_matches_known_digest);
    RUN(metrics_render_counters_and_cumulative_histograms);
    RUN(json_dumps_writes_what_jansson_writes);
    RUN(json_loadb_reads_what_jansson_reads);
    RUN(json_loadb_reads_every_odd_byte_at_every_place_as_jansson);
    RUN(json_loadb_hands_jansson_what_it_refuses_or_rarely_sees);
    RUN(json_copy_is_jansson_deep_copy);
    RUN(set_string_accepts_and_refuses_what_jansson_does);
    RUN(log_lines_carry_message_and_fields_as_json);
    return check_summary();
}
