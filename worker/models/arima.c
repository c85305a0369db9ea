/* arima.c - fitting and forecasting one seasonal ARIMA model with optional
 * regressors (mean, drift, Fourier terms): the state-space form, the Kalman
 * filter likelihood, conditional sum of squares, the optimiser loop and the
 * forecasts. Order selection is in arima_auto.c, the artifact in
 * arima_json.c.
 *
 * The likelihood follows Gardner, Harvey & Phillips (1980) and Harvey
 * (1989, sec. 3.3): the ARMA part is in Harvey's state-space form and the
 * differencing polynomial is carried in the state with a diffuse prior
 * (variance kappa = 1e6), as R's stats::arima does, so missing values simply
 * skip the update step and the likelihood is that of the differenced series.
 * The regression coefficients are concentrated out of the likelihood by
 * generalised least squares on the filtered innovations (the filter is
 * linear in the data, so the innovations of y - X b are those of y minus
 * those of X times b): the optimiser only sees the ARMA coefficients, and
 * the optimum is the joint maximum R finds. */
#include "arima.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_poly.h>

#include "../../common/error.h"

/* Prior variance of the differencing states (R's kappa). */
#define KAPPA 1e6
/* Innovations whose variance is at least this are still dominated by the
 * diffuse prior and are left out of the likelihood, as R does. */
#define DIFFUSE_GAIN 1e4
/* What the objective returns for parameters it cannot evaluate. */
#define BAD_VALUE 1e10
/* How often (ms) to ask should_stop during a fit. */
#define STOP_CHECK_MS 20.0

size_t arima_nreg(const struct arima_spec *spec)
{
    int dd = spec->order.d + spec->order.D;
    size_t k = 0;
    if (spec->include_mean && dd == 0)
        k++;
    if (spec->include_drift && dd <= 1)
        k++;
    if (spec->fourier_k > 0)
        k += 2 * (size_t)spec->fourier_k;
    return k;
}

size_t arima_ncoef(const struct arima_spec *spec)
{
    const struct arima_order *o = &spec->order;
    return (size_t)(o->p + o->q + o->P + o->Q) + arima_nreg(spec);
}

void arima_label(const struct arima_spec *spec, char *buf, size_t len)
{
    const struct arima_order *o = &spec->order;
    int dd = o->d + o->D;
    int off;
    if (len == 0)
        return;
    if (o->P + o->D + o->Q > 0)
        off = snprintf(buf, len, "ARIMA(%d,%d,%d)(%d,%d,%d)[%d]", o->p, o->d, o->q, o->P, o->D,
                       o->Q, o->m);
    else
        off = snprintf(buf, len, "ARIMA(%d,%d,%d)", o->p, o->d, o->q);
    if (off < 0 || (size_t)off >= len)
        return;
    if (spec->include_drift && dd <= 1)
        off += snprintf(buf + off, len - (size_t)off, " with drift");
    else if (spec->include_mean && dd == 0)
        off += snprintf(buf + off, len - (size_t)off, " with non-zero mean");
    if (off < 0 || (size_t)off >= len)
        return;
    if (spec->fourier_k > 0)
        snprintf(buf + off, len - (size_t)off, " + Fourier(%d, K=%d)", spec->fourier_period,
                 spec->fourier_k);
}

int arima_spec_check(const struct arima_spec *spec, char *err, size_t errlen)
{
    const struct arima_order *o = &spec->order;
    if (o->p < 0 || o->q < 0 || o->p > ARIMA_MAX_P || o->q > ARIMA_MAX_P)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: p and q must be in 0..%d", ARIMA_MAX_P);
    if (o->d < 0 || o->d > ARIMA_MAX_D)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: d must be in 0..%d", ARIMA_MAX_D);
    if (o->P < 0 || o->Q < 0 || o->P > ARIMA_MAX_SP || o->Q > ARIMA_MAX_SP || o->D < 0 || o->D > 2)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: P and Q must be in 0..%d and D in 0..2",
                         ARIMA_MAX_SP);
    if (o->m < 1 || o->m > ARIMA_MAX_PERIOD)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: period must be in 1..%d",
                         ARIMA_MAX_PERIOD);
    if (o->m == 1 && (o->P || o->D || o->Q))
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: seasonal orders need a period > 1");
    size_t pf = (size_t)o->p + (size_t)o->m * (size_t)o->P;
    size_t qf = (size_t)o->q + (size_t)o->m * (size_t)o->Q;
    size_t r = pf > qf + 1 ? pf : qf + 1;
    size_t rd = r + (size_t)o->d + (size_t)o->m * (size_t)o->D;
    if (rd > ARIMA_MAX_STATE)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "arima: state dimension %zu exceeds %d (use Fourier terms for long "
                         "periods)",
                         rd, ARIMA_MAX_STATE);
    if (spec->fourier_k < 0 || spec->fourier_k > ARIMA_MAX_FOURIER)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: Fourier K must be in 0..%d",
                         ARIMA_MAX_FOURIER);
    if (spec->fourier_k > 0 &&
        (spec->fourier_period < 2 || 2 * spec->fourier_k >= spec->fourier_period))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "arima: Fourier K=%d needs a period above 2K (period %d)", spec->fourier_k,
                         spec->fourier_period);
    if (spec->method != ARIMA_CSS_ML && spec->method != ARIMA_ML && spec->method != ARIMA_CSS)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: unknown fitting method");
    return 0;
}

void arima_regressors(const struct arima_spec *spec, size_t nreg, size_t t0, size_t n, double *x)
{
    int dd = spec->order.d + spec->order.D;
    size_t c = 0;
    if (spec->include_mean && dd == 0) {
        for (size_t t = 0; t < n; t++)
            x[c * n + t] = 1.0;
        c++;
    }
    if (spec->include_drift && dd <= 1) {
        for (size_t t = 0; t < n; t++)
            x[c * n + t] = (double)(t0 + t + 1);
        c++;
    }
    /* fourier() in R's forecast package: sin and cos of 2 pi k t / m with
     * t counted from 1 at the first training observation. The angle is
     * reduced modulo the period first so that long series keep full
     * precision. */
    for (int k = 1; k <= spec->fourier_k && c + 2 <= nreg; k++) {
        double m = (double)spec->fourier_period;
        for (size_t t = 0; t < n; t++) {
            double ph = fmod((double)k * (double)(t0 + t + 1), m);
            x[c * n + t] = sin(2.0 * M_PI * ph / m);
            x[(c + 1) * n + t] = cos(2.0 * M_PI * ph / m);
        }
        c += 2;
    }
}

/* ---- polynomials ------------------------------------------------------ */

/* Multiplies out the seasonal and non-seasonal AR and MA polynomials of the
 * coefficients par (ar, ma, sar, sma): phi[0..p+mP-1] with
 * (1 - sum phi_i B^i) = (1 - sum ar_i B^i)(1 - sum sar_j B^(jm)), and theta
 * likewise with plus signs. Both arrays must be zeroed by the caller. */
static void expand_arma(const struct arima_order *o, const double *par, double *phi, double *theta)
{
    const double *ar = par, *ma = par + o->p, *sar = ma + o->q, *sma = sar + o->P;
    int m = o->m;
    for (int i = 0; i < o->p; i++)
        phi[i] += ar[i];
    for (int j = 0; j < o->P; j++) {
        phi[(j + 1) * m - 1] += sar[j];
        for (int i = 0; i < o->p; i++)
            phi[(j + 1) * m + i] -= ar[i] * sar[j];
    }
    for (int i = 0; i < o->q; i++)
        theta[i] += ma[i];
    for (int j = 0; j < o->Q; j++) {
        theta[(j + 1) * m - 1] += sma[j];
        for (int i = 0; i < o->q; i++)
            theta[(j + 1) * m + i] += ma[i] * sma[j];
    }
}

/* delta[0..d+mD-1]: (1-B)^d (1-B^m)^D = 1 - sum delta_k B^k. */
static void expand_delta(const struct arima_order *o, double *delta)
{
    size_t nd = (size_t)o->d + (size_t)o->m * (size_t)o->D;
    double c[ARIMA_MAX_STATE + 1];
    size_t deg = 0;
    memset(c, 0, sizeof c);
    c[0] = 1.0;
    for (int i = 0; i < o->d + o->D; i++) {
        size_t lag = i < o->d ? 1 : (size_t)o->m;
        for (size_t k = deg + lag; k >= lag; k--)
            c[k] -= c[k - lag];
        deg += lag;
    }
    for (size_t k = 0; k < nd; k++)
        delta[k] = -c[k + 1];
}

/* Jones (1980): maps unconstrained raw[0..p-1] to the coefficients of a
 * stationary AR(p) through partial autocorrelations tanh(raw) and the
 * Durbin-Levinson recursion phi(k)_j = phi(k-1)_j - pacf_k phi(k-1)_(k-j). */
static void ar_from_raw(const double *raw, int p, double *out)
{
    double work[ARIMA_MAX_P + 1];
    for (int j = 0; j < p; j++)
        out[j] = tanh(raw[j]);
    for (int k = 1; k < p; k++) {
        double a = out[k];
        for (int j = 0; j < k; j++)
            work[j] = out[j] - a * out[k - 1 - j];
        memcpy(out, work, (size_t)k * sizeof *out);
    }
}

/* The inverse: runs Durbin-Levinson backwards to the partial
 * autocorrelations. Returns -1 when the AR part is not stationary (a
 * partial autocorrelation of modulus >= 1), which is also the stationarity
 * test R's arCheck does with polynomial roots. raw may be NULL. */
static int ar_to_raw(const double *ar, int p, double *raw)
{
    double cur[ARIMA_MAX_P + 1], nxt[ARIMA_MAX_P + 1], pacf[ARIMA_MAX_P + 1];
    memcpy(cur, ar, (size_t)p * sizeof *cur);
    for (int k = p - 1; k >= 0; k--) {
        double a = cur[k];
        if (!(fabs(a) < 1.0))
            return -1;
        pacf[k] = a;
        for (int j = 0; j < k; j++)
            nxt[j] = (cur[j] + a * cur[k - 1 - j]) / (1.0 - a * a);
        memcpy(cur, nxt, (size_t)k * sizeof *cur);
    }
    if (raw)
        for (int k = 0; k < p; k++)
            raw[k] = atanh(pacf[k]);
    return 0;
}

/* Roots of 1 + c[0] z + ... + c[deg-1] z^deg into z (2*deg doubles,
 * interleaved re/im). Returns the degree after trimming negligible trailing
 * coefficients, or -1 when the root finder failed. */
static int poly_roots(const double *c, int deg, double tiny, double *z)
{
    while (deg > 0 && fabs(c[deg - 1]) <= tiny)
        deg--;
    if (deg == 0)
        return 0;
    double *a = malloc((size_t)(deg + 1) * sizeof *a);
    gsl_poly_complex_workspace *w = gsl_poly_complex_workspace_alloc((size_t)deg + 1);
    int rc = -1;
    if (a && w) {
        a[0] = 1.0;
        memcpy(a + 1, c, (size_t)deg * sizeof *a);
        if (gsl_poly_complex_solve(a, (size_t)deg + 1, w, z) == GSL_SUCCESS)
            rc = deg;
    }
    gsl_poly_complex_workspace_free(w);
    free(a);
    return rc;
}

/* Makes an MA polynomial invertible by reflecting roots inside the unit
 * circle to 1/z (the likelihood is unchanged; Box & Jenkins 1976, 6.4),
 * as R's maInvert does before and after maximum likelihood. */
static void ma_invert(double *ma, int q)
{
    double z[2 * ARIMA_MAX_P + 2];
    int deg = poly_roots(ma, q, 0.0, z);
    if (deg <= 0)
        return;
    int any = 0;
    for (int i = 0; i < deg; i++)
        if (hypot(z[2 * i], z[2 * i + 1]) < 1.0)
            any = 1;
    if (!any)
        return;
    /* Rebuild prod (1 - B / z_i) in complex arithmetic with reflected roots. */
    double re[ARIMA_MAX_P + 1] = {1.0}, im[ARIMA_MAX_P + 1] = {0.0};
    for (int i = 0; i < deg; i++) {
        double zr = z[2 * i], zi = z[2 * i + 1], m2 = zr * zr + zi * zi;
        if (m2 < 1.0) { /* 1 / conj-free reflection: z -> 1/z */
            zr = zr / m2;
            zi = -zi / m2;
            m2 = zr * zr + zi * zi;
        }
        double ir = zr / m2, ii = -zi / m2; /* 1 / z */
        for (int k = i + 1; k >= 1; k--) {
            double pr = re[k - 1] * ir - im[k - 1] * ii;
            double pi = re[k - 1] * ii + im[k - 1] * ir;
            re[k] -= pr;
            im[k] -= pi;
        }
    }
    for (int k = 0; k < deg; k++)
        ma[k] = re[k + 1];
}

/* ---- fit context -------------------------------------------------------- */

struct fit_ctx {
    struct arima_order o;
    size_t n, nreg, ncols, narma;
    size_t kact; /* regressors profiled in the objective: nreg, or 0 while
                    the ARMA part is fitted to y - X b for fixed b */
    size_t pf, qf, r, nd, rd, ncond;
    const struct model_hooks *hooks;
    double last_check_ms;
    int stopped;
    int trans; /* ML objective sees Jones-transformed AR parameters */

    double *y0;    /* the series as given */
    double *cols;  /* ncols * n, column-major: y (or y - X b), regressors */
    double *wdiff; /* the same, differenced (CSS) */
    double *cbuf;  /* ncols * n: css_eval's AR part of the residuals */
    double *par;   /* narma: current coefficients */
    double *phi, *theta, *delta;
    double *q0, *dw;           /* r*r, (r+2)*(r+4): stationary covariance, its work */
    double *P, *Pn, *Pold, *W; /* rd*rd each: filter covariances */
    double *M, *a, *an;        /* rd, ncols*rd, ncols*rd */
    double *E;                 /* n * ncols innovations (row t) */
    unsigned char *used;       /* n */
    double *beta, *ls;         /* nreg, nreg*(nreg+1) */
    size_t *phi_nz, *delta_nz; /* nonzero indexes, ascending */
    size_t *theta_nz;          /* nonzero indexes of theta + 1 (the MA lags) */
    size_t nphi_nz, ndelta_nz, ntheta_nz;
    int complete;  /* no missing value: ML may filter the differenced series */
    int arma_only; /* ml_eval filters the differenced series (kf_arma) */

    /* Results of the last evaluation. */
    double ssq, sumlog;
    size_t nu;

    /* Trajectory of kf_arma for the analytic gradient (ml_grad), recorded
     * when record is set: the predicted observation a0 of every step and
     * column (n * ncols), and the Chandrasekhar state (w, G, F, m) before
     * every step that ran one (n * (2r + 2)); rec_tfz is the first step
     * with a frozen gain (n when it never froze), rec_F the frozen F. */
    int record;
    double *rec_a0, *rec_wG, *rec_Fm;
    size_t rec_tfz;
    double rec_F;
    /* The last ml_eval recorded its trajectory at rec_x (narma values),
     * value rec_f, and nothing has changed the state since: ml_grad at the
     * same point needs only the backward pass (GSL's line search asks for
     * the gradient at the point whose value it just had). */
    int rec_valid;
    double *rec_x, rec_f;
    /* Likewise for css_eval: E, used, beta and ssq are those of css_x,
     * value css_f, so css_grad at that point skips the forward pass. */
    int css_valid;
    double *css_x, css_f;
    double *gw; /* ml_grad's adjoint workspace (gw_len doubles) */
    size_t gw_len;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Asks should_stop at most every STOP_CHECK_MS; sticky once it said yes. */
static int ctx_stopping(struct fit_ctx *c)
{
    if (c->stopped)
        return 1;
    if (!c->hooks || !c->hooks->should_stop)
        return 0;
    double t = now_ms();
    if (t - c->last_check_ms < STOP_CHECK_MS)
        return 0;
    c->last_check_ms = t;
    if (model_should_stop(c->hooks))
        c->stopped = 1;
    return c->stopped;
}

static void ctx_free(struct fit_ctx *c)
{
    free(c->y0);
    free(c->cols);
    free(c->wdiff);
    free(c->cbuf);
    free(c->par);
    free(c->phi);
    free(c->theta);
    free(c->delta);
    free(c->q0);
    free(c->dw);
    free(c->P);
    free(c->Pn);
    free(c->Pold);
    free(c->W);
    free(c->M);
    free(c->a);
    free(c->an);
    free(c->E);
    free(c->used);
    free(c->beta);
    free(c->ls);
    free(c->phi_nz);
    free(c->delta_nz);
    free(c->theta_nz);
    free(c->rec_a0);
    free(c->rec_wG);
    free(c->rec_Fm);
    free(c->rec_x);
    free(c->css_x);
    free(c->gw);
}

/* Differenced copy of one column for CSS: w_t -= w_(t-lag), per difference. */
static void diff_column(struct fit_ctx *c, size_t col)
{
    size_t n = c->n;
    double *w = c->wdiff + col * n;
    memcpy(w, c->cols + col * n, n * sizeof *w);
    for (int i = 0; i < c->o.d + c->o.D; i++) {
        size_t lag = i < c->o.d ? 1 : (size_t)c->o.m;
        for (size_t t = n; t-- > lag;)
            w[t] -= w[t - lag];
    }
}

static int ctx_init(struct fit_ctx *c, const struct arima_spec *spec, const double *y, size_t n,
                    const struct model_hooks *hooks)
{
    const struct arima_order *o = &spec->order;
    memset(c, 0, sizeof *c);
    c->o = *o;
    c->n = n;
    c->hooks = hooks;
    c->last_check_ms = now_ms();
    c->nreg = arima_nreg(spec);
    c->ncols = 1 + c->nreg;
    c->narma = (size_t)(o->p + o->q + o->P + o->Q);
    c->pf = (size_t)o->p + (size_t)o->m * (size_t)o->P;
    c->qf = (size_t)o->q + (size_t)o->m * (size_t)o->Q;
    c->r = c->pf > c->qf + 1 ? c->pf : c->qf + 1;
    c->nd = (size_t)o->d + (size_t)o->m * (size_t)o->D;
    c->rd = c->r + c->nd;
    c->ncond = c->nd + c->pf;
    size_t r = c->r, rd = c->rd, nc = c->ncols;

    c->y0 = malloc(n * sizeof *c->y0);
    c->cols = malloc(nc * n * sizeof *c->cols);
    c->wdiff = malloc(nc * n * sizeof *c->wdiff);
    c->cbuf = malloc(nc * n * sizeof *c->cbuf);
    c->par = calloc(c->narma + 1, sizeof *c->par);
    c->css_x = calloc(c->narma + 1, sizeof *c->css_x);
    c->phi = calloc(r, sizeof *c->phi);
    c->theta = calloc(r, sizeof *c->theta);
    c->delta = calloc(c->nd + 1, sizeof *c->delta);
    c->q0 = malloc(r * r * sizeof *c->q0);
    c->dw = malloc((r + 2) * (r + 4) * sizeof *c->dw);
    c->P = malloc(rd * rd * sizeof *c->P);
    c->Pn = malloc(rd * rd * sizeof *c->Pn);
    c->Pold = malloc(rd * rd * sizeof *c->Pold);
    c->W = malloc(rd * rd * sizeof *c->W);
    c->M = malloc(rd * sizeof *c->M);
    c->a = malloc(nc * rd * sizeof *c->a);
    c->an = malloc(nc * rd * sizeof *c->an);
    c->E = malloc(n * nc * sizeof *c->E);
    c->used = malloc(n);
    c->beta = calloc(c->nreg + 1, sizeof *c->beta);
    c->ls = malloc((c->nreg + 1) * (c->nreg + 1) * sizeof *c->ls);
    c->phi_nz = malloc((r + 1) * sizeof *c->phi_nz);
    c->delta_nz = malloc((c->nd + 1) * sizeof *c->delta_nz);
    c->theta_nz = malloc((r + 1) * sizeof *c->theta_nz);
    if (!c->y0 || !c->cols || !c->wdiff || !c->cbuf || !c->par || !c->css_x || !c->phi ||
        !c->theta || !c->delta || !c->q0 || !c->dw || !c->P || !c->Pn || !c->Pold || !c->W ||
        !c->M || !c->a || !c->an || !c->E || !c->used || !c->beta || !c->ls || !c->phi_nz ||
        !c->delta_nz || !c->theta_nz)
        return ENMS_ENOMEM;
    c->complete = 1;
    for (size_t t = 0; t < n; t++)
        if (isnan(y[t]))
            c->complete = 0;

    memcpy(c->y0, y, n * sizeof *y);
    memcpy(c->cols, y, n * sizeof *y);
    c->kact = c->nreg;
    if (c->nreg > 0)
        arima_regressors(spec, c->nreg, 0, n, c->cols + n);
    expand_delta(o, c->delta);
    for (size_t k = 0; k < c->nd; k++)
        if (c->delta[k] != 0.0)
            c->delta_nz[c->ndelta_nz++] = k;

    for (size_t col = 0; col < nc; col++)
        diff_column(c, col);
    return 0;
}

/* Sets column 0 to y - X beta (beta NULL: y itself) and re-differences it. */
static void ctx_set_response(struct fit_ctx *c, const double *beta)
{
    size_t n = c->n;
    for (size_t t = 0; t < n; t++) {
        double v = c->y0[t];
        if (beta)
            for (size_t j = 0; j < c->nreg; j++)
                v -= beta[j] * c->cols[(1 + j) * n + t];
        c->cols[t] = v;
    }
    diff_column(c, 0);
    c->rec_valid = 0;
    c->css_valid = 0;
}

/* Sets phi, theta (state-space vectors of length r) from c->par, where the
 * AR blocks are Jones-transformed when trans. */
static void ctx_set_params(struct fit_ctx *c, const double *x, int trans)
{
    const struct arima_order *o = &c->o;
    memcpy(c->par, x, c->narma * sizeof *x);
    if (trans) {
        ar_from_raw(x, o->p, c->par);
        ar_from_raw(x + o->p + o->q, o->P, c->par + o->p + o->q);
    }
    memset(c->phi, 0, c->r * sizeof *c->phi);
    memset(c->theta, 0, c->r * sizeof *c->theta);
    /* theta[0] = 1 is the coefficient of e_t in Harvey's R vector; the
     * expanded MA coefficients follow it. */
    expand_arma(o, c->par, c->phi, c->theta + 1);
    c->theta[0] = 1.0;
    c->nphi_nz = 0;
    for (size_t i = 0; i < c->r; i++)
        if (c->phi[i] != 0.0)
            c->phi_nz[c->nphi_nz++] = i;
    c->ntheta_nz = 0;
    for (size_t i = 0; i + 1 < c->r; i++)
        if (c->theta[i + 1] != 0.0)
            c->theta_nz[c->ntheta_nz++] = i;
}

/* ---- least squares on the innovations ---------------------------------- */

/* Given innovations E (row t: y then the regressors) on the rows marked in
 * used, sets beta to the least-squares coefficients and returns the
 * residual sum of squares, or -1 when the regressors are collinear. The
 * normal equations are solved by Cholesky (k is small) and the residuals
 * recomputed directly so the sum of squares does not suffer cancellation. */
static double profile_ls(struct fit_ctx *c)
{
    size_t k = c->kact, nc = 1 + c->kact, n = c->n;
    double *S = c->ls, *b = c->beta;
    if (k > 0) {
        memset(S, 0, k * (k + 1) * sizeof *S);
        for (size_t t = 0; t < n; t++) {
            if (!c->used[t])
                continue;
            const double *e = c->E + t * nc;
            for (size_t i = 0; i < k; i++) {
                double xi = e[1 + i];
                S[i * (k + 1) + k] += xi * e[0];
                for (size_t j = 0; j <= i; j++)
                    S[i * (k + 1) + j] += xi * e[1 + j];
            }
        }
        /* Cholesky in place on the lower triangle of S (k x k, stride k+1). */
        for (size_t j = 0; j < k; j++) {
            double s = S[j * (k + 1) + j];
            for (size_t l = 0; l < j; l++)
                s -= S[j * (k + 1) + l] * S[j * (k + 1) + l];
            if (!(s > 1e-12 * (1.0 + fabs(S[j * (k + 1) + j]))))
                return -1.0;
            double d = sqrt(s);
            S[j * (k + 1) + j] = d;
            for (size_t i = j + 1; i < k; i++) {
                double v = S[i * (k + 1) + j];
                for (size_t l = 0; l < j; l++)
                    v -= S[i * (k + 1) + l] * S[j * (k + 1) + l];
                S[i * (k + 1) + j] = v / d;
            }
        }
        for (size_t i = 0; i < k; i++) { /* L z = X'y */
            double v = S[i * (k + 1) + k];
            for (size_t l = 0; l < i; l++)
                v -= S[i * (k + 1) + l] * b[l];
            b[i] = v / S[i * (k + 1) + i];
        }
        for (size_t i = k; i-- > 0;) { /* L' b = z */
            double v = b[i];
            for (size_t l = i + 1; l < k; l++)
                v -= S[l * (k + 1) + i] * b[l];
            b[i] = v / S[i * (k + 1) + i];
        }
    }
    double ssq = 0.0;
    for (size_t t = 0; t < n; t++) {
        if (!c->used[t])
            continue;
        const double *e = c->E + t * nc;
        double v = e[0];
        for (size_t i = 0; i < k; i++)
            v -= e[1 + i] * b[i];
        ssq += v * v;
    }
    return ssq;
}

/* ---- conditional sum of squares ----------------------------------------- */

/* out[t] -= f * in[t] for t in [0, len): one AR term of the residuals over
 * the whole series, in blocks of four the compiler turns into vector
 * instructions (at -O2 it vectorises straight-line blocks, not loops of
 * unknown length). */
static void axpy_neg(double *restrict out, const double *restrict in, double f, size_t len)
{
    size_t t = 0;
    for (; t + 4 <= len; t += 4)
        for (size_t l = 0; l < 4; l++)
            out[t + l] -= f * in[t + l];
    for (; t < len; t++)
        out[t] -= f * in[t];
}

/* R's CSS objective 0.5 log(ssq / nu): residuals of the differenced series
 * from t = d + mD + p + mP on, with earlier residuals taken as zero. A
 * missing value gives a zero residual that is not counted (R would let it
 * poison every later residual of an MA model). */
static double css_eval(struct fit_ctx *c, const double *x)
{
    size_t n = c->n, nc = 1 + c->kact;
    c->rec_valid = 0;
    c->css_valid = 0;
    ctx_set_params(c, x, 0);
    const double *theta = c->theta + 1;
    size_t qf = c->qf, nc0 = c->ncond;
    /* The AR part w_t - sum phi_i w_(t-i-1) first, term by term over the
     * whole series (each residual gets the same subtractions in the same
     * order as one loop per t would give: the same bits); then the MA
     * recursion, which is sequential in t. */
    if (nc0 < n)
        for (size_t col = 0; col < nc; col++) {
            const double *w = c->wdiff + col * n;
            double *b = c->cbuf + col * n;
            memcpy(b + nc0, w + nc0, (n - nc0) * sizeof *b);
            for (size_t j = 0; j < c->nphi_nz; j++) {
                size_t i = c->phi_nz[j];
                axpy_neg(b + nc0, w + nc0 - i - 1, c->phi[i], n - nc0);
            }
        }
    c->nu = 0;
    for (size_t t = 0; t < n; t++) {
        double *e = c->E + t * nc;
        if (t < c->ncond) {
            for (size_t col = 0; col < nc; col++)
                e[col] = 0.0;
            c->used[t] = 0;
            continue;
        }
        int bad = 0;
        for (size_t col = 0; col < nc; col++) {
            double v = c->cbuf[col * n + t];
            size_t lim = t - c->ncond < qf ? t - c->ncond : qf;
            size_t nth = c->ntheta_nz; /* every MA lag is below qf */
            if (lim < qf)
                for (nth = 0; nth < c->ntheta_nz && c->theta_nz[nth] < lim; nth++)
                    ;
            for (size_t jj = 0; jj < nth; jj++) {
                size_t j = c->theta_nz[jj];
                v -= theta[j] * c->E[(t - j - 1) * nc + col];
            }
            e[col] = v;
            if (col == 0 && isnan(v))
                bad = 1;
        }
        if (bad)
            for (size_t col = 0; col < nc; col++)
                e[col] = 0.0;
        c->used[t] = !bad;
        c->nu += !bad;
    }
    if (c->nu == 0)
        return BAD_VALUE;
    double ssq = profile_ls(c);
    if (!(ssq > 0.0) || !isfinite(ssq))
        return BAD_VALUE;
    c->ssq = ssq;
    double v = 0.5 * log(ssq / (double)c->nu);
    memcpy(c->css_x, x, c->narma * sizeof *x);
    c->css_f = v;
    c->css_valid = 1;
    return v;
}

/* Chain rule from the expanded polynomials to the parameters: given the
 * gradient with respect to the expanded AR coefficients (gphi, p + mP of
 * them) and MA coefficients (gth, q + mQ), writes the gradient with respect
 * to (ar, ma, sar, sma) = par into g. phi = (1 - ar)(1 - sar B^m) and
 * theta = (1 + ma)(1 + sma B^m), as expand_arma builds them. Shared by the
 * CSS and the exact-likelihood gradients. */
static void grad_expanded_to_par(const struct arima_order *o, const double *par, const double *gphi,
                                 const double *gth, double *g)
{
    size_t m = (size_t)o->m;
    const double *ar = par, *ma = par + o->p, *sar = ma + o->q, *sma = sar + o->P;
    double *gar = g, *gma = g + o->p, *gsar = gma + o->q, *gsma = gsar + o->P;
    for (int i = 0; i < o->p; i++) {
        gar[i] = gphi[i];
        for (int j = 0; j < o->P; j++)
            gar[i] -= sar[j] * gphi[(size_t)(j + 1) * m + (size_t)i];
    }
    for (int j = 0; j < o->P; j++) {
        gsar[j] = gphi[(size_t)(j + 1) * m - 1];
        for (int i = 0; i < o->p; i++)
            gsar[j] -= ar[i] * gphi[(size_t)(j + 1) * m + (size_t)i];
    }
    for (int i = 0; i < o->q; i++) {
        gma[i] = gth[i];
        for (int j = 0; j < o->Q; j++)
            gma[i] += sma[j] * gth[(size_t)(j + 1) * m + (size_t)i];
    }
    for (int j = 0; j < o->Q; j++) {
        gsma[j] = gth[(size_t)(j + 1) * m - 1];
        for (int i = 0; i < o->q; i++)
            gsma[j] += ma[i] * gth[(size_t)(j + 1) * m + (size_t)i];
    }
}

/* Exact gradient of css_eval at x (which it evaluates first), by
 * differentiating the residual recursion r_t = w_t - sum phi_i w_(t-i-1) -
 * sum theta_j r_(t-j-1) in reverse mode (one backward pass for all
 * expanded coefficients, below), then the chain rule through the seasonal
 * products. The regression coefficients
 * are at their least-squares values, so by the envelope theorem only the
 * residuals of y - X b are needed. Returns the objective value. */
static double css_grad(struct fit_ctx *c, const double *x, double *g)
{
    const struct arima_order *o = &c->o;
    size_t n = c->n, nc = 1 + c->kact, pf = c->pf, qf = c->qf, m = (size_t)o->m;
    /* GSL's line search asks for the gradient at the point whose value it
     * just had: the evaluation is then still in c. */
    double f =
        c->css_valid && memcmp(c->css_x, x, c->narma * sizeof *x) == 0 ? c->css_f : css_eval(c, x);
    memset(g, 0, c->narma * sizeof *g);
    if (f >= BAD_VALUE)
        return f;
    double *r = malloc(n * sizeof *r), *w = malloc(n * sizeof *w);
    double *D = malloc(n * sizeof *D), *gf = calloc(pf + qf + 1, sizeof *gf);
    unsigned char *need = calloc(pf + qf + 1, 1);
    if (!r || !w || !D || !gf || !need) {
        f = BAD_VALUE;
        goto done;
    }
    const double *theta = c->theta + 1;
    for (size_t t = 0; t < n; t++) {
        double rv = c->E[t * nc], wv = c->wdiff[t];
        for (size_t j = 0; j < c->kact; j++) {
            rv -= c->beta[j] * c->E[t * nc + 1 + j];
            wv -= c->beta[j] * c->wdiff[(1 + j) * n + t];
        }
        r[t] = rv;
        w[t] = wv;
    }
    /* Only the expanded lags the chain rule below reads: p + P + pP AR
     * lags and q + Q + qQ MA lags out of pf + qf. */
    for (int i = 0; i < o->p; i++)
        need[i] = 1;
    for (int j = 0; j < o->P; j++) {
        need[(size_t)(j + 1) * m - 1] = 1;
        for (int i = 0; i < o->p; i++)
            need[(size_t)(j + 1) * m + (size_t)i] = 1;
    }
    for (int i = 0; i < o->q; i++)
        need[pf + (size_t)i] = 1;
    for (int j = 0; j < o->Q; j++) {
        need[pf + (size_t)(j + 1) * m - 1] = 1;
        for (int i = 0; i < o->q; i++)
            need[pf + (size_t)(j + 1) * m + (size_t)i] = 1;
    }
    /* Reverse mode: D[t] is the adjoint of r_t for 0.5 sum r^2 through the
     * MA recursion, D_t = r_t - sum_j theta_j D_(t+j+1) over the residuals
     * that are counted (an uncounted one is a constant 0); then the
     * derivative for expanded lag L is sum_t D_t dr_t/dcoef directly,
     * -w_(t-L) (AR) or -r_(t-L) (MA): one backward recursion and a dot
     * product per lag, instead of a recursion per lag. */
    for (size_t t = n; t-- > 0;) {
        if (t < c->ncond || !c->used[t]) {
            D[t] = 0.0;
            continue;
        }
        double v = r[t];
        for (size_t jj = 0; jj < c->ntheta_nz; jj++) {
            size_t s = t + c->theta_nz[jj] + 1;
            if (s >= n)
                break;
            v -= theta[c->theta_nz[jj]] * D[s];
        }
        D[t] = v;
    }
    for (size_t i = 0; i < pf + qf; i++) {
        if (!need[i])
            continue;
        int is_ar = i < pf;
        size_t lag = (is_ar ? i : i - pf) + 1;
        const double *src = is_ar ? w : r;
        double acc = 0.0;
        size_t t0 = c->ncond > lag ? c->ncond : lag;
        if (c->complete) {
            /* Four lanes, not one chain of dependent subtractions. */
            double al[4] = {0.0, 0.0, 0.0, 0.0};
            size_t t = t0;
            for (; t + 4 <= n; t += 4)
                for (size_t l = 0; l < 4; l++)
                    al[l] -= D[t + l] * src[t + l - lag];
            for (; t < n; t++)
                al[0] -= D[t] * src[t - lag];
            acc = (al[0] + al[1]) + (al[2] + al[3]);
        } else {
            /* A gap's NAN is never a counted residual's term (that
             * residual would be NAN, so uncounted, D = 0). */
            for (size_t t = t0; t < n; t++)
                if (D[t] != 0.0 && isfinite(src[t - lag]))
                    acc -= D[t] * src[t - lag];
        }
        gf[i] = acc / c->ssq; /* d/dcoef of 0.5 log(ssq / nu) */
    }
    grad_expanded_to_par(o, c->par, gf, gf + pf, g);
done:
    free(r);
    free(w);
    free(D);
    free(gf);
    free(need);
    return f;
}

/* ---- Kalman filter -------------------------------------------------------- */

/* out (rows x ld) = T * in: the transition applied to each column of in. T
 * has the AR coefficients in its first column and ones on the
 * superdiagonal of the ARMA block; the differencing block adds the next
 * undifferenced value and shifts the older ones down. */
static void t_rows(const struct fit_ctx *c, const double *in, double *out, size_t ld)
{
    size_t r = c->r, rd = c->rd;
    for (size_t i = 0; i + 1 < r; i++)
        memcpy(out + i * ld, in + (i + 1) * ld, ld * sizeof *out);
    memset(out + (r - 1) * ld, 0, ld * sizeof *out);
    for (size_t j = 0; j < c->nphi_nz; j++) {
        size_t i = c->phi_nz[j];
        double f = c->phi[i];
        double *o = out + i * ld;
        for (size_t l = 0; l < ld; l++)
            o[l] += f * in[l];
    }
    if (c->nd > 0) {
        for (size_t i = rd - 1; i > r; i--)
            memcpy(out + i * ld, in + (i - 1) * ld, ld * sizeof *out);
        double *o = out + r * ld;
        memcpy(o, in, ld * sizeof *o);
        for (size_t j = 0; j < c->ndelta_nz; j++) {
            size_t k = c->delta_nz[j];
            double f = c->delta[k];
            const double *row = in + (r + k) * ld;
            for (size_t l = 0; l < ld; l++)
                o[l] += f * row[l];
        }
    }
}

/* y = T x for one state vector (x and y distinct). */
static void t_vec(const struct fit_ctx *c, const double *x, double *y)
{
    size_t r = c->r, rd = c->rd;
    for (size_t i = 0; i + 1 < r; i++)
        y[i] = x[i + 1];
    y[r - 1] = 0.0;
    for (size_t j = 0; j < c->nphi_nz; j++)
        y[c->phi_nz[j]] += c->phi[c->phi_nz[j]] * x[0];
    if (c->nd > 0) {
        double v = x[0];
        for (size_t j = 0; j < c->ndelta_nz; j++)
            v += c->delta[c->delta_nz[j]] * x[r + c->delta_nz[j]];
        for (size_t i = rd - 1; i > r; i--)
            y[i] = x[i - 1];
        y[r] = v;
    }
}

/* Pn = T P T' + R R'. */
static void predict_cov(struct fit_ctx *c, const double *P, double *Pn)
{
    size_t rd = c->rd, r = c->r;
    t_rows(c, P, c->W, rd); /* W = T P */
    /* Pn = W T': row i of Pn is T applied to row i of W (P symmetric). */
    for (size_t i = 0; i < rd; i++)
        t_vec(c, c->W + i * rd, Pn + i * rd);
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < r; j++)
            Pn[i * rd + j] += c->theta[i] * c->theta[j];
}

/* Solves A x = b in place for an n x n row-major A by Gaussian elimination
 * with partial pivoting; b becomes x. Returns -1 when A is singular. */
static int solve_dense(double *A, double *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t piv = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[piv * n + k]))
                piv = i;
        if (!(fabs(A[piv * n + k]) > 1e-300))
            return -1;
        if (piv != k) {
            for (size_t j = 0; j < n; j++) {
                double t = A[k * n + j];
                A[k * n + j] = A[piv * n + j];
                A[piv * n + j] = t;
            }
            double t = b[k];
            b[k] = b[piv];
            b[piv] = t;
        }
        for (size_t i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            if (f == 0.0)
                continue;
            for (size_t j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (size_t k = n; k-- > 0;) {
        double v = b[k];
        for (size_t j = k + 1; j < n; j++)
            v -= A[k * n + j] * b[j];
        b[k] = v / A[k * n + k];
    }
    return 0;
}

/* Stationary covariance Q0 of the ARMA block (unit innovation variance),
 * the solution of the discrete Lyapunov equation Q = T Q T' + R R', without
 * Gardner et al.'s linear system in r(r+1)/2 unknowns (O(r^4) memory, what
 * made R's auto.arima run out of memory at m = 336). With the expanded
 * polynomials phi (lags 1..pf) and theta (theta_0 = 1):
 *   1. the MA(inf) weights psi and the autocovariances gamma(0..pf) from the
 *      (pf+1)-equation system gamma(k) - sum phi_i gamma(|k-i|) =
 *      sum_(j>=k) theta_j psi_(j-k) (Brockwell & Davis 1991, 3.3.8), then
 *      gamma(k) for k up to r by the same recursion;
 *   2. the first row: state j of Harvey's form at time t is
 *      sum_(k>=j) phi_k y_(t+j-1-k) + theta_k e_(t+j-k), so
 *      Q_0j = sum_(k>=j) phi_k gamma(k+1-j) + theta_k psi_(k-j);
 *   3. the rest from the Lyapunov equation read entrywise,
 *      Q_ij = Q_(i+1,j+1) + phi_i phi_j Q_00 + phi_i Q_(0,j+1)
 *             + phi_j Q_(0,i+1) + theta_i theta_j, from the last row up.
 * O(pf^3 + r^2) time, O(r^2) memory. Returns -1 when the AR part is not
 * stationary (as R's arima refuses it). stationary_row does steps 1 and 2
 * (the first row, all kf_arma needs) into the first row of c->q0. */
static int stationary_row(struct fit_ctx *c)
{
    const struct arima_order *o = &c->o;
    size_t r = c->r, pf = c->pf;
    const double *phi = c->phi, *th = c->theta;
    double *Q = c->q0;
    /* dw: psi (r + 1), gamma (r + 1), then the (pf + 1)^2 system. */
    double *psi = c->dw, *gam = c->dw + r + 1, *A = c->dw + 2 * (r + 1);
    if (ar_to_raw(c->par, o->p, NULL) != 0 || ar_to_raw(c->par + o->p + o->q, o->P, NULL) != 0)
        return -1;
    for (size_t j = 0; j <= r; j++) {
        double v = j < r ? th[j] : 0.0;
        for (size_t i = 1; i <= j && i <= pf; i++)
            v += phi[i - 1] * psi[j - i];
        psi[j] = v;
    }
    /* rhs_k = sum_(j=k..r-1) theta_j psi_(j-k), into gam[k]. */
    for (size_t k = 0; k <= r; k++) {
        double v = 0.0;
        for (size_t j = k; j < r; j++)
            v += th[j] * psi[j - k];
        gam[k] = v;
    }
    size_t ns = pf + 1;
    memset(A, 0, ns * ns * sizeof *A);
    for (size_t k = 0; k < ns; k++) {
        A[k * ns + k] += 1.0;
        for (size_t i = 1; i <= pf; i++) {
            size_t lag = k > i ? k - i : i - k;
            A[k * ns + lag] -= phi[i - 1];
        }
    }
    if (solve_dense(A, gam, ns) != 0)
        return -1;
    for (size_t k = ns; k <= r; k++) {
        double v = gam[k];
        for (size_t i = 1; i <= pf; i++)
            v += phi[i - 1] * gam[k - i];
        gam[k] = v;
    }
    if (!(gam[0] > 0.0) || !isfinite(gam[0]))
        return -1;
    Q[0] = gam[0];
    for (size_t j = 1; j < r; j++) {
        double v = 0.0;
        for (size_t k = j; k < r; k++)
            v += phi[k] * gam[k + 1 - j] + th[k] * psi[k - j];
        Q[j] = v;
    }
    return 0;
}

/* The whole of Q0 from its first row (step 3 above). */
static int stationary_cov(struct fit_ctx *c)
{
    size_t r = c->r;
    const double *phi = c->phi, *th = c->theta;
    double *Q = c->q0;
    if (stationary_row(c) != 0)
        return -1;
    for (size_t j = 1; j < r; j++)
        Q[j * r] = Q[j];
    double q00 = Q[0];
    for (size_t i = r; i-- > 1;) {
        double qi = i + 1 < r ? Q[i + 1] : 0.0; /* Q_(0,i+1) */
        for (size_t j = r; j-- > i;) {
            double v = phi[i] * phi[j] * q00 + phi[i] * (j + 1 < r ? Q[j + 1] : 0.0) + phi[j] * qi +
                       th[i] * th[j];
            if (i + 1 < r && j + 1 < r)
                v += Q[(i + 1) * r + j + 1];
            Q[i * r + j] = v;
            Q[j * r + i] = v;
        }
    }
    for (size_t i = 0; i < r; i++)
        if (!(Q[i * r + i] >= 0.0) || !isfinite(Q[i * r + i]))
            return -1;
    return 0;
}

/* Runs the filter over all columns at once (they share the covariance
 * recursion). Fills E with the standardised innovations v / sqrt(F), used[t]
 * for the terms in the likelihood, c->sumlog and c->nu. When the predicted
 * covariance has converged (no missing values since) it is frozen: the
 * recursion is then at its steady state and costs O(rd) per step.
 * Returns 0, -1 for numerical failure, or ENMS_ESTOPPED. */
static int kf_run(struct fit_ctx *c)
{
    size_t n = c->n, nc = 1 + c->kact, rd = c->rd, r = c->r;
    double *P = c->P, *Pn = c->Pn;
    const double *y = c->cols;
    int frozen = 0, have_old = 0;
    double F = 0.0;

    memset(c->a, 0, nc * rd * sizeof *c->a);
    memset(P, 0, rd * rd * sizeof *P);
    c->sumlog = 0.0;
    c->nu = 0;
    for (size_t t = 0; t < n; t++) {
        if ((t & 255) == 255 && ctx_stopping(c))
            return ENMS_ESTOPPED;
        for (size_t col = 0; col < nc; col++)
            t_vec(c, c->a + col * rd, c->an + col * rd);
        if (t == 0) {
            /* The prior at the first observation: the stationary ARMA
             * covariance and a diffuse differencing block. */
            memset(Pn, 0, rd * rd * sizeof *Pn);
            for (size_t i = 0; i < r; i++)
                memcpy(Pn + i * rd, c->q0 + i * r, r * sizeof *Pn);
            for (size_t i = r; i < rd; i++)
                Pn[i * rd + i] = KAPPA;
        } else if (!frozen) {
            predict_cov(c, P, Pn);
        }
        if (isnan(y[t])) {
            /* No update: the filtered state is the predicted one. */
            for (size_t col = 0; col < nc; col++)
                c->E[t * nc + col] = NAN;
            c->used[t] = 0;
            memcpy(c->a, c->an, nc * rd * sizeof *c->a);
            memcpy(P, Pn, rd * rd * sizeof *P);
            frozen = have_old = 0;
            continue;
        }
        if (!frozen) {
            /* M = Pn Z', F = Z Pn Z' with Z = (1, 0.., 0, delta). */
            for (size_t i = 0; i < rd; i++) {
                double v = Pn[i * rd];
                for (size_t j = 0; j < c->ndelta_nz; j++) {
                    size_t k = c->delta_nz[j];
                    v += c->delta[k] * Pn[i * rd + r + k];
                }
                c->M[i] = v;
            }
            F = c->M[0];
            for (size_t j = 0; j < c->ndelta_nz; j++) {
                size_t k = c->delta_nz[j];
                F += c->delta[k] * c->M[r + k];
            }
            if (!(F > 0.0) || !isfinite(F))
                return -1;
        }
        double sf = sqrt(F);
        for (size_t col = 0; col < nc; col++) {
            double *an = c->an + col * rd, *a = c->a + col * rd;
            double pred = an[0];
            for (size_t j = 0; j < c->ndelta_nz; j++) {
                size_t k = c->delta_nz[j];
                pred += c->delta[k] * an[r + k];
            }
            double v = c->cols[col * n + t] - pred;
            c->E[t * nc + col] = v / sf;
            double g = v / F;
            for (size_t i = 0; i < rd; i++)
                a[i] = an[i] + c->M[i] * g;
        }
        c->used[t] = F < DIFFUSE_GAIN;
        if (c->used[t]) {
            c->nu++;
            c->sumlog += log(F);
        }
        if (!frozen) {
            for (size_t i = 0; i < rd; i++) {
                double mi = c->M[i] / F;
                for (size_t j = 0; j < rd; j++)
                    P[i * rd + j] = Pn[i * rd + j] - mi * c->M[j];
            }
            /* Freeze once the predicted covariance stops changing; checked
             * only past the diffuse start. */
            if (c->used[t] && t > c->nd) {
                if (have_old) {
                    double d = 0.0, s = 0.0;
                    for (size_t i = 0; i < rd * rd; i++) {
                        double e = fabs(Pn[i] - c->Pold[i]);
                        if (e > d)
                            d = e;
                        if (fabs(Pn[i]) > s)
                            s = fabs(Pn[i]);
                    }
                    if (d <= 1e-14 * (1.0 + s))
                        frozen = 1;
                }
                memcpy(c->Pold, Pn, rd * rd * sizeof *Pn);
                have_old = 1;
            }
        }
    }
    if (frozen)
        /* P was not updated while frozen: the filtered covariance is the
         * steady-state prediction minus the update. */
        for (size_t i = 0; i < rd; i++)
            for (size_t j = 0; j < rd; j++)
                P[i * rd + j] = Pn[i * rd + j] - c->M[i] * c->M[j] / F;
    return 0;
}

/* One predicted-state step of kf_arma for one column, in place:
 * a_i <- a_(i+1) + G_i g + phi_i a0 (a_r = 0). phi is dense (zeros where
 * the expanded AR polynomial has none): adding phi_i a0 = 0 leaves a value
 * unchanged, so this gives the bits of the sparse form, in one pass the
 * compiler can vectorise (this loop and chandra_step are most of an ML
 * fit's time). */
static void arma_step(double *restrict a, const double *restrict G, const double *restrict phi,
                      size_t r, double g, double a0)
{
    size_t i = 0;
    /* Blocks of four (read a_(i+1..i+4), then write a_(i..i+3)) that the
     * compiler turns into vector instructions; the same operations per
     * element as one element at a time. */
    for (; i + 4 < r; i += 4) {
        double x[4];
        for (size_t l = 0; l < 4; l++)
            x[l] = a[i + l + 1];
        for (size_t l = 0; l < 4; l++)
            a[i + l] = (x[l] + G[i + l] * g) + phi[i + l] * a0;
    }
    for (; i + 1 < r; i++)
        a[i] = (a[i + 1] + G[i] * g) + phi[i] * a0;
    a[r - 1] = G[r - 1] * g + phi[r - 1] * a0;
}

/* One Chandrasekhar step of kf_arma in place: u = T w (u_i = w_(i+1) +
 * phi_i c), w <- u - cf G, G <- G + mc u. Returns max |w_i| of the new w.
 * Fused into one pass, reading w_(i+1) before w_i is overwritten; the
 * maximum is kept in four independent lanes (max is exact in any order)
 * so the loop is not one long chain of dependent comparisons. */
static double chandra_step(double *restrict w, double *restrict G, const double *restrict phi,
                           size_t r, double cw, double cf, double mc)
{
    double mx[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 < r; i += 4) {
        for (size_t l = 0; l < 4; l++) {
            double u = w[i + l + 1] + phi[i + l] * cw;
            double wn = u - cf * G[i + l];
            G[i + l] += mc * u;
            w[i + l] = wn;
            mx[l] = fabs(wn) > mx[l] ? fabs(wn) : mx[l];
        }
    }
    for (; i < r; i++) {
        double u = (i + 1 < r ? w[i + 1] : 0.0) + phi[i] * cw;
        double wn = u - cf * G[i];
        G[i] += mc * u;
        w[i] = wn;
        mx[0] = fabs(wn) > mx[0] ? fabs(wn) : mx[0];
    }
    double a = mx[0] > mx[1] ? mx[0] : mx[1], b = mx[2] > mx[3] ? mx[2] : mx[3];
    return a > b ? a : b;
}

/* The filter of the ARMA part alone, run on the differenced columns
 * (wdiff) from t = d + mD on, for a series without missing values: the
 * likelihood the diffuse prior of kf_run gives is that of the differenced
 * series (Harvey 1989, sec. 3.4), up to terms of order 1/kappa, so the
 * optimiser can use this filter on the ARMA state alone.
 *
 * The covariance is never formed: with the stationary prior P_1 = Q0 the
 * first increment P_2 - P_1 = -G G' / F (G = T Q0 Z', F = Z Q0 Z') has rank
 * one, and so does every later one (the Chandrasekhar recursions of Morf,
 * Sidhu & Kailath 1974; Harvey 1989, sec. 3.3.4). With P_(t+1) - P_t =
 * m w w', G_t = T P_t Z', F_t = Z P_t Z' and c = w_0:
 *   F_(t+1) = F_t + m c^2,   G_(t+1) = G_t + m c T w,
 *   w_(t+1) = T w - c G_t / F_t,   m_(t+1) = m F_t / F_(t+1),
 * O(r) per step instead of O(r^2), exact for a time-invariant system; once
 * the increments are below rounding the gain is frozen. The predicted
 * state is a_(t+1) = T a_t + G_t v_t / F_t. Fills E, used, sumlog and nu
 * as kf_run; the state at the end is not kept. Needs the first row of Q0
 * (stationary_row). Returns 0, -1 for numerical failure, or ENMS_ESTOPPED. */
static int kf_arma(struct fit_ctx *c)
{
    size_t n = c->n, nc = 1 + c->kact, r = c->r, nd = c->nd;
    const double *q = c->q0, *phi = c->phi;
    double *G = c->M, *w = c->an;
    int frozen = 0;
    double F = q[0], m = -1.0 / q[0], logF = 0.0;

    for (size_t i = 0; i < r; i++)
        G[i] = i + 1 < r ? q[i + 1] : 0.0;
    for (size_t j = 0; j < c->nphi_nz; j++)
        G[c->phi_nz[j]] += phi[c->phi_nz[j]] * q[0];
    memcpy(w, G, r * sizeof *w);
    memset(c->a, 0, nc * r * sizeof *c->a);
    memset(c->E, 0, nd * nc * sizeof *c->E);
    memset(c->used, 0, nd);
    c->sumlog = 0.0;
    c->nu = 0;
    for (size_t t = nd; t < n; t++) {
        if ((t & 255) == 255 && ctx_stopping(c))
            return ENMS_ESTOPPED;
        if (!(F > 0.0) || !isfinite(F))
            return -1;
        double sf = sqrt(F), invF = 1.0 / F;
        if (c->record && !frozen) {
            double *rw = c->rec_wG + t * 2 * r;
            memcpy(rw, w, r * sizeof *rw);
            memcpy(rw + r, G, r * sizeof *rw);
            c->rec_Fm[2 * t] = F;
            c->rec_Fm[2 * t + 1] = m;
        }
        for (size_t col = 0; col < nc; col++) {
            double *a = c->a + col * r;
            if (c->record)
                c->rec_a0[t * nc + col] = a[0];
            double v = c->wdiff[col * n + t] - a[0];
            double g = v * invF;
            c->E[t * nc + col] = v / sf;
            arma_step(a, G, phi, r, g, a[0]);
        }
        c->used[t] = F < DIFFUSE_GAIN;
        if (c->used[t]) {
            c->nu++;
            /* F no longer changes once frozen: its log is computed once. */
            c->sumlog += frozen ? logF : log(F);
        }
        if (frozen)
            continue;
        double cw = w[0];
        double Fn = F + m * cw * cw, mc = m * cw, cf = cw * invF;
        double wmax = chandra_step(w, G, phi, r, cw, cf, mc);
        m = m * F / Fn;
        F = Fn;
        /* Converged: the next increments are below rounding of P. */
        if (fabs(m) * wmax * wmax <= 1e-17 * F) {
            frozen = 1;
            logF = log(F);
            c->rec_tfz = t + 1;
        }
    }
    if (!frozen)
        c->rec_tfz = n;
    c->rec_F = F;
    return 0;
}

/* R's ML objective 0.5 (log(ssq / nu) + sum log F / nu), the negative
 * log-likelihood per observation with sigma2 concentrated out. */
static double ml_eval(struct fit_ctx *c, const double *x)
{
    c->rec_valid = 0;
    c->css_valid = 0;
    ctx_set_params(c, x, c->trans);
    if ((c->arma_only ? stationary_row(c) : stationary_cov(c)) != 0)
        return BAD_VALUE;
    int rc = c->arma_only ? kf_arma(c) : kf_run(c);
    if (rc != 0 || c->nu == 0)
        return BAD_VALUE;
    double ssq = profile_ls(c);
    if (!(ssq > 0.0) || !isfinite(ssq))
        return BAD_VALUE;
    c->ssq = ssq;
    double v = 0.5 * (log(ssq / (double)c->nu) + c->sumlog / (double)c->nu);
    if (!isfinite(v))
        return BAD_VALUE;
    if (c->record && c->arma_only) {
        memcpy(c->rec_x, x, c->narma * sizeof *x);
        c->rec_f = v;
        c->rec_valid = 1;
    }
    return v;
}

/* ---- analytic gradient of the ML objective --------------------------------- */

/* ar_from_raw with its Jacobian: J[j * p + l] = d out_j / d raw_l, carried
 * through the Durbin-Levinson steps by forward differentiation. */
static void ar_from_raw_jac(const double *raw, int p, double *out, double *J)
{
    double work[ARIMA_MAX_P + 1], dwork[ARIMA_MAX_P * ARIMA_MAX_P];
    size_t up = (size_t)p;
    memset(J, 0, up * up * sizeof *J);
    for (int j = 0; j < p; j++) {
        out[j] = tanh(raw[j]);
        J[j * p + j] = 1.0 - out[j] * out[j];
    }
    for (int k = 1; k < p; k++) {
        double a = out[k];
        const double *da = J + k * p;
        for (int j = 0; j < k; j++) {
            work[j] = out[j] - a * out[k - 1 - j];
            for (int l = 0; l < p; l++)
                dwork[j * p + l] =
                    J[j * p + l] - da[l] * out[k - 1 - j] - a * J[(k - 1 - j) * p + l];
        }
        memcpy(out, work, (size_t)k * sizeof *out);
        memcpy(J, dwork, (size_t)k * up * sizeof *J);
    }
}

/* Reverse mode through stationary_row (which must have run at the current
 * coefficients, leaving psi and gamma in c->dw): given qbar = d f / d Q0[0..r-1]
 * (the first row), adds d f / d phi to phibar and d f / d theta to thbar.
 * The (pf + 1)-equation system's adjoint is the transposed system, solved
 * in work (ns * ns + ns doubles). Returns -1 when it is singular. */
static int stationary_row_adj(struct fit_ctx *c, const double *qbar, double *phibar, double *thbar,
                              double *work)
{
    size_t r = c->r, pf = c->pf, ns = pf + 1;
    const double *phi = c->phi, *th = c->theta;
    const double *psi = c->dw, *gam = c->dw + r + 1;
    double *At = work, *lam = work + ns * ns;
    double *gbar = lam + ns, *pbar = gbar + r + 1;
    memset(gbar, 0, 2 * (r + 1) * sizeof *gbar);
    /* Q[j] = sum_(k>=j) phi_k gam(k+1-j) + th_k psi(k-j), Q[0] = gam(0). */
    gbar[0] += qbar[0];
    for (size_t j = 1; j < r; j++) {
        double q = qbar[j];
        if (q == 0.0)
            continue;
        for (size_t k = j; k < r; k++) {
            phibar[k] += q * gam[k + 1 - j];
            gbar[k + 1 - j] += q * phi[k];
            thbar[k] += q * psi[k - j];
            pbar[k - j] += q * th[k];
        }
    }
    /* gam(k) = rhs(k) + sum_i phi_(i-1) gam(k-i) for k > pf, backwards;
     * gbar then holds rhsbar for k > pf. */
    for (size_t k = r; k > pf; k--) {
        double gb = gbar[k];
        for (size_t i = 1; i <= pf; i++) {
            phibar[i - 1] += gb * gam[k - i];
            gbar[k - i] += gb * phi[i - 1];
        }
    }
    /* gam(0..pf) = A^-1 rhs: rhsbar = A^-T gambar, Abar = -rhsbar gam'. */
    memset(At, 0, ns * ns * sizeof *At);
    for (size_t k = 0; k < ns; k++) {
        At[k * ns + k] += 1.0;
        for (size_t i = 1; i <= pf; i++) {
            size_t lag = k > i ? k - i : i - k;
            At[lag * ns + k] -= phi[i - 1];
        }
    }
    memcpy(lam, gbar, ns * sizeof *lam);
    if (solve_dense(At, lam, ns) != 0)
        return -1;
    for (size_t k = 0; k < ns; k++) {
        for (size_t i = 1; i <= pf; i++) {
            size_t lag = k > i ? k - i : i - k;
            phibar[i - 1] += lam[k] * gam[lag];
        }
        gbar[k] = lam[k];
    }
    /* rhs(k) = sum_(j=k..r-1) th_j psi(j-k), k = 0..r. */
    for (size_t k = 0; k <= r; k++) {
        double rb = gbar[k];
        if (rb == 0.0)
            continue;
        for (size_t j = k; j < r; j++) {
            thbar[j] += rb * psi[j - k];
            pbar[j - k] += rb * th[j];
        }
    }
    /* psi(j) = th_j + sum_(i=1..min(j,pf)) phi_(i-1) psi(j-i), backwards. */
    for (size_t j = r + 1; j-- > 0;) {
        double pb = pbar[j];
        if (j < r)
            thbar[j] += pb;
        for (size_t i = 1; i <= j && i <= pf; i++) {
            phibar[i - 1] += pb * psi[j - i];
            pbar[j - i] += pb * phi[i - 1];
        }
    }
    return 0;
}

/* One Chandrasekhar step of kf_arma backwards: from the adjoints of the
 * state after the step (wb, Gb, *Fb, *mb, in place) to those before it,
 * with the state before it (w, G, F, m) as recorded; adds to phibar at the
 * nneed indexes need (the expanded lags the chain rule reads). phi_nz lists
 * phi's nonzeros. Sums run in four lanes (not one chain of dependent adds);
 * ub is scratch (r). */
static void chandra_adj(const double *restrict w, const double *restrict G,
                        const double *restrict phi, size_t r, double F, double m,
                        double *restrict wb, double *restrict Gb, double *Fb, double *mb,
                        double *restrict phibar, double *restrict ub, const size_t *need,
                        size_t nneed, const size_t *phi_nz, size_t nphi_nz)
{
    double cw = w[0], Fn = F + m * cw * cw, mc = m * cw, cf = cw / F;
    double cfl[4] = {0.0, 0.0, 0.0, 0.0}, mcl[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 < r; i += 4)
        for (size_t l = 0; l < 4; l++) {
            size_t k = i + l;
            double u = w[k + 1] + phi[k] * cw;
            double b = wb[k] + Gb[k] * mc;
            cfl[l] -= wb[k] * G[k];
            mcl[l] += Gb[k] * u;
            Gb[k] -= wb[k] * cf;
            ub[k] = b;
        }
    for (; i < r; i++) {
        double u = (i + 1 < r ? w[i + 1] : 0.0) + phi[i] * cw;
        double b = wb[i] + Gb[i] * mc;
        cfl[0] -= wb[i] * G[i];
        mcl[0] += Gb[i] * u;
        Gb[i] -= wb[i] * cf;
        ub[i] = b;
    }
    double cfb = (cfl[0] + cfl[1]) + (cfl[2] + cfl[3]);
    double mcb = (mcl[0] + mcl[1]) + (mcl[2] + mcl[3]);
    double cwb = 0.0;
    for (size_t j = 0; j < nneed; j++)
        phibar[need[j]] += ub[need[j]] * cw;
    for (size_t j = 0; j < nphi_nz; j++)
        cwb += ub[phi_nz[j]] * phi[phi_nz[j]];
    /* m' = m F / Fn, F' = Fn = F + m cw^2. */
    double mbo = *mb, Fnb = *Fb - mbo * m * F / (Fn * Fn);
    double mbn = mbo * F / Fn, Fbn = mbo * m / Fn;
    Fbn += Fnb;
    mbn += Fnb * cw * cw;
    cwb += Fnb * 2.0 * m * cw;
    mbn += mcb * cw;
    cwb += mcb * m;
    cwb += cfb / F;
    Fbn -= cfb * cw / (F * F);
    wb[0] = cwb;
    memcpy(wb + 1, ub, (r - 1) * sizeof *wb);
    *Fb = Fbn;
    *mb = mbn;
}

/* The dense part of arma_step backwards for one column: with ab the
 * adjoint of the new predicted state, adds ab_i g to Gb_i and returns
 * sum ab_i G_i (the adjoint of g), in four lanes. */
static double arma_adj(const double *restrict ab, const double *restrict G, double *restrict Gb,
                       size_t r, double g)
{
    double gl[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= r; i += 4)
        for (size_t l = 0; l < 4; l++) {
            gl[l] += ab[i + l] * G[i + l];
            Gb[i + l] += ab[i + l] * g;
        }
    for (; i < r; i++) {
        gl[0] += ab[i] * G[i];
        Gb[i] += ab[i] * g;
    }
    return (gl[0] + gl[1]) + (gl[2] + gl[3]);
}

/* Gradient of ml_eval over the complete-series filter (kf_arma) by reverse
 * mode: ml_eval runs once, recording the trajectory, then the adjoints go
 * back through the filter, the Chandrasekhar recursions, the stationary
 * first row of Q0, the seasonal products and the Jones transform. The
 * regression coefficients are at their least-squares values, so (envelope
 * theorem) the innovations of y - X b are the only seed of the sum of
 * squares. The freezing of the gain and the terms left out as diffuse are
 * held fixed, as the objective itself holds them at x. Returns 0 with the
 * objective in *fout and g (narma) filled (zero when the objective is
 * BAD_VALUE), or -1 (g untouched) when the workspace cannot be had or the
 * filter is the full one: the caller then differentiates numerically. */
static int ml_grad(struct fit_ctx *c, const double *x, double *g, double *fout)
{
    const struct arima_order *o = &c->o;
    size_t n = c->n, nc = 1 + c->kact, r = c->r, nd = c->nd, ns = c->pf + 1;
    size_t span = n - nd + r + 1;
    size_t wlen = nc * span + 8 * (r + 1) + ns * ns + ns;
    if (!c->arma_only)
        return -1;
    if (!c->rec_a0) {
        if ((double)n * (double)(2 * r + 3 + c->ncols) > 3e7)
            return -1;
        c->rec_a0 = malloc(n * c->ncols * sizeof *c->rec_a0);
        c->rec_wG = malloc(n * 2 * r * sizeof *c->rec_wG);
        c->rec_Fm = malloc(n * 2 * sizeof *c->rec_Fm);
        c->rec_x = malloc((c->narma + 1) * sizeof *c->rec_x);
        if (!c->rec_a0 || !c->rec_wG || !c->rec_Fm || !c->rec_x) {
            free(c->rec_a0);
            free(c->rec_wG);
            free(c->rec_Fm);
            free(c->rec_x);
            c->rec_a0 = c->rec_wG = c->rec_Fm = c->rec_x = NULL;
            return -1;
        }
    }
    if (c->gw_len < wlen) {
        double *nw = realloc(c->gw, wlen * sizeof *nw);
        if (!nw)
            return -1;
        c->gw = nw;
        c->gw_len = wlen;
    }
    /* From now on every evaluation of this context records (a few stores
     * per step), so a gradient at the point just evaluated is one backward
     * pass. */
    c->record = 1;
    double f =
        c->rec_valid && memcmp(c->rec_x, x, c->narma * sizeof *x) == 0 ? c->rec_f : ml_eval(c, x);
    memset(g, 0, c->narma * sizeof *g);
    *fout = f;
    if (f >= BAD_VALUE)
        return 0;

    /* Workspace: per column a window of adjoints of the predicted state
     * that slides down by one each step back (the shift in T), phibar,
     * thbar, wbar, Gbar, ubar, qbar, then stationary_row_adj's. */
    double *abw = c->gw, *phibar = abw + nc * span, *thbar = phibar + (r + 1);
    double *wb = thbar + (r + 1), *Gb = wb + (r + 1), *ub = Gb + (r + 1);
    double *qbar = ub + (r + 1), *swork = qbar + (r + 1);
    memset(c->gw, 0, (nc * span + 6 * (r + 1)) * sizeof *c->gw);
    double Fb = 0.0, mb = 0.0;
    const double *phi = c->phi;
    const double *Gfin = c->M;
    double nu = (double)c->nu, ssq = c->ssq;
    size_t base = span - r; /* window start: abar of the state at step t+1 */
    /* The expanded AR lags the chain rule to par reads (as css_grad). */
    size_t need[(ARIMA_MAX_P + 1) * (ARIMA_MAX_SP + 1)], nneed = 0;
    for (int i = 0; i < o->p; i++)
        need[nneed++] = (size_t)i;
    for (int j = 0; j < o->P; j++) {
        need[nneed++] = (size_t)(j + 1) * (size_t)o->m - 1;
        for (int i = 0; i < o->p; i++)
            need[nneed++] = (size_t)(j + 1) * (size_t)o->m + (size_t)i;
    }

    for (size_t t = n; t-- > nd;) {
        int chandra = t < c->rec_tfz;
        double F = chandra ? c->rec_Fm[2 * t] : c->rec_F;
        const double *G = chandra ? c->rec_wG + t * 2 * r + r : Gfin;
        if (chandra)
            chandra_adj(c->rec_wG + t * 2 * r, G, phi, r, F, c->rec_Fm[2 * t + 1], wb, Gb, &Fb, &mb,
                        phibar, ub, need, nneed, c->phi_nz, c->nphi_nz);
        double sf = sqrt(F), invF = 1.0 / F;
        double e = 0.0;
        if (c->used[t]) {
            Fb += 0.5 / (nu * F);
            const double *E = c->E + t * nc;
            e = E[0];
            for (size_t j = 0; j < c->kact; j++)
                e -= c->beta[j] * E[1 + j];
            e /= ssq;
        }
        for (size_t col = 0; col < nc; col++) {
            double *ab = abw + col * span + base;
            double a0 = c->rec_a0[t * nc + col];
            double v = c->wdiff[col * n + t] - a0, gk = v * invF;
            double Eb = col == 0 ? e : -c->beta[col - 1] * e;
            double s = 0.0, gb = arma_adj(ab, G, Gb, r, gk);
            for (size_t j = 0; j < nneed; j++)
                phibar[need[j]] += ab[need[j]] * a0;
            for (size_t j = 0; j < c->nphi_nz; j++)
                s += ab[c->phi_nz[j]] * phi[c->phi_nz[j]];
            double vb = gb * invF + Eb / sf;
            Fb += -gb * v * invF * invF - 0.5 * Eb * v * invF / sf;
            ab[-1] = s - vb; /* the window slides: abar_(i+1) <- abar_i */
        }
        base--;
    }
    /* Initial state: F = Q00, m = -1 / Q00, G = w = T Q0 Z' (G_i = Q0_(i+1) +
     * phi_i Q00). */
    double q0 = c->q0[0], sphi = 0.0;
    memset(qbar, 0, (r + 1) * sizeof *qbar);
    for (size_t i = 0; i < r; i++) {
        double gt = Gb[i] + wb[i];
        if (i + 1 < r)
            qbar[i + 1] += gt;
        phibar[i] += gt * q0;
        sphi += gt * phi[i];
    }
    qbar[0] += sphi + Fb + mb / (q0 * q0);
    if (stationary_row_adj(c, qbar, phibar, thbar, swork) != 0)
        return -1;

    /* Expanded coefficients to par (as css_grad), then through the Jones
     * transform of the AR blocks. thbar[0] is theta_0 = 1, a constant. */
    grad_expanded_to_par(o, c->par, phibar, thbar + 1, g);
    if (c->trans) {
        double out[ARIMA_MAX_P], J[ARIMA_MAX_P * ARIMA_MAX_P], tmp[ARIMA_MAX_P];
        struct {
            size_t off;
            int k;
        } blocks[2] = {{0, o->p}, {(size_t)(o->p + o->q), o->P}};
        for (int bl = 0; bl < 2; bl++) {
            int k = blocks[bl].k;
            if (k == 0)
                continue;
            ar_from_raw_jac(x + blocks[bl].off, k, out, J);
            for (int l = 0; l < k; l++) {
                double v = 0.0;
                for (int j = 0; j < k; j++)
                    v += g[blocks[bl].off + (size_t)j] * J[j * k + l];
                tmp[l] = v;
            }
            memcpy(g + blocks[bl].off, tmp, (size_t)k * sizeof *tmp);
        }
    }
    return 0;
}

/* ---- optimiser ----------------------------------------------------------- */

typedef double (*objective_fn)(struct fit_ctx *, const double *);

struct opt_problem {
    struct fit_ctx *c;
    objective_fn f;
    double *xw; /* scratch point */
};

static double opt_f(const gsl_vector *x, void *params)
{
    struct opt_problem *pr = params;
    if (pr->c->stopped)
        return BAD_VALUE;
    ctx_stopping(pr->c);
    return pr->f(pr->c, x->data);
}

/* The central-difference gradient of pr->f at x into g. */
static void num_grad(struct opt_problem *pr, const double *x, size_t k, double *g)
{
    memcpy(pr->xw, x, k * sizeof *pr->xw);
    for (size_t i = 0; i < k; i++) {
        double h = 1e-5 * (1.0 + fabs(x[i]));
        pr->xw[i] = x[i] + h;
        double fp = pr->f(pr->c, pr->xw);
        pr->xw[i] = x[i] - h;
        double fm = pr->f(pr->c, pr->xw);
        pr->xw[i] = x[i];
        g[i] = (fp - fm) / (2.0 * h);
    }
}

/* The objective and its gradient at x: exact for CSS (css_grad) and for
 * ML on a complete series (ml_grad, reverse mode through the filter); by
 * central differences for ML with missing values (the full filter), as
 * R's optim differentiates. */
static double opt_value_grad(struct opt_problem *pr, const double *x, size_t k, double *g)
{
    if (pr->f == css_eval)
        return css_grad(pr->c, x, g);
    if (pr->f == ml_eval && pr->c->arma_only) {
        double f;
        if (ml_grad(pr->c, x, g, &f) == 0)
            return f;
    }
    double f = pr->f(pr->c, x);
    num_grad(pr, x, k, g);
    return f;
}

static void opt_df(const gsl_vector *x, void *params, gsl_vector *g)
{
    struct opt_problem *pr = params;
    opt_value_grad(pr, x->data, x->size, g->data);
}

static void opt_fdf(const gsl_vector *x, void *params, double *f, gsl_vector *g)
{
    struct opt_problem *pr = params;
    if (pr->c->stopped) {
        *f = BAD_VALUE;
        gsl_vector_set_zero(g);
        return;
    }
    ctx_stopping(pr->c);
    *f = opt_value_grad(pr, x->data, x->size, g->data);
}

/* Minimises f over x[0..k-1] (in place) with GSL's BFGS2 and a numerical
 * gradient, then polishes with Nelder-Mead if BFGS stopped early on a
 * rough patch. Returns 0, or ENMS_ESTOPPED / ENMS_ENOMEM. */
static int minimise(struct fit_ctx *c, objective_fn f, double *x, size_t k, double *fmin,
                    int *converged)
{
    int rc = 0;
    double *xw = malloc(k * sizeof *xw);
    gsl_vector *v = gsl_vector_alloc(k);
    gsl_multimin_fdfminimizer *s =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, k);
    struct opt_problem pr = {c, f, xw};
    *converged = 0;
    if (!xw || !v || !s) {
        rc = ENMS_ENOMEM;
        goto done;
    }
    gsl_multimin_function_fdf fdf = {opt_f, opt_df, opt_fdf, k, &pr};
    memcpy(v->data, x, k * sizeof *x);
    *fmin = f(c, x);
    if (*fmin >= BAD_VALUE) /* R would stop here too: a start it cannot evaluate */
        goto done;
    /* Stops on a small gradient, or when an iteration no longer lowers the
     * objective by a relative 1e-9 for ML (1e-8 for CSS, as R's optim), or after
     * 100 iterations per round as R's default maxit; a second round
     * restarts BFGS's Hessian approximation once. */
    /* CSS is only a start (or the search's approximation): R's own
     * tolerances suffice there. */
    int is_css = f == css_eval;
    double reltol = is_css ? 1e-8 : 1e-9, gtol = is_css ? 1e-5 : 1e-6;
    for (int round = 0; round < (is_css ? 1 : 2) && !*converged; round++) {
        if (gsl_multimin_fdfminimizer_set(s, &fdf, v, 0.1, 0.1) != GSL_SUCCESS)
            break;
        double fprev = s->f;
        int stalled = 0;
        for (int it = 0; it < 100; it++) {
            if (c->stopped) {
                rc = ENMS_ESTOPPED;
                goto done;
            }
            int st = gsl_multimin_fdfminimizer_iterate(s);
            if (gsl_multimin_test_gradient(s->gradient, gtol) == GSL_SUCCESS) {
                *converged = 1;
                break;
            }
            if (st != GSL_SUCCESS)
                break;
            if (fabs(fprev - s->f) <= reltol * (fabs(s->f) + reltol)) {
                if (++stalled >= 2) {
                    *converged = gsl_multimin_test_gradient(s->gradient, 1e-4) == GSL_SUCCESS;
                    break;
                }
            } else {
                stalled = 0;
            }
            fprev = s->f;
        }
        if (s->f < *fmin) {
            *fmin = s->f;
            memcpy(x, s->x->data, k * sizeof *x);
        }
        memcpy(v->data, x, k * sizeof *x);
    }
    if (c->stopped)
        rc = ENMS_ESTOPPED;
done:
    gsl_multimin_fdfminimizer_free(s);
    gsl_vector_free(v);
    free(xw);
    return rc;
}

/* With many regressors (Fourier terms) the least-squares step costs
 * O(n k^2) per evaluation; above this many the coefficients are instead
 * found by alternating: the ARMA part is fitted to y - X b for fixed b
 * (cheap, one column), then b is re-estimated by GLS at the new ARMA
 * coefficients, until the objective stops falling. Each step lowers the
 * same objective, so the fixed point is the joint optimum. */
#define ALTERNATE_ABOVE 2

/* Minimises objective f (CSS or ML) over the ARMA coefficients x, with the
 * regression coefficients concentrated out; leaves c->beta at the optimum. */
static int fit_stage(struct fit_ctx *c, objective_fn f, double *x, double *value, int *converged)
{
    int rc = 0;
    c->kact = c->nreg;
    ctx_set_response(c, NULL);
    if (c->nreg <= ALTERNATE_ABOVE) {
        if (c->narma > 0)
            return minimise(c, f, x, c->narma, value, converged);
        *value = f(c, x);
        *converged = 1;
        return 0;
    }
    double *b = malloc(c->nreg * sizeof *b);
    if (!b)
        return ENMS_ENOMEM;
    double prev = f(c, x); /* GLS at the start coefficients */
    memcpy(b, c->beta, c->nreg * sizeof *b);
    *value = prev;
    *converged = 1;
    for (int round = 0; round < 20 && prev < BAD_VALUE && c->narma > 0; round++) {
        double v;
        c->kact = 0;
        ctx_set_response(c, b);
        rc = minimise(c, f, x, c->narma, &v, converged);
        c->kact = c->nreg;
        ctx_set_response(c, NULL);
        if (rc != 0)
            break;
        v = f(c, x);
        if (!(v < BAD_VALUE))
            break;
        memcpy(b, c->beta, c->nreg * sizeof *b);
        *value = v;
        if (prev - v <= (f == css_eval ? 1e-8 : 1e-10) * (fabs(v) + 1.0))
            break;
        prev = v;
    }
    /* Leave c->beta and the evaluation state at the final coefficients. */
    if (rc == 0)
        *value = f(c, x);
    free(b);
    return rc;
}

/* ---- fit ---------------------------------------------------------------- */

void arima_free(struct arima_model *model)
{
    if (!model)
        return;
    free(model->coef);
    free(model->phi);
    free(model->theta);
    free(model->delta);
    free(model->a);
    free(model->P);
    free(model->fitted);
    free(model->resid);
    free(model);
}

int arima_prepare(struct arima_model *mdl, char *err, size_t errlen)
{
    int rc = arima_spec_check(&mdl->spec, err, errlen);
    if (rc != 0)
        return rc;
    const struct arima_order *o = &mdl->spec.order;
    size_t pf = (size_t)o->p + (size_t)o->m * (size_t)o->P;
    size_t qf = (size_t)o->q + (size_t)o->m * (size_t)o->Q;
    mdl->narma = (size_t)(o->p + o->q + o->P + o->Q);
    mdl->nreg = arima_nreg(&mdl->spec);
    mdl->r = pf > qf + 1 ? pf : qf + 1;
    mdl->nd = (size_t)o->d + (size_t)o->m * (size_t)o->D;
    mdl->rd = mdl->r + mdl->nd;
    free(mdl->phi);
    free(mdl->theta);
    free(mdl->delta);
    mdl->phi = calloc(mdl->r, sizeof *mdl->phi);
    mdl->theta = calloc(mdl->r, sizeof *mdl->theta);
    mdl->delta = calloc(mdl->nd + 1, sizeof *mdl->delta);
    if (!mdl->phi || !mdl->theta || !mdl->delta)
        return enms_fail(err, errlen, ENMS_ENOMEM, "arima: out of memory");
    expand_arma(o, mdl->coef, mdl->phi, mdl->theta + 1);
    mdl->theta[0] = 1.0;
    expand_delta(o, mdl->delta);
    return 0;
}

static void label_stage(const struct arima_spec *spec, const char *what, char *buf, size_t len)
{
    char lab[128];
    arima_label(spec, lab, sizeof lab);
    snprintf(buf, len, "%s %s", what, lab);
}

/* arima_fit and arima_fit_score: score_only skips the final filter pass of
 * a CSS fit (no state, fitted values or residuals). */
static int fit_impl(const double *y, size_t n, const struct arima_spec *spec,
                    const struct model_hooks *hooks, int score_only, struct arima_model **out,
                    char *err, size_t errlen)
{
    struct fit_ctx c;
    struct arima_model *mdl = NULL;
    double *x = NULL;
    char stage[192];
    int rc = arima_spec_check(spec, err, errlen);
    *out = NULL;
    memset(&c, 0, sizeof c);
    if (rc != 0)
        return rc;
    if (!y || n == 0 || n > ARIMA_MAX_N)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: series length %zu out of range", n);
    size_t nobs = 0;
    for (size_t t = 0; t < n; t++) {
        if (isinf(y[t]))
            return enms_fail(err, errlen, ENMS_EINVAL, "arima: value %zu is infinite", t);
        nobs += !isnan(y[t]);
    }
    if (model_should_stop(hooks))
        return ENMS_ESTOPPED;
    label_stage(spec, "fitting", stage, sizeof stage);
    model_report(hooks, 0.0, stage);

    rc = ctx_init(&c, spec, y, n, hooks);
    if (rc != 0) {
        rc = enms_fail(err, errlen, rc, "arima: out of memory");
        goto fail;
    }
    size_t k = c.narma + c.nreg;
    if (nobs <= c.nd + k + 1) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "arima: %zu observations are too few for %zu coefficients after "
                       "%zu differences",
                       nobs, k, c.nd);
        goto fail;
    }
    x = calloc(c.narma + 1, sizeof *x);
    mdl = calloc(1, sizeof *mdl);
    if (!x || !mdl) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "arima: out of memory");
        goto fail;
    }
    const struct arima_order *o = &spec->order;
    double value = 0.0;
    int converged = 1;

    if (spec->method == ARIMA_CSS || spec->method == ARIMA_CSS_ML) {
        rc = fit_stage(&c, css_eval, x, &value, &converged);
        if (rc != 0)
            goto stopped_or_fail;
        value = css_eval(&c, x);
        if (value >= BAD_VALUE) {
            rc = enms_fail(err, errlen, ENMS_EINVAL,
                           "arima: conditional sum of squares cannot be computed (collinear "
                           "regressors or too few observations)");
            goto fail;
        }
    }
    if (spec->method == ARIMA_CSS_ML) {
        /* R: a non-stationary CSS start is an error, not something to mend. */
        if (ar_to_raw(x, o->p, NULL) != 0 || ar_to_raw(x + o->p + o->q, o->P, NULL) != 0) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "arima: non-stationary AR part from CSS");
            goto fail;
        }
        ma_invert(x + o->p, o->q);
        ma_invert(x + o->p + o->q + o->P, o->Q);
        ar_to_raw(x, o->p, x);
        ar_to_raw(x + o->p + o->q, o->P, x + o->p + o->q);
    }
    if (spec->method != ARIMA_CSS) {
        model_report(hooks, 0.5, stage);
        c.trans = 1;
        c.arma_only = c.complete;
        rc = fit_stage(&c, ml_eval, x, &value, &converged);
        c.arma_only = 0;
        if (rc != 0)
            goto stopped_or_fail;
        /* Back to coefficients, MA made invertible, then evaluated once
         * more (R re-evaluates after maInvert too). */
        ctx_set_params(&c, x, 1);
        memcpy(x, c.par, c.narma * sizeof *x);
        ma_invert(x + o->p, o->q);
        ma_invert(x + o->p + o->q + o->P, o->Q);
        c.trans = 0;
    }
    /* Final pass: the filter at the chosen coefficients, on the full state
     * with the diffuse differencing block as R runs it, gives the state at
     * time n, the residuals and (for ML) the likelihood. */
    c.trans = 0;
    c.kact = c.nreg;
    ctx_set_response(&c, NULL);
    mdl->spec = *spec;
    mdl->n = n;
    mdl->nused = nobs - c.nd;
    mdl->converged = converged;
    mdl->coef = malloc((k + 1) * sizeof *mdl->coef);
    if (!mdl->coef) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "arima: out of memory");
        goto fail;
    }
    memcpy(mdl->coef, x, c.narma * sizeof *x);
    double nu = (double)mdl->nused;
    if (spec->method == ARIMA_CSS) {
        /* R: sigma2 from CSS, the "loglik" from the CSS value; AIC is NA. */
        double sv = css_eval(&c, x);
        memcpy(mdl->coef + c.narma, c.beta, c.nreg * sizeof *x);
        mdl->sigma2 = c.ssq / (double)c.nu;
        mdl->loglik = -0.5 * (2.0 * nu * sv + nu + nu * log(2.0 * M_PI));
        mdl->aic = mdl->aicc = mdl->bic = NAN;
        if (score_only)
            goto scored;
    }
    double mlv = ml_eval(&c, x);
    if (c.stopped) {
        rc = ENMS_ESTOPPED;
        goto stopped_or_fail;
    }
    if (mlv >= BAD_VALUE) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "arima: likelihood cannot be evaluated at the estimates");
        goto fail;
    }
    mdl->a = malloc(c.rd * sizeof *mdl->a);
    mdl->P = malloc(c.rd * c.rd * sizeof *mdl->P);
    mdl->fitted = malloc(n * sizeof *mdl->fitted);
    mdl->resid = malloc(n * sizeof *mdl->resid);
    if (!mdl->a || !mdl->P || !mdl->fitted || !mdl->resid) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "arima: out of memory");
        goto fail;
    }
    if (spec->method == ARIMA_CSS) {
        /* The state for forecasting is filtered with the CSS regression
         * coefficients, as R's arimaSS does. */
        memcpy(c.beta, mdl->coef + c.narma, c.nreg * sizeof *x);
    } else {
        memcpy(mdl->coef + c.narma, c.beta, c.nreg * sizeof *x);
        mdl->sigma2 = c.ssq / nu;
        mdl->loglik = -0.5 * (2.0 * nu * mlv + nu + nu * log(2.0 * M_PI));
        double npar = (double)k + 1.0, nstar = (double)(n - c.nd);
        mdl->aic = -2.0 * mdl->loglik + 2.0 * npar;
        mdl->aicc = nstar - npar - 1.0 > 0.0
                        ? mdl->aic + 2.0 * npar * (npar + 1.0) / (nstar - npar - 1.0)
                        : NAN;
        mdl->bic = mdl->aic + npar * (log(nstar) - 2.0);
    }
    /* State of y - X b: the filter is linear, so combine the columns. */
    for (size_t i = 0; i < c.rd; i++) {
        double v = c.a[i];
        for (size_t j = 0; j < c.nreg; j++)
            v -= c.beta[j] * c.a[(1 + j) * c.rd + i];
        mdl->a[i] = v;
    }
    memcpy(mdl->P, c.P, c.rd * c.rd * sizeof *mdl->P);
    for (size_t t = 0; t < n; t++) {
        const double *e = c.E + t * c.ncols;
        double v = e[0];
        for (size_t j = 0; j < c.nreg; j++)
            v -= c.beta[j] * e[1 + j];
        mdl->resid[t] = v;
        mdl->fitted[t] = y[t] - v;
    }
scored:
    rc = arima_prepare(mdl, err, errlen);
    if (rc != 0)
        goto fail;
    model_report(hooks, 1.0, stage);
    ctx_free(&c);
    free(x);
    *out = mdl;
    return 0;

stopped_or_fail:
    if (rc == ENMS_ESTOPPED)
        enms_fail(err, errlen, rc, "arima: stopped on request");
    else
        enms_fail(err, errlen, rc, "arima: out of memory");
fail:
    ctx_free(&c);
    free(x);
    arima_free(mdl);
    return rc;
}

int arima_fit(const double *y, size_t n, const struct arima_spec *spec,
              const struct model_hooks *hooks, struct arima_model **out, char *err, size_t errlen)
{
    return fit_impl(y, n, spec, hooks, 0, out, err, errlen);
}

int arima_fit_score(const double *y, size_t n, const struct arima_spec *spec,
                    const struct model_hooks *hooks, struct arima_model **out, char *err,
                    size_t errlen)
{
    return fit_impl(y, n, spec, hooks, 1, out, err, errlen);
}

int arima_ml_gradient(const double *y, size_t n, const struct arima_spec *spec, const double *x,
                      double *f, double *g, double *gnum, int *analytic, char *err, size_t errlen)
{
    struct fit_ctx c;
    int rc = arima_spec_check(spec, err, errlen);
    memset(&c, 0, sizeof c);
    *analytic = 0;
    if (rc != 0)
        return rc;
    if (!y || n == 0 || n > ARIMA_MAX_N)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: series length %zu out of range", n);
    rc = ctx_init(&c, spec, y, n, NULL);
    double *xw = malloc((c.narma + 1) * sizeof *xw);
    if (rc != 0 || !xw) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "arima: out of memory");
        goto done;
    }
    c.trans = 1;
    c.arma_only = c.complete;
    c.kact = c.nreg;
    ctx_set_response(&c, NULL);
    struct opt_problem pr = {&c, ml_eval, xw};
    *f = ml_eval(&c, x);
    if (*f >= BAD_VALUE) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "arima: likelihood cannot be evaluated at x");
        goto done;
    }
    double fa;
    *analytic = ml_grad(&c, x, g, &fa) == 0;
    if (!*analytic)
        num_grad(&pr, x, c.narma, g);
    num_grad(&pr, x, c.narma, gnum);
done:
    free(xw);
    ctx_free(&c);
    return rc;
}

/* ---- forecasts ------------------------------------------------------------ */

int arima_forecast(const struct arima_model *mdl, size_t h, double *mean, double *se, char *err,
                   size_t errlen)
{
    if (!mdl || !mdl->a || !mdl->P || !mdl->phi || !mdl->theta)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: model has no state to forecast from");
    if (h == 0 || h > 100000)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima: horizon %zu out of range", h);
    /* Reuse the filter's transition code through a minimal context. */
    struct fit_ctx c;
    memset(&c, 0, sizeof c);
    c.o = mdl->spec.order;
    c.r = mdl->r;
    c.nd = mdl->nd;
    c.rd = mdl->rd;
    size_t rd = c.rd;
    int rc = 0;
    double *a = malloc(rd * sizeof *a), *an = malloc(rd * sizeof *an);
    double *P = malloc(rd * rd * sizeof *P), *Pn = malloc(rd * rd * sizeof *Pn);
    double *xr = mdl->nreg ? malloc(mdl->nreg * h * sizeof *xr) : NULL;
    c.W = malloc(rd * rd * sizeof *c.W);
    c.phi = mdl->phi;
    c.theta = mdl->theta;
    c.delta = mdl->delta;
    c.phi_nz = malloc((c.r + 1) * sizeof *c.phi_nz);
    c.delta_nz = malloc((c.nd + 1) * sizeof *c.delta_nz);
    if (!a || !an || !P || !Pn || !c.W || !c.phi_nz || !c.delta_nz || (mdl->nreg && !xr)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "arima: out of memory");
        goto done;
    }
    for (size_t i = 0; i < c.r; i++)
        if (c.phi[i] != 0.0)
            c.phi_nz[c.nphi_nz++] = i;
    for (size_t k = 0; k < c.nd; k++)
        if (c.delta[k] != 0.0)
            c.delta_nz[c.ndelta_nz++] = k;
    if (xr)
        arima_regressors(&mdl->spec, mdl->nreg, mdl->n, h, xr);
    memcpy(a, mdl->a, rd * sizeof *a);
    memcpy(P, mdl->P, rd * rd * sizeof *P);
    for (size_t s = 0; s < h; s++) {
        t_vec(&c, a, an);
        predict_cov(&c, P, Pn);
        double fc = an[0];
        for (size_t j = 0; j < c.ndelta_nz; j++) {
            size_t k = c.delta_nz[j];
            fc += c.delta[k] * an[c.r + k];
        }
        /* Z Pn Z' */
        double zpz = 0.0;
        for (size_t i = 0; i < rd; i++) {
            double zi = i == 0 ? 1.0 : (i >= c.r ? c.delta[i - c.r] : 0.0);
            if (zi == 0.0)
                continue;
            double row = Pn[i * rd];
            for (size_t j = 0; j < c.ndelta_nz; j++) {
                size_t k = c.delta_nz[j];
                row += c.delta[k] * Pn[i * rd + c.r + k];
            }
            zpz += zi * row;
        }
        for (size_t j = 0; j < mdl->nreg; j++)
            fc += mdl->coef[mdl->narma + j] * xr[j * h + s];
        mean[s] = fc;
        se[s] = sqrt(zpz > 0.0 ? zpz * mdl->sigma2 : 0.0);
        memcpy(a, an, rd * sizeof *a);
        memcpy(P, Pn, rd * rd * sizeof *P);
    }
done:
    free(a);
    free(an);
    free(P);
    free(Pn);
    free(xr);
    free(c.W);
    free(c.phi_nz);
    free(c.delta_nz);
    return rc;
}

void arima_interval(const double *mean, const double *se, size_t h, double level, double *lo,
                    double *hi)
{
    double z = gsl_cdf_ugaussian_Pinv(0.5 + level / 2.0);
    for (size_t s = 0; s < h; s++) {
        lo[s] = mean[s] - z * se[s];
        hi[s] = mean[s] + z * se[s];
    }
}

double arima_min_root(const struct arima_model *mdl)
{
    /* forecast::auto.arima: roots of 1 - phi(B) and 1 + theta(B) with
     * coefficients below 1e-8 trimmed from the end. */
    double minroot = 2.0;
    size_t r = mdl->r;
    double *z = malloc(2 * (r + 1) * sizeof *z), *c = malloc((r + 1) * sizeof *c);
    if (!z || !c) {
        free(z);
        free(c);
        return 0.0;
    }
    const struct arima_order *o = &mdl->spec.order;
    if (o->p + o->P > 0) {
        for (size_t i = 0; i < r; i++)
            c[i] = -mdl->phi[i];
        int deg = poly_roots(c, (int)r, 1e-8, z);
        if (deg < 0)
            minroot = 0.0;
        for (int i = 0; i < deg; i++)
            minroot = fmin(minroot, hypot(z[2 * i], z[2 * i + 1]));
    }
    if (o->q + o->Q > 0 && minroot > 0.0) {
        int deg = poly_roots(mdl->theta + 1, (int)r - 1, 1e-8, z);
        if (deg < 0)
            minroot = 0.0;
        for (int i = 0; i < deg; i++)
            minroot = fmin(minroot, hypot(z[2 * i], z[2 * i + 1]));
    }
    free(z);
    free(c);
    return minroot;
}
