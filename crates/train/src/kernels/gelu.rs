//! Exact GELU as one op (math and accuracy in [`crate::model::gelu`]): the composition
//! (default body: `erf`/`exp` on the device), the flex host kernel (one vectorised pass for
//! value and derivative, f32) and the autodiff node, which keeps only `gelu'(x)` and whose
//! backward is one multiply, `dx = dy ⊙ gelu'(x)`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::{DType, TensorData};

use burn::backend::ops::FloatTensorOps;
use rayon::prelude::*;

use super::host::{contiguous, simd, uninit, HostFloat, CHUNK};
use super::EmberKernels;
use crate::model::gelu::gelu_and_derivative_into;

/// `(gelu(x), gelu'(x))` with Burn's element-wise ops on `x`'s device:
/// `Φ = ½(1 + erf(x/√2))`, `y = x·Φ`, `y' = Φ + x·e^{−x²/2}/√(2π)`.
pub(super) fn compose<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    let cdf = B::float_mul_scalar(B::float_add_scalar(B::float_erf(B::float_mul_scalar(x.clone(), FRAC_1_SQRT_2.into())), 1.0.into()), 0.5.into());
    let square = B::float_mul(x.clone(), x.clone());
    let pdf = B::float_mul_scalar(B::float_exp(B::float_mul_scalar(square, (-0.5).into())), (0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2).into());
    (B::float_mul(x.clone(), cdf.clone()), B::float_add(cdf, B::float_mul(x, pdf)))
}

/// Flex: the host kernel in f32, the composition otherwise (f64 needs `erf` to the last bit).
pub(super) fn flex(x: FlexTensor) -> (FlexTensor, FlexTensor) {
    if x.dtype() != DType::F32 {
        return compose::<Flex>(x);
    }
    let shape = x.shape();
    let input = contiguous::<f32>(&x);
    let n = input.len();
    let (mut y, mut dy) = (Vec::<f32>::with_capacity(n), Vec::<f32>::with_capacity(n));
    gelu_and_derivative_into(&input, &mut y.spare_capacity_mut()[..n], &mut dy.spare_capacity_mut()[..n]);
    // SAFETY: `gelu_and_derivative_into` wrote all n elements of both.
    unsafe {
        y.set_len(n);
        dy.set_len(n);
    }
    (FlexTensor::from_data(TensorData::new(y, shape.clone())), FlexTensor::from_data(TensorData::new(dy, shape)))
}

/// Flex backward, `dy ⊙ gelu'(x)`: one parallel pass (Burn's multiply runs on one thread)
/// in f32/f64 when both are the same shape, Burn's multiply otherwise.
pub(super) fn flex_backward(dy: FlexTensor, derivative: FlexTensor) -> FlexTensor {
    fn run<T: HostFloat>(dy: &FlexTensor, derivative: &FlexTensor) -> FlexTensor {
        let (a, b) = (contiguous::<T>(dy), contiguous::<T>(derivative));
        let mut out = uninit::<T>(a.len());
        out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
            simd(#[inline(always)] || {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = a.mul(b);
                }
            })
        });
        FlexTensor::from_data(TensorData::new(out, dy.shape()))
    }
    match (dy.dtype(), dy.shape() == derivative.shape() && dy.dtype() == derivative.dtype()) {
        (DType::F32, true) => run::<f32>(&dy, &derivative),
        (DType::F64, true) => run::<f64>(&dy, &derivative),
        _ => Flex::float_mul(dy, derivative),
    }
}

/// The autodiff node: parent `x`, state `gelu'(x)`.
pub(super) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(x: FloatTensor<Autodiff<B, C>>) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct GeluBackward;

    impl<B: Backend + EmberKernels> Backward<B, 1> for GeluBackward {
        /// `gelu'(x)`.
        type State = FloatTensor<B>;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            if let Some(node) = node {
                grads.register::<B>(node.id, <B as EmberKernels>::gelu_grad(dy, ops.state));
            }
        }
    }

    match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, derivative) = B::gelu_with_derivative(x.into_primitive());
            prep.finish(derivative, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::gelu(x.into_primitive())),
    }
}
