/* arima.h - seasonal ARIMA(p,d,q)(P,D,Q)m with optional mean, drift and
 * Fourier regressors: exact Gaussian likelihood by Kalman filter, CSS and
 * CSS-ML fitting as R's stats::arima does, forecasts with intervals, and the
 * JSON artifact. Automatic order selection lives in arima_auto.h.
 *
 * Everything here is pure computation over arrays: no I/O, no global state.
 * A fitted model is a struct arima_model owned by the caller, who frees it
 * with arima_free(). */
#ifndef ENMS_ARIMA_H
#define ENMS_ARIMA_H

#include <stddef.h>

#include "model.h"

struct cJSON;

/* Hard limits that keep state sizes bounded whatever the input. */
#define ARIMA_MAX_P       20   /* p, q */
#define ARIMA_MAX_SP      4    /* P, Q */
#define ARIMA_MAX_D       3    /* d; D is at most 2 */
#define ARIMA_MAX_PERIOD  1000 /* m of a seasonal ARMA part */
#define ARIMA_MAX_STATE   512  /* r + d + m*D: the Kalman state dimension */
#define ARIMA_MAX_FOURIER 100  /* harmonics */
#define ARIMA_MAX_N       10000000

enum arima_method {
    ARIMA_CSS_ML = 0, /* R's default: CSS estimates as the start, then ML */
    ARIMA_ML = 1,     /* ML from zero AR/MA coefficients */
    ARIMA_CSS = 2,    /* conditional sum of squares only */
};

struct arima_order {
    int p, d, q; /* non-seasonal orders */
    int P, D, Q; /* seasonal orders */
    int m;       /* seasonal period; 1 (and P = D = Q = 0) when none */
};

struct arima_spec {
    struct arima_order order;
    int include_mean;   /* intercept; honoured only when d + D == 0 (as R) */
    int include_drift;  /* linear trend 1..n; honoured only when d + D <= 1 */
    int fourier_k;      /* harmonics of fourier_period as regressors, 0 = none */
    int fourier_period; /* period of the Fourier terms (e.g. 168) */
    enum arima_method method;
};

struct arima_model {
    struct arima_spec spec;
    size_t n;     /* length of the training series (time index of the last point) */
    size_t nused; /* observations in the likelihood: non-missing minus d + m*D */
    size_t narma; /* p + q + P + Q */
    size_t nreg;  /* regression coefficients: mean|drift, then sin/cos pairs */
    /* ar[1..p], ma[1..q], sar[1..P], sma[1..Q], then the regression
     * coefficients; narma + nreg values. */
    double *coef;
    double sigma2;         /* innovation variance (ML estimate; CSS: ssq / used) */
    double loglik;         /* Gaussian log-likelihood as R reports it */
    double aic, aicc, bic; /* NAN for CSS fits, as R */
    int converged;         /* the optimiser reached its gradient tolerance */

    /* State-space form (Harvey's, with the differencing in the state, as
     * R's makeARIMA): derived from spec and coef by arima_prepare(). */
    size_t r;      /* max(p + mP, q + mQ + 1) */
    size_t nd;     /* d + m*D */
    size_t rd;     /* r + nd */
    double *phi;   /* r expanded AR coefficients (zero padded) */
    double *theta; /* r: 1, then the expanded MA coefficients */
    double *delta; /* nd coefficients of the differencing polynomial */

    /* Filtered state at time n of the series minus the regression, and its
     * covariance (rd x rd, row-major, in units of sigma2): what forecasts
     * start from. */
    double *a;
    double *P;

    /* In-sample one-step results, length n, or NULL (a loaded artifact has
     * none): fitted[t] = y[t] - resid[t]; resid are the standardised
     * innovations as R's residuals.Arima (NAN where y is missing). */
    double *fitted;
    double *resid;
};

/* Number of coefficients (AR/MA plus regression) the spec implies. */
size_t arima_ncoef(const struct arima_spec *spec);

/* Writes "ARIMA(1,1,1)(0,1,1)[12] with drift" (truncated to len). */
void arima_label(const struct arima_spec *spec, char *buf, size_t len);

/* Checks orders and regressor settings against the bounds above. */
int arima_spec_check(const struct arima_spec *spec, char *err, size_t errlen);

/* Fits spec to y[0..n-1] (NAN = missing). On success returns 0 and sets
 * *out to a new model the caller frees with arima_free(); on error returns a
 * negative enms_err (ENMS_EINVAL for bad input or a model R would reject,
 * such as a non-stationary AR part from CSS; ENMS_ESTOPPED when hooks said
 * stop; ENMS_ENOMEM) with *out NULL and err filled. hooks may be NULL. */
int arima_fit(const double *y, size_t n, const struct arima_spec *spec,
              const struct model_hooks *hooks, struct arima_model **out, char *err, size_t errlen);

/* Internal, for the order search (arima_auto.c): as arima_fit, but a CSS
 * fit (spec->method ARIMA_CSS) stops at the coefficients and sigma2: the
 * model's a, P, fitted and resid are NULL, so it cannot forecast or be
 * saved. Other methods behave exactly as arima_fit. */
int arima_fit_score(const double *y, size_t n, const struct arima_spec *spec,
                    const struct model_hooks *hooks, struct arima_model **out, char *err,
                    size_t errlen);

/* Internal, for tests: the ML objective f of a CSS-ML fit (AR blocks
 * Jones-transformed, regression profiled out) at x (p + q + P + Q values),
 * its gradient g as the optimiser gets it and gnum by central differences
 * (caller-owned arrays). *analytic says whether g came from the reverse-mode
 * derivative of the filter (complete series) rather than differences.
 * Returns 0, or ENMS_EINVAL (x cannot be evaluated) / ENMS_ENOMEM. */
int arima_ml_gradient(const double *y, size_t n, const struct arima_spec *spec, const double *x,
                      double *f, double *g, double *gnum, int *analytic, char *err, size_t errlen);

/* Frees a model and everything it owns; NULL is fine. */
void arima_free(struct arima_model *model);

/* Rebuilds phi, theta and delta from model->spec and model->coef (used by
 * the artifact loader). Returns 0 or ENMS_EINVAL / ENMS_ENOMEM. */
int arima_prepare(struct arima_model *model, char *err, size_t errlen);

/* Point forecasts mean[0..h-1] and their standard errors se[0..h-1] for
 * the h steps after the training series (caller-owned arrays), from the
 * state space as R's predict.Arima. */
int arima_forecast(const struct arima_model *model, size_t h, double *mean, double *se, char *err,
                   size_t errlen);

/* Normal prediction interval at level (0.8, 0.95) from mean and se. */
void arima_interval(const double *mean, const double *se, size_t h, double level, double *lo,
                    double *hi);

/* Smallest modulus of the roots of the expanded AR and MA polynomials
 * (2 when there are none), as forecast::auto.arima checks them. */
double arima_min_root(const struct arima_model *model);

/* Artifact (arima_json.c). arima_to_json returns a new cJSON object the
 * caller frees with cJSON_Delete, or NULL with err filled. arima_from_json
 * validates everything (bounded sizes, finite numbers, consistent orders)
 * and returns 0 with *out owned by the caller (arima_free), or ENMS_EINVAL
 * with a message. arima_from_json_text parses len bytes first. */
struct cJSON *arima_to_json(const struct arima_model *model, char *err, size_t errlen);
int arima_from_json(const struct cJSON *obj, struct arima_model **out, char *err, size_t errlen);
int arima_from_json_text(const char *text, size_t len, struct arima_model **out, char *err,
                         size_t errlen);

/* Internal: regression columns of spec for times t0+1 .. t0+n, written
 * column-major into x (nreg * n values). Shared by arima.c and
 * arima_auto.c. */
void arima_regressors(const struct arima_spec *spec, size_t nreg, size_t t0, size_t n, double *x);

/* Internal: number of regression columns spec implies. */
size_t arima_nreg(const struct arima_spec *spec);

#endif
