/* train_models.c - the worker's side of training baseline, anomaly and
 * forecast_arima models (train_models.h): the training window, readings and
 * labels from PostgreSQL, progress mapped onto the job's 0-100 %, the
 * holdout evaluation and the JSON the runner stores.
 *
 * The statistics themselves live in worker/models/; this file only feeds
 * them and reports. Progress: loading 0-20 %, the model's own work 20-90 %,
 * evaluation 90-97 %, saving 97-100 %; it never goes backwards. */
#include "train_models.h"
#include "readings_load.h"
#include "models/anomaly.h"
#include "models/arima.h"
#include "models/arima_auto.h"
#include "models/baseline.h"
#include "models/series.h"
#include "../common/error.h"
#include "../common/pg.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S  86400
#define HOUR_S 3600

#define MAX_DAYS              3650
#define BASELINE_DEFAULT_DAYS 365
#define ANOMALY_DEFAULT_DAYS  90
#define FORECAST_DEFAULT_DAYS 90
#define BASELINE_NEED_DAYS    30
#define ANOMALY_NEED_DAYS     14
#define FORECAST_NEED_DAYS    14

/* ARIMA: the holdout is the last 20 % of hours, at most a week; the model
 * is fitted on at most the last ARIMA_MAX_TRAIN_HOURS of the rest, because
 * the exact likelihood costs time linear in n and a seasonal search at
 * m = 24 on 2,000 hours takes several seconds (docs/models-arima.md). */
#define ARIMA_HOLDOUT_FRACTION  0.2
#define ARIMA_MAX_HOLDOUT_HOURS 168
#define ARIMA_MAX_TRAIN_HOURS   1008
#define ARIMA_DEFAULT_PERIOD    24

/* One job's progress reporter: maps a part of the work onto [lo, hi] % of
 * the job and keeps the reported percentage from going backwards. */
struct reporter {
    struct train_ctx *ctx;
    int last;           /* highest percentage reported so far */
    int lo, hi;         /* the current part's span */
    const char *prefix; /* stage text of the current part */
};

static void report(struct reporter *r, int percent, const char *stage)
{
    if (percent < r->last)
        percent = r->last;
    if (percent > 100)
        percent = 100;
    r->last = percent;
    if (r->ctx->progress)
        r->ctx->progress(r->ctx->opaque, percent, stage);
}

/* model_hooks callbacks: fraction of the current part. */
static void hook_progress(void *opaque, double fraction, const char *stage)
{
    struct reporter *r = opaque;
    char text[128];
    if (!(fraction >= 0))
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    if (stage && *stage && strcmp(stage, r->prefix) != 0)
        snprintf(text, sizeof text, "%s: %s", r->prefix, stage);
    else
        snprintf(text, sizeof text, "%s", r->prefix);
    report(r, r->lo + (int)(fraction * (r->hi - r->lo)), text);
}

static int hook_stop(void *opaque)
{
    struct reporter *r = opaque;
    return r->ctx->should_stop && r->ctx->should_stop(r->ctx->opaque);
}

/* Starts a new part of the work and returns hooks that report into it. */
static struct model_hooks part(struct reporter *r, int lo, int hi, const char *prefix)
{
    r->lo = lo;
    r->hi = hi;
    r->prefix = prefix;
    report(r, lo, prefix);
    return (struct model_hooks){.progress = hook_progress, .should_stop = hook_stop, .opaque = r};
}

/* Adds a number, or null when it is not finite (JSON has no NaN). Returns
 * 0, or -1 when out of memory. */
static int add_num(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0
                                                                                              : -1;
}

/* Prints o (not consumed) into a malloc'd string, or NULL when out of
 * memory. cJSON allocates with malloc here, so free() releases it. */
static char *print_json(const cJSON *o)
{
    return o ? cJSON_PrintUnformatted(o) : NULL;
}

static void iso_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Everything a trainer reads: the window, the readings as a series, the
 * labelled anomaly hours. Freed by data_free(). */
struct train_data {
    int days;        /* window length asked for */
    time_t from, to; /* [from, to) */
    int utc_offset_s;
    struct readings readings; /* owns the arrays s borrows */
    struct series s;
    struct series_report report;
    unsigned char *labels; /* s.n entries, or NULL when there are no labels */
    size_t label_intervals;
};

static void data_free(struct train_data *d)
{
    readings_free(&d->readings);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* Reads "days", "until" and "utc_offset_hours" from the job's params
 * (*until is 0 when absent). */
static int parse_params(const struct job_record *job, int default_days, int *days, time_t *until,
                        int *offset_h, int *offset_given, char *err, size_t errlen)
{
    cJSON *p = cJSON_Parse(job->params_json ? job->params_json : "{}");
    int rc = ENMS_OK;
    *days = default_days;
    *until = 0;
    *offset_h = 0;
    *offset_given = 0;
    if (!p || !cJSON_IsObject(p)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "params must be a JSON object");
        goto done;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(p, "days");
    if (d && !cJSON_IsNull(d)) {
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) || d->valuedouble < 1 ||
            d->valuedouble > MAX_DAYS) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "params.days must be an integer 1..%d",
                           MAX_DAYS);
            goto done;
        }
        *days = (int)d->valuedouble;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "until");
    if (u && !cJSON_IsNull(u) &&
        (!cJSON_IsString(u) || jobs_parse_time(u->valuestring, until) != ENMS_OK)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "params.until must be a UTC time YYYY-MM-DDTHH:MM:SSZ");
        goto done;
    }
    *until -= *until % HOUR_S; /* the window ends on a whole hour */
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(p, "utc_offset_hours");
    if (o && !cJSON_IsNull(o)) {
        if (!cJSON_IsNumber(o) || o->valuedouble != floor(o->valuedouble) ||
            fabs(o->valuedouble) > 14) {
            rc = enms_fail(err, errlen, ENMS_EINVAL,
                           "params.utc_offset_hours must be an integer -14..14");
            goto done;
        }
        *offset_h = (int)o->valuedouble;
        *offset_given = 1;
    }
done:
    cJSON_Delete(p);
    return rc;
}

/* One bigint (or NULL: *isnull) from a one-row query with bound params. */
static int query_bigint(PGconn *pg, const char *sql, int nparams, const char *const *params,
                        long long *out, int *isnull, char *err, size_t errlen)
{
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK, sql, nparams, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    *isnull = PQntuples(res) == 0 || PQgetisnull(res, 0, 0);
    *out = *isnull ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ENMS_OK;
}

/* Labelled anomalies (injected by the demo generator or marked by a user)
 * overlapping the window, as per-reading flags in d->labels. */
static int load_labels(PGconn *pg, const char *machine_id, struct train_data *d, char *err,
                       size_t errlen)
{
    char from[24], to[24];
    const char *params[] = {machine_id, from, to};
    time_t *start = NULL, *end = NULL;
    PGresult *res = NULL;
    int rc = ENMS_OK;

    snprintf(from, sizeof from, "%lld", (long long)d->from);
    snprintf(to, sizeof to, "%lld", (long long)d->to);
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "SELECT extract(epoch FROM ts_start)::bigint, extract(epoch FROM ts_end)::bigint "
                  "FROM anomaly_labels WHERE machine_id = $1::uuid AND is_anomaly "
                  "AND source IN ('injected', 'user') AND ts_end > to_timestamp($2::bigint) "
                  "AND ts_start < to_timestamp($3::bigint) ORDER BY ts_start",
                  3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    size_t n = (size_t)PQntuples(res);
    if (n == 0 || d->s.n == 0)
        goto done;
    start = malloc(n * sizeof *start);
    end = malloc(n * sizeof *end);
    d->labels = malloc(d->s.n);
    if (!start || !end || !d->labels) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory loading labels");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        start[i] = (time_t)strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        end[i] = (time_t)strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
    }
    anomaly_labels_from_intervals(&d->s, start, end, n, d->labels);
    d->label_intervals = n;
done:
    free(start);
    free(end);
    PQclear(res);
    return rc;
}

/* Loads the training window of job's machine: the `days` days that end
 * with its latest reading, so demo data of any date trains. Fails with
 * "insufficient data" when fewer than need_days days of hours are there.
 * On success *d owns its arrays (data_free); on error it is empty. */
static int load_data(const struct job_record *job, struct train_ctx *ctx, struct reporter *rep,
                     int default_days, int need_days, struct train_data *d, char *err,
                     size_t errlen)
{
    const char *mparams[] = {job->machine_id};
    long long last = 0;
    int isnull = 0, offset_given = 0, off = 0, rc;
    time_t until = 0;

    memset(d, 0, sizeof *d);
    if ((rc = parse_params(job, default_days, &d->days, &until, &off, &offset_given, err,
                           errlen)) != ENMS_OK)
        return rc;
    struct model_hooks hooks = part(rep, 0, 20, "loading readings");
    rc = query_bigint(ctx->pg,
                      "SELECT extract(epoch FROM max(ts))::bigint FROM energy_readings "
                      "WHERE machine_id = $1::uuid",
                      1, mparams, &last, &isnull, err, errlen);
    if (rc != ENMS_OK)
        goto fail;
    if (isnull) {
        rc = series_insufficient(err, errlen, 0, (size_t)need_days, "days");
        goto fail;
    }
    /* The site's local calendar: a trigger's utc_offset_hours wins, then
     * the machine's utc_offset_minutes, then the demo generator's truth,
     * then UTC. */
    long long offset_min = (long long)off * 60;
    if (!offset_given) {
        rc = query_bigint(ctx->pg,
                          "SELECT COALESCE(m.utc_offset_minutes::bigint, "
                          "(t.truth->>'utc_offset_hours')::bigint * 60) FROM machines m "
                          "LEFT JOIN demo_truth t ON t.machine_id = m.id WHERE m.id = $1::uuid",
                          1, mparams, &offset_min, &isnull, err, errlen);
        if (rc != ENMS_OK)
            goto fail;
        if (isnull || offset_min < -840 || offset_min > 840)
            offset_min = 0;
    }
    d->utc_offset_s = (int)offset_min * 60;
    d->to = (time_t)last + HOUR_S;
    if (until && until < d->to)
        d->to = until;
    d->from = d->to - (time_t)d->days * DAY_S;
    rc = readings_load(ctx->pg, job->machine_id, d->from, d->to, (size_t)d->days * 24 * 4 + 64,
                       &hooks, &d->readings, err, errlen);
    if (rc != ENMS_OK)
        goto fail;
    readings_as_series(&d->readings, d->utc_offset_s, &d->s);
    if ((rc = series_check(&d->s, &d->report, err, errlen)) != ENMS_OK)
        goto fail;
    if (d->report.hours_present / 24 < (size_t)need_days) {
        rc = series_insufficient(err, errlen, d->report.hours_present / 24, (size_t)need_days,
                                 "days");
        goto fail;
    }
    if ((rc = load_labels(ctx->pg, job->machine_id, d, err, errlen)) != ENMS_OK)
        goto fail;
    report(rep, 20, "loading readings");
    return ENMS_OK;
fail:
    data_free(d);
    return rc;
}

/* The artifact: the model's JSON (consumed) plus the training window and
 * feature names (names: a JSON array, consumed). Sets out->artifact_json. */
static int finish_artifact(cJSON *model, cJSON *names, const struct train_data *d,
                           struct train_result *out, char *err, size_t errlen)
{
    char from[32], to[32];
    cJSON *w = NULL;
    int rc = ENMS_OK;
    iso_time(d->from, from, sizeof from);
    iso_time(d->to, to, sizeof to);
    if (!model || !names || !(out->feature_names = print_json(names)) ||
        !(w = cJSON_AddObjectToObject(model, "training_window")) ||
        !cJSON_AddStringToObject(w, "start", from) || !cJSON_AddStringToObject(w, "end", to) ||
        add_num(w, "samples", (double)d->s.n) ||
        !cJSON_AddItemToObject(model, "feature_names", names))
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building the artifact");
    else
        names = NULL; /* now owned by model */
    if (rc == ENMS_OK && !(out->artifact_json = print_json(model)))
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory printing the artifact");
    cJSON_Delete(names);
    cJSON_Delete(model);
    return rc;
}

/* The common part of every metrics object. */
static int add_common(cJSON *m, const char *model_type, const struct train_data *d)
{
    char from[32], to[32];
    cJSON *w, *q;
    iso_time(d->from, from, sizeof from);
    iso_time(d->to, to, sizeof to);
    if (!cJSON_AddStringToObject(m, "model_type", model_type) ||
        !(w = cJSON_AddObjectToObject(m, "window")) || !cJSON_AddStringToObject(w, "start", from) ||
        !cJSON_AddStringToObject(w, "end", to) || add_num(w, "days", d->days) ||
        add_num(w, "utc_offset_hours", d->utc_offset_s / HOUR_S) ||
        !(q = cJSON_AddObjectToObject(m, "data_quality")) ||
        add_num(q, "readings", (double)d->report.readings) ||
        add_num(q, "hours_spanned", (double)d->report.hours_spanned) ||
        add_num(q, "hours_present", (double)d->report.hours_present) ||
        add_num(q, "duplicates", (double)d->report.duplicates) ||
        add_num(q, "gap_hours", (double)d->report.gap_hours) ||
        add_num(q, "missing_energy", (double)d->report.missing_energy) ||
        add_num(q, "completeness_pct", d->report.completeness * 100) ||
        add_num(q, "labelled_intervals", (double)d->label_intervals))
        return -1;
    return 0;
}

/* Prints metrics, validation and hyperparameters into out (none consumed). */
static int finish_json(const cJSON *metrics, const cJSON *validation, const cJSON *hyper,
                       struct train_result *out, char *err, size_t errlen)
{
    if (!(out->metrics_json = print_json(metrics)) ||
        !(out->validation_metrics_json = print_json(validation)) ||
        !(out->hyperparameters_json = print_json(hyper)))
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory printing metrics");
    return ENMS_OK;
}

/* Guideline 14 CV(RMSE) in percent with p = 0 (a holdout) over the rows
 * where pred is finite; NAN when none. */
static double holdout_cv_rmse(const double *y, const double *pred, size_t n)
{
    double sse = 0, sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i]) || !isfinite(pred[i]))
            continue;
        sse += (y[i] - pred[i]) * (y[i] - pred[i]);
        sum += y[i];
        k++;
    }
    if (k == 0 || sum == 0)
        return NAN;
    return sqrt(sse / (double)k) / (sum / (double)k) * 100;
}

/* Compares the active baseline version with the new model on the same
 * days: the last 20 % of the complete days of this window. Reads the
 * active artifact; a missing, unreadable or hourly one is no comparison
 * (out->compared_version_id stays ""). */
static int compare_baseline(PGconn *pg, const struct job_record *job,
                            const struct baseline_model *fresh, const struct train_data *d,
                            struct train_result *out, char *err, size_t errlen)
{
    const char *params[] = {job->machine_id};
    struct series_days days;
    struct baseline_model old;
    double *pred_old = NULL, *pred_new = NULL;
    cJSON *art = NULL;
    char ebuf[256];
    int rc = ENMS_OK;

    memset(&days, 0, sizeof days);
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT id::text, artifact::text FROM model_versions "
                            "WHERE machine_id = $1::uuid AND model_type = 'baseline' AND is_active",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) != 1)
        goto done;
    if (!(art = cJSON_Parse(PQgetvalue(res, 0, 1))) ||
        baseline_model_from_json(art, &old, ebuf, sizeof ebuf) != ENMS_OK ||
        old.granularity != BASELINE_DAILY || fresh->granularity != BASELINE_DAILY)
        goto done; /* not comparable: the runner falls back to stored scores */
    if ((rc = series_daily(&d->s, &days, err, errlen)) != ENMS_OK)
        goto done;
    size_t k = (size_t)floor((double)days.n * 0.2);
    if (k == 0)
        goto done;
    pred_old = malloc(days.n * sizeof *pred_old);
    pred_new = malloc(days.n * sizeof *pred_new);
    if (!pred_old || !pred_new) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory comparing versions");
        goto done;
    }
    if (baseline_predict_days(&old, &days, pred_old, ebuf, sizeof ebuf) != ENMS_OK ||
        baseline_predict_days(fresh, &days, pred_new, ebuf, sizeof ebuf) != ENMS_OK)
        goto done;
    size_t s0 = days.n - k;
    out->compared_previous_score = holdout_cv_rmse(days.energy + s0, pred_old + s0, k);
    out->compared_new_score = holdout_cv_rmse(days.energy + s0, pred_new + s0, k);
    snprintf(out->compared_version_id, sizeof out->compared_version_id, "%s",
             PQgetvalue(res, 0, 0));
done:
    free(pred_old);
    free(pred_new);
    series_days_free(&days);
    cJSON_Delete(art);
    PQclear(res);
    return rc;
}

int train_baseline(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
                   char *err, size_t errlen)
{
    struct reporter rep = {.ctx = ctx};
    struct train_data d;
    struct baseline_config cfg;
    struct baseline_result *res = NULL; /* large: on the heap */
    cJSON *metrics = NULL, *validation = NULL, *hyper = NULL, *names = NULL, *model = NULL;
    int rc;

    rc = load_data(job, ctx, &rep, BASELINE_DEFAULT_DAYS, BASELINE_NEED_DAYS, &d, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    if (!(res = calloc(1, sizeof *res))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    /* Labelled anomaly hours would bend the regression: leave them out,
     * as the demo-truth recovery does. */
    d.s.skip = d.labels;
    baseline_config_default(&cfg, BASELINE_DAILY);
    struct model_hooks hooks = part(&rep, 20, 90, "fitting");
    if ((rc = baseline_fit(&d.s, &cfg, &hooks, res, err, errlen)) != ENMS_OK)
        goto done;

    part(&rep, 90, 97, "evaluating");
    if (hook_stop(&rep)) {
        rc = ENMS_ESTOPPED;
        goto done;
    }
    if ((rc = compare_baseline(ctx->pg, job, &res->model, &d, out, err, errlen)) != ENMS_OK)
        goto done;
    const struct baseline_stats *ev = res->holdout_valid ? &res->holdout : &res->fit;
    out->holdout_score = ev->cv_rmse;
    out->training_samples = (int)res->rows_used;
    out->data_start = res->model.window_start ? res->model.window_start : d.from;
    out->data_end = res->model.window_end ? res->model.window_end + DAY_S : d.to;
    out->eval_samples = (int)ev->n;
    out->eval_start = d.from;
    out->eval_end = d.to;
    if (res->holdout_valid) {
        /* The holdout is the last 20 % of the rows used, ending with the window. */
        out->eval_start = d.to - (time_t)((double)res->holdout.n * DAY_S);
    }
    out->data_completeness = d.report.completeness;

    report(&rep, 97, "saving");
    char terms[128];
    baseline_model_name(&res->model, terms, sizeof terms);
    metrics = baseline_result_to_json(res);
    validation = cJSON_CreateObject();
    hyper = cJSON_CreateObject();
    names = cJSON_CreateArray();
    model = baseline_model_to_json(&res->model);
    if (!metrics || !validation || !hyper || !names || !model ||
        add_common(metrics, "baseline", &d) || !cJSON_AddStringToObject(metrics, "terms", terms) ||
        add_num(metrics, "r2", res->fit.r2) || add_num(metrics, "cv_rmse_pct", res->fit.cv_rmse) ||
        add_num(metrics, "nmbe_pct", res->fit.nmbe) ||
        add_num(metrics, "holdout_score", out->holdout_score) ||
        !cJSON_AddStringToObject(metrics, "holdout_score_kind", "holdout CV(RMSE) %") ||
        !cJSON_AddStringToObject(validation, "kind", res->holdout_valid ? "holdout" : "fit") ||
        add_num(validation, "sample_count", (double)ev->n) ||
        add_num(validation, "r_squared", ev->r2) || add_num(validation, "rmse", ev->rmse) ||
        add_num(validation, "cv_rmse_pct", ev->cv_rmse) ||
        add_num(validation, "nmbe_pct", ev->nmbe) ||
        !cJSON_AddBoolToObject(validation, "meets_limits", ev->meets_limits) ||
        add_num(validation, "holdout_score", out->holdout_score) ||
        !cJSON_AddStringToObject(hyper, "granularity", "daily") || add_num(hyper, "days", d.days) ||
        add_num(hyper, "heat_min_c", cfg.heat_min_c) ||
        add_num(hyper, "heat_max_c", cfg.heat_max_c) ||
        add_num(hyper, "cool_min_c", cfg.cool_min_c) ||
        add_num(hyper, "cool_max_c", cfg.cool_max_c) || add_num(hyper, "step_c", cfg.step_c) ||
        add_num(hyper, "holdout_fraction", cfg.holdout_fraction) ||
        add_num(hyper, "cv_rmse_limit_pct", cfg.cv_rmse_limit) ||
        add_num(hyper, "nmbe_limit_pct", cfg.nmbe_limit) ||
        add_num(hyper, "heat_balance_c", res->model.heat_balance_c) ||
        add_num(hyper, "cool_balance_c", res->model.cool_balance_c) ||
        add_num(hyper, "utc_offset_hours", d.utc_offset_s / HOUR_S) ||
        !cJSON_AddBoolToObject(hyper, "labelled_hours_skipped", d.labels != NULL)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metrics");
        goto done;
    }
    static const char *const driver_names[] = {"production", "hdd", "cdd", "weekday"};
    const int used[] = {res->model.has_production, res->model.has_heating, res->model.has_cooling,
                        res->model.has_weekday};
    for (size_t i = 0; i < 4; i++) {
        cJSON *sname = used[i] ? cJSON_CreateString(driver_names[i]) : NULL;
        if (used[i] && (!sname || !cJSON_AddItemToArray(names, sname))) {
            cJSON_Delete(sname);
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metrics");
            goto done;
        }
    }
    if ((rc = finish_json(metrics, validation, hyper, out, err, errlen)) != ENMS_OK)
        goto done;
    rc = finish_artifact(model, names, &d, out, err, errlen);
    model = names = NULL; /* consumed */
    if (rc == ENMS_OK)
        report(&rep, 100, "saving");
done:
    if (rc != ENMS_OK)
        train_result_clear(out);
    cJSON_Delete(model);
    cJSON_Delete(names);
    cJSON_Delete(hyper);
    cJSON_Delete(validation);
    cJSON_Delete(metrics);
    free(res);
    data_free(&d);
    return rc;
}

int train_anomaly(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
                  char *err, size_t errlen)
{
    struct reporter rep = {.ctx = ctx};
    struct train_data d;
    struct anomaly_config cfg;
    struct anomaly_result *res = NULL; /* large: on the heap; anomaly_result_free */
    cJSON *metrics = NULL, *validation = NULL, *hyper = NULL, *names = NULL, *model = NULL;
    int rc;

    rc = load_data(job, ctx, &rep, ANOMALY_DEFAULT_DAYS, ANOMALY_NEED_DAYS, &d, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    if (!(res = calloc(1, sizeof *res))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    anomaly_config_default(&cfg);
    struct model_hooks hooks = part(&rep, 20, 90, "fitting");
    if ((rc = anomaly_fit(&d.s, NULL, d.labels, &cfg, &hooks, res, err, errlen)) != ENMS_OK)
        goto done;

    part(&rep, 90, 97, "evaluating");
    enum anomaly_detector best = res->model.default_detector;
    const struct anomaly_eval *ev = &res->eval[best];
    /* With labels, 1 - F1 of the default detector; without, its anomaly
     * rate (fewer alarms on the same data is better). */
    out->holdout_score = ev->labelled ? 1 - ev->f1 : ev->rate;
    out->training_samples = (int)ev->hours;
    out->data_start = d.s.n ? d.s.ts[0] : d.from;
    out->data_end = d.s.n ? d.s.ts[d.s.n - 1] + HOUR_S : d.to;
    out->eval_start = out->data_start;
    out->eval_end = out->data_end;
    out->eval_samples = (int)ev->hours;
    out->data_completeness = d.report.completeness;

    report(&rep, 97, "saving");
    const char *best_name = best == ANOMALY_IFOREST ? "isolation_forest" : "residual";
    metrics = anomaly_result_to_json(res);
    validation = cJSON_CreateObject();
    hyper = cJSON_CreateObject();
    names = cJSON_CreateArray();
    model = anomaly_model_to_json(&res->model);
    if (!metrics || !validation || !hyper || !names || !model ||
        add_common(metrics, "anomaly", &d) ||
        !cJSON_AddStringToObject(metrics, "detector", best_name) ||
        add_num(metrics, "anomaly_rate", ev->rate) ||
        add_num(metrics, "precision", ev->labelled ? ev->precision : NAN) ||
        add_num(metrics, "recall", ev->labelled ? ev->recall : NAN) ||
        add_num(metrics, "f1", ev->labelled ? ev->f1 : NAN) ||
        add_num(metrics, "holdout_score", out->holdout_score) ||
        !cJSON_AddStringToObject(metrics, "holdout_score_kind",
                                 ev->labelled ? "1 - F1 on labelled hours" : "anomaly rate") ||
        !cJSON_AddStringToObject(validation, "kind",
                                 ev->labelled ? "labelled training hours" : "training hours") ||
        !cJSON_AddStringToObject(validation, "detector", best_name) ||
        add_num(validation, "sample_count", (double)ev->hours) ||
        add_num(validation, "anomaly_rate", ev->rate) ||
        add_num(validation, "outlier_percentage", ev->rate * 100) ||
        add_num(validation, "precision", ev->labelled ? ev->precision : NAN) ||
        add_num(validation, "recall", ev->labelled ? ev->recall : NAN) ||
        add_num(validation, "f1", ev->labelled ? ev->f1 : NAN) ||
        (ev->labelled && (add_num(validation, "true_positives", (double)ev->tp) ||
                          add_num(validation, "false_positives", (double)ev->fp) ||
                          add_num(validation, "false_negatives", (double)ev->fn))) ||
        add_num(validation, "holdout_score", out->holdout_score) ||
        add_num(hyper, "days", d.days) || add_num(hyper, "trees", cfg.trees) ||
        add_num(hyper, "subsample", cfg.subsample) ||
        add_num(hyper, "contamination", cfg.contamination) ||
        add_num(hyper, "critical_share", cfg.critical_share) ||
        add_num(hyper, "seed", (double)cfg.seed) || add_num(hyper, "z_warning", cfg.z_warning) ||
        add_num(hyper, "z_critical", cfg.z_critical) || add_num(hyper, "cusum_k", cfg.cusum_k) ||
        add_num(hyper, "cusum_h", cfg.cusum_h) || add_num(hyper, "stuck_hours", cfg.stuck_hours) ||
        add_num(hyper, "utc_offset_hours", d.utc_offset_s / HOUR_S)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metrics");
        goto done;
    }
    for (int f = 0; f < ANOMALY_F_COUNT; f++) {
        if (!res->model.features[f])
            continue;
        cJSON *sname = cJSON_CreateString(anomaly_feature_name((enum anomaly_feature)f));
        if (!sname || !cJSON_AddItemToArray(names, sname)) {
            cJSON_Delete(sname);
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metrics");
            goto done;
        }
    }
    if ((rc = finish_json(metrics, validation, hyper, out, err, errlen)) != ENMS_OK)
        goto done;
    rc = finish_artifact(model, names, &d, out, err, errlen);
    model = names = NULL;
    if (rc == ENMS_OK)
        report(&rep, 100, "saving");
done:
    if (rc != ENMS_OK)
        train_result_clear(out);
    cJSON_Delete(model);
    cJSON_Delete(names);
    cJSON_Delete(hyper);
    cJSON_Delete(validation);
    cJSON_Delete(metrics);
    if (res)
        anomaly_result_free(res);
    free(res);
    data_free(&d);
    return rc;
}

/* Holdout errors of a forecast: MAPE over nonzero actuals, RMSE, MASE with
 * the seasonal naive scale over train (period m), and the share of actuals
 * inside the 80 % and 95 % intervals. */
struct forecast_eval {
    size_t n;
    double mape, rmse, mae, mase, coverage80, coverage95;
};

static void forecast_evaluate(const double *train, size_t ntrain, const double *actual,
                              const double *mean, const double *se, size_t h, int m,
                              struct forecast_eval *ev)
{
    double ape = 0, sse = 0, sae = 0, scale = 0;
    size_t nape = 0, nscale = 0, in80 = 0, in95 = 0;
    memset(ev, 0, sizeof *ev);
    for (size_t i = 0; i < h; i++) {
        if (!isfinite(actual[i]) || !isfinite(mean[i]))
            continue;
        double e = actual[i] - mean[i];
        ev->n++;
        sse += e * e;
        sae += fabs(e);
        if (fabs(actual[i]) > 1e-9) {
            ape += fabs(e / actual[i]);
            nape++;
        }
        in80 += fabs(e) <= 1.2815515655446004 * se[i];
        in95 += fabs(e) <= 1.959963984540054 * se[i];
    }
    size_t lag = m > 1 ? (size_t)m : 1;
    for (size_t t = lag; t < ntrain; t++) {
        if (isfinite(train[t]) && isfinite(train[t - lag])) {
            scale += fabs(train[t] - train[t - lag]);
            nscale++;
        }
    }
    ev->mape = nape ? ape / (double)nape * 100 : NAN;
    ev->rmse = ev->n ? sqrt(sse / (double)ev->n) : NAN;
    ev->mae = ev->n ? sae / (double)ev->n : NAN;
    ev->mase = ev->n && nscale && scale > 0 ? ev->mae / (scale / (double)nscale) : NAN;
    ev->coverage80 = ev->n ? (double)in80 / (double)ev->n : NAN;
    ev->coverage95 = ev->n ? (double)in95 / (double)ev->n : NAN;
}

/* The readings on a regular hourly grid from the first to the last hour,
 * NAN where an hour has no reading (the Kalman filter skips it); the first
 * reading of an hour wins. *grid is malloc'd (caller frees). */
static int hourly_grid(const struct series *s, double **grid, size_t *n, char *err, size_t errlen)
{
    *grid = NULL;
    *n = 0;
    if (s->n == 0)
        return ENMS_OK;
    time_t t0 = s->ts[0] - (s->ts[0] % HOUR_S);
    size_t len = (size_t)((s->ts[s->n - 1] - t0) / HOUR_S) + 1;
    double *g = malloc(len * sizeof *g);
    unsigned char *seen = calloc(len, 1);
    if (!g || !seen) {
        free(g);
        free(seen);
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building the hourly series");
    }
    for (size_t i = 0; i < len; i++)
        g[i] = NAN;
    for (size_t i = 0; i < s->n; i++) {
        size_t k = (size_t)((s->ts[i] - t0) / HOUR_S);
        if (k < len && !seen[k]) {
            seen[k] = 1;
            g[k] = s->energy[i];
        }
    }
    free(seen);
    *grid = g;
    *n = len;
    return ENMS_OK;
}

int train_forecast_arima(const struct job_record *job, struct train_ctx *ctx,
                         struct train_result *out, char *err, size_t errlen)
{
    struct reporter rep = {.ctx = ctx};
    struct train_data d;
    struct arima_auto_opts opts;
    struct arima_auto_report arep;
    struct arima_model *fit = NULL; /* arima_free */
    struct forecast_eval ev;
    double *grid = NULL, *buf = NULL;
    size_t n = 0;
    cJSON *metrics = NULL, *validation = NULL, *hyper = NULL, *names = NULL, *model = NULL;
    char label[96];
    int rc;

    rc = load_data(job, ctx, &rep, FORECAST_DEFAULT_DAYS, FORECAST_NEED_DAYS, &d, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    if ((rc = hourly_grid(&d.s, &grid, &n, err, errlen)) != ENMS_OK)
        goto done;
    size_t h = (size_t)floor((double)n * ARIMA_HOLDOUT_FRACTION);
    if (h > ARIMA_MAX_HOLDOUT_HOURS)
        h = ARIMA_MAX_HOLDOUT_HOURS;
    size_t ntrain = n - h;
    size_t nfit = ntrain > ARIMA_MAX_TRAIN_HOURS ? ARIMA_MAX_TRAIN_HOURS : ntrain;
    size_t first = ntrain - nfit; /* grid index of the first fitted hour */
    if (h == 0 || nfit < (size_t)FORECAST_NEED_DAYS * 24 / 2) {
        rc = series_insufficient(err, errlen, n / 24, FORECAST_NEED_DAYS, "days");
        goto done;
    }
    time_t t0 = d.s.ts[0] - (d.s.ts[0] % HOUR_S);

    arima_auto_defaults(&opts, ARIMA_DEFAULT_PERIOD);
    /* The daily cycle of hourly data as Fourier terms with ARMA errors, not
     * seasonal ARMA: a seasonal model at m = 24 carries a state of 50 or
     * more, and its stepwise search took minutes on demo machines, where
     * the Fourier form fits in about a second (docs/worker.md). */
    opts.fourier_above = 12;
    struct model_hooks hooks = part(&rep, 20, 90, "fitting");
    rc = arima_auto(grid + first, nfit, &opts, &hooks, &fit, &arep, err, errlen);
    if (rc != ENMS_OK)
        goto done;

    part(&rep, 90, 97, "evaluating");
    if (hook_stop(&rep)) {
        rc = ENMS_ESTOPPED;
        goto done;
    }
    if (!(buf = malloc(2 * h * sizeof *buf))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory forecasting");
        goto done;
    }
    if ((rc = arima_forecast(fit, h, buf, buf + h, err, errlen)) != ENMS_OK)
        goto done;
    forecast_evaluate(grid + first, nfit, grid + ntrain, buf, buf + h, h, ARIMA_DEFAULT_PERIOD,
                      &ev);
    arima_label(&fit->spec, label, sizeof label);
    out->holdout_score = ev.mape;
    out->training_samples = (int)nfit;
    out->data_start = t0 + (time_t)first * HOUR_S;
    out->data_end = t0 + (time_t)ntrain * HOUR_S;
    out->eval_start = out->data_end;
    out->eval_end = t0 + (time_t)n * HOUR_S;
    out->eval_samples = (int)ev.n;
    out->data_completeness = d.report.completeness;

    report(&rep, 97, "saving");
    const struct arima_order *o = &fit->spec.order;
    cJSON *order = NULL, *seasonal = NULL, *ho = NULL;
    metrics = cJSON_CreateObject();
    validation = cJSON_CreateObject();
    hyper = cJSON_CreateObject();
    names = cJSON_CreateArray();
    model = arima_to_json(fit, err, errlen);
    if (!model) {
        rc = ENMS_ENOMEM;
        goto done;
    }
    const int ord[3] = {o->p, o->d, o->q}, sord[3] = {o->P, o->D, o->Q};
    if (!metrics || !validation || !hyper || !names || add_common(metrics, "forecast_arima", &d) ||
        !cJSON_AddStringToObject(metrics, "model", label) ||
        !(order = cJSON_CreateIntArray(ord, 3)) ||
        !cJSON_AddItemToObject(metrics, "order", order) ||
        !(seasonal = cJSON_CreateIntArray(sord, 3)) ||
        !cJSON_AddItemToObject(metrics, "seasonal", seasonal) || add_num(metrics, "period", o->m) ||
        add_num(metrics, "fourier_k", fit->spec.fourier_k) ||
        add_num(metrics, "fourier_period", fit->spec.fourier_period) ||
        add_num(metrics, "sigma2", fit->sigma2) || add_num(metrics, "loglik", fit->loglik) ||
        add_num(metrics, "aic", fit->aic) || add_num(metrics, "aicc", fit->aicc) ||
        add_num(metrics, "bic", fit->bic) ||
        add_num(metrics, "models_fitted", arep.models_fitted) ||
        add_num(metrics, "training_hours", (double)nfit) ||
        add_num(metrics, "holdout_hours", (double)h) ||
        !(ho = cJSON_AddObjectToObject(metrics, "holdout")) || add_num(ho, "mape_pct", ev.mape) ||
        add_num(ho, "rmse", ev.rmse) || add_num(ho, "mae", ev.mae) ||
        add_num(ho, "mase", ev.mase) || add_num(ho, "coverage_80", ev.coverage80) ||
        add_num(ho, "coverage_95", ev.coverage95) || add_num(metrics, "mape_pct", ev.mape) ||
        add_num(metrics, "holdout_score", out->holdout_score) ||
        !cJSON_AddStringToObject(metrics, "holdout_score_kind", "holdout MAPE %") ||
        !cJSON_AddStringToObject(validation, "kind", "holdout") ||
        add_num(validation, "sample_count", (double)ev.n) || add_num(validation, "mape", ev.mape) ||
        add_num(validation, "rmse", ev.rmse) || add_num(validation, "mae", ev.mae) ||
        add_num(validation, "mase", ev.mase) || add_num(validation, "coverage_80", ev.coverage80) ||
        add_num(validation, "coverage_95", ev.coverage95) ||
        add_num(validation, "holdout_score", out->holdout_score) ||
        add_num(hyper, "days", d.days) || add_num(hyper, "period", ARIMA_DEFAULT_PERIOD) ||
        add_num(hyper, "max_train_hours", ARIMA_MAX_TRAIN_HOURS) ||
        add_num(hyper, "holdout_hours", (double)h) || add_num(hyper, "max_p", opts.max_p) ||
        add_num(hyper, "max_q", opts.max_q) || add_num(hyper, "max_P", opts.max_P) ||
        add_num(hyper, "max_Q", opts.max_Q) || add_num(hyper, "d", arep.d) ||
        add_num(hyper, "D", arep.D) ||
        !cJSON_AddBoolToObject(hyper, "include_mean", fit->spec.include_mean) ||
        !cJSON_AddBoolToObject(hyper, "include_drift", fit->spec.include_drift)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metrics");
        goto done;
    }
    cJSON *sname = cJSON_CreateString("energy_kwh");
    if (!sname || !cJSON_AddItemToArray(names, sname)) {
        cJSON_Delete(sname);
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metrics");
        goto done;
    }
    if ((rc = finish_json(metrics, validation, hyper, out, err, errlen)) != ENMS_OK)
        goto done;
    rc = finish_artifact(model, names, &d, out, err, errlen);
    model = names = NULL;
    if (rc == ENMS_OK)
        report(&rep, 100, "saving");
done:
    if (rc != ENMS_OK)
        train_result_clear(out);
    cJSON_Delete(model);
    cJSON_Delete(names);
    cJSON_Delete(hyper);
    cJSON_Delete(validation);
    cJSON_Delete(metrics);
    arima_free(fit);
    free(buf);
    free(grid);
    data_free(&d);
    return rc;
}
