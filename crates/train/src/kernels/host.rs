//! Host-memory helpers shared by the flex kernels: the element trait, strided views of flex
//! tensors and a one-thread `gemm` on strided matrices.

use std::borrow::Cow;

use std::future::Future;
use std::task::{Context, Poll, Waker};

use burn::backend::flex::FlexTensor;
use burn::backend::ndarray::NdArrayTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{NdArray, TensorMetadata};

/// A float element the host kernel runs on (`gemm` dispatches on the type).
pub(super) trait HostFloat: burn::tensor::Element + bytemuck::Pod + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    /// `e^x` for `x ≤ 0` (softmax numerators): f32 by a branch-free polynomial that
    /// vectorises (relative error ≈ 2·10⁻⁷, [`crate::model::gelu`]), f64 by `exp`.
    fn exp_nonpositive(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn div(self, other: Self) -> Self;
    fn sqrt(self) -> Self;
}

macro_rules! host_float {
    (@exp f32, $x:expr) => {
        crate::model::gelu::exp_neg(-$x)
    };
    (@exp f64, $x:expr) => {
        f64::exp($x)
    };
    ($t:tt) => {
        impl HostFloat for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn exp_nonpositive(self) -> Self {
                host_float!(@exp $t, self)
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn add(self, other: Self) -> Self {
                self + other
            }
            fn sub(self, other: Self) -> Self {
                self - other
            }
            fn mul(self, other: Self) -> Self {
                self * other
            }
            fn div(self, other: Self) -> Self {
                self / other
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}
host_float!(f32);
host_float!(f64);

/// A strided 4-D view `[d0, d1, d2, d3]` into a flex tensor's storage (element strides).
#[derive(Clone, Copy)]
pub(super) struct View<T> {
    ptr: *const T,
    strides: [isize; 4],
}

// SAFETY: a `View` only reads storage that the owning tensor keeps alive for the kernel call.
unsafe impl<T: Sync> Send for View<T> {}
unsafe impl<T: Sync> Sync for View<T> {}

impl<T> View<T> {
    /// The view of `tensor` as 4-D `[B, H, T, dh]`: a 4-D tensor as it is, or `[B, T, H·dh]`
    /// (heads merged, `heads` = `H`) with its axes read in that order. Size-1 dimensions of a
    /// 4-D tensor broadcast (stride 0).
    pub(super) fn of(tensor: &FlexTensor, heads: Option<usize>) -> Self
    where
        T: HostFloat,
    {
        let layout = tensor.layout();
        let dims = layout.shape().clone();
        let s = layout.strides();
        let strides = match heads {
            None => [0, 1, 2, 3].map(|i| if dims[i] == 1 { 0 } else { s[i] }),
            Some(h) => {
                let dh = (dims[2] / h) as isize;
                [s[0], s[2] * dh, s[1], s[2]]
            }
        };
        let storage = tensor.storage::<T>();
        // SAFETY: the offset is within the storage the layout describes.
        Self { ptr: unsafe { storage.as_ptr().add(layout.start_offset()) }, strides }
    }

    /// Column block `part` (0, 1, 2 for q, k, v) of a fused projection `qkv [B, T, 3·H·dh]`,
    /// viewed as `[B, H, T, dh]`.
    pub(super) fn part(qkv: &FlexTensor, heads: usize, part: usize) -> Self
    where
        T: HostFloat,
    {
        let layout = qkv.layout();
        let d = layout.shape()[2] / 3;
        let s = layout.strides();
        let dh = (d / heads) as isize;
        let storage = qkv.storage::<T>();
        let offset = layout.start_offset() as isize + (part * d) as isize * s[2];
        // SAFETY: the block's first element is inside the storage the layout describes.
        Self { ptr: unsafe { storage.as_ptr().offset(offset) }, strides: [s[0], s[2] * dh, s[1], s[2]] }
    }

    /// The matrix at `[i, j, ·, ·]`: pointer, row stride, column stride.
    pub(super) fn matrix(&self, i: usize, j: usize) -> (*const T, isize, isize) {
        // SAFETY: callers pass indices inside the view's shape.
        let ptr = unsafe { self.ptr.offset(i as isize * self.strides[0] + j as isize * self.strides[1]) };
        (ptr, self.strides[2], self.strides[3])
    }
}

/// A raw output pointer handed to rayon tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(super) struct OutPtr<T>(pub(super) *mut T);
// SAFETY: tasks write disjoint elements; the buffer outlives the parallel loop.
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}

/// `dst[m×n] = beta·lhs[m×k]·rhs[k×n]` on strided matrices (`(ptr, row stride, column
/// stride)`); `dst` is written without being read, so it may be uninitialised.
/// `Parallelism::None` when the caller already parallelises (over heads, or two products
/// side by side).
///
/// # Safety
/// The pointers must address matrices of the given shapes and strides.
pub(super) unsafe fn mm<T: HostFloat>(m: usize, n: usize, k: usize, dst: (*mut T, isize, isize), lhs: (*const T, isize, isize), rhs: (*const T, isize, isize), beta: T, parallelism: gemm::Parallelism) {
    unsafe {
        gemm::gemm(m, n, k, dst.0, dst.2, dst.1, false, lhs.0, lhs.2, lhs.1, rhs.0, rhs.2, rhs.1, T::ZERO, beta, false, false, false, parallelism);
    }
}

/// A fresh `n`-element output buffer, not zero-filled (a serial `memset` on the calling
/// thread that the parallel kernel then overwrites anyway).
///
/// # Safety (for callers)
/// The kernel must write all `n` elements before anything reads them; `T` is plain old
/// data, so the unwritten contents are values, never undefined behaviour for the type.
pub(super) fn uninit<T: HostFloat>(n: usize) -> Vec<T> {
    let mut buf = Vec::<T>::with_capacity(n);
    // SAFETY: `T: Pod`, so any bytes are a valid `T`; the callers overwrite all `n` elements
    // (see the contract above) before the buffer is read or returned.
    unsafe { buf.set_len(n) };
    buf
}

/// The elements of `tensor` in row-major order: borrowed when it is contiguous, copied
/// otherwise.
pub(super) fn contiguous<T: HostFloat>(tensor: &FlexTensor) -> Cow<'_, [T]> {
    let layout = tensor.layout();
    if layout.is_contiguous() {
        let start = layout.start_offset();
        Cow::Borrowed(&tensor.storage::<T>()[start..start + tensor.shape().num_elements()])
    } else {
        Cow::Owned(tensor.to_contiguous().storage::<T>()[..tensor.shape().num_elements()].to_vec())
    }
}

/// An ndarray tensor as a flex tensor (one copy, through `TensorData`).
pub(super) fn flex(tensor: NdArrayTensor) -> FlexTensor {
    // ndarray's `float_into_data` is ready at once (host memory, no queue).
    let mut read = std::pin::pin!(NdArray::float_into_data(tensor));
    match read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(data) => FlexTensor::from_data(data.expect("an ndarray tensor reads back")),
        Poll::Pending => unreachable!("ndarray reads synchronously"),
    }
}

/// A flex tensor as an ndarray tensor (through `TensorData`).
pub(super) fn ndarray(tensor: FlexTensor) -> NdArrayTensor {
    NdArrayTensor::from_data(tensor.into_data())
}

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
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
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
pub(super) const CHUNK: usize = 1 << 14;

/// A reduction of `xs` in 16 interleaved lanes, so the loop vectorises: each lane folds its
/// elements with `step` from `init`, the lanes are merged in order with `merge` (from
/// `init`), then the tail is folded in with `step`. A fixed order: deterministic.
#[inline(always)]
pub(super) fn fold_lanes<T: HostFloat>(xs: &[T], init: T, step: impl Fn(T, T) -> T, merge: impl Fn(T, T) -> T) -> T {
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
pub(super) fn sum<T: HostFloat>(xs: &[T]) -> T {
    fold_lanes(xs, T::ZERO, T::add, T::add)
}

/// `max xs` (−∞ for an empty slice; see [`fold_lanes`]).
#[inline(always)]
pub(super) fn max<T: HostFloat>(xs: &[T]) -> T {
    fold_lanes(xs, T::NEG_INFINITY, T::max, T::max)
}
