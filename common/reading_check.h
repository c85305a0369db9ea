/* reading_check.h - the rules one hourly energy reading must meet, shared by
 * every way readings come in (enmsctl import's CSV in ctl/csv_reading.c, and
 * POST /api/v1/readings in api/routes_readings.c), so both refuse the same
 * values with the same words.
 *
 * Pure functions over (buffer, length) or plain numbers: no I/O, no
 * allocation, no global state. They do not know about CSV fields or JSON
 * members; callers put the field name in front of the reason. */
#ifndef ENMS_READING_CHECK_H
#define ENMS_READING_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Timestamps outside [1900, 2200) are treated as typos. */
#define READING_CHECK_MIN_YEAR 1900
#define READING_CHECK_MAX_YEAR 2199

/* Bounds on values: a single machine never uses a terawatt-hour in an hour,
 * and no outdoor temperature on Earth lies outside [-90, 70] °C. */
#define READING_CHECK_MAX_ENERGY_KWH 1e9
#define READING_CHECK_MAX_PRODUCTION 1e12
#define READING_CHECK_MIN_TEMP_C     -90.0
#define READING_CHECK_MAX_TEMP_C     70.0

/* Room for "YYYY-MM-DD HH:MM:SS+00" and its NUL, with slack for the
 * compiler's worst-case view of the year. */
#define READING_CHECK_TS_TEXT 32

/* The value columns of a reading, for reading_check_value. */
enum reading_value {
    READING_ENERGY_KWH,       /* required; [0, 1e9] */
    READING_PRODUCTION_COUNT, /* optional; [0, 1e12] */
    READING_OUTDOOR_TEMP_C,   /* optional; [-90, 70] */
};

/* Validates a canonical UUID (36 characters, dashes at 8, 13, 18, 23, hex
 * elsewhere, any case) and writes it in lower case to out[37]. 0 or
 * ENMS_EINVAL (err says why, without a field name). */
int reading_check_uuid(const char *text, size_t len, char out[37], char *err, size_t errlen);

/* Parses an ISO 8601 timestamp YYYY-MM-DD[T| ]HH:MM[:SS[.000]][Z|±HH:MM|±HHMM|±HH]
 * (no offset means UTC) into seconds since the epoch, UTC. Readings are
 * hourly in the site's own time: minutes and seconds as written must be 0,
 * and the offset a whole quarter hour, so the result is a multiple of 900 s.
 * Real calendar dates only, years 1900-2199. 0 or ENMS_EINVAL (err says why,
 * without a field name). */
int reading_check_ts(const char *text, size_t len, int64_t *out, char *err, size_t errlen);

/* Checks a value already read as a number against its column's range. Returns
 * NULL when it is acceptable, else a static reason such as "is negative",
 * "is above 1e+09" or "is not a finite number" (NaN, ±Infinity). */
const char *reading_check_value(enum reading_value which, double v);

/* Seconds since 1970-01-01T00:00:00Z of a proleptic Gregorian date and time.
 * The caller validates the ranges. */
int64_t reading_check_epoch(int year, int month, int day, int hour, int minute, int second);

/* Writes ts as "YYYY-MM-DD HH:MM:SS+00", which PostgreSQL reads as
 * timestamptz whatever the session time zone. ts must come from
 * reading_check_ts (a four-digit year). */
void reading_check_format_ts(int64_t ts, char out[READING_CHECK_TS_TEXT]);

#endif
