//! LayerNorm without bias as one op: the composition (default bodies), the host kernel (flex)
//! and the autodiff node. Over the last dimension (`d`), for each row `x`:
//!
//! ```text
//! μ = mean(x),  r = 1/√(mean((x − μ)²) + ε),  x̂ = (x − μ)·r,  y = γ ⊙ x̂
//! dx = r·(g − mean(g) − x̂·mean(g ⊙ x̂)),  g = γ ⊙ dy;   dγ = Σ_rows dy ⊙ x̂
//! ```
//!
//! The backward recomputes `μ, r` from `x` (one pass per row), so only `x` and `γ` are kept.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::host::{simd, sum, HostFloat};

/// `y = γ ⊙ (x − μ)/√(σ² + ε)` by Burn's own op (every backend has one; flex's is fused).
pub(super) fn compose_forward<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, epsilon: f64) -> FloatTensor<B> {
    B::layer_norm(x, gamma, None, epsilon)
}

/// `(dx, dγ)` as a composition of Burn primitives (formulas in the module docs).
pub(super) fn compose_backward<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, dy: FloatTensor<B>, epsilon: f64) -> (FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let (rank, d) = (shape.num_dims(), shape[shape.num_dims() - 1]);
    let last = rank - 1;
    let mean = B::float_mean_dim(x.clone(), last);
    let centered = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), last);
    let rstd = B::float_powf_scalar(B::float_add_scalar(var, epsilon.into()), (-0.5).into());
    let x_hat = B::float_mul(centered, rstd.clone());
    let mut gamma_shape = vec![1; rank];
    gamma_shape[last] = d;
    let g = B::float_mul(dy.clone(), B::float_reshape(gamma, Shape::from(gamma_shape)));
    let mean_g = B::float_mean_dim(g.clone(), last);
    let mean_gx = B::float_mean_dim(B::float_mul(g.clone(), x_hat.clone()), last);
    let dx = B::float_mul(B::float_sub(B::float_sub(g, mean_g), B::float_mul(x_hat.clone(), mean_gx)), rstd);
    let rows = shape.num_elements() / d;
    let dgamma = B::float_sum_dim(B::float_reshape(B::float_mul(dy, x_hat), Shape::new([rows, d])), 0);
    (dx, B::float_reshape(dgamma, Shape::new([d])))
}

/// Flex: the host kernel for f32/f64, the composition otherwise.
pub(super) fn flex_forward(x: FlexTensor, gamma: FlexTensor, epsilon: f64) -> FlexTensor {
    match x.dtype() {
        DType::F32 => host_forward::<f32>(&x, &gamma, epsilon),
        DType::F64 => host_forward::<f64>(&x, &gamma, epsilon),
        _ => compose_forward::<burn::backend::Flex>(x, gamma, epsilon),
    }
}

/// Flex backward: the host kernel for f32/f64, the composition otherwise.
pub(super) fn flex_backward(x: FlexTensor, gamma: FlexTensor, dy: FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
    match x.dtype() {
        DType::F32 => host_backward::<f32>(&x, &gamma, &dy, epsilon),
        DType::F64 => host_backward::<f64>(&x, &gamma, &dy, epsilon),
        _ => compose_backward::<burn::backend::Flex>(x, gamma, dy, epsilon),
    }
}

/// The autodiff node: parents `x` and `γ`, state `(x, γ)`.
pub(super) fn autodiff<B: Backend + super::EmberKernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LayerNormBackward {
        epsilon: f64,
    }

    impl<B: Backend + super::EmberKernels> Backward<B, 2> for LayerNormBackward {
        /// `(x, γ)`.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_gamma] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (x, gamma) = ops.state;
            let (dx, dgamma) = B::layer_norm_backward(x, gamma, dy, self.epsilon);
            if let Some(node) = node_x {
                grads.register::<B>(node.id, dx);
            }
            if let Some(node) = node_gamma {
                grads.register::<B>(node.id, dgamma);
            }
        }
    }

    match (LayerNormBackward { epsilon }).prepare::<C>([x.node(), gamma.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
            let y = B::layer_norm_forward(x.clone(), gamma.clone(), epsilon);
            prep.finish((x, gamma), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_forward(x.into_primitive(), gamma.into_primitive(), epsilon)),
    }
}

/// Rows per rayon task.
const ROWS: usize = 32;

/// `(μ, r)` of one row; `scratch` (row length) receives `x − μ`.
#[inline(always)]
fn stats<T: HostFloat>(x: &[T], scratch: &mut [T], epsilon: f64) -> (T, T) {
    let d = T::from_f64(x.len() as f64);
    let mean = sum(x).div(d);
    for (c, &v) in scratch.iter_mut().zip(x) {
        let dev = v.sub(mean);
        *c = dev.mul(dev);
    }
    let var = sum(scratch).div(d);
    (mean, T::ONE.div(var.add(T::from_f64(epsilon)).sqrt()))
}

fn host_forward<T: HostFloat>(x: &FlexTensor, gamma: &FlexTensor, epsilon: f64) -> FlexTensor {
    let shape = x.shape();
    let (x, gamma) = (super::host::contiguous::<T>(x), super::host::contiguous::<T>(gamma));
    let d = gamma.len();
    let mut y = super::host::uninit::<T>(x.len()); // every row written below
    y.par_chunks_mut(ROWS * d).zip(x.par_chunks(ROWS * d)).for_each(|(y, x)| {
        simd(#[inline(always)] || {
            for (y, x) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let (mean, rstd) = stats(x, y, epsilon);
                for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma.iter()) {
                    *y = x.sub(mean).mul(rstd).mul(g);
                }
            }
        })
    });
    FlexTensor::from_data(TensorData::new(y, shape))
}

fn host_backward<T: HostFloat>(x: &FlexTensor, gamma: &FlexTensor, dy: &FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
    let shape = x.shape();
    let (x, gamma, dy) = (super::host::contiguous::<T>(x), super::host::contiguous::<T>(gamma), super::host::contiguous::<T>(dy));
    let d = gamma.len();
    let inv_d = T::from_f64(1.0 / d as f64);
    let mut dx = super::host::uninit::<T>(x.len()); // every row written below
    // Each task returns its partial dγ; they are summed in task order (deterministic).
    let partial: Vec<Vec<T>> = dx
        .par_chunks_mut(ROWS * d)
        .zip(x.par_chunks(ROWS * d))
        .zip(dy.par_chunks(ROWS * d))
        .map(|((dx, x), dy)| {
            simd(#[inline(always)] || {
                let mut dgamma = vec![T::ZERO; d];
                let (mut x_hat, mut g, mut gx) = (vec![T::ZERO; d], vec![T::ZERO; d], vec![T::ZERO; d]);
                for ((dx, x), dy) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(dy.chunks_exact(d)) {
                    let (mean, rstd) = stats(x, &mut x_hat, epsilon);
                    // Every slice re-cut to `d`, so the loops below run without bounds checks.
                    let (x, dy, dx, gm) = (&x[..d], &dy[..d], &mut dx[..d], &gamma[..d]);
                    let (x_hat, g, gx, dgamma) = (&mut x_hat[..d], &mut g[..d], &mut gx[..d], &mut dgamma[..d]);
                    for i in 0..d {
                        x_hat[i] = x[i].sub(mean).mul(rstd);
                        g[i] = dy[i].mul(gm[i]);
                        gx[i] = g[i].mul(x_hat[i]);
                        dgamma[i] = dgamma[i].add(dy[i].mul(x_hat[i]));
                    }
                    let (mean_g, mean_gx) = (sum(g).mul(inv_d), sum(gx).mul(inv_d));
                    for i in 0..d {
                        dx[i] = rstd.mul(g[i].sub(mean_g).sub(x_hat[i].mul(mean_gx)));
                    }
                }
                dgamma
            })
        })
        .collect();
    let mut dgamma = vec![T::ZERO; d];
    for part in partial {
        for (s, p) in dgamma.iter_mut().zip(part) {
            *s = s.add(p);
        }
    }
    (FlexTensor::from_data(TensorData::new(dx, shape)), FlexTensor::from_data(TensorData::new(dgamma, [d])))
}
