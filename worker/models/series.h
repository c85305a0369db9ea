/* series.h - the input every energy model reads: one machine's hourly
 * readings as parallel arrays, plus the data-quality report (gaps,
 * duplicates, completeness) and the daily aggregation the baseline fits.
 *
 * It owns no database code: the worker fills the arrays from PostgreSQL, the
 * tests from the demo generator. Times are UTC; a machine's local calendar
 * (hour of day, weekday, where a day starts) is a fixed offset from UTC, as
 * in the demo data, so daylight saving time is not modelled. */
#ifndef ENMS_SERIES_H
#define ENMS_SERIES_H

#include <stddef.h>
#include <time.h>

/* Largest series accepted: ten years of hours with room to spare. */
#define SERIES_MAX_HOURS ((size_t)24 * 366 * 12)
/* A day with fewer hours than this is left out of daily fits and counted. */
#define SERIES_MIN_DAY_HOURS 20

/* One machine's hourly readings. The arrays are borrowed, not owned: the
 * caller keeps them alive while a model reads them. ts must be ascending;
 * readings that fall into an hour already seen are duplicates and ignored
 * (the first one wins). NAN marks a missing value. */
struct series {
    size_t n;
    const time_t *ts;          /* start of the hour, UTC */
    const double *energy;      /* kWh in the hour */
    const double *production;  /* units in the hour; NULL when the machine has none */
    const double *temp_c;      /* outdoor temperature; NULL when not measured */
    const unsigned char *skip; /* nonzero: leave the hour out (labelled anomaly,
                                  maintenance); NULL: keep all */
    int utc_offset_s;          /* local time = UTC + offset, |offset| <= 14 h */
};

/* What the data look like, for the job's report ("data completeness"). */
struct series_report {
    size_t readings;       /* n */
    size_t hours_spanned;  /* from the first to the last hour, inclusive */
    size_t hours_present;  /* distinct hours with a finite energy value, not skipped */
    size_t duplicates;     /* readings in an hour already seen */
    size_t gap_hours;      /* hours inside the span with no reading at all */
    size_t missing_energy; /* readings whose energy is NAN */
    size_t skipped;        /* readings left out by series.skip */
    double completeness;   /* hours_present / hours_spanned, 0 when empty */
};

/* Daily aggregation in the machine's local calendar. Only complete days
 * (at least SERIES_MIN_DAY_HOURS usable hours) are kept; their sums are
 * scaled to 24 hours (sum * 24 / hours), which assumes the few missing hours
 * were average ones. Driver values that are missing on a kept day are NAN. */
struct series_days {
    size_t n;             /* complete days kept */
    size_t days_spanned;  /* local days from the first to the last reading */
    size_t days_excluded; /* days_spanned - n */
    time_t *start;        /* UTC time of the local midnight that starts the day */
    int *weekday;         /* local ISO weekday, 0 = Monday .. 6 = Sunday */
    int *hours;           /* usable energy hours, 20..24 */
    double *energy;       /* kWh, scaled to 24 h */
    double *production;   /* units, scaled to 24 h; NAN when < 20 h known or no production */
    double *temp_mean;    /* mean temperature; NAN when < 20 h known or no temperature */
    double *temps;        /* n * 24 hourly temperatures by local hour, NAN when missing */
};

/* Local hour 0..23 and ISO weekday 0 (Monday)..6 (Sunday) of ts. */
int series_local_hour(time_t ts, int utc_offset_s);
int series_local_weekday(time_t ts, int utc_offset_s);

/* Degree-hours of one temperature: max(0, balance - t) and max(0, t - balance). */
double series_heating_dh(double temp_c, double balance_c);
double series_cooling_dh(double temp_c, double balance_c);

/* Degree-days of day i: the mean of its hourly degree-hours, which is the
 * sum over 24 hours divided by 24 when all hours are known. NAN when the
 * day's temperature is missing. heating: nonzero for heating. */
double series_day_degree_days(const struct series_days *d, size_t i, double balance_c, int heating);

/* Checks the shape (n bounded, arrays present, ts ascending, offset sane,
 * no infinite values) and fills *report. Returns 0 or ENMS_EINVAL /
 * ENMS_ETOOBIG with a sentence in err. */
int series_check(const struct series *s, struct series_report *report, char *err, size_t errlen);

/* Aggregates s into complete local days. On success *out owns its arrays;
 * the caller releases them with series_days_free(). On error *out is
 * empty. Returns 0, ENMS_EINVAL, ENMS_ETOOBIG or ENMS_ENOMEM. */
int series_daily(const struct series *s, struct series_days *out, char *err, size_t errlen);

/* Frees the arrays of d and zeroes it; safe on a zeroed or freed value. */
void series_days_free(struct series_days *d);

/* The uniform "too little data" failure: "insufficient data: 12 days, need
 * 30". Returns ENMS_EINVAL. */
int series_insufficient(char *err, size_t errlen, size_t have, size_t need, const char *unit);

#endif
