/* arima_auto.h - automatic ARIMA order selection in the way of Hyndman &
 * Khandakar (2008) and R's forecast::auto.arima: KPSS tests for d, seasonal
 * strength for D, a stepwise search over (p,q,P,Q) by AICc, and for long
 * periods (the weekly cycle of hourly data) a regression on Fourier terms
 * with ARIMA errors, the number of harmonics chosen by AICc.
 *
 * Fitting one given model is arima.h's job; this file only decides which. */
#ifndef ENMS_ARIMA_AUTO_H
#define ENMS_ARIMA_AUTO_H

#include <stddef.h>

#include "arima.h"
#include "model.h"

struct arima_auto_opts {
    int m;                /* seasonal period; 1 = non-seasonal */
    int max_p, max_q;     /* R: 5, 5 */
    int max_P, max_Q;     /* R: 2, 2 */
    int max_d, max_D;     /* R: 2, 1 */
    int start_p, start_q; /* R: 2, 2 */
    int start_P, start_Q; /* R: 1, 1 */
    int allow_drift;      /* R: 1 */
    int allow_mean;       /* R: 1 */
    int approximation;    /* -1: as R (n > 150 or m > 12); 0 off; 1 on */
    int fourier_above;    /* periods above this use Fourier terms (24) */
    int max_fourier_k;    /* largest K tried (14, capped below m/2) */
    double alpha;         /* KPSS level, 0.05 */
};

/* What the search did, for the job's metrics. */
struct arima_auto_report {
    int d, D;          /* differences chosen by the tests */
    int models_fitted; /* candidate fits tried */
    int fourier_k;     /* harmonics chosen, 0 when none */
    double aicc;       /* of the returned model */
};

/* R's defaults for period m. */
void arima_auto_defaults(struct arima_auto_opts *opts, int m);

/* Chooses and fits a model for y[0..n-1] (NAN = missing). Returns 0 with
 * *out a new model the caller frees with arima_free() and *rep filled (rep
 * may be NULL); ENMS_EINVAL when no model can be fitted (err says why),
 * ENMS_ESTOPPED when hooks said stop, ENMS_ENOMEM. Progress is reported
 * per candidate ("fitting ARIMA(1,1,1)(0,1,1)[12]"). */
int arima_auto(const double *y, size_t n, const struct arima_auto_opts *opts,
               const struct model_hooks *hooks, struct arima_model **out,
               struct arima_auto_report *rep, char *err, size_t errlen);

/* KPSS level-stationarity statistic (Kwiatkowski et al. 1992) with the
 * Bartlett-weighted long-run variance over lags lags; NAN values are
 * skipped. Returns NAN when fewer than 2 values remain or the series is
 * constant. */
double arima_kpss_stat(const double *y, size_t n, int lags);

/* Number of first differences the KPSS test at level alpha asks for (R's
 * ndiffs: lags trunc(3 sqrt(n) / 13), at most max_d). */
int arima_ndiffs(const double *y, size_t n, double alpha, int max_d);

/* Strength of seasonality max(0, 1 - var(R) / var(S + R)) from an STL
 * decomposition (Cleveland et al. 1990; Wang, Smith & Hyndman 2006), or
 * NAN when the series is shorter than two periods. */
double arima_seasonal_strength(const double *y, size_t n, int m);

/* Number of seasonal differences: 1 while the strength exceeds 0.64, as R's
 * nsdiffs(test = "seas"), at most max_D. */
int arima_nsdiffs(const double *y, size_t n, int m, int max_D);

#endif
