/* model_json.c - the JSON artifacts and metrics of the baseline and anomaly
 * models: writers, and loaders that treat their input as hostile (an
 * artifact comes back from the database, an API caller or a fuzzer). The
 * loaders check every type, bound and cross-reference and never trust a
 * count they did not verify. Fitting lives in baseline.c / anomaly.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/error.h"
#include "anomaly.h"
#include "baseline.h"

#define ARTIFACT_FORMAT 1
/* Bound on any coefficient or threshold we accept: far beyond any energy
 * figure, small enough that sums of a few of them stay finite. */
#define VALUE_MAX 1e12
#define TIME_MIN  (-2208988800.0) /* 1900-01-01 */
#define TIME_MAX  7258118400.0    /* 2200-01-01 */

/* ---- writing helpers ----------------------------------------------------- */

/* A number item that reads back as the very same double. cJSON's own
 * printer settles for 15 digits when they come within an epsilon, which
 * changes the last bit of some values, so predictions from a loaded
 * artifact would differ from the trained model's; "%.17g" is exact. NAN and
 * infinities become null (JSON has neither). NULL when out of memory. */
static cJSON *exact_number(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

/* Adds a number, writing null for NAN. Returns 0 or -1. */
static int add_num(cJSON *o, const char *k, double v)
{
    cJSON *n = exact_number(v);
    if (!n)
        return -1;
    if (!cJSON_AddItemToObject(o, k, n)) {
        cJSON_Delete(n);
        return -1;
    }
    return 0;
}

static int add_array(cJSON *o, const char *k, const double *v, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    if (!a)
        return -1;
    for (size_t i = 0; i < n; i++) {
        cJSON *x = exact_number(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            return -1;
        }
    }
    return 0;
}

static int add_term(cJSON *o, const char *k, const struct baseline_term *t, double balance)
{
    cJSON *x = cJSON_AddObjectToObject(o, k);
    if (!x || add_num(x, "value", t->value) || add_num(x, "se", t->se))
        return -1;
    if (!isnan(balance) && add_num(x, "balance_point_c", balance))
        return -1;
    return 0;
}

static const char *granularity_name(enum baseline_granularity g)
{
    return g == BASELINE_HOURLY ? "hourly" : "daily";
}

cJSON *baseline_model_to_json(const struct baseline_model *m)
{
    cJSON *j = cJSON_CreateObject();
    char name[96];
    baseline_model_name(m, name, sizeof name);
    if (!j || !cJSON_AddStringToObject(j, "model", "baseline") ||
        add_num(j, "format", ARTIFACT_FORMAT) ||
        !cJSON_AddStringToObject(j, "granularity", granularity_name(m->granularity)) ||
        !cJSON_AddStringToObject(j, "terms", name) || add_num(j, "utc_offset_s", m->utc_offset_s) ||
        add_term(j, "intercept", &m->intercept, NAN))
        goto fail;
    if ((m->has_production ? add_term(j, "production", &m->production, NAN)
                           : !cJSON_AddNullToObject(j, "production")) ||
        (m->has_heating ? add_term(j, "heating", &m->heating, m->heat_balance_c)
                        : !cJSON_AddNullToObject(j, "heating")) ||
        (m->has_cooling ? add_term(j, "cooling", &m->cooling, m->cool_balance_c)
                        : !cJSON_AddNullToObject(j, "cooling")))
        goto fail;
    double v[23], se[23];
    if (m->has_weekday) {
        for (int d = 0; d < 6; d++) {
            v[d] = m->weekday[d].value;
            se[d] = m->weekday[d].se;
        }
        if (add_array(j, "weekday", v, 6) || add_array(j, "weekday_se", se, 6))
            goto fail;
    } else if (!cJSON_AddNullToObject(j, "weekday")) {
        goto fail;
    }
    if (m->granularity == BASELINE_HOURLY) {
        for (int h = 0; h < 23; h++) {
            v[h] = m->hour[h].value;
            se[h] = m->hour[h].se;
        }
        if (add_array(j, "hour", v, 23) || add_array(j, "hour_se", se, 23))
            goto fail;
    }
    if (add_num(j, "n", (double)m->n) || add_num(j, "p", (double)m->p) ||
        add_num(j, "rho", m->rho) || add_num(j, "window_start", (double)m->window_start) ||
        add_num(j, "window_end", (double)m->window_end))
        goto fail;
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

static cJSON *stats_json(const struct baseline_stats *s)
{
    cJSON *j = cJSON_CreateObject();
    if (!j || add_num(j, "n", (double)s->n) || add_num(j, "p", (double)s->p) ||
        add_num(j, "mean", s->ybar) || add_num(j, "r2", s->r2) || add_num(j, "adj_r2", s->adj_r2) ||
        add_num(j, "rmse", s->rmse) || add_num(j, "cv_rmse_pct", s->cv_rmse) ||
        add_num(j, "nmbe_pct", s->nmbe) ||
        !cJSON_AddBoolToObject(j, "meets_limits", s->meets_limits)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

cJSON *baseline_result_to_json(const struct baseline_result *r)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON *fit = stats_json(&r->fit);
    if (!fit || !cJSON_AddItemToObject(j, "fit", fit)) {
        cJSON_Delete(fit);
        goto fail;
    }
    cJSON *hold = r->holdout_valid ? stats_json(&r->holdout) : cJSON_CreateNull();
    if (!hold || !cJSON_AddItemToObject(j, "holdout", hold)) {
        cJSON_Delete(hold);
        goto fail;
    }
    cJSON *data = cJSON_AddObjectToObject(j, "data");
    if (!data || add_num(data, "readings", (double)r->data.readings) ||
        add_num(data, "hours_spanned", (double)r->data.hours_spanned) ||
        add_num(data, "hours_present", (double)r->data.hours_present) ||
        add_num(data, "duplicates", (double)r->data.duplicates) ||
        add_num(data, "gap_hours", (double)r->data.gap_hours) ||
        add_num(data, "completeness", r->data.completeness) ||
        add_num(data, "rows_used", (double)r->rows_used) ||
        add_num(data, "days_excluded", (double)r->days_excluded) ||
        add_num(j, "cv_rmse_limit_pct", r->cv_rmse_limit) ||
        add_num(j, "nmbe_limit_pct", r->nmbe_limit) ||
        add_num(j, "candidates", (double)r->candidates))
        goto fail;
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

static const char *detector_name(enum anomaly_detector d)
{
    return d == ANOMALY_IFOREST ? "isolation_forest" : "residual";
}

static const char *expected_name(enum anomaly_expected e)
{
    switch (e) {
    case ANOMALY_EXPECTED_BASELINE:
        return "baseline";
    case ANOMALY_EXPECTED_SUPPLIED:
        return "supplied";
    default:
        return "profile";
    }
}

cJSON *anomaly_model_to_json(const struct anomaly_model *m)
{
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "model", "anomaly") ||
        add_num(j, "format", ARTIFACT_FORMAT) || add_num(j, "utc_offset_s", m->utc_offset_s) ||
        !cJSON_AddStringToObject(j, "default_detector", detector_name(m->default_detector)))
        goto fail;
    cJSON *f = cJSON_AddObjectToObject(j, "isolation_forest");
    cJSON *names = f ? cJSON_AddArrayToObject(f, "features") : NULL;
    if (!names)
        goto fail;
    for (int k = 0; k < ANOMALY_F_COUNT; k++)
        if (m->features[k]) {
            cJSON *s = cJSON_CreateString(anomaly_feature_name((enum anomaly_feature)k));
            if (!s || !cJSON_AddItemToArray(names, s)) {
                cJSON_Delete(s);
                goto fail;
            }
        }
    const struct iforest *fo = &m->forest;
    if (add_num(f, "trees", fo->ntrees) || add_num(f, "subsample", fo->subsample) ||
        add_num(f, "max_depth", fo->max_depth) || add_num(f, "contamination", m->contamination) ||
        add_num(f, "threshold", m->if_threshold) || add_num(f, "critical", m->if_critical))
        goto fail;
    /* Trees in preorder, two numbers per node: feature index and split
     * value, or -1 and the leaf's size. Children are implicit. */
    cJSON *trees = cJSON_AddArrayToObject(f, "nodes");
    if (!trees)
        goto fail;
    for (int t = 0; t < fo->ntrees; t++) {
        cJSON *a = cJSON_CreateArray();
        if (!a || !cJSON_AddItemToArray(trees, a)) {
            cJSON_Delete(a);
            goto fail;
        }
        for (size_t i = fo->offset[t]; i < fo->offset[t + 1]; i++) {
            cJSON *x = exact_number(fo->nodes[i].feature);
            cJSON *y = exact_number(fo->nodes[i].value);
            if (!x || !y || !cJSON_AddItemToArray(a, x)) {
                cJSON_Delete(x);
                cJSON_Delete(y);
                goto fail;
            }
            if (!cJSON_AddItemToArray(a, y)) {
                cJSON_Delete(y);
                goto fail;
            }
        }
    }
    cJSON *r = cJSON_AddObjectToObject(j, "residual");
    if (!r || !cJSON_AddStringToObject(r, "expected", expected_name(m->expected)))
        goto fail;
    if (m->expected == ANOMALY_EXPECTED_PROFILE && add_array(r, "profile", m->profile, 168))
        goto fail;
    if (m->expected == ANOMALY_EXPECTED_BASELINE) {
        cJSON *b = baseline_model_to_json(&m->baseline);
        if (!b || !cJSON_AddItemToObject(r, "baseline", b)) {
            cJSON_Delete(b);
            goto fail;
        }
    }
    if (add_num(r, "median", m->residual_median) || add_num(r, "scale", m->residual_scale) ||
        add_num(r, "rho", m->residual_rho) || add_num(r, "z_warning", m->z_warning) ||
        add_num(r, "z_critical", m->z_critical) || add_num(r, "cusum_k", m->cusum_k) ||
        add_num(r, "cusum_h", m->cusum_h) || add_num(r, "stuck_hours", m->stuck_hours))
        goto fail;
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

static cJSON *eval_json(const struct anomaly_eval *e)
{
    cJSON *j = cJSON_CreateObject();
    if (!j || add_num(j, "hours", (double)e->hours) || add_num(j, "flagged", (double)e->flagged) ||
        add_num(j, "anomaly_rate", e->rate) ||
        (e->labelled &&
         (add_num(j, "true_positives", (double)e->tp) ||
          add_num(j, "false_positives", (double)e->fp) ||
          add_num(j, "false_negatives", (double)e->fn) || add_num(j, "precision", e->precision) ||
          add_num(j, "recall", e->recall) || add_num(j, "f1", e->f1)))) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

cJSON *anomaly_result_to_json(const struct anomaly_result *r)
{
    cJSON *j = cJSON_CreateObject();
    if (!j ||
        !cJSON_AddStringToObject(j, "default_detector", detector_name(r->model.default_detector)) ||
        !cJSON_AddStringToObject(j, "expected", expected_name(r->model.expected)) ||
        !cJSON_AddBoolToObject(j, "labelled", r->eval[0].labelled))
        goto fail;
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        cJSON *e = eval_json(&r->eval[d]);
        if (!e || !cJSON_AddItemToObject(j, detector_name((enum anomaly_detector)d), e)) {
            cJSON_Delete(e);
            goto fail;
        }
    }
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

/* ---- reading helpers ----------------------------------------------------- */

/* A finite number within [lo, hi] at key k of object o. */
static int get_num(const cJSON *o, const char *k, double lo, double hi, double *out, char *err,
                   size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < lo ||
        x->valuedouble > hi)
        return enms_fail(err, errlen, ENMS_EINVAL, "\"%s\" must be a number in [%g, %g]", k, lo,
                         hi);
    *out = x->valuedouble;
    return 0;
}

/* Like get_num, but null or absent gives NAN. */
static int get_num_or_null(const cJSON *o, const char *k, double lo, double hi, double *out,
                           char *err, size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!x || cJSON_IsNull(x)) {
        *out = NAN;
        return 0;
    }
    return get_num(o, k, lo, hi, out, err, errlen);
}

static int get_int(const cJSON *o, const char *k, long lo, long hi, long *out, char *err,
                   size_t errlen)
{
    double v;
    int rc = get_num(o, k, (double)lo, (double)hi, &v, err, errlen);
    if (rc)
        return rc;
    if (v != floor(v))
        return enms_fail(err, errlen, ENMS_EINVAL, "\"%s\" must be a whole number", k);
    *out = (long)v;
    return 0;
}

/* An array of exactly n numbers (null allowed when nullable, read as NAN). */
static int get_array(const cJSON *o, const char *k, size_t n, int nullable, double *out, char *err,
                     size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n)
        return enms_fail(err, errlen, ENMS_EINVAL, "\"%s\" must be an array of %zu numbers", k, n);
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (nullable && cJSON_IsNull(x))
            out[i++] = NAN;
        else if (cJSON_IsNumber(x) && isfinite(x->valuedouble) && fabs(x->valuedouble) <= VALUE_MAX)
            out[i++] = x->valuedouble;
        else
            return enms_fail(err, errlen, ENMS_EINVAL, "\"%s\"[%zu] is not a finite number", k, i);
    }
    return 0;
}

static int expect_string(const cJSON *o, const char *k, const char *want, char *err, size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(x) || !x->valuestring || strcmp(x->valuestring, want) != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "\"%s\" must be \"%s\"", k, want);
    return 0;
}

/* A term object {value, se[, balance_point_c]}; null or absent: not present. */
static int get_term(const cJSON *o, const char *k, int with_balance, int *present,
                    struct baseline_term *t, double *balance, char *err, size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    *present = 0;
    if (!x || cJSON_IsNull(x))
        return 0;
    if (!cJSON_IsObject(x))
        return enms_fail(err, errlen, ENMS_EINVAL, "\"%s\" must be an object or null", k);
    int rc = get_num(x, "value", -VALUE_MAX, VALUE_MAX, &t->value, err, errlen);
    if (!rc)
        rc = get_num_or_null(x, "se", 0, VALUE_MAX, &t->se, err, errlen);
    if (!rc && with_balance)
        rc = get_num(x, "balance_point_c", -60, 60, balance, err, errlen);
    if (rc)
        return rc;
    *present = 1;
    return 0;
}

int baseline_model_from_json(const cJSON *j, struct baseline_model *out, char *err, size_t errlen)
{
    struct baseline_model m = {.heat_balance_c = NAN, .cool_balance_c = NAN};
    long l = 0;
    double v = 0;
    int rc = 0;
    *out = (struct baseline_model){0};
    if (!cJSON_IsObject(j))
        return enms_fail(err, errlen, ENMS_EINVAL, "baseline artifact must be an object");
    if ((rc = expect_string(j, "model", "baseline", err, errlen)) ||
        (rc = get_int(j, "format", ARTIFACT_FORMAT, ARTIFACT_FORMAT, &l, err, errlen)))
        return rc;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "granularity");
    if (cJSON_IsString(g) && g->valuestring && strcmp(g->valuestring, "daily") == 0)
        m.granularity = BASELINE_DAILY;
    else if (cJSON_IsString(g) && g->valuestring && strcmp(g->valuestring, "hourly") == 0)
        m.granularity = BASELINE_HOURLY;
    else
        return enms_fail(err, errlen, ENMS_EINVAL, "\"granularity\" must be daily or hourly");
    if ((rc = get_int(j, "utc_offset_s", -14 * 3600, 14 * 3600, &l, err, errlen)))
        return rc;
    m.utc_offset_s = (int)l;
    int present;
    if ((rc = get_term(j, "intercept", 0, &present, &m.intercept, NULL, err, errlen)))
        return rc;
    if (!present)
        return enms_fail(err, errlen, ENMS_EINVAL, "\"intercept\" is required");
    if ((rc = get_term(j, "production", 0, &m.has_production, &m.production, NULL, err, errlen)) ||
        (rc = get_term(j, "heating", 1, &m.has_heating, &m.heating, &m.heat_balance_c, err,
                       errlen)) ||
        (rc =
             get_term(j, "cooling", 1, &m.has_cooling, &m.cooling, &m.cool_balance_c, err, errlen)))
        return rc;
    if (m.has_heating && m.has_cooling && !(m.cool_balance_c > m.heat_balance_c))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "the cooling balance point must lie above the heating one");
    double vals[23], ses[23];
    const cJSON *wd = cJSON_GetObjectItemCaseSensitive(j, "weekday");
    if (wd && !cJSON_IsNull(wd)) {
        if ((rc = get_array(j, "weekday", 6, 0, vals, err, errlen)))
            return rc;
        if (cJSON_GetObjectItemCaseSensitive(j, "weekday_se")) {
            if ((rc = get_array(j, "weekday_se", 6, 1, ses, err, errlen)))
                return rc;
        } else {
            for (int d = 0; d < 6; d++)
                ses[d] = NAN;
        }
        for (int d = 0; d < 6; d++)
            m.weekday[d] = (struct baseline_term){vals[d], ses[d]};
        m.has_weekday = 1;
    }
    if (m.granularity == BASELINE_HOURLY) {
        if ((rc = get_array(j, "hour", 23, 0, vals, err, errlen)))
            return rc;
        if (cJSON_GetObjectItemCaseSensitive(j, "hour_se")) {
            if ((rc = get_array(j, "hour_se", 23, 1, ses, err, errlen)))
                return rc;
        } else {
            for (int h = 0; h < 23; h++)
                ses[h] = NAN;
        }
        for (int h = 0; h < 23; h++)
            m.hour[h] = (struct baseline_term){vals[h], ses[h]};
    }
    /* Informational fields: optional, but checked when present. */
    if (cJSON_GetObjectItemCaseSensitive(j, "n")) {
        if ((rc = get_int(j, "n", 0, 1000000000L, &l, err, errlen)))
            return rc;
        m.n = (size_t)l;
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "p")) {
        if ((rc = get_int(j, "p", 0, BASELINE_MAX_COEF, &l, err, errlen)))
            return rc;
        m.p = (size_t)l;
    }
    if ((rc = get_num_or_null(j, "rho", -1, 1, &m.rho, err, errlen)))
        return rc;
    if ((rc = get_num_or_null(j, "window_start", TIME_MIN, TIME_MAX, &v, err, errlen)))
        return rc;
    m.window_start = isnan(v) ? 0 : (time_t)v;
    if ((rc = get_num_or_null(j, "window_end", TIME_MIN, TIME_MAX, &v, err, errlen)))
        return rc;
    m.window_end = isnan(v) ? 0 : (time_t)v;
    *out = m;
    return 0;
}

/* The forest part of an anomaly artifact into m->forest and m->features. */
static int forest_from_json(const cJSON *f, struct anomaly_model *m, char *err, size_t errlen)
{
    long trees, subsample, depth;
    int rc;
    if (!cJSON_IsObject(f))
        return enms_fail(err, errlen, ENMS_EINVAL, "\"isolation_forest\" must be an object");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(f, "features");
    if (!cJSON_IsArray(names))
        return enms_fail(err, errlen, ENMS_EINVAL, "\"features\" must be an array");
    /* Known names, each once, in the canonical order the scorer uses. */
    int next = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, names)
    {
        int k = next;
        while (k < ANOMALY_F_COUNT &&
               !(cJSON_IsString(x) && x->valuestring &&
                 strcmp(x->valuestring, anomaly_feature_name((enum anomaly_feature)k)) == 0))
            k++;
        if (k == ANOMALY_F_COUNT)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "unknown, repeated or misordered feature name");
        m->features[k] = 1;
        m->nfeatures++;
        next = k + 1;
    }
    if (m->nfeatures < 1)
        return enms_fail(err, errlen, ENMS_EINVAL, "the forest needs at least one feature");
    if ((rc = get_int(f, "trees", 1, IFOREST_MAX_TREES, &trees, err, errlen)) ||
        (rc = get_int(f, "subsample", 2, IFOREST_MAX_SUBSAMPLE, &subsample, err, errlen)) ||
        (rc = get_int(f, "max_depth", 1, IFOREST_MAX_DEPTH, &depth, err, errlen)) ||
        (rc = get_num(f, "contamination", 1e-9, 0.5, &m->contamination, err, errlen)) ||
        (rc = get_num(f, "threshold", 0, 1, &m->if_threshold, err, errlen)) ||
        (rc = get_num(f, "critical", 0, 1, &m->if_critical, err, errlen)))
        return rc;
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(f, "nodes");
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) != trees)
        return enms_fail(err, errlen, ENMS_EINVAL, "\"nodes\" must hold %ld trees", trees);
    /* Count first, so the allocation is bounded by verified sizes. */
    size_t total = 0;
    cJSON_ArrayForEach(x, nodes)
    {
        int len = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : -1;
        if (len < 2 || len % 2 || (size_t)len / 2 > 2 * (size_t)IFOREST_MAX_SUBSAMPLE)
            return enms_fail(err, errlen, ENMS_EINVAL, "a tree must be pairs of numbers");
        total += (size_t)len / 2;
        if (total > ANOMALY_MAX_NODES)
            return enms_fail(err, errlen, ENMS_ETOOBIG, "forest exceeds %d nodes",
                             ANOMALY_MAX_NODES);
    }
    struct iforest fo = {.nfeatures = m->nfeatures,
                         .ntrees = (int)trees,
                         .subsample = (int)subsample,
                         .max_depth = (int)depth};
    fo.offset = malloc(((size_t)trees + 1) * sizeof *fo.offset);
    fo.nodes = malloc(total * sizeof *fo.nodes);
    if (!fo.offset || !fo.nodes) {
        iforest_free(&fo);
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory loading %zu nodes", total);
    }
    size_t at = 0;
    int t = 0;
    cJSON_ArrayForEach(x, nodes)
    {
        fo.offset[t++] = at;
        const cJSON *y;
        int second = 0;
        cJSON_ArrayForEach(y, x)
        {
            if (!cJSON_IsNumber(y) || !isfinite(y->valuedouble) ||
                fabs(y->valuedouble) > VALUE_MAX) {
                iforest_free(&fo);
                return enms_fail(err, errlen, ENMS_EINVAL, "tree %d holds a bad number", t - 1);
            }
            if (!second) {
                double fv = y->valuedouble;
                if (fv != floor(fv) || fv < -1 || fv >= m->nfeatures) {
                    iforest_free(&fo);
                    return enms_fail(err, errlen, ENMS_EINVAL, "tree %d names a bad feature",
                                     t - 1);
                }
                fo.nodes[at] = (struct iforest_node){.feature = (int32_t)fv};
            } else {
                fo.nodes[at++].value = y->valuedouble;
            }
            second = !second;
        }
    }
    fo.offset[trees] = at;
    rc = iforest_validate(&fo, err, errlen);
    if (rc) {
        iforest_free(&fo);
        return rc;
    }
    m->forest = fo;
    return 0;
}

int anomaly_model_from_json(const cJSON *j, struct anomaly_model *out, char *err, size_t errlen)
{
    struct anomaly_model m = {0};
    long l;
    int rc;
    *out = (struct anomaly_model){0};
    if (!cJSON_IsObject(j))
        return enms_fail(err, errlen, ENMS_EINVAL, "anomaly artifact must be an object");
    if ((rc = expect_string(j, "model", "anomaly", err, errlen)) ||
        (rc = get_int(j, "format", ARTIFACT_FORMAT, ARTIFACT_FORMAT, &l, err, errlen)) ||
        (rc = get_int(j, "utc_offset_s", -14 * 3600, 14 * 3600, &l, err, errlen)))
        return rc;
    m.utc_offset_s = (int)l;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "default_detector");
    if (cJSON_IsString(d) && d->valuestring && strcmp(d->valuestring, "residual") == 0)
        m.default_detector = ANOMALY_RESIDUAL;
    else if (cJSON_IsString(d) && d->valuestring && strcmp(d->valuestring, "isolation_forest") == 0)
        m.default_detector = ANOMALY_IFOREST;
    else
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "\"default_detector\" must be residual or isolation_forest");

    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "residual");
    if (!cJSON_IsObject(r))
        return enms_fail(err, errlen, ENMS_EINVAL, "\"residual\" must be an object");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "expected");
    const char *es = cJSON_IsString(e) ? e->valuestring : NULL;
    if (es && strcmp(es, "profile") == 0) {
        m.expected = ANOMALY_EXPECTED_PROFILE;
        if ((rc = get_array(r, "profile", 168, 0, m.profile, err, errlen)))
            return rc;
    } else if (es && strcmp(es, "baseline") == 0) {
        m.expected = ANOMALY_EXPECTED_BASELINE;
        rc = baseline_model_from_json(cJSON_GetObjectItemCaseSensitive(r, "baseline"), &m.baseline,
                                      err, errlen);
        if (rc)
            return rc;
        if (m.baseline.granularity != BASELINE_HOURLY)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "the expected-value baseline must be hourly");
    } else if (es && strcmp(es, "supplied") == 0) {
        m.expected = ANOMALY_EXPECTED_SUPPLIED;
    } else {
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "\"expected\" must be profile, baseline or supplied");
    }
    double z1, z2, stuck;
    if ((rc = get_num(r, "median", -VALUE_MAX, VALUE_MAX, &m.residual_median, err, errlen)) ||
        (rc = get_num(r, "scale", 1e-300, VALUE_MAX, &m.residual_scale, err, errlen)) ||
        (rc = get_num(r, "rho", -1, 1, &m.residual_rho, err, errlen)) ||
        (rc = get_num(r, "z_warning", 1e-6, 1e6, &z1, err, errlen)) ||
        (rc = get_num(r, "z_critical", z1, 1e6, &z2, err, errlen)) ||
        (rc = get_num(r, "cusum_k", 0, 1e6, &m.cusum_k, err, errlen)) ||
        (rc = get_num(r, "cusum_h", 1e-6, 1e6, &m.cusum_h, err, errlen)) ||
        (rc = get_num(r, "stuck_hours", 2, 24 * 366, &stuck, err, errlen)))
        return rc;
    if (stuck != floor(stuck))
        return enms_fail(err, errlen, ENMS_EINVAL, "\"stuck_hours\" must be a whole number");
    m.z_warning = z1;
    m.z_critical = z2;
    m.stuck_hours = (int)stuck;

    rc = forest_from_json(cJSON_GetObjectItemCaseSensitive(j, "isolation_forest"), &m, err, errlen);
    if (rc)
        return rc;
    if (m.features[ANOMALY_F_RESIDUAL] && m.expected == ANOMALY_EXPECTED_PROFILE) {
        /* anomaly_fit() never pairs these; accept only what it writes. */
        iforest_free(&m.forest);
        return enms_fail(err, errlen, ENMS_EINVAL, "a residual feature needs a baseline");
    }
    *out = m;
    return 0;
}
