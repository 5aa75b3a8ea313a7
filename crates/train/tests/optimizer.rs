//! The fused AdamW (`ember_kernels::FusedAdamW`) against the trainer's plain forms: matrix
//! decay then Burn's AdamW, and global-norm clipping then the update, on every test device.

use burn::tensor::{Device, Distribution, Tensor};
use ember_testing::{assert_close, test_devices};

/// Back on flex in f64, for comparison across devices.
fn host<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    Tensor::<D>::from_data(t.into_data().convert::<f64>(), &Device::flex())
}

/// `a` ≈ `b` to `rtol` of `b`'s scale.
fn assert_scaled<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, rtol: f64, what: &str) {
    let scale = b.clone().abs().max().into_scalar::<f64>();
    assert_close(a, b, rtol * scale, rtol, what);
}

#[test]
fn fused_adamw_equals_matrix_decay_then_burns_adamw() {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
    use ember_kernels::FusedAdamW;
    use ember_train::trainer::decay_matrices;
    let (lr, wd, betas) = (0.05, 0.3, [0.9, 0.99]);
    for td in test_devices() {
        let device = td.device.clone().autodiff();
        device.seed(4);
        let start = LinearConfig::new(40, 30).init(&device); // 1200 + 30 parameters
        let x = Tensor::<2>::random([7, 40], Distribution::Normal(0.0, 1.0), &device);
        let grads = |m: &Linear| GradientsParams::from_grads(m.forward(x.clone()).powi_scalar(3).sum().backward(), m);
        let mut fused: ModuleOptimizer = ModuleOptimizer::from(FusedAdamW::new(betas, 1e-8, wd));
        let mut burn = AdamWConfig::new().with_beta_1(betas[0] as f32).with_beta_2(betas[1] as f32).with_epsilon(1e-8).with_weight_decay(0.0).init();
        let (mut a, mut b) = (start.clone(), start);
        // Three steps: the first (no state) and two with moments and bias corrections.
        for step in 0..3 {
            a = fused.step(lr, a.clone(), grads(&a));
            b = burn.step(lr, decay_matrices(b.clone(), 1.0 - lr * wd), grads(&b));
            let what = format!("{} step {step}", td.name);
            assert_scaled(&host(a.weight.val().unsqueeze::<3>()), &host(b.weight.val().unsqueeze::<3>()), 1e-5, &format!("weight, {what}"));
            let bias = |m: &Linear| host(m.bias.as_ref().unwrap().val().unsqueeze::<3>());
            assert_scaled(&bias(&a), &bias(&b), 1e-5, &format!("bias (not decayed), {what}"));
        }
    }
}

#[test]
fn fused_adamw_with_a_clip_factor_equals_clipping_then_the_update() {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, ModuleOptimizer};
    use ember_kernels::{sum_of_squares, FusedAdamW};
    use ember_train::trainer::{clip_factor, clip_global_norm};
    // AdamW is invariant to a constant gradient factor up to ε: a large ε and a different
    // factor each step make the factor visible in the update.
    let (lr, wd, betas, eps) = (0.05, 0.3, [0.9, 0.99], 0.5);
    for td in test_devices() {
        let device = td.device.clone().autodiff();
        device.seed(5);
        let start = LinearConfig::new(40, 30).init(&device);
        let x = Tensor::<2>::random([7, 40], Distribution::Normal(0.0, 1.0), &device);
        let grads = |m: &Linear| GradientsParams::from_grads(m.forward(x.clone()).powi_scalar(3).sum().backward(), m);
        let folded_adamw = FusedAdamW::new(betas, eps, wd);
        let scale = folded_adamw.grad_scale.clone();
        let mut folded = ModuleOptimizer::from(folded_adamw);
        let mut plain = ModuleOptimizer::from(FusedAdamW::new(betas, eps, wd));
        let (mut a, mut b) = (start.clone(), start);
        for step in 0..3 {
            let ga = grads(&a);
            // Clip thresholds well below the norm, so the factor is far from 1.
            let sq = |g: Option<Tensor<2>>| sum_of_squares(g.unwrap()).into_scalar::<f64>();
            let norm = (sq(ga.get::<2>(a.weight.id)) + sq(ga.get::<1>(a.bias.as_ref().unwrap().id).map(|b| b.unsqueeze()))).sqrt();
            let max_norm = norm / [3.0, 20.0, 1.5][step];
            scale.set(clip_factor(&ga, &a, max_norm));
            a = folded.step(lr, a.clone(), ga);
            scale.set(None);
            b = plain.step(lr, b.clone(), clip_global_norm(grads(&b), &b, max_norm));
            let what = format!("{} step {step}", td.name);
            assert_scaled(&host(a.weight.val().unsqueeze::<3>()), &host(b.weight.val().unsqueeze::<3>()), 1e-5, &format!("weight, {what}"));
            let bias = |m: &Linear| host(m.bias.as_ref().unwrap().val().unsqueeze::<3>());
            assert_scaled(&bias(&a), &bias(&b), 1e-5, &format!("bias, {what}"));
        }
    }
}
