/* endpoint.c -- where notifications may go and what they may carry: https
 * endpoint URLs, the allow-list of URL prefixes, the channel headers a GP
 * may add, the payload a Subscription asks for, and the retry backoff.
 *
 * The allow-list is compared on parsed URLs (host, port, path segments),
 * never as text prefixes: "https://gp.example" does not admit
 * "https://gp.example.evil.test" nor "https://gp.example@evil.test".
 */
#include "notify/notify_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

/* Headers that frame, route or authenticate the HTTP exchange itself: a GP
 * must not be able to set them (RFC 9110 §7.6.1 hop-by-hop, RFC 9112 framing). */
static const char *const protocol_headers[] = {"host",
                                               "content-length",
                                               "content-type",
                                               "content-encoding",
                                               "transfer-encoding",
                                               "connection",
                                               "keep-alive",
                                               "upgrade",
                                               "te",
                                               "trailer",
                                               "expect",
                                               "proxy-authorization",
                                               "proxy-authenticate",
                                               "proxy-connection",
                                               "via",
                                               "forwarded",
                                               "x-forwarded-for",
                                               "x-forwarded-host",
                                               "x-forwarded-proto",
                                               "user-agent",
                                               NULL};

static bool is_dns_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.';
}

/* Path and query characters of RFC 3986 (no spaces, controls or fragment). */
static bool is_target_char(char c)
{
    return isalnum((unsigned char)c) || strchr("-._~!$&'()*+,;=:@/?%", c) != NULL;
}

static enum gw_code parse_host(const char **pp, struct notify_url *out, struct gw_error *err)
{
    const char *p = *pp, *end;
    size_t n;
    unsigned char addr[16];

    if (*p == '[') {
        end = strchr(p, ']');
        n = end ? (size_t)(end - p - 1) : 0;
        if (!end || n == 0 || n >= sizeof out->host)
            return gw_fail(err, GW_E_INPUT, "the endpoint's IPv6 address is not closed by ']'");
        memcpy(out->host, p + 1, n);
        out->host[n] = '\0';
        if (inet_pton(AF_INET6, out->host, addr) != 1)
            return gw_fail(err, GW_E_INPUT, "the endpoint's host is not an IPv6 address");
        out->host_is_ip = true;
        *pp = end + 1;
        return GW_OK;
    }
    for (end = p; is_dns_char(*end); end++)
        ;
    n = (size_t)(end - p);
    if (n == 0 || n >= sizeof out->host || p[0] == '.' || p[0] == '-' || end[-1] == '-')
        return gw_fail(err, GW_E_INPUT, "the endpoint has no valid host name");
    if (*end && *end != ':' && *end != '/' && *end != '?')
        return gw_fail(err, GW_E_INPUT,
                       "the endpoint's host has a character not allowed there "
                       "(user information, fragments and spaces are refused)");
    memcpy(out->host, p, n);
    out->host[n] = '\0';
    for (n = 0; out->host[n]; n++)
        out->host[n] = (char)tolower((unsigned char)out->host[n]);
    out->host_is_ip = inet_pton(AF_INET, out->host, addr) == 1;
    *pp = end;
    return GW_OK;
}

static enum gw_code parse_port(const char **pp, struct notify_url *out, struct gw_error *err)
{
    const char *p = *pp;
    char digits[8];
    size_t n = 0;
    long port;

    out->port = 443;
    if (*p != ':')
        return GW_OK;
    for (p++; isdigit((unsigned char)p[n]) && n + 1 < sizeof digits; n++)
        digits[n] = p[n];
    digits[n] = '\0';
    if (!gw_parse_long(digits, 1, 65535, &port) || (p[n] && p[n] != '/' && p[n] != '?'))
        return gw_fail(err, GW_E_INPUT, "the endpoint's port is not a number from 1 to 65535");
    out->port = (int)port;
    *pp = p + n;
    return GW_OK;
}

enum gw_code notify_url_parse(const char *text, struct notify_url *out, struct gw_error *err)
{
    const char *p = text;
    size_t i, n;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    if (!text || strlen(text) >= NOTIFY_MAX_URL)
        return gw_fail(err, GW_E_INPUT, "the endpoint is missing or longer than %d bytes",
                       NOTIFY_MAX_URL - 1);
    if (strncmp(p, "https://", 8) != 0)
        return gw_fail(err, GW_E_INPUT, "the endpoint must be an https:// URL");
    p += 8;
    rc = parse_host(&p, out, err);
    if (!rc)
        rc = parse_port(&p, out, err);
    if (rc)
        return rc;
    n = strlen(p);
    for (i = 0; i < n; i++)
        if (!is_target_char(p[i]))
            return gw_fail(err, GW_E_INPUT,
                           "the endpoint's path has a character not allowed in a URL (byte %zu)",
                           (size_t)(p + i - text));
    if (*p == '?')
        snprintf(out->target, sizeof out->target, "/%s", p);
    else
        snprintf(out->target, sizeof out->target, "%s", *p ? p : "/");
    return GW_OK;
}

/* True when the endpoint's target lies under the entry's path. */
static bool path_under(const char *target, const char *prefix)
{
    size_t n = strlen(prefix);

    if (n == 1) /* "/" */
        return true;
    if (strncmp(target, prefix, n) != 0)
        return false;
    return prefix[n - 1] == '/' || target[n] == '\0' || target[n] == '/' || target[n] == '?';
}

/* Calls fn on each entry of the allow-list; stops early when fn returns true. */
static bool each_entry(const char *allow, bool (*fn)(const char *entry, void *ctx), void *ctx)
{
    char entry[NOTIFY_MAX_URL];
    const char *p = allow;

    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        while (n && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n >= sizeof entry)
            n = sizeof entry - 1; /* too long to parse: refused by notify_allow_check() */
        memcpy(entry, p, n);
        entry[n] = '\0';
        if (n && fn(entry, ctx))
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

struct check_walk {
    struct gw_error *err;
    bool bad;
};

static bool check_entry(const char *entry, void *vctx)
{
    struct check_walk *w = vctx;
    struct notify_url url;
    struct gw_error why;

    if (notify_url_parse(entry, &url, &why) == GW_OK && !strchr(url.target, '?'))
        return false;
    gw_fail(w->err, GW_E_INPUT, "subscription_endpoints: \"%s\" is not an https URL prefix%s%s",
            entry, strchr(url.target, '?') ? " (no query)" : ": ",
            strchr(url.target, '?') ? "" : why.msg);
    w->bad = true;
    return true;
}

enum gw_code notify_allow_check(const char *allow, struct gw_error *err)
{
    struct check_walk w = {err, false};

    each_entry(allow, check_entry, &w);
    return w.bad ? GW_E_INPUT : GW_OK;
}

static bool entry_admits(const char *entry, void *vctx)
{
    const struct notify_url *url = vctx;
    struct notify_url allowed;

    return notify_url_parse(entry, &allowed, NULL) == GW_OK && allowed.port == url->port &&
           strcmp(allowed.host, url->host) == 0 && path_under(url->target, allowed.target);
}

bool notify_url_allowed(const struct notify_url *url, const char *allow)
{
    return each_entry(allow, entry_admits, (void *)url);
}

enum gw_code notify_header_check(const char *header, struct gw_error *err)
{
    const char *colon = header ? strchr(header, ':') : NULL, *p;
    char name[64];
    size_t n, i;

    if (!colon || colon == header || strlen(header) > NOTIFY_MAX_HEADER)
        return gw_fail(err, GW_E_INPUT, "a channel header is \"Name: value\" of at most %d bytes",
                       NOTIFY_MAX_HEADER);
    n = (size_t)(colon - header);
    for (i = 0; i < n; i++)
        if (!isalnum((unsigned char)header[i]) && !strchr("!#$%&'*+-.^_`|~", header[i]))
            return gw_fail(err, GW_E_INPUT, "a channel header name must be an HTTP token");
    for (p = colon + 1; *p; p++)
        if ((unsigned char)*p < 0x20 ? *p != '\t' : *p == 0x7f)
            return gw_fail(err, GW_E_INPUT,
                           "a channel header value may not hold control characters");
    if (n >= sizeof name)
        return GW_OK; /* longer than any protocol header name */
    for (i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)header[i]);
    name[n] = '\0';
    for (i = 0; protocol_headers[i]; i++)
        if (strcmp(name, protocol_headers[i]) == 0)
            return gw_fail(err, GW_E_INPUT, "the channel header %s is set by the gateway itself",
                           protocol_headers[i]);
    if (strncmp(name, "proxy-", 6) == 0)
        return gw_fail(err, GW_E_INPUT, "proxy headers are set by the gateway itself");
    return GW_OK;
}

enum gw_code notify_content_of(json_t *subscription, enum notify_content *out, struct gw_error *err)
{
    static const char *const names[] = {"empty", "id-only", "full-resource"};
    json_t *channel = json_object_get(subscription, "channel"), *ext;
    const char *payload = json_string_value(json_object_get(channel, "payload"));
    const char *code = NULL;
    size_t i;

    *out = NOTIFY_PING;
    if (!payload)
        return GW_OK;
    if (strcmp(payload, NOTIFY_JSON) != 0)
        return gw_fail(err, GW_E_INPUT,
                       "channel.payload must be " NOTIFY_JSON " (or absent for an empty ping)");
    *out = NOTIFY_FULL_RESOURCE;
    json_array_foreach (json_object_get(json_object_get(channel, "_payload"), "extension"), i,
                        ext) {
        const char *url = json_string_value(json_object_get(ext, "url"));

        if (url && strcmp(url, NOTIFY_PAYLOAD_CONTENT) == 0)
            code = json_string_value(json_object_get(ext, "valueCode"));
    }
    for (i = 0; code && i < 3; i++) {
        if (strcmp(code, names[i]) == 0) {
            *out = (enum notify_content)(NOTIFY_EMPTY + (int)i);
            return GW_OK;
        }
    }
    if (code)
        return gw_fail(err, GW_E_INPUT,
                       "the payload content \"%s\" is not empty, id-only or full-resource", code);
    return GW_OK;
}

long notify_backoff_ms(long attempts, long min_ms, long max_ms)
{
    long delay = min_ms;

    if (min_ms <= 0)
        return max_ms > 0 ? max_ms : 0;
    while (--attempts > 0 && delay < max_ms)
        delay = delay > max_ms / 2 ? max_ms : delay * 2;
    return delay > max_ms ? max_ms : delay;
}
