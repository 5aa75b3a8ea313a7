//! One `gemm` call on checked strided matrices.

use super::view::{Mat, MatMut};
use super::HostFloat;

/// `dst = beta · lhs · rhs` (`[m, k] · [k, n]` → `[m, n]`); `dst` is written without being
/// read, so it may be uninitialised, and every one of its elements is written.
/// `gemm::Parallelism::None` when the caller already parallelises (over heads, or two
/// products side by side).
///
/// # Panics
/// If the shapes do not chain, or the inner dimension is 0 for a non-empty product.
pub(crate) fn mm<T: HostFloat>(mut dst: MatMut<'_, T>, lhs: Mat<'_, T>, rhs: Mat<'_, T>, beta: T, parallelism: gemm::Parallelism) {
    let ([m, k], [k2, n]) = (lhs.shape(), rhs.shape());
    assert!(k == k2 && dst.shape() == [m, n], "host gemm: {:?} = {:?} · {:?}", dst.shape(), lhs.shape(), rhs.shape());
    // With k = 0 gemm has nothing to sum and may leave `dst` unwritten: refuse, so the
    // "every element of dst is written" promise holds (the kernels never ask for it).
    assert!(k > 0 || m * n == 0, "host gemm: an empty inner dimension for a {m}×{n} product");
    let (d, drs, dcs) = dst.raw();
    let (l, lrs, lcs) = lhs.raw();
    let (r, rrs, rcs) = rhs.raw();
    // SAFETY: the three matrices have the shapes gemm is told (checked above) and every
    // element each addresses lies inside its buffer (the `Mat`/`MatMut` invariant, checked
    // when they were made). `dst` is a unique borrow (`MatMut`), so it overlaps neither
    // input; with `read_dst = false` gemm writes all m·n elements of `dst` and reads none.
    unsafe {
        gemm::gemm(m, n, k, d, dcs, drs, false, l, lcs, lrs, r, rcs, rrs, T::ZERO, beta, false, false, false, parallelism);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::*;

    #[test]
    fn strided_product_equals_the_triple_loop() {
        // lhs [2, 3] read transposed from a [3, 2] buffer; rhs [3, 2] row-major.
        let a = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]; // [[1, 4], [2, 5], [3, 6]] → lhs = [[1, 2, 3], [4, 5, 6]]
        let b = [1.0f64, -1.0, 0.5, 2.0, -2.0, 0.0];
        let lhs = Mat::rows(&a, 3, 2).t();
        let rhs = Mat::rows(&b, 3, 2);
        let mut out = [MaybeUninit::<f64>::uninit(); 4];
        mm(MatMut::of(&mut out, 2, 2), lhs, rhs, 2.0, gemm::Parallelism::None);
        // SAFETY: mm wrote all four elements.
        let out: Vec<f64> = out.iter().map(|x| unsafe { x.assume_init() }).collect();
        let want = |i: usize, j: usize| 2.0 * (0..3).map(|p| [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]][i][p] * b[p * 2 + j]).sum::<f64>();
        assert_eq!(out, vec![want(0, 0), want(0, 1), want(1, 0), want(1, 1)]);
    }

    #[test]
    #[should_panic(expected = "host gemm")]
    fn shapes_that_do_not_chain_panic() {
        let a = [0.0f32; 6];
        let mut out = [MaybeUninit::<f32>::uninit(); 4];
        mm(MatMut::of(&mut out, 2, 2), Mat::rows(&a, 2, 3), Mat::rows(&a, 2, 3), 1.0, gemm::Parallelism::None);
    }
}
