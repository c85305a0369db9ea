/* baseline.c - change-point energy baselines (CalTRACK-style model
 * selection, ASHRAE Guideline 14 statistics) on daily or hourly rows.
 *
 * How a fit goes: the readings become rows (complete local days, or hours);
 * for every combination of the always-present columns (intercept, day-of-
 * week and hour-of-day indicators, production) the degree-day columns of
 * every balance point on the grid are scored by the SSE they leave, then the
 * best candidates are refitted in full with gsl_multifit_linear and the best
 * one with physical signs is kept. Autocorrelated residuals send the search
 * round again as GLS with AR(1) errors; daily fits take their balance
 * points from that search on the hours of the same days. Storage of the result (JSON) lives in
 * model_json.c, not here. */
#include "baseline.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multifit.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/error.h"

/* Largest balance point grid accepted (per heating or cooling). */
#define GRID_MAX 401
/* Candidates kept per fit: 4 term sets x weekday on/off x production on/off. */
#define CAND_MAX 16
/* A degree-day term must be significant at this level (CalTRACK uses 0.1). */
#define TERM_P_VALUE 0.1
/* Searches at most: OLS, then feasible GLS iterated on rho. */
#define GLS_PASSES 3

void baseline_config_default(struct baseline_config *cfg, enum baseline_granularity g)
{
    *cfg = (struct baseline_config){
        .granularity = g,
        .heat_min_c = 5.0,
        .heat_max_c = 25.0,
        .cool_min_c = 10.0,
        .cool_max_c = 30.0,
        .step_c = 0.5,
        .min_days = 30,
        .min_dd_days = 10,
        .holdout_fraction = 0.2,
        .cv_rmse_limit = g == BASELINE_HOURLY ? 30.0 : 15.0,
        .nmbe_limit = g == BASELINE_HOURLY ? 10.0 : 5.0,
        .weekday = BASELINE_AUTO,
        .balance_from_hours = 1,
    };
}

/* ---- rows ---------------------------------------------------------------- */

/* The fitting data: one row per day or hour, oldest first. */
struct rows {
    size_t n;
    int hourly;
    int m;         /* temperatures per row: 24 (daily), 1 (hourly), 0 (none) */
    double *y;     /* energy */
    double *prod;  /* production, NULL when not used */
    double *temps; /* n * m, NAN when missing (daily rows only) */
    int *weekday;
    int *hour; /* hourly rows only */
    time_t *ts;
    /* 1 when the row directly follows the previous one (the next hour or
     * day): only then is an AR(1) error carried over between them. */
    unsigned char *contig;
};

static void rows_free(struct rows *r)
{
    free(r->y);
    free(r->prod);
    free(r->temps);
    free(r->weekday);
    free(r->hour);
    free(r->ts);
    free(r->contig);
    *r = (struct rows){0};
}

static int rows_alloc(struct rows *r, size_t n, int prod, int m, int hourly)
{
    *r = (struct rows){.hourly = hourly, .m = m};
    size_t cap = n ? n : 1;
    r->y = malloc(cap * sizeof *r->y);
    r->prod = prod ? malloc(cap * sizeof *r->prod) : NULL;
    r->temps = m ? malloc(cap * (size_t)m * sizeof *r->temps) : NULL;
    r->weekday = malloc(cap * sizeof *r->weekday);
    r->hour = hourly ? malloc(cap * sizeof *r->hour) : NULL;
    r->ts = malloc(cap * sizeof *r->ts);
    r->contig = malloc(cap);
    if (!r->y || (prod && !r->prod) || (m && !r->temps) || !r->weekday || (hourly && !r->hour) ||
        !r->ts || !r->contig) {
        rows_free(r);
        return ENMS_ENOMEM;
    }
    return 0;
}

/* Degree-days of row i at balance point tb: the mean of the row's hourly
 * degree-hours (daily rows) or the degree-hours themselves (hourly rows). */
static double row_dd(const struct rows *r, size_t i, double tb, int heating)
{
    const double *t = r->temps + i * (size_t)r->m;
    double sum = 0;
    int k = 0;
    for (int h = 0; h < r->m; h++) {
        if (isnan(t[h]))
            continue;
        sum += heating ? series_heating_dh(t[h], tb) : series_cooling_dh(t[h], tb);
        k++;
    }
    return k ? sum / k : NAN;
}

/* Daily rows from complete days. A driver enters the model only when at
 * least min_days days have it; days missing a used driver are left out. */
static int rows_from_days(const struct series_days *d, const struct series *s, size_t min_days,
                          struct rows *r, size_t *dropped)
{
    size_t with_prod = 0, with_temp = 0;
    for (size_t i = 0; i < d->n; i++) {
        with_prod += !isnan(d->production[i]);
        with_temp += !isnan(d->temp_mean[i]);
    }
    int prod = s->production && with_prod >= min_days;
    int temp = s->temp_c && with_temp >= min_days;
    if (rows_alloc(r, d->n, prod, temp ? 24 : 0, 0))
        return ENMS_ENOMEM;
    *dropped = 0;
    for (size_t i = 0; i < d->n; i++) {
        if ((prod && isnan(d->production[i])) || (temp && isnan(d->temp_mean[i]))) {
            (*dropped)++;
            continue;
        }
        size_t k = r->n++;
        r->y[k] = d->energy[i];
        if (prod)
            r->prod[k] = d->production[i];
        if (temp)
            memcpy(r->temps + k * 24, d->temps + i * 24, 24 * sizeof *r->temps);
        r->weekday[k] = d->weekday[i];
        r->ts[k] = d->start[i];
        r->contig[k] = k > 0 && r->ts[k] - r->ts[k - 1] == 86400;
    }
    return 0;
}

/* Hourly rows: usable hours that have every driver the series offers. */
static int rows_from_hours(const struct series *s, struct rows *r)
{
    if (rows_alloc(r, s->n, s->production != NULL, s->temp_c ? 1 : 0, 1))
        return ENMS_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        /* series_check() has verified the order, so a duplicate hour is one
         * with the same local hour slot as its predecessor. */
        if (i > 0 && floor((double)(s->ts[i] + s->utc_offset_s) / 3600) ==
                         floor((double)(s->ts[i - 1] + s->utc_offset_s) / 3600))
            continue; /* duplicate hour: the first reading wins */
        if ((s->skip && s->skip[i]) || !isfinite(s->energy[i]))
            continue;
        if ((s->production && isnan(s->production[i])) || (s->temp_c && isnan(s->temp_c[i])))
            continue;
        size_t k = r->n++;
        r->y[k] = s->energy[i];
        if (s->production)
            r->prod[k] = s->production[i];
        if (s->temp_c)
            r->temps[k] = s->temp_c[i];
        r->weekday[k] = series_local_weekday(s->ts[i], s->utc_offset_s);
        r->hour[k] = series_local_hour(s->ts[i], s->utc_offset_s);
        r->ts[k] = s->ts[i];
        r->contig[k] = k > 0 && r->ts[k] - r->ts[k - 1] == 3600;
    }
    return 0;
}

/* ---- design -------------------------------------------------------------- */

/* Which columns a model has, in the fixed order intercept, Monday..Saturday,
 * hours 1..23, production, heating, cooling. */
struct layout {
    int weekday, hour, prod, heat, cool;
    double th, tc;
};

static size_t layout_p(const struct layout *l)
{
    return 1 + (l->weekday ? 6 : 0) + (l->hour ? 23 : 0) + (l->prod ? 1 : 0) + (l->heat ? 1 : 0) +
           (l->cool ? 1 : 0);
}

/* Fills x[0..layout_p-1] for row i; returns 0, or -1 when a value is NAN. */
static int fill_row(const struct rows *r, size_t i, const struct layout *l, double *x)
{
    size_t c = 0;
    x[c++] = 1.0;
    if (l->weekday)
        for (int d = 0; d < 6; d++)
            x[c++] = r->weekday[i] == d ? 1.0 : 0.0;
    if (l->hour)
        for (int h = 1; h < 24; h++)
            x[c++] = r->hour[i] == h ? 1.0 : 0.0;
    if (l->prod)
        x[c++] = r->prod[i];
    if (l->heat)
        x[c++] = row_dd(r, i, l->th, 1);
    if (l->cool)
        x[c++] = row_dd(r, i, l->tc, 0);
    for (size_t j = 0; j < c; j++)
        if (isnan(x[j]))
            return -1;
    return 0;
}

/* Prais-Winsten transformation for AR(1) errors e_i = rho e_{i-1} + u_i:
 * v_i - rho v_{i-1} where row i directly follows row i-1, and
 * sqrt(1 - rho^2) v_i at the start of every run of consecutive rows (the
 * first row, and after a gap). Least squares on the transformed rows is
 * generalised least squares, so both the coefficients and their standard
 * errors account for the autocorrelation. v holds n values of rows
 * lo..lo+n-1, `stride` apart; transformed in place (backwards, so that
 * v_{i-1} is still the original when row i needs it). rho 0: unchanged. */
static void whiten(const struct rows *r, size_t lo, double rho, double *v, size_t n, size_t stride)
{
    if (rho == 0 || n == 0)
        return;
    double head = sqrt(1.0 - rho * rho);
    for (size_t i = n - 1; i > 0; i--) {
        if (r->contig[lo + i])
            v[i * stride] -= rho * v[(i - 1) * stride];
        else
            v[i * stride] *= head;
    }
    v[0] *= head;
}

/* ---- statistics ---------------------------------------------------------- */

static void compute_stats(const double *y, const double *yhat, size_t n, size_t p, double cv_limit,
                          double nmbe_limit, struct baseline_stats *st)
{
    double sum = 0, sse = 0, se = 0;
    for (size_t i = 0; i < n; i++)
        sum += y[i];
    double ybar = n ? sum / (double)n : NAN;
    double sst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = y[i] - yhat[i];
        sse += e * e;
        se += e;
        sst += (y[i] - ybar) * (y[i] - ybar);
    }
    double dof = (double)n - (double)p;
    *st = (struct baseline_stats){.n = n, .p = p, .ybar = ybar, .sse = sse};
    st->r2 = sst > 0 ? 1.0 - sse / sst : NAN;
    st->adj_r2 = (p > 0 && dof > 0 && sst > 0) ? 1.0 - (sse / dof) / (sst / ((double)n - 1)) : NAN;
    st->rmse = dof > 0 ? sqrt(sse / dof) : NAN;
    st->cv_rmse = dof > 0 && ybar != 0 ? st->rmse / ybar * 100.0 : NAN;
    st->nmbe = dof > 0 && ybar != 0 ? se / (dof * ybar) * 100.0 : NAN;
    st->meets_limits = isfinite(st->cv_rmse) && isfinite(st->nmbe) && st->cv_rmse <= cv_limit &&
                       fabs(st->nmbe) <= nmbe_limit;
}

/* ---- OLS ----------------------------------------------------------------- */

/* gsl's default handler aborts; model code reports errors instead. The
 * handler is process-wide, so it is set once to "off" on every entry rather
 * than saved and restored (which would race between worker threads). */
static void gsl_quiet(void)
{
    gsl_set_error_handler_off();
}

/* OLS of y on the n x p row-major x into coef/se; *sse the residual sum of
 * squares. Returns 0, ENMS_ENOMEM or ENMS_EINVAL. */
static int ols_solve(const double *x, const double *y, size_t n, size_t p, double *coef, double *se,
                     double *sse, char *err, size_t errlen)
{
    int rc = 0;
    gsl_quiet();
    gsl_matrix_const_view X = gsl_matrix_const_view_array(x, n, p);
    gsl_vector_const_view Y = gsl_vector_const_view_array(y, n);
    gsl_vector *c = gsl_vector_alloc(p);
    gsl_matrix *cov = gsl_matrix_alloc(p, p);
    gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc(n, p);
    if (!c || !cov || !ws) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for a %zu x %zu fit", n, p);
        goto done;
    }
    double chisq = 0;
    if (gsl_multifit_linear(&X.matrix, &Y.vector, c, cov, &chisq, ws) != 0) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "least squares failed on %zu rows", n);
        goto done;
    }
    for (size_t j = 0; j < p; j++) {
        coef[j] = gsl_vector_get(c, j);
        /* gsl scales the covariance by chisq / (n - p): the usual OLS one. */
        se[j] = sqrt(gsl_matrix_get(cov, j, j));
    }
    *sse = chisq;
done:
    gsl_multifit_linear_free(ws);
    gsl_matrix_free(cov);
    gsl_vector_free(c);
    return rc;
}

int baseline_ols(const double *x, const double *y, size_t n, size_t p, struct baseline_ols *out,
                 char *err, size_t errlen)
{
    if (!x || !y || !out || p == 0 || p > BASELINE_MAX_COEF)
        return enms_fail(err, errlen, ENMS_EINVAL, "design with %zu columns (1..%d accepted)", p,
                         BASELINE_MAX_COEF);
    if (n <= p)
        return series_insufficient(err, errlen, n, p + 1, "rows");
    for (size_t i = 0; i < n * p; i++)
        if (!isfinite(x[i]))
            return enms_fail(err, errlen, ENMS_EINVAL, "design value %zu is not finite", i);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return enms_fail(err, errlen, ENMS_EINVAL, "response %zu is not finite", i);
    *out = (struct baseline_ols){.n = n, .p = p};
    double sse;
    int rc = ols_solve(x, y, n, p, out->coef, out->se, &sse, err, errlen);
    if (rc)
        return rc;
    double *yhat = malloc(n * sizeof *yhat);
    if (!yhat)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        double v = 0;
        for (size_t j = 0; j < p; j++)
            v += x[i * p + j] * out->coef[j];
        yhat[i] = v;
    }
    compute_stats(y, yhat, n, p, INFINITY, INFINITY, &out->stats);
    out->stats.meets_limits = 0;
    free(yhat);
    return 0;
}

/* ---- selection ----------------------------------------------------------- */

struct progress_span {
    const struct model_hooks *hooks;
    double lo, hi;
};

struct candidate {
    struct layout l;
    size_t p;
    double sse, adj;
};

struct search {
    const struct rows *r;
    size_t lo, hi; /* rows [lo, hi) */
    const struct baseline_config *cfg;
    double sst;
    size_t nh, nc; /* grid sizes */
    double th[GRID_MAX], tc[GRID_MAX];
    int allow_heat, allow_cool; /* cleared when a term fails the autocorrelation check */
    double rho;                 /* AR(1) coefficient of the errors: 0 OLS, else GLS */
    struct candidate cand[CAND_MAX];
    size_t ncand;
    size_t evaluated;
};

static size_t grid(double lo, double hi, double step, double *out)
{
    size_t n = 0;
    for (size_t j = 0; n < GRID_MAX; j++) {
        double v = lo + step * (double)j;
        if (v > hi + 1e-9)
            break;
        out[n++] = v;
    }
    return n;
}

static double adj_r2(double sse, double sst, size_t n, size_t p)
{
    return 1.0 - (sse / ((double)n - (double)p)) / (sst / ((double)n - 1.0));
}

/* Keeps c when it beats the best candidate with the same terms. */
static void offer(struct search *s, const struct candidate *c)
{
    s->evaluated++;
    for (size_t i = 0; i < s->ncand; i++) {
        struct layout *l = &s->cand[i].l;
        if (l->weekday == c->l.weekday && l->prod == c->l.prod && l->heat == c->l.heat &&
            l->cool == c->l.cool) {
            if (c->adj > s->cand[i].adj)
                s->cand[i] = *c;
            return;
        }
    }
    if (s->ncand < CAND_MAX)
        s->cand[s->ncand++] = *c;
}

/* Is a degree-day coefficient beta with variance var, fitted on n rows
 * with dof residual degrees of freedom, positive and worth its parameter?
 * Two rules, both must hold:
 * - CalTRACK's: significant at TERM_P_VALUE (two-sided t test);
 * - the Bayesian information criterion: adding the term must lower BIC =
 *   n ln(SSE/n) + p ln n. One more column lowers the SSE by the factor
 *   1 / (1 + t^2/dof), so the term pays its way only when
 *   n ln(1 + t^2/dof) > ln n, i.e. roughly t^2 > ln n (|t| > 2.4 on a year
 *   of days, > 3.0 on a year of hours). A p < 0.1 test alone lets through
 *   about one spurious term in ten, and more after a search over ~40
 *   balance points picks the best-looking one; BIC's penalty grows with n
 *   and is what keeps e.g. a t = 2.2 heating term the demo pump does not
 *   have out (docs/models-baseline-anomaly.md). Real terms of the demo have
 *   t >= 10. */
static int term_ok(double beta, double var, double n, double dof)
{
    if (!(beta > 0) || !(var > 0) || dof < 1 || !(n > 1))
        return 0;
    double t = beta / sqrt(var);
    if (t < gsl_cdf_tdist_Qinv(TERM_P_VALUE / 2.0, dof))
        return 0;
    return n * log1p(t * t / dof) > log(n);
}

/* Grid columns that householder_qt transforms together. */
#define QT_BATCH 4

/* The steps of one Householder reflection on column v (head v[j], tail
 * v[j+1..n-1]) once its dot product d1 with the reflection's tail is known. */
static void householder_apply(const double *restrict h, double t, size_t j, size_t n, double d1,
                              double *restrict v)
{
    double d = v[j] + d1;
    v[j] = v[j] - t * d;
    double alpha = -t * d;
    if (alpha == 0.0)
        return;
    for (size_t i = j + 1; i < n; i++)
        v[i] += alpha * h[i];
}

/* cols[c] <- Q'cols[c] (c < ncols <= QT_BATCH, each n long) for the Q of a
 * QR factorisation, given its Householder vectors hv (column j at hv + j *
 * n; element j an implicit 1, the rows above it unused) and tau.
 *
 * This is gsl_linalg_QR_QTvec's arithmetic step for step - each dot
 * product summed from 0 in row order, then v[j] - tau d and v[i] += alpha
 * h[i], skipped when tau or alpha is 0 (gsl_linalg_householder_hv, gsl's
 * ddot and daxpy) - so every column comes out bit for bit the same. What
 * changes is speed: a dot product summed in order is one long chain of
 * dependent additions, so four columns are summed side by side (four
 * independent chains, each in the same order), and the Householder vectors
 * are read contiguously instead of as strided columns of the row-major QR
 * matrix. The balance point search applies Q' to ~80 columns per base and
 * was most of a baseline job's time (docs/performance.md). */
static void householder_qt(const double *hv, const double *tau, size_t n, size_t k,
                           double *const *cols, size_t ncols)
{
    for (size_t j = 0; j < k && j < n; j++) {
        double t = tau[j];
        if (t == 0.0)
            continue;
        const double *h = hv + j * n;
        if (ncols == QT_BATCH) {
            const double *a = cols[0], *b = cols[1], *c = cols[2], *e = cols[3];
            double da = 0.0, db = 0.0, dc = 0.0, de = 0.0;
            for (size_t i = j + 1; i < n; i++) {
                da += h[i] * a[i];
                db += h[i] * b[i];
                dc += h[i] * c[i];
                de += h[i] * e[i];
            }
            householder_apply(h, t, j, n, da, cols[0]);
            householder_apply(h, t, j, n, db, cols[1]);
            householder_apply(h, t, j, n, dc, cols[2]);
            householder_apply(h, t, j, n, de, cols[3]);
            continue;
        }
        for (size_t c = 0; c < ncols; c++) {
            double d1 = 0.0;
            for (size_t i = j + 1; i < n; i++)
                d1 += h[i] * cols[c][i];
            householder_apply(h, t, j, n, d1, cols[c]);
        }
    }
}

/* Scores every degree-day model on one set of base columns (the layout's
 * intercept, indicators and production) with the Frisch-Waugh-Lovell
 * shortcut: after a QR factorisation of the base columns Z, the SSE of a
 * model that adds columns H is |ry|^2 - b' M^-1 b with ry and rH the
 * residuals of y and H on Z, b = rH'ry and M = rH'rH, so a grid of hundreds
 * of balance points costs little more than one fit. The residuals are the
 * tail (rows k..n-1) of Q'v. */
static int search_base(struct search *s, struct layout base, const struct progress_span *ps,
                       char *err, size_t errlen)
{
    const struct rows *r = s->r;
    size_t n = s->hi - s->lo, k = layout_p(&base);
    int rc = 0;
    int temp = r->m > 0;
    size_t nt = n > k ? n - k : 0;
    gsl_matrix *Z = gsl_matrix_alloc(n, k);
    gsl_vector *tau = gsl_vector_alloc(k);
    gsl_vector *v = gsl_vector_alloc(n);
    double *ry = malloc((nt ? nt : 1) * sizeof *ry);
    double *hres = temp ? malloc((s->nh ? s->nh : 1) * (nt ? nt : 1) * sizeof *hres) : NULL;
    double *cres = temp ? malloc((s->nc ? s->nc : 1) * (nt ? nt : 1) * sizeof *cres) : NULL;
    double *hdot = malloc(GRID_MAX * 2 * sizeof *hdot); /* |rh|^2, rh'ry */
    double *cdot = malloc(GRID_MAX * 2 * sizeof *cdot);
    int *hok = calloc(GRID_MAX, sizeof *hok), *cok = calloc(GRID_MAX, sizeof *cok);
    /* Z's Householder vectors, contiguous (householder_qt), and tau. */
    double *hv = temp ? malloc((n ? n : 1) * k * sizeof *hv) : NULL;
    double *wbuf = temp ? malloc((n ? n : 1) * QT_BATCH * sizeof *wbuf) : NULL;
    double htau[BASELINE_MAX_COEF];
    double xrow[BASELINE_MAX_COEF];
    if (!Z || !tau || !v || !ry || (temp && (!hres || !cres || !hv || !wbuf)) || !hdot || !cdot ||
        !hok || !cok) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory in the balance point search");
        goto done;
    }
    if (n <= k + 2)
        goto done; /* too few rows for this base: no candidate */
    for (size_t i = 0; i < n; i++) {
        if (fill_row(r, s->lo + i, &base, xrow)) {
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "missing driver in row %zu", i);
            goto done;
        }
        for (size_t j = 0; j < k; j++)
            gsl_matrix_set(Z, i, j, xrow[j]);
        gsl_vector_set(v, i, r->y[s->lo + i]);
    }
    for (size_t j = 0; j < k; j++)
        whiten(r, s->lo, s->rho, gsl_matrix_ptr(Z, 0, j), n, Z->tda);
    whiten(r, s->lo, s->rho, gsl_vector_ptr(v, 0), n, v->stride);
    if (gsl_linalg_QR_decomp(Z, tau) != 0)
        goto done;
    if (model_should_stop(ps->hooks)) {
        rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while searching balance points");
        goto done;
    }
    /* A base whose columns are collinear (a weekday that never occurs, a
     * production that is always 0) would make the shortcut lie: skip it. */
    double rmax = 0;
    for (size_t j = 0; j < k; j++)
        rmax = fmax(rmax, fabs(gsl_matrix_get(Z, j, j)));
    for (size_t j = 0; j < k; j++)
        if (!(fabs(gsl_matrix_get(Z, j, j)) > 1e-9 * rmax))
            goto done;
    gsl_linalg_QR_QTvec(Z, tau, v);
    double ry2 = 0;
    for (size_t i = 0; i < nt; i++) {
        ry[i] = gsl_vector_get(v, k + i);
        ry2 += ry[i] * ry[i];
    }
    double dof0 = (double)n - (double)k;
    struct candidate c = {.l = base, .p = k, .sse = ry2, .adj = adj_r2(ry2, s->sst, n, k)};
    offer(s, &c);
    if (!temp)
        goto done;
    for (size_t j = 0; j < k; j++) {
        htau[j] = gsl_vector_get(tau, j);
        for (size_t i = j + 1; i < n; i++)
            hv[j * n + i] = gsl_matrix_get(Z, i, j);
    }

    size_t need = s->cfg->min_dd_days * (r->hourly ? 24 : 1);
    size_t total = s->nh + s->nc;
    /* The grid columns go through Q' QT_BATCH at a time (householder_qt),
     * then are scored one by one in grid order as before. */
    for (size_t g0 = 0; g0 < total; g0 += QT_BATCH) {
        size_t gend = g0 + QT_BATCH < total ? g0 + QT_BATCH : total;
        double *cols[QT_BATCH];
        size_t positive[QT_BATCH], ncols = 0;
        for (size_t g = g0; g < gend; g++) {
            if (model_should_stop(ps->hooks)) {
                rc =
                    enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while searching balance points");
                goto done;
            }
            model_report(ps->hooks, ps->lo + (ps->hi - ps->lo) * (double)g / (double)total,
                         "searching balance points");
            int heating = g < s->nh;
            size_t j = heating ? g : g - s->nh;
            if (!(heating ? s->allow_heat : s->allow_cool))
                continue;
            double tb = heating ? s->th[j] : s->tc[j];
            double *w = wbuf + (g - g0) * n;
            size_t pos = 0;
            for (size_t i = 0; i < n; i++) {
                double x = row_dd(r, s->lo + i, tb, heating);
                pos += x > 0;
                w[i] = x;
            }
            whiten(r, s->lo, s->rho, w, n, 1);
            positive[g - g0] = pos;
            cols[ncols++] = w;
        }
        householder_qt(hv, htau, n, k, cols, ncols);
        for (size_t g = g0; g < gend; g++) {
            int heating = g < s->nh;
            size_t j = heating ? g : g - s->nh;
            if (!(heating ? s->allow_heat : s->allow_cool))
                continue;
            double tb = heating ? s->th[j] : s->tc[j];
            const double *w = wbuf + (g - g0) * n;
            double *res = (heating ? hres : cres) + j * nt;
            double rr = 0, ryr = 0;
            for (size_t i = 0; i < nt; i++) {
                res[i] = w[k + i];
                rr += res[i] * res[i];
                ryr += res[i] * ry[i];
            }
            double *dot = (heating ? hdot : cdot) + 2 * j;
            dot[0] = rr;
            dot[1] = ryr;
            int ok = positive[g - g0] >= need && rr > 1e-12 * (double)n;
            (heating ? hok : cok)[j] = ok;
            if (!ok)
                continue;
            double beta = ryr / rr, sse = ry2 - ryr * ryr / rr;
            double dof = dof0 - 1;
            if (!term_ok(beta, sse / dof / rr, (double)n, dof))
                continue;
            struct candidate one = {.l = base, .p = k + 1, .sse = sse};
            one.adj = adj_r2(sse, s->sst, n, one.p);
            if (heating) {
                one.l.heat = 1;
                one.l.th = tb;
            } else {
                one.l.cool = 1;
                one.l.tc = tb;
            }
            offer(s, &one);
        }
    }
    /* Both terms: M = [hh hc; hc cc], b = [hy; cy]. */
    for (size_t a = 0; a < s->nh && s->allow_heat && s->allow_cool; a++) {
        if (!hok[a])
            continue;
        if (model_should_stop(ps->hooks)) {
            rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while searching balance points");
            goto done;
        }
        const double *rh = hres + a * nt;
        for (size_t b = 0; b < s->nc; b++) {
            if (!cok[b] || !(s->tc[b] > s->th[a] + 1e-9))
                continue;
            const double *rc2 = cres + b * nt;
            double hc = 0;
            for (size_t i = 0; i < nt; i++)
                hc += rh[i] * rc2[i];
            double hh = hdot[2 * a], hy = hdot[2 * a + 1];
            double cc = cdot[2 * b], cy = cdot[2 * b + 1];
            double det = hh * cc - hc * hc;
            if (!(det > 1e-10 * hh * cc))
                continue;
            double bh = (cc * hy - hc * cy) / det, bc = (hh * cy - hc * hy) / det;
            double sse = ry2 - (bh * hy + bc * cy);
            double dof = dof0 - 2;
            double s2 = sse / dof;
            if (!term_ok(bh, s2 * cc / det, (double)n, dof) ||
                !term_ok(bc, s2 * hh / det, (double)n, dof))
                continue;
            struct candidate two = {.l = base, .p = k + 2, .sse = sse};
            two.l.heat = two.l.cool = 1;
            two.l.th = s->th[a];
            two.l.tc = s->tc[b];
            two.adj = adj_r2(sse, s->sst, n, two.p);
            offer(s, &two);
        }
    }
done:
    free(wbuf);
    free(hv);
    free(cok);
    free(hok);
    free(cdot);
    free(hdot);
    free(cres);
    free(hres);
    free(ry);
    gsl_vector_free(v);
    gsl_vector_free(tau);
    gsl_matrix_free(Z);
    return rc;
}

/* Lag-1 autocorrelation of the residuals y - yhat (rows in time order). */
static double lag1_autocorrelation(const double *y, const double *yhat, size_t n)
{
    double s0 = 0, s1 = 0;
    for (size_t i = 0; i < n; i++) {
        double e = y[i] - yhat[i];
        s0 += e * e;
        if (i > 0)
            s1 += e * (y[i - 1] - yhat[i - 1]);
    }
    return s0 > 0 ? s1 / s0 : 0.0;
}

/* Fits layout l on rows [lo, hi) in full into m (coefficients and standard
 * errors) and writes the fitted values to yhat[0..hi-lo-1]. */
static int fit_layout(const struct rows *r, size_t lo, size_t hi, const struct layout *l,
                      double rho, struct baseline_model *m, double *yhat, double *left_rho,
                      char *err, size_t errlen)
{
    size_t n = hi - lo, p = layout_p(l);
    double *x = calloc(n * p, sizeof *x);
    double *xw = calloc(n * p, sizeof *xw), *yw = malloc(n * sizeof *yw);
    double coef[BASELINE_MAX_COEF], se[BASELINE_MAX_COEF], sse;
    int rc = 0;
    if (!x || !xw || !yw) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for a %zu x %zu fit", n, p);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (fill_row(r, lo + i, l, x + i * p)) {
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "missing driver in row %zu", i);
            goto done;
        }
    /* GLS: least squares on the whitened rows; fitted values from the
     * original ones. */
    memcpy(xw, x, n * p * sizeof *x);
    memcpy(yw, r->y + lo, n * sizeof *yw);
    for (size_t j = 0; j < p; j++)
        whiten(r, lo, rho, xw + j, n, p);
    whiten(r, lo, rho, yw, n, 1);
    rc = ols_solve(xw, yw, n, p, coef, se, &sse, err, errlen);
    if (rc)
        goto done;
    for (size_t i = 0; i < n; i++) {
        double v = 0, w = 0;
        for (size_t j = 0; j < p; j++) {
            v += x[i * p + j] * coef[j];
            w += xw[i * p + j] * coef[j];
        }
        yhat[i] = v;
        yw[i] -= w; /* the whitened residual */
    }
    /* What autocorrelation is left after whitening (all of it under OLS). */
    double s0 = 0, s1 = 0;
    for (size_t i = 0; i < n; i++) {
        s0 += yw[i] * yw[i];
        if (i > 0 && r->contig[lo + i])
            s1 += yw[i] * yw[i - 1];
    }
    *left_rho = s0 > 0 ? s1 / s0 : 0.0;
    struct baseline_model out = {
        .granularity = r->hourly ? BASELINE_HOURLY : BASELINE_DAILY,
        .has_weekday = l->weekday,
        .has_production = l->prod,
        .has_heating = l->heat,
        .has_cooling = l->cool,
        .heat_balance_c = l->heat ? l->th : NAN,
        .cool_balance_c = l->cool ? l->tc : NAN,
        .n = n,
        .p = p,
        .window_start = r->ts[lo],
        .window_end = r->ts[hi - 1],
    };
    size_t c = 0;
    out.intercept = (struct baseline_term){coef[c], se[c]};
    c++;
    if (l->weekday)
        for (int d = 0; d < 6; d++, c++)
            out.weekday[d] = (struct baseline_term){coef[c], se[c]};
    if (l->hour)
        for (int h = 0; h < 23; h++, c++)
            out.hour[h] = (struct baseline_term){coef[c], se[c]};
    if (l->prod) {
        out.production = (struct baseline_term){coef[c], se[c]};
        c++;
    }
    if (l->heat) {
        out.heating = (struct baseline_term){coef[c], se[c]};
        c++;
    }
    if (l->cool)
        out.cooling = (struct baseline_term){coef[c], se[c]};
    out.utc_offset_s = m->utc_offset_s;
    *m = out;
done:
    free(yw);
    free(xw);
    free(x);
    return rc;
}

/* Balance points decided elsewhere (for daily rows: by the hourly search,
 * see baseline_fit): only these terms, only these points. */
struct balance_fix {
    int heat, cool;
    double th, tc;
};

/* Runs the whole selection on rows [lo, hi) and fits the winner into m,
 * fitted values into yhat. fix: NULL to search the configured grids. */
static int select_and_fit(const struct rows *r, size_t lo, size_t hi,
                          const struct baseline_config *cfg, const struct balance_fix *fix,
                          const struct progress_span *ps, struct baseline_model *m, double *yhat,
                          size_t *evaluated, char *err, size_t errlen)
{
    struct search *s = calloc(1, sizeof *s);
    struct progress_span span = *ps;
    int rc = 0;
    if (!s)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    s->r = r;
    s->lo = lo;
    s->hi = hi;
    s->cfg = cfg;
    s->allow_heat = s->allow_cool = 1;
    int gls_pass = 0;
again:
    s->ncand = 0;
    if (fix) {
        s->nh = fix->heat ? 1 : 0;
        s->nc = fix->cool ? 1 : 0;
        s->th[0] = fix->th;
        s->tc[0] = fix->tc;
    } else {
        s->nh = grid(cfg->heat_min_c, cfg->heat_max_c, cfg->step_c, s->th);
        s->nc = grid(cfg->cool_min_c, cfg->cool_max_c, cfg->step_c, s->tc);
    }
    s->sst = 0;
    double mean = 0;
    for (size_t i = lo; i < hi; i++)
        mean += r->y[i];
    mean /= (double)(hi - lo);
    for (size_t i = lo; i < hi; i++)
        s->sst += (r->y[i] - mean) * (r->y[i] - mean);

    /* Hourly rows always carry hour-of-day indicators: an hourly load
     * without its daily shape is not a model of anything. */
    int wd_lo = cfg->weekday == BASELINE_ON, wd_hi = cfg->weekday != BASELINE_OFF;
    int pr_hi = r->prod != NULL;
    int bases = (wd_hi - wd_lo + 1) * (pr_hi + 1), b = 0;
    for (int wd = wd_lo; wd <= wd_hi; wd++)
        for (int pr = 0; pr <= pr_hi; pr++, b++) {
            struct layout base = {.weekday = wd, .hour = r->hourly, .prod = pr};
            struct progress_span sub = {span.hooks, span.lo + (span.hi - span.lo) * b / bases * 0.9,
                                        span.lo + (span.hi - span.lo) * (b + 1) / bases * 0.9};
            rc = search_base(s, base, &sub, err, errlen);
            if (rc)
                goto done;
        }
    /* Best adjusted R^2 first; the first whose production coefficient is
     * positive wins (the degree-day signs were checked in the search). */
    for (size_t i = 1; i < s->ncand; i++)
        for (size_t j = i; j > 0 && s->cand[j].adj > s->cand[j - 1].adj; j--) {
            struct candidate t = s->cand[j];
            s->cand[j] = s->cand[j - 1];
            s->cand[j - 1] = t;
        }
    model_report(span.hooks, span.lo + (span.hi - span.lo) * 0.9, "fitting");
    for (size_t i = 0; i < s->ncand; i++) {
        if (model_should_stop(span.hooks)) {
            rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped while fitting");
            goto done;
        }
        double left_rho = 0;
        rc = fit_layout(r, lo, hi, &s->cand[i].l, s->rho, m, yhat, &left_rho, err, errlen);
        if (rc)
            goto done;
        if ((m->has_production && !(m->production.value > 0)) ||
            (m->has_heating && !(m->heating.value > 0)) ||
            (m->has_cooling && !(m->cooling.value > 0)))
            continue;
        /* Residuals autocorrelated beyond chance (lag-1 above the 2/sqrt(n)
         * bound; hourly rows always are, at 0.5-0.75) make OLS inefficient
         * and its standard errors too small. Then the whole search is
         * repeated as feasible GLS with AR(1) errors (Prais-Winsten, rho
         * from these residuals), iterated while rho still moves (at most
         * GLS_PASSES searches): balance points, terms and coefficients are
         * then chosen by the likelihood of the actual error process. */
        m->rho = lag1_autocorrelation(r->y + lo, yhat, hi - lo);
        double target = fmin(fmax(m->rho, 0.0), 0.95);
        if (target >= 2.0 / sqrt((double)(hi - lo)) && fabs(target - s->rho) > 0.01 &&
            gls_pass < GLS_PASSES) {
            gls_pass++;
            s->rho = target;
            span.lo += (span.hi - span.lo) * 0.9;
            goto again;
        }
        /* The search judged significance with standard errors that assume
         * the (whitened) residuals independent; what autocorrelation is
         * left makes them too small and lets spurious weak terms in.
         * Guideline 14 corrects with the effective sample size
         * n' = n (1 - rho) / (1 + rho); a degree-day term that is not
         * significant after that correction is removed and the search
         * repeated without it. */
        double inflate = left_rho > 0 ? sqrt((1 + left_rho) / (1 - left_rho)) : 1.0;
        double dof = (double)(m->n - m->p);
        int drop_heat =
            m->has_heating &&
            !term_ok(m->heating.value, pow(m->heating.se * inflate, 2), (double)m->n, dof);
        int drop_cool =
            m->has_cooling &&
            !term_ok(m->cooling.value, pow(m->cooling.se * inflate, 2), (double)m->n, dof);
        if (drop_heat || drop_cool) {
            /* Drop the weaker one only, then search again. */
            double th = drop_heat ? m->heating.value / m->heating.se : INFINITY;
            double tc = drop_cool ? m->cooling.value / m->cooling.se : INFINITY;
            if (th <= tc)
                s->allow_heat = 0;
            else
                s->allow_cool = 0;
            /* Progress must not run backwards: the repeated search reports
             * within what is left of the span. */
            span.lo += (span.hi - span.lo) * 0.9;
            goto again;
        }
        goto done;
    }
    rc = enms_fail(err, errlen, ENMS_EINVAL, "no baseline candidate could be fitted");
done:
    if (evaluated)
        *evaluated += s->evaluated;
    free(s);
    return rc;
}

/* Daily rows [0, nd): where do the balance points come from? Without
 * hourly rows (hr NULL), from the daily search itself. With them, from the
 * change-point search on the hours of the same days (GLS with AR(1)
 * errors): a day's degree-days are the mean of its hourly degree-hours, so
 * the balance point is where the hourly load starts to follow temperature,
 * and only hours show that - a daily total mixes the hours above and below
 * it. The daily model then keeps or drops each of those terms by its own
 * test and fits the coefficients. The hourly fit's span of progress is the
 * first 70 %. */
static int fit_rows(const struct rows *r, size_t nd, const struct rows *hr,
                    const struct baseline_config *cfg, const struct progress_span *ps,
                    struct baseline_model *m, double *yhat, double *hyhat, size_t *evaluated,
                    char *err, size_t errlen)
{
    if (!hr)
        return select_and_fit(r, 0, nd, cfg, NULL, ps, m, yhat, evaluated, err, errlen);
    /* The hours of the days in use: those before the first day left out. */
    time_t until = nd < r->n ? r->ts[nd] : (time_t)INT64_MAX;
    size_t nh = 0;
    while (nh < hr->n && hr->ts[nh] < until)
        nh++;
    struct baseline_config hcfg = *cfg;
    hcfg.granularity = BASELINE_HOURLY;
    struct baseline_model hm = {.utc_offset_s = m->utc_offset_s};
    struct progress_span hps = {ps->hooks, ps->lo, ps->lo + (ps->hi - ps->lo) * 0.7};
    struct progress_span dps = {ps->hooks, hps.hi, ps->hi};
    int rc = select_and_fit(hr, 0, nh, &hcfg, NULL, &hps, &hm, hyhat, evaluated, err, errlen);
    if (rc == ENMS_ESTOPPED || rc == ENMS_ENOMEM)
        return rc;
    if (rc) /* no hourly model: search the days themselves */
        return select_and_fit(r, 0, nd, cfg, NULL, &dps, m, yhat, evaluated, err, errlen);
    struct balance_fix fix = {.heat = hm.has_heating,
                              .cool = hm.has_cooling,
                              .th = hm.heat_balance_c,
                              .tc = hm.cool_balance_c};
    return select_and_fit(r, 0, nd, cfg, &fix, &dps, m, yhat, evaluated, err, errlen);
}

static int check_config(const struct baseline_config *c, char *err, size_t errlen)
{
    if (!c)
        return enms_fail(err, errlen, ENMS_EINVAL, "no baseline configuration");
    if (c->granularity != BASELINE_DAILY && c->granularity != BASELINE_HOURLY)
        return enms_fail(err, errlen, ENMS_EINVAL, "unknown baseline granularity");
    if (!(c->step_c >= 0.01) || !(c->heat_min_c <= c->heat_max_c) ||
        !(c->cool_min_c <= c->cool_max_c) || !isfinite(c->heat_max_c) || !isfinite(c->cool_max_c) ||
        !(c->heat_min_c > -60) || !(c->cool_max_c < 60) ||
        (c->heat_max_c - c->heat_min_c) / c->step_c >= GRID_MAX ||
        (c->cool_max_c - c->cool_min_c) / c->step_c >= GRID_MAX)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "balance point grid must lie in -60..60 degC with at most %d steps",
                         GRID_MAX);
    if (!(c->holdout_fraction >= 0 && c->holdout_fraction <= 0.5))
        return enms_fail(err, errlen, ENMS_EINVAL, "holdout fraction must be in 0..0.5");
    if (c->min_days < 2 || c->min_days > 3660)
        return enms_fail(err, errlen, ENMS_EINVAL, "minimum days must be in 2..3660");
    if (!(c->cv_rmse_limit > 0) || !(c->nmbe_limit > 0))
        return enms_fail(err, errlen, ENMS_EINVAL, "limits must be positive");
    if (c->weekday != BASELINE_AUTO && c->weekday != BASELINE_ON && c->weekday != BASELINE_OFF)
        return enms_fail(err, errlen, ENMS_EINVAL, "unknown weekday choice");
    if (c->balance_from_hours != 0 && c->balance_from_hours != 1)
        return enms_fail(err, errlen, ENMS_EINVAL, "balance_from_hours must be 0 or 1");
    return 0;
}

int baseline_fit(const struct series *s, const struct baseline_config *cfg,
                 const struct model_hooks *hooks, struct baseline_result *out, char *err,
                 size_t errlen)
{
    struct series_days days = {0};
    struct rows r = {0}, hr = {0};
    const struct rows *hours = NULL; /* hourly rows behind a daily fit's balance points */
    double *yhat = NULL, *hyhat = NULL;
    int rc = check_config(cfg, err, errlen);
    if (rc)
        return rc;
    *out = (struct baseline_result){.cv_rmse_limit = cfg->cv_rmse_limit,
                                    .nmbe_limit = cfg->nmbe_limit,
                                    .holdout_heat_balance_c = NAN,
                                    .holdout_cool_balance_c = NAN};
    model_report(hooks, 0.0, "aggregating");
    rc = series_check(s, &out->data, err, errlen);
    if (rc)
        return rc;
    int hourly = cfg->granularity == BASELINE_HOURLY;
    size_t dropped = 0;
    if (hourly) {
        rc = rows_from_hours(s, &r);
    } else {
        rc = series_daily(s, &days, err, errlen);
        if (rc)
            return rc;
        rc = rows_from_days(&days, s, cfg->min_days, &r, &dropped);
        out->days_excluded = days.days_excluded + dropped;
    }
    if (rc) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory preparing %zu rows", s->n);
        goto done;
    }
    size_t per_day = hourly ? 24 : 1;
    if (r.n < cfg->min_days * per_day) {
        rc = series_insufficient(err, errlen, r.n / per_day, cfg->min_days, "days");
        goto done;
    }
    if (r.n <= BASELINE_MAX_COEF + 2 && hourly) {
        rc = series_insufficient(err, errlen, r.n, BASELINE_MAX_COEF + 3, "hours");
        goto done;
    }
    if (!hourly && r.m > 0 && cfg->balance_from_hours) {
        if (rows_from_hours(s, &hr)) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory preparing %zu rows", s->n);
            goto done;
        }
        /* Only the hours with the drivers the daily rows use. */
        if (!r.prod && hr.prod) {
            free(hr.prod);
            hr.prod = NULL;
        }
        hours = &hr;
        hyhat = malloc((hr.n ? hr.n : 1) * sizeof *hyhat);
    }
    yhat = malloc(r.n * sizeof *yhat);
    if (!yhat || (hours && !hyhat)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    out->rows_used = r.n;
    model_report(hooks, 0.05, "aggregating");

    /* Holdout: the same procedure on the first rows, errors on the rest. */
    size_t ntrain = (size_t)floor((double)r.n * (1.0 - cfg->holdout_fraction));
    if (cfg->holdout_fraction > 0 && ntrain >= cfg->min_days * per_day && r.n - ntrain >= per_day) {
        struct baseline_model hm = {.utc_offset_s = s->utc_offset_s};
        struct progress_span ps = {hooks, 0.05, 0.45};
        rc = fit_rows(&r, ntrain, hours, cfg, &ps, &hm, yhat, hyhat, &out->candidates, err, errlen);
        if (rc)
            goto done;
        model_report(hooks, 0.45, "evaluating");
        size_t nh = r.n - ntrain;
        for (size_t i = 0; i < nh; i++) {
            size_t k = ntrain + i;
            yhat[i] = baseline_predict_row(
                &hm, r.weekday[k], hourly ? r.hour[k] : 0, hm.has_production ? r.prod[k] : 0,
                hm.has_heating ? row_dd(&r, k, hm.heat_balance_c, 1) : 0,
                hm.has_cooling ? row_dd(&r, k, hm.cool_balance_c, 0) : 0);
        }
        compute_stats(r.y + ntrain, yhat, nh, 0, cfg->cv_rmse_limit, cfg->nmbe_limit,
                      &out->holdout);
        out->holdout_valid = 1;
        out->holdout_heat_balance_c = hm.heat_balance_c;
        out->holdout_cool_balance_c = hm.cool_balance_c;
    }

    /* The artifact: selection and fit on every usable row, as CalTRACK fits
     * the whole baseline period. */
    out->model.utc_offset_s = s->utc_offset_s;
    struct progress_span ps = {hooks, 0.5, 0.95};
    rc =
        fit_rows(&r, r.n, hours, cfg, &ps, &out->model, yhat, hyhat, &out->candidates, err, errlen);
    if (rc)
        goto done;
    model_report(hooks, 0.95, "evaluating");
    compute_stats(r.y, yhat, r.n, out->model.p, cfg->cv_rmse_limit, cfg->nmbe_limit, &out->fit);
    model_report(hooks, 1.0, "done");
done:
    free(hyhat);
    free(yhat);
    rows_free(&hr);
    rows_free(&r);
    series_days_free(&days);
    return rc;
}

/* ---- prediction ---------------------------------------------------------- */

double baseline_predict_row(const struct baseline_model *m, int weekday, int hour,
                            double production, double hdd, double cdd)
{
    double v = m->intercept.value;
    if (m->has_weekday && weekday >= 0 && weekday < 6)
        v += m->weekday[weekday].value;
    if (m->granularity == BASELINE_HOURLY && hour >= 1 && hour < 24)
        v += m->hour[hour - 1].value;
    if (m->has_production)
        v += m->production.value * production;
    if (m->has_heating)
        v += m->heating.value * hdd;
    if (m->has_cooling)
        v += m->cooling.value * cdd;
    return v;
}

int baseline_predict_days(const struct baseline_model *m, const struct series_days *d, double *out,
                          char *err, size_t errlen)
{
    if (m->granularity != BASELINE_DAILY)
        return enms_fail(err, errlen, ENMS_EINVAL, "not a daily baseline");
    for (size_t i = 0; i < d->n; i++) {
        double hdd = m->has_heating ? series_day_degree_days(d, i, m->heat_balance_c, 1) : 0;
        double cdd = m->has_cooling ? series_day_degree_days(d, i, m->cool_balance_c, 0) : 0;
        out[i] = baseline_predict_row(m, d->weekday[i], 0, m->has_production ? d->production[i] : 0,
                                      hdd, cdd);
    }
    return 0;
}

int baseline_predict_hours(const struct baseline_model *m, const struct series *s, double *out,
                           char *err, size_t errlen)
{
    if (m->granularity != BASELINE_HOURLY)
        return enms_fail(err, errlen, ENMS_EINVAL, "not an hourly baseline");
    if (m->has_production && !s->production)
        return enms_fail(err, errlen, ENMS_EINVAL, "the baseline needs production");
    if ((m->has_heating || m->has_cooling) && !s->temp_c)
        return enms_fail(err, errlen, ENMS_EINVAL, "the baseline needs temperature");
    for (size_t i = 0; i < s->n; i++) {
        double t = s->temp_c ? s->temp_c[i] : NAN;
        if (isnan(t) && (m->has_heating || m->has_cooling)) {
            out[i] = NAN;
            continue;
        }
        double hdd = m->has_heating ? series_heating_dh(t, m->heat_balance_c) : 0;
        double cdd = m->has_cooling ? series_cooling_dh(t, m->cool_balance_c) : 0;
        out[i] = baseline_predict_row(m, series_local_weekday(s->ts[i], m->utc_offset_s),
                                      series_local_hour(s->ts[i], m->utc_offset_s),
                                      m->has_production ? s->production[i] : 0, hdd, cdd);
    }
    return 0;
}

void baseline_model_name(const struct baseline_model *m, char *buf, size_t buflen)
{
    const char *terms = m->has_heating && m->has_cooling ? "HDD+CDD"
                        : m->has_heating                 ? "HDD"
                        : m->has_cooling                 ? "CDD"
                                                         : "intercept";
    snprintf(buf, buflen, "%s%s%s%s", terms, m->has_production ? "+production" : "",
             m->has_weekday ? "+weekday" : "", m->granularity == BASELINE_HOURLY ? "+hour" : "");
}
