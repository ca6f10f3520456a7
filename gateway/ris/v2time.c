/* v2time.c -- HL7 v2 DTM values to instants and FHIR dates to DTM, and the
 * practice's local time.
 *
 * A RIS often sends times without an offset ("20261203143000"): they are the
 * practice's wall-clock time. The gateway serves Paris practices, so such a
 * time is read as Paris time: CET (UTC+1) and, under the EU rule, CEST (UTC+2)
 * from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday
 * of October. A DTM with an offset is taken as it says.
 */
#include "ris/ris_int.h"

#include <string.h>

#define MS_PER_MIN 60000LL
#define MS_PER_DAY 86400000LL

static int64_t year_of_days(int64_t z)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

/* The day number of the last Sunday of month m of year y. */
static int64_t last_sunday(int64_t y, int m)
{
    int64_t last = gw_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) - 1;
    int64_t weekday = ((last + 4) % 7 + 7) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */

    return last - weekday;
}

int ris_local_offset_min(int64_t utc_ms)
{
    int64_t day = utc_ms >= 0 ? utc_ms / MS_PER_DAY : (utc_ms - MS_PER_DAY + 1) / MS_PER_DAY;
    int64_t y = year_of_days(day);
    int64_t start = last_sunday(y, 3) * MS_PER_DAY + 60 * MS_PER_MIN;
    int64_t end = last_sunday(y, 10) * MS_PER_DAY + 60 * MS_PER_MIN;

    return utc_ms >= start && utc_ms < end ? RIS_LOCAL_DST_OFFSET_MIN : RIS_LOCAL_STD_OFFSET_MIN;
}

/* Reads n digits at *p as a number in [lo, hi]. */
static bool digits(const char **p, int n, int lo, int hi, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *p += n;
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* The optional offset "+hhmm" / "-hhmm" at p; *has false when absent. */
static bool offset(const char *p, bool *has, int *minutes)
{
    int h, m, sign;

    *has = false;
    if (!*p)
        return true;
    if (*p != '+' && *p != '-')
        return false;
    sign = *p == '-' ? -1 : 1;
    p++;
    if (!digits(&p, 2, 0, 14, &h) || !digits(&p, 2, 0, 59, &m) || *p)
        return false;
    *has = true;
    *minutes = sign * (h * 60 + m);
    return true;
}

bool ris_dtm_to_ms(const char *dtm, int64_t *ms)
{
    const char *p = dtm;
    int y, mo, d, h, mi, s = 0, off = 0;
    bool has_off;
    int64_t local;

    if (!p || !digits(&p, 4, 1, 9999, &y) || !digits(&p, 2, 1, 12, &mo) ||
        !digits(&p, 2, 1, 31, &d) || d > days_in_month(y, mo) || !digits(&p, 2, 0, 23, &h) ||
        !digits(&p, 2, 0, 59, &mi))
        return false;
    if (*p >= '0' && *p <= '9' && !digits(&p, 2, 0, 59, &s))
        return false;
    if (*p == '.') /* fractions of a second: dropped */
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if (!offset(p, &has_off, &off))
        return false;
    local = gw_days_from_civil(y, mo, d) * MS_PER_DAY +
            ((int64_t)h * 3600 + (int64_t)mi * 60 + s) * 1000;
    if (!has_off)
        off = ris_local_offset_min(local - RIS_LOCAL_STD_OFFSET_MIN * MS_PER_MIN);
    *ms = local - off * MS_PER_MIN;
    return true;
}

/* ------------------------------------------------------------ FHIR to HL7 */

bool ris_fhir_to_dtm(const char *text, char out[GW_HL7_TS_LEN])
{
    size_t i, k = 0;
    int64_t lo, hi;

    if (!text || !gw_time_parse_fhir(text, &lo, &hi))
        return false;
    for (i = 0; text[i]; i++) {
        char c = text[i];

        if (c >= '0' && c <= '9' && k + 1 < GW_HL7_TS_LEN)
            out[k++] = c;
        else if (c == '.') /* fractions of a second are left out */
            while (text[i + 1] >= '0' && text[i + 1] <= '9')
                i++;
        else if (c == 'Z' && k + 6 <= GW_HL7_TS_LEN) {
            memcpy(out + k, "+0000", 5);
            k += 5;
        } else if ((c == '+' || c == '-') && i > 10 && k + 1 < GW_HL7_TS_LEN)
            out[k++] = c;
    }
    out[k] = '\0';
    return k >= 4;
}
