/* msg.c -- reading a parsed message: segments, values by position, counts,
 * MSH conveniences, and the table 0357 texts.
 *
 * Promises: every accessor takes any numbers (negative, zero, past the end)
 * and answers NULL or 0 instead of reading out of bounds; values are found by
 * scanning the delimiter kinds parse.c recorded, so no call allocates and a
 * parsed message can be read from several threads at once.
 */
#include "hl7v2/hl7v2_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- table 0357 */

void hl7_err_set(struct hl7_err *e, enum hl7_err_code code, const char *segment, int sequence,
                 int field, int component)
{
    if (!e)
        return;
    memset(e, 0, sizeof *e);
    e->code = code;
    if (segment && hl7_is_segment_name(segment, strlen(segment)))
        memcpy(e->segment, segment, 4);
    e->sequence = sequence;
    e->field = field;
    e->repetition = field > 0 ? 1 : 0;
    e->component = component;
}

void hl7_err_clear(struct hl7_err *e)
{
    hl7_err_set(e, HL7_ERR_NONE, NULL, 0, 0, 0);
}

const char *hl7_err_text(enum hl7_err_code code)
{
    switch (code) {
    case HL7_ERR_NONE:
        return "Message accepted";
    case HL7_ERR_SEGMENT_SEQUENCE:
        return "Segment sequence error";
    case HL7_ERR_REQUIRED_FIELD:
        return "Required field missing";
    case HL7_ERR_DATA_TYPE:
        return "Data type error";
    case HL7_ERR_TABLE_VALUE:
        return "Table value not found";
    case HL7_ERR_UNSUPPORTED_TYPE:
        return "Unsupported message type";
    case HL7_ERR_UNSUPPORTED_EVENT:
        return "Unsupported event code";
    case HL7_ERR_UNSUPPORTED_PROCESSING:
        return "Unsupported processing id";
    case HL7_ERR_UNSUPPORTED_VERSION:
        return "Unsupported version id";
    case HL7_ERR_UNKNOWN_KEY:
        return "Unknown key identifier";
    case HL7_ERR_DUPLICATE_KEY:
        return "Duplicate key identifier";
    case HL7_ERR_RECORD_LOCKED:
        return "Application record locked";
    case HL7_ERR_INTERNAL:
        return "Application internal error";
    }
    return "Application internal error";
}

/* ---------------------------------------------------------------- locating values */

/* Narrows [*a, *b) to its idx-th part (0-based) as separated by kind k; false
 * when there are not that many parts. memchr keeps a walk over many
 * repetitions fast (each lookup is linear in the field's length). */
static bool narrow(const unsigned char *kind, size_t *a, size_t *b, unsigned char k, int idx)
{
    const unsigned char *p = kind + *a, *end = kind + *b, *q;

    for (; idx > 0; idx--) {
        q = memchr(p, k, (size_t)(end - p));
        if (!q)
            return false;
        p = q + 1;
    }
    q = memchr(p, k, (size_t)(end - p));
    *a = (size_t)(p - kind);
    *b = q ? (size_t)(q - kind) : *b;
    return true;
}

/* The span of a split field; false when absent (field 1 and 2 of a header are
 * not split fields and are answered by the callers). */
static bool field_span(const struct hl7_seg *seg, int field, size_t *a, size_t *b)
{
    const struct hl7_msg *m = seg->msg;
    long j = (long)field - (seg->is_header ? 2 : 1);

    if (j < 0 || j >= (long)seg->n_split)
        return false;
    *a = m->bounds[seg->first + (size_t)j];
    *b = m->bounds[seg->first + (size_t)j + 1] - 1;
    return true;
}

static int count_kind(const unsigned char *kind, size_t a, size_t b, unsigned char k)
{
    const unsigned char *p = kind + a, *end = kind + b;
    int n = 1;

    while ((p = memchr(p, k, (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* The header's MSH-1 or MSH-2 (which are not split or escaped). */
static const char *header_value(const struct hl7_seg *seg, int field, int rep, int comp, int sub)
{
    if (rep != 0 || comp != 1 || sub != 1)
        return NULL;
    return field == 1 ? seg->msg->sep_str : seg->msg->enc_str;
}

const char *hl7_seg_get(const struct hl7_seg *seg, int field, int repetition, int component,
                        int sub)
{
    const unsigned char *kind;
    size_t a, b;

    if (!seg || field < 1 || repetition < 0 || component < 1 || sub < 1)
        return NULL;
    if (seg->is_header && field <= 2)
        return header_value(seg, field, repetition, component, sub);
    kind = seg->msg->kind;
    if (!field_span(seg, field, &a, &b) || !narrow(kind, &a, &b, HL7_KIND_REP, repetition) ||
        !narrow(kind, &a, &b, HL7_KIND_COMP, component - 1) ||
        !narrow(kind, &a, &b, HL7_KIND_SUB, sub - 1))
        return NULL;
    return seg->msg->text[a] ? seg->msg->text + a : NULL;
}

const char *hl7_seg_field(const struct hl7_seg *seg, int field)
{
    return hl7_seg_get(seg, field, 0, 1, 1);
}

int hl7_seg_count_fields(const struct hl7_seg *seg)
{
    if (!seg)
        return 0;
    return (int)seg->n_split + (seg->is_header ? 1 : 0);
}

int hl7_seg_count_reps(const struct hl7_seg *seg, int field)
{
    size_t a, b;

    if (!seg || field < 1)
        return 0;
    if (seg->is_header && field <= 2)
        return 1;
    if (!field_span(seg, field, &a, &b) || a == b)
        return 0;
    return count_kind(seg->msg->kind, a, b, HL7_KIND_REP);
}

int hl7_seg_count_components(const struct hl7_seg *seg, int field, int repetition)
{
    size_t a, b;

    if (!seg || repetition < 0 || hl7_seg_count_reps(seg, field) == 0)
        return 0;
    if (seg->is_header && field <= 2)
        return repetition == 0 ? 1 : 0;
    if (!field_span(seg, field, &a, &b) ||
        !narrow(seg->msg->kind, &a, &b, HL7_KIND_REP, repetition))
        return 0;
    return count_kind(seg->msg->kind, a, b, HL7_KIND_COMP);
}

int hl7_seg_count_subs(const struct hl7_seg *seg, int field, int repetition, int component)
{
    size_t a, b;

    if (!seg || component < 1 || component > hl7_seg_count_components(seg, field, repetition))
        return 0;
    if (seg->is_header && field <= 2)
        return 1;
    if (!field_span(seg, field, &a, &b) ||
        !narrow(seg->msg->kind, &a, &b, HL7_KIND_REP, repetition) ||
        !narrow(seg->msg->kind, &a, &b, HL7_KIND_COMP, component - 1))
        return 0;
    return count_kind(seg->msg->kind, a, b, HL7_KIND_SUB);
}

const char *hl7_seg_name(const struct hl7_seg *seg)
{
    return seg ? seg->name : NULL;
}

size_t hl7_seg_index(const struct hl7_seg *seg)
{
    return seg ? seg->index : 0;
}

int hl7_seg_sequence(const struct hl7_seg *seg)
{
    return seg ? (int)seg->sequence : 0;
}

/* ---------------------------------------------------------------- messages */

void hl7_msg_destroy(struct hl7_msg *msg)
{
    if (!msg)
        return;
    free(msg->text);
    free(msg->kind);
    free(msg->segs);
    free(msg->bounds);
    free(msg);
}

size_t hl7_msg_count_segments(const struct hl7_msg *msg)
{
    return msg ? msg->n_segs : 0;
}

const struct hl7_seg *hl7_msg_segment(const struct hl7_msg *msg, size_t index)
{
    if (!msg || index >= msg->n_segs)
        return NULL;
    return &msg->segs[index];
}

const struct hl7_seg *hl7_msg_find(const struct hl7_msg *msg, const char *name, size_t occurrence)
{
    size_t i;

    if (!msg || !name)
        return NULL;
    for (i = 0; i < msg->n_segs; i++)
        if (strcmp(msg->segs[i].name, name) == 0 && occurrence-- == 0)
            return &msg->segs[i];
    return NULL;
}

size_t hl7_msg_count(const struct hl7_msg *msg, const char *name)
{
    size_t i, n = 0;

    if (!msg || !name)
        return 0;
    for (i = 0; i < msg->n_segs; i++)
        n += strcmp(msg->segs[i].name, name) == 0;
    return n;
}

const char *hl7_msg_get(const struct hl7_msg *msg, const char *name, size_t occurrence, int field,
                        int repetition, int component, int sub)
{
    return hl7_seg_get(hl7_msg_find(msg, name, occurrence), field, repetition, component, sub);
}

/* MSH is the first segment of every parsed message. */
static const char *msh(const struct hl7_msg *msg, int field, int component)
{
    if (!msg || msg->n_segs == 0)
        return NULL;
    return hl7_seg_get(&msg->segs[0], field, 0, component, 1);
}

const char *hl7_msg_type(const struct hl7_msg *msg)
{
    return msh(msg, 9, 1);
}

const char *hl7_msg_trigger(const struct hl7_msg *msg)
{
    return msh(msg, 9, 2);
}

const char *hl7_msg_structure(const struct hl7_msg *msg)
{
    return msh(msg, 9, 3);
}

const char *hl7_msg_control_id(const struct hl7_msg *msg)
{
    return msh(msg, 10, 1);
}

const char *hl7_msg_processing_id(const struct hl7_msg *msg)
{
    return msh(msg, 11, 1);
}

const char *hl7_msg_version(const struct hl7_msg *msg)
{
    return msh(msg, 12, 1);
}

const char *hl7_msg_time(const struct hl7_msg *msg)
{
    return msh(msg, 7, 1);
}

const char *hl7_msg_sending_app(const struct hl7_msg *msg)
{
    return msh(msg, 3, 1);
}

const char *hl7_msg_sending_facility(const struct hl7_msg *msg)
{
    return msh(msg, 4, 1);
}

const char *hl7_msg_receiving_app(const struct hl7_msg *msg)
{
    return msh(msg, 5, 1);
}

const char *hl7_msg_receiving_facility(const struct hl7_msg *msg)
{
    return msh(msg, 6, 1);
}

const char *hl7_msg_charset(const struct hl7_msg *msg)
{
    return msh(msg, 18, 1);
}
