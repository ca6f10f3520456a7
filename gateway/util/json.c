/* json.c -- JSON text to and from json_t: Jansson's results, in a fraction of its time.
 *
 * Jansson reads through a character callback into a string buffer and
 * writes through an output callback per token; on a referral that is most
 * of a request thread's time. These functions do the same work in one pass
 * over memory and promise exactly Jansson's results: gw_json_dumps() gives
 * byte for byte the text json_dumps() gives with the same flags (the store
 * keeps that text and the audit chain hashes it), gw_json_loadb() the tree
 * json_loadb() gives. What they do not handle themselves they hand to
 * Jansson, whole: a document with a syntax error, an escape outside the
 * Basic Multilingual Plane, a number that does not fit, flags other than
 * the common ones, invalid UTF-8 to write. So every error, and its message,
 * is Jansson's own. tests/unit/test_util.c compares both with Jansson on
 * generated documents.
 */
#include "util/util.h"
#include "util/util_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FAST_MAX_DEPTH 2048 /* Jansson's JSON_PARSER_MAX_DEPTH; deeper goes to Jansson */
#define JSON_FAST_MAX_TEXT  ((size_t)1 << 31)
#define JSON_NUMBER_MAX     64 /* a number's text longer than this goes to Jansson */

/* ------------------------------------------------------------ writing */

struct writer {
    struct gw_buf b;
    size_t flags;
    bool handoff; /* something only Jansson may write: it writes the whole value */
};

/* The escape dump.c's dump_string writes for a control, '"' or '\\' (short escapes, else
 * \u00XX in upper-case hex), into out; its length. */
static size_t escape_byte(unsigned char c, char *out)
{
    static const char hex[] = "0123456789ABCDEF", shorts[] = "\"\\\b\f\n\r\t";
    static const char letters[] = "\"\\bfnrt";
    const char *k = c ? memchr(shorts, c, sizeof shorts - 1) : NULL;

    out[0] = '\\';
    if (k) {
        out[1] = letters[k - shorts];
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

#define STRING_CHUNK 4096 /* input bytes written into one reservation (6 output bytes each) */

/* 1 for the bytes dump_string copies as they are (printable ASCII but '"' and '\\'). */
static const unsigned char plain_ascii[256] = {
    ['\x20'] = 1,
    1,
    0,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x20-0x2F, '"' not */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x30 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x40 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    0,
    1,
    1,
    1, /* 0x50, '\\' not */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x60 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x70, DEL included */
};

/* Zero when the eight bytes of w are all plain_ascii: written as they are. */
static uint64_t plain_word(uint64_t w)
{
    return gw_word_has_high(w) | gw_word_has_json_special(w);
}

bool gw_buf_json_string(struct gw_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0, end;
    char *out;

    do { /* one reservation per chunk, the quotes included */
        end = n - i > STRING_CHUNK ? i + STRING_CHUNK : n;
        if (!(out = gw_buf_room(b, 6 * (end - i) + 2))) {
            if (!b->err)
                b->err = 6 * (end - i) + 2 > b->max - b->len ? GW_E_LIMIT : GW_E_NOMEM;
            return true;
        }
        o = 0;
        if (i == 0)
            out[o++] = '"';
        while (i < end) {
            size_t stop;

            if (end - i >= 8 && !plain_word(gw_word_load(s + i))) {
                memcpy(out + o, s + i, 8);
                o += 8;
                i += 8;
                continue;
            }
            for (stop = end - i > 8 ? i + 8 : end; i < stop;) { /* a sequence may end past stop */
                unsigned char c = s[i];
                size_t k;

                if (plain_ascii[c]) {
                    out[o++] = (char)c;
                    i++;
                } else if (c < 0x80) {
                    o += escape_byte(c, out + o);
                    i++;
                } else if ((k = gw_utf8_sequence(s + i, n - i)) != 0) {
                    memcpy(out + o, s + i, k);
                    o += k;
                    i += k;
                } else {
                    return false;
                }
            }
        }
        if (i >= n)
            out[o++] = '"';
        gw_buf_advance(b, o);
    } while (i < n);
    return true;
}

/* dump.c's dump_string; invalid UTF-8, or a string near the cap, hands the value to Jansson. */
static void put_string(struct writer *w, const char *str, size_t n)
{
    if (!gw_buf_json_string(&w->b, str, n))
        w->handoff = true;
}

static void put_integer(struct writer *w, json_int_t v)
{
    char digits[24];
    size_t at = sizeof digits;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        digits[--at] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--at] = '-';
    gw_buf_append(&w->b, digits + at, sizeof digits - at);
}

/* A real: Jansson's own text (its precision and exponent rules), which it
 * also refuses for NaN and infinities. */
static void put_real(struct writer *w, const json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | (w->flags & JSON_REAL_PRECISION(31)));

    if (!text) {
        w->handoff = true;
        return;
    }
    gw_buf_puts(&w->b, text);
    free(text);
}

struct key_len {
    const char *key;
    size_t len;
};

/* dump.c's compare_keys: bytes of the shorter length, then the shorter first. */
static int compare_keys(const void *a, const void *b)
{
    const struct key_len *k1 = a, *k2 = b;
    int res = memcmp(k1->key, k2->key, k1->len < k2->len ? k1->len : k2->len);

    if (res)
        return res;
    return k1->len < k2->len ? -1 : k1->len > k2->len;
}

static void put_value(struct writer *w, const json_t *v, int depth);

static void put_member(struct writer *w, const char *key, size_t len, const json_t *v, int depth,
                       bool first)
{
    if (!first)
        gw_buf_putc(&w->b, ',');
    put_string(w, key, len);
    gw_buf_putc(&w->b, ':');
    put_value(w, v, depth + 1);
}

static void put_sorted(struct writer *w, const json_t *obj, int depth)
{
    size_t n = json_object_size(obj), i = 0;
    struct key_len *keys = n ? malloc(n * sizeof *keys) : NULL;
    void *iter;

    if (!n)
        return;
    if (!keys) {
        w->handoff = true;
        return;
    }
    for (iter = json_object_iter((json_t *)obj); iter && i < n;
         iter = json_object_iter_next((json_t *)obj, iter), i++)
        keys[i] = (struct key_len){json_object_iter_key(iter), json_object_iter_key_len(iter)};
    qsort(keys, i, sizeof *keys, compare_keys);
    n = i;
    for (i = 0; i < n && !w->handoff; i++)
        put_member(w, keys[i].key, keys[i].len, json_object_getn(obj, keys[i].key, keys[i].len),
                   depth, i == 0);
    free(keys);
}

static void put_object(struct writer *w, const json_t *obj, int depth)
{
    void *iter;
    bool first = true;

    gw_buf_putc(&w->b, '{');
    if (w->flags & JSON_SORT_KEYS) {
        put_sorted(w, obj, depth);
    } else {
        for (iter = json_object_iter((json_t *)obj); iter && !w->handoff;
             iter = json_object_iter_next((json_t *)obj, iter)) {
            put_member(w, json_object_iter_key(iter), json_object_iter_key_len(iter),
                       json_object_iter_value(iter), depth, first);
            first = false;
        }
    }
    gw_buf_putc(&w->b, '}');
}

static void put_value(struct writer *w, const json_t *v, int depth)
{
    size_t i, n;

    if (w->handoff || w->b.err)
        return;
    if (!v || depth > JSON_FAST_MAX_DEPTH) { /* Jansson then says whether it can (a loop) */
        w->handoff = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        put_object(w, v, depth);
        break;
    case JSON_ARRAY:
        gw_buf_putc(&w->b, '[');
        n = json_array_size(v);
        for (i = 0; i < n && !w->handoff; i++) {
            if (i)
                gw_buf_putc(&w->b, ',');
            put_value(w, json_array_get(v, i), depth + 1);
        }
        gw_buf_putc(&w->b, ']');
        break;
    case JSON_STRING:
        put_string(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_integer(w, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(w, v);
        break;
    case JSON_TRUE:
        gw_buf_append(&w->b, "true", 4);
        break;
    case JSON_FALSE:
        gw_buf_append(&w->b, "false", 5);
        break;
    default:
        gw_buf_append(&w->b, "null", 4);
        break;
    }
}

char *gw_json_dumps(const json_t *v, size_t flags)
{
    const size_t mine = JSON_COMPACT | JSON_SORT_KEYS | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                        JSON_REAL_PRECISION(31);
    struct writer w = {.flags = flags};
    size_t len;
    char *text;

    if ((flags & ~mine) || !(flags & JSON_COMPACT) ||
        (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v)))
        return json_dumps(v, flags);
    gw_buf_init(&w.b, JSON_FAST_MAX_TEXT);
    put_value(&w, v, 0);
    if (w.handoff || w.b.err == GW_E_LIMIT) {
        gw_buf_cleanup(&w.b);
        return json_dumps(v, flags);
    }
    text = gw_buf_steal(&w.b, &len); /* NULL when out of memory, as Jansson's */
    gw_buf_cleanup(&w.b);
    return text;
}

/* ------------------------------------------------------------ reading */

struct reader {
    const unsigned char *p, *end;
    size_t flags;
    char *scratch; /* a string's bytes once its escapes are decoded */
    size_t scratch_cap;
    bool handoff; /* not the common path (or an error): Jansson reads the whole text */
};

static void skip_space(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int hex_value(unsigned char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* \uXXXX of the Basic Multilingual Plane, neither a surrogate nor NUL (Jansson refuses
 * those, or pairs them: its business), as UTF-8 into out; the bytes written, or 0. */
static size_t unicode_escape(const unsigned char *p, const unsigned char *end, char *out)
{
    long cp = 0;
    int i;

    if (end - p < 4)
        return 0;
    for (i = 0; i < 4; i++) {
        int h = hex_value(p[i]);

        if (h < 0)
            return 0;
        cp = cp * 16 + h;
    }
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* Decodes the escapes of the string body [from, to) into r->scratch; its length, or -1. */
static long decode_escapes(struct reader *r, const unsigned char *from, const unsigned char *to)
{
    size_t need = (size_t)(to - from), o = 0;
    const unsigned char *p = from;

    if (need > r->scratch_cap) {
        char *grown = realloc(r->scratch, need);

        if (!grown)
            return -1;
        r->scratch = grown;
        r->scratch_cap = need;
    }
    while (p < to) {
        static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
        const char *k;

        if (*p != '\\') {
            r->scratch[o++] = (char)*p++;
            continue;
        }
        p++;
        if (*p == 'u') {
            size_t n = unicode_escape(p + 1, to, r->scratch + o);

            if (!n)
                return -1;
            o += n;
            p += 5;
        } else if ((k = strchr(plain, *p)) != NULL && *p) {
            r->scratch[o++] = decoded[k - plain];
            p++;
        } else {
            return -1;
        }
    }
    return (long)o;
}

/* A string at r->p (its opening quote): *s and *len its bytes (in the text, or in
 * r->scratch when it holds escapes); false hands off. */
static bool read_string(struct reader *r, const char **s, size_t *len)
{
    const unsigned char *start = ++r->p;
    bool escaped = false;
    long n;

    while (r->p < r->end && *r->p != '"') {
        unsigned char c;

        if (r->end - r->p >= 8 && !plain_word(gw_word_load(r->p))) {
            r->p += 8; /* eight printable ASCII bytes, no quote, no escape */
            continue;
        }
        c = *r->p;
        if (c < 0x20) /* a control character (and NUL): Jansson's error */
            return false;
        if (c == '\\') {
            escaped = true;
            if (r->end - r->p < 2)
                return false;
            r->p += 2;
        } else if (c >= 0x80) {
            size_t k = gw_utf8_sequence(r->p, (size_t)(r->end - r->p));

            if (!k)
                return false;
            r->p += k;
        } else {
            r->p++;
        }
    }
    if (r->p >= r->end)
        return false;
    r->p++; /* the closing quote */
    if (!escaped) {
        *s = (const char *)start;
        *len = (size_t)(r->p - 1 - start);
        return true;
    }
    n = decode_escapes(r, start, r->p - 1);
    if (n < 0)
        return false;
    *s = r->scratch;
    *len = (size_t)n;
    return true;
}

static json_t *read_number(struct reader *r)
{
    const unsigned char *start = r->p;
    char text[JSON_NUMBER_MAX + 1];
    bool is_real = false;
    size_t n;

    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0') {
        r->p++;
    } else {
        if (r->p >= r->end || *r->p < '1' || *r->p > '9')
            return NULL;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    if (r->p < r->end && *r->p == '.') {
        is_real = true;
        if (++r->p >= r->end || *r->p < '0' || *r->p > '9')
            return NULL;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        is_real = true;
        if (++r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9')
            return NULL;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    n = (size_t)(r->p - start);
    if (n > (is_real ? (size_t)JSON_NUMBER_MAX : 18)) /* 18 digits always fit a long long */
        return NULL;
    memcpy(text, start, n);
    text[n] = '\0';
    if (is_real) {
        double d;

        errno = 0;
        d = strtod(text, NULL);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
            return NULL; /* Jansson's "real number overflow" */
        return json_real(d);
    }
    return json_integer((json_int_t)strtoll(text, NULL, 10));
}

/* true, false or null: the letters that follow must not continue a word. */
static json_t *read_literal(struct reader *r)
{
    static const struct {
        const char *word;
        size_t len;
    } words[] = {{"true", 4}, {"false", 5}, {"null", 4}};
    size_t i;

    for (i = 0; i < 3; i++) {
        size_t len = words[i].len;
        const unsigned char *after = r->p + len;

        if ((size_t)(r->end - r->p) >= len && memcmp(r->p, words[i].word, len) == 0 &&
            (after == r->end ||
             !((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z')))) {
            r->p = after;
            return i == 0 ? json_true() : i == 1 ? json_false() : json_null();
        }
    }
    return NULL;
}

static json_t *read_value(struct reader *r, int depth);

static json_t *read_object(struct reader *r, int depth)
{
    json_t *obj = json_object();

    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return obj;
    }
    while (obj) {
        const char *key;
        size_t len;
        json_t *v;
        char *key_copy;

        if (r->p >= r->end || *r->p != '"' || !read_string(r, &key, &len))
            break;
        if ((r->flags & JSON_REJECT_DUPLICATES) && json_object_getn(obj, key, len))
            break;
        /* the key may live in scratch, which the value's strings reuse */
        key_copy = key == r->scratch ? gw_strndup(key, len) : NULL;
        if (key == r->scratch && !key_copy)
            break;
        skip_space(r);
        if (r->p >= r->end || *r->p != ':') {
            free(key_copy);
            break;
        }
        r->p++;
        skip_space(r);
        v = read_value(r, depth + 1);
        if (!v || json_object_setn_new_nocheck(obj, key_copy ? key_copy : key, len, v)) {
            free(key_copy);
            break;
        }
        free(key_copy);
        skip_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_space(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return obj;
        }
        break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *read_array(struct reader *r, int depth)
{
    json_t *arr = json_array();

    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return arr;
    }
    while (arr) {
        json_t *v = read_value(r, depth + 1);

        if (!v || json_array_append_new(arr, v))
            break;
        skip_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_space(r);
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return arr;
        }
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *read_value(struct reader *r, int depth)
{
    const char *s;
    size_t len;

    if (r->p >= r->end || depth > JSON_FAST_MAX_DEPTH)
        return NULL;
    switch (*r->p) {
    case '{':
        return read_object(r, depth);
    case '[':
        return read_array(r, depth);
    case '"':
        return read_string(r, &s, &len) ? json_stringn_nocheck(s, len) : NULL;
    case 't':
    case 'f':
    case 'n':
        return read_literal(r);
    default:
        return read_number(r);
    }
}

json_t *gw_json_loadb(const char *data, size_t len, size_t flags, json_error_t *error)
{
    struct reader r = {
        (const unsigned char *)data, (const unsigned char *)data + len, flags, NULL, 0, false};
    json_t *root = NULL;

    if (!data || (flags & ~(size_t)JSON_REJECT_DUPLICATES))
        return json_loadb(data, len, flags, error);
    skip_space(&r);
    if (r.p < r.end && (*r.p == '{' || *r.p == '['))
        root = read_value(&r, 1);
    skip_space(&r);
    free(r.scratch);
    if (!root || r.p != r.end) {
        json_decref(root);
        return json_loadb(data, len, flags, error); /* Jansson's answer and message */
    }
    if (error) {
        memset(error, 0, sizeof *error);
        error->line = error->column = -1;
        error->position = (int)len;
        memcpy(error->source, "<buffer>", sizeof "<buffer>");
    }
    return root;
}

json_t *gw_json_loads(const char *text, size_t flags, json_error_t *error)
{
    if (!text)
        return json_loads(text, flags, error);
    return gw_json_loadb(text, strlen(text), flags, error);
}

/* ------------------------------------------------------------ copying */

static json_t *copy_value(const json_t *v, int depth)
{
    json_t *out, *item;
    size_t i, n;
    void *iter;

    if (!v || depth > JSON_FAST_MAX_DEPTH)
        return NULL;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        out = json_object();
        for (iter = json_object_iter((json_t *)v); out && iter;
             iter = json_object_iter_next((json_t *)v, iter)) {
            item = copy_value(json_object_iter_value(iter), depth + 1);
            if (!item || json_object_setn_new_nocheck(out, json_object_iter_key(iter),
                                                      json_object_iter_key_len(iter), item)) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case JSON_ARRAY:
        n = json_array_size(v);
        out = json_array();
        for (i = 0; out && i < n; i++) {
            item = copy_value(json_array_get(v, i), depth + 1);
            if (!item || json_array_append_new(out, item)) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case JSON_STRING:
        return json_stringn_nocheck(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return json_integer(json_integer_value(v));
    case JSON_REAL:
        return json_real(json_real_value(v));
    default:
        return (json_t *)v; /* true, false, null: Jansson's shared constants */
    }
}

json_t *gw_json_copy(const json_t *v)
{
    json_t *out = copy_value(v, 0);

    /* deeper than any parse allows, or a loop: Jansson's own copy says which */
    return out || !v ? out : json_deep_copy(v);
}

/* ------------------------------------------------------------ building */

/* json_object_set_new(obj, key, json_string(s)), with the UTF-8 checks (Jansson's rules)
 * done eight bytes at a time. */
int gw_json_set_string(json_t *obj, const char *key, const char *s)
{
    size_t key_len, len;

    if (!key || !s || !gw_utf8_valid(key, key_len = strlen(key)) ||
        !gw_utf8_valid(s, len = strlen(s)))
        return -1;
    return json_object_setn_new_nocheck(obj, key, key_len, json_stringn_nocheck(s, len));
}

json_t *gw_json_object1(const char *key, json_t *value_new)
{
    json_t *o = json_object();

    if (json_object_set_new(o, key, value_new)) { /* takes value_new even when o is NULL */
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *gw_json_array1(json_t *value_new)
{
    json_t *a = json_array();

    if (json_array_append_new(a, value_new)) { /* takes value_new even when a is NULL */
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *gw_json_strings(size_t n_pairs, ...)
{
    json_t *o = json_object();
    bool failed = !o;
    va_list ap;
    size_t i;

    va_start(ap, n_pairs);
    for (i = 0; i < n_pairs; i++) {
        const char *key = va_arg(ap, const char *), *value = va_arg(ap, const char *);

        failed = failed || gw_json_set_string(o, key, value) != 0;
    }
    va_end(ap);
    if (failed) {
        json_decref(o);
        return NULL;
    }
    return o;
}
