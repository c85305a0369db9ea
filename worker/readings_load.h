/* readings_load.h - fetching one machine's hourly readings from PostgreSQL
 * into the arrays a struct series (worker/models/series.h) borrows.
 *
 * The rows come through a server-side cursor in binary format, a chunk per
 * round trip, so a year of readings is a handful of round trips, no text is
 * parsed, and progress can be reported as chunks arrive. */
#ifndef ENMS_WORKER_READINGS_LOAD_H
#define ENMS_WORKER_READINGS_LOAD_H

#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>

#include "models/model.h"
#include "models/series.h"

/* Owned storage behind a struct series. */
struct readings {
    size_t n;
    time_t *ts;
    double *energy;
    double *production; /* NAN where the row had no production */
    double *temp_c;     /* NAN where the row had no temperature */
    size_t with_production;
    size_t with_temp;
};

/* Loads the readings of machine_id with from <= ts < to, in time order,
 * at most max_rows (ENMS_ETOOBIG beyond). On success *out owns arrays the
 * caller frees with readings_free(). The connection must not be inside a
 * transaction (the cursor gets one of its own). hooks may be NULL. */
int readings_load(PGconn *conn, const char *machine_id, time_t from, time_t to, size_t max_rows,
                  const struct model_hooks *hooks, struct readings *out, char *err, size_t errlen);

/* Points s at r's arrays (production/temp_c NULL when no row had any). */
void readings_as_series(const struct readings *r, int utc_offset_s, struct series *s);

void readings_free(struct readings *r);

#endif
