/* drift_check.c - input and performance drift of one model version, and
 * what happens on drift (see drift_check.h and docs/drift.md).
 *
 * Owns the choice of what is compared with what; the statistics come from
 * stats.c, the baseline's predictions from worker/models, the performance
 * metric's meaning from perf_record.c and the alert and retrain from
 * alerts.c. Everything is compared per local day: hourly energy is
 * dominated by the daily and weekly cycle and by autocorrelated noise, and a
 * day is the unit the baseline models. */
#include "drift_check.h"
#include "readings_window.h"
#include "alerts.h"
#include "error.h"
#include "perf_record.h"
#include "pg.h"
#include "stats.h"
#include "../worker/models/baseline.h"
#include "../worker/models/series.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S  86400
#define HOUR_S 3600
/* Probabilities are floored here before their logarithm is taken. */
#define P_FLOOR 1e-300

static const char *const FEATURE_NAMES[DRIFT_FEATURES] = {"energy", "production", "temperature"};
static const char *const PERF_KEYS[4] = {"r_squared", "rmse", "mae", "mape"};

const char *drift_feature_name(enum drift_feature_id f)
{
    return (unsigned)f < DRIFT_FEATURES ? FEATURE_NAMES[f] : "other";
}

/* ---- pure comparisons -------------------------------------------------- */

/* Finite values of x copied to out; returns their count. */
static size_t finite_copy(const double *x, size_t n, double *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            out[k++] = x[i];
    return k;
}

static void feature_reset(struct drift_feature *f)
{
    f->evaluated = f->drifted = 0;
    f->n_ref = f->n_recent = 0;
    f->rho = f->n_eff_ref = f->n_eff_recent = NAN;
    f->psi = f->ks_d = f->ks_p_effective = f->mean_shift = NAN;
    f->median_ref = f->median_recent = NAN;
    f->ref_min = f->ref_max = f->share_out_of_range = NAN;
    f->min_shift = 0;
}

void drift_compare(const double *ref, size_t n_ref, const double *recent, size_t n_recent,
                   double min_shift, const struct enms_config *cfg, struct drift_feature *out)
{
    double *a = malloc((n_ref + 1) * sizeof *a), *b = malloc((n_recent + 1) * sizeof *b);
    struct stats_drift sd;
    char ebuf[128];
    feature_reset(out);
    if (!a || !b) {
        snprintf(out->reason, sizeof out->reason, "out of memory");
        goto done;
    }
    size_t na = finite_copy(ref, n_ref, a), nb = finite_copy(recent, n_recent, b);
    out->n_ref = na;
    out->n_recent = nb;
    if (na < DRIFT_MIN_DAYS || nb < DRIFT_MIN_DAYS) {
        snprintf(out->reason, sizeof out->reason,
                 "too few days to compare: %zu in the training window, %zu recent, need %d each",
                 na, nb, DRIFT_MIN_DAYS);
        goto done;
    }
    /* The reference's autocorrelation for both sides: a week of recent
     * values cannot estimate it, and the noise process is the same. */
    out->rho = stats_lag1_autocorr(a, na);
    out->n_eff_ref = stats_effective_n(na, out->rho);
    out->n_eff_recent = stats_effective_n(nb, out->rho);
    /* About five values per bin: PSI over ten bins of seven values is
     * noise (its expected value under no change is about bins / n). */
    int bins = (int)(nb / 5);
    if (bins < 2)
        bins = 2;
    if (bins > 10)
        bins = 10;
    if (stats_drift(a, na, b, nb, out->n_eff_ref, out->n_eff_recent, bins, &sd, ebuf,
                    sizeof ebuf) != 0) {
        snprintf(out->reason, sizeof out->reason, "not compared: %s", ebuf);
        goto done;
    }
    out->evaluated = 1;
    out->min_shift = min_shift;
    out->psi = sd.psi;
    out->ks_d = sd.ks_d;
    out->ks_p_effective = sd.ks_p;
    out->mean_shift = sd.mean_shift;
    out->median_ref = sd.median_ref;
    out->median_recent = sd.median_recent;
    double alpha = cfg->drift_ks_alpha / DRIFT_FEATURES;
    double shift = fabs(sd.median_recent - sd.median_ref);
    int significant = sd.ks_p < alpha;
    int moved = sd.psi > cfg->drift_psi;
    int material = shift > min_shift;
    out->drifted = significant && moved && material;
    if (out->drifted)
        snprintf(out->reason, sizeof out->reason,
                 "shifted: KS p %.3g < %.3g on effective sizes %.0f/%.0f, PSI %.2f > %g, "
                 "median moved %.4g (> %.4g)",
                 sd.ks_p, alpha, out->n_eff_ref, out->n_eff_recent, sd.psi, cfg->drift_psi, shift,
                 min_shift);
    else if (!significant)
        snprintf(out->reason, sizeof out->reason, "no significant shift: KS p %.3g >= %.3g",
                 sd.ks_p, alpha);
    else if (!moved)
        snprintf(out->reason, sizeof out->reason,
                 "significant (KS p %.3g) but the distribution barely moved: PSI %.2f <= %g",
                 sd.ks_p, sd.psi, cfg->drift_psi);
    else
        snprintf(out->reason, sizeof out->reason,
                 "significant (KS p %.3g) but immaterial: the median moved %.4g, limit %.4g",
                 sd.ks_p, shift, min_shift);
done:
    free(a);
    free(b);
}

void drift_compare_temperature(const double *ref, size_t n_ref, const double *recent,
                               size_t n_recent, const struct enms_config *cfg,
                               struct drift_feature *out)
{
    drift_compare(ref, n_ref, recent, n_recent, 0, cfg, out);
    if (!out->evaluated)
        return;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n_ref; i++) {
        if (isfinite(ref[i])) {
            lo = ref[i] < lo ? ref[i] : lo;
            hi = ref[i] > hi ? ref[i] : hi;
        }
    }
    size_t out_n = 0, k = 0;
    for (size_t i = 0; i < n_recent; i++) {
        if (!isfinite(recent[i]))
            continue;
        k++;
        out_n += recent[i] < lo - DRIFT_TEMP_MARGIN_C || recent[i] > hi + DRIFT_TEMP_MARGIN_C;
    }
    out->ref_min = lo;
    out->ref_max = hi;
    out->share_out_of_range = k ? (double)out_n / (double)k : 0;
    out->drifted = out->share_out_of_range > DRIFT_TEMP_SHARE;
    snprintf(out->reason, sizeof out->reason,
             "%s: %zu of %zu recent days more than %g degC outside the training range "
             "%.1f..%.1f degC (seasonal change inside it is modelled, not drift)",
             out->drifted ? "beyond the training range" : "within the training range", out_n, k,
             DRIFT_TEMP_MARGIN_C, lo, hi);
}

/* A feature's score in units of its thresholds (the weakest of its gates):
 * above 1 means drifted. */
static double feature_score(const struct drift_feature *f, enum drift_feature_id id,
                            const struct enms_config *cfg)
{
    if (!f->evaluated)
        return NAN;
    if (id == DRIFT_TEMPERATURE)
        return f->share_out_of_range / DRIFT_TEMP_SHARE;
    double p = f->ks_p_effective > P_FLOOR ? f->ks_p_effective : P_FLOOR;
    double ks = log(p) / log(cfg->drift_ks_alpha / DRIFT_FEATURES);
    double psi = f->psi / cfg->drift_psi;
    double s = ks < psi ? ks : psi;
    if (f->min_shift > 0) {
        double m = fabs(f->median_recent - f->median_ref) / f->min_shift;
        s = m < s ? m : s;
    }
    return s;
}

/* ---- loading ----------------------------------------------------------- */

static double num_or_nan(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

/* ---- the version and its context ---------------------------------------- */

struct version_info {
    char id[37];
    int version;
    time_t train_start, train_end; /* 0 when unknown */
    cJSON *validation;             /* the training job's validation_metrics; owned */
    cJSON *artifact;               /* owned */
};

static void version_free(struct version_info *v)
{
    cJSON_Delete(v->validation);
    cJSON_Delete(v->artifact);
    memset(v, 0, sizeof *v);
}

#define ISO_RE "'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'"
#define VERSION_COLUMNS                                                                            \
    "SELECT v.id::text, v.version, v.machine_id::text, v.model_type, v.artifact::text, "           \
    "extract(epoch FROM h.training_data_start)::bigint, "                                          \
    "extract(epoch FROM h.training_data_end)::bigint, "                                            \
    "COALESCE(h.validation_metrics, '{}')::text, "                                                 \
    "CASE WHEN v.artifact->'training_window'->>'start' ~ " ISO_RE                                  \
    " THEN extract(epoch FROM (v.artifact->'training_window'->>'start')::timestamptz)::bigint "    \
    "END, CASE WHEN v.artifact->'training_window'->>'end' ~ " ISO_RE                               \
    " THEN extract(epoch FROM (v.artifact->'training_window'->>'end')::timestamptz)::bigint END "  \
    "FROM model_versions v LEFT JOIN model_training_history h ON h.id = v.training_job_id "

/* Resolves the version to check: model_id, else the active version, else
 * the newest one. */
static int version_load(PGconn *conn, const struct drift_check_input *in, struct version_info *v,
                        char *err, size_t errlen)
{
    PGresult *res;
    memset(v, 0, sizeof *v);
    if (in->model_id) {
        const char *params[] = {in->model_id};
        res = pg_exec(conn, PGRES_TUPLES_OK, VERSION_COLUMNS "WHERE v.id = $1::uuid", 1, params,
                      err, errlen);
    } else {
        const char *params[] = {in->machine_id, in->model_type};
        res = pg_exec(conn, PGRES_TUPLES_OK,
                      VERSION_COLUMNS "WHERE v.machine_id = $1::uuid AND v.model_type = $2 "
                                      "ORDER BY v.is_active DESC, v.version DESC LIMIT 1",
                      2, params, err, errlen);
    }
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) != 1) {
        rc = in->model_id ? enms_fail(err, errlen, ENMS_ENOTFOUND, "model version %s not found",
                                      in->model_id)
                          : enms_fail(err, errlen, ENMS_ENOTFOUND,
                                      "no model version for %s on machine %s: train one first",
                                      in->model_type, in->machine_id);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 2), in->machine_id) != 0 ||
        strcmp(PQgetvalue(res, 0, 3), in->model_type) != 0) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND,
                       "model version %s is not a %s model of machine %s (it is %s of %s)",
                       in->model_id, in->model_type, in->machine_id, PQgetvalue(res, 0, 3),
                       PQgetvalue(res, 0, 2));
        goto done;
    }
    snprintf(v->id, sizeof v->id, "%s", PQgetvalue(res, 0, 0));
    v->version = atoi(PQgetvalue(res, 0, 1));
    v->artifact = cJSON_Parse(PQgetvalue(res, 0, 4));
    v->validation = cJSON_Parse(PQgetvalue(res, 0, 7));
    /* The job's data window first (what the model really used), else the
     * window the artifact names. */
    int s_col = PQgetisnull(res, 0, 5) ? 8 : 5, e_col = PQgetisnull(res, 0, 6) ? 9 : 6;
    if (!PQgetisnull(res, 0, s_col) && !PQgetisnull(res, 0, e_col)) {
        v->train_start = (time_t)strtoll(PQgetvalue(res, 0, s_col), NULL, 10);
        v->train_end = (time_t)strtoll(PQgetvalue(res, 0, e_col), NULL, 10);
    }
    if (v->train_end <= v->train_start)
        rc = enms_fail(err, errlen, ENMS_ECONFLICT,
                       "model version %s records no training window to compare with", v->id);
done:
    PQclear(res);
    if (rc != ENMS_OK)
        version_free(v);
    return rc;
}

/* The machine's baseline whose residuals stand for energy: the checked
 * version itself when it is a daily baseline, else the machine's active (or
 * newest) daily baseline. *have 0 when there is none. */
static int baseline_load(PGconn *conn, const char *machine_id, const char *model_type,
                         const struct version_info *v, struct baseline_model *m, int *version,
                         int *have, char *err, size_t errlen)
{
    char ebuf[256];
    *have = 0;
    if (strcmp(model_type, "baseline") == 0) {
        if (v->artifact && baseline_model_from_json(v->artifact, m, ebuf, sizeof ebuf) == ENMS_OK &&
            m->granularity == BASELINE_DAILY) {
            *have = 1;
            *version = v->version;
        }
        return ENMS_OK;
    }
    const char *params[] = {machine_id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT version, artifact::text FROM model_versions "
                            "WHERE machine_id = $1::uuid AND model_type = 'baseline' "
                            "ORDER BY is_active DESC, version DESC LIMIT 1",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) == 1) {
        cJSON *art = cJSON_Parse(PQgetvalue(res, 0, 1));
        if (art && baseline_model_from_json(art, m, ebuf, sizeof ebuf) == ENMS_OK &&
            m->granularity == BASELINE_DAILY) {
            *have = 1;
            *version = atoi(PQgetvalue(res, 0, 0));
        }
        cJSON_Delete(art);
    }
    PQclear(res);
    return ENMS_OK;
}

/* ---- features ------------------------------------------------------------ */

/* Median of the reference's values per local weekday (NAN: none). */
static void weekday_medians(const struct series_days *d, const double *x, double med[7])
{
    double *buf = malloc((d->n + 1) * sizeof *buf), *scratch = malloc((d->n + 1) * sizeof *scratch);
    for (int wd = 0; wd < 7; wd++) {
        size_t k = 0;
        for (size_t i = 0; buf && i < d->n; i++)
            if (d->weekday[i] == wd && isfinite(x[i]))
                buf[k++] = x[i];
        med[wd] = buf && scratch && k ? stats_quantile(buf, k, 0.5, scratch) : NAN;
    }
    free(buf);
    free(scratch);
}

/* x relative to the reference's weekday median: x / median - 1, NAN where
 * the median is not positive (e.g. no production on Sundays). */
static void relative_to_weekday(const struct series_days *d, const double *x, const double med[7],
                                double *out)
{
    for (size_t i = 0; i < d->n; i++) {
        double m = med[d->weekday[i]];
        out[i] = isfinite(x[i]) && isfinite(m) && m > 0 ? x[i] / m - 1 : NAN;
    }
}

/* Energy: baseline residuals (kWh per day) or, without a baseline, the
 * ratio to the weekday median. */
static int energy_values(const struct baseline_model *bm, int have_bm,
                         const struct readings_window *w, const double med[7], double *out,
                         char *err, size_t errlen)
{
    if (w->days.n == 0)
        return ENMS_OK;
    if (!have_bm) {
        relative_to_weekday(&w->days, w->days.energy, med, out);
        return ENMS_OK;
    }
    if (baseline_predict_days(bm, &w->days, out, err, errlen) != ENMS_OK)
        return ENMS_EINTERNAL;
    for (size_t i = 0; i < w->days.n; i++)
        out[i] = isfinite(out[i]) ? w->days.energy[i] - out[i] : NAN;
    return ENMS_OK;
}

static int compare_features(const struct enms_config *cfg, const struct baseline_model *bm,
                            int have_bm, int bm_version, const struct readings_window *ref,
                            const struct readings_window *rec, struct drift_check_result *out,
                            char *err, size_t errlen)
{
    size_t nr = ref->days.n, nc = rec->days.n;
    double *a = malloc((nr + 1) * sizeof *a), *b = malloc((nc + 1) * sizeof *b);
    double med[7];
    int rc = ENMS_OK;
    if (!a || !b) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory comparing features");
        goto done;
    }

    struct drift_feature *f = &out->features[DRIFT_ENERGY];
    weekday_medians(&ref->days, ref->days.energy, med);
    if (energy_values(bm, have_bm, ref, med, a, err, errlen) != ENMS_OK ||
        energy_values(bm, have_bm, rec, med, b, err, errlen) != ENMS_OK) {
        rc = ENMS_EINTERNAL;
        goto done;
    }
    /* Material: 5 % of a typical day's energy (residuals in kWh) or of the
     * weekday level (ratios). */
    double scratch_med = NAN;
    if (have_bm) {
        double *tmp = malloc((nr + 1) * sizeof *tmp), *scr = malloc((nr + 1) * sizeof *scr);
        size_t k = tmp ? finite_copy(ref->days.energy, nr, tmp) : 0;
        scratch_med = tmp && scr && k ? stats_quantile(tmp, k, 0.5, scr) : NAN;
        free(tmp);
        free(scr);
    }
    double min_shift =
        have_bm ? DRIFT_MIN_ENERGY_SHIFT * (isfinite(scratch_med) ? fabs(scratch_med) : 0)
                : DRIFT_MIN_ENERGY_SHIFT;
    drift_compare(a, nr, b, nc, min_shift, cfg, f);
    if (have_bm)
        snprintf(f->method, sizeof f->method, "baseline v%d daily residual kWh", bm_version);
    else
        snprintf(f->method, sizeof f->method, "daily kWh relative to the weekday median");
    if (!f->evaluated) {
        rc = enms_fail(err, errlen, ENMS_ECONFLICT,
                       "not enough data for a drift check: energy has %zu complete days in the "
                       "training window and %zu in the recent window, need %d each",
                       f->n_ref, f->n_recent, DRIFT_MIN_DAYS);
        goto done;
    }

    f = &out->features[DRIFT_PRODUCTION];
    snprintf(f->method, sizeof f->method, "daily units relative to the weekday median");
    if (!ref->has_production) {
        feature_reset(f);
        snprintf(f->reason, sizeof f->reason, "the machine records no production");
    } else {
        weekday_medians(&ref->days, ref->days.production, med);
        relative_to_weekday(&ref->days, ref->days.production, med, a);
        relative_to_weekday(&rec->days, rec->days.production, med, b);
        drift_compare(a, nr, b, nc, DRIFT_MIN_PRODUCTION_SHIFT, cfg, f);
    }

    f = &out->features[DRIFT_TEMPERATURE];
    snprintf(f->method, sizeof f->method, "daily mean degC against the training range");
    if (!ref->has_temp) {
        feature_reset(f);
        snprintf(f->reason, sizeof f->reason, "the machine records no outdoor temperature");
    } else {
        drift_compare_temperature(ref->days.temp_mean, nr, rec->days.temp_mean, nc, cfg, f);
    }
done:
    free(a);
    free(b);
    return rc;
}

/* ---- performance --------------------------------------------------------- */

static int perf_compare(PGconn *conn, const struct enms_config *cfg,
                        const struct drift_check_input *in, const struct version_info *v,
                        struct drift_perf *p, char *err, size_t errlen)
{
    const char *params[] = {v->id, in->machine_id, in->model_type};
    memset(p, 0, sizeof *p);
    p->threshold = cfg->drift_perf;
    p->validation_value = p->recent_value = p->degradation = NAN;
    for (int k = 0; k < 4; k++) {
        p->current[k] = NAN;
        p->baseline[k] = v->validation ? perf_metric_value(v->validation, PERF_KEYS[k]) : NAN;
    }
    /* Evaluations of this version after training; rows recorded without a
     * version count for the machine's model of that type. */
    PGresult *res = pg_exec(
        conn, PGRES_TUPLES_OK,
        "SELECT id::text, metrics::text, r_squared, rmse, mae, mape FROM model_performance_metrics "
        "WHERE (model_id = $1::uuid OR (model_id IS NULL AND machine_id = $2::uuid "
        "AND model_type = $3)) AND COALESCE(evaluation_notes, '') <> 'evaluation at training' "
        "ORDER BY evaluation_date DESC, created_at DESC LIMIT 1",
        3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) == 0) {
        snprintf(p->reason, sizeof p->reason, "no evaluation recorded since training");
        goto done;
    }
    snprintf(p->metric_id, sizeof p->metric_id, "%s", PQgetvalue(res, 0, 0));
    for (int k = 0; k < 4; k++)
        p->current[k] = num_or_nan(res, 0, 2 + k);
    cJSON *m = cJSON_Parse(PQgetvalue(res, 0, 1));
    const char *name = perf_main_metric(in->model_type, v->validation);
    snprintf(p->metric, sizeof p->metric, "%s", name ? name : "");
    if (name && m && v->validation) {
        p->validation_value = perf_metric_value(v->validation, name);
        p->recent_value = perf_metric_value(m, name);
        p->degradation = perf_degradation(name, p->validation_value, p->recent_value);
    }
    cJSON_Delete(m);
    if (!isfinite(p->degradation)) {
        snprintf(p->reason, sizeof p->reason,
                 "the evaluation and the validation do not both have %s", p->metric);
        goto done;
    }
    p->available = 1;
    p->drifted = p->degradation > cfg->drift_perf;
    snprintf(p->reason, sizeof p->reason,
             "%s %.4g against %.4g at validation: %.0f%% worse (limit %.0f%%)", p->metric,
             p->recent_value, p->validation_value, p->degradation * 100, cfg->drift_perf * 100);
done:
    PQclear(res);
    return ENMS_OK;
}

/* ---- verdict and action --------------------------------------------------- */

static void verdict(const struct enms_config *cfg, struct drift_check_result *r)
{
    char names[64] = "";
    double best = 0;
    for (int f = 0; f < DRIFT_FEATURES; f++) {
        double s = feature_score(&r->features[f], (enum drift_feature_id)f, cfg);
        if (isfinite(s) && s > best)
            best = s;
        if (r->features[f].drifted) {
            r->data_drift = 1;
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", FEATURE_NAMES[f]);
        }
    }
    if (r->perf.available) {
        double s = r->perf.degradation / cfg->drift_perf;
        if (s > best)
            best = s;
        r->concept_drift = r->perf.drifted;
    }
    r->drift_score = best;
    r->threshold = 1.0;
    r->drift_detected = r->data_drift || r->concept_drift;
    /* Data drift wins when both: the inputs moved, which explains a worse
     * model, and the remedy (retrain on recent data) is the same. */
    r->drift_type = r->data_drift ? "data_drift" : r->concept_drift ? "concept_drift" : "no_drift";
    if (r->data_drift)
        snprintf(r->recommendation, sizeof r->recommendation,
                 "Input data drifted (%s) since the model was trained%s: retrain the %s model on "
                 "recent data and compare it with the current version.",
                 names, r->concept_drift ? ", and its performance degraded" : "", r->model_type);
    else if (r->concept_drift)
        snprintf(r->recommendation, sizeof r->recommendation,
                 "Performance degraded (%s %.0f%% worse than at validation) while the inputs look "
                 "unchanged: the relationship changed; retrain the %s model.",
                 r->perf.metric, r->perf.degradation * 100, r->model_type);
    else
        snprintf(r->recommendation, sizeof r->recommendation,
                 "No drift: recent data look like the training data%s; keep the current model.",
                 r->perf.available ? " and performance holds" : "");
    /* Energy off while the weather left what the model saw: most likely a
     * season the training window did not cover, not a changed machine. */
    const struct drift_feature *t = &r->features[DRIFT_TEMPERATURE];
    if (r->features[DRIFT_ENERGY].drifted && t->evaluated && t->share_out_of_range > 0) {
        size_t used = strlen(r->recommendation);
        snprintf(r->recommendation + used, sizeof r->recommendation - used,
                 " Some recent temperatures lie beyond the training range: the model may not "
                 "have seen this season; retraining on a full year covers it.");
    }
}

static int act_on_drift(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                        struct drift_check_result *r, char *err, size_t errlen)
{
    cJSON *details = cJSON_CreateObject(), *arr = NULL;
    char msg[640];
    int rc = ENMS_OK;
    if (!details || !cJSON_AddStringToObject(details, "drift_type", r->drift_type) ||
        !(arr = cJSON_AddArrayToObject(details, "features")) ||
        !cJSON_AddNumberToObject(details, "drift_score", r->drift_score) ||
        !cJSON_AddNumberToObject(details, "recent_days", r->recent_days)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building the alert");
        goto done;
    }
    for (int f = 0; f < DRIFT_FEATURES; f++) {
        cJSON *s = r->features[f].drifted ? cJSON_CreateString(FEATURE_NAMES[f]) : NULL;
        if (s && !cJSON_AddItemToArray(arr, s))
            cJSON_Delete(s);
    }
    if (r->perf.available &&
        !cJSON_AddNumberToObject(details, "performance_degradation", r->perf.degradation)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building the alert");
        goto done;
    }
    snprintf(msg, sizeof msg, "%s on %s v%d: %s", r->data_drift ? "Data drift" : "Concept drift",
             r->model_type, r->model_version, r->recommendation);
    struct alert_input a = {.alert_type = "drift_detected",
                            .severity = r->data_drift && r->concept_drift ? "critical" : "warning",
                            .machine_id = r->machine_id,
                            .model_type = r->model_type,
                            .model_id = r->model_id,
                            .model_version = r->model_version,
                            .message = msg,
                            .details = details,
                            .current_value = r->drift_score,
                            .threshold_value = r->threshold,
                            .baseline_value = NAN};
    if ((rc = alert_raise(conn, &a, r->alert_id, err, errlen)) != ENMS_OK)
        goto done;
    char reason[128];
    snprintf(reason, sizeof reason, "drift detected (%s) on %s v%d", r->drift_type, r->model_type,
             r->model_version);
    if ((rc = alert_auto_retrain(conn, redis, cfg, r->alert_id, r->machine_id, r->model_type,
                                 reason, &r->retrain_triggered, r->retrain_job_id, err, errlen)) !=
        ENMS_OK)
        goto done;
    const char *params[] = {r->alert_id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT COALESCE(auto_action_result, '') FROM model_alerts "
                            "WHERE id = $1::uuid",
                            1, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    if (PQntuples(res) == 1)
        snprintf(r->auto_action, sizeof r->auto_action, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
done:
    cJSON_Delete(details);
    return rc;
}

/* ---- the check ----------------------------------------------------------- */

int drift_check(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                const struct drift_check_input *in, struct drift_check_result *out, char *err,
                size_t errlen)
{
    struct version_info v;
    struct readings_window ref, rec;
    struct baseline_model *bm = NULL;
    int have_bm = 0, bm_version = 0, rc;
    memset(&v, 0, sizeof v);
    memset(&ref, 0, sizeof ref);
    memset(&rec, 0, sizeof rec);
    memset(out, 0, sizeof *out);

    if (!in->machine_id || !in->model_type)
        return enms_fail(err, errlen, ENMS_EINVAL, "machine_id and model_type are required");
    int days = in->recent_days ? in->recent_days : cfg->drift_recent_days;
    if (days < 1 || days > 90)
        return enms_fail(err, errlen, ENMS_EINVAL, "recent_days must be 1..90");
    snprintf(out->machine_id, sizeof out->machine_id, "%s", in->machine_id);
    snprintf(out->model_type, sizeof out->model_type, "%s", in->model_type);
    out->recent_days = days;

    /* The machine, and its local calendar as the worker sees it. */
    const char *mparams[] = {in->machine_id};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT COALESCE(m.utc_offset_minutes, CASE WHEN t.truth->>"
                            "'utc_offset_hours' ~ '^-?[0-9]{1,2}$' THEN (t.truth->>"
                            "'utc_offset_hours')::int * 60 END, 0), "
                            "(SELECT extract(epoch FROM max(ts))::bigint FROM energy_readings "
                            "WHERE machine_id = m.id) FROM machines m "
                            "LEFT JOIN demo_truth t ON t.machine_id = m.id WHERE m.id = $1::uuid",
                            1, mparams, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return enms_fail(err, errlen, ENMS_ENOTFOUND, "machine %s not found", in->machine_id);
    }
    int offset_s = atoi(PQgetvalue(res, 0, 0)) * 60;
    if (offset_s < -14 * HOUR_S || offset_s > 14 * HOUR_S)
        offset_s = 0;
    int no_readings = PQgetisnull(res, 0, 1);
    time_t newest = no_readings ? 0 : (time_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);

    if ((rc = version_load(conn, in, &v, err, errlen)) != ENMS_OK)
        return rc;
    snprintf(out->model_id, sizeof out->model_id, "%s", v.id);
    out->model_version = v.version;
    if (no_readings) {
        rc = enms_fail(err, errlen, ENMS_ECONFLICT, "machine %s has no readings", in->machine_id);
        goto done;
    }
    out->recent_end =
        in->as_of_us ? (time_t)(in->as_of_us / 1000000) : newest - newest % HOUR_S + HOUR_S;
    out->recent_start = out->recent_end - (time_t)days * DAY_S;
    out->train_end = v.train_end;
    out->train_start = v.train_start;
    if (out->train_end - out->train_start > (time_t)DRIFT_MAX_REF_DAYS * DAY_S)
        out->train_start = out->train_end - (time_t)DRIFT_MAX_REF_DAYS * DAY_S;

    if (!(bm = calloc(1, sizeof *bm))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = baseline_load(conn, in->machine_id, in->model_type, &v, bm, &bm_version, &have_bm,
                            err, errlen)) != ENMS_OK)
        goto done;
    /* A baseline's days are the baseline's local days. */
    if (have_bm)
        offset_s = bm->utc_offset_s;
    if ((rc = readings_window_load(conn, in->machine_id, out->train_start, out->train_end, offset_s,
                                   1, &ref, err, errlen)) != ENMS_OK ||
        (rc = readings_window_load(conn, in->machine_id, out->recent_start, out->recent_end,
                                   offset_s, 0, &rec, err, errlen)) != ENMS_OK)
        goto done;
    if ((rc = compare_features(cfg, bm, have_bm, bm_version, &ref, &rec, out, err, errlen)) !=
        ENMS_OK)
        goto done;
    if ((rc = perf_compare(conn, cfg, in, &v, &out->perf, err, errlen)) != ENMS_OK)
        goto done;
    verdict(cfg, out);
    if (out->drift_detected && in->act)
        rc = act_on_drift(conn, redis, cfg, out, err, errlen);
done:
    free(bm);
    readings_window_free(&ref);
    readings_window_free(&rec);
    version_free(&v);
    return rc;
}

/* ---- JSON ----------------------------------------------------------------- */

static int add_num(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0
                                                                                              : -1;
}

static int add_time(cJSON *o, const char *key, time_t t)
{
    char buf[32];
    struct tm tm;
    if (t == 0)
        return cJSON_AddNullToObject(o, key) ? 0 : -1;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return cJSON_AddStringToObject(o, key, buf) ? 0 : -1;
}

static int add_perf_values(cJSON *o, const char *key, const double v[4])
{
    cJSON *p = cJSON_AddObjectToObject(o, key);
    if (!p)
        return -1;
    for (int k = 0; k < 4; k++)
        if (add_num(p, PERF_KEYS[k], v[k]))
            return -1;
    return 0;
}

static int add_feature(cJSON *features, const char *name, const struct drift_feature *f,
                       int temperature)
{
    cJSON *o = cJSON_AddObjectToObject(features, name), *ne = NULL;
    if (!o || !cJSON_AddBoolToObject(o, "evaluated", f->evaluated) ||
        !cJSON_AddBoolToObject(o, "drifted", f->drifted) ||
        !cJSON_AddStringToObject(o, "method", f->method) ||
        add_num(o, "n_reference", (double)f->n_ref) ||
        add_num(o, "n_recent", (double)f->n_recent) ||
        !(ne = cJSON_AddObjectToObject(o, "n_eff")) || add_num(ne, "reference", f->n_eff_ref) ||
        add_num(ne, "recent", f->n_eff_recent) || add_num(o, "lag1_autocorrelation", f->rho) ||
        add_num(o, "psi", f->psi) || add_num(o, "ks_d", f->ks_d) ||
        add_num(o, "ks_p_effective", f->ks_p_effective) ||
        add_num(o, "mean_shift", f->mean_shift) || add_num(o, "median_reference", f->median_ref) ||
        add_num(o, "median_recent", f->median_recent) ||
        add_num(o, "min_median_shift", f->min_shift) ||
        !cJSON_AddStringToObject(o, "reason", f->reason))
        return -1;
    if (temperature) {
        cJSON *range = cJSON_AddObjectToObject(o, "training_range_c");
        if (!range || add_num(range, "min", f->ref_min) || add_num(range, "max", f->ref_max) ||
            add_num(o, "share_out_of_range", f->share_out_of_range) ||
            add_num(o, "margin_c", DRIFT_TEMP_MARGIN_C))
            return -1;
    }
    return 0;
}

cJSON *drift_check_to_json(const struct drift_check_result *r)
{
    cJSON *o = cJSON_CreateObject(), *w, *features, *input, *names, *perf, *auto_action;
    if (!o || !cJSON_AddBoolToObject(o, "drift_detected", r->drift_detected) ||
        add_num(o, "drift_score", r->drift_score) ||
        !cJSON_AddStringToObject(o, "drift_type", r->drift_type ? r->drift_type : "no_drift") ||
        !cJSON_AddStringToObject(o, "recommendation", r->recommendation) ||
        add_num(o, "threshold", r->threshold) ||
        add_perf_values(o, "current_performance", r->perf.current) ||
        add_perf_values(o, "baseline_performance", r->perf.baseline) ||
        !cJSON_AddStringToObject(o, "machine_id", r->machine_id) ||
        !cJSON_AddStringToObject(o, "model_type", r->model_type) ||
        !cJSON_AddStringToObject(o, "model_id", r->model_id) ||
        add_num(o, "model_version", r->model_version) ||
        !(w = cJSON_AddObjectToObject(o, "reference_window")) ||
        add_time(w, "start", r->train_start) || add_time(w, "end", r->train_end) ||
        !(w = cJSON_AddObjectToObject(o, "recent_window")) ||
        add_time(w, "start", r->recent_start) || add_time(w, "end", r->recent_end) ||
        add_num(w, "days", r->recent_days) || !(features = cJSON_AddObjectToObject(o, "features")))
        goto fail;
    for (int f = 0; f < DRIFT_FEATURES; f++)
        if (add_feature(features, FEATURE_NAMES[f], &r->features[f], f == DRIFT_TEMPERATURE))
            goto fail;
    if (!(input = cJSON_AddObjectToObject(o, "input_drift")) ||
        !cJSON_AddBoolToObject(input, "detected", r->data_drift) ||
        !(names = cJSON_AddArrayToObject(input, "features")))
        goto fail;
    for (int f = 0; f < DRIFT_FEATURES; f++) {
        if (!r->features[f].drifted)
            continue;
        cJSON *s = cJSON_CreateString(FEATURE_NAMES[f]);
        if (!s || !cJSON_AddItemToArray(names, s)) {
            cJSON_Delete(s);
            goto fail;
        }
    }
    const struct drift_perf *p = &r->perf;
    if (!(perf = cJSON_AddObjectToObject(o, "performance_drift")) ||
        !cJSON_AddBoolToObject(perf, "available", p->available) ||
        !cJSON_AddBoolToObject(perf, "detected", p->drifted) ||
        (p->metric[0] ? !cJSON_AddStringToObject(perf, "metric", p->metric)
                      : !cJSON_AddNullToObject(perf, "metric")) ||
        add_num(perf, "validation_value", p->validation_value) ||
        add_num(perf, "recent_value", p->recent_value) ||
        add_num(perf, "degradation", p->degradation) || add_num(perf, "threshold", p->threshold) ||
        (p->metric_id[0] ? !cJSON_AddStringToObject(perf, "metric_id", p->metric_id)
                         : !cJSON_AddNullToObject(perf, "metric_id")) ||
        !cJSON_AddStringToObject(perf, "reason", p->reason))
        goto fail;
    if (r->alert_id[0] ? !cJSON_AddStringToObject(o, "alert_id", r->alert_id)
                       : !cJSON_AddNullToObject(o, "alert_id"))
        goto fail;
    if (!r->alert_id[0]) {
        if (!cJSON_AddNullToObject(o, "auto_action"))
            goto fail;
    } else if (!(auto_action = cJSON_AddObjectToObject(o, "auto_action")) ||
               !cJSON_AddStringToObject(auto_action, "type", "auto_retrain") ||
               !cJSON_AddBoolToObject(auto_action, "retrain_triggered", r->retrain_triggered) ||
               (r->retrain_triggered
                    ? !cJSON_AddStringToObject(auto_action, "training_job_id", r->retrain_job_id)
                    : !cJSON_AddNullToObject(auto_action, "training_job_id")) ||
               !cJSON_AddStringToObject(auto_action, "result", r->auto_action)) {
        goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
