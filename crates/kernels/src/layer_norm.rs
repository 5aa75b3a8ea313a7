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
use burn::tensor::{DType, Shape};
use rayon::prelude::*;

use crate::host::{all_of, contiguous, filled, fold_lanes, simd, sum, tensor, HostFloat};

/// `y = γ ⊙ (x − μ)/√(σ² + ε)` by Burn's own op (every backend has one; flex's is fused).
pub(crate) fn compose_forward<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, epsilon: f64) -> FloatTensor<B> {
    B::layer_norm(x, gamma, None, epsilon)
}

/// `(dx, dγ)` as a composition of Burn primitives (formulas in the module docs).
pub(crate) fn compose_backward<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, dy: FloatTensor<B>, epsilon: f64) -> (FloatTensor<B>, FloatTensor<B>) {
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

/// Flex: the host kernel for f32/f64 when the shapes and dtypes agree (the last dimension
/// of `x` is `gamma`'s length, one dtype), the composition otherwise.
pub(crate) fn flex_forward(x: FlexTensor, gamma: FlexTensor, epsilon: f64) -> FlexTensor {
    match host_dtype(&x, &gamma, None) {
        Some(DType::F32) => host_forward::<f32>(&x, &gamma, epsilon),
        Some(DType::F64) => host_forward::<f64>(&x, &gamma, epsilon),
        _ => compose_forward::<burn::backend::Flex>(x, gamma, epsilon),
    }
}

/// Flex backward: the host kernel for f32/f64 when the shapes and dtypes agree, the
/// composition otherwise.
pub(crate) fn flex_backward(x: FlexTensor, gamma: FlexTensor, dy: FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
    match host_dtype(&x, &gamma, Some(&dy)) {
        Some(DType::F32) => host_backward::<f32>(&x, &gamma, &dy, epsilon),
        Some(DType::F64) => host_backward::<f64>(&x, &gamma, &dy, epsilon),
        _ => compose_backward::<burn::backend::Flex>(x, gamma, dy, epsilon),
    }
}

/// The dtype the host kernel runs in, if it can: `x [.., d]` with `d > 0`, `gamma [d]`,
/// `dy` shaped like `x`, all one dtype. Then every row of `x` has exactly `d` elements, so
/// the kernels write every output element.
fn host_dtype(x: &FlexTensor, gamma: &FlexTensor, dy: Option<&FlexTensor>) -> Option<DType> {
    let (xs, gs) = (x.shape(), gamma.shape());
    let d = *xs.last()?;
    let fits = d > 0 && gs.num_dims() == 1 && gs[0] == d && dy.is_none_or(|dy| dy.shape() == xs);
    let dtype = x.dtype();
    (fits && all_of(dtype, &[gamma]) && dy.is_none_or(|dy| dy.dtype() == dtype)).then_some(dtype)
}

/// The autodiff node: parents `x` and `γ`, state `(x, γ)`.
pub(crate) fn autodiff<B: Backend + crate::ops::EmberKernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LayerNormBackward {
        epsilon: f64,
    }

    impl<B: Backend + crate::ops::EmberKernels> Backward<B, 2> for LayerNormBackward {
        /// `(x, γ)`.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_gamma] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (x, gamma) = ops.state;
            let (dx, dgamma) = B::fused_layer_norm_backward(x, gamma, dy, self.epsilon);
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
            let y = B::fused_layer_norm_forward(x.clone(), gamma.clone(), epsilon);
            prep.finish((x, gamma), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm_forward(x.into_primitive(), gamma.into_primitive(), epsilon)),
    }
}

/// Rows per rayon task.
const ROWS: usize = 32;

/// `(μ, r)` of one row `x`, `r = 1/√(σ² + ε)` (the squared deviations summed in lanes).
#[inline(always)]
fn stats<T: HostFloat>(x: &[T], epsilon: f64) -> (T, T) {
    let d = T::from_f64(x.len() as f64);
    let mean = sum(x).div(d);
    let var = fold_lanes(x, T::ZERO, |acc, v| acc.add(v.sub(mean).mul(v.sub(mean))), T::add).div(d);
    (mean, T::ONE.div(var.add(T::from_f64(epsilon)).sqrt()))
}

/// Requires (checked by [`host_dtype`]): `x [.., d]`, `gamma [d]`, `d > 0`, dtype `T`.
fn host_forward<T: HostFloat>(x: &FlexTensor, gamma: &FlexTensor, epsilon: f64) -> FlexTensor {
    let shape = x.shape();
    let (x, gamma) = (contiguous::<T>(x), contiguous::<T>(gamma));
    let d = gamma.len();
    assert!(d > 0 && x.len() % d == 0, "layer_norm host kernel: {} elements in rows of {d}", x.len());
    // SAFETY: `x.len()` is a multiple of `d` (asserted), so the `ROWS·d` chunks of the slots
    // and of `x` pair up exactly, each splits into whole rows of `d`, and every slot of every
    // row is written.
    let y = unsafe {
        filled(x.len(), |y| {
            y.par_chunks_mut(ROWS * d).zip(x.par_chunks(ROWS * d)).for_each(|(y, x)| {
                simd(#[inline(always)] || {
                    for (y, x) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                        let (mean, rstd) = stats(x, epsilon);
                        for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma.iter()) {
                            y.write(x.sub(mean).mul(rstd).mul(g));
                        }
                    }
                })
            })
        })
    };
    tensor(y, shape)
}

/// Requires (checked by [`host_dtype`]): `x [.., d]`, `gamma [d]`, `dy` shaped like `x`,
/// `d > 0`, one dtype `T`.
fn host_backward<T: HostFloat>(x: &FlexTensor, gamma: &FlexTensor, dy: &FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
    let shape = x.shape();
    let (x, gamma, dy) = (contiguous::<T>(x), contiguous::<T>(gamma), contiguous::<T>(dy));
    let d = gamma.len();
    assert!(d > 0 && x.len() % d == 0 && dy.len() == x.len(), "layer_norm host kernel: {} and {} elements in rows of {d}", x.len(), dy.len());
    let inv_d = T::from_f64(1.0 / d as f64);
    let mut partial: Vec<Vec<T>> = Vec::new();
    // SAFETY: as in `host_forward`: whole rows of `d` (asserted), every slot of each written.
    let dx = unsafe {
        filled(x.len(), |dx| {
            // Each task returns its partial dγ; they are summed in task order (deterministic).
            partial = dx
                .par_chunks_mut(ROWS * d)
                .zip(x.par_chunks(ROWS * d))
                .zip(dy.par_chunks(ROWS * d))
                .map(|((dx, x), dy)| {
                    simd(#[inline(always)] || {
                        let mut dgamma = vec![T::ZERO; d];
                        let (mut x_hat, mut g, mut gx) = (vec![T::ZERO; d], vec![T::ZERO; d], vec![T::ZERO; d]);
                        for ((dx, x), dy) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(dy.chunks_exact(d)) {
                            let (mean, rstd) = stats(x, epsilon);
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
                                dx[i].write(rstd.mul(g[i].sub(mean_g).sub(x_hat[i].mul(mean_gx))));
                            }
                        }
                        dgamma
                    })
                })
                .collect();
        })
    };
    let mut dgamma = vec![T::ZERO; d];
    for part in partial {
        for (s, p) in dgamma.iter_mut().zip(part) {
            *s = s.add(p);
        }
    }
    (tensor(dx, shape), tensor(dgamma, [d]))
}
