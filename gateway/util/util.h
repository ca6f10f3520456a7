/* util.h -- the shared vocabulary of every module: errors, growable buffers,
 * JSON-lines logging, FHIR/HTTP time, random ids and Prometheus metrics.
 *
 * Owns:      the log mutex and the metrics registry (process-wide).
 * Promises:  every function here is thread-safe; no function aborts on bad
 *            input or on allocation failure (they report GW_E_NOMEM).
 * Never:     truncates silently: buffers have a cap and reaching it is
 *            GW_E_LIMIT; messages in gw_error end in "..." when cut.
 * Ownership: strings passed in are borrowed; json_t results are new references.
 */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

/* ---------------------------------------------------------------- errors */

enum gw_code {
    GW_OK = 0,
    GW_E_INPUT,    /* the peer sent something malformed or invalid */
    GW_E_LIMIT,    /* a size, depth, count or time bound was reached */
    GW_E_NOTFOUND, /* no such resource, or not visible to this client */
    GW_E_CONFLICT, /* version mismatch, duplicate conditional create */
    GW_E_DENIED,   /* the client's role or organisation may not do this */
    GW_E_NOMEM,    /* an allocation failed */
    GW_E_IO,       /* disk or socket */
    GW_E_STORE,    /* the database refused or failed */
    GW_E_INTERNAL, /* a broken invariant: a bug, logged with file:line */
};

#define GW_ERROR_MSG_MAX 240

struct gw_error {
    enum gw_code code;
    char msg[GW_ERROR_MSG_MAX]; /* for people and logs, never parsed; "..." marks truncation */
};

/* Records code and a printf-style message in err (which may be NULL); returns code. */
enum gw_code gw_fail(struct gw_error *err, enum gw_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* printf into dst (cap bytes); a text that does not fit ends in "..." so a
 * cut is never silent. For messages and labels, never for data. */
void gw_format(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void gw_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Clears err to GW_OK with an empty message (err may be NULL). */
void gw_error_clear(struct gw_error *err);

/* The one table: a short name ("input"), the HTTP status, the OperationOutcome
 * issue.code and the HL7 v2 acknowledgment code for each gw_code. */
const char *gw_code_name(enum gw_code code);
int gw_code_http_status(enum gw_code code);
const char *gw_code_issue_code(enum gw_code code);
const char *gw_code_hl7_ack(enum gw_code code);

/* ---------------------------------------------------------------- buffers */

/* A growable byte buffer with a mandatory cap and a sticky error: after the
 * first failure every append does nothing and gw_buf_finish() reports it.
 * data is always NUL-terminated when len > 0 or after a successful append. */
struct gw_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* the most bytes len may reach */
    enum gw_code err;
};

void gw_buf_init(struct gw_buf *b, size_t max);
void gw_buf_cleanup(struct gw_buf *b);
void gw_buf_reset(struct gw_buf *b); /* len = 0, error cleared, memory kept */
void gw_buf_append_grow(struct gw_buf *b, const void *p, size_t n); /* when the room is not there */
static inline void gw_buf_append(struct gw_buf *b, const void *p, size_t n)
{
    if (!b->err && b->data && n < b->cap - b->len && n <= b->max - b->len) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    gw_buf_append_grow(b, p, n);
}
void gw_buf_puts(struct gw_buf *b, const char *s);
/* One byte; inline, for the writers that put a punctuation mark at a time. */
static inline void gw_buf_putc(struct gw_buf *b, char c)
{
    if (!b->err && b->len + 2 <= b->cap && b->len < b->max) { /* room for c and the NUL */
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    gw_buf_append(b, &c, 1);
}
void gw_buf_printf(struct gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_buf_vprintf(struct gw_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Room for n more bytes: where to write them, then gw_buf_advance(b, k) for the k <= n
 * written. NULL, with nothing changed and no error recorded, when n more bytes would pass
 * the cap or memory runs out (the caller then appends the exact bytes and gets the error). */
char *gw_buf_room_grow(struct gw_buf *b, size_t n); /* gw_buf_room when the room is not there */
static inline char *gw_buf_room(struct gw_buf *b, size_t n)
{
    if (!b->err && b->data && n < b->cap - b->len && n <= b->max - b->len)
        return b->data + b->len; /* room for n bytes and the NUL already */
    return gw_buf_room_grow(b, n);
}
static inline void gw_buf_advance(struct gw_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}
/* Appends s escaped as the inside of a JSON string (no quotes added). */
void gw_buf_json_escape(struct gw_buf *b, const char *s, size_t n);
/* Appends s as an RFC 9110 §5.6.4 quoted-string in ASCII: DQUOTE, '"' and
 * '\\' escaped as quoted-pairs, printable ASCII kept, every other byte (controls,
 * UTF-8) replaced by '?', DQUOTE. Safe in any header value. */
void gw_buf_quoted_string(struct gw_buf *b, const char *s);
/* Returns GW_OK, or the sticky error with a message naming what (e.g. "response body"). */
enum gw_code gw_buf_finish(struct gw_buf *b, const char *what, struct gw_error *err);
/* Hands the bytes to the caller (free() them); the buffer is left empty.
 * Returns NULL when the buffer holds an error; *len_out gets the length. */
char *gw_buf_steal(struct gw_buf *b, size_t *len_out);

/* Room for one more element in a growable array of n used elements of elem
 * bytes: returns items when n < *cap, else a copy with twice the room (first
 * when empty) and *cap updated; NULL when memory runs out or the size would
 * overflow, and then items is unchanged and still the caller's. */
void *gw_grow(void *items, size_t *cap, size_t n, size_t elem, size_t first);

/* ---------------------------------------------------------------- strings */

/* strdup/strndup that return NULL on failure (never abort). */
char *gw_strdup(const char *s);
char *gw_strndup(const char *s, size_t n);
/* Parses a whole decimal integer in [lo, hi]; returns false on any junk. */
bool gw_parse_long(const char *s, long lo, long hi, long *out);
/* The value of a hexadecimal digit, or -1. */
int gw_hex_digit(char c);
/* True when s (n bytes) is well-formed UTF-8 without NUL bytes or overlongs. */
bool gw_utf8_valid(const char *s, size_t n);

/* ---------------------------------------------------------------- JSON text */

/* Jansson's json_dumps(), json_loadb() and json_loads() with the same
 * arguments and exactly the same results (text byte for byte; trees; NULL
 * and Jansson's own error for what Jansson refuses), faster on the common
 * path: compact output (JSON_COMPACT, with or without JSON_SORT_KEYS), and
 * reading with or without JSON_REJECT_DUPLICATES. Anything else is Jansson's. */
char *gw_json_dumps(const json_t *v, size_t flags);
json_t *gw_json_loadb(const char *data, size_t len, size_t flags, json_error_t *error);
json_t *gw_json_loads(const char *text, size_t flags, json_error_t *error);
/* Appends s (n bytes) as a JSON string exactly as json_dumps() writes one; false, with
 * something appended, when s is not UTF-8 by Jansson's rules (which it refuses). */
bool gw_buf_json_string(struct gw_buf *b, const char *s, size_t n);
/* json_deep_copy(v): a new reference to an equal tree (keys in the same order), or NULL;
 * without Jansson's bookkeeping against loops, which a tree deeper than a parse allows
 * still gets (it is handed to Jansson). */
json_t *gw_json_copy(const json_t *v);
/* Builders in the manner of json_pack(), without a format to parse, for what is built
 * per request. Each takes (steals) the references it is handed (the _new arguments) in
 * every case, and fails (-1, NULL) when a string is NULL or not UTF-8 (json_string()
 * refuses it) or memory runs out: json_pack()'s "s" and "o" with NULL fail alike. */
int gw_json_set_string(json_t *obj, const char *key, const char *s); /* obj[key] = s */
json_t *gw_json_object1(const char *key, json_t *value_new);         /* {key: value_new} */
json_t *gw_json_array1(json_t *value_new);                           /* [value_new] */
/* {k1: v1, ..., kn: vn}, strings, in that order. */
json_t *gw_json_strings(size_t n_pairs, ...);

/* ---------------------------------------------------------------- logging */

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

/* Sets the least level written (default INFO). Call before threads start. */
void gw_log_set_level(enum gw_log_level level);
/* Writes one JSON object on one line to stderr: {"ts","level","event","msg"}.
 * msg is printf-formatted and escaped. Never put patient data in a log. */
void gw_log(enum gw_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As gw_log, adding the members of fields (borrowed, a JSON object, may be NULL). */
void gw_log_fields(enum gw_log_level level, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- time */

/* Milliseconds since the Unix epoch (wall clock) and a monotonic clock. */
int64_t gw_now_ms(void);
int64_t gw_mono_ms(void);
/* Sleeps ms milliseconds (resuming after signals). */
void gw_sleep_ms(long ms);

#define GW_INSTANT_LEN   32 /* room for "2026-11-25T14:36:33.123Z" and NUL */
#define GW_HTTP_DATE_LEN 40
#define GW_HL7_TS_LEN    24

/* FHIR instant with milliseconds in UTC: 2026-11-25T14:36:33.123Z. */
void gw_time_instant(int64_t ms, char out[GW_INSTANT_LEN]);
/* RFC 7231 IMF-fixdate: Wed, 25 Nov 2026 14:36:33 GMT. */
void gw_time_http(int64_t ms, char out[GW_HTTP_DATE_LEN]);
/* HL7 v2 DTM to the second, with offset: 20261125143633+0000. */
void gw_time_hl7(int64_t ms, char out[GW_HL7_TS_LEN]);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
int64_t gw_days_from_civil(int64_t y, int m, int d);

/* Parses a FHIR date, dateTime or instant (YYYY, YYYY-MM, YYYY-MM-DD,
 * YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm)) into the half-open range [lo, hi) of
 * epoch milliseconds it covers (timezone-less dates are taken as UTC).
 * Returns false when text is not such a value. */
bool gw_time_parse_fhir(const char *text, int64_t *lo_ms, int64_t *hi_ms);

/* ---------------------------------------------------------------- ids */

#define GW_UUID_LEN 37 /* 36 characters and NUL */

/* A random (version 4) UUID in lower-case text, from OpenSSL's RAND_bytes.
 * Returns GW_E_INTERNAL when the generator fails. */
enum gw_code gw_uuid(char out[GW_UUID_LEN], struct gw_error *err);
/* A time-ordered (version 7) UUID: its text sorts by creation millisecond, so
 * ids made in a row land next to each other in an index (stored resource and
 * AuditEvent ids). Returns GW_E_INTERNAL when the generator fails. */
enum gw_code gw_uuid7(char out[GW_UUID_LEN], struct gw_error *err);
/* A time-ordered id of n characters (10 < n < 64) in Crockford base 32 (0-9 and
 * upper-case letters but I, L, O, U): ten characters of Unix milliseconds, then
 * 5 (n - 10) random bits, and NUL. Ids made in a row sort, and land in an
 * index, next to each other. Returns GW_E_INTERNAL when the generator fails. */
enum gw_code gw_sortable_id(char *out, size_t n, struct gw_error *err);
/* SHA-256 of data as 64 lower-case hex digits (out has 65 bytes). */
void gw_sha256_hex(const void *data, size_t len, char out[65]);

/* ---------------------------------------------------------------- metrics */

/* Adds v to the counter name{labels}; labels is Prometheus label text without
 * braces (e.g. "route=\"read\",status=\"200\"") or "". Silently dropped on OOM. */
void gw_metric_add(const char *name, const char *labels, double v);
/* Sets the gauge name{labels} to v. */
void gw_metric_set(const char *name, const char *labels, double v);
/* Records v in the histogram name{labels}; buckets are those given to
 * gw_metric_histogram() for name (default: latency buckets in seconds). */
void gw_metric_observe(const char *name, const char *labels, double v);
/* Declares a metric's help text, type and (for histograms) bucket bounds. */
void gw_metric_describe(const char *name, const char *type, const char *help);
void gw_metric_histogram(const char *name, const char *help, const double *bounds, size_t n);
/* A collector runs at each render to refresh gauges (e.g. outbox depth). */
typedef void (*gw_metric_collector_fn)(void *ctx);
void gw_metric_add_collector(gw_metric_collector_fn fn, void *ctx);
void gw_metric_remove_collector(gw_metric_collector_fn fn, void *ctx);
/* Renders every metric in the Prometheus text format into b. */
void gw_metrics_render(struct gw_buf *b);
/* Frees the registry (at exit, after all threads stopped). */
void gw_metrics_reset(void);

#endif
