/* test_http.c -- content negotiation and route patterns. */
#include "check.h"
#include "http/http.h"

static void accept_and_format_choose_the_answer(void)
{
    CHECK_INT(http_format_negotiate(NULL, NULL), HTTP_FORMAT_JSON);
    CHECK_INT(http_format_negotiate(NULL, "application/fhir+xml"), HTTP_FORMAT_XML);
    CHECK_INT(http_format_negotiate(NULL, "text/html, application/xml;q=0.9, */*;q=0.1"),
              HTTP_FORMAT_XML);
    CHECK_INT(http_format_negotiate(NULL, "application/fhir+json;q=0.2, application/fhir+xml"),
              HTTP_FORMAT_XML);
    CHECK_INT(http_format_negotiate(NULL, "*/*"), HTTP_FORMAT_JSON);
    CHECK_INT(http_format_negotiate(NULL, "text/html"), HTTP_FORMAT_NONE);
    CHECK_INT(http_format_negotiate("xml", "application/fhir+json"), HTTP_FORMAT_XML);
    CHECK_INT(http_format_negotiate("application/fhir+json", "text/html"), HTTP_FORMAT_JSON);
    CHECK_INT(http_format_negotiate("html", NULL), HTTP_FORMAT_NONE);
}

static void content_type_names_the_body_and_its_charset(void)
{
    bool ok;

    CHECK_INT(http_format_from_content_type("application/fhir+json; charset=UTF-8", &ok),
              HTTP_FORMAT_JSON);
    CHECK(ok);
    CHECK_INT(http_format_from_content_type("application/fhir+xml;charset=\"utf-8\"", &ok),
              HTTP_FORMAT_XML);
    CHECK(ok);
    http_format_from_content_type("application/fhir+json; charset=iso-8859-1", &ok);
    CHECK(!ok);
    CHECK_INT(http_format_from_content_type("application/hl7-v2", &ok), HTTP_FORMAT_HL7);
    CHECK_INT(http_format_from_content_type("text/csv", &ok), HTTP_FORMAT_NONE);
    CHECK_INT(http_format_from_content_type(NULL, &ok), HTTP_FORMAT_NONE);
}

static void patterns_capture_segments(void)
{
    char scratch[128];
    const char *caps[HTTP_MAX_CAPTURES] = {0};

    CHECK(http_route_match("/fhir/{type}/{id}", "/fhir/Patient/12", scratch, sizeof scratch, caps));
    CHECK_STR(caps[0], "Patient");
    CHECK_STR(caps[1], "12");
    CHECK(!http_route_match("/fhir/{type}/{id}", "/fhir/Patient", scratch, sizeof scratch, caps));
    CHECK(!http_route_match("/fhir/{type}/{id}", "/fhir/Patient/", scratch, sizeof scratch, caps));
    CHECK(!http_route_match("/fhir/{type}", "/fhir/Patient/12", scratch, sizeof scratch, caps));
    CHECK(http_route_match("/fhir/metadata", "/fhir/metadata", scratch, sizeof scratch, caps));
    CHECK(!http_route_match("/fhir/metadata", "/fhir/metadatax", scratch, sizeof scratch, caps));
    CHECK(!http_route_match("/fhir/{type}", "/fhir/Patient", scratch, 4, caps)); /* no room */
}

int main(void)
{
    RUN(accept_and_format_choose_the_answer);
    RUN(content_type_names_the_body_and_its_charset);
    RUN(patterns_capture_segments);
    return check_summary();
}
