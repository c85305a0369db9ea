/* readings_window.h - a machine's readings over a time window, as hourly
 * values and as complete local days: what drift checks and the dashboard's
 * energy chart compare a stored model against. */
#ifndef ENMS_COMMON_READINGS_WINDOW_H
#define ENMS_COMMON_READINGS_WINDOW_H

#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>

#include "../worker/models/series.h"

/* One window's hourly readings and their daily aggregation. The arrays hold
 * n values each; production and temp are NaN where missing. */
struct readings_window {
    size_t n;
    time_t *ts;
    double *energy, *production, *temp;
    unsigned char *skip;
    int has_production, has_temp;
    struct series_days days;
};

/* Loads [from, to) of machine as hourly sums (15-minute readings add up)
 * and aggregates complete local days (utc_offset_s). With skip_labels the
 * hours of labelled anomalies are marked skipped (left out of the days):
 * a reference window keeps only what the model learnt as normal. On
 * success the caller frees w with readings_window_free(). ENMS_OK,
 * ENMS_EDB or ENMS_ENOMEM. */
int readings_window_load(PGconn *conn, const char *machine_id, time_t from, time_t to,
                         int utc_offset_s, int skip_labels, struct readings_window *w, char *err,
                         size_t errlen);

/* Frees what w owns and zeroes it. Safe on a zeroed window. */
void readings_window_free(struct readings_window *w);

/* The hourly readings of w as a series (borrowing w's arrays). */
void readings_window_series(const struct readings_window *w, int utc_offset_s, struct series *s);

#endif
