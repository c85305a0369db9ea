/* readings_window.c - loading a machine's readings for a window (see
 * readings_window.h): one query for the hours, one for the labelled
 * anomalies when asked, then series_daily() for the local days. */
#include "readings_window.h"
#include "error.h"
#include "pg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_S 3600

void readings_window_series(const struct readings_window *w, int utc_offset_s, struct series *s)
{
    memset(s, 0, sizeof *s);
    s->n = w->n;
    s->ts = w->ts;
    s->energy = w->energy;
    s->production = w->has_production ? w->production : NULL;
    s->temp_c = w->has_temp ? w->temp : NULL;
    s->skip = w->skip;
    s->utc_offset_s = utc_offset_s;
}

void readings_window_free(struct readings_window *w)
{
    free(w->ts);
    free(w->energy);
    free(w->production);
    free(w->temp);
    free(w->skip);
    series_days_free(&w->days);
    memset(w, 0, sizeof *w);
}

static double num_or_nan(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

int readings_window_load(PGconn *conn, const char *machine_id, time_t from, time_t to,
                         int utc_offset_s, int skip_labels, struct readings_window *w, char *err,
                         size_t errlen)
{
    char a[24], b[24];
    const char *params[] = {machine_id, a, b};
    PGresult *res = NULL;
    int rc = ENMS_OK;
    memset(w, 0, sizeof *w);
    snprintf(a, sizeof a, "%lld", (long long)from);
    snprintf(b, sizeof b, "%lld", (long long)to);
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT extract(epoch FROM date_trunc('hour', ts))::bigint, sum(energy_kwh), "
                  "sum(production_count), avg(outdoor_temp_c) FROM energy_readings "
                  "WHERE machine_id = $1::uuid AND ts >= to_timestamp($2::bigint) "
                  "AND ts < to_timestamp($3::bigint) GROUP BY 1 ORDER BY 1",
                  3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    size_t n = (size_t)PQntuples(res);
    size_t cap = n ? n : 1;
    w->ts = malloc(cap * sizeof *w->ts);
    w->energy = malloc(cap * sizeof *w->energy);
    w->production = malloc(cap * sizeof *w->production);
    w->temp = malloc(cap * sizeof *w->temp);
    w->skip = calloc(cap, 1);
    if (!w->ts || !w->energy || !w->production || !w->temp || !w->skip) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory loading readings");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        w->ts[i] = (time_t)strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        w->energy[i] = num_or_nan(res, (int)i, 1);
        w->production[i] = num_or_nan(res, (int)i, 2);
        w->temp[i] = num_or_nan(res, (int)i, 3);
        w->has_production |= isfinite(w->production[i]);
        w->has_temp |= isfinite(w->temp[i]);
    }
    w->n = n;
    PQclear(res);
    res = NULL;
    if (!skip_labels)
        goto aggregate;
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT extract(epoch FROM ts_start)::bigint, extract(epoch FROM ts_end)::bigint "
                  "FROM anomaly_labels WHERE machine_id = $1::uuid AND is_anomaly "
                  "AND source IN ('injected', 'user') AND ts_end > to_timestamp($2::bigint) "
                  "AND ts_start < to_timestamp($3::bigint)",
                  3, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        time_t s = (time_t)strtoll(PQgetvalue(res, r, 0), NULL, 10);
        time_t e = (time_t)strtoll(PQgetvalue(res, r, 1), NULL, 10);
        for (size_t i = 0; i < n; i++)
            if (w->ts[i] + HOUR_S > s && w->ts[i] < e)
                w->skip[i] = 1;
    }
aggregate:;
    struct series s;
    readings_window_series(w, utc_offset_s, &s);
    if (n > 0)
        rc = series_daily(&s, &w->days, err, errlen);
done:
    PQclear(res);
    if (rc != ENMS_OK)
        readings_window_free(w);
    return rc;
}
