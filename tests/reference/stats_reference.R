# stats_reference.R - produces the reference values hard-coded in
# tests/unit/test_stats.c for common/stats.c. The project does not run or
# depend on this script; it records where the numbers came from.
#
# Produced with: R 4.2.2 Patched (2022-11-10 r83330), Debian package
# r-base-core 4.2.2.20221110-2, and forecast 8.20 (r-cran-forecast 8.20-1):
#   Rscript tests/reference/stats_reference.R
#
# The data sets are written here exactly as the C test builds them (the
# same formulas or literals), so the values can be pasted back.
suppressMessages(library(forecast))
p <- function(name, v) cat(sprintf("%-28s %.17g\n", name, unname(v)))

## Wilcoxon signed-rank (stats::wilcox.test, paired, correct = TRUE)
# W1: the example from ?wilcox.test (no ties, no zeros: exact).
x <- c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30)
y <- c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29)
w <- wilcox.test(x, y, paired = TRUE)
p("W1.V", w$statistic); p("W1.p", w$p.value); p("W1.p_greater", wilcox.test(x, y, paired = TRUE, alternative = "greater")$p.value)
p("W1.median", median(x - y)); p("W1.mean", mean(x - y))
# W2: zeros but no ties. R itself would switch to the normal approximation
# because of the zeros; the contract in stats.h keeps the exact test on the
# non-zero differences, i.e. R's exact test of d[d != 0].
a <- c(1.5, 2.25, 3, 4.75, 0.5, 6, 2, 7.125, 3.5, 5)
b <- c(1.5, 1, 3.5, 2.5, 0.5, 2.875, 2, 1, 3.25, 8)
d <- a - b
w <- wilcox.test(d[d != 0], exact = TRUE)
p("W2.V", w$statistic); p("W2.p", w$p.value); p("W2.median_all", median(d)); p("W2.mean_all", mean(d))
p("W2.R_normal_p_for_info", suppressWarnings(wilcox.test(a, b, paired = TRUE))$p.value)
# W3: integer data with ties and zeros: normal approximation with tie and
# continuity corrections (what R does here too).
a <- c(5, 3, 7, 2, 8, 4, 6, 9, 1, 3, 10, 6)
b <- c(3, 3, 4, 4, 5, 4, 2, 5, 3, 1, 4, 7)
w <- suppressWarnings(wilcox.test(a, b, paired = TRUE))
p("W3.V", w$statistic); p("W3.p", w$p.value); p("W3.median", median(a - b))
# W4: n = 60, no ties: normal approximation (n >= 50).
i <- 1:60
a <- sin(1.3 * i) + 0.15; b <- cos(0.9 * i)
stopifnot(!any(duplicated(abs(a - b))))
w <- wilcox.test(a, b, paired = TRUE)
p("W4.V", w$statistic); p("W4.p", w$p.value)
# W5: n = 20, no ties: exact.
i <- 1:20
a <- sin(1.3 * i) + 0.4; b <- cos(0.9 * i)
w <- wilcox.test(a, b, paired = TRUE)
p("W5.V", w$statistic); p("W5.p", w$p.value)
# W6: d = 1..10, all positive: V = 55, p = 2 / 2^10.
w <- wilcox.test(1:10, exact = TRUE)
p("W6.V", w$statistic); p("W6.p", w$p.value)
# W7: n = 49 (largest exact), no ties.
i <- 1:49
a <- sin(1.3 * i) + 0.1; b <- cos(0.9 * i)
stopifnot(!any(duplicated(abs(a - b))))
w <- wilcox.test(a, b, paired = TRUE)
p("W7.V", w$statistic); p("W7.p", w$p.value)

## Diebold-Mariano (forecast::dm.test, two-sided, power = 1 on
## non-negative losses, varestimator "acf")
i <- 1:40
la <- (1.2 * sin(0.2 * i))^2 + 0.1
lb <- cos(0.15 * i)^2 + 0.3
for (h in c(1, 4)) {
  r <- dm.test(la, lb, h = h, power = 1)
  stopifnot(r$parameter[1] == h)
  p(sprintf("DM.h%d.stat", h), r$statistic); p(sprintf("DM.h%d.p", h), r$p.value)
}
p("DM.mean", mean(la - lb)); p("DM.median", median(la - lb))
# Squared errors through power = 2 equal power = 1 on their squares.
e1 <- sin(0.3 * i) + 0.2; e2 <- 0.8 * cos(0.45 * i)
r <- dm.test(e1, e2, h = 2, power = 2)
p("DM.sq.h2.stat", r$statistic); p("DM.sq.h2.p", r$p.value)
# Alternating differences: with h = 2 the variance is negative and dm.test
# falls back to h = 1 (with a warning).
i <- 1:30
la <- 1 + 0.5 * (-1)^i + 0.01 * i
lb <- rep(1, 30)
r <- suppressWarnings(dm.test(la, lb, h = 2, power = 1))
p("DM.alt.h2.stat", r$statistic); p("DM.alt.h2.p", r$p.value)
p("DM.alt.h2.param_h", r$parameter[1])

## Kolmogorov-Smirnov and PSI
# Q_KS with Stephens' correction (Numerical Recipes' probks), written here
# as the plain alternating series, cross-checked against R's C_pKS2.
qks <- function(l) { if (l <= 0) return(1); j <- 1:200; min(1, max(0, 2 * sum((-1)^(j - 1) * exp(-2 * j^2 * l^2)))) }
ks_p <- function(D, n1, n2) { ne <- n1 * n2 / (n1 + n2); lam <- (sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) * D
  q1 <- qks(lam); q2 <- 1 - .Call(stats:::C_pKS2, lam, tol = 1e-15)
  stopifnot(abs(q1 - q2) < 1e-12); q1 }
# PSI with bins cut at unique type-7 quantiles, bins (lo, hi].
psi <- function(ref, rec, bins) {
  e <- unique(unname(quantile(ref, (1:(bins - 1)) / bins, type = 7)))
  br <- c(-Inf, e, Inf)
  cr <- as.vector(table(cut(ref, br, right = TRUE))) / length(ref)
  cc <- as.vector(table(cut(rec, br, right = TRUE))) / length(rec)
  cr[cr == 0] <- 0.5 / length(ref); cc[cc == 0] <- 0.5 / length(rec)
  sum((cc - cr) * log(cc / cr))
}
i <- 1:150; ref <- 2 * sin(0.37 * i) + 0.01 * i
j <- 1:120; rec <- 2 * sin(0.41 * j + 1) + 0.8 + 0.01 * j
D <- ks.test(ref, rec)$statistic
p("KS1.D", D)
p("KS1.p_raw", ks_p(D, 150, 120))
p("KS1.p_eff", ks_p(D, 30.5, 20.25))
p("KS1.R_asymptotic_p_raw_for_info", ks.test(ref, rec, exact = FALSE)$p.value)
p("KS1.psi10", psi(ref, rec, 10)); p("KS1.psi4", psi(ref, rec, 4))
p("KS1.mean_shift", (mean(rec) - mean(ref)) / sd(ref))
p("KS1.median_ref", median(ref)); p("KS1.median_rec", median(rec))
# Tied values (quarters): D with ties, PSI with merged edges.
i <- 1:80; ref <- floor(4 * sin(0.37 * i)) / 4
j <- 1:60; rec <- floor(4 * sin(0.41 * j + 1) + 1) / 4
D <- suppressWarnings(ks.test(ref, rec))$statistic
p("KS2.D", D); p("KS2.p_raw", ks_p(D, 80, 60)); p("KS2.psi10", psi(ref, rec, 10))
p("KS2.n_unique_edges10", length(unique(quantile(ref, (1:9) / 10, type = 7))))
# Large D, tiny p: identical shapes far apart.
p("KS3.p_D0.9_n100", ks_p(0.9, 100, 100))
p("KS3.p_D0.2_n20", ks_p(0.2, 20, 20))
p("KS3.p_D0.05_n20", ks_p(0.05, 20, 20))

## Trend (stats::lm): y on x, NaN pairs dropped.
x <- as.numeric(1:30); y <- 0.05 * x + sin(x)
y[5] <- NaN; x[9] <- NaN
m <- summary(lm(y ~ x))
p("T1.slope", m$coefficients[2, 1]); p("T1.intercept", m$coefficients[1, 1])
p("T1.se", m$coefficients[2, 2]); p("T1.t", m$coefficients[2, 3]); p("T1.p", m$coefficients[2, 4])
p("T1.r2", m$r.squared)
x <- as.numeric(1:12); y <- 3 + cos(2.1 * x)
m <- summary(lm(y ~ x))
p("T2.slope", m$coefficients[2, 1]); p("T2.se", m$coefficients[2, 2]); p("T2.p", m$coefficients[2, 4])

## Quantile type 7
x <- c(3.5, NaN, -1, 2, 10, 7.25, 2, 0.5)
q <- quantile(x[is.finite(x)], c(0, 0.1, 0.25, 0.5, 0.9, 1, 1/3), type = 7)
for (k in seq_along(q)) p(sprintf("Q.%d", k), q[k])

## Lag-1 autocorrelation (stats::acf)
i <- 1:50; x <- 2 * sin(0.37 * i) + 0.01 * i
x[c(7, 20)] <- NaN
p("A1.r1", acf(x[is.finite(x)], lag.max = 1, plot = FALSE)$acf[2])
p("A2.alternating10", acf(rep(c(1, -1), 5), lag.max = 1, plot = FALSE)$acf[2])
