/* arima_filter.c - a stored ARIMA model carried forward over new
 * observations (arima_filter.h). */
#include "arima_filter.h"
#include "../../common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void arima_filter_free(struct arima_filter *k)
{
    free(k->a);
    free(k->P);
    free(k->T);
    free(k->an);
    free(k->Pn);
    free(k->W);
    free(k->M);
    free(k->x);
    memset(k, 0, sizeof *k);
}

int arima_filter_init(struct arima_filter *k, const struct arima_model *m, char *err, size_t errlen)
{
    size_t rd = m->rd, r = m->r;
    memset(k, 0, sizeof *k);
    if (!m->a || !m->P || !m->phi || !m->theta || rd == 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "arima model has no state to filter");
    k->m = m;
    k->r = r;
    k->rd = rd;
    k->n = m->n;
    k->a = malloc(rd * sizeof *k->a);
    k->an = malloc(rd * sizeof *k->an);
    k->M = malloc(rd * sizeof *k->M);
    k->P = malloc(rd * rd * sizeof *k->P);
    k->Pn = malloc(rd * rd * sizeof *k->Pn);
    k->W = malloc(rd * rd * sizeof *k->W);
    k->T = calloc(rd * rd, sizeof *k->T);
    k->x = malloc((m->nreg ? m->nreg : 1) * sizeof *k->x);
    if (!k->a || !k->an || !k->M || !k->P || !k->Pn || !k->W || !k->T || !k->x) {
        arima_filter_free(k);
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for the arima state");
    }
    memcpy(k->a, m->a, rd * sizeof *k->a);
    memcpy(k->P, m->P, rd * rd * sizeof *k->P);
    for (size_t i = 0; i < r; i++) {
        k->T[i * rd] = m->phi[i];
        if (i + 1 < r)
            k->T[i * rd + i + 1] = 1.0;
    }
    if (m->nd > 0) {
        k->T[r * rd] = 1.0;
        for (size_t j = 0; j < m->nd; j++)
            k->T[r * rd + r + j] = m->delta[j];
        for (size_t i = r + 1; i < rd; i++)
            k->T[i * rd + i - 1] = 1.0;
    }
    return ENMS_OK;
}

/* Takes in the observation y (NAN: missing) at time index n + 1. */
void arima_filter_step(struct arima_filter *k, double y)
{
    const struct arima_model *m = k->m;
    size_t rd = k->rd, r = k->r;
    for (size_t i = 0; i < rd; i++) {
        double v = 0;
        for (size_t j = 0; j < rd; j++)
            v += k->T[i * rd + j] * k->a[j];
        k->an[i] = v;
    }
    for (size_t i = 0; i < rd; i++) /* W = T P */
        for (size_t j = 0; j < rd; j++) {
            double v = 0;
            for (size_t l = 0; l < rd; l++)
                v += k->T[i * rd + l] * k->P[l * rd + j];
            k->W[i * rd + j] = v;
        }
    for (size_t i = 0; i < rd; i++) /* Pn = W T' + R R' */
        for (size_t j = 0; j < rd; j++) {
            double v = 0;
            for (size_t l = 0; l < rd; l++)
                v += k->W[i * rd + l] * k->T[j * rd + l];
            if (i < r && j < r)
                v += m->theta[i] * m->theta[j];
            k->Pn[i * rd + j] = v;
        }
    double yr = y;
    if (isfinite(y) && m->nreg) {
        arima_regressors(&m->spec, m->nreg, k->n, 1, k->x);
        for (size_t j = 0; j < m->nreg; j++)
            yr -= m->coef[m->narma + j] * k->x[j];
    }
    k->n++;
    if (!isfinite(yr)) {
        memcpy(k->a, k->an, rd * sizeof *k->a);
        memcpy(k->P, k->Pn, rd * rd * sizeof *k->P);
        return;
    }
    /* Z = (1, 0.., 0, delta): M = Pn Z', F = Z M. */
    for (size_t i = 0; i < rd; i++) {
        double v = k->Pn[i * rd];
        for (size_t j = 0; j < m->nd; j++)
            v += m->delta[j] * k->Pn[i * rd + r + j];
        k->M[i] = v;
    }
    double F = k->M[0], pred = k->an[0];
    for (size_t j = 0; j < m->nd; j++) {
        F += m->delta[j] * k->M[r + j];
        pred += m->delta[j] * k->an[r + j];
    }
    if (!(F > 0) || !isfinite(F)) {
        memcpy(k->a, k->an, rd * sizeof *k->a);
        memcpy(k->P, k->Pn, rd * rd * sizeof *k->P);
        return;
    }
    double g = (yr - pred) / F;
    for (size_t i = 0; i < rd; i++)
        k->a[i] = k->an[i] + k->M[i] * g;
    for (size_t i = 0; i < rd; i++)
        for (size_t j = 0; j < rd; j++)
            k->P[i * rd + j] = k->Pn[i * rd + j] - k->M[i] * k->M[j] / F;
}

int arima_filter_forecast(const struct arima_filter *k, size_t h, double *mean, double *se,
                          char *err, size_t errlen)
{
    /* arima_forecast() reads the state from the model: lend it ours. */
    struct arima_model at = *k->m;
    at.a = k->a;
    at.P = k->P;
    at.n = k->n;
    return arima_forecast(&at, h, mean, se, err, errlen);
}
