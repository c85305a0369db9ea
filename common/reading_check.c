/* reading_check.c - the value rules of one hourly reading (see
 * reading_check.h): UUIDs, ISO 8601 hour timestamps with the calendar and
 * offset rules, and the range of each value column. It does not split CSV
 * lines or read JSON; ctl/csv_reading.c and api/routes_readings.c do. */
#include "reading_check.h"

#include "error.h"

#include <math.h>
#include <stdio.h>

static int hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int reading_check_uuid(const char *text, size_t len, char out[37], char *err, size_t errlen)
{
    if (len != 36)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "is not a UUID (expected 36 characters in groups 8-4-4-4-12)");
    for (size_t i = 0; i < 36; i++) {
        int dash = (i == 8 || i == 13 || i == 18 || i == 23);
        if (dash ? text[i] != '-' : !hex_digit(text[i]))
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "is not a UUID (expected hex digits in groups 8-4-4-4-12)");
        char c = text[i];
        out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    out[36] = '\0';
    return ENMS_OK;
}

/* Reads n decimal digits at text[pos]; -1 when any is not a digit. */
static int digits(const char *text, size_t len, size_t pos, int n)
{
    int v = 0;
    if (pos + (size_t)n > len)
        return -1;
    for (int i = 0; i < n; i++) {
        char c = text[pos + (size_t)i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return (m == 2 && is_leap(y)) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. Counts
 * in 400-year eras (146097 days each), with the year starting in March so
 * that the leap day is the last day of the year. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t reading_check_epoch(int year, int month, int day, int hour, int minute, int second)
{
    return days_from_civil(year, month, day) * 86400 + (int64_t)hour * 3600 + minute * 60 + second;
}

void reading_check_format_ts(int64_t ts, char out[READING_CHECK_TS_TEXT])
{
    int64_t days = ts >= 0 ? ts / 86400 : -((-ts + 86399) / 86400);
    int64_t secs = ts - days * 86400;
    /* Inverse of days_from_civil. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    long long y = (long long)(yoe + era * 400 + (m <= 2));

    /* The narrow types tell the compiler each part's width; timestamps come
     * from reading_check_ts, so the year always has four digits. */
    snprintf(out, READING_CHECK_TS_TEXT, "%04u-%02u-%02u %02u:%02u:%02u+00", (unsigned)(y % 10000),
             (unsigned char)m, (unsigned char)d, (unsigned char)(secs / 3600),
             (unsigned char)(secs % 3600 / 60), (unsigned char)(secs % 60));
}

static const char *const month_names[12] = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December",
};

int reading_check_ts(const char *text, size_t len, int64_t *out, char *err, size_t errlen)
{
    static const char *const shape =
        "is not a timestamp (expected YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM|-HH:MM])";
    int year, month, day, hour, minute, second = 0;
    int frac_nonzero = 0;
    int offset_min = 0;
    size_t pos;

    year = digits(text, len, 0, 4);
    month = digits(text, len, 5, 2);
    day = digits(text, len, 8, 2);
    hour = digits(text, len, 11, 2);
    minute = digits(text, len, 14, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || text[4] != '-' ||
        text[7] != '-' || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
        text[13] != ':')
        return enms_fail(err, errlen, ENMS_EINVAL, "%s", shape);
    pos = 16;
    if (pos < len && text[pos] == ':') {
        second = digits(text, len, pos + 1, 2);
        if (second < 0)
            return enms_fail(err, errlen, ENMS_EINVAL, "%s", shape);
        pos += 3;
        /* Exporters often write ".000"; a fraction is fine when it is zero. */
        if (pos < len && text[pos] == '.') {
            size_t first = ++pos;
            while (pos < len && text[pos] >= '0' && text[pos] <= '9') {
                frac_nonzero |= text[pos] != '0';
                pos++;
            }
            if (pos == first)
                return enms_fail(err, errlen, ENMS_EINVAL, "%s", shape);
        }
    }
    if (pos < len) {
        char z = text[pos];
        if ((z == 'Z' || z == 'z') && pos + 1 == len) {
            offset_min = 0;
        } else if (z == '+' || z == '-') {
            /* ±HH:MM as the format asks, and also ±HHMM and ±HH, which ISO
             * 8601 allows and some exporters write. */
            int oh = digits(text, len, pos + 1, 2);
            int om = 0;
            size_t rest = len - pos;
            if (oh >= 0 && rest == 6 && text[pos + 3] == ':')
                om = digits(text, len, pos + 4, 2);
            else if (oh >= 0 && rest == 5)
                om = digits(text, len, pos + 3, 2);
            else if (!(oh >= 0 && rest == 3))
                return enms_fail(err, errlen, ENMS_EINVAL, "%s", shape);
            if (om < 0)
                return enms_fail(err, errlen, ENMS_EINVAL, "%s", shape);
            if (oh > 18 || om > 59 || oh * 60 + om > 18 * 60)
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "has a UTC offset beyond 18 hours or with minutes above 59");
            offset_min = (oh * 60 + om) * (z == '-' ? -1 : 1);
        } else {
            return enms_fail(err, errlen, ENMS_EINVAL, "%s", shape);
        }
    }

    if (year < READING_CHECK_MIN_YEAR || year > READING_CHECK_MAX_YEAR)
        return enms_fail(err, errlen, ENMS_EINVAL, "year %d is outside %d-%d", year,
                         READING_CHECK_MIN_YEAR, READING_CHECK_MAX_YEAR);
    if (month < 1 || month > 12)
        return enms_fail(err, errlen, ENMS_EINVAL, "month %02d does not exist", month);
    if (day < 1 || day > days_in_month(year, month))
        return enms_fail(err, errlen, ENMS_EINVAL, "day %02d does not exist in %s %d", day,
                         month_names[month - 1], year);
    if (hour > 23)
        return enms_fail(err, errlen, ENMS_EINVAL, "hour %02d is out of range (00-23)", hour);
    if (minute > 59)
        return enms_fail(err, errlen, ENMS_EINVAL, "minute %02d is out of range (00-59)", minute);
    if (second > 59)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "second %02d is out of range (00-59; leap seconds are not accepted)",
                         second);

    /* Hourly means the hour as written, in the site's own time: a plant in
     * UTC+05:30 writes 10:00+05:30, which is 04:30Z. The schema accepts any
     * quarter hour in UTC for that reason, and real offsets are whole
     * quarter hours. */
    if (minute != 0 || second != 0 || frac_nonzero)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "is not on the hour (readings are hourly: minutes and seconds must be 0)");
    if (offset_min % 15 != 0)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "has a UTC offset that is not a whole quarter hour");
    *out = reading_check_epoch(year, month, day, hour, 0, 0) - (int64_t)offset_min * 60;
    return ENMS_OK;
}

const char *reading_check_value(enum reading_value which, double v)
{
    /* NaN compares false with everything, so test finiteness first. */
    if (!isfinite(v))
        return "is not a finite number";
    switch (which) {
    case READING_ENERGY_KWH:
        if (v < 0.0)
            return "is negative";
        return v > READING_CHECK_MAX_ENERGY_KWH ? "is above 1e+09" : NULL;
    case READING_PRODUCTION_COUNT:
        if (v < 0.0)
            return "is negative";
        return v > READING_CHECK_MAX_PRODUCTION ? "is above 1e+12" : NULL;
    case READING_OUTDOOR_TEMP_C:
        if (v < READING_CHECK_MIN_TEMP_C)
            return "is below -90";
        return v > READING_CHECK_MAX_TEMP_C ? "is above 70" : NULL;
    }
    return "is not a known column";
}
