/* perf_record.c - recording one evaluation of a deployed model: metric
 * checks, the version it belongs to, data completeness of its window,
 * performance drift against the version's validation metrics, the
 * model_performance_metrics row, and on drift the alert and automatic
 * retrain (alerts.c). It does not compute metrics from data: the API's
 * clients and the worker's evaluation jobs bring them. */
#include "perf_record.h"
#include "alerts.h"
#include "error.h"
#include "log.h"
#include "pg.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum direction { LOWER = 1, HIGHER = 0 };

/* What we know about a metric: its canonical name, one alias, the column
 * of model_performance_metrics it fills (NULL: JSON only), its range, and
 * which way is better. */
struct metric_rule {
    const char *name;
    const char *alias;
    const char *column;
    double min, max;
    int integer;   /* a count: whole number */
    int lower;     /* enum direction */
    double floor;  /* perf_degradation's smallest reference */
    int two_sided; /* degradation is the distance either way */
};

#define PCT_FLOOR  1.0
#define FRAC_FLOOR 0.01
#define ABS_FLOOR  1e-9

static const struct metric_rule RULES[] = {
    {"r_squared", "r2", "r_squared", -INFINITY, 1, 0, HIGHER, FRAC_FLOOR, 0},
    {"rmse", NULL, "rmse", 0, INFINITY, 0, LOWER, ABS_FLOOR, 0},
    {"mae", NULL, "mae", 0, INFINITY, 0, LOWER, ABS_FLOOR, 0},
    {"mape", "mape_pct", "mape", 0, INFINITY, 0, LOWER, PCT_FLOOR, 0},
    {"mase", NULL, NULL, 0, INFINITY, 0, LOWER, ABS_FLOOR, 0},
    {"mse", NULL, NULL, 0, INFINITY, 0, LOWER, ABS_FLOOR, 0},
    {"cv_rmse_pct", NULL, NULL, 0, INFINITY, 0, LOWER, PCT_FLOOR, 0},
    {"precision", "precision_score", "precision_score", 0, 1, 0, HIGHER, FRAC_FLOOR, 0},
    {"recall", "recall_score", "recall_score", 0, 1, 0, HIGHER, FRAC_FLOOR, 0},
    {"f1", "f1_score", "f1_score", 0, 1, 0, HIGHER, FRAC_FLOOR, 0},
    {"accuracy", NULL, NULL, 0, 1, 0, HIGHER, FRAC_FLOOR, 0},
    {"anomaly_rate", NULL, NULL, 0, 1, 0, LOWER, FRAC_FLOOR, 1},
    {"outlier_percentage", NULL, "outlier_percentage", 0, 100, 0, LOWER, PCT_FLOOR, 1},
    {"true_positives", "tp", "true_positives", 0, INT_MAX, 1, HIGHER, ABS_FLOOR, 0},
    {"false_positives", "fp", "false_positives", 0, INT_MAX, 1, LOWER, ABS_FLOOR, 0},
    {"true_negatives", "tn", "true_negatives", 0, INT_MAX, 1, HIGHER, ABS_FLOOR, 0},
    {"false_negatives", "fn", "false_negatives", 0, INT_MAX, 1, LOWER, ABS_FLOOR, 0},
};
#define RULE_COUNT (sizeof RULES / sizeof RULES[0])

/* The columns perf_record fills, in the order of its INSERT's $12..$22. */
static const char *const COLUMNS[] = {"r_squared",
                                      "rmse",
                                      "mae",
                                      "mape",
                                      "precision",
                                      "recall",
                                      "f1",
                                      "true_positives",
                                      "false_positives",
                                      "true_negatives",
                                      "false_negatives",
                                      "outlier_percentage"};
#define COLUMN_COUNT (sizeof COLUMNS / sizeof COLUMNS[0])

static const char *const MAIN_BASELINE[] = {"cv_rmse_pct", "r_squared", "rmse", "mae", NULL};
static const char *const MAIN_FORECAST[] = {"mape", "rmse", "mase", "mae", NULL};
static const char *const MAIN_ANOMALY[] = {"f1", "anomaly_rate", NULL};

static const struct metric_rule *rule_of(const char *metric)
{
    if (!metric)
        return NULL;
    for (size_t i = 0; i < RULE_COUNT; i++)
        if (strcmp(RULES[i].name, metric) == 0 ||
            (RULES[i].alias && strcmp(RULES[i].alias, metric) == 0))
            return &RULES[i];
    return NULL;
}

static const char *const *main_list(const char *model_type)
{
    if (!model_type)
        return NULL;
    if (strcmp(model_type, "baseline") == 0)
        return MAIN_BASELINE;
    if (strcmp(model_type, "forecast_arima") == 0)
        return MAIN_FORECAST;
    if (strcmp(model_type, "anomaly") == 0)
        return MAIN_ANOMALY;
    return NULL;
}

const char *perf_metric_canonical(const char *metric)
{
    const struct metric_rule *r = rule_of(metric);
    return r ? r->name : NULL;
}

int perf_metric_lower_is_better(const char *metric)
{
    const struct metric_rule *r = rule_of(metric);
    return r ? r->lower : -1;
}

static double number_of(const cJSON *obj, const char *key)
{
    const cJSON *item = key ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return NAN;
    return item->valuedouble;
}

double perf_metric_value(const cJSON *metrics, const char *metric)
{
    const struct metric_rule *r = rule_of(metric);
    if (!cJSON_IsObject(metrics))
        return NAN;
    if (!r)
        return number_of(metrics, metric);
    double v = number_of(metrics, r->name);
    return isfinite(v) ? v : number_of(metrics, r->alias);
}

const char *perf_main_metric(const char *model_type, const cJSON *metrics)
{
    const char *const *list = main_list(model_type);
    for (size_t i = 0; list && list[i]; i++)
        if (isfinite(perf_metric_value(metrics, list[i])))
            return list[i];
    return NULL;
}

double perf_degradation(const char *metric, double validation_value, double recent_value)
{
    const struct metric_rule *r = rule_of(metric);
    if (!r || !isfinite(validation_value) || !isfinite(recent_value))
        return NAN;
    double ref = fmax(fabs(validation_value), r->floor);
    double worse;
    if (r->two_sided)
        worse = fabs(recent_value - validation_value);
    else if (r->lower == LOWER)
        worse = recent_value - validation_value;
    else
        worse = validation_value - recent_value;
    return worse > 0 ? worse / ref : 0.0;
}

static int name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PERF_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

int perf_metrics_validate(const cJSON *metrics, char *err, size_t errlen)
{
    if (!cJSON_IsObject(metrics))
        return enms_fail(err, errlen, ENMS_EINVAL, "metrics: must be a JSON object");
    int count = cJSON_GetArraySize(metrics);
    if (count == 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "metrics: at least one metric is required");
    if (count > PERF_MAX_METRICS)
        return enms_fail(err, errlen, ENMS_EINVAL, "metrics: %d given, at most %d allowed", count,
                         PERF_MAX_METRICS);
    for (const cJSON *m = metrics->child; m; m = m->next) {
        const char *name = m->string;
        if (!name_valid(name))
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "metric \"%.80s\": name must match ^[a-z][a-z0-9_]{0,63}$",
                             name ? name : "");
        if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble))
            return enms_fail(err, errlen, ENMS_EINVAL, "metric %s: must be a finite number", name);
        const struct metric_rule *r = rule_of(name);
        for (const cJSON *o = metrics->child; o != m; o = o->next)
            if (strcmp(o->string, name) == 0 || (r && rule_of(o->string) == r))
                return enms_fail(err, errlen, ENMS_EINVAL, "metric %s: given twice (as %s)", name,
                                 o->string);
        if (!r)
            continue;
        double v = m->valuedouble;
        if (v < r->min || v > r->max)
            return enms_fail(err, errlen, ENMS_EINVAL, "metric %s: %g is outside [%g, %g]", name, v,
                             r->min, r->max);
        if (r->integer && v != floor(v))
            return enms_fail(err, errlen, ENMS_EINVAL, "metric %s: must be a whole number", name);
    }
    return ENMS_OK;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" for PostgreSQL, from microseconds. */
static int format_us(long long us, char *buf, size_t len)
{
    long long s = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    long long frac = us - s * 1000000;
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -1;
    int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static const char *num_param(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        return NULL;
    snprintf(buf, len, "%.17g", v);
    return buf;
}

/* The version being evaluated and its validation metrics. */
struct version_info {
    char id[37];
    int version;
    cJSON *validation; /* model_training_history.validation_metrics; owned */
    cJSON *metrics;    /* model_versions.metrics; owned */
};

static int load_version(PGconn *conn, const struct perf_record_input *in, struct version_info *v,
                        char *err, size_t errlen)
{
    const char *one[] = {in->machine_id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK, "SELECT 1 FROM machines WHERE id = $1::uuid", 1,
                            one, err, errlen);
    if (!res)
        return ENMS_EDB;
    int found = PQntuples(res) == 1;
    PQclear(res);
    if (!found)
        return enms_fail(err, errlen, ENMS_ENOTFOUND, "machine %s not found", in->machine_id);

    const char *params[] = {in->model_id, in->machine_id, in->model_type};
    /* By id when given (then checked against machine and type), else the
     * active version of the machine and type. */
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT v.id::text, v.version, v.machine_id::text, v.model_type, "
                  "COALESCE(h.validation_metrics, '{}')::text, v.metrics::text "
                  "FROM model_versions v "
                  "LEFT JOIN model_training_history h ON h.id = v.training_job_id "
                  "WHERE CASE WHEN $1::uuid IS NULL THEN v.machine_id = $2::uuid "
                  "AND v.model_type = $3 AND v.is_active ELSE v.id = $1::uuid END",
                  3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) == 0) {
        if (in->model_id)
            rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "model version %s not found", in->model_id);
        else
            rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "machine %s has no active %s model version",
                           in->machine_id, in->model_type);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 2), in->machine_id) != 0 ||
        strcmp(PQgetvalue(res, 0, 3), in->model_type) != 0) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "model_id: version %s is a %s model of machine %s, not a %s model of "
                       "machine %s",
                       in->model_id, PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 2), in->model_type,
                       in->machine_id);
        goto done;
    }
    snprintf(v->id, sizeof v->id, "%s", PQgetvalue(res, 0, 0));
    v->version = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
    v->validation = cJSON_Parse(PQgetvalue(res, 0, 4));
    v->metrics = cJSON_Parse(PQgetvalue(res, 0, 5));
    if (!v->validation || !v->metrics)
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory reading version metrics");
done:
    PQclear(res);
    return rc;
}

/* Readings of the machine in [start, end) and their share of the hours the
 * window spans, in percent. */
static int measure_window(PGconn *conn, const char *machine_id, const char *start, const char *end,
                          long long span_us, int *count, double *completeness, char *err,
                          size_t errlen)
{
    const char *params[] = {machine_id, start, end};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT count(*) FROM energy_readings WHERE machine_id = $1::uuid "
                            "AND ts >= $2::timestamptz AND ts < $3::timestamptz",
                            3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    long long hours = (span_us + 3600LL * 1000000 - 1) / (3600LL * 1000000);
    *count = n > INT_MAX ? INT_MAX : (int)n;
    *completeness = hours > 0 ? fmin(100.0, 100.0 * (double)n / (double)hours) : 0.0;
    return ENMS_OK;
}

/* The validation value of metric: the training job's validation metrics
 * first, then the version's own metrics (rows written outside the
 * pipeline may carry only those). */
static double validation_value(const struct version_info *v, const char *metric)
{
    double x = perf_metric_value(v->validation, metric);
    return isfinite(x) ? x : perf_metric_value(v->metrics, metric);
}

/* Picks the main metric: the first of the type's list that both the
 * evaluation and the version's validation hold; failing that, the first
 * the evaluation holds (drift then cannot be judged). */
static const char *choose_main(const char *model_type, const cJSON *metrics,
                               const struct version_info *v)
{
    const char *const *list = main_list(model_type);
    for (size_t i = 0; list && list[i]; i++)
        if (isfinite(perf_metric_value(metrics, list[i])) && isfinite(validation_value(v, list[i])))
            return list[i];
    return perf_main_metric(model_type, metrics);
}

static void recommend(struct perf_record_result *out)
{
    size_t n = sizeof out->recommendation;
    if (!out->main_metric[0])
        snprintf(out->recommendation, n,
                 "No main metric in this evaluation: drift not judged. Send one of the model "
                 "type's main metrics.");
    else if (!isfinite(out->drift_score))
        snprintf(out->recommendation, n,
                 "Version %d has no validation value of %s: drift not judged. Keep monitoring.",
                 out->model_version, out->main_metric);
    else if (out->drift_detected)
        snprintf(out->recommendation, n,
                 "Performance drift: %s is %.4g against %.4g at validation (%.0f%% worse, limit "
                 "%.0f%%). Retrain the model on recent data.",
                 out->main_metric, out->main_value, out->validation_value, out->drift_score * 100,
                 out->drift_threshold * 100);
    else
        snprintf(out->recommendation, n,
                 "No performance drift: %s is %.4g against %.4g at validation (limit %.0f%% "
                 "worse). Keep monitoring.",
                 out->main_metric, out->main_value, out->validation_value,
                 out->drift_threshold * 100);
}

static int check_input(const struct perf_record_input *in, char *err, size_t errlen)
{
    if (!in->machine_id || !in->model_type)
        return enms_fail(err, errlen, ENMS_EINVAL, "machine_id and model_type are required");
    if (!main_list(in->model_type))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "model_type: must be baseline, anomaly or forecast_arima");
    if (in->eval_start_us >= in->eval_end_us)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "evaluation_end: must be after evaluation_start");
    if (in->eval_end_us - in->eval_start_us > PERF_MAX_WINDOW_S * 1000000)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "evaluation_end: the window may span at most %lld days",
                         PERF_MAX_WINDOW_S / 86400);
    return perf_metrics_validate(in->metrics, err, errlen);
}

/* The named columns' values as text parameters (NULL when absent). */
static void column_params(const cJSON *metrics, char buf[][40], const char **params)
{
    for (size_t i = 0; i < COLUMN_COUNT; i++)
        params[i] = num_param(perf_metric_value(metrics, COLUMNS[i]), buf[i], 40);
}

/* BEGIN; the metrics row; on drift the alert; COMMIT. */
static int write_row(PGconn *conn, const struct perf_record_input *in, const char *start,
                     const char *end, char *metrics_text, struct perf_record_result *out, char *err,
                     size_t errlen)
{
    char version[16], count[16], compl [40], score[40], thr[40], colbuf[COLUMN_COUNT][40];
    const char *cols[COLUMN_COUNT];
    PGresult *res = NULL;
    cJSON *meta = NULL, *details = NULL;
    char *meta_text = NULL;
    int rc;

    snprintf(version, sizeof version, "%d", out->model_version);
    snprintf(count, sizeof count, "%d", out->sample_count);
    column_params(in->metrics, colbuf, cols);
    meta = cJSON_CreateObject();
    if (!meta || !cJSON_AddStringToObject(meta, "main_metric", out->main_metric) ||
        !(isfinite(out->validation_value)
              ? cJSON_AddNumberToObject(meta, "validation_value", out->validation_value)
              : cJSON_AddNullToObject(meta, "validation_value")) ||
        !(meta_text = cJSON_PrintUnformatted(meta))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building metadata");
        goto done;
    }
    const char *params[] = {out->model_id,
                            in->model_type,
                            in->machine_id,
                            version,
                            start,
                            end,
                            count,
                            metrics_text,
                            out->drift_detected ? "t" : "f",
                            num_param(out->drift_score, score, sizeof score),
                            num_param(out->drift_threshold, thr, sizeof thr),
                            cols[0],
                            cols[1],
                            cols[2],
                            cols[3],
                            cols[4],
                            cols[5],
                            cols[6],
                            cols[7],
                            cols[8],
                            cols[9],
                            cols[10],
                            cols[11],
                            num_param(out->data_completeness, compl, sizeof compl ),
                            in->evaluation_notes,
                            in->created_by,
                            meta_text};
    if ((rc = pg_command(conn, "BEGIN", err, errlen)) != ENMS_OK)
        goto done;
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "INSERT INTO model_performance_metrics (model_id, model_type, machine_id, "
                  "model_version, evaluation_date, evaluation_start, evaluation_end, "
                  "sample_count, metrics, drift_detected, drift_score, drift_threshold, "
                  "r_squared, rmse, mae, mape, precision_score, recall_score, f1_score, "
                  "true_positives, false_positives, true_negatives, false_negatives, "
                  "outlier_percentage, data_completeness, evaluation_notes, created_by, metadata) "
                  "VALUES ($1::uuid, $2, $3::uuid, $4::int, $6::timestamptz, $5::timestamptz, "
                  "$6::timestamptz, $7::int, $8::jsonb, $9::boolean, $10::float8, $11::float8, "
                  "$12::float8, $13::float8, $14::float8, $15::float8, $16::float8, $17::float8, "
                  "$18::float8, $19::int, $20::int, $21::int, $22::int, $23::float8, $24::float8, "
                  "$25, $26, $27::jsonb) RETURNING id::text",
                  27, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto fail;
    }
    snprintf(out->metric_id, sizeof out->metric_id, "%s", PQgetvalue(res, 0, 0));
    if (out->drift_detected) {
        char message[256];
        snprintf(message, sizeof message,
                 "Performance drift on %s v%d: %s %.4g against %.4g at validation (%.0f%% worse)",
                 in->model_type, out->model_version, out->main_metric, out->main_value,
                 out->validation_value, out->drift_score * 100);
        details = cJSON_CreateObject();
        if (!details || !cJSON_AddStringToObject(details, "drift_type", "concept_drift") ||
            !cJSON_AddStringToObject(details, "metric", out->main_metric) ||
            !cJSON_AddNumberToObject(details, "validation_value", out->validation_value) ||
            !cJSON_AddNumberToObject(details, "recent_value", out->main_value) ||
            !cJSON_AddNumberToObject(details, "drift_score", out->drift_score) ||
            !cJSON_AddNumberToObject(details, "threshold", out->drift_threshold) ||
            !cJSON_AddStringToObject(details, "metric_id", out->metric_id) ||
            !cJSON_AddStringToObject(details, "evaluation_start", start) ||
            !cJSON_AddStringToObject(details, "evaluation_end", end)) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building the alert");
            goto fail;
        }
        struct alert_input a = {
            .alert_type = "drift_detected",
            .severity = out->drift_score >= 2 * out->drift_threshold ? "critical" : "warning",
            .machine_id = in->machine_id,
            .model_type = in->model_type,
            .model_id = out->model_id,
            .model_version = out->model_version,
            .message = message,
            .details = details,
            .current_value = out->main_value,
            .threshold_value = out->drift_threshold,
            .baseline_value = out->validation_value};
        if ((rc = alert_raise(conn, &a, out->alert_id, err, errlen)) != ENMS_OK)
            goto fail;
    }
    if ((rc = pg_command(conn, "COMMIT", err, errlen)) != ENMS_OK)
        goto fail;
    goto done;
fail:
    out->metric_id[0] = out->alert_id[0] = '\0';
    if (PQstatus(conn) == CONNECTION_OK) {
        char rerr[128];
        pg_command(conn, "ROLLBACK", rerr, sizeof rerr);
    }
done:
    PQclear(res);
    cJSON_Delete(details);
    cJSON_free(meta_text);
    cJSON_Delete(meta);
    return rc;
}

int perf_record(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                const struct perf_record_input *in, struct perf_record_result *out, char *err,
                size_t errlen)
{
    struct version_info v = {0};
    char start[40], end[40];
    char *metrics_text = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    out->drift_score = out->main_value = out->validation_value = NAN;
    out->drift_threshold = cfg->drift_perf;
    if ((rc = check_input(in, err, errlen)) != ENMS_OK)
        goto done;
    if (format_us(in->eval_start_us, start, sizeof start) ||
        format_us(in->eval_end_us, end, sizeof end)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "evaluation window: time out of range");
        goto done;
    }
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        rc = enms_fail(err, errlen, ENMS_EINTERNAL,
                       "perf_record must be called outside a "
                       "transaction");
        goto done;
    }
    if (!(metrics_text = cJSON_PrintUnformatted(in->metrics))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory printing metrics");
        goto done;
    }
    if ((rc = load_version(conn, in, &v, err, errlen)) != ENMS_OK)
        goto done;
    snprintf(out->model_id, sizeof out->model_id, "%s", v.id);
    out->model_version = v.version;
    if ((rc = measure_window(conn, in->machine_id, start, end, in->eval_end_us - in->eval_start_us,
                             &out->sample_count, &out->data_completeness, err, errlen)) != ENMS_OK)
        goto done;

    const char *main = choose_main(in->model_type, in->metrics, &v);
    if (main) {
        snprintf(out->main_metric, sizeof out->main_metric, "%s", main);
        out->main_value = perf_metric_value(in->metrics, main);
        out->validation_value = validation_value(&v, main);
        out->drift_score = perf_degradation(main, out->validation_value, out->main_value);
    }
    out->drift_detected = isfinite(out->drift_score) && out->drift_score > cfg->drift_perf;
    recommend(out);

    if ((rc = write_row(conn, in, start, end, metrics_text, out, err, errlen)) != ENMS_OK)
        goto done;
    if (out->drift_detected) {
        char reason[200], rerr[256];
        snprintf(reason, sizeof reason, "performance drift: %s %.4g against %.4g at validation",
                 out->main_metric, out->main_value, out->validation_value);
        if (alert_auto_retrain(conn, redis, cfg, out->alert_id, in->machine_id, in->model_type,
                               reason, &out->retrain_triggered, out->retrain_job_id, rerr,
                               sizeof rerr) == ENMS_OK) {
            /* Read back what the rule recorded on the alert. */
            const char *one[] = {out->alert_id};
            PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                                    "SELECT COALESCE(auto_action_result, '') FROM model_alerts "
                                    "WHERE id = $1::uuid",
                                    1, one, rerr, sizeof rerr);
            if (res && PQntuples(res) == 1)
                snprintf(out->auto_action_result, sizeof out->auto_action_result, "%s",
                         PQgetvalue(res, 0, 0));
            PQclear(res);
        } else {
            log_warn("metric %s: auto retrain not applied: %s", out->metric_id, rerr);
            snprintf(out->auto_action_result, sizeof out->auto_action_result, "failed: %.150s",
                     rerr);
        }
    }
done:
    cJSON_Delete(v.validation);
    cJSON_Delete(v.metrics);
    cJSON_free(metrics_text);
    return rc;
}
