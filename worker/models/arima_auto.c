/* arima_auto.c - automatic order selection for ARIMA: the unit-root
 * decisions (KPSS for d, STL seasonal strength for D), the stepwise search
 * of Hyndman & Khandakar (2008, sec. 3.2) by AICc with forecast::auto.arima's
 * defaults, and Fourier regressors with ARIMA errors for long periods. Fits
 * of single models are arima.c's. */
#include "arima_auto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/error.h"

/* forecast::auto.arima tries at most this many models in a stepwise search. */
#define MAX_MODELS 94
/* KPSS critical values for the level case (Kwiatkowski et al. 1992, table
 * 1) at 10%, 5%, 2.5% and 1%; p-values in between are interpolated as R's
 * forecast package does. */
static const double kpss_cval[4] = {0.347, 0.463, 0.574, 0.739};
static const double kpss_level[4] = {0.10, 0.05, 0.025, 0.01};

void arima_auto_defaults(struct arima_auto_opts *o, int m)
{
    memset(o, 0, sizeof *o);
    o->m = m > 1 ? m : 1;
    o->max_p = o->max_q = 5;
    o->max_P = o->max_Q = 2;
    o->max_d = 2;
    o->max_D = 1;
    o->start_p = o->start_q = 2;
    o->start_P = o->start_Q = 1;
    o->allow_drift = o->allow_mean = 1;
    o->approximation = -1;
    o->fourier_above = 24;
    o->max_fourier_k = 14;
    o->alpha = 0.05;
}

/* ---- unit-root tests ---------------------------------------------------- */

static int is_constant(const double *x, size_t n)
{
    double first = NAN;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]))
            continue;
        if (isnan(first))
            first = x[i];
        else if (x[i] != first)
            return 0;
    }
    return 1;
}

/* Copies the non-missing values of x into out; returns how many. */
static size_t drop_missing(const double *x, size_t n, double *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]))
            out[k++] = x[i];
    return k;
}

double arima_kpss_stat(const double *y, size_t n, int lags)
{
    double *e = malloc((n + 1) * sizeof *e);
    double stat = NAN;
    if (!e)
        return NAN;
    size_t k = drop_missing(y, n, e);
    if (k < 2 || lags < 0)
        goto done;
    double mean = 0.0;
    for (size_t t = 0; t < k; t++)
        mean += e[t];
    mean /= (double)k;
    double s = 0.0, eta = 0.0, s0 = 0.0;
    for (size_t t = 0; t < k; t++) {
        e[t] -= mean;
        s += e[t];
        eta += s * s;
        s0 += e[t] * e[t];
    }
    /* Long-run variance with Bartlett weights 1 - i / (l + 1) (Newey-West). */
    double lrv = s0 / (double)k;
    for (int i = 1; i <= lags && (size_t)i < k; i++) {
        double acc = 0.0;
        for (size_t t = (size_t)i; t < k; t++)
            acc += e[t] * e[t - (size_t)i];
        lrv += 2.0 * (1.0 - (double)i / (lags + 1.0)) * acc / (double)k;
    }
    if (lrv > 0.0)
        stat = eta / ((double)k * (double)k) / lrv;
done:
    free(e);
    return stat;
}

/* p-value of a KPSS statistic by linear interpolation in the table,
 * clamped at its ends (R's approx(rule = 2)). */
static double kpss_pvalue(double stat)
{
    if (stat <= kpss_cval[0])
        return kpss_level[0];
    for (int i = 1; i < 4; i++)
        if (stat <= kpss_cval[i])
            return kpss_level[i - 1] + (stat - kpss_cval[i - 1]) *
                                           (kpss_level[i] - kpss_level[i - 1]) /
                                           (kpss_cval[i] - kpss_cval[i - 1]);
    return kpss_level[3];
}

int arima_ndiffs(const double *y, size_t n, double alpha, int max_d)
{
    double *x = malloc((n + 1) * sizeof *x);
    int d = 0;
    if (!x)
        return 0;
    size_t k = drop_missing(y, n, x);
    while (d < max_d && k > 2 && !is_constant(x, k)) {
        int lags = (int)trunc(3.0 * sqrt((double)k) / 13.0);
        double st = arima_kpss_stat(x, k, lags);
        if (isnan(st) || !(kpss_pvalue(st) < alpha))
            break;
        d++;
        for (size_t t = 0; t + 1 < k; t++)
            x[t] = x[t + 1] - x[t];
        k--;
    }
    free(x);
    return d;
}

/* ---- STL (Cleveland, Cleveland, McRae & Terpenning 1990) ---------------- */

/* Local regression of degree 0 or 1 with tricube weights over the q nearest
 * of the points (1..len, y), evaluated at position x0 (which may lie one
 * step outside). Returns NAN when no point has weight. */
static double loess_at(const double *y, size_t len, long x0, size_t q, int degree)
{
    long nleft, nright;
    if (q >= len) {
        nleft = 1;
        nright = (long)len;
    } else {
        nleft = x0 - (long)(q - 1) / 2;
        if (nleft < 1)
            nleft = 1;
        if (nleft + (long)q - 1 > (long)len)
            nleft = (long)len - (long)q + 1;
        nright = nleft + (long)q - 1;
    }
    double h = (double)(x0 - nleft > nright - x0 ? x0 - nleft : nright - x0);
    if (q > len)
        h += (double)((q - len) / 2);
    double w[nright - nleft + 1];
    double sw = 0.0;
    for (long j = nleft; j <= nright; j++) {
        double r = fabs((double)(j - x0)), wj = 0.0;
        if (r <= 0.999 * h) {
            if (r <= 0.001 * h)
                wj = 1.0;
            else {
                double u = r / h;
                u = 1.0 - u * u * u;
                wj = u * u * u;
            }
        }
        w[j - nleft] = wj;
        sw += wj;
    }
    if (!(sw > 0.0))
        return NAN;
    for (long j = nleft; j <= nright; j++)
        w[j - nleft] /= sw;
    if (degree > 0 && h > 0.0) {
        /* Weighted linear fit evaluated at x0, written as modified weights. */
        double a = 0.0, b = 0.0;
        for (long j = nleft; j <= nright; j++)
            a += w[j - nleft] * (double)j;
        for (long j = nleft; j <= nright; j++)
            b += w[j - nleft] * ((double)j - a) * ((double)j - a);
        if (sqrt(b) > 0.001 * ((double)len - 1.0))
            for (long j = nleft; j <= nright; j++)
                w[j - nleft] *= 1.0 + ((double)x0 - a) * ((double)j - a) / b;
    }
    double v = 0.0;
    for (long j = nleft; j <= nright; j++)
        v += w[j - nleft] * y[j - 1];
    return v;
}

static size_t next_odd(double x)
{
    size_t k = (size_t)ceil(x);
    return k % 2 ? k : k + 1;
}

/* Moving average of length k: out has len - k + 1 values. */
static void moving_avg(const double *x, size_t len, size_t k, double *out)
{
    double s = 0.0;
    for (size_t i = 0; i < k; i++)
        s += x[i];
    out[0] = s / (double)k;
    for (size_t i = k; i < len; i++) {
        s += x[i] - x[i - k];
        out[i - k + 1] = s / (double)k;
    }
}

/* Non-robust STL with the parameters R's mstl uses for one period
 * (s.window 11, degree 0; trend and low-pass windows R's defaults; two
 * inner passes), evaluating every point (no loess jumps). Writes the
 * seasonal and remainder components. Returns 0 or -1. */
static int stl_decompose(const double *y, size_t n, size_t np, double *seas, double *rem)
{
    size_t ns = 11, nl = next_odd((double)np);
    size_t nt = next_odd(1.5 * (double)np / (1.0 - 1.5 / (double)ns));
    size_t nc = n + 2 * np;
    double *trend = calloc(n, sizeof *trend), *w = malloc(n * sizeof *w);
    double *C = malloc(nc * sizeof *C), *m1 = malloc(nc * sizeof *m1);
    double *m2 = malloc(nc * sizeof *m2), *sub = malloc((n / np + 2) * sizeof *sub);
    int rc = -1;
    if (!trend || !w || !C || !m1 || !m2 || !sub)
        goto done;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++)
            w[i] = y[i] - trend[i];
        /* Cycle-subseries smoothing, extended one period at each end. */
        for (size_t k = 0; k < np; k++) {
            size_t len = 0;
            for (size_t i = k; i < n; i += np)
                sub[len++] = w[i];
            for (size_t j = 0; j <= len + 1; j++) {
                double v = loess_at(sub, len, (long)j, ns, 0);
                if (isnan(v))
                    goto done;
                C[k + j * np] = v;
            }
        }
        /* Low-pass filter of the cycle-subseries: MA(np), MA(np), MA(3),
         * then loess of degree 1 over nl points. */
        moving_avg(C, nc, np, m1);
        moving_avg(m1, nc - np + 1, np, m2);
        moving_avg(m2, nc - 2 * np + 2, 3, m1);
        for (size_t i = 0; i < n; i++) {
            double l = loess_at(m1, n, (long)i + 1, nl, 1);
            if (isnan(l))
                goto done;
            seas[i] = C[np + i] - l;
        }
        for (size_t i = 0; i < n; i++)
            w[i] = y[i] - seas[i];
        for (size_t i = 0; i < n; i++) {
            double t = loess_at(w, n, (long)i + 1, nt, 1);
            if (isnan(t))
                goto done;
            trend[i] = t;
        }
    }
    for (size_t i = 0; i < n; i++)
        rem[i] = y[i] - seas[i] - trend[i];
    rc = 0;
done:
    free(trend);
    free(w);
    free(C);
    free(m1);
    free(m2);
    free(sub);
    return rc;
}

static double variance(const double *x, size_t n)
{
    double m = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++)
        m += x[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++)
        s += (x[i] - m) * (x[i] - m);
    return s / ((double)n - 1.0);
}

double arima_seasonal_strength(const double *y, size_t n, int m)
{
    if (m < 2)
        return NAN;
    /* Trim missing ends, interpolate inner gaps linearly (mstl does the
     * same with na.interp for non-seasonal gaps). */
    size_t lo = 0, hi = n;
    while (lo < n && isnan(y[lo]))
        lo++;
    while (hi > lo && isnan(y[hi - 1]))
        hi--;
    size_t len = hi - lo;
    if (len <= 2 * (size_t)m)
        return NAN;
    double *x = malloc(len * sizeof *x), *s = malloc(len * sizeof *s);
    double *r = malloc(len * sizeof *r), *sr = malloc(len * sizeof *sr);
    double res = NAN;
    if (!x || !s || !r || !sr)
        goto done;
    for (size_t i = 0; i < len; i++) {
        x[i] = y[lo + i];
        if (isnan(x[i])) {
            size_t j = i;
            while (isnan(y[lo + j]))
                j++;
            double a = x[i - 1], b = y[lo + j];
            for (size_t k = i; k < j; k++)
                x[k] = a + (b - a) * (double)(k - i + 1) / (double)(j - i + 1);
            i = j - 1;
        }
    }
    if (stl_decompose(x, len, (size_t)m, s, r) != 0)
        goto done;
    for (size_t i = 0; i < len; i++)
        sr[i] = s[i] + r[i];
    double vsr = variance(sr, len);
    res = vsr > 0.0 ? 1.0 - variance(r, len) / vsr : 0.0;
    res = res < 0.0 ? 0.0 : (res > 1.0 ? 1.0 : res);
done:
    free(x);
    free(s);
    free(r);
    free(sr);
    return res;
}

int arima_nsdiffs(const double *y, size_t n, int m, int max_D)
{
    int D = 0;
    if (m < 2 || max_D < 1 || is_constant(y, n))
        return 0;
    double *x = malloc(n * sizeof *x);
    if (!x)
        return 0;
    memcpy(x, y, n * sizeof *x);
    size_t len = n;
    while (D < max_D) {
        double st = arima_seasonal_strength(x, len, m);
        if (isnan(st) || !(st > 0.64))
            break;
        D++;
        for (size_t t = 0; t + (size_t)m < len; t++)
            x[t] = x[t + (size_t)m] - x[t];
        len -= (size_t)m;
        if (is_constant(x, len))
            break;
    }
    free(x);
    return D;
}

/* ---- stepwise search -------------------------------------------------- */

struct cand {
    int p, q, P, Q, constant;
    double ic;
};

struct search {
    const double *y;
    size_t n;
    int d, D, m; /* m = 1 when the seasonal part is off */
    int fourier_k, fourier_period;
    int approx;
    double offset; /* AIC offset of CSS fits (auto.arima's approximation) */
    size_t nstar;  /* observations after differencing */
    const struct arima_auto_opts *o;
    const struct model_hooks *hooks;
    struct model_hooks quiet; /* should_stop only: per-fit progress is ours */
    struct cand results[MAX_MODELS + 8];
    int k;
    struct arima_model *best;
    double best_ic;
    double frac_lo, frac_hi;
    int *fitted_count;
};

static void search_spec(const struct search *s, const struct cand *c, int approx,
                        struct arima_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->order.p = c->p;
    spec->order.d = s->d;
    spec->order.q = c->q;
    spec->order.P = c->P;
    spec->order.D = s->D;
    spec->order.Q = c->Q;
    spec->order.m = s->m;
    /* A constant is a mean without differencing and a drift with one. */
    spec->include_mean = c->constant && s->d + s->D == 0;
    spec->include_drift = c->constant && s->d + s->D == 1;
    spec->fourier_k = s->fourier_k;
    spec->fourier_period = s->fourier_period;
    spec->method = approx ? ARIMA_CSS : ARIMA_CSS_ML;
}

/* forecast's myarima: fits one candidate and scores it by AICc, Inf when the
 * fit fails or a root is within 1.01 of the unit circle. The model is kept
 * if it is the best so far (*better set). Returns 0 or ENMS_ESTOPPED /
 * ENMS_ENOMEM (which end the search). */
static int try_fit(struct search *s, const struct cand *c, int approx, double *ic_out,
                   struct arima_model **model_out)
{
    struct arima_spec spec;
    struct arima_model *mdl = NULL;
    char err[256], stage[160], lab[128];
    search_spec(s, c, approx, &spec);
    arima_label(&spec, lab, sizeof lab);
    snprintf(stage, sizeof stage, "fitting %s", lab);
    double frac = s->frac_lo + (s->frac_hi - s->frac_lo) * (double)s->k / (double)(s->k + 12);
    model_report(s->hooks, frac, stage);
    (*s->fitted_count)++;
    *ic_out = INFINITY;
    *model_out = NULL;
    /* An approximate (CSS) candidate is only scored; the model kept in the
     * end is always re-fitted by CSS-ML, which has the state. */
    int rc = arima_fit_score(s->y, s->n, &spec, &s->quiet, &mdl, err, sizeof err);
    if (rc == ENMS_ESTOPPED || rc == ENMS_ENOMEM)
        return rc;
    if (rc != 0)
        return 0;
    double npar = (double)arima_ncoef(&spec) + 1.0, nstar = (double)s->nstar;
    double aic = mdl->aic;
    if (approx)
        aic = s->offset + nstar * log(mdl->sigma2) + 2.0 * npar;
    double ic = nstar - npar - 1.0 > 0.0 ? aic + 2.0 * npar * (npar + 1.0) / (nstar - npar - 1.0)
                                         : INFINITY;
    if (!isfinite(ic) || arima_min_root(mdl) < 1.01)
        ic = INFINITY;
    *ic_out = ic;
    *model_out = mdl;
    return 0;
}

static int is_new(const struct search *s, int p, int q, int P, int Q, int constant)
{
    for (int i = 0; i < s->k; i++) {
        const struct cand *c = &s->results[i];
        if (c->p == p && c->q == q && c->P == P && c->Q == Q && c->constant == constant)
            return 0;
    }
    return 1;
}

/* Fits (p,q,P,Q,constant) if it is new; *better is set when it beats the
 * best so far (which it then replaces). */
static int step(struct search *s, int p, int q, int P, int Q, int constant, int *better)
{
    *better = 0;
    if (!is_new(s, p, q, P, Q, constant) || s->k >= MAX_MODELS)
        return 0;
    struct cand c = {p, q, P, Q, constant, INFINITY};
    struct arima_model *mdl = NULL;
    int rc = try_fit(s, &c, s->approx, &c.ic, &mdl);
    if (rc != 0)
        return rc;
    s->results[s->k++] = c;
    /* The first model is the incumbent whatever its score (as R). */
    *better = c.ic < s->best_ic;
    if (*better || !s->best) {
        arima_free(s->best);
        s->best = mdl;
        s->best_ic = c.ic;
        mdl = NULL;
    }
    arima_free(mdl);
    return 0;
}

static int cmp_cand(const void *a, const void *b)
{
    double x = ((const struct cand *)a)->ic, y = ((const struct cand *)b)->ic;
    return (x > y) - (x < y);
}

/* Hyndman & Khandakar's stepwise algorithm as forecast::auto.arima runs it:
 * four starting models, then moves of one in p, q, P, Q (and both at once),
 * and toggling the constant, restarting from each improvement. */
static int stepwise(struct search *s)
{
    const struct arima_auto_opts *o = s->o;
    int seasonal = s->m > 1;
    int max_p = o->max_p, max_q = o->max_q;
    int max_P = seasonal ? o->max_P : 0, max_Q = seasonal ? o->max_Q : 0;
    size_t len = s->nstar + (size_t)s->d + (size_t)s->D * (size_t)s->m;
    /* R: orders limited to a third of the series (of the seasons). */
    if ((size_t)max_p > len / 3)
        max_p = (int)(len / 3);
    if ((size_t)max_q > len / 3)
        max_q = (int)(len / 3);
    if ((size_t)max_P > len / 3 / (size_t)s->m)
        max_P = (int)(len / 3 / (size_t)s->m);
    if ((size_t)max_Q > len / 3 / (size_t)s->m)
        max_Q = (int)(len / 3 / (size_t)s->m);
    int allow_drift = o->allow_drift && s->d + s->D == 1;
    int allow_mean = o->allow_mean && s->d + s->D == 0;
    int constant = allow_drift || allow_mean;
    int p = o->start_p < max_p ? o->start_p : max_p;
    int q = o->start_q < max_q ? o->start_q : max_q;
    int P = o->start_P < max_P ? o->start_P : max_P;
    int Q = o->start_Q < max_Q ? o->start_Q : max_Q;
    int b, rc;

    s->best = NULL;
    s->best_ic = INFINITY;
    s->k = 0;
    if ((rc = step(s, p, q, P, Q, constant, &b)) != 0)
        return rc;
    if ((rc = step(s, 0, 0, 0, 0, constant, &b)) != 0)
        return rc;
    if (b)
        p = q = P = Q = 0;
    if (max_p > 0 || max_P > 0) {
        int p1 = max_p > 0, P1 = seasonal && max_P > 0;
        if ((rc = step(s, p1, 0, P1, 0, constant, &b)) != 0)
            return rc;
        if (b) {
            p = p1;
            P = P1;
            q = Q = 0;
        }
    }
    if (max_q > 0 || max_Q > 0) {
        int q1 = max_q > 0, Q1 = seasonal && max_Q > 0;
        if ((rc = step(s, 0, q1, 0, Q1, constant, &b)) != 0)
            return rc;
        if (b) {
            p = P = 0;
            q = q1;
            Q = Q1;
        }
    }
    if (constant) {
        if ((rc = step(s, 0, 0, 0, 0, 0, &b)) != 0)
            return rc;
        if (b) {
            p = q = P = Q = 0;
            constant = 0;
        }
    }
    int startk = 0;
    while (startk < s->k && s->k < MAX_MODELS) {
        startk = s->k;
        /* Each move: (dp, dq, dP, dQ) applied when inside the bounds. */
        static const int moves[16][4] = {
            {0, 0, -1, 0},  {0, 0, 0, -1}, {0, 0, 1, 0},  {0, 0, 0, 1},
            {0, 0, -1, -1}, {0, 0, -1, 1}, {0, 0, 1, -1}, {0, 0, 1, 1},
            {-1, 0, 0, 0},  {0, -1, 0, 0}, {1, 0, 0, 0},  {0, 1, 0, 0},
            {-1, -1, 0, 0}, {-1, 1, 0, 0}, {1, -1, 0, 0}, {1, 1, 0, 0},
        };
        int moved = 0;
        for (int i = 0; i < 16 && !moved; i++) {
            int np = p + moves[i][0], nq = q + moves[i][1];
            int nP = P + moves[i][2], nQ = Q + moves[i][3];
            if (np < 0 || nq < 0 || nP < 0 || nQ < 0 || np > max_p || nq > max_q || nP > max_P ||
                nQ > max_Q)
                continue;
            if ((rc = step(s, np, nq, nP, nQ, constant, &b)) != 0)
                return rc;
            if (b) {
                p = np;
                q = nq;
                P = nP;
                Q = nQ;
                moved = 1;
            }
        }
        if (!moved && (allow_drift || allow_mean)) {
            if ((rc = step(s, p, q, P, Q, !constant, &b)) != 0)
                return rc;
            if (b)
                constant = !constant;
        }
    }

    if (s->approx && s->k > 0) {
        /* Re-fit the best candidates without the approximation until one
         * is acceptable (R does the same). */
        struct cand order[MAX_MODELS + 8];
        memcpy(order, s->results, (size_t)s->k * sizeof *order);
        qsort(order, (size_t)s->k, sizeof *order, cmp_cand);
        s->frac_lo = s->frac_hi;
        for (int i = 0; i < s->k && isfinite(order[i].ic); i++) {
            double ic;
            struct arima_model *mdl = NULL;
            if ((rc = try_fit(s, &order[i], 0, &ic, &mdl)) != 0)
                return rc;
            if (isfinite(ic)) {
                arima_free(s->best);
                s->best = mdl;
                s->best_ic = ic;
                return 0;
            }
            arima_free(mdl);
        }
        arima_free(s->best);
        s->best = NULL;
        s->best_ic = INFINITY;
    }
    return 0;
}

/* The AIC offset of the approximation: -2 loglik - n log(sigma2) of an
 * ARIMA(1,d,0)(0,D,0) fitted by CSS-ML, as auto.arima computes it. */
static int approx_offset(struct search *s, size_t serieslength)
{
    struct arima_spec spec;
    struct cand c = {1, 0, 0, 0, 1, 0.0};
    struct arima_model *mdl = NULL;
    char err[256];
    search_spec(s, &c, 0, &spec);
    spec.include_drift = 0;
    s->offset = 0.0;
    int rc = arima_fit(s->y, s->n, &spec, &s->quiet, &mdl, err, sizeof err);
    if (rc == ENMS_ESTOPPED || rc == ENMS_ENOMEM)
        return rc;
    if (rc == 0)
        s->offset = -2.0 * mdl->loglik - (double)serieslength * log(mdl->sigma2);
    arima_free(mdl);
    return 0;
}

/* Residuals of y on an intercept and K harmonics of period m (OLS, by
 * normal equations on the few columns), for the unit-root test of a
 * regression with ARIMA errors (R tests residuals(lm(x ~ xreg))). */
static int fourier_residuals(const double *y, size_t n, int K, int m, double *res)
{
    struct arima_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.include_mean = 1;
    spec.fourier_k = K;
    spec.fourier_period = m;
    spec.order.m = 1;
    size_t k = arima_nreg(&spec);
    double *x = malloc(k * n * sizeof *x), *S = calloc(k * (k + 1), sizeof *S);
    double *b = calloc(k, sizeof *b);
    int rc = -1;
    if (!x || !S || !b)
        goto done;
    arima_regressors(&spec, k, 0, n, x);
    for (size_t t = 0; t < n; t++) {
        if (isnan(y[t]))
            continue;
        for (size_t i = 0; i < k; i++) {
            S[i * (k + 1) + k] += x[i * n + t] * y[t];
            for (size_t j = 0; j <= i; j++)
                S[i * (k + 1) + j] += x[i * n + t] * x[j * n + t];
        }
    }
    for (size_t j = 0; j < k; j++) { /* Cholesky, lower triangle */
        double s = S[j * (k + 1) + j];
        for (size_t l = 0; l < j; l++)
            s -= S[j * (k + 1) + l] * S[j * (k + 1) + l];
        if (!(s > 0.0))
            goto done;
        S[j * (k + 1) + j] = sqrt(s);
        for (size_t i = j + 1; i < k; i++) {
            double v = S[i * (k + 1) + j];
            for (size_t l = 0; l < j; l++)
                v -= S[i * (k + 1) + l] * S[j * (k + 1) + l];
            S[i * (k + 1) + j] = v / S[j * (k + 1) + j];
        }
    }
    for (size_t i = 0; i < k; i++) {
        double v = S[i * (k + 1) + k];
        for (size_t l = 0; l < i; l++)
            v -= S[i * (k + 1) + l] * b[l];
        b[i] = v / S[i * (k + 1) + i];
    }
    for (size_t i = k; i-- > 0;) {
        double v = b[i];
        for (size_t l = i + 1; l < k; l++)
            v -= S[l * (k + 1) + i] * b[l];
        b[i] = v / S[i * (k + 1) + i];
    }
    for (size_t t = 0; t < n; t++) {
        double v = y[t];
        for (size_t i = 0; i < k; i++)
            v -= b[i] * x[i * n + t];
        res[t] = v;
    }
    rc = 0;
done:
    free(x);
    free(S);
    free(b);
    return rc;
}

/* One stepwise search with d, D and the regressors fixed. */
static int run_search(struct search *s, size_t serieslength)
{
    s->nstar = serieslength - (size_t)s->d - (size_t)s->D * (size_t)s->m;
    if (s->approx) {
        int rc = approx_offset(s, serieslength);
        if (rc != 0)
            return rc;
    }
    return stepwise(s);
}

int arima_auto(const double *y, size_t n, const struct arima_auto_opts *opts,
               const struct model_hooks *hooks, struct arima_model **out,
               struct arima_auto_report *rep, char *err, size_t errlen)
{
    struct arima_auto_opts o;
    struct search s;
    double *dx = NULL;
    int rc = 0, fitted = 0;
    *out = NULL;
    if (opts)
        o = *opts;
    else
        arima_auto_defaults(&o, 1);
    if (!y || n == 0 || n > ARIMA_MAX_N)
        return enms_fail(err, errlen, ENMS_EINVAL, "auto.arima: series length out of range");
    if (o.m < 1 || o.m > 100000 || o.max_p < 0 || o.max_q < 0 || o.max_P < 0 || o.max_Q < 0 ||
        o.max_d < 0 || o.max_D < 0 || o.max_p > ARIMA_MAX_P || o.max_q > ARIMA_MAX_P ||
        o.max_P > ARIMA_MAX_SP || o.max_Q > ARIMA_MAX_SP || o.max_d > ARIMA_MAX_D || o.max_D > 1 ||
        !(o.alpha > 0.0 && o.alpha < 1.0))
        return enms_fail(err, errlen, ENMS_EINVAL, "auto.arima: options out of range");
    /* The series between its first and last observations. */
    size_t lo = 0, hi = n;
    while (lo < n && isnan(y[lo]))
        lo++;
    while (hi > lo && isnan(y[hi - 1]))
        hi--;
    size_t serieslength = 0;
    for (size_t t = lo; t < hi; t++)
        serieslength += !isnan(y[t]);
    if (serieslength < 4)
        return enms_fail(err, errlen, ENMS_EINVAL, "auto.arima: %zu observations, need at least 4",
                         serieslength);
    if (is_constant(y, n))
        return enms_fail(err, errlen, ENMS_EINVAL, "auto.arima: the series is constant");
    for (size_t t = 0; t < n; t++)
        if (isinf(y[t]))
            return enms_fail(err, errlen, ENMS_EINVAL, "auto.arima: value %zu is infinite", t);

    memset(&s, 0, sizeof s);
    s.y = y;
    s.n = n;
    s.o = &o;
    s.hooks = hooks;
    s.quiet.should_stop = hooks ? hooks->should_stop : NULL;
    s.quiet.opaque = hooks ? hooks->opaque : NULL;
    s.fitted_count = &fitted;
    s.approx = o.approximation < 0 ? (serieslength > 150 || o.m > 12) : o.approximation;
    dx = malloc(n * sizeof *dx);
    if (!dx)
        return enms_fail(err, errlen, ENMS_ENOMEM, "auto.arima: out of memory");
    model_report(hooks, 0.0, "unit-root tests");

    if (o.m > o.fourier_above) {
        /* Long period: seasonal ARMA would need a state of dimension ~m;
         * Fourier terms with non-seasonal ARIMA errors instead (Hyndman &
         * Athanasopoulos, "dynamic harmonic regression"). d is chosen once,
         * on the residuals from the largest set of harmonics, so that the
         * AICc of different K are comparable (same differencing). */
        int kmax = o.max_fourier_k;
        if (kmax > (o.m - 1) / 2)
            kmax = (o.m - 1) / 2;
        if (kmax > ARIMA_MAX_FOURIER)
            kmax = ARIMA_MAX_FOURIER;
        if (kmax < 1 || fourier_residuals(y, n, kmax, o.m, dx) != 0) {
            rc = enms_fail(err, errlen, ENMS_EINVAL,
                           "auto.arima: cannot fit Fourier terms of period %d", o.m);
            goto done;
        }
        s.d = arima_ndiffs(dx, n, o.alpha, o.max_d);
        s.D = 0;
        s.m = 1;
        s.fourier_period = o.m;
        /* A full stepwise search per K costs too much, so: search the
         * error order once with the most harmonics, choose K for that order
         * by AICc (the same CSS approximation the search uses, with one
         * offset, so the scores are comparable), and search the order again
         * if K changed. */
        s.fourier_k = kmax;
        s.frac_lo = 0.05;
        s.frac_hi = 0.45;
        rc = run_search(&s, serieslength);
        if (rc == 0 && s.best) {
            struct cand c = {s.best->spec.order.p,
                             s.best->spec.order.q,
                             0,
                             0,
                             s.best->spec.include_mean || s.best->spec.include_drift,
                             0.0};
            double best_ic = INFINITY;
            int best_k = kmax;
            s.frac_lo = s.frac_hi = 0.6;
            for (int K = 1; K <= kmax && rc == 0; K++) {
                struct arima_model *mdl = NULL;
                double ic;
                s.fourier_k = K;
                s.k = K;
                rc = try_fit(&s, &c, s.approx, &ic, &mdl);
                arima_free(mdl);
                if (rc == 0 && ic < best_ic) {
                    best_ic = ic;
                    best_k = K;
                }
            }
            if (rc == 0 && best_k != kmax) {
                arima_free(s.best);
                s.best = NULL;
                s.fourier_k = best_k;
                s.frac_lo = 0.65;
                s.frac_hi = 0.95;
                rc = run_search(&s, serieslength);
            }
            s.fourier_k = best_k;
        }
        if (rc != 0) {
            arima_free(s.best);
            s.best = NULL;
            rc = enms_fail(err, errlen, rc, "auto.arima: %s",
                           rc == ENMS_ESTOPPED ? "stopped on request" : "out of memory");
            goto done;
        }
    } else {
        s.m = o.m;
        s.D = 0;
        if (o.m > 1 && o.max_D > 0)
            s.D = arima_nsdiffs(y, n, o.m, o.max_D);
        memcpy(dx, y, n * sizeof *dx);
        size_t len = n;
        for (int i = 0; i < s.D; i++) {
            for (size_t t = 0; t + (size_t)o.m < len; t++)
                dx[t] = dx[t + (size_t)o.m] - dx[t];
            len -= (size_t)o.m;
        }
        s.d = arima_ndiffs(dx, len, o.alpha, o.max_d);
        if (serieslength <= (size_t)(s.d + s.D * s.m) + 2) {
            rc = enms_fail(err, errlen, ENMS_EINVAL,
                           "auto.arima: too few observations after differencing");
            goto done;
        }
        s.frac_lo = 0.05;
        s.frac_hi = 0.95;
        rc = run_search(&s, serieslength);
        if (rc != 0) {
            arima_free(s.best);
            s.best = NULL;
            rc = enms_fail(err, errlen, rc, "auto.arima: %s",
                           rc == ENMS_ESTOPPED ? "stopped on request" : "out of memory");
            goto done;
        }
    }
    if (!s.best || !isfinite(s.best_ic)) {
        arima_free(s.best);
        rc = enms_fail(err, errlen, ENMS_EINVAL, "auto.arima: no suitable ARIMA model found");
        goto done;
    }
    if (rep) {
        rep->d = s.d;
        rep->D = s.D;
        rep->models_fitted = fitted;
        rep->fourier_k = s.fourier_k;
        rep->aicc = s.best->aicc;
    }
    model_report(hooks, 1.0, "done");
    *out = s.best;
done:
    free(dx);
    return rc;
}
