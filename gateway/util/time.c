/* time.c -- clocks and the date/time forms FHIR, HTTP and HL7 v2 use.
 *
 * All formatting is in UTC, computed from the day count: what gmtime_r() gives, without
 * the lock glibc takes on the time zone for it (never gmtime: not thread-safe).
 * Parsing follows FHIR R4 §2.24 (date, dateTime, instant) lexical forms.
 */
#include "util/util.h"

#include <string.h>
#include <time.h>

int64_t gw_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gw_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The UTC calendar fields of an instant. */
struct civil {
    int64_t year;
    unsigned month, day, hour, minute, second, millis, weekday; /* month 1-12, weekday 0 Sunday */
};

/* The proleptic Gregorian date and time of ms (the inverse of gw_days_from_civil):
 * gmtime_r()'s answer in UTC, without the lock glibc takes on the time zone for it. */
static void civil_of(int64_t ms, struct civil *c)
{
    int64_t secs = ms / 1000, millis = ms % 1000, days, sod, z, era, doe, yoe, doy, mp;

    if (millis < 0) {
        millis += 1000;
        secs--;
    }
    days = secs / 86400;
    sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    c->day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    c->month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    c->year = yoe + era * 400 + (c->month <= 2);
    c->hour = (unsigned)(sod / 3600);
    c->minute = (unsigned)(sod / 60 % 60);
    c->second = (unsigned)(sod % 60);
    c->millis = (unsigned)millis;
    c->weekday = (unsigned)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
}

/* Writes v as exactly n digits (higher ones dropped, as "%02u" of a value reduced
 * modulo 100 did); returns the end. */
static char *put_digits(char *p, unsigned v, int n)
{
    int i;

    for (i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* The year as "%04u" printed gmtime_r()'s tm_year + 1900: an int, modulo 10000. */
static unsigned year4(int64_t year)
{
    return (unsigned)(int)year % 10000u;
}

static char *put_clock(char *p, const struct civil *c, char sep)
{
    p = put_digits(p, c->hour, 2);
    *p++ = sep;
    p = put_digits(p, c->minute, 2);
    *p++ = sep;
    return put_digits(p, c->second, 2);
}

void gw_time_instant(int64_t ms, char out[GW_INSTANT_LEN])
{
    struct civil c;
    char *p = out;

    civil_of(ms, &c);
    p = put_digits(p, year4(c.year), 4);
    *p++ = '-';
    p = put_digits(p, c.month, 2);
    *p++ = '-';
    p = put_digits(p, c.day, 2);
    *p++ = 'T';
    p = put_clock(p, &c, ':');
    *p++ = '.';
    p = put_digits(p, c.millis, 3);
    memcpy(p, "Z", 2);
}

void gw_time_http(int64_t ms, char out[GW_HTTP_DATE_LEN])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct civil c;
    char *p = out;

    civil_of(ms, &c);
    memcpy(p, days[c.weekday], 3);
    memcpy(p + 3, ", ", 2);
    p = put_digits(p + 5, c.day, 2);
    *p++ = ' ';
    memcpy(p, months[c.month - 1], 3);
    p[3] = ' ';
    p = put_digits(p + 4, year4(c.year), 4);
    *p++ = ' ';
    p = put_clock(p, &c, ':');
    memcpy(p, " GMT", 5);
}

void gw_time_hl7(int64_t ms, char out[GW_HL7_TS_LEN])
{
    struct civil c;
    char *p = out;

    civil_of(ms, &c);
    p = put_digits(p, year4(c.year), 4);
    p = put_digits(p, c.month, 2);
    p = put_digits(p, c.day, 2);
    p = put_digits(p, c.hour, 2);
    p = put_digits(p, c.minute, 2);
    p = put_digits(p, c.second, 2);
    memcpy(p, "+0000", 6);
}

/* Reads exactly n digits at *p; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Howard Hinnant's days_from_civil. */
int64_t gw_days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Parses "Z" or "+hh:mm"/"-hh:mm" into minutes east of UTC. */
static bool parse_zone(const char **p, int *minutes)
{
    int hh, mm, sign;

    if (**p == 'Z') {
        (*p)++;
        *minutes = 0;
        return true;
    }
    if (**p != '+' && **p != '-')
        return false;
    sign = **p == '-' ? -1 : 1;
    (*p)++;
    if (!digits(p, 2, &hh) || **p != ':')
        return false;
    (*p)++;
    if (!digits(p, 2, &mm) || hh > 14 || mm > 59)
        return false;
    *minutes = sign * (hh * 60 + mm);
    return true;
}

/* Parses "Thh:mm:ss[.f+]zone" into milliseconds of the day adjusted to UTC,
 * and the precision width (1 s or 1 ms). */
static bool parse_clock(const char **p, int64_t *ms, int64_t *width)
{
    int hh, mi, ss, zone = 0, frac = 0, scale = 1000;

    if (**p != 'T')
        return false;
    (*p)++;
    if (!digits(p, 2, &hh) || *(*p)++ != ':' || !digits(p, 2, &mi) || *(*p)++ != ':' ||
        !digits(p, 2, &ss) || hh > 23 || mi > 59 || ss > 60)
        return false;
    *width = 1000;
    if (**p == '.') {
        (*p)++;
        if (**p < '0' || **p > '9')
            return false;
        while (**p >= '0' && **p <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (**p - '0') * scale;
            }
            (*p)++;
        }
        *width = 1;
    }
    if (!parse_zone(p, &zone))
        return false;
    *ms =
        ((int64_t)hh * 3600 + mi * 60 + (ss > 59 ? 59 : ss)) * 1000 + frac - (int64_t)zone * 60000;
    return true;
}

bool gw_time_parse_fhir(const char *text, int64_t *lo_ms, int64_t *hi_ms)
{
    const char *p = text;
    int y, m = 1, d = 1;
    int64_t day, clock = 0, width;

    if (!text || !digits(&p, 4, &y))
        return false;
    if (*p == '\0') {
        *lo_ms = gw_days_from_civil(y, 1, 1) * 86400000;
        *hi_ms = gw_days_from_civil(y + 1, 1, 1) * 86400000;
        return true;
    }
    if (*p++ != '-' || !digits(&p, 2, &m) || m < 1 || m > 12)
        return false;
    if (*p == '\0') {
        *lo_ms = gw_days_from_civil(y, m, 1) * 86400000;
        *hi_ms = *lo_ms + (int64_t)days_in_month(y, m) * 86400000;
        return true;
    }
    if (*p++ != '-' || !digits(&p, 2, &d) || d < 1 || d > days_in_month(y, m))
        return false;
    day = gw_days_from_civil(y, m, d) * 86400000;
    if (*p == '\0') {
        *lo_ms = day;
        *hi_ms = day + 86400000;
        return true;
    }
    if (!parse_clock(&p, &clock, &width) || *p != '\0')
        return false;
    *lo_ms = day + clock;
    *hi_ms = *lo_ms + width;
    return true;
}
