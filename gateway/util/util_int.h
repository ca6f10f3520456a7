/* util_int.h -- for util/'s own .c files and its unit tests only: tests on
 * eight bytes at once, for the loops that copy runs of plain text, and the
 * one UTF-8 sequence check both the JSON code and gw_utf8_valid() use.
 *
 * Promises: each test below is exact for the word as a whole (some byte is,
 * or none is); which byte it flags is not promised, so a caller that finds
 * one goes byte by byte. Byte order does not matter.
 */
#ifndef GW_UTIL_INT_H
#define GW_UTIL_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GW_WORD_ONES 0x0101010101010101ULL
#define GW_WORD_HIGH 0x8080808080808080ULL

/* The eight bytes at p (any alignment). */
static inline uint64_t gw_word_load(const unsigned char *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof w);
    return w;
}

/* Non-zero when some byte of w is 0. */
static inline uint64_t gw_word_has_zero(uint64_t w)
{
    return (w - GW_WORD_ONES) & ~w & GW_WORD_HIGH;
}

/* Non-zero when some byte of w is below n (n at most 0x80). */
static inline uint64_t gw_word_has_below(uint64_t w, unsigned char n)
{
    return (w - GW_WORD_ONES * n) & ~w & GW_WORD_HIGH;
}

/* Non-zero when some byte of w is c. */
static inline uint64_t gw_word_has_byte(uint64_t w, unsigned char c)
{
    return gw_word_has_zero(w ^ (GW_WORD_ONES * c));
}

/* Non-zero when some byte of w is 0x80 or above. */
static inline uint64_t gw_word_has_high(uint64_t w)
{
    return w & GW_WORD_HIGH;
}

/* The length of the well-formed UTF-8 sequence of a non-ASCII lead byte at
 * s (n bytes available): 2 to 4, or 0 when RFC 3629 (and Jansson) refuses it:
 * a stray continuation, overlong, a surrogate, beyond U+10FFFF, cut short
 * (str.c). */
size_t gw_utf8_sequence(const unsigned char *s, size_t n);

/* Non-zero when some byte of w needs a JSON escape: a control, '"' or '\\'. */
static inline uint64_t gw_word_has_json_special(uint64_t w)
{
    return gw_word_has_below(w, 0x20) | gw_word_has_byte(w, '"') | gw_word_has_byte(w, '\\');
}

#endif
