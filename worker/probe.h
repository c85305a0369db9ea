/* probe.h - the probe job: a fake training that exercises the queue itself
 * (progress, cancel, timeout, failure, crash and hang) for tests and
 * benchmarks. Accepted only when ENMS_ENABLE_PROBE=1.
 *
 * params: {"steps": N, "step_ms": M, "fail_at": K, "crash_at": K,
 * "hang_at": K}, all optional integers. It runs N steps of M ms; at step K
 * it fails (ENMS_EINVAL "probe failed at step K"), kills its worker with
 * SIGKILL, or hangs forever ignoring should_stop. */
#ifndef ENMS_WORKER_PROBE_H
#define ENMS_WORKER_PROBE_H

#include <stddef.h>

#include "training.h"

#define PROBE_MAX_STEPS   100000
#define PROBE_MAX_STEP_MS 60000

struct probe_params {
    long steps;   /* 1..PROBE_MAX_STEPS, default 10 */
    long step_ms; /* 0..PROBE_MAX_STEP_MS, default 100 */
    /* 1..PROBE_MAX_STEPS, 0: never; a step past `steps` never comes (the
     * API's bounds are the same, so what it accepts the worker runs). */
    long fail_at;
    long crash_at;
    long hang_at;
};

/* Parses and validates params JSON text (NULL or "" means {}). Pure.
 * Returns 0, or ENMS_EINVAL with a sentence naming the parameter. */
int probe_parse(const char *params_json, struct probe_params *out, char *err, size_t errlen);

/* Runs the probe (see above). Returns 0 with out->metrics_json
 * {"steps": N, "probe": true}, ENMS_ESTOPPED, or ENMS_EINVAL. */
int probe_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
              char *err, size_t errlen);

#endif
