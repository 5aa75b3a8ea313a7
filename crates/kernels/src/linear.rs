//! A linear layer without bias as one op, `Y = X W`: the composition (default bodies), the
//! flex kernel (`gemm` straight into the output buffer, split over the cores for large
//! products) and the autodiff node, whose backward is `dX = dY Wᵀ`, `dW = Xᵀ dY`.
//!
//! Burn's flex matmul allocates each output as a zeroed byte vector and then copies it into
//! an aligned one (`FlexTensor::empty`): two extra passes over every activation and gradient
//! of a step (≈ 9 % of the main job's step in the profile). Here the product is written once.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::{DType, Shape};

use crate::host::{filled, mm, tensor, HostFloat, Mat, MatMut};
use crate::ops::EmberKernels;

/// `x [N, d_in] · w [d_in, d_out]` by Burn's matmul.
pub(crate) fn compose_forward<B: Backend>(x: FloatTensor<B>, w: FloatTensor<B>) -> FloatTensor<B> {
    if let Some([n, _, d_out]) = empty::<B>(&x, &w) {
        return zeros::<B>(&x, [n, d_out]);
    }
    B::float_matmul(x, w)
}

/// `(dX = dY Wᵀ, dW = Xᵀ dY)` by Burn's matmul.
pub(crate) fn compose_backward<B: Backend>(x: FloatTensor<B>, w: FloatTensor<B>, dy: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    if let Some([n, d_in, d_out]) = empty::<B>(&x, &w) {
        return (zeros::<B>(&x, [n, d_in]), zeros::<B>(&x, [d_in, d_out]));
    }
    let dx = B::float_matmul(dy.clone(), B::float_swap_dims(w, 0, 1));
    let dw = B::float_matmul(B::float_swap_dims(x, 0, 1), dy);
    (dx, dw)
}

/// `[N, d_in, d_out]` when one of them is 0 (`x [N, d_in]`, `w [d_in, d_out]`). Then every
/// product of the op is empty or a sum over nothing, i.e. zeros: written as such, since
/// backends' matmuls do not all take empty operands (ndarray's divides by zero, and the host
/// kernel's `gemm` refuses an empty inner dimension).
fn empty<B: Backend>(x: &FloatTensor<B>, w: &FloatTensor<B>) -> Option<[usize; 3]> {
    let (xs, ws) = (x.shape(), w.shape());
    let dims = [xs[0], xs[xs.num_dims() - 1], ws[ws.num_dims() - 1]];
    dims.contains(&0).then_some(dims)
}

/// Zeros `[rows, cols]` of `like`'s dtype on its device.
fn zeros<B: Backend>(like: &FloatTensor<B>, [rows, cols]: [usize; 2]) -> FloatTensor<B> {
    B::float_zeros(Shape::new([rows, cols]), &like.device(), like.dtype().into())
}

/// A 2-D flex tensor as a checked strided matrix.
///
/// # Panics
/// If the tensor is not 2-D or its dtype is not `T`.
fn matrix<T: HostFloat>(t: &FlexTensor) -> Mat<'_, T> {
    let layout = t.layout();
    let dims = layout.shape();
    assert!(dims.num_dims() == 2, "linear host kernel: a matrix expected, got {dims:?}");
    let s = layout.strides();
    Mat::new(t.storage::<T>(), layout.start_offset() as isize, [dims[0], dims[1]], [s[0], s[1]])
}

/// `lhs [m, k] · rhs [k, n]` (strided) into a new `[m, n]` tensor, written once; split over
/// the cores when `split` and the product is large enough to pay for it (≈ 2 MFLOP).
fn product<T: HostFloat>(lhs: Mat<T>, rhs: Mat<T>, split: bool) -> FlexTensor {
    let ([m, k], [_, n]) = (lhs.shape(), rhs.shape());
    let parallelism = if split && m * n * k >= 1 << 20 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: `mm` writes all m·n slots of its destination (or panics on shapes that do not chain).
    let out = unsafe { filled(m * n, |out| mm(MatMut::of(out, m, n), lhs, rhs, T::ONE, parallelism)) };
    tensor(out, [m, n])
}

/// The host kernel's dtype, if `x [N, d_in]`, `w [d_in, d_out]` (and `dy [N, d_out]`) have
/// those shapes, none of `N, d_in, d_out` is 0, and one dtype. An empty dimension takes the
/// composition, which returns the empty or all-zero results (e.g. `dW = Xᵀ dY` over `N = 0`
/// rows is `[d_in, d_out]` of zeros), where the kernel's `gemm` would be asked for an empty
/// inner dimension, which [`mm`] refuses.
fn host_dtype(x: &FlexTensor, w: &FlexTensor, dy: Option<&FlexTensor>) -> Option<DType> {
    let (xs, ws) = (x.shape(), w.shape());
    let nonempty = xs.num_dims() == 2 && ws.num_dims() == 2 && xs[0] > 0 && xs[1] > 0 && ws[1] > 0;
    let fits = nonempty && xs[1] == ws[0] && dy.is_none_or(|dy| dy.shape() == Shape::new([xs[0], ws[1]]));
    (fits && w.dtype() == x.dtype() && dy.is_none_or(|dy| dy.dtype() == x.dtype())).then(|| x.dtype())
}

/// Flex forward: the kernel for f32/f64 when shapes and dtypes agree, the composition otherwise.
pub(crate) fn flex_forward(x: FlexTensor, w: FlexTensor) -> FlexTensor {
    match host_dtype(&x, &w, None) {
        Some(DType::F32) => product(matrix::<f32>(&x), matrix::<f32>(&w), true),
        Some(DType::F64) => product(matrix::<f64>(&x), matrix::<f64>(&w), true),
        _ => compose_forward::<Flex>(x, w),
    }
}

/// Flex backward: the kernel for f32/f64 when shapes and dtypes agree, the composition otherwise.
pub(crate) fn flex_backward(x: FlexTensor, w: FlexTensor, dy: FlexTensor) -> (FlexTensor, FlexTensor) {
    fn run<T: HostFloat>(x: &FlexTensor, w: &FlexTensor, dy: &FlexTensor) -> (FlexTensor, FlexTensor) {
        let (x, w, g) = (matrix::<T>(x), matrix::<T>(w), matrix::<T>(dy));
        // The two products are independent and of equal size (2·n·d_in·d_out FLOPs each):
        // one per thread beats splitting each over the threads in turn.
        rayon::join(
            || product(g, w.t(), false), // dY [n, d_out] · Wᵀ
            || product(x.t(), g, false), // Xᵀ [d_in, n] · dY
        )
    }
    match host_dtype(&x, &w, Some(&dy)) {
        Some(DType::F32) => run::<f32>(&x, &w, &dy),
        Some(DType::F64) => run::<f64>(&x, &w, &dy),
        _ => compose_backward::<Flex>(x, w, dy),
    }
}

/// The autodiff node: parents `x`, `w`; state `(x, w)`.
pub(crate) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(x: FloatTensor<Autodiff<B, C>>, w: FloatTensor<Autodiff<B, C>>) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LinearBackward;

    impl<B: Backend + EmberKernels> Backward<B, 2> for LinearBackward {
        /// `(x, w)`.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (x, w) = ops.state;
            let (dx, dw) = B::fused_linear_backward(x, w, dy);
            if let Some(node) = node_x {
                grads.register::<B>(node.id, dx);
            }
            if let Some(node) = node_w {
                grads.register::<B>(node.id, dw);
            }
        }
    }

    match LinearBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (x, w) = (x.into_primitive(), w.into_primitive());
            let y = B::fused_linear_forward(x.clone(), w.clone());
            prep.finish((x, w), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_linear_forward(x.into_primitive(), w.into_primitive())),
    }
}
