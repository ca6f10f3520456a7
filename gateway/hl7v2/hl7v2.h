/* hl7v2.h -- HL7 v2 messages: ER7 parsing and encoding with escaping, batches
 * (FHS/BHS), acknowledgments, and MLLP framing on sockets.
 *
 * Owns:      nothing process-wide; every object belongs to its caller.
 * Promises:  any input bytes give either a parsed message whose values are
 *            unescaped, NUL-terminated UTF-8 text, or a clean gw_error plus an
 *            HL7 table 0357 code and location for ERR (never a crash, a hang or
 *            an unbounded allocation: every bound below is a named constant and
 *            reaching it is GW_E_LIMIT); the writer never emits an invalid
 *            message: text is escaped and validated, misuse is a sticky error
 *            that hl7_writer_finish() reports.
 * Never:     knows FHIR, the store or what an order means beyond MSH, MSA and
 *            ERR; reads a global or the environment; closes a descriptor.
 * Threads:   no shared state. An object is used by one thread at a time; a
 *            parsed message or batch is read-only and may be read concurrently.
 * Ownership: strings passed in are borrowed for the call. Strings and segments
 *            returned by accessors are borrowed from their message or batch and
 *            valid until its _destroy(). Bytes returned through `char **out`
 *            are the caller's to free().
 *
 * Numbering follows HL7: fields, components and sub-components count from 1;
 * segment occurrences and field repetitions count from 0 (the first PID is
 * occurrence 0, the first repetition of PID-3 is repetition 0). In MSH (and
 * FHS, BHS) field 1 is the field separator itself and field 2 the encoding
 * characters, as HL7 v2.5.1 §2.14.9 numbers them.
 *
 * Example: reading an inbound ORM and answering it.
 *
 *     struct hl7_msg *msg;
 *     struct hl7_err where;
 *     struct gw_error err;
 *     enum gw_code rc = hl7_msg_parse(frame, frame_len, &msg, &where, &err);
 *     const char *order_control = rc ? NULL : hl7_msg_get(msg, "ORC", 0, 1, 0, 1, 1);
 *     struct hl7_ack_spec ack = {.msg = msg, .raw = frame, .raw_len = frame_len,
 *                                .code = gw_code_hl7_ack(rc), .control_id = new_id,
 *                                .where = rc ? &where : NULL, .text = rc ? err.msg : NULL};
 *     hl7_ack_build(&ack, &bytes, &bytes_len, &err2);
 *     hl7_msg_destroy(msg);
 */
#ifndef GW_HL7V2_H
#define GW_HL7V2_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* ---------------------------------------------------------------- limits */

#define HL7_MAX_MESSAGE        (4 * 1024 * 1024)  /* bytes in one message (ER7 text) */
#define HL7_MAX_SEGMENTS       10000              /* segments in one message */
#define HL7_MAX_FIELDS         500                /* fields in one segment */
#define HL7_MAX_REPETITIONS    2000               /* repetitions of one field */
#define HL7_MAX_COMPONENTS     100                /* components, and sub-components of one */
#define HL7_MAX_BATCH          (64 * 1024 * 1024) /* bytes in one batch file */
#define HL7_MAX_BATCH_MESSAGES 10000              /* messages in one batch file */

/* MLLP block characters (HL7 v2.5.1 Appendix C, MLLP release 2). */
#define HL7_MLLP_START      0x0B
#define HL7_MLLP_END        0x1C
#define HL7_MLLP_CR         0x0D
#define HL7_MLLP_READ_CHUNK 16384 /* bytes read from a socket at a time */

/* ---------------------------------------------------------------- errors for ERR */

/* HL7 table 0357, message error condition codes (v2.5). */
enum hl7_err_code {
    HL7_ERR_NONE = 0,                     /* message accepted */
    HL7_ERR_SEGMENT_SEQUENCE = 100,       /* segment missing, unexpected or out of order */
    HL7_ERR_REQUIRED_FIELD = 101,         /* required field missing */
    HL7_ERR_DATA_TYPE = 102,              /* malformed value (bytes, escapes, format) */
    HL7_ERR_TABLE_VALUE = 103,            /* value not in its table (e.g. MSH-18) */
    HL7_ERR_UNSUPPORTED_TYPE = 200,       /* MSH-9.1 not handled */
    HL7_ERR_UNSUPPORTED_EVENT = 201,      /* MSH-9.2 not handled */
    HL7_ERR_UNSUPPORTED_PROCESSING = 202, /* MSH-11 not handled */
    HL7_ERR_UNSUPPORTED_VERSION = 203,    /* MSH-12 not handled */
    HL7_ERR_UNKNOWN_KEY = 204,            /* e.g. an order number we never issued */
    HL7_ERR_DUPLICATE_KEY = 205,
    HL7_ERR_RECORD_LOCKED = 206,
    HL7_ERR_INTERNAL = 207, /* application internal error (and bounds) */
};

/* What went wrong and where, in the terms of an ERR segment (v2.5): ERR-3
 * code and ERR-2 location (ERL: segment ^ sequence ^ field ^ repetition ^
 * component). A zero number means "unknown", an empty segment "no place". */
struct hl7_err {
    enum hl7_err_code code;
    char segment[4]; /* ERL-1 segment id, "" when the fault has no segment */
    int sequence;    /* ERL-2, 1-based occurrence of that segment */
    int field;       /* ERL-3 field position */
    int repetition;  /* ERL-4, 1-based as ERL counts (accessors count from 0) */
    int component;   /* ERL-5 */
};

/* Fills e (which may be NULL) with code and a location; segment may be NULL.
 * The repetition is set to 1 when a field is named. */
void hl7_err_set(struct hl7_err *e, enum hl7_err_code code, const char *segment, int sequence,
                 int field, int component);
/* Clears e (which may be NULL) to HL7_ERR_NONE with no location. */
void hl7_err_clear(struct hl7_err *e);
/* The table 0357 text of code ("Required field missing"); never NULL. */
const char *hl7_err_text(enum hl7_err_code code);

/* ---------------------------------------------------------------- parsed messages */

struct hl7_msg; /* one parsed message, read-only after parsing */
struct hl7_seg; /* one of its segments, borrowed from the message */

/* Parses one ER7 message of len bytes (no MLLP framing). Segments may end in
 * CR, LF or CRLF; a UTF-8 byte order mark and blank lines are skipped. The
 * field separator and encoding characters come from MSH-1 and MSH-2 (four
 * characters, or five with the v2.7 truncation character). MSH-18 decides the
 * character set: "UNICODE UTF-8" (or "UTF-8") or empty, validated as UTF-8;
 * "ASCII"; "8859/1" (or "ISO-8859-1"), converted to UTF-8; anything else is
 * an error (103 at MSH-18). MSH-9.1, MSH-10 and MSH-12 are required.
 * On GW_OK, *out is a new message the caller frees with hl7_msg_destroy() and
 * where (may be NULL) is cleared. On failure *out is NULL, err says why in
 * words and where says what and where for an ERR segment: GW_E_INPUT for
 * malformed input, GW_E_LIMIT for a bound (HL7_MAX_*), GW_E_NOMEM. */
enum gw_code hl7_msg_parse(const char *data, size_t len, struct hl7_msg **out,
                           struct hl7_err *where, struct gw_error *err);

/* Frees msg and everything borrowed from it; accepts NULL. */
void hl7_msg_destroy(struct hl7_msg *msg);

/* Returns the value at segment name (its occurrence-th occurrence), field,
 * repetition, component and sub-component, unescaped, in UTF-8; NULL when
 * absent or empty. An HL7 explicit null is returned as the two characters "".
 * A field without components answers component 1, sub-component 1. */
const char *hl7_msg_get(const struct hl7_msg *msg, const char *name, size_t occurrence, int field,
                        int repetition, int component, int sub);

/* The number of segments, and the index-th segment in message order (NULL past
 * the end): walk these to follow groups such as ORC [TQ1] OBR [NTE] [DG1]. */
size_t hl7_msg_count_segments(const struct hl7_msg *msg);
const struct hl7_seg *hl7_msg_segment(const struct hl7_msg *msg, size_t index);
/* The occurrence-th segment named name, or NULL. */
const struct hl7_seg *hl7_msg_find(const struct hl7_msg *msg, const char *name, size_t occurrence);
/* How many segments are named name. */
size_t hl7_msg_count(const struct hl7_msg *msg, const char *name);

/* MSH conveniences (borrowed, NULL when empty): MSH-9.1 type ("OMI"), MSH-9.2
 * trigger ("O23"), MSH-9.3 structure ("OMI_O23"), MSH-10 control id, MSH-11.1
 * processing id, MSH-12.1 version, MSH-7.1 time, MSH-3.1/4.1 sending
 * application/facility, MSH-5.1/6.1 receiving application/facility, and the
 * MSH-18 character set as declared (NULL when empty: UTF-8 was assumed). */
const char *hl7_msg_type(const struct hl7_msg *msg);
const char *hl7_msg_trigger(const struct hl7_msg *msg);
const char *hl7_msg_structure(const struct hl7_msg *msg);
const char *hl7_msg_control_id(const struct hl7_msg *msg);
const char *hl7_msg_processing_id(const struct hl7_msg *msg);
const char *hl7_msg_version(const struct hl7_msg *msg);
const char *hl7_msg_time(const struct hl7_msg *msg);
const char *hl7_msg_sending_app(const struct hl7_msg *msg);
const char *hl7_msg_sending_facility(const struct hl7_msg *msg);
const char *hl7_msg_receiving_app(const struct hl7_msg *msg);
const char *hl7_msg_receiving_facility(const struct hl7_msg *msg);
const char *hl7_msg_charset(const struct hl7_msg *msg);

/* The segment's three-letter name ("PID"), its index in the message, and its
 * 1-based sequence among segments of the same name (ERR-2.2). */
const char *hl7_seg_name(const struct hl7_seg *seg);
size_t hl7_seg_index(const struct hl7_seg *seg);
int hl7_seg_sequence(const struct hl7_seg *seg);
/* The highest field number present (empty trailing fields included). */
int hl7_seg_count_fields(const struct hl7_seg *seg);
/* Repetitions in a field (0 when absent or empty), components in one
 * repetition, sub-components in one component (0 when absent). */
int hl7_seg_count_reps(const struct hl7_seg *seg, int field);
int hl7_seg_count_components(const struct hl7_seg *seg, int field, int repetition);
int hl7_seg_count_subs(const struct hl7_seg *seg, int field, int repetition, int component);
/* As hl7_msg_get() within this segment. */
const char *hl7_seg_get(const struct hl7_seg *seg, int field, int repetition, int component,
                        int sub);
/* Shorthand for hl7_seg_get(seg, field, 0, 1, 1). */
const char *hl7_seg_field(const struct hl7_seg *seg, int field);

/* ---------------------------------------------------------------- writing messages */

/* Builds one ER7 message (or batch header segments) into a capped buffer.
 * Positions only move forward within a segment; values are escaped
 * (| ^ ~ \ & as \F\ \S\ \R\ \E\ \T\, CR, LF and CRLF as \.br\, other control
 * characters as \Xhh\) and must be UTF-8. Empty or NULL values write nothing.
 * The first failure (cap, bad UTF-8, a position going backwards, a bad
 * segment name) sticks: later calls do nothing and hl7_writer_finish()
 * reports it. Always ends with hl7_writer_cleanup(). */
struct hl7_writer {
    struct gw_buf buf;
    struct gw_error first;     /* the first failure that is not the buffer's own */
    enum gw_code err;          /* sticky: GW_OK until something fails */
    int field, rep, comp, sub; /* position of the last value written */
    bool in_segment;
    size_t n_segments;
};

/* Values of an MSH written by hl7_writer_msh() (borrowed; NULL = default). */
struct hl7_header {
    const char *sending_app;        /* MSH-3.1 */
    const char *sending_facility;   /* MSH-4.1 */
    const char *receiving_app;      /* MSH-5.1 */
    const char *receiving_facility; /* MSH-6.1 */
    const char *time;               /* MSH-7, DTM; NULL: now, to the second */
    const char *type;               /* MSH-9.1, required ("OMI") */
    const char *trigger;            /* MSH-9.2 ("O23") */
    const char *structure;          /* MSH-9.3 ("OMI_O23") */
    const char *control_id;         /* MSH-10, required, unique */
    const char *processing_id;      /* MSH-11; NULL: "P" */
    const char *version;            /* MSH-12; NULL: "2.5.1" */
    const char *accept_ack;         /* MSH-15 (AL, NE, ER, SU) */
    const char *app_ack;            /* MSH-16 */
    const char *charset;            /* MSH-18; NULL: "UNICODE UTF-8" */
};

/* Starts an empty writer whose output may reach max_len bytes. */
void hl7_writer_init(struct hl7_writer *w, size_t max_len);
/* Frees what the writer holds; safe after hl7_writer_finish(). */
void hl7_writer_cleanup(struct hl7_writer *w);
/* Ends the current segment (CR) and starts segment name (three upper-case
 * letters or digits). MSH, FHS and BHS get their separator and the encoding
 * characters ^~\& at once, so their next field is 3. */
void hl7_writer_segment(struct hl7_writer *w, const char *name);
/* Writes text at field/repetition/component/sub-component of the current
 * segment; the position must come after the last one written. */
void hl7_writer_put(struct hl7_writer *w, int field, int repetition, int component, int sub,
                    const char *text);
/* hl7_writer_put(w, field, 0, 1, 1, text) and (w, field, 0, component, 1, text). */
void hl7_writer_field(struct hl7_writer *w, int field, const char *text);
void hl7_writer_comp(struct hl7_writer *w, int field, int component, const char *text);
/* Writes a decimal integer as field. */
void hl7_writer_field_int(struct hl7_writer *w, int field, long value);
/* Copies every repetition, component and sub-component of src's field
 * src_field (from a parsed message) into field of the current segment. */
void hl7_writer_copy_field(struct hl7_writer *w, int field, const struct hl7_seg *src,
                           int src_field);
/* Writes a whole MSH segment from h (see struct hl7_header). */
void hl7_writer_msh(struct hl7_writer *w, const struct hl7_header *h);
/* Ends the last segment and hands the message to the caller: on GW_OK *out is
 * a new NUL-terminated string of *out_len bytes (free() it); on failure *out
 * is NULL and err says what failed first. */
enum gw_code hl7_writer_finish(struct hl7_writer *w, char **out, size_t *out_len,
                               struct gw_error *err);

/* ---------------------------------------------------------------- batches */

struct hl7_batch; /* a parsed batch file, read-only after parsing */

/* Parses a batch: [FHS] {[BHS] {message} [BTS]} [FTS] (HL7 v2.5.1 §2.10.3),
 * or one or more messages without headers. BTS-1, when valued, must equal the
 * number of messages of its batch, and FTS-1 the number of batches (BHS
 * groups; the number of messages when there is no BHS). A message that does
 * not parse does not fail the batch: its entry has a NULL message, its raw
 * bytes, an error and a location, so it can be answered on its own. Structure
 * errors (data before the first MSH, missing or mismatched trailers) fail the
 * whole batch, as do the bounds HL7_MAX_BATCH and HL7_MAX_BATCH_MESSAGES.
 * On GW_OK *out is a new batch (free with hl7_batch_destroy()); on failure
 * *out is NULL, err and where (may be NULL) say why. */
enum gw_code hl7_batch_parse(const char *data, size_t len, struct hl7_batch **out,
                             struct hl7_err *where, struct gw_error *err);
/* Frees b and everything borrowed from it; accepts NULL. */
void hl7_batch_destroy(struct hl7_batch *b);
/* The number of messages (good and bad) in order. */
size_t hl7_batch_count(const struct hl7_batch *b);
/* True when the input had FHS or BHS headers (so the answer is a batch too). */
bool hl7_batch_has_headers(const struct hl7_batch *b);
/* The i-th message, or NULL when it failed to parse (or i is out of range). */
const struct hl7_msg *hl7_batch_msg(const struct hl7_batch *b, size_t i);
/* The i-th message's bytes as received (*len set; NULL out of range). */
const char *hl7_batch_raw(const struct hl7_batch *b, size_t i, size_t *len);
/* Why the i-th message failed (code GW_OK when it parsed) and where. */
const struct gw_error *hl7_batch_error(const struct hl7_batch *b, size_t i);
const struct hl7_err *hl7_batch_where(const struct hl7_batch *b, size_t i);
/* The BHS (else the FHS) header segment, to read e.g. BHS-11; NULL if none. */
const struct hl7_seg *hl7_batch_header(const struct hl7_batch *b);

/* Header values of a batch written by hl7_batch_encode() (borrowed). */
struct hl7_batch_info {
    const char *sending_app;        /* FHS-3.1, BHS-3.1 */
    const char *sending_facility;   /* FHS-4.1, BHS-4.1 */
    const char *receiving_app;      /* FHS-5.1, BHS-5.1 */
    const char *receiving_facility; /* FHS-6.1, BHS-6.1 */
    const char *time;               /* FHS-7, BHS-7; NULL: now */
    const char *control_id;         /* FHS-11, BHS-11 */
    const char *reference_id;       /* FHS-12, BHS-12: the batch this one answers */
};
/* One encoded message (borrowed bytes). */
struct hl7_bytes {
    const char *data;
    size_t len;
};

/* Writes FHS, BHS, the n messages (each must start with "MSH"; a missing final
 * CR is added), BTS with n and FTS with 1 (one batch). On GW_OK *out is a new
 * string of *out_len bytes (free() it), at most HL7_MAX_BATCH; on failure *out
 * is NULL and err says why. n may be 0 (an empty batch). */
enum gw_code hl7_batch_encode(const struct hl7_batch_info *info, const struct hl7_bytes *msgs,
                              size_t n, char **out, size_t *out_len, struct gw_error *err);

/* ---------------------------------------------------------------- acknowledgments */

/* What an ACK answers and says (all borrowed). */
struct hl7_ack_spec {
    const struct hl7_msg *msg; /* the inbound message; NULL when it did not parse */
    const char *raw;           /* its bytes, searched for MSH-3..6, 9, 10-12 when msg is NULL */
    size_t raw_len;
    const char *code;            /* MSA-1: "AA", "AE", "AR" (or "CA", "CE", "CR") */
    const char *control_id;      /* MSH-10 of the ACK itself (new, required) */
    const char *time;            /* MSH-7; NULL: now */
    const struct hl7_err *where; /* ERR-2/ERR-3; NULL: 207 when the code is not AA/CA */
    const char *text;            /* ERR-8 user message (the reason), may be NULL */
};

/* Builds the ACK: MSH with sender and receiver swapped (the three HD
 * components of MSH-3..6), MSH-9 ACK^<trigger>^ACK, the given control id, the
 * inbound processing id and version (defaults "P", "2.5.1"); MSA|code|<inbound
 * MSH-10>; and, unless the code is AA/CA with no error given,
 * ERR||location|code^text^HL70357|E (W when accepting)||||text. Before v2.5
 * the ERR-1 and MSA-3 forms are added too. Echoed values are bounded (199
 * bytes, 999 for MSH-10; longer ones are left out) so an ACK always fits.
 * When msg is NULL, values are recovered from raw at best effort (printable
 * ASCII only; missing ones are left empty).
 * On GW_OK *out is a new message of *out_len bytes (free() it). */
enum gw_code hl7_ack_build(const struct hl7_ack_spec *spec, char **out, size_t *out_len,
                           struct gw_error *err);

/* An acknowledgment read from a parsed message (borrowed from it). */
struct hl7_ack {
    const char *code;       /* MSA-1: AA, AE, AR, CA, CE or CR */
    const char *control_id; /* MSA-2: MSH-10 of the message acknowledged */
    const char *text;       /* ERR-8, else ERR-3.2, else ERR-1.4.2, else MSA-3; or NULL */
    int error_code;         /* ERR-3.1 (else ERR-1.4.1) as a number, 0 when none */
};

/* Reads the MSA (and first ERR) of an ACK or any response that has an MSA.
 * GW_E_INPUT when there is no MSA, MSA-1 is not an acknowledgment code, or
 * MSA-2 is empty; *out is then zeroed. */
enum gw_code hl7_ack_read(const struct hl7_msg *msg, struct hl7_ack *out, struct gw_error *err);

/* ---------------------------------------------------------------- MLLP */

/* Appends 0x0B, the message, 0x1C 0x0D to out (sticky errors as gw_buf). */
void hl7_mllp_frame(struct gw_buf *out, const char *msg, size_t len);

/* An incremental MLLP decoder: fed arbitrary chunks of socket bytes, it yields
 * whole frames. Bytes before a start block are discarded (counted in n_junk);
 * a start block inside a frame restarts the frame; a frame ends at 0x1C (the
 * 0x0D after it is consumed when present). Fields are for reading only. */
struct hl7_mllp {
    struct gw_buf frame; /* the frame being assembled or just completed */
    size_t max_frame;    /* the most bytes one frame may hold */
    int state;
    size_t n_junk;      /* bytes discarded outside frames so far */
    size_t n_oversized; /* frames discarded for exceeding max_frame */
    char *pending;      /* bytes read from a socket, not yet fed */
    size_t pending_len, pending_off;
};

/* Starts a decoder for frames of at most max_frame bytes (e.g. HL7_MAX_MESSAGE). */
void hl7_mllp_init(struct hl7_mllp *d, size_t max_frame);
/* Frees what the decoder holds. */
void hl7_mllp_cleanup(struct hl7_mllp *d);
/* Feeds up to len bytes and stops after the first frame that completes.
 * *used says how many bytes were consumed: call again with the rest. Returns
 * GW_OK with *frame set to the frame (borrowed, NUL-terminated, valid until
 * the next call on d) and *frame_len, or GW_OK with *frame NULL when all bytes
 * were consumed without completing one; GW_E_LIMIT when a frame exceeded
 * max_frame: it is discarded and the decoder resynchronises at the next start
 * block. */
enum gw_code hl7_mllp_feed(struct hl7_mllp *d, const char *data, size_t len, size_t *used,
                           const char **frame, size_t *frame_len, struct gw_error *err);

/* Reads one frame from fd (blocking or not), waiting at most timeout_ms in
 * all (-1: no limit). Bytes read past the frame are kept in d for the next
 * call. Returns GW_OK with *frame (borrowed as for hl7_mllp_feed()); GW_OK
 * with *frame NULL when the peer closed the connection between frames;
 * GW_E_LIMIT for an oversized frame (discarded; call again to go on);
 * GW_E_IO on a timeout, a read error or a close inside a frame; GW_E_NOMEM. */
enum gw_code hl7_mllp_read(struct hl7_mllp *d, int fd, int timeout_ms, const char **frame,
                           size_t *frame_len, struct gw_error *err);

/* Writes msg as one frame to the socket fd, all of it, within timeout_ms (-1:
 * no limit), retrying partial writes and EINTR, without SIGPIPE
 * (MSG_NOSIGNAL). GW_E_IO on a timeout or a socket error; GW_E_NOMEM. */
enum gw_code hl7_mllp_write(int fd, const char *msg, size_t len, int timeout_ms,
                            struct gw_error *err);

#endif
