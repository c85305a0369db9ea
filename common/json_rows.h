/* json_rows.h - JSON text written straight from PostgreSQL result rows.
 *
 * A list endpoint that asks PostgreSQL for json_build_object() per row and
 * then parses and re-prints every row with cJSON spends most of its time
 * formatting numbers twice and allocating a node per field. PostgreSQL's text
 * output of a value is already what JSON needs for numbers, booleans and
 * json/jsonb, and close to it for timestamps, so a row can be written as a
 * JSON object by copying text: the same document json_build_object() would
 * have given, at a fraction of the cost. The result goes into a cJSON tree
 * as one raw item (cJSON_AddRawToObject). */
#ifndef ENMS_JSON_ROWS_H
#define ENMS_JSON_ROWS_H

#include <stddef.h>
#include <libpq-fe.h>

/* A growing text buffer. Zero-initialise it; free buf with free(). After
 * an allocation failure every append is ignored and failed is set, so a
 * caller checks once at the end. */
struct json_text {
    char *buf; /* NUL-terminated while len > 0 */
    size_t len;
    size_t cap;
    int failed;
};

/* Appends n bytes of s as they are. */
void json_text_raw(struct json_text *t, const char *s, size_t n);

/* Appends s (NUL-terminated, UTF-8) as a quoted JSON string with the
 * escapes RFC 8259 requires. */
void json_text_string(struct json_text *t, const char *s);

/* Appends the value at (row, col) of a text-format result as JSON, by the
 * column's type: NULL -> null; boolean -> true/false; integers, float and
 * numeric -> the number (a non-finite float as the string "NaN" /
 * "Infinity" / "-Infinity", as PostgreSQL's to_json writes it); json and
 * jsonb -> their text; timestamptz and timestamp -> an ISO 8601 string as
 * to_json writes it ("2026-11-28T09:00:00.5+00:00"); anything else (text,
 * uuid, date) -> a JSON string of its text. */
void json_text_pg_value(struct json_text *t, const PGresult *res, int row, int col);

/* Appends row `row` of res as a JSON object whose keys are the names of
 * columns 0..ncols-1 (the SELECT list's names or aliases) in that order. */
void json_text_pg_object(struct json_text *t, const PGresult *res, int row, int ncols);

/* Appends every row of res as a JSON array of such objects, in the
 * result's order, or last row first when last_first is set. The keys are
 * escaped once per call, not once per row. */
void json_text_pg_array(struct json_text *t, const PGresult *res, int ncols, int last_first);

#endif
