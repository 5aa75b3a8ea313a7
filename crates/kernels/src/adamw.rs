//! AdamW's parameter update as one op: `(θ, g, m, v)` → `(θ', m', v')` in one pass over the
//! four tensors instead of Burn's dozen element-wise ops per parameter (each a pass over
//! memory and an allocation), with the decoupled weight decay and the gradient-clipping
//! factor `f` folded in:
//!
//! ```text
//! g ← f·g,   m' = β₁m + (1 − β₁)g,   v' = β₂v + (1 − β₂)g²,
//! θ' = θ·(1 − decay) − lr · (m'/c₁) / (√(v'/c₂) + ε),   c_i = 1 − β_iᵗ
//! ```
//!
//! (Loshchilov & Hutter's AdamW as Burn and PyTorch implement it; the first step is the
//! general one with `m = v = 0`.) [`FusedAdamW`] is a `burn::optim::Optimizer` whose state is
//! Burn's own `AdamWState`, so checkpoints written with Burn's AdamW load unchanged.
//!
//! The clipping factor `f = min(1, c/‖g‖)` needs the norm over *all* gradients, which
//! `Optimizer::step` (one parameter at a time) cannot see: the trainer computes it
//! ([`sum_of_squares`](crate::sum_of_squares) per gradient, no host sync) and
//! hands it over through the optimizer's [`GradScale`] before the step, instead of scaling
//! every gradient in a pass of its own.

use std::sync::{Arc, Mutex};

use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::host::{all_of, contiguous, simd, tensor, HostFloat, CHUNK};
use crate::ops::{EmberKernels, GradFactor};

/// The scalars of one update (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct AdamWScalars {
    /// Learning rate.
    pub lr: f64,
    /// `β₁`, `β₂`.
    pub betas: [f64; 2],
    /// `ε`.
    pub epsilon: f64,
    /// The decay factor's complement, `lr·λ` (0 for no decay).
    pub decay: f64,
    /// The step number `t ≥ 1` (bias corrections).
    pub time: usize,
}

impl AdamWScalars {
    /// `(1 − β₁ᵗ, 1 − β₂ᵗ)`.
    fn corrections(&self) -> (f64, f64) {
        let t = self.time as i32;
        (1.0 - self.betas[0].powi(t), 1.0 - self.betas[1].powi(t))
    }
}

/// The update by Burn's element-wise ops.
pub(crate) fn compose<B: Backend>(theta: FloatTensor<B>, g: FloatTensor<B>, m: FloatTensor<B>, v: FloatTensor<B>, factor: GradFactor<B>, s: AdamWScalars) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let g = match factor {
        GradFactor::Tensor(f) => {
            let shape = g.shape();
            let ones = burn::tensor::Shape::from(vec![1; shape.num_dims()]);
            B::float_mul(g, B::float_expand(B::float_reshape(f, ones), shape))
        }
        GradFactor::One => g,
    };
    let [b1, b2] = s.betas;
    let (c1, c2) = s.corrections();
    let m = B::float_add(B::float_mul_scalar(m, b1.into()), B::float_mul_scalar(g.clone(), (1.0 - b1).into()));
    let v = B::float_add(B::float_mul_scalar(v, b2.into()), B::float_mul_scalar(B::float_mul(g.clone(), g), (1.0 - b2).into()));
    let denom = B::float_add_scalar(B::float_sqrt(B::float_div_scalar(v.clone(), c2.into())), s.epsilon.into());
    let delta = B::float_div(B::float_div_scalar(m.clone(), c1.into()), denom);
    let theta = B::float_sub(B::float_mul_scalar(theta, (1.0 - s.decay).into()), B::float_mul_scalar(delta, s.lr.into()));
    (theta, m, v)
}

/// Flex: one pass on the host for f32/f64 when `θ, g, m, v` have one shape and dtype (and
/// the factor is that dtype's `[1]`), the composition otherwise.
pub(crate) fn flex(theta: FlexTensor, g: FlexTensor, m: FlexTensor, v: FlexTensor, factor: GradFactor<Flex>, s: AdamWScalars) -> (FlexTensor, FlexTensor, FlexTensor) {
    fn run<T: HostFloat>(theta: &FlexTensor, g: &FlexTensor, m: &FlexTensor, v: &FlexTensor, factor: Option<&FlexTensor>, s: AdamWScalars) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = theta.shape();
        let (theta, g, m, v) = (contiguous::<T>(theta), contiguous::<T>(g), contiguous::<T>(m), contiguous::<T>(v));
        let n = theta.len();
        assert!(g.len() == n && m.len() == n && v.len() == n, "adamw host kernel: {n}, {}, {}, {} elements", g.len(), m.len(), v.len());
        let (c1, c2) = s.corrections();
        let f = T::from_f64;
        let (b1, b2, nb1, nb2) = (f(s.betas[0]), f(s.betas[1]), f(1.0 - s.betas[0]), f(1.0 - s.betas[1]));
        let (inv_c1, inv_c2, eps, lr, keep) = (f(1.0 / c1), f(1.0 / c2), f(s.epsilon), f(s.lr), f(1.0 - s.decay));
        let scale = factor.map_or(T::ONE, |t| contiguous::<T>(t)[0]);
        let (mut theta2, mut m2, mut v2) = (Vec::<T>::with_capacity(n), Vec::<T>::with_capacity(n), Vec::<T>::with_capacity(n));
        theta2.spare_capacity_mut()[..n]
            .par_chunks_mut(CHUNK)
            .zip(m2.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
            .zip(v2.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, ((to, mo), vo))| {
                let r = c * CHUNK..(c * CHUNK + to.len());
                let (th, g, m, v) = (&theta[r.clone()], &g[r.clone()], &m[r.clone()], &v[r]);
                simd(#[inline(always)] || {
                    for i in 0..to.len() {
                        let gi = g[i].mul(scale); // exact when the factor is 1
                        let mi = b1.mul(m[i]).add(nb1.mul(gi));
                        let vi = b2.mul(v[i]).add(nb2.mul(gi.mul(gi)));
                        let delta = mi.mul(inv_c1).div(vi.mul(inv_c2).sqrt().add(eps));
                        to[i].write(th[i].mul(keep).sub(lr.mul(delta)));
                        mo[i].write(mi);
                        vo[i].write(vi);
                    }
                })
            });
        // SAFETY: the three outputs are split into the same CHUNK-sized chunks (n slots each)
        // and every index of every chunk is written in the loop above.
        unsafe {
            theta2.set_len(n);
            m2.set_len(n);
            v2.set_len(n);
        }
        let t = |x: Vec<T>| tensor(x, shape.clone());
        (t(theta2), t(m2), t(v2))
    }
    let f = match &factor {
        GradFactor::Tensor(f) => Some(f),
        GradFactor::One => None,
    };
    let shape = theta.shape();
    let same = [&g, &m, &v].iter().all(|t| t.shape() == shape) && all_of(theta.dtype(), &[&g, &m, &v]);
    let factor_fits = f.is_none_or(|f| f.shape().num_elements() == 1 && f.dtype() == theta.dtype());
    match (theta.dtype(), same && factor_fits) {
        (DType::F32, true) => run::<f32>(&theta, &g, &m, &v, f, s),
        (DType::F64, true) => run::<f64>(&theta, &g, &m, &v, f, s),
        _ => compose::<Flex>(theta, g, m, v, factor, s),
    }
}

/// The gradient factor of the coming step (`[1]`, e.g. global-norm clipping's
/// `min(1, c/‖g‖)`), shared between the trainer and its [`FusedAdamW`] (clones share it).
/// `None`: gradients as they are.
#[derive(Clone, Debug, Default)]
pub struct GradScale(Arc<Mutex<Option<Tensor<1>>>>);

impl GradScale {
    /// Use `factor` in the updates from now on (`None`: no factor).
    pub fn set(&self, factor: Option<Tensor<1>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = factor;
    }

    fn get(&self) -> Option<Tensor<1>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// AdamW with the update fused (module docs) and the weight decay applied to parameters
/// with 2+ dimensions only (matrices and tables, as nanoGPT does; vectors such as norm
/// gains are not decayed). Each gradient is first multiplied by the factor in
/// [`FusedAdamW::grad_scale`], if one is set.
#[derive(Clone, Debug)]
pub struct FusedAdamW {
    /// `β₁`, `β₂`.
    pub betas: [f64; 2],
    /// `ε`.
    pub epsilon: f64,
    /// Decoupled weight decay `λ` (per unit learning rate) of matrices.
    pub weight_decay: f64,
    /// The gradient factor of the coming step (none by default).
    pub grad_scale: GradScale,
}

impl FusedAdamW {
    /// AdamW with `betas`, `epsilon` and matrix decay `weight_decay`, no gradient factor.
    pub fn new(betas: [f64; 2], epsilon: f64, weight_decay: f64) -> Self {
        Self { betas, epsilon, weight_decay, grad_scale: GradScale::default() }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(&self, lr: LearningRate, tensor: Tensor<D>, grad: Tensor<D>, state: Option<Self::State<D>>) -> (Tensor<D>, Option<Self::State<D>>) {
        let (m, v, time) = match state {
            Some(s) => (s.momentum.moment_1, s.momentum.moment_2, s.momentum.time + 1),
            None => (grad.zeros_like(), grad.zeros_like(), 1),
        };
        let decay = if D >= 2 { lr * self.weight_decay } else { 0.0 };
        let scalars = AdamWScalars { lr, betas: self.betas, epsilon: self.epsilon, decay, time };
        let factor = self.grad_scale.get().map_or(GradFactor::One, |f| GradFactor::Tensor(f.into_dispatch()));
        let (theta, m, v) = <burn::backend::Dispatch as EmberKernels>::fused_adamw(tensor.into_dispatch(), grad.into_dispatch(), m.into_dispatch(), v.into_dispatch(), factor, scalars);
        let momentum = AdaptiveMomentumState::new(time, Tensor::from_dispatch(m), Tensor::from_dispatch(v));
        (Tensor::from_dispatch(theta), Some(AdamWState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        let m = state.momentum;
        let mut momentum = AdaptiveMomentumState::new(m.time, m.moment_1.to_device(device), m.moment_2.to_device(device));
        momentum.max_moment_2 = m.max_moment_2.map(|t| t.to_device(device));
        AdamWState { momentum }
    }
}
