/* ack.c -- acknowledgments (HL7 v2.5.1 §2.9, §2.15.8 ERR, §2.15.8 MSA):
 * building the ACK that answers an inbound message, and reading one.
 *
 * Promises: hl7_ack_build() answers any input, even bytes that are not a
 * message: it recovers what it can of MSH-3..6, MSH-9.2 and MSH-10..12 so the
 * sender can match the ACK, and writes only values the writer has escaped and
 * checked (the reason text is repaired to UTF-8 first). hl7_ack_read() reads
 * what the other side said without trusting any field to be there.
 */
#include "hl7v2/hl7v2_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECOVER_VALUE_MAX 199   /* bytes of one recovered value (ST 199 in v2.7) */
#define RECOVER_LINE_MAX  65536 /* bytes of MSH looked at when recovering */
#define ACK_TEXT_MAX      2048  /* bytes of ERR-8 (TX 2048 in v2.5) */
#define ACK_ID_MAX        999   /* bytes of an echoed MSH-10 (ST 199 in v2.7, with room) */

/* What the ACK echoes from the inbound message. */
struct peer {
    const char *hd[4][3]; /* MSH-3..6, the three components of an HD */
    const char *trigger, *control_id, *processing_id, *version;
    char *scratch; /* recovered values point into this copy */
};

static bool is_ack_code(const char *code)
{
    static const char *const codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
    size_t i;

    for (i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

/* A recovered value is kept only when it is short printable ASCII without
 * the escape character (it is re-escaped, not unescaped). */
static const char *keep(const char *s, char esc)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > RECOVER_VALUE_MAX)
        return NULL;
    for (i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7E || s[i] == esc)
            return NULL;
    return s;
}

/* Finds "MSH" followed by a punctuation character, at best effort. */
static const char *find_msh(const char *raw, size_t len, size_t *line_len)
{
    size_t i, e;

    for (i = 0; i + 8 <= len; i++) {
        char fs = raw[i + 3];

        if (memcmp(raw + i, "MSH", 3) != 0 || fs <= 0x20 || fs >= 0x7F ||
            (fs >= '0' && fs <= '9') || (fs >= 'A' && fs <= 'Z') || (fs >= 'a' && fs <= 'z'))
            continue;
        for (e = i; e < len && e - i < RECOVER_LINE_MAX && raw[e] != '\r' && raw[e] != '\n'; e++)
            ;
        *line_len = e - i;
        return raw + i;
    }
    return NULL;
}

/* Splits s at c in place into at most n parts (the rest stays in the last). */
static size_t split(char *s, char c, char **parts, size_t n)
{
    size_t k = 0;

    parts[k++] = s;
    while (k < n && (s = strchr(s, c)) != NULL) {
        *s++ = '\0';
        parts[k++] = s;
    }
    return k;
}

/* MSH-f from the split line (fields[k] is MSH-(k+1)), or NULL. */
static char *msh_field(char **fields, size_t n, size_t f)
{
    return f >= 2 && f - 1 < n ? fields[f - 1] : NULL;
}

/* The first component of v, kept or NULL. */
static const char *first_comp(char *v, char comp, char esc)
{
    char *cut;

    if (!v)
        return NULL;
    cut = strchr(v, comp);
    if (cut)
        *cut = '\0';
    return keep(v, esc);
}

/* Recovers MSH values from bytes that did not parse as a message. */
static enum gw_code recover(struct peer *peer, const char *raw, size_t raw_len,
                            struct gw_error *err)
{
    char *fields[14] = {0}, *comps[3], *v;
    size_t line_len = 0, n, f, c, k;
    const char *msh = raw ? find_msh(raw, raw_len, &line_len) : NULL;
    char fs, comp, esc;

    if (!msh)
        return GW_OK;
    peer->scratch = gw_strndup(msh, line_len);
    if (!peer->scratch)
        return gw_fail(err, GW_E_NOMEM, "no memory to read a failed message's MSH");
    fs = msh[3];
    comp = msh[4] != fs ? msh[4] : '^';
    esc = msh[6] != fs ? msh[6] : '\\';
    /* MSH-1 is the separator itself (HL7 v2.5.1 §2.14.9.1): MSH-2 starts at 4. */
    n = split(peer->scratch + 4, fs, fields + 1, 13) + 1;
    for (f = 3; f <= 6 && (v = msh_field(fields, n, f)) != NULL; f++) {
        k = split(v, comp, comps, 3);
        for (c = 0; c < k; c++)
            peer->hd[f - 3][c] = keep(comps[c], esc);
    }
    v = msh_field(fields, n, 9);
    if (v && split(v, comp, comps, 3) >= 2)
        peer->trigger = first_comp(comps[1], comp, esc);
    peer->control_id = first_comp(msh_field(fields, n, 10), comp, esc);
    peer->processing_id = first_comp(msh_field(fields, n, 11), comp, esc);
    peer->version = first_comp(msh_field(fields, n, 12), comp, esc);
    return GW_OK;
}

/* s when it is at most max bytes, else NULL: echoed values are bounded so
 * that an ACK always fits, whatever the inbound message held. */
static const char *bounded(const char *s, size_t max)
{
    return s && strlen(s) <= max ? s : NULL;
}

static void peer_from_msg(struct peer *peer, const struct hl7_msg *msg)
{
    const struct hl7_seg *msh = hl7_msg_segment(msg, 0);
    int f, c;

    for (f = 3; f <= 6; f++)
        for (c = 0; c < 3; c++)
            peer->hd[f - 3][c] = bounded(hl7_seg_get(msh, f, 0, c + 1, 1), RECOVER_VALUE_MAX);
    peer->trigger = bounded(hl7_msg_trigger(msg), RECOVER_VALUE_MAX);
    peer->control_id = bounded(hl7_msg_control_id(msg), ACK_ID_MAX);
    peer->processing_id = bounded(hl7_msg_processing_id(msg), RECOVER_VALUE_MAX);
    peer->version = bounded(hl7_msg_version(msg), RECOVER_VALUE_MAX);
}

/* True for versions before 2.5 ("2.1" to "2.4", "2.3.1"): they carry the
 * error in ERR-1 and MSA-3 rather than ERR-2..8. */
static bool is_before_2_5(const char *v)
{
    return v && v[0] == '2' && v[1] == '.' && v[2] >= '1' && v[2] <= '4' &&
           !(v[3] >= '0' && v[3] <= '9');
}

/* Copies text as valid UTF-8 ('?' for bytes that are not), cut with "..." at
 * ACK_TEXT_MAX; callers' reasons may come cut in the middle of a character. */
static void repair_text(struct gw_buf *b, const char *text)
{
    size_t i = 0, n = text ? strlen(text) : 0, k;

    while (i < n && b->len < ACK_TEXT_MAX) {
        unsigned char c = (unsigned char)text[i];

        k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (k <= n - i && gw_utf8_valid(text + i, k)) {
            gw_buf_append(b, text + i, k);
            i += k;
        } else {
            gw_buf_putc(b, '?');
            i++;
        }
    }
    if (i < n)
        gw_buf_puts(b, "...");
}

static void write_msh(struct hl7_writer *w, const struct peer *peer,
                      const struct hl7_ack_spec *spec)
{
    char now[GW_HL7_TS_LEN];
    int f, c;

    if (!spec->time)
        gw_time_hl7(gw_now_ms(), now);
    hl7_writer_segment(w, "MSH");
    /* The ACK goes back: its sender is the inbound receiver (MSH-5/6 -> 3/4). */
    for (f = 3; f <= 6; f++) {
        int from = f <= 4 ? f + 2 : f - 2;

        for (c = 0; c < 3; c++)
            hl7_writer_put(w, f, 0, c + 1, 1, peer->hd[from - 3][c]);
    }
    hl7_writer_field(w, 7, spec->time ? spec->time : now);
    hl7_writer_comp(w, 9, 1, "ACK");
    hl7_writer_comp(w, 9, 2, peer->trigger);
    hl7_writer_comp(w, 9, 3, "ACK");
    hl7_writer_field(w, 10, spec->control_id);
    hl7_writer_field(w, 11, peer->processing_id ? peer->processing_id : "P");
    hl7_writer_field(w, 12, peer->version ? peer->version : "2.5.1");
    hl7_writer_field(w, 18, "UNICODE UTF-8");
}

static void put_int(struct hl7_writer *w, int field, int comp, int sub, int value)
{
    char text[16];

    if (value <= 0)
        return;
    snprintf(text, sizeof text, "%d", value);
    hl7_writer_put(w, field, 0, comp, sub, text);
}

/* ERR (v2.5): ERR-2 location, ERR-3 code^text^HL70357, ERR-4 severity,
 * ERR-8 user message; before v2.5 also ERR-1 seg^seq^field^code&text&table. */
static void write_err(struct hl7_writer *w, const struct hl7_err *where, bool accepting, bool old,
                      const char *text)
{
    enum hl7_err_code code = where && where->code ? where->code : HL7_ERR_INTERNAL;
    bool placed = where && where->segment[0];

    hl7_writer_segment(w, "ERR");
    if (old) {
        if (placed) {
            hl7_writer_put(w, 1, 0, 1, 1, where->segment);
            put_int(w, 1, 2, 1, where->sequence ? where->sequence : 1);
            put_int(w, 1, 3, 1, where->field);
        }
        put_int(w, 1, 4, 1, (int)code);
        hl7_writer_put(w, 1, 0, 4, 2, hl7_err_text(code));
        hl7_writer_put(w, 1, 0, 4, 3, "HL70357");
    }
    if (placed) {
        hl7_writer_comp(w, 2, 1, where->segment);
        put_int(w, 2, 2, 1, where->sequence ? where->sequence : 1);
        put_int(w, 2, 3, 1, where->field);
        put_int(w, 2, 4, 1, where->field ? (where->repetition ? where->repetition : 1) : 0);
        put_int(w, 2, 5, 1, where->component);
    }
    put_int(w, 3, 1, 1, (int)code);
    hl7_writer_comp(w, 3, 2, hl7_err_text(code));
    hl7_writer_comp(w, 3, 3, "HL70357");
    hl7_writer_field(w, 4, accepting ? "W" : "E");
    hl7_writer_field(w, 8, text);
}

static enum gw_code check_spec(const struct hl7_ack_spec *spec, struct gw_error *err)
{
    if (!spec || !is_ack_code(spec->code))
        return gw_fail(err, GW_E_INTERNAL, "an ACK code must be AA, AE, AR, CA, CE or CR");
    if (!spec->control_id || !*spec->control_id)
        return gw_fail(err, GW_E_INTERNAL, "an ACK needs its own control id");
    return GW_OK;
}

enum gw_code hl7_ack_build(const struct hl7_ack_spec *spec, char **out, size_t *out_len,
                           struct gw_error *err)
{
    struct peer peer = {0};
    struct hl7_writer w;
    struct gw_buf text;
    bool accepting, old;
    enum gw_code rc;

    *out = NULL;
    *out_len = 0;
    rc = check_spec(spec, err);
    if (rc)
        return rc;
    if (spec->msg)
        peer_from_msg(&peer, spec->msg);
    else if ((rc = recover(&peer, spec->raw, spec->raw_len, err)) != GW_OK)
        return rc;
    accepting = spec->code[1] == 'A';
    old = is_before_2_5(peer.version);
    gw_buf_init(&text, ACK_TEXT_MAX + 8);
    repair_text(&text, spec->text);
    hl7_writer_init(&w, HL7_MAX_MESSAGE);
    write_msh(&w, &peer, spec);
    hl7_writer_segment(&w, "MSA");
    hl7_writer_field(&w, 1, spec->code);
    hl7_writer_field(&w, 2, peer.control_id);
    if (old && !accepting)
        hl7_writer_field(&w, 3, text.data);
    if (!accepting || (spec->where && spec->where->code != HL7_ERR_NONE))
        write_err(&w, spec->where, accepting, old, text.data);
    if (text.err)
        hl7_writer_fail(&w, text.err, "no memory for the ACK text");
    rc = hl7_writer_finish(&w, out, out_len, err);
    hl7_writer_cleanup(&w);
    gw_buf_cleanup(&text);
    free(peer.scratch);
    return rc;
}

/* ---------------------------------------------------------------- reading */

enum gw_code hl7_ack_read(const struct hl7_msg *msg, struct hl7_ack *out, struct gw_error *err)
{
    const struct hl7_seg *msa = hl7_msg_find(msg, "MSA", 0);
    const struct hl7_seg *e = hl7_msg_find(msg, "ERR", 0);
    const char *text, *num;
    long code = 0;

    memset(out, 0, sizeof *out);
    if (!msa)
        return gw_fail(err, GW_E_INPUT, "no MSA segment: the message is not an acknowledgment");
    if (!is_ack_code(hl7_seg_field(msa, 1)))
        return gw_fail(err, GW_E_INPUT, "MSA-1 is not an acknowledgment code (AA, AE, AR...)");
    if (!hl7_seg_field(msa, 2))
        return gw_fail(err, GW_E_INPUT, "MSA-2 (the acknowledged control id) is empty");
    text = hl7_seg_field(e, 8);
    if (!text)
        text = hl7_seg_get(e, 3, 0, 2, 1);
    if (!text)
        text = hl7_seg_get(e, 1, 0, 4, 2);
    if (!text)
        text = hl7_seg_field(msa, 3);
    num = hl7_seg_get(e, 3, 0, 1, 1);
    if (!num)
        num = hl7_seg_get(e, 1, 0, 4, 1);
    if (num && !gw_parse_long(num, 0, 99999, &code))
        code = 0;
    out->code = hl7_seg_field(msa, 1);
    out->control_id = hl7_seg_field(msa, 2);
    out->text = text;
    out->error_code = (int)code;
    return GW_OK;
}
