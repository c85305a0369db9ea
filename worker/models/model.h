/* model.h - what every model in worker/models/ shares: progress and cancel
 * hooks, and the shape of its output.
 *
 * Model code is pure computation over arrays: it knows nothing of Redis,
 * HTTP or PostgreSQL, so it can be unit-tested against reference values and
 * fuzzed alone. The worker loads the data, calls a model's fit function with
 * these hooks, and stores the artifact and metrics it returns. */
#ifndef ENMS_MODEL_H
#define ENMS_MODEL_H

#include <stddef.h>

struct model_hooks {
    /* fraction in [0, 1] of this model's own work, and a short stage text
     * ("features", "fitting (3,1,1)(0,1,1)[12]", "tree 40/100"). May be NULL. */
    void (*progress)(void *opaque, double fraction, const char *stage);
    /* Nonzero when the work must stop now; the model then returns
     * ENMS_ESTOPPED. Called at least every ~100 ms of work. May be NULL. */
    int (*should_stop)(void *opaque);
    void *opaque;
};

/* Convenience wrappers that tolerate NULL hooks. */
static inline void model_report(const struct model_hooks *h, double fraction, const char *stage)
{
    if (h && h->progress)
        h->progress(h->opaque, fraction, stage);
}

static inline int model_should_stop(const struct model_hooks *h)
{
    return h && h->should_stop && h->should_stop(h->opaque);
}

#endif
