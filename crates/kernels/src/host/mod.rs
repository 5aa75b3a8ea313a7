//! Host-memory pieces shared by the flex kernels, one concern per file:
//!
//! - [`float`]: [`HostFloat`], the element types (`f32`, `f64`);
//! - [`view`]: checked strided matrices ([`Mat`], [`View`], [`MatMut`], [`OutPtr`]);
//! - [`gemm`](mod@gemm): [`mm`], one `gemm` call on those matrices;
//! - [`simd`](mod@simd): the vector-width dispatch and the lane reductions;
//! - [`math`]: `exp` on `x ≤ 0` and the exact GELU with its derivative (f32);
//! - this file: output buffers and tensor ↔ slice conversions.

// burn-ndarray is deprecated in Burn 0.22 but stays a selectable backend here.
#![allow(deprecated)]

use std::borrow::Cow;
use std::future::Future;
use std::mem::MaybeUninit;
use std::task::{Context, Poll, Waker};

use burn::backend::flex::FlexTensor;
use burn::backend::ndarray::NdArrayTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{NdArray, TensorMetadata};
use burn::tensor::{DType, Shape, TensorData};

mod float;
mod gemm;
pub(crate) mod math;
mod simd;
mod view;

pub(crate) use float::HostFloat;
pub(crate) use gemm::mm;
pub(crate) use simd::{fold_lanes, max, simd, sum, CHUNK};
pub(crate) use view::{Mat, MatMut, OutPtr, View};

/// A new `n`-element vector whose elements `fill` writes into uninitialised slots (no
/// zero-fill first: a serial `memset` on the calling thread that the parallel kernel would
/// overwrite anyway).
///
/// # Safety
/// `fill` must initialise every one of the `n` slots it is given (on every path where it
/// returns; a panic inside it leaks nothing unsound: the vector is dropped with length 0).
pub(crate) unsafe fn filled<T>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut buf = Vec::<T>::with_capacity(n);
    fill(&mut buf.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is ≥ n and the caller guarantees `fill` initialised all n slots.
    unsafe { buf.set_len(n) };
    buf
}

/// A flex tensor of `shape` holding `values` (row-major).
pub(crate) fn tensor<T: HostFloat>(values: Vec<T>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// The elements of `tensor` in row-major order: borrowed when it is contiguous, copied
/// otherwise.
///
/// # Panics
/// If the tensor's dtype is not `T`.
pub(crate) fn contiguous<T: HostFloat>(tensor: &FlexTensor) -> Cow<'_, [T]> {
    let layout = tensor.layout();
    let n = tensor.shape().num_elements();
    if layout.is_contiguous() {
        let start = layout.start_offset();
        Cow::Borrowed(&tensor.storage::<T>()[start..start + n])
    } else {
        Cow::Owned(tensor.to_contiguous().storage::<T>()[..n].to_vec())
    }
}

/// Whether every tensor has the dtype `dtype`.
pub(crate) fn all_of(dtype: DType, tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == dtype)
}

/// An ndarray tensor as a flex tensor (one copy, through `TensorData`).
pub(crate) fn flex(tensor: NdArrayTensor) -> FlexTensor {
    // ndarray's `float_into_data` is ready at once (host memory, no queue).
    let mut read = std::pin::pin!(NdArray::float_into_data(tensor));
    match read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(data) => FlexTensor::from_data(data.expect("an ndarray tensor reads back")),
        Poll::Pending => unreachable!("ndarray reads synchronously"),
    }
}

/// A flex tensor as an ndarray tensor (through `TensorData`).
pub(crate) fn ndarray(tensor: FlexTensor) -> NdArrayTensor {
    NdArrayTensor::from_data(tensor.into_data())
}
