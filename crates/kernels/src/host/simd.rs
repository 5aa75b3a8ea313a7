//! Vector-width dispatch and the lane reductions the kernels share.

use super::HostFloat;

/// Runs `f` compiled for the widest vector instructions the CPU has (AVX-512F or AVX2,
/// checked at run time): `f` is inlined into a `#[target_feature]` function, so its loops
/// vectorise for that width. No fused multiply-adds are formed, so every path gives the
/// same bits.
///
/// Mark the closure `#[inline(always)]` (`simd(#[inline(always)] || …)`): otherwise it stays a
/// function of its own, compiled without the features, and the wrapper only calls it (SSE
/// code; checked in the disassembly).
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the only precondition of calling a `#[target_feature(enable =
            // "avx512f")]` function is that the CPU has the feature, checked just above.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Elements per rayon task of the element-wise and reduction kernels (AdamW, GELU's
/// backward, `Σ x²`): a fixed split, so reductions add in the same order on any thread count.
pub(crate) const CHUNK: usize = 1 << 14;

/// A reduction of `xs` in 16 interleaved lanes, so the loop vectorises: each lane folds its
/// elements with `step` from `init`, the lanes are merged in order with `merge` (from
/// `init`), then the tail is folded in with `step`. A fixed order: deterministic.
#[inline(always)]
pub(crate) fn fold_lanes<T: HostFloat>(xs: &[T], init: T, step: impl Fn(T, T) -> T, merge: impl Fn(T, T) -> T) -> T {
    let mut lanes = [init; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = step(*l, x);
        }
    }
    let merged = lanes.iter().fold(init, |acc, &l| merge(acc, l));
    tail.iter().fold(merged, |acc, &x| step(acc, x))
}

/// `Σ xs` (see [`fold_lanes`]).
#[inline(always)]
pub(crate) fn sum<T: HostFloat>(xs: &[T]) -> T {
    fold_lanes(xs, T::ZERO, T::add, T::add)
}

/// `max xs` (−∞ for an empty slice; see [`fold_lanes`]).
#[inline(always)]
pub(crate) fn max<T: HostFloat>(xs: &[T]) -> T {
    fold_lanes(xs, T::NEG_INFINITY, T::max, T::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_equal_the_plain_ones() {
        // 16 lanes + a tail of 5; values chosen so the sum is exact in f64.
        let xs: Vec<f64> = (0..37).map(|i| (i as f64 - 18.0) * 0.25).collect();
        assert_eq!(sum(&xs), xs.iter().sum::<f64>());
        assert_eq!(max(&xs), 4.5);
        assert_eq!(max::<f64>(&[]), f64::NEG_INFINITY);
        assert_eq!(fold_lanes(&xs, 0.0, |a, x| a + x * x, |a, b| a + b), xs.iter().map(|x| x * x).sum::<f64>());
        assert_eq!(simd(|| 7), 7);
    }
}
