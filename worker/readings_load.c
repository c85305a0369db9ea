/* readings_load.c - cursor-based binary fetch of hourly readings (see
 * readings_load.h). */
#include "readings_load.h"
#include "../common/error.h"
#include "../common/pg.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per FETCH: big enough that a year (8,760 rows) is one round trip,
 * small enough to report progress on multi-year windows. */
#define FETCH_ROWS 10000
#define FETCH_SQL  "FETCH 10000 FROM readings_cursor" /* keep equal to FETCH_ROWS */

void readings_free(struct readings *r)
{
    free(r->ts);
    free(r->energy);
    free(r->production);
    free(r->temp_c);
    memset(r, 0, sizeof *r);
}

void readings_as_series(const struct readings *r, int utc_offset_s, struct series *s)
{
    memset(s, 0, sizeof *s);
    s->n = r->n;
    s->ts = r->ts;
    s->energy = r->energy;
    s->production = r->with_production ? r->production : NULL;
    s->temp_c = r->with_temp ? r->temp_c : NULL;
    s->utc_offset_s = utc_offset_s;
}

/* Binary int8 and float8 are big-endian on the wire. */
static uint64_t read_be64(const char *p)
{
    uint32_t hi, lo;
    memcpy(&hi, p, 4);
    memcpy(&lo, p + 4, 4);
    return ((uint64_t)ntohl(hi) << 32) | ntohl(lo);
}

static double read_float8(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return NAN;
    uint64_t bits = read_be64(PQgetvalue(res, row, col));
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static int grow(struct readings *r, size_t cap, char *err, size_t errlen)
{
    time_t *ts = realloc(r->ts, cap * sizeof *ts);
    if (ts)
        r->ts = ts;
    double *e = realloc(r->energy, cap * sizeof *e);
    if (e)
        r->energy = e;
    double *p = realloc(r->production, cap * sizeof *p);
    if (p)
        r->production = p;
    double *t = realloc(r->temp_c, cap * sizeof *t);
    if (t)
        r->temp_c = t;
    if (!ts || !e || !p || !t)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory loading readings");
    return ENMS_OK;
}

int readings_load(PGconn *conn, const char *machine_id, time_t from, time_t to, size_t max_rows,
                  const struct model_hooks *hooks, struct readings *out, char *err, size_t errlen)
{
    char from_text[24], to_text[24], stage[64];
    const char *params[] = {machine_id, from_text, to_text};
    PGresult *res = NULL;
    size_t expected = 0, cap = 0;
    int in_tx = 0, rc;

    memset(out, 0, sizeof *out);
    snprintf(from_text, sizeof from_text, "%lld", (long long)from);
    snprintf(to_text, sizeof to_text, "%lld", (long long)to);

    /* The count sizes the arrays and makes progress a real fraction. */
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT count(*) FROM energy_readings WHERE machine_id = $1::uuid "
                  "AND ts >= to_timestamp($2::bigint) AND ts < to_timestamp($3::bigint)",
                  3, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    expected = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    res = NULL;
    if (expected > max_rows) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG,
                       "training window holds %zu readings, more than the %zu allowed", expected,
                       max_rows);
        goto done;
    }
    cap = expected > 0 ? expected : 1;
    if ((rc = grow(out, cap, err, errlen)) != ENMS_OK)
        goto done;

    if ((rc = pg_command(conn, "BEGIN READ ONLY", err, errlen)) != ENMS_OK)
        goto done;
    in_tx = 1;
    res = pg_exec(conn, PGRES_COMMAND_OK,
                  "DECLARE readings_cursor NO SCROLL CURSOR FOR "
                  "SELECT EXTRACT(EPOCH FROM ts)::int8, energy_kwh, production_count, "
                  "outdoor_temp_c FROM energy_readings WHERE machine_id = $1::uuid "
                  "AND ts >= to_timestamp($2::bigint) AND ts < to_timestamp($3::bigint) "
                  "ORDER BY ts",
                  3, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(res);
    res = NULL;

    for (;;) {
        if (model_should_stop(hooks)) {
            rc = ENMS_ESTOPPED;
            goto done;
        }
        res = PQexecParams(conn, FETCH_SQL, 0, NULL, NULL, NULL, NULL, 1);
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: fetching readings: %s",
                           res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
            goto done;
        }
        int rows = PQntuples(res);
        if (rows == 0)
            break;
        if (out->n + (size_t)rows > cap) {
            /* Rows arrived since the count: grow, within the bound. */
            size_t want = out->n + (size_t)rows;
            if (want > max_rows) {
                rc = enms_fail(err, errlen, ENMS_ETOOBIG, "more than %zu readings", max_rows);
                goto done;
            }
            cap = want;
            if ((rc = grow(out, cap, err, errlen)) != ENMS_OK)
                goto done;
        }
        for (int i = 0; i < rows; i++) {
            size_t k = out->n++;
            out->ts[k] = (time_t)(int64_t)read_be64(PQgetvalue(res, i, 0));
            out->energy[k] = read_float8(res, i, 1);
            out->production[k] = read_float8(res, i, 2);
            out->temp_c[k] = read_float8(res, i, 3);
            out->with_production += !isnan(out->production[k]);
            out->with_temp += !isnan(out->temp_c[k]);
        }
        PQclear(res);
        res = NULL;
        snprintf(stage, sizeof stage, "loading readings %zu/%zu", out->n, expected);
        model_report(hooks, expected ? (double)out->n / (double)expected : 1.0, stage);
        if (rows < FETCH_ROWS)
            break;
    }
    rc = ENMS_OK;
done:
    if (res)
        PQclear(res);
    if (in_tx) {
        char ignored[128];
        pg_command(conn, "COMMIT", ignored, sizeof ignored);
    }
    if (rc != ENMS_OK)
        readings_free(out);
    return rc;
}
