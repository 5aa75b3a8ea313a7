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
use burn::tensor::{DType, TensorData};

use super::host::{mm, HostFloat};
use super::EmberKernels;

/// `x [N, d_in] · w [d_in, d_out]` by Burn's matmul.
pub(super) fn compose_forward<B: Backend>(x: FloatTensor<B>, w: FloatTensor<B>) -> FloatTensor<B> {
    B::float_matmul(x, w)
}

/// `(dX = dY Wᵀ, dW = Xᵀ dY)` by Burn's matmul.
pub(super) fn compose_backward<B: Backend>(x: FloatTensor<B>, w: FloatTensor<B>, dy: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let dx = B::float_matmul(dy.clone(), B::float_swap_dims(w, 0, 1));
    let dw = B::float_matmul(B::float_swap_dims(x, 0, 1), dy);
    (dx, dw)
}

/// A 2-D flex tensor as `(pointer to its first element, row stride, column stride)`.
fn matrix<T: HostFloat>(t: &FlexTensor) -> (*const T, isize, isize) {
    let layout = t.layout();
    let s = layout.strides();
    // SAFETY: the start offset is inside the storage the layout describes.
    (unsafe { t.storage::<T>().as_ptr().add(layout.start_offset()) }, s[0], s[1])
}

/// `lhs [m, k] · rhs [k, n]` (strided) into a new `[m, n]` tensor, written once; split over
/// the cores when `split` and the product is large enough to pay for it (≈ 2 MFLOP).
fn product<T: HostFloat>(m: usize, k: usize, n: usize, lhs: (*const T, isize, isize), rhs: (*const T, isize, isize), split: bool) -> FlexTensor {
    let mut out = Vec::<T>::with_capacity(m * n);
    let parallelism = if split && m * n * k >= 1 << 20 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: lhs and rhs address [m, k] and [k, n] matrices inside their tensors; the gemm
    // writes all m·n outputs without reading them (`read_dst = false`).
    unsafe {
        mm(m, n, k, (out.as_mut_ptr(), n as isize, 1), lhs, rhs, T::ONE, parallelism);
        out.set_len(m * n);
    }
    FlexTensor::from_data(TensorData::new(out, [m, n]))
}

/// A strided matrix handed to another thread (the tensors outlive the join).
#[derive(Clone, Copy)]
struct SendPtr<T>((*const T, isize, isize));
// SAFETY: only read, while the owning tensors are alive (the `rayon::join` returns first).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    fn get(&self) -> (*const T, isize, isize) {
        self.0
    }
}

/// Flex forward: the kernel for f32/f64, the composition otherwise.
pub(super) fn flex_forward(x: FlexTensor, w: FlexTensor) -> FlexTensor {
    fn run<T: HostFloat>(x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
        let ([n, d_in], d_out) = (x.shape().dims::<2>(), w.shape()[1]);
        product(n, d_in, d_out, matrix::<T>(x), matrix::<T>(w), true)
    }
    match x.dtype() {
        DType::F32 => run::<f32>(&x, &w),
        DType::F64 => run::<f64>(&x, &w),
        _ => compose_forward::<Flex>(x, w),
    }
}

/// Flex backward: the kernel for f32/f64, the composition otherwise.
pub(super) fn flex_backward(x: FlexTensor, w: FlexTensor, dy: FlexTensor) -> (FlexTensor, FlexTensor) {
    fn run<T: HostFloat>(x: &FlexTensor, w: &FlexTensor, dy: &FlexTensor) -> (FlexTensor, FlexTensor) {
        let ([n, d_in], d_out) = (x.shape().dims::<2>(), w.shape()[1]);
        let ((xp, xr, xc), (wp, wr, wc), g) = (matrix::<T>(x), matrix::<T>(w), matrix::<T>(dy));
        // The two products are independent and of equal size (2·n·d_in·d_out FLOPs each):
        // one per thread beats splitting each over the threads in turn.
        let (x_t, w_t) = (SendPtr((xp, xc, xr)), SendPtr((wp, wc, wr)));
        let g = SendPtr(g);
        rayon::join(
            || product(n, d_out, d_in, g.get(), w_t.get(), false), // dY [n, d_out] · Wᵀ
            || product(d_in, n, d_out, x_t.get(), g.get(), false), // Xᵀ [d_in, n] · dY
        )
    }
    match x.dtype() {
        DType::F32 => run::<f32>(&x, &w, &dy),
        DType::F64 => run::<f64>(&x, &w, &dy),
        _ => compose_backward::<Flex>(x, w, dy),
    }
}

/// The autodiff node: parents `x`, `w`; state `(x, w)`.
pub(super) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(x: FloatTensor<Autodiff<B, C>>, w: FloatTensor<Autodiff<B, C>>) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LinearBackward;

    impl<B: Backend + EmberKernels> Backward<B, 2> for LinearBackward {
        /// `(x, w)`.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (x, w) = ops.state;
            let (dx, dw) = B::linear_backward(x, w, dy);
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
            let y = B::linear_forward(x.clone(), w.clone());
            prep.finish((x, w), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::linear_forward(x.into_primitive(), w.into_primitive())),
    }
}
