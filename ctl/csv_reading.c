/* csv_reading.c - splits and validates CSV lines of hourly readings (see
 * csv_reading.h). It owns the field syntax and the value rules; it does not
 * read files, track line numbers or detect duplicates across lines. */
#include "csv_reading.h"

#include "../common/error.h"
#include "../common/reading_check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest value quoted back in an error message; a 4 KiB field would drown
 * the line number the user is looking for. */
#define VALUE_SHOWN_MAX 40

static const char *const column_names[CSV_COL_COUNT] = {
    "machine_id", "ts", "energy_kwh", "production_count", "outdoor_temp_c",
};

/* A field after unquoting, NUL-terminated inside the caller's store. */
struct field {
    const char *text;
    size_t len;
};

/* Unquoted fields of one line. Unescaping never lengthens a field, and each
 * stored field adds one NUL, so this bound always suffices. */
struct fields {
    struct field f[CSV_COL_COUNT];
    int count; /* fields on the line; only the first CSV_COL_COUNT are stored */
    char store[CSV_READING_MAX_LINE + CSV_COL_COUNT + 1];
};

/* Copies value into out as a double-quoted, printable, bounded string, so a
 * message never carries control characters or a whole line of junk to the
 * terminal. Bytes outside printable ASCII become '?'. */
static void show_value(char *out, size_t outlen, const char *value, size_t len)
{
    size_t w = 0;
    size_t shown = len > VALUE_SHOWN_MAX ? VALUE_SHOWN_MAX : len;

    if (outlen < 8) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    out[w++] = '"';
    for (size_t i = 0; i < shown && w + 5 < outlen; i++) {
        unsigned char c = (unsigned char)value[i];
        out[w++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (shown < len && w + 5 < outlen) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w++] = '"';
    out[w] = '\0';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Drops a trailing LF, CRLF or CR: callers may hand over the line with or
 * without its end. */
static size_t strip_line_end(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    return len;
}

/* Names field i for messages: the column when the header is known. */
static void field_label(char *out, size_t outlen, const struct csv_header *hdr, int i)
{
    if (hdr && i < hdr->ncols)
        snprintf(out, outlen, "%s", column_names[hdr->col[i]]);
    else
        snprintf(out, outlen, "field %d", i + 1);
}

/* Splits line[0, len) (line end already removed) into fields. Spaces and tabs
 * around a field are dropped; a quoted field keeps its inner spaces. */
static int split_fields(const struct csv_header *hdr, const char *line, size_t len,
                        struct fields *out, char *err, size_t errlen)
{
    size_t pos = 0;
    size_t w = 0;
    char label[32];

    out->count = 0;
    if (memchr(line, '\0', len))
        return enms_fail(err, errlen, ENMS_EINVAL, "line contains a NUL byte");

    for (;;) {
        int i = out->count;
        int keep = i < CSV_COL_COUNT;
        size_t start = w;

        while (pos < len && is_space(line[pos]))
            pos++;
        if (pos < len && line[pos] == '"') {
            pos++;
            for (;;) {
                if (pos >= len) {
                    field_label(label, sizeof label, hdr, i);
                    return enms_fail(err, errlen, ENMS_EINVAL,
                                     "%s: unterminated quoted field (a field may not span lines)",
                                     label);
                }
                char c = line[pos];
                if (c == '"') {
                    if (pos + 1 < len && line[pos + 1] == '"') {
                        if (keep)
                            out->store[w++] = '"';
                        pos += 2;
                        continue;
                    }
                    pos++;
                    break;
                }
                if (c == '\r' || c == '\n') {
                    field_label(label, sizeof label, hdr, i);
                    return enms_fail(err, errlen, ENMS_EINVAL,
                                     "%s: line break inside a quoted field is not supported",
                                     label);
                }
                if (keep)
                    out->store[w++] = c;
                pos++;
            }
            while (pos < len && is_space(line[pos]))
                pos++;
            if (pos < len && line[pos] != ',') {
                field_label(label, sizeof label, hdr, i);
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "%s: unexpected text after the closing quote", label);
            }
        } else {
            while (pos < len && line[pos] != ',') {
                char c = line[pos];
                if (c == '"' || c == '\r' || c == '\n') {
                    field_label(label, sizeof label, hdr, i);
                    return enms_fail(err, errlen, ENMS_EINVAL,
                                     c == '"' ? "%s: quote inside an unquoted field (quote the "
                                                "whole field and double inner quotes)"
                                              : "%s: stray line break inside the line",
                                     label);
                }
                if (keep)
                    out->store[w++] = c;
                pos++;
            }
            if (keep)
                while (w > start && is_space(out->store[w - 1]))
                    w--;
        }
        if (keep) {
            out->f[i].text = out->store + start;
            out->f[i].len = w - start;
            out->store[w++] = '\0';
        }
        out->count++;
        if (pos < len && line[pos] == ',') {
            pos++;
            continue;
        }
        break;
    }
    return ENMS_OK;
}

int csv_reading_is_blank(const char *line, size_t len)
{
    len = strip_line_end(line, len);
    for (size_t i = 0; i < len; i++)
        if (!is_space(line[i]))
            return 0;
    return 1;
}

int csv_reading_parse_header(const char *line, size_t len, struct csv_header *out, char *err,
                             size_t errlen)
{
    struct fields fs;
    int seen_at[CSV_COL_COUNT];
    char shown[VALUE_SHOWN_MAX + 8];
    int rc;

    /* Spreadsheet programs on Windows start UTF-8 files with a byte order
     * mark; it is not part of the first column's name. */
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        len -= 3;
    }
    len = strip_line_end(line, len);
    if (len > CSV_READING_MAX_LINE)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "header: line longer than %d bytes",
                         CSV_READING_MAX_LINE);
    rc = split_fields(NULL, line, len, &fs, err, errlen);
    if (rc < 0)
        return rc;

    for (int c = 0; c < CSV_COL_COUNT; c++)
        seen_at[c] = -1;
    int stored = fs.count < CSV_COL_COUNT ? fs.count : CSV_COL_COUNT;
    for (int i = 0; i < stored; i++) {
        const struct field *f = &fs.f[i];
        int found = -1;
        if (f->len == 0)
            return enms_fail(err, errlen, ENMS_EINVAL, "header: column %d has no name", i + 1);
        for (int c = 0; c < CSV_COL_COUNT; c++) {
            if (strlen(column_names[c]) == f->len &&
                strncasecmp(column_names[c], f->text, f->len) == 0) {
                found = c;
                break;
            }
        }
        show_value(shown, sizeof shown, f->text, f->len);
        if (found < 0)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "header: unknown column %s (known: machine_id, ts, energy_kwh, "
                             "production_count, outdoor_temp_c)",
                             shown);
        if (seen_at[found] >= 0)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "header: column %s appears twice (columns %d and %d)", shown,
                             seen_at[found] + 1, i + 1);
        seen_at[found] = i;
        out->col[i] = (enum csv_column)found;
    }
    if (fs.count > CSV_COL_COUNT)
        return enms_fail(err, errlen, ENMS_EINVAL, "header: %d columns, at most %d are known",
                         fs.count, CSV_COL_COUNT);
    for (int c = CSV_COL_MACHINE_ID; c <= CSV_COL_ENERGY_KWH; c++)
        if (seen_at[c] < 0)
            return enms_fail(err, errlen, ENMS_EINVAL, "header: missing required column \"%s\"",
                             column_names[c]);
    out->ncols = fs.count;
    return ENMS_OK;
}

/* The value rules live in common/reading_check.c, shared with the API's
 * readings endpoint; these names stay for the CSV and gretl readers. */
int csv_reading_parse_uuid(const char *text, size_t len, char out[37], char *err, size_t errlen)
{
    return reading_check_uuid(text, len, out, err, errlen);
}

int64_t csv_reading_epoch(int year, int month, int day, int hour, int minute, int second)
{
    return reading_check_epoch(year, month, day, hour, minute, second);
}

void csv_reading_format_ts(int64_t ts, char out[CSV_READING_TS_TEXT])
{
    reading_check_format_ts(ts, out);
}

int csv_reading_parse_ts(const char *text, size_t len, int64_t *out, char *err, size_t errlen)
{
    return reading_check_ts(text, len, out, err, errlen);
}

/* Parses a plain decimal number that fills the whole field. Only digits,
 * sign, point and exponent are let through to strtod, which would otherwise
 * also accept "nan", "inf" and hex floats. Returns NULL or the reason. */
static const char *parse_number(const char *text, size_t len, double *out)
{
    int any_digit = 0;
    char *end = NULL;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9')
            any_digit = 1;
        else if (c != '.' && c != '+' && c != '-' && c != 'e' && c != 'E')
            return "is not a number";
    }
    if (!any_digit)
        return "is not a number";
    errno = 0;
    double v = strtod(text, &end);
    if (end != text + len)
        return "is not a number";
    /* Underflow to zero is harmless for energy data; overflow is not. */
    if (!isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return "is out of range";
    *out = v == 0.0 ? 0.0 : v; /* "-0" is stored as 0 */
    return NULL;
}

/* Validates one numeric field of column which into *out; fills err with
 * "column: "value" why". */
static int number_field(const char *column, const struct field *f, enum reading_value which,
                        double *out, char *err, size_t errlen)
{
    char shown[VALUE_SHOWN_MAX + 8];
    const char *why = parse_number(f->text, f->len, out);

    if (!why)
        why = reading_check_value(which, *out);
    if (!why)
        return ENMS_OK;
    show_value(shown, sizeof shown, f->text, f->len);
    return enms_fail(err, errlen, ENMS_EINVAL, "%s: %s %s", column, shown, why);
}

int csv_reading_parse_line(const struct csv_header *hdr, const char *line, size_t len,
                           struct csv_reading *out, char *err, size_t errlen)
{
    struct fields fs;
    char shown[VALUE_SHOWN_MAX + 8];
    char why[160];
    int rc;

    len = strip_line_end(line, len);
    if (len > CSV_READING_MAX_LINE)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "line longer than %d bytes",
                         CSV_READING_MAX_LINE);
    rc = split_fields(hdr, line, len, &fs, err, errlen);
    if (rc < 0)
        return rc;
    if (fs.count != hdr->ncols)
        return enms_fail(err, errlen, ENMS_EINVAL, "expected %d fields as in the header, found %d",
                         hdr->ncols, fs.count);

    out->has_production = 0;
    out->has_temp = 0;
    out->production_count = 0.0;
    out->outdoor_temp_c = 0.0;
    for (int i = 0; i < fs.count; i++) {
        const struct field *f = &fs.f[i];
        enum csv_column col = hdr->col[i];
        const char *name = column_names[col];

        if (f->len == 0) {
            if (col == CSV_COL_PRODUCTION_COUNT || col == CSV_COL_OUTDOOR_TEMP_C)
                continue; /* optional: empty is SQL NULL */
            return enms_fail(err, errlen, ENMS_EINVAL, "%s: is empty (required)", name);
        }
        show_value(shown, sizeof shown, f->text, f->len);
        switch (col) {
        case CSV_COL_MACHINE_ID:
            rc = csv_reading_parse_uuid(f->text, f->len, out->machine_id, why, sizeof why);
            break;
        case CSV_COL_TS:
            rc = csv_reading_parse_ts(f->text, f->len, &out->ts, why, sizeof why);
            break;
        case CSV_COL_ENERGY_KWH:
            rc = number_field(name, f, READING_ENERGY_KWH, &out->energy_kwh, err, errlen);
            if (rc < 0)
                return rc;
            continue;
        case CSV_COL_PRODUCTION_COUNT:
            rc = number_field(name, f, READING_PRODUCTION_COUNT, &out->production_count, err,
                              errlen);
            if (rc < 0)
                return rc;
            out->has_production = 1;
            continue;
        case CSV_COL_OUTDOOR_TEMP_C:
            rc = number_field(name, f, READING_OUTDOOR_TEMP_C, &out->outdoor_temp_c, err, errlen);
            if (rc < 0)
                return rc;
            out->has_temp = 1;
            continue;
        default:
            return enms_fail(err, errlen, ENMS_EINTERNAL, "column index %d out of range", col);
        }
        if (rc < 0)
            return enms_fail(err, errlen, ENMS_EINVAL, "%s: %s %s", name, shown, why);
    }
    return ENMS_OK;
}
