/* parse.c -- the ER7 parser: delimiters from MSH-1 and MSH-2, the MSH-18
 * character set, then segments, fields and values unescaped in place.
 *
 * Promises: whatever the bytes, hl7_parse_any() returns a whole message or a
 * clean error with an HL7 table 0357 code and the place it applies to. It
 * allocates a bounded multiple of its input (text and kinds, one byte each per
 * input byte, two text bytes per byte of 8859/1; four bytes per field), and
 * stops at the HL7_MAX_* bounds with GW_E_LIMIT.
 *
 * Invariant kept here, relied on by msg.c: after parsing, every leaf value is
 * NUL-terminated at or before the delimiter that ended it, and every
 * delimiter byte is a NUL whose kind says which delimiter it was.
 */
#include "hl7v2/hl7v2_int.h"

#include <stdlib.h>
#include <string.h>

/* A distinct segment name and how many times it was seen (for ERR-2.2). */
struct name_count {
    char name[4];
    uint32_t count;
};

/* One parse in progress. */
struct parser {
    struct hl7_msg *msg;
    struct hl7_err *where;
    struct gw_error *err;
    const char *first_name; /* "MSH", "FHS" or "BHS" */
    bool is_message;        /* first_name is MSH */
    struct name_count *names;
    size_t n_names, cap_names;
};

/* Records what and where for ERR (rep is 1-based, 0 unknown). */
static void place(struct parser *p, enum hl7_err_code code, const char *seg, int seq, int field,
                  int rep, int comp)
{
    hl7_err_set(p->where, code, seg, seq, field, comp);
    if (p->where)
        p->where->repetition = rep;
}

/* Copies up to 32 bytes of s into out as printable ASCII for an error
 * message ('?' for anything else, "..." when cut). Messages never carry raw
 * input bytes, so they are always valid UTF-8. */
static void printable(char out[40], const char *s, size_t n)
{
    size_t i, k = 0;

    for (i = 0; i < n && k < 32; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (i < n) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

/* Skips a UTF-8 byte order mark and leading blank lines or spaces. */
static size_t skip_preamble(const char *data, size_t len)
{
    size_t i = 0;

    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (data[i] == '\r' || data[i] == '\n' || data[i] == ' ' || data[i] == '\t'))
        i++;
    return i;
}

/* A delimiter must be printable ASCII, not a letter, digit or space. */
static bool delimiter_ok(char c)
{
    return c > 0x20 && c < 0x7F && !(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'Z') &&
           !(c >= 'a' && c <= 'z');
}

static size_t line_length(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] != '\r' && s[i] != '\n')
        i++;
    return i;
}

/* HL7 v2.5.1 §2.5.4: MSH-1 is the field separator, MSH-2 the component,
 * repetition, escape and sub-component characters, and from v2.7 a fifth,
 * the truncation character. All must differ. */
static enum gw_code read_delims(struct parser *p, const char *s, size_t n)
{
    struct hl7_delims *d = &p->msg->d;
    const char *name = p->first_name;
    size_t line = line_length(s, n), i, j, n_enc;
    char all[6];

    if (line < 4 || memcmp(s, name, 3) != 0) {
        place(p, HL7_ERR_SEGMENT_SEQUENCE, name, 1, 0, 0, 0);
        if (line >= 3 && memcmp(s, name, 3) == 0)
            return gw_fail(p->err, GW_E_INPUT, "%s has no field separator", name);
        return gw_fail(p->err, GW_E_INPUT, "the message does not start with an %s segment", name);
    }
    for (i = 4; i < line && s[i] != s[3]; i++)
        ;
    n_enc = i - 4;
    if (!delimiter_ok(s[3])) {
        place(p, HL7_ERR_DATA_TYPE, name, 1, 1, 1, 0);
        return gw_fail(p->err, GW_E_INPUT,
                       "%s-1 field separator must be printable and not a letter or digit", name);
    }
    if (n_enc < 4 || n_enc > 5) {
        place(p, HL7_ERR_DATA_TYPE, name, 1, 2, 1, 0);
        return gw_fail(p->err, GW_E_INPUT,
                       "%s-2 must hold 4 encoding characters (5 with truncation), not %zu", name,
                       n_enc);
    }
    memcpy(all, s + 3, n_enc + 1);
    for (i = 0; i <= n_enc; i++)
        for (j = i + 1; j <= n_enc; j++)
            if (!delimiter_ok(all[i]) || all[i] == all[j] || !delimiter_ok(all[j])) {
                place(p, HL7_ERR_DATA_TYPE, name, 1, 2, 1, 0);
                return gw_fail(p->err, GW_E_INPUT,
                               "%s-2 encoding characters must be distinct punctuation", name);
            }
    *d = (struct hl7_delims){all[0], all[1], all[2], all[3], all[4], n_enc == 5 ? all[5] : '\0'};
    p->msg->sep_str[0] = d->field;
    memcpy(p->msg->enc_str, all + 1, n_enc);
    return GW_OK;
}

static bool same_name_ci(const char *s, size_t n, const char *name)
{
    size_t i;

    if (n != strlen(name))
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c != name[i])
            return false;
    }
    return true;
}

/* Finds MSH-18 in the raw first line (delimiters are ASCII in every
 * supported character set) and decides how the bytes are read (table 0211). */
static enum gw_code choose_charset(struct parser *p, const char *s, size_t n)
{
    const struct hl7_delims *d = &p->msg->d;
    size_t line = line_length(s, n), i, start = 0, end, count = 0;
    char shown[40];

    p->msg->charset = HL7_CS_UTF8;
    if (!p->is_message) { /* batch headers have no MSH-18 */
        if (!gw_utf8_valid(s, n))
            p->msg->charset = HL7_CS_LATIN1;
        return GW_OK;
    }
    for (i = 3; i < line && count < 17; i++)
        if (s[i] == d->field && ++count == 17)
            start = i + 1;
    if (count < 17)
        return GW_OK;
    for (end = start; end < line && s[end] != d->field && s[end] != d->rep && s[end] != d->comp;)
        end++;
    while (start < end && s[start] == ' ')
        start++;
    while (end > start && s[end - 1] == ' ')
        end--;
    if (start == end || same_name_ci(s + start, end - start, "UNICODE UTF-8") ||
        same_name_ci(s + start, end - start, "UTF-8"))
        return GW_OK;
    if (same_name_ci(s + start, end - start, "8859/1") ||
        same_name_ci(s + start, end - start, "ISO-8859-1")) {
        p->msg->charset = HL7_CS_LATIN1;
        return GW_OK;
    }
    if (same_name_ci(s + start, end - start, "ASCII")) {
        p->msg->charset = HL7_CS_ASCII;
        return GW_OK;
    }
    printable(shown, s + start, end - start);
    place(p, HL7_ERR_TABLE_VALUE, "MSH", 1, 18, 1, 1);
    return gw_fail(p->err, GW_E_INPUT,
                   "MSH-18 character set \"%s\" is not supported (UNICODE UTF-8, 8859/1 or ASCII)",
                   shown);
}

/* Copies the message into msg->text, converting 8859/1 to UTF-8. */
static enum gw_code load_text(struct parser *p, const char *data, size_t len)
{
    struct hl7_msg *m = p->msg;
    size_t n = len, i, j = 0;

    if (m->charset == HL7_CS_LATIN1)
        for (i = 0; i < len; i++)
            if ((unsigned char)data[i] >= 0x80)
                n++;
    m->text = malloc(n + 1);
    m->kind = calloc(n + 1, 1);
    if (!m->text || !m->kind)
        return gw_fail(p->err, GW_E_NOMEM, "no memory for a message of %zu bytes", len);
    if (m->charset != HL7_CS_LATIN1) {
        memcpy(m->text, data, len);
    } else {
        for (i = 0; i < len; i++) {
            unsigned char c = (unsigned char)data[i];

            if (c < 0x80) {
                m->text[j++] = (char)c;
            } else {
                m->text[j++] = (char)(0xC0 | (c >> 6));
                m->text[j++] = (char)(0x80 | (c & 0x3F));
            }
        }
    }
    m->text[n] = '\0';
    m->kind[n] = HL7_KIND_END;
    m->len = n;
    return GW_OK;
}

/* Counts one more occurrence of name; returns its 1-based sequence or 0 on OOM. */
static uint32_t count_name(struct parser *p, const char *name)
{
    size_t i;

    for (i = 0; i < p->n_names; i++)
        if (memcmp(p->names[i].name, name, 4) == 0)
            return ++p->names[i].count;
    if (p->n_names == p->cap_names) {
        size_t cap = p->cap_names ? p->cap_names * 2 : 16;
        struct name_count *grown = realloc(p->names, cap * sizeof *grown);

        if (!grown)
            return 0;
        p->names = grown;
        p->cap_names = cap;
    }
    memcpy(p->names[p->n_names].name, name, 4);
    p->names[p->n_names].count = 1;
    return p->names[p->n_names++].count;
}

static bool push_bound(struct hl7_msg *m, size_t offset)
{
    if (m->n_bounds == m->cap_bounds) {
        size_t cap = m->cap_bounds ? m->cap_bounds * 2 : 64;
        uint32_t *grown = realloc(m->bounds, cap * sizeof *grown);

        if (!grown)
            return false;
        m->bounds = grown;
        m->cap_bounds = cap;
    }
    m->bounds[m->n_bounds++] = (uint32_t)offset;
    return true;
}

/* Checks the bytes of one field before anything is split: no NUL, and UTF-8
 * (or ASCII) as declared; 8859/1 was converted, so it is UTF-8 already. */
static enum gw_code check_bytes(struct parser *p, const struct hl7_seg *seg, int field, size_t s,
                                size_t e)
{
    const struct hl7_msg *m = p->msg;
    size_t i;

    if (memchr(m->text + s, '\0', e - s)) {
        place(p, HL7_ERR_DATA_TYPE, seg->name, (int)seg->sequence, field, 1, 0);
        return gw_fail(p->err, GW_E_INPUT, "%s-%d holds a NUL byte", seg->name, field);
    }
    if (m->charset == HL7_CS_ASCII) {
        for (i = s; i < e; i++)
            if ((unsigned char)m->text[i] >= 0x80) {
                place(p, HL7_ERR_DATA_TYPE, seg->name, (int)seg->sequence, field, 1, 0);
                return gw_fail(p->err, GW_E_INPUT,
                               "%s-%d holds a non-ASCII byte but MSH-18 declares ASCII", seg->name,
                               field);
            }
    } else if (!gw_utf8_valid(m->text + s, e - s)) {
        place(p, HL7_ERR_DATA_TYPE, seg->name, (int)seg->sequence, field, 1, 0);
        return gw_fail(p->err, GW_E_INPUT,
                       "%s-%d is not valid UTF-8 (declare 8859/1 in MSH-18 for Latin-1 text)",
                       seg->name, field);
    }
    return GW_OK;
}

static unsigned char kind_of(char c, const struct hl7_delims *d)
{
    if (c == d->rep)
        return HL7_KIND_REP;
    if (c == d->comp)
        return HL7_KIND_COMP;
    if (c == d->sub)
        return HL7_KIND_SUB;
    return HL7_KIND_DATA;
}

/* Marks the repetition, component and sub-component separators of the
 * field text[s, e) and unescapes each leaf in place. */
static enum gw_code parse_field(struct parser *p, const struct hl7_seg *seg, int field, size_t s,
                                size_t e)
{
    struct hl7_msg *m = p->msg;
    int rep = 0, comp = 1, sub = 1;
    size_t i, leaf = s, leaf_len;
    const char *why = NULL;
    enum gw_code rc = check_bytes(p, seg, field, s, e);

    for (i = s; !rc && i <= e; i++) {
        unsigned char k = i == e ? HL7_KIND_END : kind_of(m->text[i], &m->d);

        if (k == HL7_KIND_DATA)
            continue;
        if (i < e) {
            m->text[i] = '\0';
            m->kind[i] = k;
        }
        if (!hl7_unescape(m->text, leaf, i, &m->d, m->charset, &leaf_len, &why)) {
            place(p, HL7_ERR_DATA_TYPE, seg->name, (int)seg->sequence, field, rep + 1, comp);
            return gw_fail(p->err, GW_E_INPUT, "%s-%d: %s", seg->name, field, why);
        }
        leaf = i + 1;
        if ((k == HL7_KIND_REP && ++rep >= HL7_MAX_REPETITIONS) ||
            (k == HL7_KIND_COMP && ++comp > HL7_MAX_COMPONENTS) ||
            (k == HL7_KIND_SUB && ++sub > HL7_MAX_COMPONENTS)) {
            place(p, HL7_ERR_INTERNAL, seg->name, (int)seg->sequence, field, rep + 1, comp);
            return gw_fail(p->err, GW_E_LIMIT, "%s-%d has too many parts (limits %d, %d)",
                           seg->name, field, HL7_MAX_REPETITIONS, HL7_MAX_COMPONENTS);
        }
        if (k == HL7_KIND_REP)
            comp = 1;
        if (k != HL7_KIND_SUB)
            sub = 1;
    }
    return rc;
}

/* Splits segment text[s, e) into fields (recording their starts in bounds)
 * and parses each; the encoding characters of a header stay as they are. */
static enum gw_code split_fields(struct parser *p, struct hl7_seg *seg, size_t s, size_t e)
{
    struct hl7_msg *m = p->msg;
    int offset = seg->is_header ? 2 : 1; /* field number of split 0 */
    size_t i, j;
    enum gw_code rc = GW_OK;

    seg->first = (uint32_t)m->n_bounds;
    if (e - s > 3) {
        m->text[s + 3] = '\0';
        m->kind[s + 3] = HL7_KIND_END;
        if (!push_bound(m, s + 4))
            return gw_fail(p->err, GW_E_NOMEM, "no memory for fields");
        for (i = s + 4; i < e; i++) {
            if (m->text[i] != m->d.field)
                continue;
            if ((int)(m->n_bounds - seg->first) + offset > HL7_MAX_FIELDS) {
                place(p, HL7_ERR_INTERNAL, seg->name, (int)seg->sequence, 0, 0, 0);
                return gw_fail(p->err, GW_E_LIMIT, "%s has more than %d fields", seg->name,
                               HL7_MAX_FIELDS);
            }
            m->text[i] = '\0';
            m->kind[i] = HL7_KIND_END;
            if (!push_bound(m, i + 1))
                return gw_fail(p->err, GW_E_NOMEM, "no memory for fields");
        }
    }
    seg->n_split = (uint32_t)(m->n_bounds - seg->first);
    if (!push_bound(m, e + 1))
        return gw_fail(p->err, GW_E_NOMEM, "no memory for fields");
    for (j = seg->is_header ? 1 : 0; !rc && j < seg->n_split; j++)
        rc = parse_field(p, seg, (int)j + offset, m->bounds[seg->first + j],
                         m->bounds[seg->first + j + 1] - 1);
    return rc;
}

/* Segments that may not appear inside one message. */
static bool is_envelope(const char *name)
{
    return !strcmp(name, "MSH") || !strcmp(name, "FHS") || !strcmp(name, "BHS") ||
           !strcmp(name, "BTS") || !strcmp(name, "FTS");
}

static enum gw_code add_segment(struct parser *p, size_t s, size_t e)
{
    struct hl7_msg *m = p->msg;
    struct hl7_seg *seg;
    char name[4] = {0};

    if (e - s < 3 || !hl7_is_segment_name(m->text + s, 3) ||
        (e - s > 3 && m->text[s + 3] != m->d.field)) {
        place(p, HL7_ERR_SEGMENT_SEQUENCE, NULL, 0, 0, 0, 0);
        return gw_fail(p->err, GW_E_INPUT,
                       "segment %zu does not start with a name of three upper-case letters or "
                       "digits and a field separator",
                       m->n_segs + 1);
    }
    memcpy(name, m->text + s, 3);
    if (m->n_segs > 0 && (!p->is_message || is_envelope(name))) {
        place(p, HL7_ERR_SEGMENT_SEQUENCE, name, 1, 0, 0, 0);
        if (!p->is_message)
            return gw_fail(p->err, GW_E_INPUT, "a %s line holds one segment", p->first_name);
        return gw_fail(p->err, GW_E_INPUT,
                       "%s inside a message (one message expected; a batch needs the batch parser)",
                       name);
    }
    if (m->n_segs >= HL7_MAX_SEGMENTS) {
        place(p, HL7_ERR_INTERNAL, NULL, 0, 0, 0, 0);
        return gw_fail(p->err, GW_E_LIMIT, "the message has more than %d segments",
                       HL7_MAX_SEGMENTS);
    }
    seg = gw_grow(m->segs, &m->cap_segs, m->n_segs, sizeof *seg, 16);
    if (!seg)
        return gw_fail(p->err, GW_E_NOMEM, "no memory for segments");
    m->segs = seg;
    seg = &m->segs[m->n_segs];
    *seg = (struct hl7_seg){.msg = m, .index = (uint32_t)m->n_segs, .is_header = m->n_segs == 0};
    memcpy(seg->name, name, 4);
    seg->sequence = count_name(p, name);
    if (!seg->sequence)
        return gw_fail(p->err, GW_E_NOMEM, "no memory for segment names");
    m->n_segs++;
    return split_fields(p, seg, s, e);
}

static bool is_blank(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Segments end in CR (HL7 v2.5.1 §2.6.1); LF and CRLF are accepted too. */
static enum gw_code split_segments(struct parser *p)
{
    struct hl7_msg *m = p->msg;
    size_t i = 0, s;
    enum gw_code rc;

    while (i < m->len) {
        s = i;
        while (i < m->len && m->text[i] != '\r' && m->text[i] != '\n')
            i++;
        if (i < m->len) {
            m->text[i] = '\0';
            m->kind[i] = HL7_KIND_END;
        }
        if (!is_blank(m->text + s, i - s)) {
            rc = add_segment(p, s, i);
            if (rc)
                return rc;
        }
        i++;
    }
    return GW_OK;
}

/* MSH-9 type, MSH-10 control id and MSH-12 version are required (R). */
static enum gw_code check_required(struct parser *p)
{
    static const struct {
        int field;
        const char *what;
    } required[] = {
        {9, "MSH-9 message type"}, {10, "MSH-10 message control id"}, {12, "MSH-12 version id"}};
    size_t i;

    for (i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!hl7_seg_get(&p->msg->segs[0], required[i].field, 0, 1, 1)) {
            place(p, HL7_ERR_REQUIRED_FIELD, "MSH", 1, required[i].field, 1, 0);
            return gw_fail(p->err, GW_E_INPUT, "%s is required", required[i].what);
        }
    return GW_OK;
}

enum gw_code hl7_parse_any(const char *data, size_t len, const char *first_name,
                           struct hl7_msg **out, struct hl7_err *where, struct gw_error *err)
{
    struct parser p = {.where = where, .err = err, .first_name = first_name};
    size_t skip;
    enum gw_code rc;

    *out = NULL;
    hl7_err_clear(where);
    p.is_message = strcmp(first_name, "MSH") == 0;
    if (len > HL7_MAX_MESSAGE) {
        place(&p, HL7_ERR_INTERNAL, NULL, 0, 0, 0, 0);
        return gw_fail(err, GW_E_LIMIT, "message of %zu bytes exceeds the limit of %d", len,
                       HL7_MAX_MESSAGE);
    }
    skip = skip_preamble(data, len);
    data += skip;
    len -= skip;
    if (len == 0) {
        place(&p, HL7_ERR_SEGMENT_SEQUENCE, first_name, 1, 0, 0, 0);
        return gw_fail(err, GW_E_INPUT, "the message is empty");
    }
    p.msg = calloc(1, sizeof *p.msg);
    if (!p.msg)
        return gw_fail(err, GW_E_NOMEM, "no memory for a message");
    rc = read_delims(&p, data, len);
    if (!rc)
        rc = choose_charset(&p, data, len);
    if (!rc)
        rc = load_text(&p, data, len);
    if (!rc)
        rc = split_segments(&p);
    if (!rc && p.is_message)
        rc = check_required(&p);
    free(p.names);
    if (rc)
        goto fail;
    *out = p.msg; /* ownership passes to the caller */
    return GW_OK;
fail:
    hl7_msg_destroy(p.msg);
    return rc;
}

enum gw_code hl7_msg_parse(const char *data, size_t len, struct hl7_msg **out,
                           struct hl7_err *where, struct gw_error *err)
{
    return hl7_parse_any(data, len, "MSH", out, where, err);
}
