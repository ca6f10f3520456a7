/* str.c -- small string helpers that never abort and never overflow. */
#include "util/util.h"
#include "util/util_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *gw_strdup(const char *s)
{
    return s ? gw_strndup(s, strlen(s)) : NULL;
}

char *gw_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool gw_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int gw_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t gw_utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char u = s[0];
    size_t len, i;
    long value;

    if (u >= 0xC2 && u <= 0xDF) {
        len = 2;
        value = u & 0x1F;
    } else if (u >= 0xE0 && u <= 0xEF) {
        len = 3;
        value = u & 0x0F;
    } else if (u >= 0xF0 && u <= 0xF4) {
        len = 4;
        value = u & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
        value = (value << 6) | (s[i] & 0x3F);
    }
    if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF) || (len == 3 && value < 0x800) ||
        (len == 4 && value < 0x10000))
        return 0;
    return len;
}

/* The length of the RFC 3629 character at s (n > 0 bytes available), or 0 when it is
 * malformed, overlong, a surrogate, past U+10FFFF, cut short or NUL. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    return s[0] < 0x80 ? s[0] != 0 : gw_utf8_sequence(s, n);
}

/* RFC 3629: rejects overlongs, surrogates, code points past U+10FFFF. */
bool gw_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        size_t stop;

        if (n - i >= 8) { /* eight ASCII bytes, none of them NUL */
            uint64_t w = gw_word_load(s + i);

            if (!gw_word_has_high(w) && !gw_word_has_zero(w)) {
                i += 8;
                continue;
            }
        }
        for (stop = n - i > 8 ? i + 8 : n; i < stop;) { /* a character may end past stop */
            size_t k = utf8_char(s + i, n - i);

            if (!k)
                return false;
            i += k;
        }
    }
    return true;
}
