/* buf.c -- growable byte buffers with a cap and a sticky error.
 *
 * Invariant: len < cap whenever data != NULL, and data[len] == '\0', so the
 * contents can always be used as a C string. Once err is set, nothing
 * changes until gw_buf_reset().
 */
#include "util/util.h"
#include "util/util_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_buf_init(struct gw_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = GW_OK;
}

void gw_buf_cleanup(struct gw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void gw_buf_reset(struct gw_buf *b)
{
    b->len = 0;
    b->err = GW_OK;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the terminating NUL. */
static bool reserve(struct gw_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (b->err)
        return false;
    if (n > b->max - b->len) {
        b->err = GW_E_LIMIT;
        return false;
    }
    need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p) {
        b->err = GW_E_NOMEM;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void gw_buf_append_grow(struct gw_buf *b, const void *p, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void gw_buf_puts(struct gw_buf *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

void gw_buf_vprintf(struct gw_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    int n;

    if (b->err)
        return;
    va_copy(again, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) {
        b->err = GW_E_INTERNAL;
        va_end(again);
        return;
    }
    if (reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void gw_buf_printf(struct gw_buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    gw_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void gw_buf_quoted_string(struct gw_buf *b, const char *s)
{
    gw_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            gw_buf_putc(b, '\\');
        gw_buf_putc(b, c >= 0x20 && c < 0x7f ? (char)c : '?');
    }
    gw_buf_putc(b, '"');
}

char *gw_buf_room_grow(struct gw_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (b->err || n > b->max - b->len)
        return NULL;
    need = b->len + n + 1;
    if (need > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        p = realloc(b->data, cap);
        if (!p)
            return NULL;
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
}

/* The escape of a byte that needs one (gw_buf_json_escape), into out; its length. */
static size_t escape_byte(unsigned char c, char *out)
{
    static const char hex[] = "0123456789abcdef";

    out[0] = '\\';
    if (c == '"' || c == '\\') {
        out[1] = (char)c;
        return 2;
    }
    if (c == '\n' || c == '\r' || c == '\t') {
        out[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

#define ESCAPE_CHUNK 4096 /* input bytes escaped into one reservation (6 output bytes each) */

void gw_buf_json_escape(struct gw_buf *b, const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t end = n - i > ESCAPE_CHUNK ? i + ESCAPE_CHUNK : n, o = 0;
        char *out = gw_buf_room(b, 6 * (end - i));

        if (!out)
            break; /* near the cap or out of memory: piece by piece below */
        while (i < end) {
            size_t stop;

            if (end - i >= 8 &&
                !gw_word_has_json_special(gw_word_load((const unsigned char *)s + i))) {
                memcpy(out + o, s + i, 8); /* eight bytes that need no escape */
                o += 8;
                i += 8;
                continue;
            }
            for (stop = end - i > 8 ? i + 8 : end; i < stop; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c >= 0x20 && c != '"' && c != '\\')
                    out[o++] = (char)c;
                else
                    o += escape_byte(c, out + o);
            }
        }
        gw_buf_advance(b, o);
    }
    for (; i < n; i++) { /* exact growth, so the cap is reached only by what is written */
        unsigned char c = (unsigned char)s[i];
        char esc[6];

        if (c >= 0x20 && c != '"' && c != '\\')
            gw_buf_append(b, s + i, 1);
        else
            gw_buf_append(b, esc, escape_byte(c, esc));
    }
}

enum gw_code gw_buf_finish(struct gw_buf *b, const char *what, struct gw_error *err)
{
    if (b->err == GW_E_LIMIT)
        return gw_fail(err, GW_E_LIMIT, "%s exceeds its limit of %zu bytes", what, b->max);
    if (b->err)
        return gw_fail(err, b->err, "%s: %s", what, gw_code_name(b->err));
    return GW_OK;
}

char *gw_buf_steal(struct gw_buf *b, size_t *len_out)
{
    char *p;

    if (b->err)
        return NULL;
    if (!b->data) { /* nothing appended: still a string */
        if (!reserve(b, 0))
            return NULL;
        b->data[0] = '\0';
    }
    p = b->data;
    *len_out = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void *gw_grow(void *items, size_t *cap, size_t n, size_t elem, size_t first)
{
    size_t c;
    void *grown;

    if (n < *cap)
        return items;
    c = *cap ? *cap : first;
    if (*cap && c > SIZE_MAX / 2)
        return NULL;
    if (*cap)
        c *= 2;
    if (!elem || c > SIZE_MAX / elem)
        return NULL;
    grown = realloc(items, c * elem);
    if (grown)
        *cap = c;
    return grown;
}
