/* series.c - data-quality report and daily aggregation of one machine's
 * hourly readings (the shape described in series.h). Fitting belongs to the
 * model files; this file only counts, checks and sums. */
#include "series.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../common/error.h"

/* Floor division, so that times before 1970 still land in the right hour
 * and day (C division truncates toward zero). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t local_hour_slot(time_t ts, int off)
{
    return floor_div((int64_t)ts + off, 3600);
}

static int64_t local_day(time_t ts, int off)
{
    return floor_div((int64_t)ts + off, 86400);
}

int series_local_hour(time_t ts, int utc_offset_s)
{
    int64_t slot = local_hour_slot(ts, utc_offset_s);
    return (int)(slot - floor_div(slot, 24) * 24);
}

int series_local_weekday(time_t ts, int utc_offset_s)
{
    /* Day 0 (1970-01-01) was a Thursday, ISO weekday 3 counting Monday as 0. */
    int64_t d = local_day(ts, utc_offset_s) + 3;
    return (int)(d - floor_div(d, 7) * 7);
}

double series_heating_dh(double temp_c, double balance_c)
{
    return temp_c < balance_c ? balance_c - temp_c : 0.0;
}

double series_cooling_dh(double temp_c, double balance_c)
{
    return temp_c > balance_c ? temp_c - balance_c : 0.0;
}

double series_day_degree_days(const struct series_days *d, size_t i, double balance_c, int heating)
{
    if (isnan(d->temp_mean[i]))
        return NAN;
    const double *t = d->temps + i * 24;
    double sum = 0;
    int k = 0;
    for (int h = 0; h < 24; h++) {
        if (isnan(t[h]))
            continue;
        sum += heating ? series_heating_dh(t[h], balance_c) : series_cooling_dh(t[h], balance_c);
        k++;
    }
    return k > 0 ? sum / k : NAN;
}

int series_insufficient(char *err, size_t errlen, size_t have, size_t need, const char *unit)
{
    return enms_fail(err, errlen, ENMS_EINVAL, "insufficient data: %zu %s, need %zu", have, unit,
                     need);
}

static int usable(const struct series *s, size_t i)
{
    return !(s->skip && s->skip[i]) && isfinite(s->energy[i]);
}

int series_check(const struct series *s, struct series_report *report, char *err, size_t errlen)
{
    struct series_report r = {0};
    if (!s || (s->n > 0 && (!s->ts || !s->energy)))
        return enms_fail(err, errlen, ENMS_EINVAL, "series without timestamps or energy");
    if (s->n > SERIES_MAX_HOURS)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "series of %zu readings exceeds %zu", s->n,
                         SERIES_MAX_HOURS);
    if (s->utc_offset_s < -14 * 3600 || s->utc_offset_s > 14 * 3600)
        return enms_fail(err, errlen, ENMS_EINVAL, "UTC offset %d s out of range", s->utc_offset_s);
    r.readings = s->n;
    int64_t prev = 0;
    for (size_t i = 0; i < s->n; i++) {
        /* Infinite values are corrupt, not missing: refuse rather than guess. */
        if (isinf(s->energy[i]) || (s->production && isinf(s->production[i])) ||
            (s->temp_c && isinf(s->temp_c[i])))
            return enms_fail(err, errlen, ENMS_EINVAL, "reading %zu has an infinite value", i);
        int64_t slot = local_hour_slot(s->ts[i], s->utc_offset_s);
        if (i > 0 && slot < prev)
            return enms_fail(err, errlen, ENMS_EINVAL, "readings not in time order at %zu", i);
        if (i > 0 && slot == prev) {
            r.duplicates++;
            continue;
        }
        if (i > 0)
            r.gap_hours += (size_t)(slot - prev - 1);
        prev = slot;
        if (s->skip && s->skip[i])
            r.skipped++;
        else if (isnan(s->energy[i]))
            r.missing_energy++;
        else
            r.hours_present++;
    }
    if (s->n > 0) {
        int64_t first = local_hour_slot(s->ts[0], s->utc_offset_s);
        r.hours_spanned = (size_t)(prev - first + 1);
        r.completeness = (double)r.hours_present / (double)r.hours_spanned;
    }
    if (report)
        *report = r;
    return 0;
}

void series_days_free(struct series_days *d)
{
    if (!d)
        return;
    free(d->start);
    free(d->weekday);
    free(d->hours);
    free(d->energy);
    free(d->production);
    free(d->temp_mean);
    free(d->temps);
    *d = (struct series_days){0};
}

/* Per-day accumulator while scanning the hours of one local day. */
struct day_acc {
    int64_t day;
    int hours, prod_hours, temp_hours;
    double energy, production, temp_sum;
    double temps[24];
};

static void acc_reset(struct day_acc *a, int64_t day)
{
    *a = (struct day_acc){.day = day};
    for (int h = 0; h < 24; h++)
        a->temps[h] = NAN;
}

/* Appends the finished day to d when it is complete. */
static void acc_flush(const struct day_acc *a, const struct series *s, struct series_days *d)
{
    if (a->hours < SERIES_MIN_DAY_HOURS)
        return;
    size_t k = d->n++;
    d->start[k] = (time_t)(a->day * 86400 - s->utc_offset_s);
    int64_t wd = a->day + 3;
    d->weekday[k] = (int)(wd - floor_div(wd, 7) * 7);
    d->hours[k] = a->hours;
    d->energy[k] = a->energy * 24.0 / a->hours;
    d->production[k] = s->production && a->prod_hours >= SERIES_MIN_DAY_HOURS
                           ? a->production * 24.0 / a->prod_hours
                           : NAN;
    d->temp_mean[k] =
        s->temp_c && a->temp_hours >= SERIES_MIN_DAY_HOURS ? a->temp_sum / a->temp_hours : NAN;
    for (int h = 0; h < 24; h++)
        d->temps[k * 24 + (size_t)h] = a->temps[h];
}

int series_daily(const struct series *s, struct series_days *out, char *err, size_t errlen)
{
    struct series_report rep;
    struct series_days d = {0};
    *out = (struct series_days){0};
    int rc = series_check(s, &rep, err, errlen);
    if (rc)
        return rc;
    if (s->n == 0)
        return 0;
    int64_t first = local_day(s->ts[0], s->utc_offset_s);
    int64_t last = local_day(s->ts[s->n - 1], s->utc_offset_s);
    size_t span = (size_t)(last - first + 1);
    d.start = malloc(span * sizeof *d.start);
    d.weekday = malloc(span * sizeof *d.weekday);
    d.hours = malloc(span * sizeof *d.hours);
    d.energy = malloc(span * sizeof *d.energy);
    d.production = malloc(span * sizeof *d.production);
    d.temp_mean = malloc(span * sizeof *d.temp_mean);
    d.temps = malloc(span * 24 * sizeof *d.temps);
    if (!d.start || !d.weekday || !d.hours || !d.energy || !d.production || !d.temp_mean ||
        !d.temps) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory aggregating %zu days", span);
        goto fail;
    }
    struct day_acc a;
    acc_reset(&a, first);
    int64_t prev_slot = INT64_MIN;
    for (size_t i = 0; i < s->n; i++) {
        int64_t slot = local_hour_slot(s->ts[i], s->utc_offset_s);
        if (slot == prev_slot)
            continue; /* duplicate: the first reading of the hour wins */
        prev_slot = slot;
        int64_t day = floor_div(slot, 24);
        if (day != a.day) {
            acc_flush(&a, s, &d);
            acc_reset(&a, day);
        }
        if (!usable(s, i))
            continue;
        int h = (int)(slot - day * 24);
        a.hours++;
        a.energy += s->energy[i];
        if (s->production && !isnan(s->production[i])) {
            a.prod_hours++;
            a.production += s->production[i];
        }
        if (s->temp_c && !isnan(s->temp_c[i])) {
            a.temp_hours++;
            a.temp_sum += s->temp_c[i];
            a.temps[h] = s->temp_c[i];
        }
    }
    acc_flush(&a, s, &d);
    d.days_spanned = span;
    d.days_excluded = span - d.n;
    *out = d;
    return 0;
fail:
    series_days_free(&d);
    return rc;
}
