/* stats.c - the statistics behind monitoring (see stats.h): OLS trend,
 * lag-1 autocorrelation and effective sample size, two-sample drift (PSI,
 * Kolmogorov-Smirnov), Wilcoxon signed-rank and Diebold-Mariano tests, and
 * type-7 quantiles. Pure functions: no database, no global state; scratch
 * memory is allocated and freed inside each call. Distribution functions
 * come from GSL; the Kolmogorov series and the exact signed-rank
 * distribution are computed here. */
#include "stats.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_sort.h>

#include "error.h"

/* Exact signed-rank p-values are computed below this many non-zero
 * differences (R's wilcox.test default); the largest V is then 49*50/2. */
#define WILCOX_EXACT_MAX 50
#define WILCOX_VMAX      (WILCOX_EXACT_MAX * (WILCOX_EXACT_MAX - 1) / 2)

#define PSI_MAX_BINS 1000

/* malloc of n doubles that refuses sizes that would overflow. NULL on
 * failure or n == 0; the caller frees. */
static double *alloc_doubles(size_t n)
{
    if (n == 0 || n > SIZE_MAX / sizeof(double))
        return NULL;
    return malloc(n * sizeof(double));
}

/* Copies the finite values of x into out (room for n); returns how many. */
static size_t copy_finite(const double *x, size_t n, double *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            out[m++] = x[i];
    return m;
}

/* Type-7 quantile of m sorted values (m >= 1), written as R's quantile()
 * does ((1 - h) * lo + h * hi) so results agree with R to the last bit or
 * two. */
static double quantile_sorted(const double *s, size_t m, double q)
{
    double index = (double)(m - 1) * q;
    double lo = floor(index);
    size_t i = (size_t)lo;
    if (i >= m - 1)
        return s[m - 1];
    double h = index - lo;
    if (h <= 0.0 || s[i + 1] == s[i])
        return s[i];
    return (1.0 - h) * s[i] + h * s[i + 1];
}

double stats_quantile(const double *x, size_t n, double q, double *scratch)
{
    if (!x || !scratch || !(q >= 0.0 && q <= 1.0))
        return NAN;
    size_t m = copy_finite(x, n, scratch);
    if (m == 0)
        return NAN;
    gsl_sort(scratch, 1, m);
    return quantile_sorted(scratch, m, q);
}

int stats_trend(const double *x, const double *y, size_t n, struct stats_trend *out, char *err,
                size_t errlen)
{
    if (!x || !y || !out)
        return enms_fail(err, errlen, ENMS_EINVAL, "trend needs x, y and an output");
    memset(out, 0, sizeof *out);
    size_t m = 0;
    double sx = 0.0, sy = 0.0, ymax = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            continue;
        m++;
        sx += x[i];
        sy += y[i];
        if (fabs(y[i]) > ymax)
            ymax = fabs(y[i]);
    }
    if (m < 3)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "trend needs at least 3 points with finite x and y, got %zu", m);
    double xbar = sx / (double)m, ybar = sy / (double)m;
    double sxx = 0.0, sxy = 0.0, syy = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            continue;
        double dx = x[i] - xbar, dy = y[i] - ybar;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if (!(sxx > 0.0))
        return enms_fail(err, errlen, ENMS_EINVAL, "trend needs x that is not constant");
    double slope = sxy / sxx;
    double intercept = ybar - slope * xbar;
    double rss = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            continue;
        double r = y[i] - (intercept + slope * x[i]);
        rss += r * r;
    }
    /* Residuals and slopes at the level of rounding error count as zero,
     * so a constant or exactly linear y gets the documented p of 1 or 0
     * instead of a t statistic made of rounding noise. */
    double tiny = 64.0 * DBL_EPSILON * ymax;
    int flat_residuals = rss <= (double)m * tiny * tiny;
    out->n = m;
    out->slope = slope;
    out->intercept = intercept;
    out->r_squared = syy > 0.0 ? 1.0 - rss / syy : 0.0;
    if (out->r_squared < 0.0)
        out->r_squared = 0.0;
    if (flat_residuals) {
        double xrange_slope = fabs(slope) * sqrt(sxx);
        out->slope_se = 0.0;
        if (xrange_slope <= tiny * sqrt((double)m)) {
            out->slope = 0.0;
            out->intercept = ybar;
            out->t_stat = 0.0;
            out->p_value = 1.0;
            out->r_squared = 0.0;
        } else {
            out->t_stat = slope > 0.0 ? DBL_MAX : -DBL_MAX;
            out->p_value = 0.0;
            out->r_squared = 1.0;
        }
        return ENMS_OK;
    }
    double df = (double)(m - 2);
    out->slope_se = sqrt(rss / df / sxx);
    out->t_stat = slope / out->slope_se;
    out->p_value = 2.0 * gsl_cdf_tdist_Q(fabs(out->t_stat), df);
    if (out->p_value > 1.0)
        out->p_value = 1.0;
    return ENMS_OK;
}

double stats_lag1_autocorr(const double *x, size_t n)
{
    if (!x)
        return 0.0;
    size_t m = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            sum += x[i];
            m++;
        }
    if (m < 3)
        return 0.0;
    double mean = sum / (double)m;
    /* acf()'s estimator over the finite values taken in order: the lag-1
     * autocovariance and the variance both divided by m. */
    double c0 = 0.0, c1 = 0.0, prev = NAN;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            continue;
        double dv = x[i] - mean;
        c0 += dv * dv;
        if (!isnan(prev))
            c1 += prev * dv;
        prev = dv;
    }
    if (!(c0 > 0.0))
        return 0.0;
    double r = c1 / c0;
    if (r > 1.0)
        r = 1.0;
    if (r < -1.0)
        r = -1.0;
    return r;
}

double stats_effective_n(size_t n, double rho)
{
    double ne = (double)n;
    if (rho > 0.0) {
        if (rho > 1.0)
            rho = 1.0;
        ne = ne * (1.0 - rho) / (1.0 + rho);
    }
    if (n >= 2 && ne < 2.0)
        ne = 2.0;
    return ne;
}

/* Upper tail of the Kolmogorov distribution, Q(lambda) = 2 sum_{j>=1}
 * (-1)^(j-1) exp(-2 j^2 lambda^2), as R's pkstwo: for lambda < 1 the
 * equivalent theta series sqrt(2 pi)/lambda sum exp(-(2j-1)^2 pi^2 /
 * (8 lambda^2)) of the lower tail converges faster. */
static double kolmogorov_q(double lambda)
{
    if (!(lambda > 0.0))
        return 1.0;
    if (lambda < 1.0) {
        double z = -(M_PI * M_PI / 8.0) / (lambda * lambda);
        double w = log(lambda);
        double s = 0.0;
        for (int k = 1; k < 20; k += 2)
            s += exp((double)(k * k) * z - w);
        double p = 1.0 - s * sqrt(2.0 * M_PI);
        return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    }
    double z = -2.0 * lambda * lambda;
    double sum = 0.0, sign = 1.0;
    for (int k = 1; k <= 100; k++) {
        double term = 2.0 * sign * exp(z * (double)k * (double)k);
        sum += term;
        if (fabs(term) < 1e-16 * sum || term == 0.0)
            break;
        sign = -sign;
    }
    return sum < 0.0 ? 0.0 : (sum > 1.0 ? 1.0 : sum);
}

/* sup |F_a - F_b| over two sorted samples; tied values are stepped over
 * together in both, as R's ks.test does. */
static double ks_statistic(const double *a, size_t na, const double *b, size_t nb)
{
    size_t i = 0, j = 0;
    double d = 0.0;
    while (i < na && j < nb) {
        double v = a[i] < b[j] ? a[i] : b[j];
        while (i < na && a[i] == v)
            i++;
        while (j < nb && b[j] == v)
            j++;
        double diff = fabs((double)i / (double)na - (double)j / (double)nb);
        if (diff > d)
            d = diff;
    }
    return d;
}

/* Number of values of sorted s that are <= v (binary search). */
static size_t count_le(const double *s, size_t m, double v)
{
    size_t lo = 0, hi = m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* PSI of sorted samples over bins cut at the reference's type-7 quantiles
 * k / bins. Bins are (e_{k-1}, e_k], the first open below and the last
 * open above; equal edges (many tied reference values) are merged, so
 * such a sample simply has fewer bins. */
static double psi_sorted(const double *ref, size_t nr, const double *rec, size_t nc, int bins)
{
    double psi = 0.0;
    double prev_edge = -INFINITY;
    size_t prev_r = 0, prev_c = 0;
    for (int k = 1; k <= bins; k++) {
        double edge = k == bins ? INFINITY : quantile_sorted(ref, nr, (double)k / (double)bins);
        if (k < bins && !(edge > prev_edge))
            continue;
        size_t cr = k == bins ? nr : count_le(ref, nr, edge);
        size_t cc = k == bins ? nc : count_le(rec, nc, edge);
        double pr = (double)(cr - prev_r) / (double)nr;
        double pc = (double)(cc - prev_c) / (double)nc;
        if (pr == 0.0)
            pr = 0.5 / (double)nr;
        if (pc == 0.0)
            pc = 0.5 / (double)nc;
        psi += (pc - pr) * log(pc / pr);
        prev_edge = edge;
        prev_r = cr;
        prev_c = cc;
    }
    return psi;
}

static void mean_sd(const double *x, size_t m, double *mean, double *sd)
{
    double s = 0.0;
    for (size_t i = 0; i < m; i++)
        s += x[i];
    *mean = s / (double)m;
    double ss = 0.0;
    for (size_t i = 0; i < m; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = m > 1 ? sqrt(ss / (double)(m - 1)) : 0.0;
}

int stats_drift(const double *ref, size_t n_ref, const double *recent, size_t n_recent,
                double n_eff_ref, double n_eff_recent, int bins, struct stats_drift *out, char *err,
                size_t errlen)
{
    int rc = ENMS_OK;
    double *r = NULL, *c = NULL;
    if (!ref || !recent || !out)
        return enms_fail(err, errlen, ENMS_EINVAL, "drift needs two samples and an output");
    memset(out, 0, sizeof *out);
    if (bins == 0)
        bins = 10;
    if (bins < 2 || bins > PSI_MAX_BINS)
        return enms_fail(err, errlen, ENMS_EINVAL, "drift bins must be between 2 and %d, got %d",
                         PSI_MAX_BINS, bins);
    if (!isfinite(n_eff_ref) || !isfinite(n_eff_recent) || n_eff_ref <= 0.0 || n_eff_recent <= 0.0)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "drift needs positive finite effective sample sizes");
    r = alloc_doubles(n_ref);
    c = alloc_doubles(n_recent);
    if ((n_ref && !r) || (n_recent && !c)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory copying drift samples");
        goto done;
    }
    size_t nr = r ? copy_finite(ref, n_ref, r) : 0;
    size_t nc = c ? copy_finite(recent, n_recent, c) : 0;
    if (nr < 5 || nc < 5) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "drift needs at least 5 finite values in each sample, got %zu and %zu", nr,
                       nc);
        goto done;
    }
    gsl_sort(r, 1, nr);
    gsl_sort(c, 1, nc);
    out->n_ref = nr;
    out->n_recent = nc;
    out->psi = psi_sorted(r, nr, c, nc, bins);
    out->ks_d = ks_statistic(r, nr, c, nc);
    /* Effective sizes above the finite counts (a caller passing an array
     * length that includes NaN) are capped to the counts. */
    double er = n_eff_ref < (double)nr ? n_eff_ref : (double)nr;
    double ec = n_eff_recent < (double)nc ? n_eff_recent : (double)nc;
    double ne = er * ec / (er + ec);
    double sq = sqrt(ne);
    out->ks_p = kolmogorov_q((sq + 0.12 + 0.11 / sq) * out->ks_d);
    double mr, sr, mc, sc;
    mean_sd(r, nr, &mr, &sr);
    mean_sd(c, nc, &mc, &sc);
    out->mean_shift = sr > 0.0 ? (mc - mr) / sr : 0.0;
    out->median_ref = quantile_sorted(r, nr, 0.5);
    out->median_recent = quantile_sorted(c, nc, 0.5);
done:
    free(r);
    free(c);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* P(V <= v) (upper == 0) or P(V >= v) (upper == 1) for the signed-rank
 * statistic of m untied ranks (m < WILCOX_EXACT_MAX), by counting the
 * subsets of {1..m} with each rank sum. Counts stay below 2^49, so doubles
 * hold them exactly; summing the wanted tail keeps small p-values exact. */
static double signrank_tail(size_t m, double v, int upper)
{
    double count[WILCOX_VMAX + 1];
    size_t top = m * (m + 1) / 2;
    memset(count, 0, sizeof count);
    count[0] = 1.0;
    for (size_t k = 1; k <= m; k++)
        for (size_t s = k * (k + 1) / 2; s >= k; s--)
            count[s] += count[s - k];
    double cum = 0.0;
    for (size_t s = 0; s <= top; s++)
        if (upper ? (double)s >= v : (double)s <= v)
            cum += count[s];
    return cum / ldexp(1.0, (int)m);
}

int stats_wilcoxon_signed_rank(const double *a, const double *b, size_t n, struct stats_paired *out,
                               char *err, size_t errlen)
{
    int rc = ENMS_OK;
    double *d = NULL, *mag = NULL, *rank = NULL;
    if (!a || !b || !out)
        return enms_fail(err, errlen, ENMS_EINVAL, "wilcoxon needs two samples and an output");
    memset(out, 0, sizeof *out);
    d = alloc_doubles(n);
    mag = alloc_doubles(n);
    rank = alloc_doubles(n);
    if (n == 0 || !d || !mag || !rank) {
        rc = n == 0 ? enms_fail(err, errlen, ENMS_EINVAL, "wilcoxon needs at least one pair")
                    : enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for wilcoxon");
        goto done;
    }
    /* Pairs with a non-finite side are skipped; zero differences count in
     * the median and mean but not in the test. */
    size_t m = 0, nz = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double di = a[i] - b[i];
        if (!isfinite(a[i]) || !isfinite(b[i]) || !isfinite(di))
            continue;
        d[m++] = di;
        sum += di;
        if (di != 0.0)
            mag[nz++] = fabs(di);
    }
    if (nz == 0) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "wilcoxon needs at least one non-zero finite difference");
        goto done;
    }
    out->mean_diff = sum / (double)m;
    /* d is reused: sorted for the median, then its non-zero values ranked
     * by magnitude through the sorted magnitudes in mag. */
    gsl_sort(d, 1, m);
    out->median_diff = quantile_sorted(d, m, 0.5);
    qsort(mag, nz, sizeof *mag, cmp_double);
    /* Average ranks of tied magnitudes; tie_term is sum(t^3 - t). */
    double tie_term = 0.0;
    int ties = 0;
    for (size_t i = 0; i < nz;) {
        size_t j = i;
        while (j + 1 < nz && mag[j + 1] == mag[i])
            j++;
        double avg = ((double)(i + 1) + (double)(j + 1)) / 2.0;
        for (size_t k = i; k <= j; k++)
            rank[k] = avg;
        double t = (double)(j - i + 1);
        if (j > i) {
            ties = 1;
            tie_term += t * t * t - t;
        }
        i = j + 1;
    }
    double v = 0.0;
    for (size_t i = 0; i < m; i++) {
        if (!(d[i] > 0.0))
            continue;
        /* Rank of d[i]'s magnitude: the tie group in mag holding it. */
        size_t k = count_le(mag, nz, d[i]);
        v += rank[k - 1];
    }
    out->n_used = nz;
    out->statistic = v;
    double nn = (double)nz;
    double centre = nn * (nn + 1.0) / 4.0;
    if (nz < WILCOX_EXACT_MAX && !ties) {
        double p = v > centre ? signrank_tail(nz, v, 1) : signrank_tail(nz, v, 0);
        p *= 2.0;
        out->p_value = p > 1.0 ? 1.0 : p;
    } else {
        double z = v - centre;
        double sigma = sqrt(nn * (nn + 1.0) * (2.0 * nn + 1.0) / 24.0 - tie_term / 48.0);
        double corr = z > 0.0 ? 0.5 : (z < 0.0 ? -0.5 : 0.0);
        z = (z - corr) / sigma;
        double p = 2.0 * gsl_cdf_ugaussian_Q(fabs(z));
        out->p_value = p > 1.0 ? 1.0 : p;
    }
done:
    free(d);
    free(mag);
    free(rank);
    return rc;
}

/* Long-run variance of the mean of d as forecast::dm.test's "acf"
 * estimator: (gamma_0 + 2 sum_{k<h} gamma_k) / n, gamma_k the lag-k
 * autocovariance with divisor n. */
static double dm_variance(const double *d, size_t n, double mean, int h)
{
    double var = 0.0;
    for (int k = 0; k < h; k++) {
        double g = 0.0;
        for (size_t t = (size_t)k; t < n; t++)
            g += (d[t] - mean) * (d[t - (size_t)k] - mean);
        g /= (double)n;
        var += k == 0 ? g : 2.0 * g;
    }
    return var / (double)n;
}

int stats_diebold_mariano(const double *loss_a, const double *loss_b, size_t n, int h,
                          struct stats_paired *out, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    double *d = NULL;
    if (!loss_a || !loss_b || !out)
        return enms_fail(err, errlen, ENMS_EINVAL, "diebold-mariano needs two loss series");
    memset(out, 0, sizeof *out);
    if (n < 3)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "diebold-mariano needs at least 3 losses, got %zu", n);
    if (h < 1 || (size_t)h > n)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "diebold-mariano horizon must be between 1 and %zu, got %d", n, h);
    d = alloc_doubles(n);
    if (!d) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for diebold-mariano");
        goto done;
    }
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        d[i] = loss_a[i] - loss_b[i];
        if (!isfinite(loss_a[i]) || !isfinite(loss_b[i]) || !isfinite(d[i])) {
            rc = enms_fail(err, errlen, ENMS_EINVAL,
                           "diebold-mariano loss %zu is not a finite number", i);
            goto done;
        }
        sum += d[i];
    }
    double nn = (double)n;
    double mean = sum / nn;
    /* The HLN factor of the requested horizon must be positive (dm.test
     * would silently report DM = 0 or NaN for such a horizon). */
    double hr = (double)h;
    if (!((nn + 1.0 - 2.0 * hr + (hr / nn) * (hr - 1.0)) / nn > 0.0)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "diebold-mariano horizon %d is too long for %zu losses", h, n);
        goto done;
    }
    double var = dm_variance(d, n, mean, h);
    /* dm.test falls back to h = 1 when the truncated long-run variance
     * comes out negative. */
    if (!(var > 0.0) && h > 1) {
        h = 1;
        var = dm_variance(d, n, mean, 1);
    }
    if (!(var > 0.0)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "diebold-mariano needs loss differences that are not all equal");
        goto done;
    }
    double hh = (double)h;
    double k2 = (nn + 1.0 - 2.0 * hh + (hh / nn) * (hh - 1.0)) / nn;
    out->n_used = n;
    out->mean_diff = mean;
    out->statistic = mean / sqrt(var) * sqrt(k2);
    double p = 2.0 * gsl_cdf_tdist_Q(fabs(out->statistic), nn - 1.0);
    out->p_value = p > 1.0 ? 1.0 : p;
    gsl_sort(d, 1, n);
    out->median_diff = quantile_sorted(d, n, 0.5);
done:
    free(d);
    return rc;
}
