//! The trainer's production update, `trainer::apply_update` (global-norm clipping's factor
//! handed to the fused AdamW through its `GradScale`, matrix decay in the same pass), end to
//! end on a `TinyLm`, against a reference assembled from plain parts: the global L2 norm of
//! every gradient computed on the host in f64, every gradient multiplied by
//! `min(1, c/‖g‖)`, then Burn's own AdamW (ε = 1e-8, decay λ on matrices and tables, none on
//! the 1-D gains and biases, as a second parameter group). Three steps, every parameter
//! compared to 1e-5; with the clip active, inactive (`c ≫ ‖g‖`) and off (`c = 0`).

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_testing::test_devices;
use ember_train::trainer::{apply_update, optimizer};
use ember_train::{Config, TinyLm};

const VOCAB: usize = 13;
const B: usize = 3;
const T: usize = 8;
const BETAS: [f64; 2] = [0.9, 0.95];
const DECAY: f64 = 0.1;
/// Learning rates of the three steps (large, so the gradient norm changes between steps).
const LRS: [f64; 3] = [0.03, 0.02, 0.04];

/// d 16, 2 heads, 1 layer without biases (the key bias has no true gradient: AdamW would
/// turn its rounding noise into steps), a learned position table (a 2-D parameter besides
/// the weights), `train.grad_clip = clip`.
fn config(clip: f64) -> Config {
    Config::from_toml(&format!(
        "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\n[position]\nscheme = \"learned\"\nmax_len = {T}\n\
         [data]\ncorpus = \"unused\"\ncontext = {T}\n\
         [train]\nbatch_size = {B}\nsteps = 3\nlr = 0.03\nweight_decay = {DECAY}\nbetas = [{}, {}]\ngrad_clip = {clip}\n",
        BETAS[0], BETAS[1]
    ))
    .unwrap()
}

/// Step `step`'s gradients of `model`'s loss on a fixed `[B, T]` batch (and its targets).
fn grads(model: &TinyLm, step: usize, device: &Device) -> GradientsParams {
    let ids = |shift: usize| {
        let v: Vec<i64> = (0..B * T).map(|i| (((i + shift) * 7 + 3 * step + 1) * (i + shift + 5) % VOCAB) as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, [B, T]), device)
    };
    GradientsParams::from_grads(model.loss(ids(0), ids(1), None).unwrap().backward(), model)
}

/// Every parameter of `model`, in visiting order: `(dims, values in f64)`.
fn params(model: &TinyLm) -> Vec<(Vec<usize>, Vec<f64>)> {
    struct Collect(Vec<(Vec<usize>, Vec<f64>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            self.0.push((t.dims().to_vec(), t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()));
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// `‖g‖`, the L2 norm over every gradient of `model`'s parameters, on the host in f64.
fn global_norm(grads: &GradientsParams, model: &TinyLm) -> f64 {
    struct Norm<'a>(&'a GradientsParams, f64);
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1 += g.into_data().convert::<f64>().try_to_vec::<f64>().unwrap().iter().map(|x| x * x).sum::<f64>();
            }
        }
    }
    let mut n = Norm(grads, 0.0);
    model.visit(&mut n);
    n.1.sqrt()
}

/// Every gradient times `factor`.
fn scaled(grads: GradientsParams, model: &TinyLm, factor: f64) -> GradientsParams {
    struct Scale(GradientsParams, f64);
    impl ModuleVisitor for Scale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(param.id) {
                self.0.register::<D>(param.id, g.mul_scalar(self.1));
            }
        }
    }
    let mut s = Scale(grads, factor);
    model.visit(&mut s);
    s.0
}

/// Burn's AdamW with the trainer's hyper-parameters: decay λ for every parameter, then a
/// group without decay for the 1-D ones (norm gains, biases).
fn burn_adamw(model: &TinyLm) -> ModuleOptimizer {
    struct Vectors(Vec<ParamId>);
    impl ModuleVisitor for Vectors {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if D == 1 {
                self.0.push(param.id);
            }
        }
    }
    let mut vectors = Vectors(Vec::new());
    model.visit(&mut vectors);
    assert!(vectors.0.len() >= 3, "norm gains: {}", vectors.0.len());
    let adamw = |decay: f64| AdamWConfig::new().with_beta_1(BETAS[0] as f32).with_beta_2(BETAS[1] as f32).with_epsilon(1e-8).with_weight_decay(decay as f32).build();
    ModuleOptimizer::from(adamw(DECAY)).with_group(ParamGroup::from_ids(vectors.0), adamw(0.0), None)
}

/// The largest `|a − b|` over every parameter, and asserts the two models line up.
fn max_diff(a: &TinyLm, b: &TinyLm) -> f64 {
    let (a, b) = (params(a), params(b));
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).flat_map(|((da, va), (db, vb))| {
        assert_eq!(da, db);
        va.iter().zip(vb).map(|(x, y)| (x - y).abs())
    })
    .fold(0.0, f64::max)
}

/// Three steps of `apply_update` with `train.grad_clip = clip` vs the reference (module
/// docs) and vs the same reference without clipping. Returns, per step, `(‖g‖, the largest
/// parameter difference trainer − reference, reference − unclipped reference)`.
fn run(clip: f64, device: &Device) -> Vec<(f64, f64, f64)> {
    let cfg = config(clip);
    let ad = device.clone().autodiff();
    ad.seed(11);
    let start = cfg.tiny_lm(VOCAB).init(&ad).unwrap();
    let (mut trained, mut reference, mut unclipped) = (start.clone(), start.clone(), start);
    let mut optim = optimizer(&cfg.train);
    let (mut ref_optim, mut plain_optim) = (burn_adamw(&reference), burn_adamw(&unclipped));
    let mut out = Vec::new();
    for (step, lr) in LRS.into_iter().enumerate() {
        let g = grads(&trained, step, &ad);
        trained = apply_update(trained, &mut optim, g, lr, &cfg.train);
        let g = grads(&reference, step, &ad);
        let norm = global_norm(&g, &reference);
        let factor = if clip > 0.0 { (clip / norm).min(1.0) } else { 1.0 };
        reference = ref_optim.step(lr, reference.clone(), scaled(g, &reference, factor));
        let g = grads(&unclipped, step, &ad);
        unclipped = plain_optim.step(lr, unclipped.clone(), g);
        out.push((norm, max_diff(&trained, &reference), max_diff(&reference, &unclipped)));
    }
    out
}

#[test]
fn apply_update_with_an_active_clip_equals_clipping_then_burns_adamw() {
    let clip = 0.05;
    for td in test_devices() {
        let steps = run(clip, &td.device);
        eprintln!("{} clip {clip}: (‖g‖, trainer − reference, reference − unclipped) = {steps:?}", td.name);
        for (step, &(norm, diff, _)) in steps.iter().enumerate() {
            assert!(norm > 4.0 * clip, "{}: step {step}: ‖g‖ {norm} must be well above the clip {clip}", td.name);
            assert!(diff <= 1e-5, "{}: step {step}: parameters differ by {diff:e}", td.name);
        }
        // Dropping the clip factor would change the parameters by far more than the
        // tolerance: the factor differs between steps, so AdamW does not cancel it.
        let effect = steps.iter().map(|s| s.2).fold(0.0, f64::max);
        assert!(effect > 1e-3, "{}: the clip moves the parameters by only {effect:e}: the test could not see it", td.name);
    }
}

#[test]
fn apply_update_with_an_inactive_or_no_clip_equals_burns_adamw() {
    for td in test_devices() {
        for clip in [1e3, 0.0] {
            for (step, (norm, diff, no_clip)) in run(clip, &td.device).into_iter().enumerate() {
                let what = format!("{}: clip {clip}, step {step}", td.name);
                assert!(clip == 0.0 || norm < clip, "{what}: ‖g‖ {norm} should be under the clip");
                assert!(diff <= 1e-5, "{what}: parameters differ by {diff:e}");
                assert!(no_clip <= 1e-6, "{what}: a factor of 1 is no factor ({no_clip:e})");
            }
        }
    }
}
