/* writer.c -- the ER7 encoder: segments built value by value into a capped
 * buffer, with a sticky error.
 *
 * Promises: what hl7_writer_finish() hands out is a message hl7_msg_parse()
 * reads back with the same values (line breaks become "\n"): separators are
 * emitted only to reach a position, values are escaped and checked as UTF-8,
 * positions only move forward, segment names are checked, and every segment
 * ends with CR. After the first failure nothing more is written.
 */
#include "hl7v2/hl7v2_int.h"

#include <stdio.h>
#include <string.h>

#define STANDARD_ENCODING "|^~\\&" /* HL7 v2.5.1 §2.5.4: MSH-1 and MSH-2 */

static bool writer_ok(const struct hl7_writer *w)
{
    return w->err == GW_OK && w->buf.err == GW_OK;
}

void hl7_writer_fail(struct hl7_writer *w, enum gw_code code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (w->err)
        return;
    w->err = code;
    w->first.code = code;
    va_start(ap, fmt);
    n = vsnprintf(w->first.msg, sizeof w->first.msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        w->first.msg[0] = '\0';
    else if ((size_t)n >= sizeof w->first.msg)
        memcpy(w->first.msg + sizeof w->first.msg - 4, "...", 4);
}

void hl7_writer_init(struct hl7_writer *w, size_t max_len)
{
    memset(w, 0, sizeof *w);
    gw_buf_init(&w->buf, max_len);
    gw_error_clear(&w->first);
}

void hl7_writer_cleanup(struct hl7_writer *w)
{
    gw_buf_cleanup(&w->buf);
}

static bool is_header_name(const char *name)
{
    return !strcmp(name, "MSH") || !strcmp(name, "FHS") || !strcmp(name, "BHS");
}

void hl7_writer_segment(struct hl7_writer *w, const char *name)
{
    if (!writer_ok(w))
        return;
    if (!name || !hl7_is_segment_name(name, strlen(name))) {
        hl7_writer_fail(w, GW_E_INTERNAL,
                        "a segment name must be three upper-case letters or digits");
        return;
    }
    if (w->n_segments >= HL7_MAX_SEGMENTS) {
        hl7_writer_fail(w, GW_E_LIMIT, "a message may not have more than %d segments",
                        HL7_MAX_SEGMENTS);
        return;
    }
    if (w->in_segment)
        gw_buf_putc(&w->buf, '\r');
    gw_buf_append(&w->buf, name, 3);
    w->field = 0;
    if (is_header_name(name)) {
        gw_buf_puts(&w->buf, STANDARD_ENCODING);
        w->field = 2;
    }
    w->rep = 0;
    w->comp = 1;
    w->sub = 1;
    w->in_segment = true;
    w->n_segments++;
}

static void repeat(struct gw_buf *b, char c, int n)
{
    while (n-- > 0)
        gw_buf_putc(b, c);
}

/* True when (f, r, c, s) comes after the last position written. */
static bool is_after(const struct hl7_writer *w, int f, int r, int c, int s)
{
    if (f != w->field)
        return f > w->field;
    if (r != w->rep)
        return r > w->rep;
    if (c != w->comp)
        return c > w->comp;
    return s > w->sub;
}

/* Emits the separators that lead from the last position to (f, r, c, s). */
static void move_to(struct hl7_writer *w, int f, int r, int c, int s)
{
    struct gw_buf *b = &w->buf;

    if (f > w->field) {
        repeat(b, '|', f - w->field);
        repeat(b, '~', r);
        repeat(b, '^', c - 1);
        repeat(b, '&', s - 1);
    } else if (r > w->rep) {
        repeat(b, '~', r - w->rep);
        repeat(b, '^', c - 1);
        repeat(b, '&', s - 1);
    } else if (c > w->comp) {
        repeat(b, '^', c - w->comp);
        repeat(b, '&', s - 1);
    } else {
        repeat(b, '&', s - w->sub);
    }
    w->field = f;
    w->rep = r;
    w->comp = c;
    w->sub = s;
}

void hl7_writer_put(struct hl7_writer *w, int field, int repetition, int component, int sub,
                    const char *text)
{
    size_t n;

    if (!writer_ok(w))
        return;
    if (!w->in_segment) {
        hl7_writer_fail(w, GW_E_INTERNAL, "a value was written before any segment");
        return;
    }
    if (field < 1 || field > HL7_MAX_FIELDS || repetition < 0 ||
        repetition >= HL7_MAX_REPETITIONS || component < 1 || component > HL7_MAX_COMPONENTS ||
        sub < 1 || sub > HL7_MAX_COMPONENTS) {
        hl7_writer_fail(w, GW_E_INTERNAL, "position %d.%d.%d.%d is out of range", field, repetition,
                        component, sub);
        return;
    }
    if (!text || !*text)
        return;
    if (!is_after(w, field, repetition, component, sub)) {
        hl7_writer_fail(w, GW_E_INTERNAL, "position %d.%d.%d.%d comes after %d.%d.%d.%d", field,
                        repetition, component, sub, w->field, w->rep, w->comp, w->sub);
        return;
    }
    n = strlen(text);
    if (!gw_utf8_valid(text, n)) {
        hl7_writer_fail(w, GW_E_INPUT, "the value for field %d is not valid UTF-8", field);
        return;
    }
    move_to(w, field, repetition, component, sub);
    hl7_escape(&w->buf, text, n);
}

void hl7_writer_field(struct hl7_writer *w, int field, const char *text)
{
    hl7_writer_put(w, field, 0, 1, 1, text);
}

void hl7_writer_comp(struct hl7_writer *w, int field, int component, const char *text)
{
    hl7_writer_put(w, field, 0, component, 1, text);
}

void hl7_writer_field_int(struct hl7_writer *w, int field, long value)
{
    char text[24];

    snprintf(text, sizeof text, "%ld", value);
    hl7_writer_put(w, field, 0, 1, 1, text);
}

void hl7_writer_copy_field(struct hl7_writer *w, int field, const struct hl7_seg *src,
                           int src_field)
{
    int r, c, s, n_reps = hl7_seg_count_reps(src, src_field);

    for (r = 0; r < n_reps; r++) {
        int n_comps = hl7_seg_count_components(src, src_field, r);

        for (c = 1; c <= n_comps; c++) {
            int n_subs = hl7_seg_count_subs(src, src_field, r, c);

            for (s = 1; s <= n_subs; s++)
                hl7_writer_put(w, field, r, c, s, hl7_seg_get(src, src_field, r, c, s));
        }
    }
}

void hl7_writer_msh(struct hl7_writer *w, const struct hl7_header *h)
{
    char now[GW_HL7_TS_LEN];

    if (!writer_ok(w))
        return;
    if (!h || !h->type || !*h->type || !h->control_id || !*h->control_id) {
        hl7_writer_fail(w, GW_E_INTERNAL, "an MSH needs a message type and a control id");
        return;
    }
    if (!h->time)
        gw_time_hl7(gw_now_ms(), now);
    hl7_writer_segment(w, "MSH");
    hl7_writer_field(w, 3, h->sending_app);
    hl7_writer_field(w, 4, h->sending_facility);
    hl7_writer_field(w, 5, h->receiving_app);
    hl7_writer_field(w, 6, h->receiving_facility);
    hl7_writer_field(w, 7, h->time ? h->time : now);
    hl7_writer_comp(w, 9, 1, h->type);
    hl7_writer_comp(w, 9, 2, h->trigger);
    hl7_writer_comp(w, 9, 3, h->structure);
    hl7_writer_field(w, 10, h->control_id);
    hl7_writer_field(w, 11, h->processing_id ? h->processing_id : "P");
    hl7_writer_field(w, 12, h->version ? h->version : "2.5.1");
    hl7_writer_field(w, 15, h->accept_ack);
    hl7_writer_field(w, 16, h->app_ack);
    hl7_writer_field(w, 18, h->charset ? h->charset : "UNICODE UTF-8");
}

void hl7_writer_raw(struct hl7_writer *w, const char *data, size_t len)
{
    if (!writer_ok(w))
        return;
    if (w->in_segment)
        gw_buf_putc(&w->buf, '\r');
    w->in_segment = false;
    gw_buf_append(&w->buf, data, len);
}

enum gw_code hl7_writer_finish(struct hl7_writer *w, char **out, size_t *out_len,
                               struct gw_error *err)
{
    enum gw_code rc;

    *out = NULL;
    *out_len = 0;
    if (writer_ok(w) && w->n_segments == 0 && w->buf.len == 0)
        hl7_writer_fail(w, GW_E_INTERNAL, "an HL7 message needs at least one segment");
    if (writer_ok(w) && w->in_segment) {
        gw_buf_putc(&w->buf, '\r');
        w->in_segment = false;
    }
    if (w->err) {
        if (err)
            *err = w->first;
        return w->err;
    }
    rc = gw_buf_finish(&w->buf, "HL7 message", err);
    if (rc)
        return rc;
    *out = gw_buf_steal(&w->buf, out_len);
    if (!*out)
        return gw_fail(err, GW_E_NOMEM, "no memory for an HL7 message");
    return GW_OK;
}
