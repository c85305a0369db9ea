/* iforest.c - Isolation Forest trees: build, score, validate. The choice of
 * features and of a threshold belongs to anomaly.c; storage to
 * model_json.c. */
#include "iforest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/error.h"
#include "../../common/rng.h"

#define EULER_GAMMA 0.5772156649015329

double iforest_c(double n)
{
    if (n <= 1)
        return 0.0;
    if (n <= 2)
        return 1.0;
    return 2.0 * (log(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n;
}

void iforest_free(struct iforest *f)
{
    if (!f)
        return;
    free(f->offset);
    free(f->nodes);
    *f = (struct iforest){0};
}

struct builder {
    const double *x;
    int nf;
    int max_depth;
    struct rng rng;             /* common/rng.h: the seeded generator */
    struct iforest_node *nodes; /* this tree's nodes */
    size_t count;
};

/* Grows the subtree over idx[0..n-1] at depth d in preorder. */
static void grow(struct builder *b, size_t *idx, size_t n, int d)
{
    size_t me = b->count++;
    struct iforest_node *node = &b->nodes[me];
    *node = (struct iforest_node){.feature = -1, .value = (double)n};
    if (d >= b->max_depth || n <= 1)
        return;
    /* Pick uniformly among the features that still vary here; when none
     * does, the rows are identical and the node is a leaf. */
    double lo[IFOREST_MAX_FEATURES], hi[IFOREST_MAX_FEATURES];
    int varying[IFOREST_MAX_FEATURES], nv = 0;
    for (int f = 0; f < b->nf; f++) {
        lo[f] = hi[f] = b->x[idx[0] * (size_t)b->nf + (size_t)f];
        for (size_t i = 1; i < n; i++) {
            double v = b->x[idx[i] * (size_t)b->nf + (size_t)f];
            lo[f] = fmin(lo[f], v);
            hi[f] = fmax(hi[f], v);
        }
        if (hi[f] > lo[f])
            varying[nv++] = f;
    }
    if (nv == 0)
        return;
    int f = varying[rng_below(&b->rng, (size_t)nv)];
    double split = lo[f] + rng_uniform(&b->rng) * (hi[f] - lo[f]);
    if (!(split > lo[f]))
        split = hi[f]; /* keep both sides non-empty when the draw is 0 */
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
        if (b->x[idx[i] * (size_t)b->nf + (size_t)f] < split) {
            size_t t = idx[i];
            idx[i] = idx[left];
            idx[left++] = t;
        }
    node->feature = f;
    node->value = split;
    grow(b, idx, left, d + 1);
    b->nodes[me].right = (int32_t)(b->count - me);
    grow(b, idx + left, n - left, d + 1);
}

int iforest_build(const double *x, size_t n, int nfeatures, int ntrees, int subsample,
                  uint64_t seed, const struct model_hooks *hooks, double lo, double hi,
                  struct iforest *f, char *err, size_t errlen)
{
    *f = (struct iforest){0};
    if (nfeatures < 1 || nfeatures > IFOREST_MAX_FEATURES || ntrees < 1 ||
        ntrees > IFOREST_MAX_TREES || subsample < 2 || subsample > IFOREST_MAX_SUBSAMPLE)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "forest of %d trees, subsample %d, %d features is out of bounds", ntrees,
                         subsample, nfeatures);
    if (n < 2)
        return enms_fail(err, errlen, ENMS_EINVAL, "insufficient data: %zu rows, need 2", n);
    int psi = (size_t)subsample < n ? subsample : (int)n;
    int depth = (int)ceil(log2((double)psi));
    size_t per_tree = 2 * (size_t)psi - 1;
    struct iforest out = {
        .nfeatures = nfeatures, .ntrees = ntrees, .subsample = psi, .max_depth = depth};
    size_t *all = malloc(n * sizeof *all);
    out.offset = malloc(((size_t)ntrees + 1) * sizeof *out.offset);
    out.nodes = malloc((size_t)ntrees * per_tree * sizeof *out.nodes);
    int rc = 0;
    if (!all || !out.offset || !out.nodes) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for %d trees", ntrees);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        all[i] = i;
    struct builder b = {.x = x, .nf = nfeatures, .max_depth = depth};
    rng_seed(&b.rng, seed);
    size_t used = 0;
    char stage[32];
    for (int t = 0; t < ntrees; t++) {
        if (model_should_stop(hooks)) {
            rc = enms_fail(err, errlen, ENMS_ESTOPPED, "stopped at tree %d of %d", t, ntrees);
            goto fail;
        }
        snprintf(stage, sizeof stage, "tree %d/%d", t + 1, ntrees);
        model_report(hooks, lo + (hi - lo) * t / ntrees, stage);
        /* Partial Fisher-Yates: the first psi entries become the sample. */
        for (size_t i = 0; i < (size_t)psi; i++) {
            size_t j = i + rng_below(&b.rng, n - i);
            size_t tmp = all[i];
            all[i] = all[j];
            all[j] = tmp;
        }
        out.offset[t] = used;
        b.nodes = out.nodes + used;
        b.count = 0;
        grow(&b, all, (size_t)psi, 0);
        used += b.count;
    }
    out.offset[ntrees] = used;
    free(all);
    *f = out;
    return 0;
fail:
    free(all);
    iforest_free(&out);
    return rc;
}

double iforest_score(const struct iforest *f, const double *row)
{
    double total = 0;
    for (int t = 0; t < f->ntrees; t++) {
        const struct iforest_node *nodes = f->nodes + f->offset[t];
        size_t i = 0;
        int depth = 0;
        while (nodes[i].feature >= 0) {
            i = row[nodes[i].feature] < nodes[i].value ? i + 1 : i + (size_t)nodes[i].right;
            depth++;
        }
        total += depth + iforest_c(nodes[i].value);
    }
    double c = iforest_c(f->subsample);
    return pow(2.0, -(total / f->ntrees) / c);
}

/* Walks one tree of `count` nodes in preorder with an explicit stack,
 * setting `right` and checking that it ends exactly at the last node. */
static int validate_tree(struct iforest_node *nodes, size_t count, int nfeatures, int max_depth)
{
    /* stack of internal nodes waiting for their right child, with depths */
    size_t stack[IFOREST_MAX_DEPTH + 1];
    int depth_of[IFOREST_MAX_DEPTH + 1];
    int top = 0, depth = 0;
    for (size_t i = 0; i < count; i++) {
        struct iforest_node *nd = &nodes[i];
        if (depth > max_depth || !isfinite(nd->value))
            return -1;
        if (nd->feature >= 0) {
            if (nd->feature >= nfeatures || top > IFOREST_MAX_DEPTH)
                return -1;
            stack[top] = i;
            depth_of[top++] = depth;
            depth++;
            continue;
        }
        if (nd->feature != -1 || !(nd->value >= 1) || nd->value > 1e9)
            return -1;
        nd->right = 0;
        /* A leaf ends a left subtree: the next node is the right child of
         * the innermost waiting internal node. */
        if (top == 0)
            return i + 1 == count ? 0 : -1;
        size_t parent = stack[--top];
        nodes[parent].right = (int32_t)(i + 1 - parent);
        depth = depth_of[top] + 1;
        if (i + 1 >= count)
            return -1; /* the parent has no right child */
    }
    return -1; /* an internal node without children */
}

int iforest_validate(struct iforest *f, char *err, size_t errlen)
{
    if (f->nfeatures < 1 || f->nfeatures > IFOREST_MAX_FEATURES || f->ntrees < 1 ||
        f->ntrees > IFOREST_MAX_TREES || f->subsample < 2 || f->subsample > IFOREST_MAX_SUBSAMPLE ||
        f->max_depth < 1 || f->max_depth > IFOREST_MAX_DEPTH)
        return enms_fail(err, errlen, ENMS_EINVAL, "forest dimensions out of bounds");
    if (!f->offset || !f->nodes || f->offset[0] != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "forest without nodes");
    for (int t = 0; t < f->ntrees; t++) {
        size_t a = f->offset[t], b = f->offset[t + 1];
        if (b <= a || b - a > 2 * (size_t)IFOREST_MAX_SUBSAMPLE)
            return enms_fail(err, errlen, ENMS_EINVAL, "tree %d has a bad node count", t);
        if (validate_tree(f->nodes + a, b - a, f->nfeatures, f->max_depth))
            return enms_fail(err, errlen, ENMS_EINVAL, "tree %d is malformed", t);
    }
    return 0;
}
