/* arima_filter.h - carrying a stored ARIMA model forward over new
 * observations without refitting: the Kalman filter's predict and update
 * with the model's fixed coefficients, then forecasts from the new state.
 * Evaluation (rolling-origin forecasts) and the dashboard's energy chart
 * (forecast from the newest reading) use it. The transition and selection
 * are those of arima.c's state space (Harvey's form with the differencing
 * in the state). */
#ifndef ENMS_MODELS_ARIMA_FILTER_H
#define ENMS_MODELS_ARIMA_FILTER_H

#include <stddef.h>

#include "arima.h"

/* The state: borrowed model m (must outlive the filter), state a and
 * covariance P at time index n, and scratch. */
struct arima_filter {
    const struct arima_model *m;
    size_t r, rd;
    size_t n; /* time index of the state (observations taken in) */
    double *a, *P, *T, *an, *Pn, *W, *M, *x;
};

/* Starts from the model's stored state (at index m->n). ENMS_OK, ENMS_EINVAL
 * (the model has no state, e.g. not prepared) or ENMS_ENOMEM. Free with
 * arima_filter_free(). */
int arima_filter_init(struct arima_filter *k, const struct arima_model *m, char *err,
                      size_t errlen);

/* Takes in the next observation y (NAN: missing, only the predict step). */
void arima_filter_step(struct arima_filter *k, double y);

/* Forecasts h steps from the current state into mean and se (h values
 * each), as arima_forecast() does from the training state. */
int arima_filter_forecast(const struct arima_filter *k, size_t h, double *mean, double *se,
                          char *err, size_t errlen);

/* Frees what k owns and zeroes it. Safe on a zeroed filter. */
void arima_filter_free(struct arima_filter *k);

#endif
