/* test_util.c -- errors, buffers, UTF-8, time parsing and formatting, ids, metrics. */
#include "check.h"
#include "util/util.h"

#include <stdlib.h>
#include <time.h>

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
    RUN(parse_long_rejects_junk_and_range);
    RUN(time_formats_instant_http_and_hl7);
    RUN(time_parses_fhir_precisions_as_ranges);
    RUN(uuid_is_version_4_text);
    RUN(uuid7_is_version_7_text_in_time_order);
    RUN(sha256_matches_known_digest);
    RUN(metrics_render_counters_and_cumulative_histograms);
    return check_summary();
}
