/* csv_reading.h - parsing and validation of one CSV line of hourly readings.
 *
 * Pure functions over (buffer, length): no I/O, no allocation, no global
 * state, so they are unit-tested and fuzzed alone. Reading the file, finding
 * duplicates across lines and talking to PostgreSQL belong to import.c.
 *
 * The format (docs/import.md): a header naming the columns, then one reading
 * per line. Required columns machine_id, ts, energy_kwh; optional
 * production_count, outdoor_temp_c; any order. Fields are separated by commas
 * and may be quoted RFC 4180 style ("" is a quote), but a field may not span
 * lines. Lines end in LF or CRLF; the first line may start with a UTF-8 BOM. */
#ifndef ENMS_CSV_READING_H
#define ENMS_CSV_READING_H

#include <stddef.h>
#include <stdint.h>

#include "../common/reading_check.h"

/* Longest line accepted, in bytes, not counting the line end. Real lines are
 * under 120 bytes; the bound keeps a corrupt file from being read as one
 * enormous line. */
#define CSV_READING_MAX_LINE 4096

/* The value rules are common/reading_check.h's (shared with the API's
 * readings endpoint); these names are kept for the CSV and gretl readers. */
#define CSV_READING_MIN_YEAR       READING_CHECK_MIN_YEAR
#define CSV_READING_MAX_YEAR       READING_CHECK_MAX_YEAR
#define CSV_READING_MAX_ENERGY_KWH READING_CHECK_MAX_ENERGY_KWH
#define CSV_READING_MAX_PRODUCTION READING_CHECK_MAX_PRODUCTION
#define CSV_READING_MIN_TEMP_C     READING_CHECK_MIN_TEMP_C
#define CSV_READING_MAX_TEMP_C     READING_CHECK_MAX_TEMP_C
#define CSV_READING_TS_TEXT        READING_CHECK_TS_TEXT

enum csv_column {
    CSV_COL_MACHINE_ID = 0,
    CSV_COL_TS,
    CSV_COL_ENERGY_KWH,
    CSV_COL_PRODUCTION_COUNT,
    CSV_COL_OUTDOOR_TEMP_C,
    CSV_COL_COUNT
};

/* Which column sits at each position of a line, as named by the header. */
struct csv_header {
    int ncols;                          /* 3 to CSV_COL_COUNT */
    enum csv_column col[CSV_COL_COUNT]; /* col[i]: meaning of field i */
};

/* One validated reading. */
struct csv_reading {
    char machine_id[37]; /* canonical lower-case UUID */
    int64_t ts;          /* seconds since 1970-01-01 UTC; a whole local hour */
    double energy_kwh;   /* energy used in the hour starting at ts */
    double production_count;
    double outdoor_temp_c;
    int has_production; /* 0: column absent or field empty (SQL NULL) */
    int has_temp;
};

/* Parses the header line (line end and a leading UTF-8 BOM allowed). Column
 * names are matched without regard to case and surrounding spaces. Returns 0,
 * or ENMS_EINVAL with a sentence in err naming an unknown, duplicate or
 * missing column. */
int csv_reading_parse_header(const char *line, size_t len, struct csv_header *out, char *err,
                             size_t errlen);

/* Parses and validates one data line against hdr. Returns 0 with *out filled,
 * ENMS_EINVAL with "column: "value" reason" in err for a bad field, or
 * ENMS_ETOOBIG for a line longer than CSV_READING_MAX_LINE. *out is
 * unspecified on error. Blank lines are the caller's to skip (see below). */
int csv_reading_parse_line(const struct csv_header *hdr, const char *line, size_t len,
                           struct csv_reading *out, char *err, size_t errlen);

/* 1 when the line holds nothing but spaces, tabs and a line end. */
int csv_reading_is_blank(const char *line, size_t len);

/* Validates a canonical UUID (36 characters, dashes at 8, 13, 18, 23, hex
 * elsewhere, any case) and writes it in lower case to out[37]. 0 or
 * ENMS_EINVAL (err says why, without a column prefix). */
int csv_reading_parse_uuid(const char *text, size_t len, char out[37], char *err, size_t errlen);

/* Parses an ISO 8601 timestamp YYYY-MM-DD[T| ]HH:MM[:SS][Z|±HH:MM] (no
 * offset means UTC) into seconds since the epoch, UTC. Minutes and seconds
 * as written must be 0 and the offset a whole quarter hour, so the result is
 * a multiple of 900 s (of 3600 s for offsets in whole hours). 0 or
 * ENMS_EINVAL (err says why). */
int csv_reading_parse_ts(const char *text, size_t len, int64_t *out, char *err, size_t errlen);

/* Seconds since 1970-01-01T00:00:00Z of a proleptic Gregorian date and time.
 * The caller validates the ranges. */
int64_t csv_reading_epoch(int year, int month, int day, int hour, int minute, int second);

/* Writes ts as "YYYY-MM-DD HH:MM:SS+00", which PostgreSQL reads as
 * timestamptz whatever the session time zone. */
void csv_reading_format_ts(int64_t ts, char out[CSV_READING_TS_TEXT]);

#endif
