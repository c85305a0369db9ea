/* test_csv_reading.c - unit tests of the CSV reading parser (ctl/csv_reading.c):
 * header mapping, every field rule with its message, calendar edge cases,
 * quoting, line ends and bounds. No files and no database. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../common/error.h"
#include "../../ctl/csv_reading.h"

#define UUID_A "123e4567-e89b-12d3-a456-426614174000"

static struct csv_header header_of(const char *text)
{
    struct csv_header h;
    char err[256] = "";
    int rc = csv_reading_parse_header(text, strlen(text), &h, err, sizeof err);
    cr_assert_eq(rc, 0, "header \"%s\" rejected: %s", text, err);
    return h;
}

static const char *const FULL = "machine_id,ts,energy_kwh,production_count,outdoor_temp_c";
static const char *const MIN3 = "machine_id,ts,energy_kwh";

/* Parses line under header; returns rc and leaves the message in err. */
static int parse(const char *header, const char *line, struct csv_reading *r, char *err,
                 size_t errlen)
{
    struct csv_header h = header_of(header);
    err[0] = '\0';
    return csv_reading_parse_line(&h, line, strlen(line), r, err, errlen);
}

static void expect_ok(const char *header, const char *line, struct csv_reading *r)
{
    char err[256];
    int rc = parse(header, line, r, err, sizeof err);
    cr_assert_eq(rc, 0, "line \"%s\" rejected: %s", line, err);
}

/* The line must fail and the message must contain each of the fragments. */
static void expect_bad(const char *header, const char *line, const char *frag1, const char *frag2)
{
    struct csv_reading r;
    char err[256];
    int rc = parse(header, line, &r, err, sizeof err);
    cr_assert_lt(rc, 0, "line \"%s\" accepted", line);
    cr_assert(strstr(err, frag1), "message \"%s\" lacks \"%s\"", err, frag1);
    if (frag2)
        cr_assert(strstr(err, frag2), "message \"%s\" lacks \"%s\"", err, frag2);
}

static int64_t ts_of(const char *text)
{
    int64_t ts = -1;
    char err[256] = "";
    int rc = csv_reading_parse_ts(text, strlen(text), &ts, err, sizeof err);
    cr_assert_eq(rc, 0, "ts \"%s\" rejected: %s", text, err);
    return ts;
}

static void ts_bad(const char *text, const char *frag)
{
    int64_t ts;
    char err[256] = "";
    int rc = csv_reading_parse_ts(text, strlen(text), &ts, err, sizeof err);
    cr_assert_eq(rc, ENMS_EINVAL, "ts \"%s\" accepted", text);
    cr_assert(strstr(err, frag), "message \"%s\" lacks \"%s\"", err, frag);
}

/* ---- header ---- */

Test(header, maps_columns_in_any_order)
{
    struct csv_header h = header_of("energy_kwh,outdoor_temp_c,ts,machine_id");
    cr_assert_eq(h.ncols, 4);
    cr_assert_eq(h.col[0], CSV_COL_ENERGY_KWH);
    cr_assert_eq(h.col[1], CSV_COL_OUTDOOR_TEMP_C);
    cr_assert_eq(h.col[2], CSV_COL_TS);
    cr_assert_eq(h.col[3], CSV_COL_MACHINE_ID);
}

Test(header, accepts_bom_crlf_case_spaces_and_quotes)
{
    struct csv_header h = header_of("\xEF\xBB\xBF Machine_ID , \"TS\",energy_kwh\r\n");
    cr_assert_eq(h.ncols, 3);
    cr_assert_eq(h.col[0], CSV_COL_MACHINE_ID);
    cr_assert_eq(h.col[1], CSV_COL_TS);
}

static void header_bad(const char *text, const char *frag)
{
    struct csv_header h;
    char err[256] = "";
    int rc = csv_reading_parse_header(text, strlen(text), &h, err, sizeof err);
    cr_assert_lt(rc, 0, "header \"%s\" accepted", text);
    cr_assert(strstr(err, frag), "message \"%s\" lacks \"%s\"", err, frag);
}

Test(header, rejects_unknown_duplicate_missing_and_too_many)
{
    header_bad("machine_id,ts,energy_kwh,humidity", "unknown column \"humidity\"");
    header_bad("machine_id,ts,energy_kwh,ts", "column \"ts\" appears twice (columns 2 and 4)");
    header_bad("machine_id,ts", "missing required column \"energy_kwh\"");
    header_bad("ts,energy_kwh", "missing required column \"machine_id\"");
    header_bad("machine_id,,ts,energy_kwh", "column 2 has no name");
    header_bad("machine_id,ts,energy_kwh,production_count,outdoor_temp_c,machine_id",
               "6 columns, at most 5");
    header_bad("", "column 1 has no name");
}

/* ---- good rows ---- */

Test(line, full_row)
{
    struct csv_reading r;
    expect_ok(FULL, UUID_A ",2024-03-01T05:00:00Z,12.5,300,-4.25", &r);
    cr_assert_str_eq(r.machine_id, UUID_A);
    cr_assert_eq(r.ts, 1709269200);
    cr_assert_float_eq(r.energy_kwh, 12.5, 1e-12);
    cr_assert_eq(r.has_production, 1);
    cr_assert_float_eq(r.production_count, 300.0, 1e-12);
    cr_assert_eq(r.has_temp, 1);
    cr_assert_float_eq(r.outdoor_temp_c, -4.25, 1e-12);
}

Test(line, minimal_row_and_empty_optionals)
{
    struct csv_reading r;
    expect_ok(MIN3, UUID_A ",2024-03-01 05:00,0", &r);
    cr_assert_eq(r.has_production, 0);
    cr_assert_eq(r.has_temp, 0);
    cr_assert_float_eq(r.energy_kwh, 0.0, 0.0);

    expect_ok(FULL, UUID_A ",2024-03-01T05:00Z,1,,", &r);
    cr_assert_eq(r.has_production, 0);
    cr_assert_eq(r.has_temp, 0);
    expect_ok(FULL, UUID_A ",2024-03-01T05:00Z,1, , 20", &r);
    cr_assert_eq(r.has_production, 0);
    cr_assert_eq(r.has_temp, 1);
}

Test(line, uuid_upper_case_is_normalised)
{
    struct csv_reading r;
    expect_ok(MIN3, "123E4567-E89B-12D3-A456-42661417400F,2024-01-01T00:00Z,1", &r);
    cr_assert_str_eq(r.machine_id, "123e4567-e89b-12d3-a456-42661417400f");
}

Test(line, numbers_of_every_shape)
{
    struct csv_reading r;
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,1e3", &r);
    cr_assert_float_eq(r.energy_kwh, 1000.0, 0.0);
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,.5", &r);
    cr_assert_float_eq(r.energy_kwh, 0.5, 0.0);
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,+7.", &r);
    cr_assert_float_eq(r.energy_kwh, 7.0, 0.0);
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,-0", &r);
    cr_assert(!signbit(r.energy_kwh), "-0 is stored as +0");
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,1E-400", &r); /* underflow is 0 */
    expect_ok(FULL, UUID_A ",2024-01-01T00:00Z,1,2,-90", &r);
    expect_ok(FULL, UUID_A ",2024-01-01T00:00Z,1,2,70", &r);
}

Test(line, quoted_fields)
{
    struct csv_reading r;
    expect_ok(FULL, "\"" UUID_A "\",\"2024-01-01 00:00\", \"3.5\" ,\"\",\"1\"", &r);
    cr_assert_float_eq(r.energy_kwh, 3.5, 0.0);
    cr_assert_eq(r.has_production, 0);
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,\"1\"\"2\"", "energy_kwh",
               "\"1\"2\" is not a number");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,\"12", "energy_kwh", "unterminated quoted");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,\"1\"x", "energy_kwh", "after the closing quote");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,1\"2", "energy_kwh", "quote inside");
}

Test(line, crlf_and_lf_endings)
{
    struct csv_reading r;
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,4\r\n", &r);
    cr_assert_float_eq(r.energy_kwh, 4.0, 0.0);
    expect_ok(MIN3, UUID_A ",2024-01-01T00:00Z,4\n", &r);
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,4\r5", "energy_kwh", "line break");
    expect_bad(MIN3, UUID_A ",\"2024-01-01T00:00Z\r\",4", "ts", "line break inside a quoted");
}

Test(line, blank_lines)
{
    cr_assert(csv_reading_is_blank("", 0));
    cr_assert(csv_reading_is_blank(" \t\r\n", 4));
    cr_assert(!csv_reading_is_blank(",", 1));
}

/* ---- bad fields name their column and value ---- */

Test(line, bad_machine_id)
{
    expect_bad(MIN3, "not-a-uuid,2024-01-01T00:00Z,1", "machine_id: \"not-a-uuid\"", "not a UUID");
    expect_bad(MIN3, "123e4567-e89b-12d3-a456-42661417400g,2024-01-01T00:00Z,1", "machine_id",
               "not a UUID");
    expect_bad(MIN3, "123e4567e-89b-12d3-a456-426614174000,2024-01-01T00:00Z,1", "machine_id",
               "not a UUID");
    expect_bad(MIN3, ",2024-01-01T00:00Z,1", "machine_id: is empty", NULL);
}

Test(line, bad_ts)
{
    expect_bad(MIN3, UUID_A ",yesterday,1", "ts: \"yesterday\"", "is not a timestamp");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:30Z,1", "ts: \"2024-01-01T00:30Z\"",
               "minutes and seconds must be 0");
    expect_bad(MIN3, UUID_A ",,1", "ts: is empty", NULL);
}

Test(line, bad_energy)
{
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,-3", "energy_kwh: \"-3\" is negative", NULL);
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,abc", "energy_kwh: \"abc\" is not a number", NULL);
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,nan", "energy_kwh: \"nan\" is not a number", NULL);
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,inf", "energy_kwh", "not a number");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,0x10", "energy_kwh", "not a number");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,1e", "energy_kwh", "not a number");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,1 2", "energy_kwh", "not a number");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,1e999", "energy_kwh", "out of range");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,2e9", "energy_kwh: \"2e9\" is above", NULL);
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,", "energy_kwh: is empty", NULL);
}

Test(line, bad_optionals)
{
    expect_bad(FULL, UUID_A ",2024-01-01T00:00Z,1,-1,", "production_count: \"-1\" is negative",
               NULL);
    expect_bad(FULL, UUID_A ",2024-01-01T00:00Z,1,x,", "production_count", "not a number");
    expect_bad(FULL, UUID_A ",2024-01-01T00:00Z,1,,-90.5", "outdoor_temp_c: \"-90.5\" is below",
               NULL);
    expect_bad(FULL, UUID_A ",2024-01-01T00:00Z,1,,71", "outdoor_temp_c: \"71\" is above", NULL);
    expect_bad(FULL, UUID_A ",2024-01-01T00:00Z,1,,NaN", "outdoor_temp_c", "not a number");
}

Test(line, wrong_field_count)
{
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z", "expected 3 fields", "found 2");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,1,", "expected 3 fields", "found 4");
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,1,2,3,4,5,6,7", "found 9", NULL);
}

Test(line, long_values_are_truncated_in_messages)
{
    char line[512];
    char value[300];
    memset(value, '7', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    value[0] = '-';
    snprintf(line, sizeof line, UUID_A ",2024-01-01T00:00Z,%s", value);
    struct csv_reading r;
    char err[256];
    cr_assert_lt(parse(MIN3, line, &r, err, sizeof err), 0);
    cr_assert(strstr(err, "...\""), "message \"%s\" not truncated", err);
    cr_assert_lt(strlen(err), 120);
}

Test(line, control_bytes_are_not_echoed)
{
    expect_bad(MIN3, UUID_A ",2024-01-01T00:00Z,\x1b[31m", "energy_kwh: \"?[31m\"", NULL);
}

Test(line, nul_byte_rejected)
{
    struct csv_header h = header_of(MIN3);
    static const char line[] = UUID_A ",2024-01-01T00:00Z,1\0"
                                      "2";
    struct csv_reading r;
    char err[256];
    cr_assert_lt(csv_reading_parse_line(&h, line, sizeof line - 1, &r, err, sizeof err), 0);
    cr_assert(strstr(err, "NUL"), "%s", err);
}

Test(line, overlong_line)
{
    static char line[CSV_READING_MAX_LINE + 100];
    struct csv_header h = header_of(MIN3);
    struct csv_reading r;
    char err[256];
    memset(line, ' ', sizeof line);
    memcpy(line, UUID_A ",2024-01-01T00:00Z,1", strlen(UUID_A ",2024-01-01T00:00Z,1"));
    cr_assert_eq(csv_reading_parse_line(&h, line, sizeof line, &r, err, sizeof err), ENMS_ETOOBIG);
    cr_assert(strstr(err, "longer than 4096"), "%s", err);
    /* Exactly the limit is fine (trailing spaces are trimmed). */
    cr_assert_eq(csv_reading_parse_line(&h, line, CSV_READING_MAX_LINE, &r, err, sizeof err), 0,
                 "%s", err);
}

/* ---- timestamps and the calendar ---- */

Test(ts, shapes)
{
    int64_t base = 1704067200; /* 2024-01-01T00:00:00Z */
    cr_assert_eq(ts_of("2024-01-01T00:00"), base);
    cr_assert_eq(ts_of("2024-01-01T00:00:00"), base);
    cr_assert_eq(ts_of("2024-01-01 00:00:00Z"), base);
    cr_assert_eq(ts_of("2024-01-01t00:00z"), base);
    cr_assert_eq(ts_of("2024-01-01T00:00:00.000Z"), base);
    cr_assert_eq(ts_of("1970-01-01T00:00Z"), 0);
    cr_assert_eq(ts_of("1900-01-01T00:00Z"), -2208988800LL);
}

Test(ts, offsets_convert_to_utc)
{
    cr_assert_eq(ts_of("2024-01-01T01:00+01:00"), 1704067200);
    cr_assert_eq(ts_of("2023-12-31T19:00-05:00"), 1704067200);
    /* Local hours in half-hour zones are whole hours as written. */
    cr_assert_eq(ts_of("2024-01-01T05:00+05:30"), 1704067200 - 1800);
    cr_assert_eq(ts_of("2024-01-01T05:00+0545"), 1704067200 - 2700);
    cr_assert_eq(ts_of("2024-01-01T03:00+03"), 1704067200);
    cr_assert_eq(ts_of("2024-03-01T00:00+01:00"), 1709247600); /* 2024-02-29T23:00Z */
    cr_assert_eq(ts_of("2024-01-01T00:00-00:00"), 1704067200);
    ts_bad("2024-01-01T05:30+05:30", "not on the hour");
    ts_bad("2024-01-01T05:00+05:10", "quarter hour");
    ts_bad("2024-01-01T00:00+19:00", "offset");
    ts_bad("2024-01-01T00:00+01:60", "offset");
    ts_bad("2024-01-01T00:00+1:00", "not a timestamp");
    ts_bad("2024-01-01T00:00Z+01:00", "not a timestamp");
}

Test(ts, calendar)
{
    cr_assert_eq(ts_of("2024-02-29T00:00Z"), 1709164800);
    cr_assert_eq(ts_of("2000-02-29T00:00Z"), 951782400);
    ts_bad("2023-02-29T00:00Z", "day 29 does not exist in February 2023");
    ts_bad("1900-02-29T00:00Z", "day 29 does not exist in February 1900");
    ts_bad("2024-02-30T00:00Z", "day 30 does not exist in February 2024");
    ts_bad("2024-04-31T00:00Z", "day 31 does not exist in April");
    ts_bad("2024-01-00T00:00Z", "day 00");
    ts_bad("2024-13-01T00:00Z", "month 13");
    ts_bad("2024-00-01T00:00Z", "month 00");
    ts_bad("2024-01-01T24:00Z", "hour 24");
    ts_bad("2024-01-01T00:60Z", "minute 60");
    ts_bad("2024-01-01T00:00:60Z", "second 60");
    ts_bad("1899-12-31T00:00Z", "year 1899");
    ts_bad("2200-01-01T00:00Z", "year 2200");
}

Test(ts, hourly_only)
{
    ts_bad("2024-01-01T00:15Z", "minutes and seconds must be 0");
    ts_bad("2024-01-01T00:00:01Z", "minutes and seconds must be 0");
    ts_bad("2024-01-01T00:00:00.5Z", "minutes and seconds must be 0");
}

Test(ts, malformed)
{
    ts_bad("2024-1-01T00:00Z", "not a timestamp");
    ts_bad("2024/01/01T00:00Z", "not a timestamp");
    ts_bad("2024-01-01", "not a timestamp");
    ts_bad("2024-01-01X00:00", "not a timestamp");
    ts_bad("2024-01-01T00:00:", "not a timestamp");
    ts_bad("2024-01-01T00:00:00.", "not a timestamp");
    ts_bad("2024-01-01T00:00 UTC", "not a timestamp");
    ts_bad("", "not a timestamp");
}

Test(ts, format_round_trips)
{
    char buf[CSV_READING_TS_TEXT];
    csv_reading_format_ts(1709164800, buf);
    cr_assert_str_eq(buf, "2024-02-29 00:00:00+00");
    csv_reading_format_ts(-2208988800LL, buf);
    cr_assert_str_eq(buf, "1900-01-01 00:00:00+00");
    csv_reading_format_ts(694220400, buf);
    cr_assert_str_eq(buf, "1991-12-31 23:00:00+00");
    /* Every hour of a leap year and its neighbours survives format + parse. */
    for (int64_t t = 1672531200; t < 1735689600; t += 3600) {
        csv_reading_format_ts(t, buf);
        cr_assert_eq(ts_of(buf), t, "%s", buf);
    }
}

Test(ts, epoch_matches_known_dates)
{
    cr_assert_eq(csv_reading_epoch(1992, 1, 1, 0, 0, 0), 694224000);
    cr_assert_eq(csv_reading_epoch(2038, 1, 19, 3, 14, 8), 2147483648LL);
}
