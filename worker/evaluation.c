/* evaluation.c - evaluate jobs (evaluation.h): the window of readings a
 * version has not seen, its errors on that window per model type (baseline:
 * Guideline 14 statistics on days; anomaly: rate and precision/recall/F1 on
 * labelled hours; forecast: rolling-origin forecasts of the stored model,
 * filtered forward over the new readings without refitting), the paired
 * samples of running A/B tests, and the recording through perf_record().
 *
 * The model mathematics stay in worker/models/; this file only feeds them,
 * except for the Kalman filter step that carries a stored ARIMA state over
 * new observations, which arima.h does not offer. */
#include "evaluation.h"
#include "readings_load.h"
#include "models/anomaly.h"
#include "models/arima.h"
#include "models/arima_filter.h"
#include "models/baseline.h"
#include "../common/error.h"
#include "../common/perf_record.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_S 3600
#define DAY_S  86400
/* Hours an ARIMA state may be carried forward: older versions are not
 * evaluated by filtering a year of readings. */
#define EVAL_MAX_FILTER_HOURS (400 * 24)
/* A/B tests read for one evaluation. */
#define EVAL_MAX_AB_TESTS 8

/* ---- versions, readings, labels ----------------------------------------- */

void eval_version_free(struct eval_version *v)
{
    cJSON_Delete(v->artifact);
    memset(v, 0, sizeof *v);
}

int eval_version_load(PGconn *pg, const char *machine_id, const char *model_type,
                      const char *version_id, struct eval_version *v, char *err, size_t errlen)
{
    const char *params[] = {machine_id, model_type, version_id};
    int rc = ENMS_OK;
    memset(v, 0, sizeof *v);
    /* The evaluated-until includes the row written at training (its
     * holdout): those hours are not new to the version either. */
    PGresult *res = pg_exec(
        pg, PGRES_TUPLES_OK,
        "SELECT v.id::text, v.version, v.artifact::text, "
        "extract(epoch FROM COALESCE(h.training_data_end, "
        "CASE WHEN v.artifact->'training_window'->>'end' ~ "
        "'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' "
        "THEN (v.artifact->'training_window'->>'end')::timestamptz END))::bigint, "
        "(SELECT extract(epoch FROM max(p.evaluation_end))::bigint "
        " FROM model_performance_metrics p WHERE p.model_id = v.id) "
        "FROM model_versions v LEFT JOIN model_training_history h ON h.id = v.training_job_id "
        "WHERE v.machine_id = $1::uuid AND v.model_type = $2 "
        "AND CASE WHEN $3::uuid IS NULL THEN v.is_active ELSE v.id = $3::uuid END",
        3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) != 1) {
        rc = version_id ? enms_fail(err, errlen, ENMS_ENOTFOUND,
                                    "model version %s of %s for machine %s not found", version_id,
                                    model_type, machine_id)
                        : enms_fail(err, errlen, ENMS_ENOTFOUND,
                                    "machine %s has no active %s model", machine_id, model_type);
        goto done;
    }
    snprintf(v->id, sizeof v->id, "%s", PQgetvalue(res, 0, 0));
    v->version = atoi(PQgetvalue(res, 0, 1));
    v->trained_until =
        PQgetisnull(res, 0, 3) ? 0 : (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    v->evaluated_until =
        PQgetisnull(res, 0, 4) ? 0 : (time_t)strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    if (!(v->artifact = cJSON_Parse(PQgetvalue(res, 0, 2))))
        rc = enms_fail(err, errlen, ENMS_EINVAL, "model version %s: artifact is not JSON", v->id);
done:
    PQclear(res);
    if (rc != ENMS_OK)
        eval_version_free(v);
    return rc;
}

int eval_readings_end(PGconn *pg, const char *machine_id, time_t *end, char *err, size_t errlen)
{
    const char *params[] = {machine_id};
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT extract(epoch FROM max(ts))::bigint FROM energy_readings "
                            "WHERE machine_id = $1::uuid",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    *end = 0;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        time_t last = (time_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *end = last - last % HOUR_S + HOUR_S;
    }
    PQclear(res);
    return ENMS_OK;
}

int eval_load_labels(PGconn *pg, const char *machine_id, const struct series *s,
                     unsigned char **labels, char *err, size_t errlen)
{
    char from[24], to[24];
    const char *params[] = {machine_id, from, to};
    unsigned char *l = NULL;
    int rc = ENMS_OK;

    *labels = NULL;
    if (s->n == 0)
        return ENMS_OK;
    snprintf(from, sizeof from, "%lld", (long long)s->ts[0]);
    snprintf(to, sizeof to, "%lld", (long long)s->ts[s->n - 1] + HOUR_S);
    /* Intervals first (normal ones after anomalous ones, so an explicit
     * "normal" wins), then the per-hour user labels, which win over both. */
    PGresult *res = pg_exec(
        pg, PGRES_TUPLES_OK,
        "SELECT extract(epoch FROM ts_start)::bigint, extract(epoch FROM ts_end)::bigint, "
        "is_anomaly::int, 0 AS kind FROM anomaly_labels WHERE machine_id = $1::uuid "
        "AND source IN ('injected', 'user') AND ts_end > to_timestamp($2::bigint) "
        "AND ts_start < to_timestamp($3::bigint) "
        "UNION ALL SELECT extract(epoch FROM ts)::bigint, extract(epoch FROM ts)::bigint + 3600, "
        "(label = 'confirmed')::int, 1 FROM anomalies WHERE machine_id = $1::uuid "
        "AND label IS NOT NULL AND ts >= to_timestamp($2::bigint) "
        "AND ts < to_timestamp($3::bigint) ORDER BY 4, 3 DESC, 1",
        3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rows = PQntuples(res);
    if (rows == 0)
        goto done;
    if (!(l = calloc(s->n, 1))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory loading labels");
        goto done;
    }
    for (int r = 0; r < rows; r++) {
        time_t a = (time_t)strtoll(PQgetvalue(res, r, 0), NULL, 10);
        time_t b = (time_t)strtoll(PQgetvalue(res, r, 1), NULL, 10);
        unsigned char value = PQgetvalue(res, r, 2)[0] == '1';
        for (size_t i = 0; i < s->n; i++)
            if (s->ts[i] >= a && s->ts[i] < b)
                l[i] = value;
    }
    *labels = l;
    l = NULL;
done:
    free(l);
    PQclear(res);
    return rc;
}

/* Readings of machine_id in [from, to) as a series in the local calendar of
 * offset_s. *r owns the arrays (readings_free). */
static int load_series(PGconn *pg, const char *machine_id, time_t from, time_t to, int offset_s,
                       struct readings *r, struct series *s, char *err, size_t errlen)
{
    struct series_report rep;
    memset(s, 0, sizeof *s);
    size_t hours = to > from ? (size_t)((to - from) / HOUR_S) : 0;
    int rc = readings_load(pg, machine_id, from, to, hours * 4 + 64, NULL, r, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    readings_as_series(r, offset_s, s);
    if ((rc = series_check(s, &rep, err, errlen)) != ENMS_OK)
        readings_free(r);
    return rc;
}

/* ---- samples ------------------------------------------------------------- */

/* One version's predictions on the window: per day (baseline), per hour
 * (forecast, anomaly). actual/pred are NAN where unknown; for anomaly
 * models pred is 1 when the hour was flagged and actual the label (NAN in
 * an unlabelled window). Freed by samples_free. */
struct samples {
    size_t n;
    time_t *ts;
    double *actual, *pred;
    double scale; /* forecast: MASE scale from the training hours; NAN otherwise */
    size_t critical;
};

static void samples_free(struct samples *s)
{
    free(s->ts);
    free(s->actual);
    free(s->pred);
    memset(s, 0, sizeof *s);
}

static int samples_alloc(struct samples *s, size_t n, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->scale = NAN;
    size_t k = n ? n : 1;
    s->ts = calloc(k, sizeof *s->ts);
    s->actual = malloc(k * sizeof *s->actual);
    s->pred = malloc(k * sizeof *s->pred);
    if (!s->ts || !s->actual || !s->pred) {
        samples_free(s);
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for %zu samples", n);
    }
    return ENMS_OK;
}

/* Baseline: daily (or hourly) predictions of the model on [from, to). */
static int baseline_samples(PGconn *pg, const char *machine_id, const cJSON *artifact, time_t from,
                            time_t to, struct samples *out, char *err, size_t errlen)
{
    struct baseline_model m;
    struct readings r;
    struct series s;
    struct series_days days;
    int rc = baseline_model_from_json(artifact, &m, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    memset(&days, 0, sizeof days);
    if ((rc = load_series(pg, machine_id, from, to, m.utc_offset_s, &r, &s, err, errlen)) !=
        ENMS_OK)
        return rc;
    if (m.granularity == BASELINE_DAILY) {
        if ((rc = series_daily(&s, &days, err, errlen)) != ENMS_OK ||
            (rc = samples_alloc(out, days.n, err, errlen)) != ENMS_OK)
            goto done;
        if ((rc = baseline_predict_days(&m, &days, out->pred, err, errlen)) != ENMS_OK)
            goto done;
        out->n = days.n;
        for (size_t i = 0; i < days.n; i++) {
            out->ts[i] = days.start[i];
            out->actual[i] = days.energy[i];
        }
    } else {
        if ((rc = samples_alloc(out, s.n, err, errlen)) != ENMS_OK)
            goto done;
        if ((rc = baseline_predict_hours(&m, &s, out->pred, err, errlen)) != ENMS_OK)
            goto done;
        out->n = s.n;
        for (size_t i = 0; i < s.n; i++) {
            out->ts[i] = s.ts[i] - s.ts[i] % HOUR_S;
            out->actual[i] = s.energy[i];
        }
    }
done:
    if (rc != ENMS_OK)
        samples_free(out);
    series_days_free(&days);
    readings_free(&r);
    return rc;
}

/* Anomaly: the default detector's flags on [from, to), with labels. */
static int anomaly_samples(PGconn *pg, const char *machine_id, const cJSON *artifact, time_t from,
                           time_t to, const struct model_hooks *hooks, struct samples *out,
                           char *err, size_t errlen)
{
    struct anomaly_model m;
    struct anomaly_flags flags[ANOMALY_DETECTORS];
    struct readings r;
    struct series s;
    unsigned char *labels = NULL;
    int rc = anomaly_model_from_json(artifact, &m, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    memset(flags, 0, sizeof flags);
    memset(&r, 0, sizeof r);
    if ((rc = load_series(pg, machine_id, from, to, m.utc_offset_s, &r, &s, err, errlen)) !=
        ENMS_OK)
        goto done;
    if ((rc = eval_load_labels(pg, machine_id, &s, &labels, err, errlen)) != ENMS_OK ||
        (rc = samples_alloc(out, s.n, err, errlen)) != ENMS_OK)
        goto done;
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        flags[d].score = malloc((s.n ? s.n : 1) * sizeof *flags[d].score);
        flags[d].severity = malloc(s.n ? s.n : 1);
        if (!flags[d].score || !flags[d].severity) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory scoring");
            goto done;
        }
    }
    if ((rc = anomaly_detect(&m, &s, NULL, hooks, flags, err, errlen)) != ENMS_OK)
        goto done;
    const struct anomaly_flags *f = &flags[m.default_detector];
    out->n = s.n;
    for (size_t i = 0; i < s.n; i++) {
        out->ts[i] = s.ts[i] - s.ts[i] % HOUR_S;
        out->pred[i] = isfinite(s.energy[i]) ? (f->severity[i] != ANOMALY_NONE) : NAN;
        out->actual[i] = labels ? labels[i] : NAN;
        out->critical += f->severity[i] == ANOMALY_CRITICAL;
    }
done:
    if (rc != ENMS_OK)
        samples_free(out);
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        free(flags[d].score);
        free(flags[d].severity);
    }
    free(labels);
    readings_free(&r);
    anomaly_model_free(&m);
    return rc;
}

/* Forecast: rolling-origin forecasts on [from, to) of the stored model,
 * whose state is at trained_until. Origins every EVAL_ORIGIN_STEP_H hours
 * from `from`; an origin before trained_until (hours the version saw) is
 * skipped. out->scale is the seasonal naive MAE (lag 24) of the training
 * hours, for MASE. */
static int forecast_samples(PGconn *pg, const char *machine_id, const cJSON *artifact,
                            time_t trained_until, time_t from, time_t to,
                            const struct model_hooks *hooks, struct samples *out, char *err,
                            size_t errlen)
{
    struct arima_model *m = NULL;
    struct readings r;
    struct series s;
    struct arima_filter k;
    double *grid = NULL, *mean = NULL, *se = NULL;
    int rc;

    memset(&r, 0, sizeof r);
    memset(&k, 0, sizeof k);
    if (trained_until <= 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "forecast version has no training end");
    if ((rc = arima_from_json(artifact, &m, err, errlen)) != ENMS_OK)
        return rc;
    time_t state = trained_until - trained_until % HOUR_S;
    size_t train_h = m->n > 24 * 60 ? 24 * 60 : m->n; /* enough for the MASE scale */
    time_t g0 = state - (time_t)train_h * HOUR_S;
    if (to <= state || (size_t)((to - state) / HOUR_S) > EVAL_MAX_FILTER_HOURS) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "forecast version ends %lld h before the window; too old to carry forward",
                       (long long)((to - state) / HOUR_S));
        goto done;
    }
    if ((rc = load_series(pg, machine_id, g0, to, 0, &r, &s, err, errlen)) != ENMS_OK)
        goto done;
    size_t ng = (size_t)((to - g0) / HOUR_S);
    size_t nwin = (size_t)((to - from) / HOUR_S);
    if (!(grid = malloc(ng * sizeof *grid)) || !(mean = malloc(EVAL_HORIZON_H * sizeof *mean)) ||
        !(se = malloc(EVAL_HORIZON_H * sizeof *se))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory forecasting");
        goto done;
    }
    for (size_t i = 0; i < ng; i++)
        grid[i] = NAN;
    for (size_t i = 0; i < s.n; i++) {
        size_t g = (size_t)((s.ts[i] - g0) / HOUR_S);
        if (g < ng && isnan(grid[g]))
            grid[g] = s.energy[i];
    }
    double sae = 0;
    size_t nsae = 0;
    for (size_t t = 24; t < train_h; t++)
        if (isfinite(grid[t]) && isfinite(grid[t - 24])) {
            sae += fabs(grid[t] - grid[t - 24]);
            nsae++;
        }
    if ((rc = samples_alloc(out, nwin, err, errlen)) != ENMS_OK)
        goto done;
    out->scale = nsae ? sae / (double)nsae : NAN;
    out->n = nwin;
    for (size_t i = 0; i < nwin; i++) {
        out->ts[i] = from + (time_t)i * HOUR_S;
        out->actual[i] = grid[(size_t)((from - g0) / HOUR_S) + i];
        out->pred[i] = NAN;
    }
    if ((rc = arima_filter_init(&k, m, err, errlen)) != ENMS_OK)
        goto done;
    size_t pos = train_h; /* grid index of the next observation to filter */
    for (time_t o = from; o < to; o += EVAL_ORIGIN_STEP_H * HOUR_S) {
        if (model_should_stop(hooks)) {
            rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while forecasting");
            goto done;
        }
        if (o < state)
            continue;
        size_t og = (size_t)((o - g0) / HOUR_S);
        for (; pos < og; pos++)
            arima_filter_step(&k, grid[pos]);
        size_t h = (size_t)((to - o) / HOUR_S);
        if (h > EVAL_HORIZON_H)
            h = EVAL_HORIZON_H;
        if ((rc = arima_filter_forecast(&k, h, mean, se, err, errlen)) != ENMS_OK)
            goto done;
        size_t w0 = (size_t)((o - from) / HOUR_S);
        for (size_t j = 0; j < h; j++)
            out->pred[w0 + j] = mean[j];
    }
done:
    if (rc != ENMS_OK)
        samples_free(out);
    arima_filter_free(&k);
    free(grid);
    free(mean);
    free(se);
    readings_free(&r);
    arima_free(m);
    return rc;
}

/* The samples of one version of model_type on [from, to). */
static int version_samples(PGconn *pg, const char *machine_id, const char *model_type,
                           const struct eval_version *v, time_t from, time_t to,
                           const struct model_hooks *hooks, struct samples *out, char *err,
                           size_t errlen)
{
    if (strcmp(model_type, "baseline") == 0)
        return baseline_samples(pg, machine_id, v->artifact, from, to, out, err, errlen);
    if (strcmp(model_type, "anomaly") == 0)
        return anomaly_samples(pg, machine_id, v->artifact, from, to, hooks, out, err, errlen);
    if (strcmp(model_type, "forecast_arima") == 0)
        return forecast_samples(pg, machine_id, v->artifact, v->trained_until, from, to, hooks, out,
                                err, errlen);
    return enms_fail(err, errlen, ENMS_EINVAL, "cannot evaluate model_type %s", model_type);
}

/* ---- metrics ------------------------------------------------------------- */

static int add_num(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0
                                                                                              : -1;
}

/* Prediction errors over the samples with both values finite: r_squared,
 * rmse, mae, mape (over nonzero actuals), and Guideline 14 CV(RMSE) and
 * NMBE with p = 0 (no parameter was estimated on these rows). *used
 * receives the count. */
static int error_metrics(const struct samples *s, cJSON *o, size_t *used)
{
    double sum = 0, sse = 0, sae = 0, ape = 0, bias = 0, sst = 0;
    size_t n = 0, nape = 0;
    for (size_t i = 0; i < s->n; i++)
        if (isfinite(s->actual[i]) && isfinite(s->pred[i])) {
            sum += s->actual[i];
            n++;
        }
    *used = n;
    double ybar = n ? sum / (double)n : NAN;
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->actual[i]) || !isfinite(s->pred[i]))
            continue;
        double e = s->actual[i] - s->pred[i];
        sse += e * e;
        sae += fabs(e);
        bias += e;
        sst += (s->actual[i] - ybar) * (s->actual[i] - ybar);
        if (fabs(s->actual[i]) > 1e-9) {
            ape += fabs(e / s->actual[i]);
            nape++;
        }
    }
    double rmse = n ? sqrt(sse / (double)n) : NAN;
    double mae = n ? sae / (double)n : NAN;
    int ok = n > 0 && ybar != 0;
    return add_num(o, "sample_count", (double)n) ||
           add_num(o, "r_squared", n > 1 && sst > 0 ? 1 - sse / sst : NAN) ||
           add_num(o, "rmse", rmse) || add_num(o, "mae", mae) ||
           add_num(o, "mape", nape ? ape / (double)nape * 100 : NAN) ||
           add_num(o, "cv_rmse_pct", ok ? rmse / ybar * 100 : NAN) ||
           add_num(o, "nmbe_pct", ok ? bias / ((double)n * ybar) * 100 : NAN) ||
           add_num(o, "mean_actual", ybar);
}

/* Builds the metrics object of model_type from the main version's samples.
 * *used receives the samples that count; NULL when out of memory. */
static cJSON *metrics_of(const char *model_type, const struct samples *s, size_t *used)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    *used = 0;
    if (strcmp(model_type, "anomaly") == 0) {
        size_t hours = 0, flagged = 0, tp = 0, fp = 0, fn = 0, tn = 0;
        int labelled = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (!isfinite(s->pred[i]))
                continue;
            int f = s->pred[i] > 0.5;
            hours++;
            flagged += f;
            if (!isfinite(s->actual[i]))
                continue;
            labelled = 1;
            int a = s->actual[i] > 0.5;
            tp += f && a;
            fp += f && !a;
            fn += !f && a;
            tn += !f && !a;
        }
        *used = hours;
        double rate = hours ? (double)flagged / (double)hours : NAN;
        double prec = tp + fp ? (double)tp / (double)(tp + fp) : NAN;
        double rec = tp + fn ? (double)tp / (double)(tp + fn) : NAN;
        double f1 = isfinite(prec) && isfinite(rec) && prec + rec > 0
                        ? 2 * prec * rec / (prec + rec)
                        : (isfinite(prec) || isfinite(rec) ? 0 : NAN);
        if (add_num(o, "sample_count", (double)hours) || add_num(o, "anomaly_rate", rate) ||
            add_num(o, "outlier_percentage", rate * 100) ||
            add_num(o, "flagged_hours", (double)flagged) ||
            add_num(o, "critical_hours", (double)s->critical) ||
            (labelled && (add_num(o, "precision", prec) || add_num(o, "recall", rec) ||
                          add_num(o, "f1", f1) || add_num(o, "true_positives", (double)tp) ||
                          add_num(o, "false_positives", (double)fp) ||
                          add_num(o, "true_negatives", (double)tn) ||
                          add_num(o, "false_negatives", (double)fn)))) {
            cJSON_Delete(o);
            return NULL;
        }
        return o;
    }
    if (error_metrics(s, o, used)) {
        cJSON_Delete(o);
        return NULL;
    }
    if (strcmp(model_type, "forecast_arima") == 0) {
        const cJSON *mae = cJSON_GetObjectItemCaseSensitive(o, "mae");
        double mase = cJSON_IsNumber(mae) && isfinite(s->scale) && s->scale > 0
                          ? mae->valuedouble / s->scale
                          : NAN;
        if (add_num(o, "mase", mase) || add_num(o, "horizon_hours", EVAL_HORIZON_H) ||
            add_num(o, "origin_step_hours", EVAL_ORIGIN_STEP_H)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* perf_record accepts numbers only: a copy of m without nulls. */
static cJSON *numbers_only(const cJSON *m)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *it;
    if (!o)
        return NULL;
    cJSON_ArrayForEach(it, m)
    {
        if (cJSON_IsNumber(it) && isfinite(it->valuedouble) &&
            !cJSON_AddNumberToObject(o, it->string, it->valuedouble)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* ---- A/B shadow samples -------------------------------------------------- */

/* Loss of one prediction under model_type's rule; NAN when not comparable. */
static double loss_of(const char *model_type, double actual, double pred)
{
    if (!isfinite(actual) || !isfinite(pred))
        return NAN;
    if (strcmp(model_type, "baseline") == 0)
        return fabs(actual - pred);
    if (strcmp(model_type, "forecast_arima") == 0)
        return (actual - pred) * (actual - pred);
    return (actual > 0.5) != (pred > 0.5) ? 1.0 : 0.0;
}

/* Index of ts in s (samples ascending), or -1. */
static long sample_index(const struct samples *s, time_t ts)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ts[mid] < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->ts[lo] == ts ? (long)lo : -1;
}

/* Scores both versions of one test on [from, to) and appends the paired
 * rows as {"test_id", "rows": [...]} to arr. A version that cannot be
 * loaded or scored gives no rows (logged into notes), not a failed job. */
static int ab_one(PGconn *pg, const struct job_record *job, const char *test_id, const char *a_id,
                  const char *b_id, time_t from, time_t to, const struct model_hooks *hooks,
                  cJSON *arr, cJSON *notes, char *err, size_t errlen)
{
    struct eval_version va, vb;
    struct samples sa, sb;
    char ebuf[256];
    cJSON *entry = NULL, *rows = NULL;
    int rc = ENMS_OK;

    memset(&va, 0, sizeof va);
    memset(&vb, 0, sizeof vb);
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    rc = eval_version_load(pg, job->machine_id, job->model_type, a_id, &va, ebuf, sizeof ebuf);
    if (rc == ENMS_OK)
        rc = eval_version_load(pg, job->machine_id, job->model_type, b_id, &vb, ebuf, sizeof ebuf);
    if (rc == ENMS_OK)
        rc = version_samples(pg, job->machine_id, job->model_type, &va, from, to, hooks, &sa, ebuf,
                             sizeof ebuf);
    if (rc == ENMS_OK)
        rc = version_samples(pg, job->machine_id, job->model_type, &vb, from, to, hooks, &sb, ebuf,
                             sizeof ebuf);
    if (rc == ENMS_EDB || rc == ENMS_ESTOPPED || rc == ENMS_ENOMEM) {
        enms_fail(err, errlen, rc, "a/b test %s: %s", test_id, ebuf);
        goto done;
    }
    if (rc != ENMS_OK) {
        char note[400];
        snprintf(note, sizeof note, "a/b test %s not scored: %s", test_id, ebuf);
        cJSON *t = cJSON_CreateString(note);
        if (!t || !cJSON_AddItemToArray(notes, t))
            cJSON_Delete(t);
        rc = ENMS_OK;
        goto done;
    }
    if (!(entry = cJSON_CreateObject()) || !cJSON_AddStringToObject(entry, "test_id", test_id) ||
        !(rows = cJSON_AddArrayToObject(entry, "rows"))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < sa.n; i++) {
        long j = sample_index(&sb, sa.ts[i]);
        if (j < 0)
            continue;
        double actual = sa.actual[i];
        double la = loss_of(job->model_type, actual, sa.pred[i]);
        double lb = loss_of(job->model_type, actual, sb.pred[j]);
        if (!isfinite(la) || !isfinite(lb))
            continue;
        cJSON *row = cJSON_CreateObject();
        if (!row || add_num(row, "ts", (double)sa.ts[i]) || add_num(row, "actual", actual) ||
            add_num(row, "predicted_a", sa.pred[i]) || add_num(row, "predicted_b", sb.pred[j]) ||
            add_num(row, "loss_a", la) || add_num(row, "loss_b", lb) ||
            !cJSON_AddItemToArray(rows, row)) {
            cJSON_Delete(row);
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (!cJSON_AddItemToArray(arr, entry)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    entry = NULL;
done:
    cJSON_Delete(entry);
    samples_free(&sa);
    samples_free(&sb);
    eval_version_free(&va);
    eval_version_free(&vb);
    return rc;
}

/* Every running A/B test of the job's machine and type that is in progress
 * now or whose period overlaps [from, to): paired samples into arr. */
static int ab_samples(PGconn *pg, const struct job_record *job, time_t from, time_t to,
                      const struct model_hooks *hooks, cJSON *arr, cJSON *notes, char *err,
                      size_t errlen)
{
    char f[24], t[24];
    snprintf(f, sizeof f, "%lld", (long long)from);
    snprintf(t, sizeof t, "%lld", (long long)to);
    const char *params[] = {job->machine_id, job->model_type, f, t};
    PGresult *res =
        pg_exec(pg, PGRES_TUPLES_OK,
                "SELECT id::text, model_a_id::text, model_b_id::text FROM model_ab_tests "
                "WHERE machine_id = $1::uuid AND model_type = $2 AND test_status = 'running' "
                "AND ((test_start <= now() AND (test_end IS NULL OR test_end > now())) "
                "  OR (test_start < to_timestamp($4::bigint) "
                "      AND (test_end IS NULL OR test_end > to_timestamp($3::bigint)))) "
                "ORDER BY test_start LIMIT " /* bounded work per evaluation */ "8",
                4, params, err, errlen);
    int rc = ENMS_OK;
    if (!res)
        return ENMS_EDB;
    for (int i = 0; i < PQntuples(res) && i < EVAL_MAX_AB_TESTS && rc == ENMS_OK; i++)
        rc = ab_one(pg, job, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                    from, to, hooks, arr, notes, err, errlen);
    PQclear(res);
    return rc;
}

/* ---- the job ------------------------------------------------------------- */

struct eval_params {
    char version_id[JOBS_ID_SIZE]; /* "" : the active version */
    time_t until;                  /* 0: the newest reading */
    int days;
};

static int eval_params_parse(const char *json, struct eval_params *p, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json ? json : "{}");
    int rc = ENMS_OK;
    memset(p, 0, sizeof *p);
    p->days = EVAL_DEFAULT_DAYS;
    if (!cJSON_IsObject(o)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "params must be a JSON object");
        goto done;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version_id");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) || !queue_is_uuid(v->valuestring, strlen(v->valuestring))) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "params.version_id must be a uuid");
            goto done;
        }
        snprintf(p->version_id, sizeof p->version_id, "%s", v->valuestring);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "until");
    if (u && !cJSON_IsNull(u) &&
        (!cJSON_IsString(u) || jobs_parse_time(u->valuestring, &p->until) != ENMS_OK)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "params.until must be a UTC time");
        goto done;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "days");
    if (d && !cJSON_IsNull(d)) {
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) || d->valuedouble < 1 ||
            d->valuedouble > EVAL_MAX_DAYS) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "params.days must be an integer 1..%d",
                           EVAL_MAX_DAYS);
            goto done;
        }
        p->days = (int)d->valuedouble;
    }
done:
    cJSON_Delete(o);
    return rc;
}

static void iso_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The job's result when nothing is recorded. */
static int nothing_new(struct train_result *out, const struct eval_version *v, const char *why,
                       time_t from, time_t to, char *err, size_t errlen)
{
    char a[32], b[32];
    cJSON *o = cJSON_CreateObject();
    iso_time(from, a, sizeof a);
    iso_time(to > from ? to : from, b, sizeof b);
    if (!o || !cJSON_AddStringToObject(o, "result", why) ||
        !cJSON_AddStringToObject(o, "model_version_id", v->id) ||
        !cJSON_AddNumberToObject(o, "model_version", v->version) ||
        !cJSON_AddBoolToObject(o, "recorded", 0) ||
        !cJSON_AddStringToObject(o, "window_start", a) ||
        !cJSON_AddStringToObject(o, "window_end", b) ||
        !(out->metrics_json = cJSON_PrintUnformatted(o))) {
        cJSON_Delete(o);
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    }
    cJSON_Delete(o);
    return ENMS_OK;
}

static void progress(struct train_ctx *ctx, int percent, const char *stage)
{
    if (ctx->progress)
        ctx->progress(ctx->opaque, percent, stage);
}

static int hook_stop(void *opaque)
{
    struct train_ctx *ctx = opaque;
    return ctx->should_stop && ctx->should_stop(ctx->opaque);
}

int evaluation_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
                   char *err, size_t errlen)
{
    struct eval_params p;
    struct eval_version v;
    struct samples s;
    struct model_hooks hooks = {.should_stop = hook_stop, .opaque = ctx};
    cJSON *doc = NULL, *metrics = NULL, *result = NULL, *notes = NULL;
    time_t end = 0;
    size_t used = 0;
    int rc;

    train_result_init(out);
    memset(&s, 0, sizeof s);
    if ((rc = eval_params_parse(job->params_json, &p, err, errlen)) != ENMS_OK)
        return rc;
    progress(ctx, 5, "loading the model version");
    rc = eval_version_load(ctx->pg, job->machine_id, job->model_type,
                           p.version_id[0] ? p.version_id : NULL, &v, err, errlen);
    if (rc == ENMS_ENOTFOUND)
        rc = ENMS_EINVAL; /* permanent: the job fails at once */
    if (rc != ENMS_OK)
        return rc;
    if ((rc = eval_readings_end(ctx->pg, job->machine_id, &end, err, errlen)) != ENMS_OK)
        goto done;
    if (p.until && p.until < end)
        end = p.until - p.until % HOUR_S;
    time_t seen = v.trained_until > v.evaluated_until ? v.trained_until : v.evaluated_until;
    time_t from = seen % HOUR_S ? seen - seen % HOUR_S + HOUR_S : seen;
    if (end - (time_t)p.days * DAY_S > from)
        from = end - (time_t)p.days * DAY_S;
    if (end <= from) {
        rc = nothing_new(out, &v, "no new readings", from, end, err, errlen);
        goto done;
    }
    if (ctx->should_stop && ctx->should_stop(ctx->opaque)) {
        rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped");
        goto done;
    }
    progress(ctx, 20, "scoring the new readings");
    if ((rc = version_samples(ctx->pg, job->machine_id, job->model_type, &v, from, end, &hooks, &s,
                              err, errlen)) != ENMS_OK)
        goto done;
    if (!(metrics = metrics_of(job->model_type, &s, &used))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if (used == 0) {
        rc = nothing_new(out, &v,
                         strcmp(job->model_type, "baseline") == 0
                             ? "no new readings (no complete day to evaluate)"
                             : "no new readings",
                         from, end, err, errlen);
        goto done;
    }
    progress(ctx, 60, "a/b shadow scoring");
    cJSON *perf, *arr, *nums;
    if (!(doc = cJSON_CreateObject()) || !(notes = cJSON_CreateArray()) ||
        !(perf = cJSON_AddObjectToObject(doc, "perf")) ||
        !cJSON_AddStringToObject(perf, "model_id", v.id) ||
        !cJSON_AddNumberToObject(perf, "start", (double)from) ||
        !cJSON_AddNumberToObject(perf, "end", (double)end) || !(nums = numbers_only(metrics)) ||
        !cJSON_AddItemToObject(perf, "metrics", nums) ||
        !(arr = cJSON_AddArrayToObject(doc, "ab_samples"))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ab_samples(ctx->pg, job, from, end, &hooks, arr, notes, err, errlen)) != ENMS_OK)
        goto done;
    progress(ctx, 95, "saving");
    char a[32], b[32];
    iso_time(from, a, sizeof a);
    iso_time(end, b, sizeof b);
    cJSON *ab_counts = NULL, *entry;
    if (!(result = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(result, "result", "evaluated") ||
        !cJSON_AddStringToObject(result, "model_version_id", v.id) ||
        !cJSON_AddNumberToObject(result, "model_version", v.version) ||
        !cJSON_AddStringToObject(result, "window_start", a) ||
        !cJSON_AddStringToObject(result, "window_end", b) ||
        !cJSON_AddItemToObject(result, "metrics", metrics) ||
        !(ab_counts = cJSON_AddObjectToObject(result, "ab_paired_samples"))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    metrics = NULL; /* owned by result */
    cJSON_ArrayForEach(entry, arr)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "test_id");
        if (!cJSON_AddNumberToObject(ab_counts, id->valuestring,
                                     cJSON_GetArraySize(cJSON_GetObjectItem(entry, "rows")))) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (cJSON_GetArraySize(notes) > 0) {
        if (!cJSON_AddItemToObject(result, "notes", notes)) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        notes = NULL;
    }
    if (!(out->metrics_json = cJSON_PrintUnformatted(result)) ||
        !(out->store_json = cJSON_PrintUnformatted(doc))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    out->eval_start = from;
    out->eval_end = end;
    out->eval_samples = (int)used;
    progress(ctx, 100, "evaluated");
done:
    if (rc != ENMS_OK)
        train_result_clear(out);
    cJSON_Delete(notes);
    cJSON_Delete(result);
    cJSON_Delete(metrics);
    cJSON_Delete(doc);
    samples_free(&s);
    eval_version_free(&v);
    return rc;
}

/* ---- completion ---------------------------------------------------------- */

int evaluation_record(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                      const struct job_record *job, const struct train_result *res,
                      char **result_json, char *err, size_t errlen)
{
    cJSON *doc = NULL, *result = NULL, *rec = NULL;
    PGresult *q = NULL;
    int rc = ENMS_OK;

    *result_json = NULL;
    if (!res->store_json || !(doc = cJSON_Parse(res->store_json)))
        return ENMS_OK;
    const cJSON *perf = cJSON_GetObjectItemCaseSensitive(doc, "perf");
    if (!cJSON_IsObject(perf))
        goto done;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(perf, "model_id");
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(perf, "start");
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(perf, "end");
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(perf, "metrics");
    if (!cJSON_IsString(id) || !cJSON_IsNumber(start) || !cJSON_IsNumber(end) ||
        !cJSON_IsObject(metrics)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "evaluation result is malformed");
        goto done;
    }
    if (!(result = cJSON_Parse(res->metrics_json ? res->metrics_json : "{}")) ||
        !(rec = cJSON_AddObjectToObject(result, "recorded"))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    char s_text[24], e_text[24];
    snprintf(s_text, sizeof s_text, "%lld", (long long)start->valuedouble);
    snprintf(e_text, sizeof e_text, "%lld", (long long)end->valuedouble);
    const char *params[] = {id->valuestring, s_text, e_text};
    /* An earlier try of this final write may have recorded already. */
    q = pg_exec(pg, PGRES_TUPLES_OK,
                "SELECT id::text, drift_detected, drift_score FROM model_performance_metrics "
                "WHERE model_id = $1::uuid AND created_by = 'evaluation' "
                "AND evaluation_start = to_timestamp($2::bigint) "
                "AND evaluation_end = to_timestamp($3::bigint) LIMIT 1",
                3, params, err, errlen);
    if (!q) {
        rc = ENMS_EDB;
        goto done;
    }
    if (PQntuples(q) == 1) {
        if (!cJSON_AddStringToObject(rec, "metric_id", PQgetvalue(q, 0, 0)) ||
            !cJSON_AddBoolToObject(rec, "drift_detected", PQgetvalue(q, 0, 1)[0] == 't') ||
            !cJSON_AddBoolToObject(rec, "already_recorded", 1)) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
    } else {
        struct perf_record_input in = {.machine_id = job->machine_id,
                                       .model_type = job->model_type,
                                       .model_id = id->valuestring,
                                       .eval_start_us = (long long)start->valuedouble * 1000000LL,
                                       .eval_end_us = (long long)end->valuedouble * 1000000LL,
                                       .metrics = metrics,
                                       .created_by = "evaluation",
                                       .evaluation_notes = "scheduled or on-demand evaluation"};
        struct perf_record_result pr;
        memset(&pr, 0, sizeof pr);
        if ((rc = perf_record(pg, redis, cfg, &in, &pr, err, errlen)) != ENMS_OK)
            goto done;
        if (!cJSON_AddStringToObject(rec, "metric_id", pr.metric_id) ||
            !cJSON_AddNumberToObject(rec, "sample_count", pr.sample_count) ||
            add_num(rec, "data_completeness", pr.data_completeness) ||
            !cJSON_AddStringToObject(rec, "main_metric", pr.main_metric) ||
            !cJSON_AddBoolToObject(rec, "drift_detected", pr.drift_detected) ||
            add_num(rec, "drift_score", pr.drift_score) ||
            !cJSON_AddStringToObject(rec, "recommendation", pr.recommendation) ||
            !cJSON_AddBoolToObject(rec, "retrain_triggered", pr.retrain_triggered) ||
            (pr.alert_id[0] && !cJSON_AddStringToObject(rec, "alert_id", pr.alert_id))) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (!(*result_json = cJSON_PrintUnformatted(result)))
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
done:
    PQclear(q);
    cJSON_Delete(result);
    cJSON_Delete(doc);
    return rc;
}

int evaluation_store_samples(PGconn *pg, const struct train_result *res, char *err, size_t errlen)
{
    cJSON *doc = NULL;
    const cJSON *entry;
    int rc = ENMS_OK;
    if (!res->store_json)
        return ENMS_OK;
    if (!(doc = cJSON_Parse(res->store_json)))
        return enms_fail(err, errlen, ENMS_EINVAL, "evaluation result is not JSON");
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(doc, "ab_samples"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "test_id");
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(entry, "rows");
        char *text = NULL;
        if (!cJSON_IsString(id) || !cJSON_IsArray(rows) || cJSON_GetArraySize(rows) == 0)
            continue;
        if (!(text = cJSON_PrintUnformatted(rows))) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        const char *params[] = {id->valuestring, text};
        /* Only the rows really inserted count towards paired_samples, so a
         * repeated evaluation of the same hours adds nothing. */
        PGresult *q = pg_exec(
            pg, PGRES_COMMAND_OK,
            "WITH ins AS (INSERT INTO model_ab_test_samples (test_id, sample_ts, actual, "
            "predicted_a, predicted_b, loss_a, loss_b) "
            "SELECT $1::uuid, to_timestamp(x.ts), x.actual, x.predicted_a, x.predicted_b, "
            "x.loss_a, x.loss_b FROM jsonb_to_recordset($2::jsonb) AS x(ts bigint, "
            "actual float8, predicted_a float8, predicted_b float8, loss_a float8, "
            "loss_b float8) WHERE EXISTS (SELECT 1 FROM model_ab_tests WHERE id = $1::uuid) "
            "ON CONFLICT DO NOTHING RETURNING 1) "
            "UPDATE model_ab_tests SET paired_samples = paired_samples + "
            "(SELECT count(*) FROM ins) WHERE id = $1::uuid",
            2, params, err, errlen);
        cJSON_free(text);
        if (!q) {
            rc = ENMS_EDB;
            goto done;
        }
        PQclear(q);
    }
done:
    cJSON_Delete(doc);
    return rc;
}
