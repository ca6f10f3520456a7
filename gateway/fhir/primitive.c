/* primitive.c -- the lexical forms of the R4 primitive types (R4 §2.24 "Primitive Types").
 *
 * Promises: each check reads exactly len bytes, allocates nothing and answers with NULL
 * (valid) or a static sentence that completes "value 'x' ..." for a person. The rules are the
 * regular expressions of the R4 definitions, written out by hand, plus what they leave to the
 * prose: real calendar days (no 2023-02-30), the 32-bit ranges of the integer types, the 1 MiB
 * bound of strings, base64 padding.
 */
#include "fhir/fhir_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FHIR_MAX_STRING_CHARS ((size_t)1024 * 1024) /* string.value maxLength in R4 */

static const char *const prim_names[] = {
    "",        "base64Binary", "boolean",     "canonical", "code",     "date", "dateTime",
    "decimal", "id",           "instant",     "integer",   "markdown", "oid",  "positiveInt",
    "string",  "time",         "unsignedInt", "uri",       "url",      "uuid", "xhtml",
};

const char *fhir_prim_name(enum fhir_prim prim)
{
    return (unsigned)prim < sizeof prim_names / sizeof *prim_names ? prim_names[prim] : "?";
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n digits at s[*i], read as a number into *v. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *v)
{
    int k;

    *v = 0;
    if (len - *i < (size_t)n)
        return false;
    for (k = 0; k < n; k++) {
        if (!is_digit(s[*i + k]))
            return false;
        *v = *v * 10 + (s[*i + k] - '0');
    }
    *i += (size_t)n;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* YYYY, YYYY-MM or YYYY-MM-DD; *parts gets 1, 2 or 3. */
static bool date_part(const char *s, size_t len, size_t *i, int *parts)
{
    int y, m, d;

    if (!digits(s, len, i, 4, &y) || y == 0)
        return false;
    *parts = 1;
    if (*i == len || s[*i] != '-')
        return true;
    (*i)++;
    if (!digits(s, len, i, 2, &m) || m < 1 || m > 12)
        return false;
    *parts = 2;
    if (*i == len || s[*i] != '-')
        return true;
    (*i)++;
    if (!digits(s, len, i, 2, &d) || d < 1 || d > days_in_month(y, m))
        return false;
    *parts = 3;
    return true;
}

/* hh:mm:ss(.f+)? */
static bool time_part(const char *s, size_t len, size_t *i)
{
    int h, m, sec;

    if (!digits(s, len, i, 2, &h) || h > 23 || !expect(s, len, i, ':') ||
        !digits(s, len, i, 2, &m) || m > 59 || !expect(s, len, i, ':') ||
        !digits(s, len, i, 2, &sec) || sec > 60)
        return false;
    if (*i < len && s[*i] == '.') {
        (*i)++;
        if (*i == len || !is_digit(s[*i]))
            return false;
        while (*i < len && is_digit(s[*i]))
            (*i)++;
    }
    return true;
}

/* Z, or +hh:mm / -hh:mm from -13:59 to +14:00. */
static bool zone_part(const char *s, size_t len, size_t *i)
{
    int h, m;

    if (*i < len && s[*i] == 'Z') {
        (*i)++;
        return true;
    }
    if (*i >= len || (s[*i] != '+' && s[*i] != '-'))
        return false;
    (*i)++;
    if (!digits(s, len, i, 2, &h) || !expect(s, len, i, ':') || !digits(s, len, i, 2, &m))
        return false;
    return m <= 59 && (h <= 13 || (h == 14 && m == 0));
}

static const char *check_date(const char *s, size_t len)
{
    size_t i = 0;
    int parts;

    if (!date_part(s, len, &i, &parts) || i != len)
        return "is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD, a real calendar day)";
    return NULL;
}

static const char *check_datetime(const char *s, size_t len, bool instant)
{
    static const char bad_dt[] = "is not a valid dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
                                 "YYYY-MM-DDThh:mm:ss[.fff] with a time zone Z or +hh:mm)";
    static const char bad_in[] = "is not a valid instant (YYYY-MM-DDThh:mm:ss[.fff] with a "
                                 "time zone Z or +hh:mm)";
    size_t i = 0;
    int parts;

    if (!date_part(s, len, &i, &parts))
        return instant ? bad_in : bad_dt;
    if (i == len && !instant)
        return NULL;
    if (parts != 3 || !expect(s, len, &i, 'T') || !time_part(s, len, &i) ||
        !zone_part(s, len, &i) || i != len)
        return instant ? bad_in : bad_dt;
    return NULL;
}

static const char *check_time(const char *s, size_t len)
{
    size_t i = 0;

    if (!time_part(s, len, &i) || i != len)
        return "is not a valid time (hh:mm:ss[.fff], without a time zone)";
    return NULL;
}

bool fhir_is_decimal_lexeme(const char *s, size_t len)
{
    size_t i = 0, start;

    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < len && is_digit(s[i]))
            i++;
    if (i < len && s[i] == '.') {
        start = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        start = i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == len;
}

/* Whole decimal integers in [lo, hi]; plus allows a leading '+' (positiveInt only). */
static bool integer_text(const char *s, size_t len, long lo, long hi, bool plus)
{
    size_t i = 0;
    long v = 0;
    bool neg = false;

    if (i < len && (s[i] == '-' || (plus && s[i] == '+'))) {
        neg = s[i] == '-';
        i++;
    }
    if (i >= len || (s[i] == '0' && len - i > 1))
        return false;
    for (; i < len; i++) {
        if (!is_digit(s[i]) || v > 2147483648L)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (neg)
        v = -v;
    return v >= lo && v <= hi;
}

bool fhir_is_id(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > 64)
        return false;
    for (i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
              c == '.'))
            return false;
    }
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* [ \r\n\t\S]+ and no other control characters, at most 1 MiB of characters. */
static const char *check_string(const char *s, size_t len)
{
    size_t i, chars = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
            return "contains a control character (only tab, CR and LF are allowed)";
        if ((c & 0xC0) != 0x80)
            chars++;
    }
    if (chars > FHIR_MAX_STRING_CHARS)
        return "is longer than the 1 MiB (1048576 characters) a FHIR string may hold";
    return NULL;
}

/* [^\s]+(\s[^\s]+)*: no leading, trailing or doubled whitespace. */
static const char *check_code(const char *s, size_t len)
{
    size_t i;

    if (is_space(s[0]) || is_space(s[len - 1]))
        return "is not a valid code (leading or trailing whitespace)";
    for (i = 0; i + 1 < len; i++)
        if (is_space(s[i]) && is_space(s[i + 1]))
            return "is not a valid code (whitespace repeated inside)";
    return check_string(s, len);
}

static const char *check_uri(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (is_space(s[i]) || (unsigned char)s[i] < 0x20)
            return "is not a valid uri (it contains whitespace)";
    return NULL;
}

static const char *check_oid(const char *s, size_t len)
{
    size_t i = 8;

    if (len < 10 || strncmp(s, "urn:oid:", 8) != 0 || s[i] < '0' || s[i] > '2')
        return "is not a valid oid (urn:oid:1.2.3...)";
    i++;
    if (i == len)
        return "is not a valid oid (urn:oid:1.2.3...)";
    while (i < len) {
        if (s[i] != '.' || i + 1 >= len || !is_digit(s[i + 1]))
            return "is not a valid oid (urn:oid:1.2.3...)";
        i++;
        if (s[i] == '0' && i + 1 < len && s[i + 1] != '.')
            return "is not a valid oid (a component has a leading zero)";
        while (i < len && is_digit(s[i]))
            i++;
    }
    return NULL;
}

static const char *check_uuid(const char *s, size_t len)
{
    size_t i;

    if (len != 45 || strncmp(s, "urn:uuid:", 9) != 0)
        return "is not a valid uuid (urn:uuid: and 36 lower-case characters)";
    for (i = 9; i < len; i++) {
        size_t k = i - 9;
        char c = s[i];

        if (k == 8 || k == 13 || k == 18 || k == 23) {
            if (c != '-')
                return "is not a valid uuid (urn:uuid: and 36 lower-case characters)";
        } else if (!is_digit(c) && !(c >= 'a' && c <= 'f')) {
            return "is not a valid uuid (urn:uuid: and 36 lower-case characters)";
        }
    }
    return NULL;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' || c == '/';
}

static const char *check_base64(const char *s, size_t len)
{
    size_t i, n = 0, pad = 0;

    for (i = 0; i < len; i++) {
        if (is_space(s[i]))
            continue;
        if (s[i] == '=') {
            pad++;
        } else if (!is_b64(s[i]) || pad) {
            return "is not valid base64 (A-Z a-z 0-9 + /, '=' only at the end)";
        }
        n++;
    }
    if (n == 0 || n % 4 != 0 || pad > 2)
        return "is not valid base64 (its length is not a multiple of 4)";
    return NULL;
}

const char *fhir_prim_check_text(enum fhir_prim prim, const char *s, size_t len)
{
    if (len == 0)
        return "is empty (a FHIR value has at least one character)";
    switch (prim) {
    case FHIR_PRIM_BASE64BINARY:
        return check_base64(s, len);
    case FHIR_PRIM_BOOLEAN:
        return (len == 4 && !memcmp(s, "true", 4)) || (len == 5 && !memcmp(s, "false", 5))
                   ? NULL
                   : "is not a valid boolean (true or false)";
    case FHIR_PRIM_CODE:
        return check_code(s, len);
    case FHIR_PRIM_DATE:
        return check_date(s, len);
    case FHIR_PRIM_DATETIME:
        return check_datetime(s, len, false);
    case FHIR_PRIM_INSTANT:
        return check_datetime(s, len, true);
    case FHIR_PRIM_TIME:
        return check_time(s, len);
    case FHIR_PRIM_DECIMAL:
        return fhir_is_decimal_lexeme(s, len) ? NULL : "is not a valid decimal (e.g. 1.50)";
    case FHIR_PRIM_ID:
        return fhir_is_id(s, len) ? NULL : "is not a valid id (1 to 64 of A-Z a-z 0-9 - .)";
    case FHIR_PRIM_INTEGER:
        return integer_text(s, len, -2147483648L, 2147483647L, false)
                   ? NULL
                   : "is not a valid integer (-2147483648 to 2147483647, no fraction)";
    case FHIR_PRIM_UNSIGNEDINT:
        return integer_text(s, len, 0, 2147483647L, false)
                   ? NULL
                   : "is not a valid unsignedInt (0 to 2147483647)";
    case FHIR_PRIM_POSITIVEINT:
        return integer_text(s, len, 1, 2147483647L, true)
                   ? NULL
                   : "is not a valid positiveInt (1 to 2147483647)";
    case FHIR_PRIM_OID:
        return check_oid(s, len);
    case FHIR_PRIM_UUID:
        return check_uuid(s, len);
    case FHIR_PRIM_URI:
    case FHIR_PRIM_URL:
    case FHIR_PRIM_CANONICAL:
        return check_uri(s, len);
    case FHIR_PRIM_XHTML:
        return fhir_div_check(s, len);
    default:
        return check_string(s, len);
    }
}

void fhir_put_real(struct gw_buf *b, double v)
{
    char text[40];
    int prec;

    for (prec = 1; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    gw_buf_puts(b, text);
}

bool fhir_decimal_get(const json_t *v, double *out)
{
    const char *s;
    char *end;
    double d;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    s = json_string_value(v);
    if (!s || !fhir_is_decimal_lexeme(s, strlen(s)))
        return false;
    errno = 0;
    d = strtod(s, &end);
    if (errno == ERANGE && !isfinite(d))
        return false;
    *out = d;
    return true;
}
