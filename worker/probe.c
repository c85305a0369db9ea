/* probe.c - the probe job (see probe.h). It owns no resources beyond its
 * result; the runner does every write. */
#include "probe.h"
#include "../common/error.h"
#include "../common/json.h"
#include "../common/log.h"

#include <cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE_SLICE_MS 50 /* should_stop is asked at least this often */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads an optional integer member into *out (left alone when absent). */
static int read_int(const cJSON *obj, const char *name, long min, long max, long *out, char *err,
                    size_t errlen)
{
    double v;
    int rc = json_get_number(obj, name, &v, err, errlen);
    if (rc == ENMS_ENOTFOUND)
        return ENMS_OK;
    if (rc != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL, "probe parameter %s must be a number", name);
    if (v != floor(v) || v < (double)min || v > (double)max)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "probe parameter %s must be an integer from %ld to %ld", name, min, max);
    *out = (long)v;
    return ENMS_OK;
}

int probe_parse(const char *params_json, struct probe_params *out, char *err, size_t errlen)
{
    static const char *const known[] = {"steps", "step_ms", "fail_at", "crash_at", "hang_at"};
    cJSON *root = NULL; /* cJSON_Delete */
    int rc = ENMS_OK;

    out->steps = 10;
    out->step_ms = 100;
    out->fail_at = out->crash_at = out->hang_at = 0;
    if (!params_json || !*params_json)
        return ENMS_OK;
    root = json_parse(params_json, strlen(params_json), err, errlen);
    if (!root)
        return enms_fail(err, errlen, ENMS_EINVAL, "probe params are not valid JSON");
    if (!cJSON_IsObject(root)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "probe params must be a JSON object");
        goto done;
    }
    /* A misspelt parameter would silently run the default probe. */
    for (const cJSON *m = root->child; m; m = m->next) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(m->string, known[k]) != 0)
            k++;
        if (k == sizeof known / sizeof known[0]) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "unknown probe parameter %.64s", m->string);
            goto done;
        }
    }
    if ((rc = read_int(root, "steps", 1, PROBE_MAX_STEPS, &out->steps, err, errlen)) != ENMS_OK ||
        (rc = read_int(root, "step_ms", 0, PROBE_MAX_STEP_MS, &out->step_ms, err, errlen)) !=
            ENMS_OK ||
        (rc = read_int(root, "fail_at", 1, PROBE_MAX_STEPS, &out->fail_at, err, errlen)) !=
            ENMS_OK ||
        (rc = read_int(root, "crash_at", 1, PROBE_MAX_STEPS, &out->crash_at, err, errlen)) !=
            ENMS_OK ||
        (rc = read_int(root, "hang_at", 1, PROBE_MAX_STEPS, &out->hang_at, err, errlen)) != ENMS_OK)
        goto done;
done:
    cJSON_Delete(root);
    return rc;
}

/* Sleeps ms in slices, asking should_stop before each. 1 when told to stop.
 * No sleep at all for 0 ms: nanosleep(0) still costs a timer round on this
 * kind of VM (~80 us), a tenth of a no-op job's whole time in the worker. */
static int nap(struct train_ctx *ctx, long ms)
{
    if (ms <= 0)
        return ctx->should_stop(ctx->opaque);
    do {
        if (ctx->should_stop(ctx->opaque))
            return 1;
        long slice = ms < PROBE_SLICE_MS ? ms : PROBE_SLICE_MS;
        sleep_ms(slice);
        ms -= slice;
    } while (ms > 0);
    return ctx->should_stop(ctx->opaque);
}

int probe_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
              char *err, size_t errlen)
{
    struct probe_params p;
    char stage[64];
    int rc = probe_parse(job->params_json, &p, err, errlen);
    if (rc != ENMS_OK)
        return rc;

    ctx->progress(ctx->opaque, 0, "probe: step 0");
    for (long step = 1; step <= p.steps; step++) {
        if (step == p.fail_at)
            return enms_fail(err, errlen, ENMS_EINVAL, "probe failed at step %ld", step);
        if (step == p.crash_at) {
            /* SIGKILL rather than abort(): no core file, no sanitizer
             * report, exactly what a kill -9 or the OOM killer does. */
            log_event(LOG_WARN, job->id, "probe: crashing the worker at step %ld", step);
            raise(SIGKILL);
        }
        if (step == p.hang_at) {
            /* A live but stuck job: the heartbeat goes on, nothing else
             * happens, and only the timeout can end it. */
            log_event(LOG_WARN, job->id, "probe: hanging at step %ld", step);
            for (;;)
                sleep_ms(1000);
        }
        if (nap(ctx, p.step_ms))
            return enms_fail(err, errlen, ENMS_ESTOPPED, "probe stopped at step %ld", step);
        snprintf(stage, sizeof stage, "probe: step %ld/%ld", step, p.steps);
        ctx->progress(ctx->opaque, (int)(step * 100 / p.steps), stage);
    }
    char metrics[64];
    snprintf(metrics, sizeof metrics, "{\"steps\": %ld, \"probe\": true}", p.steps);
    out->metrics_json = strdup(metrics);
    if (!out->metrics_json)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    return ENMS_OK;
}
