/* demo_data.h - the deterministic generator behind `enmsctl seed`.
 *
 * Owns the eight demo machines of the original system, the true parameters of
 * their energy model (as constants), the synthetic hourly readings drawn from
 * that model, the labelled anomalies injected into them and the JSON that
 * writes the truth down. It does no I/O and touches no database: seed.c loads
 * what this module computes, and the unit tests check that a regression on
 * the output recovers the constants. docs/demo-data.md states the model.
 *
 * Determinism: the output depends only on (seed, end, hours). The random
 * numbers come from our own xoshiro256** generator seeded by splitmix64, and
 * the arithmetic uses only +, -, *, /, sqrt, floor and fmod (all correctly
 * rounded in IEEE 754), with our own cosine, so every conforming platform
 * computes the same bits as long as the compiler does not contract a*b+c
 * into fused multiply-adds (GCC's default under -std=c11; pass
 * -ffp-contract=off to compilers that contract by default). */
#ifndef ENMS_DEMO_DATA_H
#define ENMS_DEMO_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cJSON.h>

#define DEMO_MACHINE_COUNT 8
#define DEMO_SITE_COUNT    4
#define DEMO_DEFAULT_SEED  42
/* Largest accepted seed: 2^53 - 1, so that the seed is exact both as a JSON
 * number (a double) and in demo_truth.seed (bigint). */
#define DEMO_SEED_MAX 9007199254740991ULL
/* Every generated window gets at most this many anomalies (see demo_data.c). */
#define DEMO_MAX_ANOMALIES 5
/* Generator identity written into the truth; bump the version whenever the
 * output for a given (seed, end, hours) changes. */
#define DEMO_GENERATOR_NAME    "enms-demo"
#define DEMO_GENERATOR_VERSION 2
#define DEMO_GENERATOR_PRNG    "xoshiro256** seeded by splitmix64"

/* A plant's climate: outdoor temperature is
 *   mean - annual_amp * cos(2 pi (day - 20) / 365.2425)      coldest on 20 January
 *        + daily_amp * cos(2 pi (local_hour - 15) / 24)     warmest at 15:00
 *        + w,  w(t+1) = weather_phi * w(t) + weather_sigma * z
 * All machines at one site see the same weather. */
struct demo_site {
    const char *location;   /* text stored in machines.location */
    int utc_offset_h;       /* fixed standard offset; the demo ignores DST */
    double mean_c;          /* annual mean temperature */
    double annual_amp_c;    /* half the summer-winter swing */
    double daily_amp_c;     /* half the day-night swing */
    double weather_phi;     /* AR(1) coefficient of the hourly weather anomaly */
    double weather_sigma_c; /* its innovation standard deviation */
};

/* One machine and the true parameters of its hourly energy:
 *
 *   energy = base_kwh + hour_kwh[local hour] + weekday_kwh[local weekday]
 *          + kwh_per_unit * production
 *          + heat_kwh_per_dh * max(0, heat_balance_c - T)
 *          + cool_kwh_per_dh * max(0, T - cool_balance_c)
 *          + e,  e(t+1) = noise_phi * e(t) + noise_sigma_kwh * z
 *
 * hour_kwh[0] and weekday_kwh[6] (Sunday) are 0, so base_kwh is the level
 * at midnight on a Sunday with no production and no degree-hours, and an OLS
 * with an intercept and dummies for the other hours and days recovers every
 * constant directly. A term that is absent has coefficient 0 and balance
 * point NAN. */
struct demo_machine {
    const char *id;   /* uuid c0000000-0000-0000-0000-00000000000N */
    const char *name; /* as in the original system */
    const char *type; /* machines.type */
    int site;         /* index into demo_sites */
    double rated_power_kw;

    double base_kwh;
    double hour_kwh[24];   /* additive, by local hour 0..23 */
    double weekday_kwh[7]; /* additive, Monday..Sunday (ISO order) */

    int has_production;      /* 0: production_count is NAN (stored NULL) */
    double kwh_per_unit;     /* energy per produced unit */
    double units_per_hour;   /* mean output in a production hour */
    double day_cv;           /* day-to-day variation of output (order book) */
    double hour_cv;          /* hour-to-hour variation within a day */
    double downtime_p;       /* chance that a production hour stands still */
    uint32_t shift_hours[7]; /* Monday..Sunday: bit h set = produces in local hour h */

    double heat_kwh_per_dh; /* kWh per degree-hour below heat_balance_c */
    double heat_balance_c;
    double cool_kwh_per_dh; /* kWh per degree-hour above cool_balance_c */
    double cool_balance_c;

    double noise_phi;       /* AR(1) coefficient of the hourly noise */
    double noise_sigma_kwh; /* its innovation standard deviation */
};

extern const struct demo_site demo_sites[DEMO_SITE_COUNT];
extern const struct demo_machine demo_machines[DEMO_MACHINE_COUNT];

struct demo_reading {
    time_t ts;               /* start of the hour, UTC */
    double energy_kwh;       /* >= 0 */
    double production_count; /* NAN when the machine has no production */
    double outdoor_temp_c;
};

enum demo_anomaly_kind {
    DEMO_SPIKE,       /* one hour multiplied by `factor` (2..3) */
    DEMO_LEVEL_SHIFT, /* 24..72 hours multiplied by `factor` (1.25..1.40) */
    DEMO_STUCK_METER, /* 12..24 hours all equal to the last good reading */
};

struct demo_anomaly {
    time_t start; /* first affected hour */
    time_t end;   /* exclusive */
    enum demo_anomaly_kind kind;
    double factor; /* spike / level shift multiplier; stuck value in kWh for stuck meters */
};

/* "spike", "level_shift" or "stuck_meter": the anomaly_labels.kind values.
 * Never NULL. */
const char *demo_anomaly_kind_name(enum demo_anomaly_kind kind);

/* Local hour of day 0..23 and ISO weekday 0 (Monday)..6 (Sunday) of ts at
 * the machine's site. */
int demo_local_hour(const struct demo_machine *m, time_t ts);
int demo_local_weekday(const struct demo_machine *m, time_t ts);

/* The degree-hour regressors: max(0, balance - temp) and max(0, temp - balance). */
double demo_heating_dh(double temp_c, double balance_c);
double demo_cooling_dh(double temp_c, double balance_c);

/* The model's noise-free energy for one hour (the formula above without e). */
double demo_expected_kwh(const struct demo_machine *m, time_t ts, double production, double temp_c);

/* Fills out[0..hours-1] with the readings of machine `machine` for the hours
 * [end - hours*3600, end), without anomalies. end must be a whole hour at or
 * after hours*3600 (no readings before 1970). Returns 0, or ENMS_EINVAL with
 * a sentence in err. */
int demo_generate_clean(size_t machine, uint64_t seed, time_t end, size_t hours,
                        struct demo_reading *out, char *err, size_t errlen);

/* Injects the machine's anomalies into readings produced by
 * demo_generate_clean() with the same (machine, seed) and writes them, sorted
 * by start, into anomalies[0..*count-1]. max must be >= DEMO_MAX_ANOMALIES.
 * A window too short for an anomaly (each needs 24 clean hours on both sides
 * and a 24-hour gap to the next) simply gets fewer. Returns 0 or ENMS_EINVAL. */
int demo_inject_anomalies(size_t machine, uint64_t seed, struct demo_reading *readings,
                          size_t hours, struct demo_anomaly *anomalies, size_t max, size_t *count,
                          char *err, size_t errlen);

/* demo_generate_clean() followed by demo_inject_anomalies(). */
int demo_generate(size_t machine, uint64_t seed, time_t end, size_t hours, struct demo_reading *out,
                  struct demo_anomaly *anomalies, size_t max, size_t *count, char *err,
                  size_t errlen);

/* The truth of one machine's generated window as a JSON object: identity,
 * seed, window, every model constant, climate, production schedule and the
 * anomalies with ISO 8601 UTC timestamps (layout in docs/demo-data.md).
 * Returns a tree the caller frees with cJSON_Delete(), or NULL when out of
 * memory or machine is out of range. */
cJSON *demo_truth_json(size_t machine, uint64_t seed, time_t end, size_t hours,
                       const struct demo_anomaly *anomalies, size_t count);

/* Parses a strict "YYYY-MM-DD" (years 1970..9999, real calendar dates) into
 * the UTC midnight that starts that day. Returns 0 or ENMS_EINVAL. */
int demo_parse_date(const char *text, time_t *out);

/* Writes ts as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes).
 * Returns 0, or ENMS_ETOOBIG when buf is too small or ts out of range. */
int demo_format_time(time_t ts, char *buf, size_t buflen);

/* ---- drift injection (`enmsctl seed --drift`) ---------------------------
 *
 * A drift is a lasting change from one hour on, unlike the anomalies above:
 * the shift a drift check must find. energy multiplies the energy by factor;
 * production multiplies the production by factor and moves the energy by
 * kwh_per_unit times the change (the machine does more work); temperature
 * adds factor degC to the outdoor temperature and moves the energy by the
 * machine's degree-hour terms. Applied to the clean readings before the
 * anomalies, so a stuck meter repeats a drifted value. Without drifts the
 * generator's output is unchanged, bit for bit. */
#define DEMO_MAX_DRIFTS        16
#define DEMO_DRIFT_FACTOR_MIN  0.1 /* energy / production multipliers */
#define DEMO_DRIFT_FACTOR_MAX  10.0
#define DEMO_DRIFT_SHIFT_MAX_C 30.0 /* temperature shift, either sign */

enum demo_drift_feature {
    DEMO_DRIFT_ENERGY,
    DEMO_DRIFT_PRODUCTION,
    DEMO_DRIFT_TEMPERATURE,
};

struct demo_drift {
    size_t machine; /* index into demo_machines */
    time_t from;    /* first affected hour (UTC midnight of the date given) */
    enum demo_drift_feature feature;
    double factor; /* multiplier (energy, production) or degC added (temperature) */
};

/* "energy", "production" or "temperature". Never NULL. */
const char *demo_drift_feature_name(enum demo_drift_feature f);

/* Parses "MACHINE:YYYY-MM-DD:FEATURE:FACTOR", MACHINE being a demo machine's
 * name (Compressor-1) or id. Checks the factor's range and that the machine
 * has the feature (production). Returns 0 or ENMS_EINVAL with a sentence. */
int demo_parse_drift(const char *text, struct demo_drift *out, char *err, size_t errlen);

/* Applies the drifts of machine `machine` among drifts[0..n-1] to readings
 * from demo_generate_clean() (hours of them). Others are ignored. Returns 0
 * or ENMS_EINVAL (a drift for a feature the machine lacks). */
int demo_apply_drifts(size_t machine, const struct demo_drift *drifts, size_t n,
                      struct demo_reading *readings, size_t hours, char *err, size_t errlen);

/* Adds "drift": [{feature, from, factor | shift_c}] for the drifts of
 * machine to truth, when it has any. Returns 0, or -1 when out of memory. */
int demo_drift_truth(cJSON *truth, size_t machine, const struct demo_drift *drifts, size_t n);

#endif
