/* batch.c -- HL7 v2 batch files: [FHS] {[BHS] {message} [BTS]} [FTS]
 * (HL7 v2.5.1 §2.10.3), parsed into their messages and written around
 * already-encoded messages.
 *
 * Promises: a batch parses as a whole structure (headers well formed,
 * trailers present and their counts right) or fails; within it, each message
 * is parsed on its own, so one bad message is reported with its bytes and does
 * not hide the others. Bounds: HL7_MAX_BATCH bytes, HL7_MAX_BATCH_MESSAGES.
 */
#include "hl7v2/hl7v2_int.h"

#include <stdlib.h>
#include <string.h>

struct batch_item {
    struct hl7_msg *msg; /* NULL when the message did not parse */
    size_t off, len;     /* its bytes in hl7_batch.copy */
    struct gw_error error;
    struct hl7_err where;
};

struct hl7_batch {
    char *copy; /* the input, which raw bytes point into */
    size_t len;
    struct batch_item *items;
    size_t n_items, cap_items;
    struct hl7_msg *fhs, *bhs; /* header lines parsed as one-segment messages */
    bool has_headers;
};

/* One line of the input: [s, e), the next line starts at next. */
struct line {
    size_t s, e, next;
    char name[4]; /* its first three bytes when they form a segment name, else "" */
};

/* The batch parse in progress. */
struct bparser {
    struct hl7_batch *b;
    struct hl7_err *where;
    struct gw_error *err;
    struct line line;
    bool at_end;
    size_t pos;
};

static bool is_blank(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Moves to the next line that is not blank (at_end when there is none). */
static void next_line(struct bparser *p)
{
    const char *d = p->b->copy;
    size_t n = p->b->len, s;

    do {
        s = p->pos;
        while (p->pos < n && d[p->pos] != '\r' && d[p->pos] != '\n')
            p->pos++;
        p->line.s = s;
        p->line.e = p->pos;
        if (p->pos < n)
            p->pos++;
    } while (is_blank(d + s, p->line.e - s) && p->pos < n);
    p->line.next = p->pos;
    p->at_end = is_blank(d + s, p->line.e - s);
    memset(p->line.name, 0, sizeof p->line.name);
    if (p->line.e - p->line.s >= 3 && hl7_is_segment_name(d + p->line.s, 3))
        memcpy(p->line.name, d + p->line.s, 3);
}

static bool line_is(const struct bparser *p, const char *name)
{
    return !p->at_end && strcmp(p->line.name, name) == 0;
}

static bool is_boundary(const struct bparser *p)
{
    return line_is(p, "MSH") || line_is(p, "BHS") || line_is(p, "BTS") || line_is(p, "FHS") ||
           line_is(p, "FTS");
}

static enum gw_code structure_error(struct bparser *p, const char *segment, int field,
                                    const char *what)
{
    hl7_err_set(p->where, HL7_ERR_SEGMENT_SEQUENCE, segment, 1, field, 0);
    return gw_fail(p->err, GW_E_INPUT, "batch: %s", what);
}

/* Parses an FHS or BHS line into *hdr, a new one-segment message. */
static enum gw_code parse_header(struct bparser *p, const char *name, struct hl7_msg **hdr)
{
    enum gw_code rc =
        hl7_parse_any(p->b->copy + p->line.s, p->line.e - p->line.s, name, hdr, p->where, p->err);

    if (rc)
        return rc;
    p->b->has_headers = true;
    next_line(p);
    return GW_OK;
}

static enum gw_code add_item(struct bparser *p, size_t off, size_t len)
{
    struct hl7_batch *b = p->b;
    struct batch_item *it;
    enum gw_code rc;

    if (b->n_items >= HL7_MAX_BATCH_MESSAGES) {
        hl7_err_set(p->where, HL7_ERR_INTERNAL, NULL, 0, 0, 0);
        return gw_fail(p->err, GW_E_LIMIT, "batch holds more than %d messages",
                       HL7_MAX_BATCH_MESSAGES);
    }
    it = gw_grow(b->items, &b->cap_items, b->n_items, sizeof *it, 8);
    if (!it)
        return gw_fail(p->err, GW_E_NOMEM, "no memory for batch messages");
    b->items = it;
    it = &b->items[b->n_items++];
    memset(it, 0, sizeof *it);
    it->off = off;
    it->len = len;
    rc = hl7_msg_parse(b->copy + off, len, &it->msg, &it->where, &it->error);
    if (rc == GW_E_NOMEM) {
        *p->err = it->error;
        return rc;
    }
    return GW_OK; /* a bad message stays in the list with its error */
}

/* Collects the messages that follow: each runs from its MSH to the line
 * before the next MSH or batch segment. Returns their number in *count. */
static enum gw_code read_messages(struct bparser *p, long *count)
{
    enum gw_code rc;
    size_t start, end;

    *count = 0;
    while (line_is(p, "MSH")) {
        start = p->line.s;
        do {
            end = p->line.e;
            next_line(p);
        } while (!p->at_end && !is_boundary(p));
        rc = add_item(p, start, end - start);
        if (rc)
            return rc;
        ++*count;
    }
    return GW_OK;
}

/* Checks the count in BTS-1 or FTS-1 (empty: not checked) against want,
 * with the field separator and component character of the header. */
static enum gw_code check_trailer(struct bparser *p, const struct hl7_msg *hdr, long want)
{
    const char *d = p->b->copy, *name = p->line.name;
    size_t s = p->line.s + 3, e;
    char digits[24];
    long got;

    if (s < p->line.e && d[s] == hdr->d.field)
        s++;
    for (e = s; e < p->line.e && d[e] != hdr->d.field && d[e] != hdr->d.comp; e++)
        ;
    if (e > s) {
        if (e - s >= sizeof digits) {
            hl7_err_set(p->where, HL7_ERR_DATA_TYPE, name, 1, 1, 0);
            return gw_fail(p->err, GW_E_INPUT, "batch: %s-1 is not a count", name);
        }
        memcpy(digits, d + s, e - s);
        digits[e - s] = '\0';
        if (!gw_parse_long(digits, 0, 1000000000L, &got)) {
            hl7_err_set(p->where, HL7_ERR_DATA_TYPE, name, 1, 1, 0);
            return gw_fail(p->err, GW_E_INPUT, "batch: %s-1 is not a count", name);
        }
        if (got != want) {
            hl7_err_set(p->where, HL7_ERR_SEGMENT_SEQUENCE, name, 1, 1, 0);
            return gw_fail(p->err, GW_E_INPUT, "batch: %s-1 counts %ld but the %s holds %ld", name,
                           got, name[0] == 'B' ? "batch" : "file", want);
        }
    }
    next_line(p);
    return GW_OK;
}

/* One [BHS] {message} [BTS] group; *is_batch says whether it had a BHS. */
static enum gw_code read_batch(struct bparser *p, bool *is_batch, long *count)
{
    struct hl7_msg *hdr = NULL;
    enum gw_code rc = GW_OK;

    *count = 0;
    *is_batch = line_is(p, "BHS");
    if (*is_batch)
        rc = parse_header(p, "BHS", &hdr);
    if (!rc)
        rc = read_messages(p, count);
    if (!rc && *is_batch && !line_is(p, "BTS"))
        rc = structure_error(p, "BTS", 0, "a BHS batch must end with BTS");
    if (!rc && *is_batch)
        rc = check_trailer(p, hdr, *count); /* with the delimiters of its own BHS */
    if (hdr && !p->b->bhs)
        p->b->bhs = hdr; /* the first batch header is kept for hl7_batch_header() */
    else
        hl7_msg_destroy(hdr);
    return rc;
}

/* What may not stand where the structure ended. */
static enum gw_code trailing_error(struct bparser *p, bool started)
{
    if (line_is(p, "BTS"))
        return structure_error(p, "BTS", 0, "BTS without BHS");
    if (line_is(p, "FTS"))
        return structure_error(p, "FTS", 0, "FTS without FHS");
    if (!started && p->at_end)
        return structure_error(p, "MSH", 0, "the input holds no message");
    if (!started)
        return structure_error(p, "MSH", 0, "the input does not start with MSH, BHS or FHS");
    return structure_error(p, NULL, 0, "unexpected data after the end of the batch");
}

static enum gw_code parse_structure(struct bparser *p)
{
    enum gw_code rc = GW_OK;
    long n_batches = 0, n_messages = 0, count;
    bool has_fhs, is_batch;

    next_line(p);
    has_fhs = line_is(p, "FHS");
    if (has_fhs)
        rc = parse_header(p, "FHS", &p->b->fhs);
    while (!rc && (line_is(p, "BHS") || line_is(p, "MSH"))) {
        rc = read_batch(p, &is_batch, &count);
        n_batches += is_batch;
        n_messages += count;
    }
    if (rc)
        return rc;
    if (has_fhs && !line_is(p, "FTS"))
        return structure_error(p, "FTS", 0, "an FHS file must end with FTS");
    if (has_fhs) {
        rc = check_trailer(p, p->b->fhs, n_batches ? n_batches : n_messages);
        if (rc)
            return rc;
    }
    if (!p->at_end || (!has_fhs && n_batches == 0 && n_messages == 0))
        return trailing_error(p, has_fhs || n_batches > 0 || n_messages > 0);
    return GW_OK;
}

enum gw_code hl7_batch_parse(const char *data, size_t len, struct hl7_batch **out,
                             struct hl7_err *where, struct gw_error *err)
{
    struct bparser p = {.where = where, .err = err};
    enum gw_code rc;

    *out = NULL;
    hl7_err_clear(where);
    if (len > HL7_MAX_BATCH) {
        hl7_err_set(where, HL7_ERR_INTERNAL, NULL, 0, 0, 0);
        return gw_fail(err, GW_E_LIMIT, "batch of %zu bytes exceeds the limit of %d", len,
                       HL7_MAX_BATCH);
    }
    p.b = calloc(1, sizeof *p.b);
    if (!p.b || !(p.b->copy = malloc(len + 1))) {
        rc = gw_fail(err, GW_E_NOMEM, "no memory for a batch of %zu bytes", len);
        goto fail;
    }
    memcpy(p.b->copy, data, len);
    p.b->copy[len] = '\0';
    p.b->len = len;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3; /* a UTF-8 byte order mark */
    rc = parse_structure(&p);
    if (rc)
        goto fail;
    *out = p.b;
    return GW_OK;
fail:
    hl7_batch_destroy(p.b);
    return rc;
}

void hl7_batch_destroy(struct hl7_batch *b)
{
    size_t i;

    if (!b)
        return;
    for (i = 0; i < b->n_items; i++)
        hl7_msg_destroy(b->items[i].msg);
    free(b->items);
    hl7_msg_destroy(b->fhs);
    hl7_msg_destroy(b->bhs);
    free(b->copy);
    free(b);
}

size_t hl7_batch_count(const struct hl7_batch *b)
{
    return b ? b->n_items : 0;
}

bool hl7_batch_has_headers(const struct hl7_batch *b)
{
    return b && b->has_headers;
}

const struct hl7_msg *hl7_batch_msg(const struct hl7_batch *b, size_t i)
{
    return b && i < b->n_items ? b->items[i].msg : NULL;
}

const char *hl7_batch_raw(const struct hl7_batch *b, size_t i, size_t *len)
{
    *len = 0;
    if (!b || i >= b->n_items)
        return NULL;
    *len = b->items[i].len;
    return b->copy + b->items[i].off;
}

const struct gw_error *hl7_batch_error(const struct hl7_batch *b, size_t i)
{
    return b && i < b->n_items ? &b->items[i].error : NULL;
}

const struct hl7_err *hl7_batch_where(const struct hl7_batch *b, size_t i)
{
    return b && i < b->n_items ? &b->items[i].where : NULL;
}

const struct hl7_seg *hl7_batch_header(const struct hl7_batch *b)
{
    if (!b)
        return NULL;
    return hl7_msg_segment(b->bhs ? b->bhs : b->fhs, 0);
}

/* ---------------------------------------------------------------- writing */

static void write_header(struct hl7_writer *w, const char *name, const struct hl7_batch_info *info,
                         const char *time)
{
    hl7_writer_segment(w, name);
    hl7_writer_field(w, 3, info->sending_app);
    hl7_writer_field(w, 4, info->sending_facility);
    hl7_writer_field(w, 5, info->receiving_app);
    hl7_writer_field(w, 6, info->receiving_facility);
    hl7_writer_field(w, 7, time);
    hl7_writer_field(w, 11, info->control_id);
    hl7_writer_field(w, 12, info->reference_id);
}

enum gw_code hl7_batch_encode(const struct hl7_batch_info *info, const struct hl7_bytes *msgs,
                              size_t n, char **out, size_t *out_len, struct gw_error *err)
{
    static const struct hl7_batch_info none = {0};
    struct hl7_writer w;
    char now[GW_HL7_TS_LEN];
    size_t i;
    enum gw_code rc;

    *out = NULL;
    *out_len = 0;
    if (!info)
        info = &none;
    if (n > HL7_MAX_BATCH_MESSAGES)
        return gw_fail(err, GW_E_LIMIT, "a batch may hold at most %d messages",
                       HL7_MAX_BATCH_MESSAGES);
    gw_time_hl7(gw_now_ms(), now);
    hl7_writer_init(&w, HL7_MAX_BATCH);
    write_header(&w, "FHS", info, info->time ? info->time : now);
    write_header(&w, "BHS", info, info->time ? info->time : now);
    for (i = 0; i < n; i++) {
        const struct hl7_bytes *m = &msgs[i];

        if (!m->data || m->len < 4 || memcmp(m->data, "MSH", 3) != 0) {
            hl7_writer_fail(&w, GW_E_INTERNAL, "batch message %zu does not start with MSH", i + 1);
            break;
        }
        hl7_writer_raw(&w, m->data, m->len);
        if (m->data[m->len - 1] != '\r')
            hl7_writer_raw(&w, "\r", 1);
    }
    hl7_writer_segment(&w, "BTS");
    hl7_writer_field_int(&w, 1, (long)n);
    hl7_writer_segment(&w, "FTS");
    hl7_writer_field_int(&w, 1, 1);
    rc = hl7_writer_finish(&w, out, out_len, err);
    hl7_writer_cleanup(&w);
    return rc;
}
