/* demo_data.c - the demo machines' true parameters and the deterministic
 * generator of their readings, anomalies and truth (see demo_data.h).
 *
 * Pure computation: no I/O, no database, no global mutable state. Loading
 * the result is seed.c's job; the model is documented in docs/demo-data.md,
 * and a change here that alters the output must bump DEMO_GENERATOR_VERSION
 * and the numbers there. */
#include "demo_data.h"
#include "../common/error.h"
#include "../common/rng.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bits [a, b) set: the local hours a..b-1 of a production schedule. */
#define HOURS(a, b) ((uint32_t)((((uint64_t)1 << (b)) - 1) & ~(((uint64_t)1 << (a)) - 1)))

/* Schedules, Monday..Sunday. */
#define TWO_SHIFTS                                                                                 \
    {                                                                                              \
        HOURS(6, 22), HOURS(6, 22), HOURS(6, 22), HOURS(6, 22), HOURS(6, 22), HOURS(6, 14), 0      \
    }
#define ROUND_THE_CLOCK_WEEKDAYS                                                                   \
    {                                                                                              \
        HOURS(0, 24), HOURS(0, 24), HOURS(0, 24), HOURS(0, 24), HOURS(0, 24), 0, 0                 \
    }

/* The longest window demo_generate_clean() accepts: ten years and a bit,
 * the same bound as `enmsctl seed --days`. */
#define DEMO_MAX_HOURS ((size_t)3660 * 24)

/* Clean hours kept on both sides of an anomaly, and between two of them, so
 * that each is judged against normal data (a stuck meter repeats the hour
 * before it, which must itself be normal). */
#define ANOMALY_MARGIN_H 24

const struct demo_site demo_sites[DEMO_SITE_COUNT] = {
    /* Continental US Midwest: cold winters, warm humid summers. */
    {"Plant A, Columbus OH (US)", -5, 11.5, 12.5, 5.5, 0.985, 0.55},
    /* US South-East: mild winters, hot summers. */
    {"Plant B, Atlanta GA (US)", -5, 17.5, 9.5, 5.5, 0.985, 0.55},
    /* Southern Germany: temperate, cooler than either US plant. */
    {"Plant EU, Stuttgart (DE)", 1, 10.0, 9.5, 5.0, 0.985, 0.50},
    /* Central Sweden: long cold winters, short mild summers. */
    {"Plant EU North, Stockholm (SE)", 1, 7.5, 10.5, 4.5, 0.985, 0.55},
};

/* The truth. Magnitudes are plausible hourly kWh for machines of the rated
 * power; the base load sits at least eight stationary noise deviations above
 * zero, so the max(0, .) clamp never bites and the model stays exactly
 * linear. Temperature terms by type: HVAC heats and cools, the boiler only
 * heats, compressors and the molding machine's chiller work harder in hot
 * air, the conveyor is driven by production alone. */
const struct demo_machine demo_machines[DEMO_MACHINE_COUNT] = {
    {
        .id = "c0000000-0000-0000-0000-000000000001",
        .name = "Compressor-1",
        .type = "compressor",
        .site = 0,
        .rated_power_kw = 110.0,
        .base_kwh = 28.0,
        /* Pressure set point raised for the shifts, ramped at 05 and 22. */
        .hour_kwh = {0, 0, 0, 0, 0, 3, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 2, 0},
        .weekday_kwh = {4, 4, 4, 4, 4, 2, 0},
        .has_production = 1,
        .kwh_per_unit = 0.90,
        .units_per_hour = 40.0,
        .day_cv = 0.12,
        .hour_cv = 0.10,
        .downtime_p = 0.03,
        .shift_hours = TWO_SHIFTS,
        .heat_kwh_per_dh = 0.0,
        .heat_balance_c = NAN,
        .cool_kwh_per_dh = 0.50,
        .cool_balance_c = 20.0,
        .noise_phi = 0.60,
        .noise_sigma_kwh = 2.0,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000002",
        .name = "HVAC-Main",
        .type = "hvac",
        .site = 0,
        .rated_power_kw = 180.0,
        .base_kwh = 35.0,
        /* Occupied 06-19 with a morning pre-conditioning peak at 05. */
        .hour_kwh = {0,  0,  0,  0,  0,  30, 22, 22, 22, 22, 22, 22,
                     22, 22, 22, 22, 22, 22, 22, 10, 0,  0,  0,  0},
        .weekday_kwh = {8, 8, 8, 8, 8, 3, 0},
        .has_production = 0,
        .heat_kwh_per_dh = 1.8,
        .heat_balance_c = 15.0,
        .cool_kwh_per_dh = 3.2,
        .cool_balance_c = 21.0,
        .noise_phi = 0.70,
        .noise_sigma_kwh = 2.5,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000003",
        .name = "Conveyor-A",
        .type = "conveyor",
        .site = 0,
        .rated_power_kw = 45.0,
        .base_kwh = 5.0,
        /* Belts idle-run through the shifts whether loaded or not. */
        .hour_kwh = {0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 0},
        .weekday_kwh = {0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0},
        .has_production = 1,
        .kwh_per_unit = 0.12,
        .units_per_hour = 180.0,
        .day_cv = 0.12,
        .hour_cv = 0.10,
        .downtime_p = 0.04,
        .shift_hours = TWO_SHIFTS,
        .heat_kwh_per_dh = 0.0,
        .heat_balance_c = NAN,
        .cool_kwh_per_dh = 0.0,
        .cool_balance_c = NAN,
        .noise_phi = 0.50,
        .noise_sigma_kwh = 0.5,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000004",
        .name = "Hydraulic-Pump-1",
        .type = "pump",
        .site = 1,
        .rated_power_kw = 75.0,
        .base_kwh = 12.0,
        /* Day-time maintenance and tool changes add a little. */
        .hour_kwh = {0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0},
        .weekday_kwh = {10, 10, 10, 10, 10, 1, 0},
        .has_production = 1,
        .kwh_per_unit = 0.45,
        .units_per_hour = 60.0,
        .day_cv = 0.10,
        .hour_cv = 0.12,
        .downtime_p = 0.03,
        .shift_hours = ROUND_THE_CLOCK_WEEKDAYS,
        .heat_kwh_per_dh = 0.0,
        .heat_balance_c = NAN,
        /* Oil cooler fans. */
        .cool_kwh_per_dh = 0.30,
        .cool_balance_c = 22.0,
        .noise_phi = 0.60,
        .noise_sigma_kwh = 1.0,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000005",
        .name = "Injection-Molding-1",
        .type = "injection_molding",
        .site = 1,
        .rated_power_kw = 160.0,
        .base_kwh = 24.0,
        .hour_kwh = {0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0},
        /* Barrel heaters held at temperature while the plant works. */
        .weekday_kwh = {12, 12, 12, 12, 12, 8, 0},
        .has_production = 1,
        .kwh_per_unit = 0.09,
        .units_per_hour = 650.0,
        .day_cv = 0.10,
        .hour_cv = 0.08,
        .downtime_p = 0.05,
        .shift_hours = {HOURS(0, 24), HOURS(0, 24), HOURS(0, 24), HOURS(0, 24), HOURS(0, 24),
                        HOURS(6, 18), 0},
        .heat_kwh_per_dh = 0.0,
        .heat_balance_c = NAN,
        /* Mould chiller. */
        .cool_kwh_per_dh = 0.6,
        .cool_balance_c = 20.0,
        .noise_phi = 0.65,
        .noise_sigma_kwh = 2.0,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000006",
        .name = "Compressor-EU-1",
        .type = "compressor",
        .site = 2,
        .rated_power_kw = 90.0,
        .base_kwh = 22.0,
        .hour_kwh = {0, 0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 2, 0},
        .weekday_kwh = {3, 3, 3, 3, 3, 1, 0},
        .has_production = 1,
        .kwh_per_unit = 0.75,
        .units_per_hour = 35.0,
        .day_cv = 0.12,
        .hour_cv = 0.10,
        .downtime_p = 0.03,
        .shift_hours = {HOURS(6, 22), HOURS(6, 22), HOURS(6, 22), HOURS(6, 22), HOURS(6, 22), 0, 0},
        .heat_kwh_per_dh = 0.0,
        .heat_balance_c = NAN,
        /* Refrigeration dryer and compressor-room ventilation, which work
         * harder from 14 degC intake air on. Before generator version 2 this
         * was 0.50 @ 18 degC: Stuttgart summers barely pass 18 degC, and
         * that term was not identifiable to 5 % from a year of data by any
         * estimator (docs/demo-data.md, "Version history"). */
        .cool_kwh_per_dh = 0.80,
        .cool_balance_c = 14.0,
        .noise_phi = 0.60,
        .noise_sigma_kwh = 1.8,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000007",
        .name = "HVAC-EU-North",
        .type = "hvac",
        .site = 3,
        .rated_power_kw = 150.0,
        .base_kwh = 30.0,
        .hour_kwh = {0,  0,  0,  0,  0,  0,  26, 18, 18, 18, 18, 18,
                     18, 18, 18, 18, 18, 18, 8,  0,  0,  0,  0,  0},
        .weekday_kwh = {6, 6, 6, 6, 6, 2, 0},
        .has_production = 0,
        .heat_kwh_per_dh = 2.4,
        .heat_balance_c = 16.0,
        .cool_kwh_per_dh = 2.0,
        .cool_balance_c = 18.0,
        .noise_phi = 0.75,
        .noise_sigma_kwh = 2.2,
    },
    {
        .id = "c0000000-0000-0000-0000-000000000008",
        .name = "Boiler-1",
        .type = "boiler",
        .site = 0,
        .rated_power_kw = 400.0,
        .base_kwh = 25.0,
        /* Hot water for the day shift and offices. */
        .hour_kwh = {0,  0,  0,  0,  0,  12, 12, 12, 12, 12, 12, 12,
                     12, 12, 12, 12, 12, 12, 12, 12, 12, 0,  0,  0},
        .weekday_kwh = {5, 5, 5, 5, 5, 2, 0},
        .has_production = 0,
        .heat_kwh_per_dh = 6.5,
        .heat_balance_c = 17.0,
        .cool_kwh_per_dh = 0.0,
        .cool_balance_c = NAN,
        .noise_phi = 0.70,
        .noise_sigma_kwh = 2.0,
    },
};

/* ---- random numbers ---------------------------------------------------- */

/* Independent streams, so that e.g. changing the anomaly plan does not move
 * the noise. The weather stream is keyed by site, the others by machine. */
enum rng_stream { STREAM_WEATHER = 1, STREAM_PRODUCTION, STREAM_NOISE, STREAM_ANOMALY };

/* The stream key (stream << 8 | index) is XORed into a hash of the seed and
 * the result expanded by splitmix64 into xoshiro's 256-bit state, as its
 * authors recommend; splitmix64 never yields an all-zero state here. */
static void rng_init(struct rng *r, uint64_t seed, enum rng_stream stream, unsigned index)
{
    uint64_t x = seed;
    uint64_t key = rng_splitmix64(&x) ^ (((uint64_t)stream << 8) | index);
    rng_seed(r, key);
}

/* Standard normal approximated by the Irwin-Hall sum of twelve uniforms:
 * mean 0, variance exactly 1, tails cut at +-6. Chosen over Box-Muller
 * because it needs no log or cos, whose last bit differs between C
 * libraries, and the cut tails do not matter for demo noise. */
static double rng_normal(struct rng *r)
{
    double sum = 0.0;
    for (int i = 0; i < 12; i++)
        sum += rng_uniform(r);
    return sum - 6.0;
}

/* ---- deterministic arithmetic helpers ---------------------------------- */

/* cos(2 pi u) from a fixed Taylor polynomial after reducing u to
 * [-1/2, 1/2): error below 1e-13, and the same bits on every platform. */
static double cos_turns(double u)
{
    const double two_pi = 6.283185307179586476925286766559;
    double x = two_pi * (u - floor(u + 0.5));
    double x2 = x * x;
    double r = 1.0;
    for (int k = 13; k >= 1; k--)
        r = 1.0 - x2 / (double)((2 * k) * (2 * k - 1)) * r;
    return r;
}

/* Nearest multiple of 1/scale: the stored resolution. Values are rounded in
 * memory so that what PostgreSQL stores (printed with that many decimals) is
 * bit-for-bit what the unit tests checked. */
static double round_to(double x, double scale)
{
    return floor(x * scale + 0.5) / scale;
}

#define ENERGY_SCALE 1e4 /* 0.1 Wh */
#define TEMP_SCALE   1e2 /* 0.01 degC */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t local_seconds(const struct demo_machine *m, time_t ts)
{
    return (int64_t)ts + (int64_t)demo_sites[m->site].utc_offset_h * 3600;
}

int demo_local_hour(const struct demo_machine *m, time_t ts)
{
    int64_t local = local_seconds(m, ts);
    int64_t day = floor_div(local, 86400);
    return (int)((local - day * 86400) / 3600);
}

int demo_local_weekday(const struct demo_machine *m, time_t ts)
{
    /* 1970-01-01 was a Thursday: ISO index 3 when Monday is 0. */
    int64_t day = floor_div(local_seconds(m, ts), 86400);
    int64_t wd = (day + 3) % 7;
    return (int)(wd < 0 ? wd + 7 : wd);
}

double demo_heating_dh(double temp_c, double balance_c)
{
    return temp_c < balance_c ? balance_c - temp_c : 0.0;
}

double demo_cooling_dh(double temp_c, double balance_c)
{
    return temp_c > balance_c ? temp_c - balance_c : 0.0;
}

double demo_expected_kwh(const struct demo_machine *m, time_t ts, double production, double temp_c)
{
    double e = m->base_kwh + m->hour_kwh[demo_local_hour(m, ts)] +
               m->weekday_kwh[demo_local_weekday(m, ts)];
    if (m->has_production)
        e += m->kwh_per_unit * production;
    if (m->heat_kwh_per_dh != 0.0)
        e += m->heat_kwh_per_dh * demo_heating_dh(temp_c, m->heat_balance_c);
    if (m->cool_kwh_per_dh != 0.0)
        e += m->cool_kwh_per_dh * demo_cooling_dh(temp_c, m->cool_balance_c);
    return e;
}

const char *demo_anomaly_kind_name(enum demo_anomaly_kind kind)
{
    switch (kind) {
    case DEMO_SPIKE:
        return "spike";
    case DEMO_LEVEL_SHIFT:
        return "level_shift";
    case DEMO_STUCK_METER:
        return "stuck_meter";
    }
    return "other";
}

/* ---- readings ---------------------------------------------------------- */

static int check_window(size_t machine, time_t end, size_t hours, char *err, size_t errlen)
{
    if (machine >= DEMO_MACHINE_COUNT)
        return enms_fail(err, errlen, ENMS_EINVAL, "demo machine index %zu out of range", machine);
    if (hours == 0 || hours > DEMO_MAX_HOURS)
        return enms_fail(err, errlen, ENMS_EINVAL, "window of %zu hours is outside 1..%zu", hours,
                         DEMO_MAX_HOURS);
    if ((int64_t)end % 3600 != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "window end is not a whole hour");
    if ((int64_t)end < (int64_t)hours * 3600)
        return enms_fail(err, errlen, ENMS_EINVAL, "window would start before 1970");
    return ENMS_OK;
}

/* Outdoor temperature of a site at ts, given the current weather anomaly. */
static double site_temperature(const struct demo_site *s, const struct demo_machine *m, time_t ts,
                               double weather)
{
    double day = (double)ts / 86400.0;
    double annual = cos_turns((day - 20.0) / 365.2425);
    double daily = cos_turns((double)(demo_local_hour(m, ts) - 15) / 24.0);
    return s->mean_c - s->annual_amp_c * annual + s->daily_amp_c * daily + weather;
}

int demo_generate_clean(size_t machine, uint64_t seed, time_t end, size_t hours,
                        struct demo_reading *out, char *err, size_t errlen)
{
    int rc = check_window(machine, end, hours, err, errlen);
    if (rc != ENMS_OK)
        return rc;

    const struct demo_machine *m = &demo_machines[machine];
    const struct demo_site *site = &demo_sites[m->site];
    struct rng weather_rng, prod_rng, noise_rng;
    rng_init(&weather_rng, seed, STREAM_WEATHER, (unsigned)m->site);
    rng_init(&prod_rng, seed, STREAM_PRODUCTION, (unsigned)machine);
    rng_init(&noise_rng, seed, STREAM_NOISE, (unsigned)machine);

    /* Both AR(1) processes start in their stationary distribution, so the
     * first hours of a window are as variable as the rest. */
    double weather = site->weather_sigma_c / sqrt(1.0 - site->weather_phi * site->weather_phi) *
                     rng_normal(&weather_rng);
    double noise =
        m->noise_sigma_kwh / sqrt(1.0 - m->noise_phi * m->noise_phi) * rng_normal(&noise_rng);
    double day_factor = 1.0;
    int64_t current_day = INT64_MIN;
    time_t start = end - (time_t)(hours * 3600);

    for (size_t k = 0; k < hours; k++) {
        time_t ts = start + (time_t)(k * 3600);
        struct demo_reading *r = &out[k];
        r->ts = ts;
        r->outdoor_temp_c = round_to(site_temperature(site, m, ts, weather), TEMP_SCALE);
        weather = site->weather_phi * weather + site->weather_sigma_c * rng_normal(&weather_rng);

        r->production_count = NAN;
        if (m->has_production) {
            /* One order-book factor per local day, then hour-level spread
             * and the odd stoppage: production varies within every hour of
             * the schedule, which is what separates its coefficient from
             * the hour-of-day profile. */
            int64_t day = floor_div(local_seconds(m, ts), 86400);
            if (day != current_day) {
                current_day = day;
                day_factor = 1.0 + m->day_cv * rng_normal(&prod_rng);
                if (day_factor < 0.0)
                    day_factor = 0.0;
            }
            r->production_count = 0.0;
            int hour = demo_local_hour(m, ts);
            if (m->shift_hours[demo_local_weekday(m, ts)] & ((uint32_t)1 << hour)) {
                double stop = rng_uniform(&prod_rng);
                double units =
                    m->units_per_hour * day_factor * (1.0 + m->hour_cv * rng_normal(&prod_rng));
                if (stop >= m->downtime_p && units > 0.0)
                    r->production_count = floor(units + 0.5);
            }
        }

        double energy = demo_expected_kwh(m, ts, r->production_count, r->outdoor_temp_c) + noise;
        noise = m->noise_phi * noise + m->noise_sigma_kwh * rng_normal(&noise_rng);
        r->energy_kwh = energy > 0.0 ? round_to(energy, ENERGY_SCALE) : 0.0;
    }
    return ENMS_OK;
}

/* ---- anomalies --------------------------------------------------------- */

/* What every window gets, in placement order: the long ones first, so they
 * find room before the spikes take it. */
static const enum demo_anomaly_kind anomaly_plan[DEMO_MAX_ANOMALIES] = {
    DEMO_LEVEL_SHIFT, DEMO_STUCK_METER, DEMO_SPIKE, DEMO_SPIKE, DEMO_SPIKE};

struct placed {
    size_t start, len;
};

static int overlaps(const struct placed *p, size_t n, size_t start, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (!(start + len + ANOMALY_MARGIN_H <= p[i].start ||
              p[i].start + p[i].len + ANOMALY_MARGIN_H <= start))
            return 1;
    }
    return 0;
}

int demo_inject_anomalies(size_t machine, uint64_t seed, struct demo_reading *readings,
                          size_t hours, struct demo_anomaly *anomalies, size_t max, size_t *count,
                          char *err, size_t errlen)
{
    *count = 0;
    if (machine >= DEMO_MACHINE_COUNT)
        return enms_fail(err, errlen, ENMS_EINVAL, "demo machine index %zu out of range", machine);
    if (max < DEMO_MAX_ANOMALIES)
        return enms_fail(err, errlen, ENMS_EINVAL, "anomaly array holds %zu, need %d", max,
                         DEMO_MAX_ANOMALIES);

    struct rng rng;
    rng_init(&rng, seed, STREAM_ANOMALY, (unsigned)machine);
    struct placed placed[DEMO_MAX_ANOMALIES];
    size_t n = 0;

    for (size_t i = 0; i < DEMO_MAX_ANOMALIES; i++) {
        enum demo_anomaly_kind kind = anomaly_plan[i];
        /* Always two draws for length and size, so the stream advances the
         * same way whatever the kind. */
        double u_len = rng_uniform(&rng), u_size = rng_uniform(&rng);
        size_t len = 1;
        double factor = 2.0 + u_size;
        if (kind == DEMO_LEVEL_SHIFT) {
            len = 24 + (size_t)(u_len * 49.0);
            factor = 1.25 + 0.15 * u_size;
        } else if (kind == DEMO_STUCK_METER) {
            len = 12 + (size_t)(u_len * 13.0);
        }
        if (hours < len + 2 * ANOMALY_MARGIN_H)
            continue;
        size_t room = hours - len - 2 * ANOMALY_MARGIN_H + 1;
        /* Rejection sampling for a free slot; a crowded short window just
         * gets fewer anomalies. 64 tries is ample for a year. */
        for (int attempt = 0; attempt < 64; attempt++) {
            size_t start = ANOMALY_MARGIN_H + (size_t)(rng_uniform(&rng) * (double)room);
            if (overlaps(placed, n, start, len))
                continue;
            placed[n].start = start;
            placed[n].len = len;
            anomalies[n] = (struct demo_anomaly){
                .start = readings[start].ts,
                .end = readings[start].ts + (time_t)(len * 3600),
                .kind = kind,
                .factor = factor,
            };
            if (kind == DEMO_STUCK_METER) {
                /* A frozen meter keeps repeating its last good value. */
                double stuck = readings[start - 1].energy_kwh;
                anomalies[n].factor = stuck;
                for (size_t k = start; k < start + len; k++)
                    readings[k].energy_kwh = stuck;
            } else {
                for (size_t k = start; k < start + len; k++)
                    readings[k].energy_kwh =
                        round_to(readings[k].energy_kwh * factor, ENERGY_SCALE);
            }
            n++;
            break;
        }
    }

    /* Sort by start (insertion sort: at most five entries). */
    for (size_t i = 1; i < n; i++) {
        struct demo_anomaly a = anomalies[i];
        size_t j = i;
        while (j > 0 && anomalies[j - 1].start > a.start) {
            anomalies[j] = anomalies[j - 1];
            j--;
        }
        anomalies[j] = a;
    }
    *count = n;
    return ENMS_OK;
}

int demo_generate(size_t machine, uint64_t seed, time_t end, size_t hours, struct demo_reading *out,
                  struct demo_anomaly *anomalies, size_t max, size_t *count, char *err,
                  size_t errlen)
{
    *count = 0;
    int rc = demo_generate_clean(machine, seed, end, hours, out, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    return demo_inject_anomalies(machine, seed, out, hours, anomalies, max, count, err, errlen);
}

/* ---- calendar ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic: 400
 * years are exactly 146097 days). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int demo_parse_date(const char *text, time_t *out)
{
    int v[3] = {0, 0, 0};
    static const int widths[3] = {4, 2, 2};
    const char *p = text;
    if (!text)
        return ENMS_EINVAL;
    for (int f = 0; f < 3; f++) {
        for (int i = 0; i < widths[f]; i++, p++) {
            if (*p < '0' || *p > '9')
                return ENMS_EINVAL;
            v[f] = v[f] * 10 + (*p - '0');
        }
        if (f < 2 && *p++ != '-')
            return ENMS_EINVAL;
    }
    if (*p != '\0' || v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1)
        return ENMS_EINVAL;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0;
    if (v[2] > mdays[v[1] - 1] + (v[1] == 2 && leap))
        return ENMS_EINVAL;
    *out = (time_t)(days_from_civil(v[0], v[1], v[2]) * 86400);
    return ENMS_OK;
}

int demo_format_time(time_t ts, char *buf, size_t buflen)
{
    int64_t t = (int64_t)ts;
    int64_t day = floor_div(t, 86400);
    int64_t sec = t - day * 86400;
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    if (y < 0 || y > 9999)
        return ENMS_ETOOBIG;
    int n = snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, m, d, (int)(sec / 3600),
                     (int)(sec / 60 % 60), (int)(sec % 60));
    return (n < 0 || (size_t)n >= buflen) ? ENMS_ETOOBIG : ENMS_OK;
}

/* ---- truth as JSON ----------------------------------------------------- */

static cJSON *add_number_array(cJSON *obj, const char *name, const double *v, int n)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, name);
    for (int i = 0; arr && i < n; i++) {
        cJSON *item = cJSON_CreateNumber(v[i]);
        if (!item || !cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            return NULL;
        }
    }
    return arr;
}

/* {"balance_point_c": x or null, "kwh_per_degree_hour": c} */
static cJSON *add_temperature_term(cJSON *obj, const char *name, double coef, double balance)
{
    cJSON *t = cJSON_AddObjectToObject(obj, name);
    if (!t)
        return NULL;
    cJSON *bp = coef != 0.0 ? cJSON_AddNumberToObject(t, "balance_point_c", balance)
                            : cJSON_AddNullToObject(t, "balance_point_c");
    if (!bp || !cJSON_AddNumberToObject(t, "kwh_per_degree_hour", coef))
        return NULL;
    return t;
}

static int add_time(cJSON *obj, const char *name, time_t ts)
{
    char buf[32];
    if (demo_format_time(ts, buf, sizeof buf) != ENMS_OK)
        return -1;
    return cJSON_AddStringToObject(obj, name, buf) ? 0 : -1;
}

static int add_production(cJSON *root, const struct demo_machine *m)
{
    if (!m->has_production) {
        return cJSON_AddNullToObject(root, "production_kwh_per_unit") &&
                       cJSON_AddNullToObject(root, "production")
                   ? 0
                   : -1;
    }
    if (!cJSON_AddNumberToObject(root, "production_kwh_per_unit", m->kwh_per_unit))
        return -1;
    cJSON *p = cJSON_AddObjectToObject(root, "production");
    if (!p || !cJSON_AddNumberToObject(p, "mean_units_per_hour", m->units_per_hour) ||
        !cJSON_AddNumberToObject(p, "day_cv", m->day_cv) ||
        !cJSON_AddNumberToObject(p, "hour_cv", m->hour_cv) ||
        !cJSON_AddNumberToObject(p, "downtime_probability", m->downtime_p))
        return -1;
    /* Local hours with production, one array per weekday, Monday first. */
    cJSON *shifts = cJSON_AddArrayToObject(p, "shift_hours");
    for (int wd = 0; shifts && wd < 7; wd++) {
        double hours[24];
        int n = 0;
        for (int h = 0; h < 24; h++)
            if (m->shift_hours[wd] & ((uint32_t)1 << h))
                hours[n++] = h;
        cJSON *day = cJSON_CreateArray();
        if (!day || !cJSON_AddItemToArray(shifts, day)) {
            cJSON_Delete(day);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            cJSON *item = cJSON_CreateNumber(hours[i]);
            if (!item || !cJSON_AddItemToArray(day, item)) {
                cJSON_Delete(item);
                return -1;
            }
        }
    }
    return shifts ? 0 : -1;
}

static int add_climate(cJSON *root, const struct demo_site *s)
{
    cJSON *c = cJSON_AddObjectToObject(root, "climate");
    return c && cJSON_AddNumberToObject(c, "mean_c", s->mean_c) &&
                   cJSON_AddNumberToObject(c, "annual_amplitude_c", s->annual_amp_c) &&
                   cJSON_AddNumberToObject(c, "coldest_day_of_year", 20) &&
                   cJSON_AddNumberToObject(c, "daily_amplitude_c", s->daily_amp_c) &&
                   cJSON_AddNumberToObject(c, "warmest_local_hour", 15) &&
                   cJSON_AddNumberToObject(c, "weather_ar1_phi", s->weather_phi) &&
                   cJSON_AddNumberToObject(c, "weather_sigma_c", s->weather_sigma_c)
               ? 0
               : -1;
}

static int add_anomalies(cJSON *root, const struct demo_anomaly *a, size_t count)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "anomalies");
    if (!arr)
        return -1;
    for (size_t i = 0; i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return -1;
        }
        const char *size_name = a[i].kind == DEMO_STUCK_METER ? "stuck_value_kwh" : "factor";
        if (!cJSON_AddStringToObject(o, "kind", demo_anomaly_kind_name(a[i].kind)) ||
            add_time(o, "start", a[i].start) != 0 || add_time(o, "end", a[i].end) != 0 ||
            !cJSON_AddNumberToObject(o, "hours", (double)((a[i].end - a[i].start) / 3600)) ||
            !cJSON_AddNumberToObject(o, size_name, a[i].factor))
            return -1;
    }
    return 0;
}

cJSON *demo_truth_json(size_t machine, uint64_t seed, time_t end, size_t hours,
                       const struct demo_anomaly *anomalies, size_t count)
{
    if (machine >= DEMO_MACHINE_COUNT)
        return NULL;
    const struct demo_machine *m = &demo_machines[machine];
    const struct demo_site *s = &demo_sites[m->site];
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;

    cJSON *gen = cJSON_AddObjectToObject(root, "generator");
    cJSON *window = NULL;
    cJSON *noise = NULL;
    if (!cJSON_AddStringToObject(root, "machine_id", m->id) ||
        !cJSON_AddStringToObject(root, "name", m->name) ||
        !cJSON_AddStringToObject(root, "type", m->type) ||
        !cJSON_AddStringToObject(root, "location", s->location) ||
        !cJSON_AddNumberToObject(root, "rated_power_kw", m->rated_power_kw) ||
        !cJSON_AddNumberToObject(root, "seed", (double)seed) || !gen ||
        !cJSON_AddStringToObject(gen, "name", DEMO_GENERATOR_NAME) ||
        !cJSON_AddNumberToObject(gen, "version", DEMO_GENERATOR_VERSION) ||
        !cJSON_AddStringToObject(gen, "prng", DEMO_GENERATOR_PRNG) ||
        !(window = cJSON_AddObjectToObject(root, "window")) ||
        add_time(window, "start", end - (time_t)(hours * 3600)) != 0 ||
        add_time(window, "end", end) != 0 ||
        !cJSON_AddNumberToObject(window, "hours", (double)hours) ||
        !cJSON_AddStringToObject(
            root, "model",
            "energy_kwh = base_load_kwh + hour_profile_kwh[local hour] + "
            "weekday_profile_kwh[local weekday, 0 = Monday] + production_kwh_per_unit * "
            "production_count + heating.kwh_per_degree_hour * max(0, heating.balance_point_c - "
            "outdoor_temp_c) + cooling.kwh_per_degree_hour * max(0, outdoor_temp_c - "
            "cooling.balance_point_c) + AR(1) noise") ||
        !cJSON_AddNumberToObject(root, "utc_offset_hours", s->utc_offset_h) ||
        !cJSON_AddNumberToObject(root, "base_load_kwh", m->base_kwh) ||
        add_production(root, m) != 0 ||
        !add_temperature_term(root, "heating", m->heat_kwh_per_dh, m->heat_balance_c) ||
        !add_temperature_term(root, "cooling", m->cool_kwh_per_dh, m->cool_balance_c) ||
        !add_number_array(root, "hour_profile_kwh", m->hour_kwh, 24) ||
        !add_number_array(root, "weekday_profile_kwh", m->weekday_kwh, 7) ||
        !(noise = cJSON_AddObjectToObject(root, "noise")) ||
        !cJSON_AddNumberToObject(noise, "ar1_phi", m->noise_phi) ||
        !cJSON_AddNumberToObject(noise, "sigma_kwh", m->noise_sigma_kwh) ||
        !cJSON_AddNumberToObject(noise, "stationary_sd_kwh",
                                 m->noise_sigma_kwh / sqrt(1.0 - m->noise_phi * m->noise_phi)) ||
        add_climate(root, s) != 0 || add_anomalies(root, anomalies, count) != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* ---- drift injection --------------------------------------------------- */

const char *demo_drift_feature_name(enum demo_drift_feature f)
{
    switch (f) {
    case DEMO_DRIFT_ENERGY:
        return "energy";
    case DEMO_DRIFT_PRODUCTION:
        return "production";
    case DEMO_DRIFT_TEMPERATURE:
        return "temperature";
    }
    return "other";
}

int demo_parse_drift(const char *text, struct demo_drift *out, char *err, size_t errlen)
{
    char buf[160];
    char *field[4];
    size_t nf = 0;
    if (!text || strlen(text) >= sizeof buf)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "--drift: expected MACHINE:YYYY-MM-DD:FEATURE:FACTOR");
    memcpy(buf, text, strlen(text) + 1);
    char *p = buf;
    for (;;) {
        field[nf++] = p;
        char *colon = nf < 4 ? strchr(p, ':') : NULL;
        if (!colon)
            break;
        *colon = '\0';
        p = colon + 1;
    }
    if (nf != 4 || strchr(field[3], ':'))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "--drift \"%.60s\": expected MACHINE:YYYY-MM-DD:FEATURE:FACTOR", text);

    size_t m = DEMO_MACHINE_COUNT;
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++)
        if (strcmp(field[0], demo_machines[i].name) == 0 ||
            strcasecmp(field[0], demo_machines[i].id) == 0)
            m = i;
    if (m == DEMO_MACHINE_COUNT)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "--drift: unknown machine \"%.40s\" (a demo machine's name or id)",
                         field[0]);
    time_t from;
    if (demo_parse_date(field[1], &from) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "--drift: \"%.20s\" is not a date YYYY-MM-DD (1970..9999)", field[1]);
    enum demo_drift_feature f;
    if (strcmp(field[2], "energy") == 0)
        f = DEMO_DRIFT_ENERGY;
    else if (strcmp(field[2], "production") == 0)
        f = DEMO_DRIFT_PRODUCTION;
    else if (strcmp(field[2], "temperature") == 0)
        f = DEMO_DRIFT_TEMPERATURE;
    else
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "--drift: feature \"%.20s\" is not energy, production or temperature",
                         field[2]);
    if (f == DEMO_DRIFT_PRODUCTION && !demo_machines[m].has_production)
        return enms_fail(err, errlen, ENMS_EINVAL, "--drift: %s has no production",
                         demo_machines[m].name);
    char *end = NULL;
    errno = 0;
    double factor = strtod(field[3], &end);
    if (errno != 0 || end == field[3] || *end != '\0' || !isfinite(factor))
        return enms_fail(err, errlen, ENMS_EINVAL, "--drift: factor \"%.20s\" is not a number",
                         field[3]);
    if (f == DEMO_DRIFT_TEMPERATURE) {
        if (fabs(factor) > DEMO_DRIFT_SHIFT_MAX_C)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "--drift: a temperature shift must lie in -%g..%g degC",
                             DEMO_DRIFT_SHIFT_MAX_C, DEMO_DRIFT_SHIFT_MAX_C);
    } else if (!(factor >= DEMO_DRIFT_FACTOR_MIN && factor <= DEMO_DRIFT_FACTOR_MAX)) {
        return enms_fail(err, errlen, ENMS_EINVAL, "--drift: an %s factor must lie in %g..%g",
                         field[2], DEMO_DRIFT_FACTOR_MIN, DEMO_DRIFT_FACTOR_MAX);
    }
    *out = (struct demo_drift){.machine = m, .from = from, .feature = f, .factor = factor};
    return ENMS_OK;
}

int demo_apply_drifts(size_t machine, const struct demo_drift *drifts, size_t n,
                      struct demo_reading *readings, size_t hours, char *err, size_t errlen)
{
    if (machine >= DEMO_MACHINE_COUNT)
        return enms_fail(err, errlen, ENMS_EINVAL, "demo machine index %zu out of range", machine);
    const struct demo_machine *m = &demo_machines[machine];
    for (size_t i = 0; i < n; i++) {
        const struct demo_drift *d = &drifts[i];
        if (d->machine != machine)
            continue;
        if (d->feature == DEMO_DRIFT_PRODUCTION && !m->has_production)
            return enms_fail(err, errlen, ENMS_EINVAL, "%s has no production", m->name);
        for (size_t k = 0; k < hours; k++) {
            struct demo_reading *r = &readings[k];
            if (r->ts < d->from)
                continue;
            double e = r->energy_kwh;
            if (d->feature == DEMO_DRIFT_ENERGY) {
                e *= d->factor;
            } else if (d->feature == DEMO_DRIFT_PRODUCTION) {
                double p = floor(r->production_count * d->factor + 0.5);
                e += m->kwh_per_unit * (p - r->production_count);
                r->production_count = p;
            } else {
                double t = round_to(r->outdoor_temp_c + d->factor, TEMP_SCALE);
                if (m->heat_kwh_per_dh != 0.0)
                    e += m->heat_kwh_per_dh *
                         (demo_heating_dh(t, m->heat_balance_c) -
                          demo_heating_dh(r->outdoor_temp_c, m->heat_balance_c));
                if (m->cool_kwh_per_dh != 0.0)
                    e += m->cool_kwh_per_dh *
                         (demo_cooling_dh(t, m->cool_balance_c) -
                          demo_cooling_dh(r->outdoor_temp_c, m->cool_balance_c));
                r->outdoor_temp_c = t;
            }
            r->energy_kwh = e > 0.0 ? round_to(e, ENERGY_SCALE) : 0.0;
        }
    }
    return ENMS_OK;
}

int demo_drift_truth(cJSON *truth, size_t machine, const struct demo_drift *drifts, size_t n)
{
    cJSON *arr = NULL;
    for (size_t i = 0; i < n; i++) {
        if (drifts[i].machine != machine)
            continue;
        if (!arr && !(arr = cJSON_AddArrayToObject(truth, "drift")))
            return -1;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return -1;
        }
        int temp = drifts[i].feature == DEMO_DRIFT_TEMPERATURE;
        if (!cJSON_AddStringToObject(o, "feature", demo_drift_feature_name(drifts[i].feature)) ||
            add_time(o, "from", drifts[i].from) != 0 ||
            !cJSON_AddNumberToObject(o, temp ? "shift_c" : "factor", drifts[i].factor))
            return -1;
    }
    return 0;
}
