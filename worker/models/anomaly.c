/* anomaly.c - trains and applies the two anomaly detectors of anomaly.h
 * (Isolation Forest over hour features; residual monitoring with robust z,
 * CUSUM and a stuck-meter rule) and scores them on labelled hours. Tree
 * building lives in iforest.c, the hourly baseline in baseline.c, storage in
 * model_json.c. */
#include "anomaly.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/error.h"

/* The least training data: two weeks, so every hour of the week has at
 * least two readings for its median. */
#define ANOMALY_MIN_DAYS 14
/* 1.4826 MAD estimates the standard deviation of normal data. */
#define MAD_TO_SD 1.4826

static const char *const feature_names[ANOMALY_F_COUNT] = {"hour",       "weekday",     "energy",
                                                           "production", "temperature", "residual"};

const char *anomaly_feature_name(enum anomaly_feature f)
{
    return (unsigned)f < ANOMALY_F_COUNT ? feature_names[f] : "unknown";
}

void anomaly_config_default(struct anomaly_config *cfg)
{
    *cfg = (struct anomaly_config){
        .trees = 100,
        .subsample = 256,
        .contamination = 0.01,
        .critical_share = 0.2,
        .seed = 42,
        .z_warning = 3.5,
        .z_critical = 5.0,
        .cusum_k = 0.5,
        .cusum_h = 8.0,
        .stuck_hours = 6,
        .expected = ANOMALY_EXPECTED_AUTO,
    };
}

void anomaly_model_free(struct anomaly_model *m)
{
    if (!m)
        return;
    iforest_free(&m->forest);
    *m = (struct anomaly_model){0};
}

void anomaly_result_free(struct anomaly_result *r)
{
    if (!r)
        return;
    anomaly_model_free(&r->model);
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        free(r->flags[d].score);
        free(r->flags[d].severity);
    }
    *r = (struct anomaly_result){0};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of the n values in v (sorted in place); NAN when n is 0. */
static double median_sorted_inplace(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int hour_of_week(time_t ts, int off)
{
    return series_local_weekday(ts, off) * 24 + series_local_hour(ts, off);
}

static int usable(const struct series *s, size_t i)
{
    return !(s->skip && s->skip[i]) && isfinite(s->energy[i]);
}

/* The median energy of every hour of the week over the usable hours; a slot
 * without readings takes the overall median. */
static int fit_profile(const struct series *s, double profile[168], char *err, size_t errlen)
{
    double *v = malloc((s->n ? s->n : 1) * sizeof *v);
    int rc = 0;
    if (!v) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for the profile");
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (usable(s, i))
            v[k++] = s->energy[i];
    double overall = median_sorted_inplace(v, k);
    for (int slot = 0; slot < 168; slot++) {
        size_t m = 0;
        for (size_t i = 0; i < s->n; i++)
            if (usable(s, i) && hour_of_week(s->ts[i], s->utc_offset_s) == slot)
                v[m++] = s->energy[i];
        profile[slot] = m ? median_sorted_inplace(v, m) : overall;
    }
done:
    free(v);
    return rc;
}

/* Expected energy of every hour of s under model m into e[0..n-1]. */
static int expected_values(const struct anomaly_model *m, const struct series *s,
                           const double *supplied, double *e, char *err, size_t errlen)
{
    switch (m->expected) {
    case ANOMALY_EXPECTED_SUPPLIED:
        if (!supplied)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "this anomaly model needs the expected energy supplied");
        memcpy(e, supplied, s->n * sizeof *e);
        return 0;
    case ANOMALY_EXPECTED_BASELINE:
        return baseline_predict_hours(&m->baseline, s, e, err, errlen);
    default:
        for (size_t i = 0; i < s->n; i++)
            e[i] = m->profile[hour_of_week(s->ts[i], m->utc_offset_s)];
        return 0;
    }
}

/* The forest's feature row of hour i; returns 0, or -1 when one is missing. */
static int feature_row(const struct anomaly_model *m, const struct series *s, size_t i,
                       const double *e, double *row)
{
    int c = 0;
    if (!isfinite(s->energy[i]))
        return -1;
    for (int f = 0; f < ANOMALY_F_COUNT; f++) {
        if (!m->features[f])
            continue;
        double v = NAN;
        switch (f) {
        case ANOMALY_F_HOUR:
            v = series_local_hour(s->ts[i], m->utc_offset_s);
            break;
        case ANOMALY_F_WEEKDAY:
            v = series_local_weekday(s->ts[i], m->utc_offset_s);
            break;
        case ANOMALY_F_ENERGY:
            v = s->energy[i];
            break;
        case ANOMALY_F_PRODUCTION:
            v = s->production ? s->production[i] : NAN;
            break;
        case ANOMALY_F_TEMPERATURE:
            v = s->temp_c ? s->temp_c[i] : NAN;
            break;
        case ANOMALY_F_RESIDUAL:
            v = s->energy[i] - e[i];
            break;
        }
        if (!isfinite(v))
            return -1;
        row[c++] = v;
    }
    return 0;
}

/* Flags hours [from, to] that have a score (a z) with at least `sev`. */
static void raise_range(struct anomaly_flags *f, size_t from, size_t to, unsigned char sev)
{
    for (size_t j = from; j <= to; j++)
        if (!isnan(f->score[j]) && f->severity[j] < sev)
            f->severity[j] = sev;
}

/* The CUSUM's input for hour i: z clipped to the critical limit (a lone
 * spike must not start a shift) and divided by the long-run factor lr; NAN
 * when the hour has no score. */
static double cusum_input(const struct anomaly_model *m, const struct series *s, const double *e,
                          const struct anomaly_flags *f, size_t i, double lr)
{
    if (isnan(f->score[i]))
        return NAN;
    double z = (s->energy[i] - e[i] - m->residual_median) / m->residual_scale;
    if (fabs(z) >= m->z_critical)
        z = z > 0 ? m->z_critical : -m->z_critical;
    return z / lr;
}

/* Where did the shift behind a CUSUM alarm at hour `alarm` start? The
 * excursion began at `from` (the hour after the sum last stood at zero),
 * but that is the change point only for a shift of exactly 2k: hours that
 * drift a little above k before a large shift start the excursion early
 * and would be flagged with it. The generalised likelihood ratio for a
 * mean shift of unknown size starting at hour c and lasting to `alarm` is
 * S(c)^2 / L(c), S the sum of the (sign-adjusted) inputs over c..alarm and
 * L their number; its maximiser is the change-point estimate sized to the
 * detected shift: an hour joins the shift only when it is above about half
 * the shift's mean (Hinkley 1971; Basseville & Nikiforov 1993, ch. 2).
 * sign: +1 for the upper sum, -1 for the lower one. */
static size_t cusum_change_point(const struct anomaly_model *m, const struct series *s,
                                 const double *e, const struct anomaly_flags *f, size_t from,
                                 size_t alarm, double lr, double sign)
{
    double sum = 0, best = -1;
    size_t len = 0, at = from;
    for (size_t c = alarm + 1; c-- > from;) {
        double z = cusum_input(m, s, e, f, c, lr);
        if (isnan(z))
            continue;
        sum += sign * z;
        len++;
        double g = sum > 0 ? sum * sum / (double)len : 0;
        if (g >= best) {
            best = g;
            at = c;
        }
    }
    return at;
}

/* One side of the two-sided CUSUM. An episode is a run of alarms whose
 * sum has not returned to zero in between: one shift. */
struct cusum_side {
    double sign; /* +1 upper sum, -1 lower sum */
    double sum;
    size_t start; /* the hour after the sum last stood at zero */
    int episode;  /* an episode is open */
    size_t from;  /* its first excursion's start */
    size_t first; /* its first alarm */
    size_t to;    /* its last alarm */
};

/* Closes side c's episode: flags it from the change point sized to the
 * whole episode's shift to its last alarm. The first alarm is evidence
 * that the shift had begun by then, so the change point is never later. */
static void cusum_episode_end(const struct anomaly_model *m, const struct series *s,
                              const double *e, struct anomaly_flags *f, struct cusum_side *c,
                              double lr)
{
    size_t at = cusum_change_point(m, s, e, f, c->from, c->to, lr, c->sign);
    raise_range(f, at < c->first ? at : c->first, c->to, ANOMALY_WARNING);
    c->episode = 0;
}

/* Residual monitoring over the hours of s given expected values e. */
static void residual_detect(const struct anomaly_model *m, const struct series *s, const double *e,
                            struct anomaly_flags *out)
{
    /* Robust z of each hour. */
    for (size_t i = 0; i < s->n; i++) {
        double r = s->energy[i] - e[i];
        double z = (r - m->residual_median) / m->residual_scale;
        out->score[i] = isfinite(z) ? fabs(z) : NAN;
        out->severity[i] = !isfinite(z)               ? ANOMALY_NONE
                           : fabs(z) >= m->z_critical ? ANOMALY_CRITICAL
                           : fabs(z) >= m->z_warning  ? ANOMALY_WARNING
                                                      : ANOMALY_NONE;
    }
    /* Two-sided CUSUM (Page 1954) on the standardised residuals. After an
     * alarm the sum restarts, so a shift that persists keeps alarming; the
     * alarms until the sum next returns to zero are one episode (one
     * shift). The episode is flagged from its change point to its last
     * alarm. The change point is not simply where the sum last stood at
     * zero - that is right only for a shift of exactly 2k, and a stretch of
     * noise a little above k before a large shift would be flagged with it
     * (29 hours before HVAC-Main's shift on seed 42) - but the likelihood
     * estimate for a shift of the size the episode shows
     * (cusum_change_point). Values beyond the critical z enter clipped, so
     * a spike alone does not trigger it. */
    /* Residuals of an hourly model are autocorrelated (weather, process
     * inertia); a CUSUM fed with them would alarm far more often than its
     * design says. Dividing z by the long-run standard deviation factor
     * sqrt((1 + rho) / (1 - rho)) of an AR(1) makes sums of z behave like
     * sums of independent ones, so k and h keep their usual meaning. */
    double rho = fmin(fmax(m->residual_rho, 0.0), 0.95);
    double lr = sqrt((1 + rho) / (1 - rho));
    struct cusum_side side[2] = {{.sign = 1.0}, {.sign = -1.0}};
    for (size_t i = 0; i < s->n; i++) {
        double z = cusum_input(m, s, e, out, i, lr);
        if (isnan(z))
            continue;
        for (int k = 0; k < 2; k++) {
            struct cusum_side *c = &side[k];
            if (c->sum == 0)
                c->start = i;
            c->sum = fmax(0.0, c->sum + c->sign * z - m->cusum_k);
            if (c->sum > m->cusum_h) {
                if (!c->episode) {
                    c->episode = 1;
                    c->from = c->start;
                    c->first = i;
                }
                c->to = i;
                c->sum = 0;
            } else if (c->sum == 0 && c->episode) {
                cusum_episode_end(m, s, e, out, c, lr);
            }
        }
    }
    for (int k = 0; k < 2; k++)
        if (side[k].episode)
            cusum_episode_end(m, s, e, out, &side[k], lr);
    /* Stuck meter: the same reading stuck_hours or more times in a row. The
     * first of the equal readings is the last good one, so the repeats are
     * flagged. A run of zeros is a machine that is off, not a fault. */
    size_t run = 0;
    for (size_t i = 1; i <= s->n; i++) {
        int same = i < s->n && isfinite(s->energy[i]) && s->energy[i] == s->energy[i - 1] &&
                   s->energy[i] != 0.0;
        if (same) {
            run++;
            continue;
        }
        if (run + 1 >= (size_t)m->stuck_hours)
            for (size_t j = i - run; j < i; j++) {
                if (isnan(out->score[j]))
                    out->score[j] = 0;
                if (out->severity[j] < ANOMALY_WARNING)
                    out->severity[j] = ANOMALY_WARNING;
            }
        run = 0;
    }
}

int anomaly_detect(const struct anomaly_model *m, const struct series *s, const double *expected,
                   const struct model_hooks *hooks, struct anomaly_flags out[ANOMALY_DETECTORS],
                   char *err, size_t errlen)
{
    struct series_report rep;
    int rc = series_check(s, &rep, err, errlen);
    if (rc)
        return rc;
    double *e = malloc((s->n ? s->n : 1) * sizeof *e);
    if (!e)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory scoring %zu hours", s->n);
    rc = expected_values(m, s, expected, e, err, errlen);
    if (rc)
        goto done;
    struct anomaly_flags *f = &out[ANOMALY_IFOREST];
    double row[IFOREST_MAX_FEATURES];
    for (size_t i = 0; i < s->n; i++) {
        if ((i & 1023) == 0) {
            if (model_should_stop(hooks)) {
                rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while scoring");
                goto done;
            }
        }
        if (feature_row(m, s, i, e, row)) {
            f->score[i] = NAN;
            f->severity[i] = ANOMALY_NONE;
            continue;
        }
        double sc = iforest_score(&m->forest, row);
        f->score[i] = sc;
        f->severity[i] = sc >= m->if_critical    ? ANOMALY_CRITICAL
                         : sc >= m->if_threshold ? ANOMALY_WARNING
                                                 : ANOMALY_NONE;
    }
    residual_detect(m, s, e, &out[ANOMALY_RESIDUAL]);
done:
    free(e);
    return rc;
}

void anomaly_evaluate(const struct series *s, const struct anomaly_flags *flags,
                      const unsigned char *labels, struct anomaly_eval *ev)
{
    *ev = (struct anomaly_eval){.labelled = labels != NULL};
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->energy[i]))
            continue;
        int flagged = flags->severity[i] != ANOMALY_NONE;
        ev->hours++;
        ev->flagged += flagged;
        if (!labels)
            continue;
        ev->tp += flagged && labels[i];
        ev->fp += flagged && !labels[i];
        ev->fn += !flagged && labels[i];
    }
    ev->rate = ev->hours ? (double)ev->flagged / (double)ev->hours : 0.0;
    ev->precision = ev->recall = ev->f1 = NAN;
    if (!labels)
        return;
    ev->precision = ev->tp + ev->fp ? (double)ev->tp / (double)(ev->tp + ev->fp) : 0.0;
    ev->recall = ev->tp + ev->fn ? (double)ev->tp / (double)(ev->tp + ev->fn) : 0.0;
    ev->f1 = ev->precision + ev->recall > 0
                 ? 2 * ev->precision * ev->recall / (ev->precision + ev->recall)
                 : 0.0;
}

void anomaly_labels_from_intervals(const struct series *s, const time_t *start, const time_t *end,
                                   size_t count, unsigned char *labels)
{
    for (size_t i = 0; i < s->n; i++) {
        labels[i] = 0;
        for (size_t j = 0; j < count; j++)
            if (s->ts[i] >= start[j] && s->ts[i] < end[j]) {
                labels[i] = 1;
                break;
            }
    }
}

static int check_config(const struct anomaly_config *c, char *err, size_t errlen)
{
    if (!c)
        return enms_fail(err, errlen, ENMS_EINVAL, "no anomaly configuration");
    if (c->trees < 1 || c->trees > IFOREST_MAX_TREES || c->subsample < 2 ||
        c->subsample > IFOREST_MAX_SUBSAMPLE)
        return enms_fail(err, errlen, ENMS_EINVAL, "trees must be 1..%d and subsample 2..%d",
                         IFOREST_MAX_TREES, IFOREST_MAX_SUBSAMPLE);
    if (!(c->contamination > 0 && c->contamination <= 0.5) ||
        !(c->critical_share > 0 && c->critical_share <= 1))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "contamination must be in (0, 0.5] and critical share in (0, 1]");
    if (!(c->z_warning > 0 && c->z_critical >= c->z_warning && c->z_critical < 1e6) ||
        !(c->cusum_k >= 0 && c->cusum_k < 1e6) || !(c->cusum_h > 0 && c->cusum_h < 1e6))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "need 0 < z warning <= z critical and CUSUM k >= 0, h > 0");
    if (c->stuck_hours < 2 || c->stuck_hours > 24 * 366)
        return enms_fail(err, errlen, ENMS_EINVAL, "stuck hours must be 2..8784");
    if (c->expected < ANOMALY_EXPECTED_AUTO || c->expected > ANOMALY_EXPECTED_SUPPLIED)
        return enms_fail(err, errlen, ENMS_EINVAL, "unknown expected-value source");
    return 0;
}

/* Lag-1 autocorrelation of the standardised residuals of consecutive
 * usable hours, each clipped at z_critical so the anomalies in the training
 * data do not dominate it. */
static double residual_autocorrelation(const struct anomaly_model *m, const struct series *s,
                                       const double *e)
{
    double s0 = 0, s1 = 0, prev = NAN;
    for (size_t i = 0; i < s->n; i++) {
        double z = (s->energy[i] - e[i] - m->residual_median) / m->residual_scale;
        if (!usable(s, i) || !isfinite(z)) {
            prev = NAN;
            continue;
        }
        z = fmax(-m->z_critical, fmin(m->z_critical, z));
        s0 += z * z;
        if (!isnan(prev))
            s1 += z * prev;
        prev = z;
    }
    return s0 > 0 ? s1 / s0 : 0.0;
}

/* Chooses and fits the expected-value model into m. */
static int fit_expected(const struct series *s, const double *supplied,
                        const struct anomaly_config *cfg, const struct model_hooks *hooks,
                        struct anomaly_model *m, int *baseline_fitted, char *err, size_t errlen)
{
    enum anomaly_expected want = cfg->expected;
    if (want == ANOMALY_EXPECTED_SUPPLIED && !supplied)
        return enms_fail(err, errlen, ENMS_EINVAL, "expected energy was not supplied");
    if (supplied && (want == ANOMALY_EXPECTED_AUTO || want == ANOMALY_EXPECTED_SUPPLIED)) {
        m->expected = ANOMALY_EXPECTED_SUPPLIED;
        return 0;
    }
    int drivers = s->production || s->temp_c;
    if (want == ANOMALY_EXPECTED_BASELINE || (want == ANOMALY_EXPECTED_AUTO && drivers)) {
        struct baseline_config bc;
        baseline_config_default(&bc, BASELINE_HOURLY);
        bc.holdout_fraction = 0; /* only the fitted values are needed */
        bc.min_days = ANOMALY_MIN_DAYS;
        struct baseline_result *br = malloc(sizeof *br);
        if (!br)
            return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        /* The baseline's own progress is the first 40 % of this fit's. */
        struct model_hooks none = {0};
        int rc = baseline_fit(s, &bc, hooks ? hooks : &none, br, err, errlen);
        if (rc == 0) {
            m->expected = ANOMALY_EXPECTED_BASELINE;
            m->baseline = br->model;
            *baseline_fitted = 1;
        }
        free(br);
        if (rc == 0 || rc != ENMS_EINVAL || want == ANOMALY_EXPECTED_BASELINE)
            return rc;
        /* AUTO and the baseline could not be fitted: fall back. */
    }
    m->expected = ANOMALY_EXPECTED_PROFILE;
    return fit_profile(s, m->profile, err, errlen);
}

/* Scales the hooks' fractions into [lo, hi] of the whole fit. */
struct scaled_hooks {
    const struct model_hooks *outer;
    double lo, hi;
};

static void scaled_progress(void *opaque, double fraction, const char *stage)
{
    const struct scaled_hooks *sh = opaque;
    model_report(sh->outer, sh->lo + (sh->hi - sh->lo) * fraction, stage);
}

static int scaled_stop(void *opaque)
{
    const struct scaled_hooks *sh = opaque;
    return model_should_stop(sh->outer);
}

int anomaly_fit(const struct series *s, const double *expected, const unsigned char *labels,
                const struct anomaly_config *cfg, const struct model_hooks *hooks,
                struct anomaly_result *out, char *err, size_t errlen)
{
    struct anomaly_result r = {0};
    double *e = NULL, *x = NULL, *scores = NULL;
    struct series_report rep;
    *out = (struct anomaly_result){0};
    int rc = check_config(cfg, err, errlen);
    if (rc)
        return rc;
    rc = series_check(s, &rep, err, errlen);
    if (rc)
        return rc;
    if (rep.hours_present < (size_t)ANOMALY_MIN_DAYS * 24)
        return series_insufficient(err, errlen, rep.hours_present / 24, ANOMALY_MIN_DAYS, "days");

    struct anomaly_model *m = &r.model;
    m->utc_offset_s = s->utc_offset_s;
    m->contamination = cfg->contamination;
    m->z_warning = cfg->z_warning;
    m->z_critical = cfg->z_critical;
    m->cusum_k = cfg->cusum_k;
    m->cusum_h = cfg->cusum_h;
    m->stuck_hours = cfg->stuck_hours;
    r.n = s->n;

    model_report(hooks, 0.0, "features");
    struct scaled_hooks sh = {hooks, 0.0, 0.4};
    struct model_hooks inner = {scaled_progress, scaled_stop, &sh};
    rc = fit_expected(s, expected, cfg, &inner, m, &r.baseline_fitted, err, errlen);
    if (rc)
        goto fail;
    e = malloc((s->n ? s->n : 1) * sizeof *e);
    x = malloc((s->n ? s->n : 1) * IFOREST_MAX_FEATURES * sizeof *x);
    scores = malloc((s->n ? s->n : 1) * sizeof *scores);
    for (int d = 0; d < ANOMALY_DETECTORS; d++) {
        r.flags[d].score = malloc((s->n ? s->n : 1) * sizeof *r.flags[d].score);
        r.flags[d].severity = malloc(s->n ? s->n : 1);
    }
    if (!e || !x || !scores || !r.flags[0].score || !r.flags[0].severity || !r.flags[1].score ||
        !r.flags[1].severity) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for %zu hours", s->n);
        goto fail;
    }
    rc = expected_values(m, s, expected, e, err, errlen);
    if (rc)
        goto fail;

    /* Robust location and scale of the training residuals. */
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (usable(s, i) && isfinite(e[i]))
            scores[k++] = s->energy[i] - e[i];
    if (k < (size_t)ANOMALY_MIN_DAYS * 24) {
        rc = series_insufficient(err, errlen, k / 24, ANOMALY_MIN_DAYS, "days");
        goto fail;
    }
    m->residual_median = median_sorted_inplace(scores, k);
    for (size_t i = 0; i < k; i++)
        scores[i] = fabs(scores[i] - m->residual_median);
    double mad = median_sorted_inplace(scores, k);
    /* A MAD of 0 (more than half the residuals identical) would make every
     * other hour infinitely anomalous; floor the scale at a tiny share of
     * the typical energy instead. */
    double floor_scale = 1e-6 * (fabs(m->profile[0]) + fabs(m->residual_median) + 1.0);
    m->residual_scale = fmax(MAD_TO_SD * mad, floor_scale);
    m->residual_rho = residual_autocorrelation(m, s, e);

    /* The forest's features. */
    m->features[ANOMALY_F_HOUR] = m->features[ANOMALY_F_WEEKDAY] = 1;
    m->features[ANOMALY_F_ENERGY] = 1;
    m->features[ANOMALY_F_PRODUCTION] = s->production != NULL;
    m->features[ANOMALY_F_TEMPERATURE] = s->temp_c != NULL;
    m->features[ANOMALY_F_RESIDUAL] = m->expected != ANOMALY_EXPECTED_PROFILE;
    m->nfeatures = 0;
    for (int f = 0; f < ANOMALY_F_COUNT; f++)
        m->nfeatures += m->features[f];
    size_t rows = 0;
    for (size_t i = 0; i < s->n; i++)
        if (usable(s, i) && feature_row(m, s, i, e, x + rows * (size_t)m->nfeatures) == 0)
            rows++;
    if (rows < (size_t)ANOMALY_MIN_DAYS * 24) {
        rc = series_insufficient(err, errlen, rows / 24, ANOMALY_MIN_DAYS, "days");
        goto fail;
    }
    rc = iforest_build(x, rows, m->nfeatures, cfg->trees, cfg->subsample, cfg->seed, hooks, 0.4,
                       0.8, &m->forest, err, errlen);
    if (rc)
        goto fail;

    /* Thresholds: the contamination share of training hours scores at or
     * above if_threshold, the top critical_share of those at or above
     * if_critical. */
    model_report(hooks, 0.8, "scoring");
    for (size_t i = 0; i < rows; i++) {
        if ((i & 1023) == 0 && model_should_stop(hooks)) {
            rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while scoring");
            goto fail;
        }
        scores[i] = -iforest_score(&m->forest, x + i * (size_t)m->nfeatures);
    }
    qsort(scores, rows, sizeof *scores, cmp_double); /* descending scores */
    size_t nflag = (size_t)ceil(cfg->contamination * (double)rows);
    size_t ncrit = (size_t)ceil(cfg->critical_share * (double)nflag);
    nflag = nflag < 1 ? 1 : nflag;
    ncrit = ncrit < 1 ? 1 : ncrit;
    m->if_threshold = -scores[nflag - 1];
    m->if_critical = -scores[ncrit - 1];

    model_report(hooks, 0.85, "evaluating");
    rc = anomaly_detect(m, s, expected, hooks, r.flags, err, errlen);
    if (rc)
        goto fail;
    for (int d = 0; d < ANOMALY_DETECTORS; d++)
        anomaly_evaluate(s, &r.flags[d], labels, &r.eval[d]);
    /* With labels the better F1 wins (ties go to residual monitoring); without
     * them residual monitoring is the default: its flags come with a reason
     * (how far from expected, a shift, a stuck meter) an energy manager can
     * check, and its rate is not fixed in advance. */
    m->default_detector = ANOMALY_RESIDUAL;
    if (labels && r.eval[ANOMALY_IFOREST].f1 > r.eval[ANOMALY_RESIDUAL].f1)
        m->default_detector = ANOMALY_IFOREST;
    model_report(hooks, 1.0, "done");
    free(scores);
    free(x);
    free(e);
    *out = r;
    return 0;
fail:
    free(scores);
    free(x);
    free(e);
    anomaly_result_free(&r);
    return rc;
}
