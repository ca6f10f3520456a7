/* payload.c -- the notification Bundle of the Subscriptions R5 Backport IG
 * for R4 (STU 1.1, backport-subscription-notification-r4): a history Bundle
 * whose first entry is the subscription status (a Parameters resource,
 * backport-subscription-status-r4) and whose next entry is the focus: the
 * resource version that changed (full-resource), its URL only (id-only), or
 * nothing (empty). The status has no topic: these are R4 criteria-based
 * Subscriptions, and the profile makes topic optional.
 *
 * One notification may report several consecutive events of its
 * subscription (a notification-event and a focus entry each, in order).
 * Identifiable: each event carries its event number (event-number; and
 * events-since-subscription-start is the last one's), and Bundle.id is
 * derived from the subscription and the notifications' places in its queue,
 * so the same notifications sent twice (an attempt whose answer was lost)
 * are the same Bundle twice.
 */
#include "notify/notify_int.h"

#include <stdio.h>
#include <string.h>

#define NOTIFY_MAX_REF (NOTIFY_MAX_URL + 256)

/* A name-based id in UUID form: SHA-256 of text, version nibble 5 (RFC 4122 §4.3). */
static void derived_uuid(const char *text, char out[GW_UUID_LEN])
{
    char hex[65];

    gw_sha256_hex(text, strlen(text), hex);
    hex[12] = '5';
    hex[16] = "89ab"[gw_hex_digit(hex[16]) & 3];
    snprintf(out, GW_UUID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

static json_t *notification_event(const struct notify_focus *f, enum notify_content content,
                                  const char *focus_url)
{
    char number[24], instant[GW_INSTANT_LEN];
    json_t *parts;

    snprintf(number, sizeof number, "%ld", f->event);
    gw_time_instant(f->timestamp_ms, instant);
    parts = json_pack("[{s:s, s:s}, {s:s, s:s}]", "name", "event-number", "valueString", number,
                      "name", "timestamp", "valueInstant", instant);
    if (parts && content != NOTIFY_EMPTY &&
        json_array_append_new(parts, json_pack("{s:s, s:{s:s}}", "name", "focus", "valueReference",
                                               "reference", focus_url))) {
        json_decref(parts);
        return NULL;
    }
    return parts ? json_pack("{s:s, s:o}", "name", "notification-event", "part", parts) : NULL;
}

static void focus_url(const struct notify_event *ev, const struct notify_focus *f, char *out,
                      size_t cap)
{
    snprintf(out, cap, "%s/%s/%s", ev->base, f->type, f->id);
}

static json_t *status_parameters(const struct notify_event *ev, const char *sub_url, const char *id)
{
    char events[24], url[NOTIFY_MAX_REF];
    bool event = ev->kind == STORE_NOTE_EVENT;
    json_t *params, *list;
    size_t i;

    snprintf(events, sizeof events, "%ld", ev->events);
    params =
        json_pack("{s:s, s:s, s:{s:[s]}, s:[{s:s, s:{s:s}}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}",
                  "resourceType", "Parameters", "id", id, "meta", "profile", NOTIFY_STATUS_PROFILE,
                  "parameter", "name", "subscription", "valueReference", "reference", sub_url,
                  "name", "status", "valueCode", ev->status, "name", "type", "valueCode",
                  event ? "event-notification" : "handshake", "name",
                  "events-since-subscription-start", "valueString", events);
    list = json_object_get(params, "parameter");
    for (i = 0; params && event && i < ev->n_focus; i++) {
        focus_url(ev, &ev->focus[i], url, sizeof url);
        if (json_array_append_new(list, notification_event(&ev->focus[i], ev->content, url))) {
            json_decref(params);
            return NULL;
        }
    }
    return params;
}

static json_t *focus_entry(const struct notify_event *ev, const struct notify_focus *f)
{
    char url[NOTIFY_MAX_REF], full[NOTIFY_MAX_REF], etag[40];
    bool created = f->version <= 1;
    json_t *e;

    focus_url(ev, f, full, sizeof full);
    snprintf(url, sizeof url, created ? "%s" : "%s/%s", f->type, f->id);
    snprintf(etag, sizeof etag, "W/\"%ld\"", f->version);
    e = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s}}", "fullUrl", full, "request", "method",
                  created ? "POST" : "PUT", "url", url, "response", "status",
                  created ? "201" : "200", "etag", etag);
    if (e && ev->content == NOTIFY_FULL_RESOURCE && f->resource &&
        json_object_set(e, "resource", f->resource)) {
        json_decref(e);
        return NULL;
    }
    return e;
}

json_t *notify_bundle_build(const struct notify_event *ev)
{
    char sub_url[NOTIFY_MAX_REF], status_url[NOTIFY_MAX_REF + 16];
    char seed[NOTIFY_MAX_REF], bundle_id[GW_UUID_LEN], status_id[GW_UUID_LEN];
    char full[GW_UUID_LEN + 16], instant[GW_INSTANT_LEN];
    json_t *bundle, *params;
    size_t i;

    snprintf(sub_url, sizeof sub_url, "%s/Subscription/%s", ev->base, ev->subscription_id);
    snprintf(status_url, sizeof status_url, "%s/$status", sub_url);
    snprintf(seed, sizeof seed, "Subscription/%s/notification/%ld-%ld", ev->subscription_id,
             ev->first_position, ev->last_position);
    derived_uuid(seed, bundle_id);
    snprintf(seed, sizeof seed, "Subscription/%s/status/%ld-%ld", ev->subscription_id,
             ev->first_position, ev->last_position);
    derived_uuid(seed, status_id);
    snprintf(full, sizeof full, "urn:uuid:%s", status_id);
    gw_time_instant(ev->timestamp_ms, instant);
    params = status_parameters(ev, sub_url, status_id);
    if (!params)
        return NULL;
    bundle = json_pack("{s:s, s:s, s:{s:[s]}, s:s, s:s, s:[{s:s, s:o, s:{s:s, s:s}, s:{s:s}}]}",
                       "resourceType", "Bundle", "id", bundle_id, "meta", "profile",
                       NOTIFY_BUNDLE_PROFILE, "type", "history", "timestamp", instant, "entry",
                       "fullUrl", full, "resource", params, "request", "method", "GET", "url",
                       status_url, "response", "status", "200");
    for (i = 0;
         bundle && ev->kind == STORE_NOTE_EVENT && ev->content != NOTIFY_EMPTY && i < ev->n_focus;
         i++) {
        if (json_array_append_new(json_object_get(bundle, "entry"),
                                  focus_entry(ev, &ev->focus[i]))) {
            json_decref(bundle);
            return NULL;
        }
    }
    return bundle;
}
