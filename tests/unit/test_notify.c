/* test_notify.c -- Subscription delivery rules: endpoint URLs and the
 * allow-list, channel headers, payload kinds, the retry backoff, and the
 * notification Bundle (valid R4, Backport shape, identifiable). */
#include "check.h"
#include "fhir/fhir.h"
#include "notify/notify.h"

#include <stdlib.h>

static const char *const allow = "https://gp.example/hooks/, https://127.0.0.1:9443,"
                                 " https://[::1]:8443/a";

static bool allowed(const char *endpoint)
{
    struct notify_url url;

    return notify_url_parse(endpoint, &url, NULL) == GW_OK && notify_url_allowed(&url, allow);
}

static void url_parse_takes_https_hosts_ports_and_targets(void)
{
    struct notify_url u;

    CHECK_INT(notify_url_parse("https://GP.example/hooks/x?y=1", &u, NULL), GW_OK);
    CHECK_STR(u.host, "gp.example");
    CHECK_INT(u.port, 443);
    CHECK_STR(u.target, "/hooks/x?y=1");
    CHECK(!u.host_is_ip);
    CHECK_INT(notify_url_parse("https://127.0.0.1:9443", &u, NULL), GW_OK);
    CHECK_STR(u.target, "/");
    CHECK(u.host_is_ip);
    CHECK_INT(u.port, 9443);
    CHECK_INT(notify_url_parse("https://[::1]:8443/a", &u, NULL), GW_OK);
    CHECK_STR(u.host, "::1");
    CHECK(u.host_is_ip);
}

static void url_parse_refuses_what_could_mislead(void)
{
    struct notify_url u;
    struct gw_error err;

    CHECK_INT(notify_url_parse("http://gp.example/", &u, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "https://") != NULL);
    CHECK_INT(notify_url_parse("https://gp.example@evil.test/", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse("https://gp.example/a#frag", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse("https://gp.example/a b", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse("https://gp.example:0/", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse("https://gp.example:70000/", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse("https://[::1/", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse("https:///x", &u, NULL), GW_E_INPUT);
    CHECK_INT(notify_url_parse(NULL, &u, NULL), GW_E_INPUT);
}

static void allow_list_compares_host_port_and_path_segments(void)
{
    CHECK(allowed("https://gp.example/hooks/x"));
    CHECK(allowed("https://gp.example:443/hooks/"));
    CHECK(!allowed("https://gp.example/hooksy"));
    CHECK(!allowed("https://gp.example/"));
    CHECK(!allowed("https://gp.example.evil.test/hooks/x"));
    CHECK(!allowed("https://gp.example:8443/hooks/x"));
    CHECK(allowed("https://127.0.0.1:9443/anything"));
    CHECK(!allowed("https://127.0.0.1/anything"));
    CHECK(allowed("https://[::1]:8443/a"));
    CHECK(allowed("https://[::1]:8443/a/b"));
    CHECK(allowed("https://[::1]:8443/a?x=1"));
    CHECK(!allowed("https://[::1]:8443/ab"));
    CHECK(!allowed("http://127.0.0.1:9443/"));
}

static void allow_list_entries_are_checked(void)
{
    struct gw_error err;

    CHECK_INT(notify_allow_check(allow, NULL), GW_OK);
    CHECK_INT(notify_allow_check("", NULL), GW_OK);
    CHECK_INT(notify_allow_check("https://ok.example/, http://plain.example/", &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "subscription_endpoints") && strstr(err.msg, "plain.example"));
    CHECK_INT(notify_allow_check("https://ok.example/?q=1", NULL), GW_E_INPUT);
    {
        struct notify_url u;

        CHECK_INT(notify_url_parse("https://ok.example/x", &u, NULL), GW_OK);
        CHECK(!notify_url_allowed(&u, ""));
    }
}

static void headers_may_not_be_protocol_headers(void)
{
    struct gw_error err;

    CHECK_INT(notify_header_check("Authorization: Bearer abc", NULL), GW_OK);
    CHECK_INT(notify_header_check("X-Practice: 42\t", NULL), GW_OK);
    CHECK_INT(notify_header_check("host: evil.test", &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "host") != NULL);
    CHECK_INT(notify_header_check("Content-Length: 0", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check("Transfer-Encoding: chunked", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check("Connection: keep-alive", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check("Proxy-Anything: x", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check("X-Ok: a\r\nX-Injected: b", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check("Bad Name: x", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check(": x", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check("no colon", NULL), GW_E_INPUT);
    CHECK_INT(notify_header_check(NULL, NULL), GW_E_INPUT);
}

static void backoff_doubles_up_to_its_cap(void)
{
    CHECK_INT(notify_backoff_ms(1, 100, 1000), 100);
    CHECK_INT(notify_backoff_ms(2, 100, 1000), 200);
    CHECK_INT(notify_backoff_ms(3, 100, 1000), 400);
    CHECK_INT(notify_backoff_ms(4, 100, 1000), 800);
    CHECK_INT(notify_backoff_ms(5, 100, 1000), 1000);
    CHECK_INT(notify_backoff_ms(1000000, 100, 1000), 1000);
    CHECK_INT(notify_backoff_ms(0, 100, 1000), 100);
    CHECK_INT(notify_backoff_ms(60, 1000, 86400000), 86400000); /* no overflow */
    CHECK_INT(notify_backoff_ms(3, 700, 500), 500);
}

static json_t *sub_with(const char *payload, const char *content)
{
    json_t *s =
        json_pack("{s:s, s:{s:s}}", "resourceType", "Subscription", "channel", "type", "rest-hook");
    json_t *ch = json_object_get(s, "channel");

    if (payload)
        json_object_set_new(ch, "payload", json_string(payload));
    if (content)
        json_object_set_new(ch, "_payload",
                            json_pack("{s:[{s:s, s:s}]}", "extension", "url",
                                      NOTIFY_PAYLOAD_CONTENT, "valueCode", content));
    return s;
}

static void payload_content_follows_the_channel(void)
{
    struct {
        const char *payload, *content;
        enum gw_code rc;
        enum notify_content want;
    } cases[] = {{NULL, NULL, GW_OK, NOTIFY_PING},
                 {NOTIFY_JSON, NULL, GW_OK, NOTIFY_FULL_RESOURCE},
                 {NOTIFY_JSON, "id-only", GW_OK, NOTIFY_ID_ONLY},
                 {NOTIFY_JSON, "empty", GW_OK, NOTIFY_EMPTY},
                 {NOTIFY_JSON, "full-resource", GW_OK, NOTIFY_FULL_RESOURCE},
                 {NOTIFY_JSON, "everything", GW_E_INPUT, NOTIFY_FULL_RESOURCE},
                 {"application/fhir+xml", NULL, GW_E_INPUT, NOTIFY_PING}};
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *s = sub_with(cases[i].payload, cases[i].content);
        enum notify_content got;

        CHECK_INT(notify_content_of(s, &got, NULL), cases[i].rc);
        if (cases[i].rc == GW_OK)
            CHECK_INT(got, cases[i].want);
        json_decref(s);
    }
}

static json_t *task_v3(void)
{
    return json_pack("{s:s, s:s, s:{s:s}, s:s, s:s, s:{s:s}}", "resourceType", "Task", "id", "t-1",
                     "meta", "versionId", "3", "status", "accepted", "intent", "order", "focus",
                     "reference", "ServiceRequest/sr-1");
}

static struct notify_focus focus_v3[2];

static struct notify_event event(json_t *focus, enum notify_content content)
{
    focus_v3[0] = (struct notify_focus){7, 1795000000000LL, "Task", "t-1", 3, focus};
    return (struct notify_event){.base = "https://gw.example/fhir",
                                 .subscription_id = "sub-1",
                                 .status = "active",
                                 .kind = STORE_NOTE_EVENT,
                                 .events = 7,
                                 .timestamp_ms = 1795000000000LL,
                                 .focus = focus_v3,
                                 .n_focus = 1,
                                 .content = content,
                                 .first_position = 8,
                                 .last_position = 8};
}

static const char *param(json_t *bundle, const char *name)
{
    json_t *p, *params = json_object_get(
                   json_object_get(json_array_get(json_object_get(bundle, "entry"), 0), "resource"),
                   "parameter");
    size_t i;

    json_array_foreach (params, i, p)
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return json_string_value(json_object_get(p, "valueString"))
                       ? json_string_value(json_object_get(p, "valueString"))
                       : json_string_value(json_object_get(p, "valueCode"));
    return NULL;
}

static void bundle_is_valid_r4_in_the_backport_shape(void)
{
    json_t *task = task_v3(), *outcome = fhir_outcome_create();
    struct notify_event ev = event(task, NOTIFY_FULL_RESOURCE);
    json_t *b = notify_bundle_build(&ev), *entries = json_object_get(b, "entry");
    json_t *focus = json_array_get(entries, 1), *parts;

    CHECK(b != NULL);
    CHECK_INT(fhir_validate(b, outcome), 0);
    CHECK_STR(json_string_value(json_object_get(b, "type")), "history");
    CHECK_INT(json_array_size(entries), 2);
    CHECK_STR(param(b, "type"), "event-notification");
    CHECK_STR(param(b, "status"), "active");
    CHECK_STR(param(b, "events-since-subscription-start"), "7");
    parts = json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_array_get(entries, 0), "resource"), "parameter"),
            4),
        "part");
    CHECK_STR(json_string_value(json_object_get(json_array_get(parts, 0), "valueString")), "7");
    CHECK_STR(json_string_value(json_object_get(json_array_get(parts, 1), "valueInstant")),
              "2026-11-18T11:06:40.000Z");
    CHECK_STR(json_string_value(json_object_get(
                  json_object_get(json_array_get(parts, 2), "valueReference"), "reference")),
              "https://gw.example/fhir/Task/t-1");
    CHECK_STR(json_string_value(json_object_get(focus, "fullUrl")),
              "https://gw.example/fhir/Task/t-1");
    CHECK_STR(json_string_value(json_object_get(json_object_get(focus, "request"), "method")),
              "PUT");
    CHECK_STR(json_string_value(json_object_get(json_object_get(focus, "request"), "url")),
              "Task/t-1");
    CHECK_STR(json_string_value(json_object_get(json_object_get(focus, "response"), "etag")),
              "W/\"3\"");
    CHECK(json_object_get(focus, "resource") == task);
    json_decref(b);
    json_decref(outcome);
    json_decref(task);
}

static void same_notification_same_bundle_id_another_another(void)
{
    struct notify_event ev = event(NULL, NOTIFY_ID_ONLY);
    json_t *a = notify_bundle_build(&ev), *b = notify_bundle_build(&ev), *c;

    ev.last_position++;
    c = notify_bundle_build(&ev);
    CHECK(json_equal(a, b));
    CHECK_STR(json_string_value(json_object_get(a, "id")),
              json_string_value(json_object_get(b, "id")));
    CHECK(strcmp(json_string_value(json_object_get(a, "id")),
                 json_string_value(json_object_get(c, "id"))) != 0);
    CHECK(json_object_get(json_array_get(json_object_get(a, "entry"), 1), "resource") == NULL);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void several_events_go_in_order_in_one_bundle(void)
{
    json_t *t3 = task_v3(), *t4 = task_v3(), *outcome = fhir_outcome_create(), *b, *entries;
    struct notify_event ev = event(t3, NOTIFY_FULL_RESOURCE);

    json_object_set_new(json_object_get(t4, "meta"), "versionId", json_string("4"));
    focus_v3[1] = (struct notify_focus){8, 1795000000100LL, "Task", "t-1", 4, t4};
    ev.n_focus = 2;
    ev.events = 8;
    ev.last_position = 9;
    b = notify_bundle_build(&ev);
    entries = json_object_get(b, "entry");
    CHECK_INT(json_array_size(entries), 3);
    CHECK_INT(fhir_validate(b, outcome), 0); /* one fullUrl twice: allowed in a history Bundle */
    CHECK_STR(param(b, "events-since-subscription-start"), "8");
    CHECK(json_object_get(json_array_get(entries, 1), "resource") == t3);
    CHECK(json_object_get(json_array_get(entries, 2), "resource") == t4);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(entries, 2), "response"), "etag")),
              "W/\"4\"");
    {
        json_t *params =
            json_object_get(json_object_get(json_array_get(entries, 0), "resource"), "parameter");
        json_t *second = json_object_get(json_array_get(params, 5), "part");

        CHECK_INT(json_array_size(params), 6); /* two notification-event parameters */
        CHECK_STR(json_string_value(json_object_get(json_array_get(second, 0), "valueString")),
                  "8");
    }
    json_decref(b);
    json_decref(outcome);
    json_decref(t3);
    json_decref(t4);
}

static void handshake_and_empty_carry_no_focus(void)
{
    json_t *outcome = fhir_outcome_create(), *b;
    struct notify_event ev = event(NULL, NOTIFY_EMPTY);

    b = notify_bundle_build(&ev);
    CHECK_INT(json_array_size(json_object_get(b, "entry")), 1);
    CHECK_INT(fhir_validate(b, outcome), 0);
    json_decref(b);
    ev = event(NULL, NOTIFY_FULL_RESOURCE);
    ev.kind = STORE_NOTE_HANDSHAKE;
    ev.events = 0;
    ev.status = "requested";
    b = notify_bundle_build(&ev);
    CHECK_INT(json_array_size(json_object_get(b, "entry")), 1);
    CHECK_STR(param(b, "type"), "handshake");
    CHECK_STR(param(b, "events-since-subscription-start"), "0");
    CHECK_STR(param(b, "status"), "requested");
    CHECK_INT(fhir_validate(b, outcome), 0);
    json_decref(b);
    json_decref(outcome);
}

int main(void)
{
    fhir_init();
    RUN(url_parse_takes_https_hosts_ports_and_targets);
    RUN(url_parse_refuses_what_could_mislead);
    RUN(allow_list_compares_host_port_and_path_segments);
    RUN(allow_list_entries_are_checked);
    RUN(headers_may_not_be_protocol_headers);
    RUN(backoff_doubles_up_to_its_cap);
    RUN(payload_content_follows_the_channel);
    RUN(bundle_is_valid_r4_in_the_backport_shape);
    RUN(same_notification_same_bundle_id_another_another);
    RUN(several_events_go_in_order_in_one_bundle);
    RUN(handshake_and_empty_carry_no_focus);
    return check_summary();
}
