/* test_json_rows.c - JSON written from PostgreSQL result rows
 * (common/json_rows.c) against PostgreSQL's own to_json: for rows of every
 * type the writer knows, our text must parse and be the same document as
 * json_build_object() makes of the same values. Needs the harness's
 * PostgreSQL (ENMS_PG_DSN). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/json_rows.h"
#include "../../common/pg.h"

#include <cJSON.h>

static PGconn *connect_test_pg(const char *timezone)
{
    const char *dsn = getenv("ENMS_PG_DSN");
    cr_assert(dsn, "ENMS_PG_DSN unset: run through tests/run.sh");
    char err[256];
    PGconn *conn = pg_connect(dsn, 5000, "test_json_rows", err, sizeof err);
    cr_assert(conn, "%s", err);
    char set[64];
    snprintf(set, sizeof set, "SET TimeZone = '%s'", timezone);
    cr_assert_eq(pg_command(conn, set, err, sizeof err), 0, "%s", err);
    return conn;
}

/* The values of one row: SQL expressions with the column names the object
 * gets. Awkward cases on purpose: escapes and control characters, non-ASCII
 * text, non-finite floats, whole-hour and half-hour zone offsets, NULLs. */
#define VALUES                                                                                     \
    "'a\"b\\c' || chr(10) || chr(9) || chr(1) || '/é✓' AS text_col, "                           \
    "gen_random_uuid() AS uuid_col, true AS t, false AS f, 42::int2 AS i2, "                       \
    "-7::int4 AS i4, 9007199254740993::int8 AS i8, 0.1::float8 + 0.2 AS f8, "                      \
    "1.5::float4 AS f4, 1e300::float8 AS big, 'NaN'::float8 AS nan, "                              \
    "'Infinity'::float8 AS inf, '-Infinity'::float8 AS ninf, 12.500::numeric AS num, "             \
    "'{\"k\": [1, 2.5, null, \"x\"]}'::jsonb AS jb, '[1,{\"a\":true}]'::json AS js, "              \
    "'2026-11-28 09:00:00.25+00'::timestamptz AS ts, "                                             \
    "'2026-01-31 23:59:59'::timestamptz AS ts2, "                                                  \
    "'2026-06-01 12:00:00'::timestamp AS ts_plain, 'infinity'::timestamptz AS ts_inf, "            \
    "'2026-11-28'::date AS d, NULL::float8 AS null_f, NULL::text AS null_t"

static void check_against_to_json(const char *timezone)
{
    PGconn *conn = connect_test_pg(timezone);
    char err[256];
    PGresult *ours = pg_exec(conn, PGRES_TUPLES_OK, "SELECT " VALUES, 0, NULL, err, sizeof err);
    cr_assert(ours, "%s", err);
    /* The same row through PostgreSQL's JSON: row_to_json keeps the names. */
    const char *params[1];
    struct json_text t = {0};
    json_text_pg_object(&t, ours, 0, PQnfields(ours));
    cr_assert(!t.failed);
    params[0] = PQgetvalue(ours, 0, 1); /* the same uuid */
    PGresult *ref =
        pg_exec(conn, PGRES_TUPLES_OK, "SELECT row_to_json(r)::text FROM (SELECT " VALUES ") r", 0,
                NULL, err, sizeof err);
    cr_assert(ref, "%s", err);
    cJSON *mine = cJSON_Parse(t.buf);
    cJSON *theirs = cJSON_Parse(PQgetvalue(ref, 0, 0));
    cr_assert(mine, "ours is not JSON: %s", t.buf);
    cr_assert(theirs);
    /* The uuid differs per statement; compare it against its own row. */
    cJSON_ReplaceItemInObject(theirs, "uuid_col", cJSON_CreateString(params[0]));
    char *a = cJSON_PrintUnformatted(mine), *b = cJSON_PrintUnformatted(theirs);
    cr_expect(cJSON_Compare(mine, theirs, 1), "TimeZone %s:\nours:    %s\nto_json: %s", timezone, a,
              b);
    free(a);
    free(b);
    cJSON_Delete(mine);
    cJSON_Delete(theirs);
    free(t.buf);
    PQclear(ours);
    PQclear(ref);
    PQfinish(conn);
}

Test(json_rows, same_document_as_postgresql_to_json_in_utc)
{
    check_against_to_json("UTC");
}

Test(json_rows, same_document_as_postgresql_to_json_off_the_hour)
{
    check_against_to_json("Asia/Kolkata"); /* +05:30 */
}

Test(json_rows, same_document_as_postgresql_to_json_west_of_utc)
{
    check_against_to_json("America/St_Johns"); /* -03:30 / -02:30 */
}

Test(json_rows, strings_are_escaped_exactly)
{
    struct json_text t = {0};
    json_text_string(&t, "q\"b\\s\x1f\n\t\b\f\r/é");
    cr_assert(!t.failed);
    cr_assert_str_eq(t.buf, "\"q\\\"b\\\\s\\u001f\\n\\t\\b\\f\\r/é\"");
    json_text_raw(&t, ",", 1);
    json_text_string(&t, "");
    cr_assert_str_eq(t.buf, "\"q\\\"b\\\\s\\u001f\\n\\t\\b\\f\\r/é\",\"\"");
    free(t.buf);
}

Test(json_rows, grows_past_its_first_block)
{
    struct json_text t = {0};
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk - 1);
    chunk[sizeof chunk - 1] = '\0';
    for (int i = 0; i < 50; i++)
        json_text_string(&t, chunk);
    cr_assert(!t.failed);
    cr_assert_eq(t.len, 50 * (sizeof chunk + 1));
    cr_assert_eq(strlen(t.buf), t.len);
    free(t.buf);
}

/* Several rows as an array, in the result's order and last row first:
 * PostgreSQL's json_agg of the same rows in each order, the first ncols
 * columns only (the trend's extra columns are left out). */
Test(json_rows, array_of_rows_in_either_order_as_json_agg_writes_it)
{
    PGconn *conn = connect_test_pg("UTC");
    char err[256];
    static const char *const rows_sql =
        "SELECT g AS n, 'row \"' || g || '\"' AS label, g * 0.25::float8 AS x, "
        "'2026-01-01'::timestamptz + make_interval(hours => g) AS at, g * 100 AS extra "
        "FROM generate_series(1, 5) g ORDER BY g";
    PGresult *ours = pg_exec(conn, PGRES_TUPLES_OK, rows_sql, 0, NULL, err, sizeof err);
    cr_assert(ours, "%s", err);
    for (int last_first = 0; last_first <= 1; last_first++) {
        struct json_text t = {0};
        json_text_pg_array(&t, ours, 4, last_first);
        cr_assert(!t.failed);
        char ref_sql[512];
        snprintf(ref_sql, sizeof ref_sql,
                 "SELECT json_agg(json_build_object('n', n, 'label', label, 'x', x, 'at', at) "
                 "ORDER BY n %s)::text FROM (%s) r",
                 last_first ? "DESC" : "ASC", rows_sql);
        PGresult *ref = pg_exec(conn, PGRES_TUPLES_OK, ref_sql, 0, NULL, err, sizeof err);
        cr_assert(ref, "%s", err);
        cJSON *mine = cJSON_Parse(t.buf), *theirs = cJSON_Parse(PQgetvalue(ref, 0, 0));
        cr_assert(mine, "ours is not JSON: %s", t.buf);
        cr_expect(cJSON_Compare(mine, theirs, 1), "last_first %d:\nours:    %s\njson_agg: %s",
                  last_first, t.buf, PQgetvalue(ref, 0, 0));
        cJSON_Delete(mine);
        cJSON_Delete(theirs);
        PQclear(ref);
        free(t.buf);
    }
    /* No rows: an empty array. */
    PGresult *none =
        pg_exec(conn, PGRES_TUPLES_OK, "SELECT 1 AS a WHERE false", 0, NULL, err, sizeof err);
    cr_assert(none, "%s", err);
    struct json_text t = {0};
    json_text_pg_array(&t, none, 1, 1);
    cr_assert_str_eq(t.buf, "[]");
    free(t.buf);
    PQclear(none);
    PQclear(ours);
    PQfinish(conn);
}
