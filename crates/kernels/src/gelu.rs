//! Exact GELU as one op (math and accuracy in [`crate::host::math`]): the composition
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
use std::mem::MaybeUninit;

use burn::tensor::DType;

use burn::backend::ops::FloatTensorOps;
use rayon::prelude::*;

use crate::host::math::gelu_and_derivative_into;
use crate::host::{contiguous, filled, simd, tensor, HostFloat, CHUNK};
use crate::ops::EmberKernels;

/// `(gelu(x), gelu'(x))` with Burn's element-wise ops on `x`'s device:
/// `Φ = ½(1 + erf(x/√2))`, `y = x·Φ`, `y' = Φ + x·e^{−x²/2}/√(2π)`.
pub(crate) fn compose<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    let cdf = B::float_mul_scalar(B::float_add_scalar(B::float_erf(B::float_mul_scalar(x.clone(), FRAC_1_SQRT_2.into())), 1.0.into()), 0.5.into());
    let square = B::float_mul(x.clone(), x.clone());
    let pdf = B::float_mul_scalar(B::float_exp(B::float_mul_scalar(square, (-0.5).into())), (0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2).into());
    (B::float_mul(x.clone(), cdf.clone()), B::float_add(cdf, B::float_mul(x, pdf)))
}

/// Flex: the host kernel in f32, the composition otherwise (f64 needs `erf` to the last bit).
pub(crate) fn flex(x: FlexTensor) -> (FlexTensor, FlexTensor) {
    if x.dtype() != DType::F32 {
        return compose::<Flex>(x);
    }
    let shape = x.shape();
    let input = contiguous::<f32>(&x);
    let n = input.len();
    let mut dy = Vec::<f32>::with_capacity(n);
    // SAFETY: `gelu_and_derivative_into` writes every element of both n-slot outputs (it
    // asserts the three lengths agree).
    let y = unsafe { filled(n, |y| gelu_and_derivative_into(&input, y, &mut dy.spare_capacity_mut()[..n])) };
    // SAFETY: as above, for the derivative's n slots.
    unsafe { dy.set_len(n) };
    (tensor(y, shape.clone()), tensor(dy, shape))
}

/// Flex backward, `dy ⊙ gelu'(x)`: one parallel pass (Burn's multiply runs on one thread)
/// in f32/f64 when both are the same shape and dtype, Burn's multiply otherwise.
pub(crate) fn flex_backward(dy: FlexTensor, derivative: FlexTensor) -> FlexTensor {
    fn run<T: HostFloat>(dy: &FlexTensor, derivative: &FlexTensor) -> FlexTensor {
        let (a, b) = (contiguous::<T>(dy), contiguous::<T>(derivative));
        assert!(a.len() == b.len(), "gelu backward: {} and {} elements", a.len(), b.len());
        let fill = |out: &mut [MaybeUninit<T>]| {
            out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
                simd(#[inline(always)] || {
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        o.write(a.mul(b));
                    }
                })
            })
        };
        // SAFETY: the three slices have one length (asserted), so the chunks pair up and
        // every output slot is written.
        tensor(unsafe { filled(a.len(), fill) }, dy.shape())
    }
    match (dy.dtype(), dy.shape() == derivative.shape() && dy.dtype() == derivative.dtype()) {
        (DType::F32, true) => run::<f32>(&dy, &derivative),
        (DType::F64, true) => run::<f64>(&dy, &derivative),
        _ => Flex::float_mul(dy, derivative),
    }
}

/// The autodiff node: parent `x`, state `gelu'(x)`.
pub(crate) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(x: FloatTensor<Autodiff<B, C>>) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct GeluBackward;

    impl<B: Backend + EmberKernels> Backward<B, 1> for GeluBackward {
        /// `gelu'(x)`.
        type State = FloatTensor<B>;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            if let Some(node) = node {
                grads.register::<B>(node.id, <B as EmberKernels>::fused_gelu_backward(dy, ops.state));
            }
        }
    }

    match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, derivative) = B::fused_gelu_forward(x.into_primitive());
            prep.finish(derivative, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::gelu(x.into_primitive())),
    }
}
