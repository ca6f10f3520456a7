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

/* The length of the RFC 3629 character at s (n > 0 bytes available), or 0 when it is
 * malformed, overlong, a surrogate, past U+10FFFF, cut short or NUL. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k, need;
    uint32_t cp;

    if (c < 0x80)
        return c != 0;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n <= need)
        return 0;
    for (k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
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
