/* time.c -- clocks and the date/time forms FHIR, HTTP and HL7 v2 use.
 *
 * All formatting is in UTC with gmtime_r (never gmtime: not thread-safe).
 * Parsing follows FHIR R4 §2.24 (date, dateTime, instant) lexical forms.
 */
#include "util/util.h"

#include <stdio.h>
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

/* Field values reduced to their printed width, so formats never overflow. */
#define F2(v) ((unsigned)(v) % 100u)
#define F4(v) ((unsigned)(v) % 10000u)

static void split(int64_t ms, struct tm *tm, int *millis)
{
    time_t secs = (time_t)(ms / 1000);

    *millis = (int)(ms % 1000);
    if (*millis < 0) {
        *millis += 1000;
        secs--;
    }
    if (!gmtime_r(&secs, tm))
        memset(tm, 0, sizeof *tm);
}

void gw_time_instant(int64_t ms, char out[GW_INSTANT_LEN])
{
    struct tm tm;
    int millis;

    split(ms, &tm, &millis);
    snprintf(out, GW_INSTANT_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", F4(tm.tm_year + 1900),
             F2(tm.tm_mon + 1), F2(tm.tm_mday), F2(tm.tm_hour), F2(tm.tm_min), F2(tm.tm_sec),
             (unsigned)millis % 1000u);
}

void gw_time_http(int64_t ms, char out[GW_HTTP_DATE_LEN])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    int millis;

    split(ms, &tm, &millis);
    snprintf(out, GW_HTTP_DATE_LEN, "%s, %02u %s %04u %02u:%02u:%02u GMT",
             days[(unsigned)tm.tm_wday % 7u], F2(tm.tm_mday), months[(unsigned)tm.tm_mon % 12u],
             F4(tm.tm_year + 1900), F2(tm.tm_hour), F2(tm.tm_min), F2(tm.tm_sec));
}

void gw_time_hl7(int64_t ms, char out[GW_HL7_TS_LEN])
{
    struct tm tm;
    int millis;

    split(ms, &tm, &millis);
    snprintf(out, GW_HL7_TS_LEN, "%04u%02u%02u%02u%02u%02u+0000", F4(tm.tm_year + 1900),
             F2(tm.tm_mon + 1), F2(tm.tm_mday), F2(tm.tm_hour), F2(tm.tm_min), F2(tm.tm_sec));
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
