/* hl7v2_int.h -- the hl7v2 module's own types, shared by its .c files and its
 * unit tests only.
 *
 * A parsed message keeps its text (converted to UTF-8) in one buffer in which
 * every delimiter byte has been replaced by NUL and every leaf value (a
 * sub-component) has been unescaped in place: unescaping never makes a value
 * longer than its escaped form, so each leaf starts where its raw text
 * started and ends with a NUL before the next delimiter. A parallel array of
 * kinds remembers which delimiter each NUL replaced, so values are found by
 * scanning kinds, never by re-reading text. Per segment, the start offsets of
 * its fields are kept in one shared array of offsets.
 */
#ifndef GW_HL7V2_INT_H
#define GW_HL7V2_INT_H

#include "hl7v2/hl7v2.h"

#include <stdint.h>

/* What a byte of the parsed text is (hl7_msg.kind). */
enum {
    HL7_KIND_DATA = 0, /* part of a value (or slack after an unescaped value) */
    HL7_KIND_SUB,      /* a sub-component separator */
    HL7_KIND_COMP,     /* a component separator */
    HL7_KIND_REP,      /* a repetition separator */
    HL7_KIND_END,      /* a field separator or a segment end */
};

/* The message's delimiters (MSH-1 and MSH-2). trunc is '\0' when undeclared. */
struct hl7_delims {
    char field, comp, rep, esc, sub, trunc;
};

/* Character sets a message may declare in MSH-18. */
enum hl7_charset {
    HL7_CS_UTF8, /* "UNICODE UTF-8" or empty */
    HL7_CS_ASCII,
    HL7_CS_LATIN1, /* "8859/1", converted to UTF-8 on input */
};

struct hl7_seg {
    const struct hl7_msg *msg;
    char name[4];
    uint32_t index;    /* position in the message */
    uint32_t sequence; /* 1-based occurrence of name */
    uint32_t first;    /* index in msg->bounds of its first split field */
    uint32_t n_split;  /* fields after the name, as split by the field separator */
    bool is_header;    /* MSH, FHS, BHS: field 1 is the separator, 2 the encoding characters */
};

struct hl7_msg {
    char *text;          /* len bytes + NUL: values unescaped in place, delimiters NUL */
    unsigned char *kind; /* len + 1 kinds (HL7_KIND_*) */
    size_t len;
    struct hl7_delims d;
    char sep_str[2]; /* MSH-1 as a string */
    char enc_str[6]; /* MSH-2 as a string */
    enum hl7_charset charset;
    struct hl7_seg *segs;
    size_t n_segs, cap_segs;
    /* Split field j of a segment spans [bounds[first + j], bounds[first + j + 1] - 1). */
    uint32_t *bounds;
    size_t n_bounds, cap_bounds;
};

/* Parses one message or one batch header line whose first segment must be
 * first_name ("MSH", "FHS" or "BHS"). Header lines carry no MSH-18: they are
 * taken as UTF-8 when valid, else as 8859/1. Messages (first_name "MSH") must
 * hold one MSH and no batch segments, and have MSH-9.1, MSH-10, MSH-12. */
enum gw_code hl7_parse_any(const char *data, size_t len, const char *first_name,
                           struct hl7_msg **out, struct hl7_err *where, struct gw_error *err);

/* Unescapes the leaf text[s, e) in place for a message with delimiters d and
 * character set cs; writes the NUL and sets *new_len. Returns false with *why
 * set (a static string) for an escape that cannot be honoured. */
bool hl7_unescape(char *text, size_t s, size_t e, const struct hl7_delims *d, enum hl7_charset cs,
                  size_t *new_len, const char **why);

/* Appends text (n bytes of UTF-8) to b escaped with the standard encoding
 * characters ^~\& and field separator |. */
void hl7_escape(struct gw_buf *b, const char *text, size_t n);

/* True for a segment name: three upper-case ASCII letters or digits. */
bool hl7_is_segment_name(const char *s, size_t n);

/* Appends raw bytes to the writer's output (for batch encoding), ending the
 * current segment first; keeps the sticky error. */
void hl7_writer_raw(struct hl7_writer *w, const char *data, size_t len);

/* Records the writer's first failure (code and message) and makes it stick. */
void hl7_writer_fail(struct hl7_writer *w, enum gw_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
