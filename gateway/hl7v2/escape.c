/* escape.c -- HL7 v2 escape sequences both ways (HL7 v2.5.1 §2.7).
 *
 * Promises: hl7_unescape() works in place and never writes past the escaped
 * text it reads (every sequence decodes to no more bytes than it spans), so
 * a leaf keeps its start offset; sequences it does not know are kept as
 * written, so text such as "C:\dir" survives. hl7_escape() emits only the
 * standard encoding characters and never a raw delimiter, CR or LF.
 */
#include "hl7v2/hl7v2_int.h"

#include <string.h>

bool hl7_is_segment_name(const char *s, size_t n)
{
    size_t i;

    if (n != 3)
        return false;
    for (i = 0; i < 3; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* True when seq (n bytes, after the escape character) is X followed by an
 * even, non-zero number of hex digits. */
static bool is_hex_escape(const char *seq, size_t n)
{
    size_t i;

    if (n < 3 || seq[0] != 'X' || (n - 1) % 2 != 0)
        return false;
    for (i = 1; i < n; i++)
        if (gw_hex_digit(seq[i]) < 0)
            return false;
    return true;
}

/* Decodes the hex digits of seq (validated by is_hex_escape) into text at *w.
 * In an 8859/1 message each byte is a Latin-1 character, written as UTF-8. */
static bool decode_hex(char *text, size_t *w, const char *seq, size_t n, enum hl7_charset cs,
                       const char **why)
{
    size_t i;

    for (i = 1; i + 1 < n; i += 2) {
        unsigned char byte = (unsigned char)(gw_hex_digit(seq[i]) * 16 + gw_hex_digit(seq[i + 1]));

        if (byte == 0) {
            *why = "a \\X..\\ escape decodes to a NUL byte";
            return false;
        }
        if (cs == HL7_CS_LATIN1 && byte >= 0x80) {
            text[(*w)++] = (char)(0xC0 | (byte >> 6));
            text[(*w)++] = (char)(0x80 | (byte & 0x3F));
        } else {
            text[(*w)++] = (char)byte;
        }
    }
    return true;
}

/* The character a one-letter escape stands for, or '\0' when it is not one. */
static char delimiter_escape(char letter, const struct hl7_delims *d)
{
    switch (letter) {
    case 'F':
        return d->field;
    case 'S':
        return d->comp;
    case 'T':
        return d->sub;
    case 'R':
        return d->rep;
    case 'E':
        return d->esc;
    case 'P':
        return d->trunc; /* v2.7 truncation character, '\0' when undeclared */
    default:
        return '\0';
    }
}

/* Handles one complete sequence seq[0..n) found between escape characters.
 * Returns 1 when it was consumed (output written at *w), 0 when it is not a
 * sequence we know (the caller keeps it literally), -1 on an error. */
static int decode_sequence(char *text, size_t *w, const char *seq, size_t n,
                           const struct hl7_delims *d, enum hl7_charset cs, bool *had_hex,
                           const char **why)
{
    char c;

    if (n == 1 && (c = delimiter_escape(seq[0], d)) != '\0') {
        text[(*w)++] = c;
        return 1;
    }
    if (n == 1 && (seq[0] == 'H' || seq[0] == 'N'))
        return 1; /* highlighting on/off: dropped, the text stays */
    if (is_hex_escape(seq, n)) {
        *had_hex = true;
        return decode_hex(text, w, seq, n, cs, why) ? 1 : -1;
    }
    if (n >= 1 && (seq[0] == 'C' || seq[0] == 'M')) {
        *why = "character set switching escapes (\\C..\\, \\M..\\) are not supported";
        return -1;
    }
    if ((n == 3 && memcmp(seq, ".br", 3) == 0) || (n >= 3 && memcmp(seq, ".sp", 3) == 0)) {
        text[(*w)++] = '\n'; /* line break; .sp skips lines, one break is kept */
        return 1;
    }
    if (n >= 2 && (seq[0] == '.' || seq[0] == 'Z'))
        return 1; /* other formatting commands and local escapes are dropped */
    return 0;
}

bool hl7_unescape(char *text, size_t s, size_t e, const struct hl7_delims *d, enum hl7_charset cs,
                  size_t *new_len, const char **why)
{
    size_t r = s, w = s, close;
    bool had_hex = false;

    while (r < e) {
        if (text[r] != d->esc) {
            text[w++] = text[r++];
            continue;
        }
        for (close = r + 1; close < e && text[close] != d->esc; close++)
            ;
        if (close == e) { /* no closing escape: the rest is literal text */
            memmove(text + w, text + r, e - r);
            w += e - r;
            break;
        }
        switch (decode_sequence(text, &w, text + r + 1, close - r - 1, d, cs, &had_hex, why)) {
        case 1:
            r = close + 1;
            break;
        case 0: /* unknown: keep the escape character and the text, look again from close */
            memmove(text + w, text + r, close - r);
            w += close - r;
            r = close;
            break;
        default:
            return false;
        }
    }
    text[w] = '\0';
    *new_len = w - s;
    if (had_hex && cs != HL7_CS_LATIN1 && !gw_utf8_valid(text + s, w - s)) {
        *why = "a \\X..\\ escape gives bytes that are not UTF-8";
        return false;
    }
    return true;
}

/* 1 for the printable bytes hl7_escape() escapes (controls and DEL are escaped too). */
static const unsigned char escaped_printable[256] = {
    ['|'] = 1, ['^'] = 1, ['&'] = 1, ['~'] = 1, ['\\'] = 1, [0x7F] = 1,
};

/* The length of the run of bytes at text (n of them) that hl7_escape() copies as they are. */
static size_t plain_run(const unsigned char *text, size_t n)
{
    size_t i = 0;

    while (i < n && text[i] >= 0x20 && !escaped_printable[text[i]])
        i++;
    return i;
}

void hl7_escape(struct gw_buf *b, const char *text, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0, start = 0;

    while ((i += plain_run((const unsigned char *)text + i, n - i)) < n) {
        unsigned char c = (unsigned char)text[i];
        const char *esc = NULL;
        char x[5] = {'\\', 'X', 0, 0, '\\'};

        switch (c) {
        case '|':
            esc = "\\F\\";
            break;
        case '^':
            esc = "\\S\\";
            break;
        case '&':
            esc = "\\T\\";
            break;
        case '~':
            esc = "\\R\\";
            break;
        case '\\':
            esc = "\\E\\";
            break;
        case '\r':
        case '\n':
            esc = "\\.br\\";
            break;
        default: /* another control, or DEL */
            break;
        }
        gw_buf_append(b, text + start, i - start);
        start = i + 1;
        if (c == '\r' && i + 1 < n && text[i + 1] == '\n')
            start = ++i + 1; /* CRLF is one line break */
        if (esc) {
            gw_buf_puts(b, esc);
        } else {
            x[2] = hex[c >> 4];
            x[3] = hex[c & 15];
            gw_buf_append(b, x, sizeof x);
        }
        i++;
    }
    gw_buf_append(b, text + start, n - start);
}
