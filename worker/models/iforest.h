/* iforest.h - Isolation Forest (Liu, Ting & Zhou 2008) over rows of
 * numeric features: building the trees from a seeded generator, scoring,
 * and the compact tree layout that model_json.c stores.
 *
 * It knows nothing of energy: anomaly.c chooses the features and the
 * threshold. Deterministic: the same rows, settings and seed give the same
 * trees on every platform (our own xoshiro256** generator, no libc rand). */
#ifndef ENMS_IFOREST_H
#define ENMS_IFOREST_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define IFOREST_MAX_FEATURES  8
#define IFOREST_MAX_TREES     1000
#define IFOREST_MAX_SUBSAMPLE 4096
/* Tree height limit ceil(log2 subsample) is at most 12; a loaded tree may
 * not be deeper than this. */
#define IFOREST_MAX_DEPTH 16

/* One node, stored in preorder: an internal node's left child follows it,
 * its right child starts at `right`. A leaf has feature -1 and value = the
 * number of training rows that reached it. */
struct iforest_node {
    int32_t feature;
    int32_t right; /* index within the tree; 0 for leaves */
    double value;  /* split point (go left when x < value) or leaf size */
};

struct iforest {
    int nfeatures;
    int ntrees;
    int subsample;  /* psi actually used: min(requested, rows) */
    int max_depth;  /* ceil(log2 psi) */
    size_t *offset; /* ntrees + 1 entries: tree t is nodes[offset[t]..offset[t+1]) */
    struct iforest_node *nodes;
};

/* Average path length of an unsuccessful search in a binary search tree of
 * n points: c(n) = 2 H(n-1) - 2 (n-1) / n with H(i) ~ ln(i) + Euler's
 * constant; c(2) = 1 and c(n <= 1) = 0. */
double iforest_c(double n);

/* Builds ntrees trees on subsamples (without replacement) of the n rows of
 * x (row-major, nfeatures columns, finite values). Reports "tree t/N"
 * progress in [lo, hi] of hooks and stops with ENMS_ESTOPPED when asked.
 * On success *f owns its arrays (iforest_free()); on error *f is empty. */
int iforest_build(const double *x, size_t n, int nfeatures, int ntrees, int subsample,
                  uint64_t seed, const struct model_hooks *hooks, double lo, double hi,
                  struct iforest *f, char *err, size_t errlen);

/* Anomaly score s = 2^(-E[h(x)] / c(psi)) of one row of nfeatures values. */
double iforest_score(const struct iforest *f, const double *row);

/* Checks a forest from outside (a loaded artifact): counts and offsets in
 * range, every tree a well-formed preorder tree within IFOREST_MAX_DEPTH,
 * features in range, finite values, leaf sizes >= 1. Fills the `right`
 * indices. Returns 0 or ENMS_EINVAL with a sentence in err. */
int iforest_validate(struct iforest *f, char *err, size_t errlen);

void iforest_free(struct iforest *f);

#endif
