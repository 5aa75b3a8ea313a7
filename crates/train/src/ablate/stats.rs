//! Statistics over seeds: the mean with a two-sided Student-t confidence interval, and the
//! paired difference of two variants over the same seeds.
//!
//! For `n` values with mean `m` and sample standard deviation `s` (divisor `n − 1`), the
//! level-`c` interval is `m ± t_{(1+c)/2, n−1} · s / √n`. With one value there is no
//! interval (`half_width = None`): one seed says nothing about seed-to-seed spread.
//!
//! The t quantile is computed here: the t CDF through the regularized incomplete beta
//! function (a continued fraction), inverted by bisection; for `df = ∞` the normal quantile.

use serde::{Deserialize, Serialize};

/// The confidence level of every interval ember reports.
pub const LEVEL: f64 = 0.95;

/// A mean over `n` values and the half-width of its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`; 0 when `n = 1`).
    pub sd: f64,
    /// Number of values.
    pub n: usize,
    /// `t_{(1+level)/2, n−1} · sd / √n`; `None` when `n = 1` (no interval).
    pub half_width: Option<f64>,
}

impl Estimate {
    /// `(low, high)` of the interval, if there is one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }

    /// Whether the interval exists and leaves out 0 (for a difference: a consistent sign).
    pub fn excludes_zero(&self) -> bool {
        self.interval().is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }
}

/// Mean and level-`level` Student-t interval of `xs` (`level` in (0, 1), e.g. [`LEVEL`]);
/// `None` when `xs` is empty.
pub fn estimate(xs: &[f64], level: f64) -> Option<Estimate> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Estimate { mean, sd: 0.0, n, half_width: None });
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let t = t_quantile(0.5 + level / 2.0, (n - 1) as f64);
    Some(Estimate { mean, sd, n, half_width: Some(t * sd / (n as f64).sqrt()) })
}

/// The paired difference `x − y` over the seeds both have: the [`estimate`] of the per-seed
/// differences. `x` and `y` are `(seed, value)` in any order; seeds in only one are ignored.
/// `None` when no seed is shared.
pub fn paired_difference(x: &[(u64, f64)], y: &[(u64, f64)], level: f64) -> Option<Estimate> {
    let diffs: Vec<f64> = x.iter().filter_map(|(s, a)| y.iter().find(|(t, _)| t == s).map(|(_, b)| a - b)).collect();
    estimate(&diffs, level)
}

/// The `p`-quantile of Student's t with `df > 0` degrees of freedom (`df = f64::INFINITY`:
/// the standard normal), `p` in (0, 1). Accurate to about 1e-9.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile needs 0 < p < 1 and df > 0, got p = {p}, df = {df}");
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    if df > 1e6 {
        // Cornish–Fisher in 1/df (Abramowitz & Stegun 26.7.5): the next term is O(df⁻³)
        let z = normal_quantile(p);
        let (z3, z5) = (z.powi(3), z.powi(5));
        return z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df);
    }
    let mut hi = 1.0;
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p { lo = mid } else { hi = mid }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// `P(T ≤ t)` for Student's t with `df` degrees of freedom (finite, > 0).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let (t2, sum) = (t * t, df + t * t);
    let tail = 0.5 * inc_beta(df / sum, t2 / sum, df / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The regularized incomplete beta function `I_x(a, b)` (Numerical Recipes' continued
/// fraction, with the symmetry `I_x(a, b) = 1 − I_{1−x}(b, a)` where it converges faster).
/// `y = 1 − x`, passed separately so that an `x` near 1 keeps its precision.
fn inc_beta(x: f64, y: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(y, b, a) / b
    }
}

/// The continued fraction of `I_x(a, b)` (modified Lentz).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..100_000 {
        let m = m as f64;
        for num in [m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)), -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))] {
            d = 1.0 + num * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + num / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; relative error ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9, 676.520_368_121_885_1, -1_259.139_216_722_402_8, 771.323_428_777_653_1,
        -176.615_029_162_140_6, 12.507_343_278_686_905, -0.138_571_095_265_720_12, 9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection: Γ(x) Γ(1 − x) = π / sin(πx)
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = G[0] + (1..9).map(|i| G[i] / (x + i as f64)).sum::<f64>();
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The standard normal `p`-quantile (Acklam's rational approximation; relative error
/// below 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.383577518672690e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let poly = |c: &[f64], x: f64| c.iter().fold(0.0, |acc, k| acc * x + k);
    if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        poly(&C, q) / (poly(&D, q) * q + 1.0)
    } else if p <= 1.0 - 0.02425 {
        let q = p - 0.5;
        let r = q * q;
        poly(&A, r) * q / (poly(&B, r) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -poly(&C, q) / (poly(&D, q) * q + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_published_tables() {
        // Two-sided 95 % critical values (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
        for (df, table) in [(1.0, 12.706), (2.0, 4.303), (3.0, 3.182), (4.0, 2.776), (9.0, 2.262), (10.0, 2.228), (29.0, 2.045), (30.0, 2.042), (120.0, 1.980)] {
            let t = t_quantile(0.975, df);
            assert!((t - table).abs() < 1e-3, "df {df}: {t} vs {table}");
        }
        for df in [1e5, 1e6, 1e7, 1e12, f64::INFINITY] {
            assert!((t_quantile(0.975, df) - 1.960).abs() < 1e-3, "df {df}");
        }
        // Other levels: one-sided 0.995 at df 4 = 4.604, 0.90 at df 7 = 1.415.
        assert!((t_quantile(0.995, 4.0) - 4.604).abs() < 1e-3 && (t_quantile(0.9, 7.0) - 1.415).abs() < 1e-3);
        // Closed forms: df 1 (Cauchy) tan(π(p − ½)); df 2 (2p − 1) / √(2p(1 − p)); the normal
        // 0.975 quantile 1.959963985; and the two branches agree across df = 10⁶.
        for p in [0.6, 0.9, 0.975, 0.999] {
            assert!((t_quantile(p, 1.0) - (std::f64::consts::PI * (p - 0.5)).tan()).abs() < 1e-9 * t_quantile(p, 1.0), "df 1, p {p}");
            assert!((t_quantile(p, 2.0) - (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt()).abs() < 1e-9, "df 2, p {p}");
        }
        assert!((t_quantile(0.975, f64::INFINITY) - 1.959_963_985).abs() < 1e-8);
        assert!((t_quantile(0.975, 1e6) - t_quantile(0.975, 1e6 + 1.0)).abs() < 1e-8);
        assert!((t_quantile(0.025, 9.0) + t_quantile(0.975, 9.0)).abs() < 1e-12, "symmetric");
        assert!((t_cdf(2.262157, 9.0) - 0.975).abs() < 1e-7 && t_cdf(0.0, 3.0) == 0.5);
    }

    #[test]
    fn intervals_match_hand_computation() {
        // 2.0, 2.2, 2.4: mean 2.2, s = 0.2, t(0.975, 2) = 4.3026527 → ± 4.3026527 · 0.2 / √3 = 0.4968275.
        let e = estimate(&[2.0, 2.2, 2.4], LEVEL).unwrap();
        assert!((e.mean - 2.2).abs() < 1e-12 && (e.sd - 0.2).abs() < 1e-12 && e.n == 3);
        assert!((e.half_width.unwrap() - 0.496_827_5).abs() < 1e-6, "{e:?}");
        let (lo, hi) = e.interval().unwrap();
        assert!((lo - 1.703_172_5).abs() < 1e-6 && (hi - 2.696_827_5).abs() < 1e-6 && e.excludes_zero());
        assert!(!estimate(&[-0.1, 0.2, 0.05], LEVEL).unwrap().excludes_zero(), "an interval around 0");
        // One value: a mean, no interval; none: nothing.
        assert_eq!(estimate(&[1.5], LEVEL), Some(Estimate { mean: 1.5, sd: 0.0, n: 1, half_width: None }));
        assert_eq!(estimate(&[], LEVEL), None);
    }

    #[test]
    fn paired_difference_matches_hand_computation() {
        // Seeds 1..4, in different orders: differences 0.10, 0.05, 0.15, 0.10 → mean 0.10,
        // s = √(0.005 / 3) = 0.0408248, t(0.975, 3) = 3.1824463 → ± 3.1824463 · 0.0408248 / 2 = 0.0649614.
        let a = [(1, 2.10), (2, 2.30), (3, 2.20), (4, 2.40)];
        let b = [(4, 2.30), (2, 2.25), (3, 2.05), (1, 2.00), (9, 5.0)];
        let d = paired_difference(&a, &b, LEVEL).unwrap();
        assert_eq!(d.n, 4, "seed 9 is in b only");
        assert!((d.mean - 0.10).abs() < 1e-12 && (d.sd - 0.040_824_8).abs() < 1e-6, "{d:?}");
        assert!((d.half_width.unwrap() - 0.064_961_4).abs() < 1e-6, "{d:?}");
        assert!(d.excludes_zero(), "[0.035, 0.165]");
        // The unpaired interval of a's mean alone is wider than the whole difference.
        assert!(estimate(&a.map(|x| x.1), LEVEL).unwrap().half_width.unwrap() > 0.1);
        assert_eq!(paired_difference(&a, &[(7, 1.0)], LEVEL), None, "no shared seed");
        assert_eq!(paired_difference(&a[..1], &b, LEVEL).unwrap().half_width, None, "one shared seed: no interval");
    }
}
