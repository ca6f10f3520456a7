/* negotiate.c -- content negotiation (FHIR R4 §3.1.0.1.7 and §3.1.0.1.9).
 *
 * _format wins over Accept; Accept media ranges are taken by q-value;
 * application/fhir+json is the default. Bodies must say what they are:
 * FHIR JSON or XML (with the legacy json/xml aliases), in UTF-8.
 */
#include "http/http.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NEGOTIATE_MAX_TYPE 128

struct media {
    const char *name;
    enum http_format fmt;
};

static const struct media media_types[] = {
    {"application/fhir+json", HTTP_FORMAT_JSON},
    {"application/json+fhir", HTTP_FORMAT_JSON},
    {"application/json", HTTP_FORMAT_JSON},
    {"json", HTTP_FORMAT_JSON},
    {"application/fhir+xml", HTTP_FORMAT_XML},
    {"application/xml+fhir", HTTP_FORMAT_XML},
    {"application/xml", HTTP_FORMAT_XML},
    {"text/xml", HTTP_FORMAT_XML},
    {"xml", HTTP_FORMAT_XML},
    {"application/hl7-v2", HTTP_FORMAT_HL7},
    {"x-application/hl7-v2+er7", HTTP_FORMAT_HL7},
    {"text/plain", HTTP_FORMAT_TEXT},
};

/* The format named by the media type in [p, p+n), ignoring case. */
static enum http_format lookup(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
        if (strlen(media_types[i].name) == n && strncasecmp(media_types[i].name, p, n) == 0)
            return media_types[i].fmt;
    return HTTP_FORMAT_NONE;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Length of the media type at p (up to ';' ',' or space). */
static size_t type_len(const char *p)
{
    size_t n = 0;

    while (p[n] && p[n] != ';' && p[n] != ',' && p[n] != ' ' && p[n] != '\t')
        n++;
    return n;
}

enum http_format http_format_from_content_type(const char *ct, bool *charset_ok)
{
    const char *p, *cs;
    size_t n;

    *charset_ok = true;
    if (!ct)
        return HTTP_FORMAT_NONE;
    p = skip_space(ct);
    n = type_len(p);
    for (cs = p + n; (cs = strchr(cs, ';')) != NULL;) {
        cs = skip_space(cs + 1);
        if (strncasecmp(cs, "charset=", 8) == 0) {
            const char *v = cs + 8;

            if (*v == '"')
                v++;
            *charset_ok = strncasecmp(v, "utf-8", 5) == 0 &&
                          (v[5] == '\0' || v[5] == '"' || v[5] == ';' || v[5] == ' ');
        }
    }
    return lookup(p, n);
}

/* q-value of an Accept item's parameters starting at p (default 1). */
static double quality(const char *p)
{
    while (*p && *p != ',') {
        if (*p == ';') {
            p = skip_space(p + 1);
            if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
                return strtod(p + 2, NULL);
            continue;
        }
        p++;
    }
    return 1.0;
}

static enum http_format accept_item(const char *p, size_t n)
{
    enum http_format f = lookup(p, n);

    if (f == HTTP_FORMAT_JSON || f == HTTP_FORMAT_XML)
        return f;
    if ((n == 3 && strncmp(p, "*/*", 3) == 0) ||
        (n == 13 && strncasecmp(p, "application/*", 13) == 0))
        return HTTP_FORMAT_JSON;
    return HTTP_FORMAT_NONE;
}

enum http_format http_format_negotiate(const char *format_param, const char *accept)
{
    enum http_format best = HTTP_FORMAT_NONE;
    double best_q = 0;
    const char *p;

    if (format_param) {
        enum http_format f = lookup(format_param, strlen(format_param));

        return f == HTTP_FORMAT_JSON || f == HTTP_FORMAT_XML ? f : HTTP_FORMAT_NONE;
    }
    if (!accept || !*skip_space(accept))
        return HTTP_FORMAT_JSON;
    for (p = accept; *p;) {
        size_t n;
        enum http_format f;
        double q;

        p = skip_space(p);
        n = type_len(p);
        f = accept_item(p, n);
        q = quality(p + n);
        if (f != HTTP_FORMAT_NONE && q > best_q) {
            best = f;
            best_q = q;
        }
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    return best;
}

const char *http_format_media_type(enum http_format fmt)
{
    switch (fmt) {
    case HTTP_FORMAT_XML:
        return "application/fhir+xml; charset=utf-8";
    case HTTP_FORMAT_HL7:
        return "application/hl7-v2; charset=utf-8";
    case HTTP_FORMAT_TEXT:
        return "text/plain; charset=utf-8";
    default:
        return "application/fhir+json; charset=utf-8";
    }
}
