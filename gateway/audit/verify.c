/* verify.c -- checking the audit chain and exporting it as NDJSON.
 *
 * Verification walks rows in seq order and checks, for each: the seq follows
 * the previous one without a gap (a removed row), prev_hash equals the
 * previous row's hash (an inserted or reordered row), the hash recomputed
 * from prev_hash and the stored text equals the stored hash (an altered row),
 * and the text's id is the row's id. The first failure is named.
 *
 * An anchor (SEQ:HASH of an event, printed by an earlier verify and kept
 * elsewhere) covers what a chain cannot show by itself: events cut from its
 * end. The anchored event must still be there, with the same hash.
 */
#include "audit/audit.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

struct walk {
    const char *key;
    char prev_hash[65];
    int64_t prev_seq;
    const struct audit_anchor *anchor; /* may be NULL */
    bool anchor_seen;
    struct audit_verify_result *res;
};

static bool broken(struct walk *w, const struct store_audit_row *row, const char *reason)
{
    w->res->intact = false;
    w->res->broken_seq = row->seq;
    snprintf(w->res->broken_id, sizeof w->res->broken_id, "%s", row->id);
    snprintf(w->res->reason, sizeof w->res->reason, "%s", reason);
    return false;
}

static bool id_matches(const struct store_audit_row *row)
{
    json_t *j = gw_json_loads(row->json, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    bool ok = id && strcmp(id, row->id) == 0;

    json_decref(j);
    return ok;
}

static bool check_row(const struct store_audit_row *row, void *ctx)
{
    struct walk *w = ctx;
    char hash[65];

    if (w->prev_seq && row->seq != w->prev_seq + 1)
        return broken(w, row, "the event before it is missing (the sequence has a gap)");
    if (strcmp(row->prev_hash, w->prev_hash) != 0)
        return broken(w, row, "it does not link to the event before it (inserted or reordered)");
    store_audit_hash(w->key, row->prev_hash, row->json, hash);
    if (strcmp(hash, row->hash) != 0)
        return broken(w, row, "its content does not match its hash (altered)");
    if (!id_matches(row))
        return broken(w, row, "its content names another event (altered)");
    if (w->anchor && row->seq == w->anchor->seq) {
        if (strcmp(row->hash, w->anchor->hash) != 0)
            return broken(w, row, "its hash is not the anchored one (the chain was rewritten)");
        w->anchor_seen = true;
    }
    memcpy(w->prev_hash, row->hash, sizeof w->prev_hash);
    w->prev_seq = row->seq;
    w->res->checked++;
    return true;
}

bool audit_anchor_parse(const char *text, struct audit_anchor *out)
{
    const char *colon = strchr(text, ':');
    char seq[24];
    long n;
    size_t i;

    if (!colon || colon == text || (size_t)(colon - text) >= sizeof seq || strlen(colon + 1) != 64)
        return false;
    memcpy(seq, text, (size_t)(colon - text));
    seq[colon - text] = '\0';
    if (!gw_parse_long(seq, 1, LONG_MAX, &n))
        return false;
    for (i = 0; i < 64; i++) {
        char c = colon[1 + i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out->hash[i] = c;
    }
    out->hash[64] = '\0';
    out->seq = n;
    return true;
}

enum gw_code audit_verify_anchored(struct store *st, const char *key,
                                   const struct audit_anchor *anchor,
                                   struct audit_verify_result *out, struct gw_error *err)
{
    struct walk w = {.key = key, .prev_hash = STORE_AUDIT_GENESIS, .anchor = anchor, .res = out};
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    out->intact = true;
    rc = store_audit_scan(st, 0, 0, check_row, &w, err);
    if (rc || !out->intact)
        return rc;
    out->last_seq = w.prev_seq;
    memcpy(out->last_hash, w.prev_seq ? w.prev_hash : "", w.prev_seq ? sizeof w.prev_hash : 1);
    if (anchor && !w.anchor_seen) {
        out->intact = false;
        out->broken_seq = anchor->seq;
        snprintf(out->reason, sizeof out->reason,
                 "the anchored event %lld is gone: the chain ends at %lld (events were cut "
                 "from its end)",
                 (long long)anchor->seq, (long long)w.prev_seq);
    }
    return GW_OK;
}

enum gw_code audit_verify(struct store *st, const char *key, struct audit_verify_result *out,
                          struct gw_error *err)
{
    return audit_verify_anchored(st, key, NULL, out, err);
}

struct export_walk {
    FILE *out;
    long n;
    bool failed;
};

static bool export_row(const struct store_audit_row *row, void *ctx)
{
    struct export_walk *w = ctx;

    if (fputs(row->json, w->out) == EOF || fputc('\n', w->out) == EOF) {
        w->failed = true;
        return false;
    }
    w->n++;
    return true;
}

enum gw_code audit_export(struct store *st, int64_t since_ms, int64_t until_ms, FILE *out,
                          long *n_out, struct gw_error *err)
{
    struct export_walk w = {out, 0, false};
    enum gw_code rc = store_audit_scan(st, since_ms, until_ms, export_row, &w, err);

    *n_out = w.n;
    if (!rc && (w.failed || fflush(out) != 0))
        rc = gw_fail(err, GW_E_IO, "writing the export failed");
    return rc;
}
