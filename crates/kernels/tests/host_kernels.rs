//! The flex host kernels against Burn's own ops: linear, LayerNorm, GELU and attention from
//! separate q/k/v (value and every input's gradient), AdamW (two steps) and Σx² — between
//! them every `unsafe` block of the crate (attention from the fused `qkv`: `bias_gradient`).
//! On flex only and at sizes that are not multiples of the SIMD widths, so that the whole
//! file also runs under Miri, which checks those blocks (uninitialised buffers, strided
//! `gemm` views, disjoint parallel writes) as they execute:
//!
//! ```sh
//! MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
//!   cargo +nightly miri test -p ember-kernels --test host_kernels
//! ```
//!
//! (flags explained in the crate docs, "Under Miri"; the other numeric tests also open wgpu,
//! whose driver calls Miri cannot run).

use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::activation::{gelu as burn_gelu, softmax};
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use ember_kernels::{attention, causal_mask, gelu, layer_norm, linear, sum_of_squares, FusedAdamW};
use ember_testing::assert_close;

const DTYPES: [FloatDType; 2] = [FloatDType::F32, FloatDType::F64];

/// Relative tolerance of a dtype.
fn tol(dtype: FloatDType) -> f64 {
    if dtype == FloatDType::F64 { 1e-12 } else { 2e-6 }
}

/// A Normal(0, 1) leaf of `dims` on the autodiff flex device, in `dtype`, requiring grad.
fn leaf<const D: usize>(dims: [usize; D], dtype: FloatDType) -> Tensor<D> {
    Tensor::<D>::random(dims, Distribution::Normal(0.0, 1.0), &Device::flex().autodiff()).cast(dtype).require_grad()
}

/// `a` ≈ `b` to `rtol` of `b`'s largest element.
fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, rtol: f64, what: &str) {
    let scale = b.clone().abs().max().into_scalar::<f64>().max(1e-30);
    assert_close(&a, &b, rtol * scale, 0.0, what);
}

/// `(value, d input)` for each of `inputs` of `f(inputs) ⊙ w`'s sum, `w` a fixed random
/// weighting (so every output element's gradient differs).
fn run<const D: usize, const E: usize>(f: impl Fn(&[Tensor<D>]) -> Tensor<E>, inputs: &[Tensor<D>], w: &Tensor<E>) -> (Tensor<E>, Vec<Tensor<D>>) {
    let inputs: Vec<Tensor<D>> = inputs.iter().map(|t| t.clone().detach().require_grad()).collect();
    let y = f(&inputs);
    let grads = (y.clone() * w.clone()).sum().backward();
    (y.inner(), inputs.iter().map(|t| t.grad(&grads).expect("a gradient").inner()).collect())
}

/// `fused` and `plain` agree in value and in the gradient of every input.
fn agree<const D: usize, const E: usize>(fused: impl Fn(&[Tensor<D>]) -> Tensor<E>, plain: impl Fn(&[Tensor<D>]) -> Tensor<E>, inputs: &[Tensor<D>], out: [usize; E], dtype: FloatDType, what: &str) {
    let w = Tensor::<E>::random(out, Distribution::Normal(0.0, 1.0), &Device::flex().autodiff()).cast(dtype);
    let (ya, ga) = run(fused, inputs, &w);
    let (yb, gb) = run(plain, inputs, &w);
    close(ya, yb, tol(dtype), &format!("{what} {dtype:?}: value"));
    for (i, (a, b)) in ga.into_iter().zip(gb).enumerate() {
        close(a, b, tol(dtype), &format!("{what} {dtype:?}: gradient of input {i}"));
    }
}

#[test]
fn linear_matches_burns_matmul() {
    for dtype in DTYPES {
        let (x, w) = (leaf([2, 3, 5], dtype), leaf([5, 7], dtype));
        // w is passed as [1, 5, 7] so that both inputs are 3-D (Burn's matmul broadcasts it).
        let fused = |t: &[Tensor<3>]| linear(t[0].clone(), t[1].clone().squeeze_dim(0), None).unwrap();
        let plain = |t: &[Tensor<3>]| t[0].clone().matmul(t[1].clone());
        agree(fused, plain, &[x, w.unsqueeze()], [2, 3, 7], dtype, "linear");
    }
}

#[test]
fn layer_norm_matches_the_formula() {
    for dtype in DTYPES {
        let (x, gamma) = (leaf([2, 3, 6], dtype), leaf([1, 1, 6], dtype));
        let fused = |t: &[Tensor<3>]| layer_norm(t[0].clone(), t[1].clone().reshape([6]), None, 1e-5).unwrap();
        let plain = |t: &[Tensor<3>]| {
            let centered = t[0].clone() - t[0].clone().mean_dim(2);
            let var = centered.clone().powi_scalar(2).mean_dim(2);
            centered / (var + 1e-5).sqrt() * t[1].clone()
        };
        agree(fused, plain, &[x, gamma], [2, 3, 6], dtype, "layer_norm");
    }
}

#[test]
fn gelu_matches_burns_gelu() {
    for dtype in DTYPES {
        let x = leaf([3, 37], dtype); // 111 elements: a tail after the SIMD lanes
        agree(|t: &[Tensor<2>]| gelu(t[0].clone()), |t: &[Tensor<2>]| burn_gelu(t[0].clone()), &[x], [3, 37], dtype, "gelu");
    }
}

#[test]
fn attention_matches_the_masked_softmax() {
    for dtype in DTYPES {
        let [b, h, t, dh] = [2, 2, 5, 4]; // 1/√dh = 0.5 exactly: with 1/√3, Burn's autodiff of the scaling agreed only to f32 precision
        let qkv: Vec<Tensor<4>> = (0..3).map(|_| leaf([b, h, t, dh], dtype)).collect();
        let fused = |x: &[Tensor<4>]| attention(x[0].clone(), x[1].clone(), x[2].clone(), None).unwrap().reshape([b, t, h, dh]);
        let plain = |x: &[Tensor<4>]| {
            let scores = x[0].clone().matmul(x[1].clone().swap_dims(2, 3)) / (dh as f64).sqrt();
            let mask = causal_mask(t, t, &Device::flex().autodiff()).expand([b, h, t, t]);
            softmax(scores.mask_fill(mask, f64::NEG_INFINITY), 3).matmul(x[2].clone()).swap_dims(1, 2)
        };
        agree(fused, plain, &qkv, [b, t, h, dh], dtype, "attention");
    }
}

#[test]
fn sum_of_squares_and_adamw_match_burn() {
    for dtype in DTYPES {
        let flex = Device::flex();
        let x = Tensor::<2>::random([7, 13], Distribution::Normal(0.0, 1.0), &flex).cast(dtype);
        close(sum_of_squares(x.clone()), x.clone().powi_scalar(2).sum(), tol(dtype), &format!("Σx² {dtype:?}"));
        // Two AdamW steps on a matrix (decayed), the second from the first's state.
        let (lr, betas, eps, decay) = (0.01, [0.9, 0.99], 1e-8, 0.1);
        let burn = AdamWConfig::new().with_beta_1(betas[0] as f32).with_beta_2(betas[1] as f32).with_epsilon(eps as f32).with_weight_decay(decay as f32).build();
        let fused = FusedAdamW::new(betas, eps, decay);
        let grads = [Tensor::<2>::random([7, 13], Distribution::Normal(0.0, 1.0), &flex).cast(dtype), x.clone().sin()];
        let (mut a, mut b, mut sa, mut sb) = (x.clone(), x, None, None);
        for (step, g) in grads.into_iter().enumerate() {
            (a, sa) = fused.step(lr, a, g.clone(), sa);
            (b, sb) = burn.step(lr, b, g, sb);
            // Burn's AdamW keeps its scalars in f32: compare to f32 precision in both dtypes.
            close(a.clone(), b.clone(), 2e-6, &format!("AdamW {dtype:?} step {step}"));
        }
    }
}
