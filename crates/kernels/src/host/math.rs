//! Exact GELU, `gelu(x) = x·Φ(x)`, `Φ(x) = ½(1 + erf(x/√2))`, without a scalar `erf` call
//! per element on the CPU backends.
//!
//! Burn's CPU kernels evaluate `libm::erff` element by element in the forward pass and again
//! (with an `exp`) in the backward pass: about a tenth of a training step of the main job
//! (issue #9's profile). Here, on a host-memory device (flex, ndarray) and in f32, one pass over
//! the input computes both the value and the derivative
//!
//! ```text
//! y  = x·Φ(x)
//! y' = Φ(x) + x·φ(x),   φ(x) = exp(−x²/2)/√(2π)
//! ```
//!
//! with `erf` from Abramowitz & Stegun 7.1.26 (`|error| ≤ 1.5·10⁻⁷`), whose `exp(−z²)` term is
//! exactly `φ`'s exponential, so one `exp` per element serves both. The loop is branch-free
//! (a polynomial `exp` with Cody–Waite reduction) so the compiler vectorises it, and large
//! tensors are split over rayon's threads.
//!
//! Under autodiff the GELU is one op ([`crate::gelu`]) that keeps `Y'` and whose backward
//! is `g ⊙ Y'`, the analytic gradient. Other devices and f64 tensors (gradient checks)
//! compute `Y` and `Y'` with Burn's element-wise ops (`erf`, `exp`) on the device: f64 needs
//! `erf` to the last bit. The same op then gives the exact derivative everywhere — Burn's own
//! `gelu` backward on ndarray and wgpu is the derivative of the *tanh approximation* (off by
//! up to 5·10⁻⁴), not of the exact GELU its forward computes.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements per rayon task (below it, one thread does the whole tensor).
const CHUNK: usize = 1 << 15;

/// `y[i] = gelu(x[i])`, `dy[i] = gelu'(x[i])` (module docs), in parallel chunks, into
/// uninitialised outputs (every element is written): new tensors need no zero-fill first.
///
/// # Panics
/// If the three slices differ in length.
pub(crate) fn gelu_and_derivative_into(x: &[f32], y: &mut [MaybeUninit<f32>], dy: &mut [MaybeUninit<f32>]) {
    assert!(x.len() == y.len() && x.len() == dy.len(), "gelu: slices of different lengths");
    x.par_chunks(CHUNK).zip(y.par_chunks_mut(CHUNK)).zip(dy.par_chunks_mut(CHUNK)).for_each(|((x, y), dy)| chunk(x, y, dy));
}

type Out<'a> = &'a mut [MaybeUninit<f32>];

/// One chunk, in the widest vector instructions the CPU has ([`super::simd`]: the
/// same scalar code compiled for AVX-512 or AVX2 and picked at run time; no fused
/// multiply-adds are formed, so every path gives the same bits).
fn chunk(x: &[f32], y: Out, dy: Out) {
    super::simd(#[inline(always)] || chunk_portable(x, y, dy))
}

#[inline(always)]
fn chunk_portable(x: &[f32], y: Out, dy: Out) {
    for ((&x, y), dy) in x.iter().zip(y.iter_mut()).zip(dy.iter_mut()) {
        let (v, d) = gelu_one(x);
        y.write(v);
        dy.write(d);
    }
}

/// `(gelu(x), gelu'(x))` for one element; branch-free so loops over it vectorise.
#[inline(always)]
fn gelu_one(x: f32) -> (f32, f32) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_28;
    // A&S 7.1.26: erf(z) = 1 − t·(a1 + t(a2 + t(a3 + t(a4 + t·a5))))·e^{−z²}, t = 1/(1 + p·z), z ≥ 0.
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152_1, 1.061_405_4];
    let z = (x * FRAC_1_SQRT_2).abs();
    let e = exp_neg(x * x * 0.5); // e^{−z²} = e^{−x²/2}
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erf_abs = 1.0 - poly * e;
    let erf = erf_abs.copysign(x);
    let cdf = 0.5 * (1.0 + erf);
    (x * cdf, cdf + x * e * FRAC_1_SQRT_2PI)
}

/// `e^{−a}` for `a ≥ 0` (relative error ≈ 2·10⁻⁷; 0 below `e^{−87}`), branch-free:
/// `−a = k·ln2 + r`, `|r| ≤ ln2/2`, `e^{−a} = 2^k · p(r)` with a degree-6 Taylor `p`.
#[inline(always)]
pub(crate) fn exp_neg(a: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting rounds to an integer
    let v = (-a).max(-87.0);
    let k = (v * LOG2E + ROUND) - ROUND;
    let r = (v - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `k + ROUND` is exact, so its bits are ROUND's plus k (k ∈ [−126, 0]): 2^k from integer
    // ops alone (a float → int cast saturates, which keeps the loop from vectorising).
    let kf = k + ROUND;
    let scale = f32::from_bits(kf.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 (std has none): the Maclaurin series for |z| ≤ 3 (cancellation costs
    /// < 1e-12 there), the continued fraction of erfc past it.
    fn erf64(z: f64) -> f64 {
        let a = z.abs();
        let v = if a <= 3.0 {
            let (mut term, mut sum) = (a, a);
            for n in 1..200 {
                term *= -a * a / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = e^{−a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …))))
            let mut k = a;
            for n in (1..120).rev() {
                k = a + (n as f64 / 2.0) / k;
            }
            1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * k)
        };
        v.copysign(z)
    }

    #[test]
    fn value_and_derivative_match_the_exact_formulas() {
        let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.0025).chain([-30.0, -12.0, 12.0, 30.0, 0.0]).collect();
        let (mut y, mut dy) = (vec![MaybeUninit::uninit(); xs.len()], vec![MaybeUninit::uninit(); xs.len()]);
        gelu_and_derivative_into(&xs, &mut y, &mut dy);
        // SAFETY: gelu_and_derivative_into wrote every element of both.
        let (y, dy): (Vec<f32>, Vec<f32>) = (y.iter().map(|v| unsafe { v.assume_init() }).collect(), dy.iter().map(|v| unsafe { v.assume_init() }).collect());
        let (mut worst_y, mut worst_dy) = (0.0f64, 0.0f64);
        for ((&x, &y), &dy) in xs.iter().zip(&y).zip(&dy) {
            let x = x as f64;
            let cdf = 0.5 * (1.0 + erf64(x / std::f64::consts::SQRT_2));
            let pdf = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            worst_y = worst_y.max((y as f64 - x * cdf).abs() / x.abs().max(1.0));
            worst_dy = worst_dy.max((dy as f64 - (cdf + x * pdf)).abs());
        }
        // Φ to ≤ 1e-6 (A&S: 1.5e-7 on erf, halved, plus f32 rounding).
        assert!(worst_y < 1e-6, "value error {worst_y:e}");
        assert!(worst_dy < 1e-6, "derivative error {worst_dy:e}");
    }

    #[test]
    fn exp_is_accurate_over_its_range() {
        for i in 0..=8700 {
            let a = i as f32 * 0.01;
            let (got, want) = (exp_neg(a) as f64, (-(a as f64)).exp());
            assert!((got - want).abs() <= 3e-7 * want + 1e-38, "e^-{a}: {got:e} vs {want:e}");
        }
        let far = exp_neg(1e4); // clamped at e^{−87}: finite, tiny, not NaN
        assert!(far.is_finite() && far < 1e-37, "{far:e}");
    }
}
