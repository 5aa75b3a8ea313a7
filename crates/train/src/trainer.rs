//! The training loop: the loss from the plain or the fused head (`train.fused_head`, see
//! [`TinyLm::loss`]), AdamW, warm-up + cosine schedule, global-norm clipping, periodic
//! evaluation, metrics, atomic checkpoints, resume, NaN guard, Ctrl-C.
//!
//! Determinism: the weights come from `device.seed(train.seed)`, batch `k` from the
//! stateless sampler keyed by `(seed, k)` (see [`crate::dataset`]), and the device is reseeded
//! with `seed + step` before each step (dropout masks), so on a CPU backend a run resumed
//! from step `k` produces bit-identical losses to an uninterrupted one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use ember_embed::loss::cross_entropy;
use serde::Serialize;

use crate::config::{Config, TrainConfig};
use crate::dataset::{Batches, Dataset, Split, Stream};
use ember_kernels::{sum_of_squares, FusedAdamW, GradScale};
use crate::metrics::MetricsLog;
use crate::model::TinyLm;
use crate::run::{checkpoint, Checkpoint, RunDir, TrainState};
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// Learning rate at `step` (0-based): linear warm-up `lr·(step+1)/(warmup+1)`, then cosine
/// from `lr` to `min_lr` at `steps` (nanoGPT's `get_lr`).
pub fn lr_at(step: usize, tc: &TrainConfig) -> f64 {
    if step < tc.warmup {
        return tc.lr * (step + 1) as f64 / (tc.warmup + 1) as f64;
    }
    if step >= tc.steps {
        return tc.min_lr;
    }
    let ratio = (step - tc.warmup) as f64 / (tc.steps - tc.warmup) as f64;
    tc.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()) * (tc.lr - tc.min_lr)
}

/// Global-norm clipping's factor `min(1, max_norm / ‖g‖)` (`[1]`), `‖g‖` the L2 norm over
/// every parameter's gradient in `grads` (as `torch.nn.utils.clip_grad_norm_`); `None` when
/// `grads` holds none of `model`'s parameters. Runs on the device, no sync.
pub fn clip_factor<M: Module>(grads: &GradientsParams, model: &M, max_norm: f64) -> Option<Tensor<1>> {
    struct SumSq<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSq<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = sum_of_squares(g);
                self.total = Some(match self.total.take() {
                    Some(total) => total + s,
                    None => s,
                });
            }
        }
    }
    let mut sum = SumSq { grads, total: None };
    model.visit(&mut sum);
    // factor = max_norm / max(norm, max_norm) = min(1, max_norm / norm)
    sum.total.map(|total| total.sqrt().clamp_min(max_norm).recip().mul_scalar(max_norm))
}

/// Scale all gradients by [`clip_factor`]. The trainer does not call this: it hands the
/// factor to the fused AdamW step instead ([`TrainOptimizer`]), which applies it in the
/// same pass; this is the plain form (and the tests' reference).
pub fn clip_global_norm<M: Module>(grads: GradientsParams, model: &M, max_norm: f64) -> GradientsParams {
    struct Scale {
        grads: GradientsParams,
        factor: Tensor<1>,
    }
    impl ModuleVisitor for Scale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let f = self.factor.clone().reshape([1; D]);
                self.grads.register::<D>(param.id, g * f);
            }
        }
    }
    let Some(factor) = clip_factor(&grads, model, max_norm) else { return grads };
    let mut scale = Scale { grads, factor };
    model.visit(&mut scale);
    scale.grads
}

/// The trainer's optimizer: Burn's [`ModuleOptimizer`] around a [`FusedAdamW`], and the
/// handle through which [`apply_update`] gives that AdamW the step's clipping factor.
pub struct TrainOptimizer {
    /// The optimizer (its record is what checkpoints store).
    pub module: ModuleOptimizer,
    /// The AdamW's gradient factor, set per step.
    pub grad_scale: GradScale,
}

/// AdamW (β and λ from the config, ε = 1e-8) as one fused update per parameter
/// ([`FusedAdamW`]); as in nanoGPT, only parameters with 2+ dimensions (matrices, tables)
/// decay and the 1-D ones (norm gains, biases) do not — the same update as
/// [`decay_matrices`] followed by Burn's AdamW without decay (tested).
pub fn optimizer(tc: &TrainConfig) -> TrainOptimizer {
    let adamw = FusedAdamW::new(tc.betas, 1e-8, tc.weight_decay);
    let grad_scale = adamw.grad_scale.clone();
    TrainOptimizer { module: ModuleOptimizer::from(adamw), grad_scale }
}

/// Decoupled weight decay `θ ← (1 − lr·λ)·θ` on every parameter with 2+ dimensions. Applied
/// just before the AdamW step, this is exactly Burn's (and PyTorch's) AdamW decay, restricted
/// to matrices and tables.
pub fn decay_matrices<M: Module>(model: M, factor: f64) -> M {
    struct Decay(f64);
    impl ModuleMapper for Decay {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if D < 2 {
                return param;
            }
            let (id, tensor, mapper) = param.consume();
            let tracked = tensor.is_require_grad();
            let decayed = tensor.mul_scalar(self.0).detach(); // a fresh leaf
            let decayed = if tracked { decayed.require_grad() } else { decayed };
            Param::from_mapped_value(id, decayed, mapper)
        }
    }
    model.map(&mut Decay(factor))
}

/// One parameter update from `grads` at learning rate `lr`: global-norm clipping
/// (`train.grad_clip` > 0), matrix weight decay (`train.weight_decay` > 0), the AdamW step.
pub fn apply_update(model: TinyLm, optim: &mut TrainOptimizer, grads: GradientsParams, lr: f64, tc: &TrainConfig) -> TinyLm {
    // The clipping factor and the matrix decay are applied inside the fused AdamW pass.
    let factor = if tc.grad_clip > 0.0 { clip_factor(&grads, &model, tc.grad_clip) } else { None };
    optim.grad_scale.set(factor);
    let model = optim.module.step(lr, model, grads);
    optim.grad_scale.set(None);
    model
}

/// Options a command line adds to a config.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Continue from the run directory's checkpoint.
    pub resume: bool,
    /// Hide the progress bar and the log lines.
    pub quiet: bool,
    /// Set by Ctrl-C: save a checkpoint and stop after the current step.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop (with a checkpoint, like Ctrl-C) once this many steps are done.
    pub stop_at: Option<usize>,
}

/// Result of a training run.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOutcome {
    /// Steps completed in total (including before a resume).
    pub steps: usize,
    /// Training loss of each step run in this call, in order (`(step, loss)`).
    pub losses: Vec<(usize, f64)>,
    /// Final evaluation: mean train loss over the fixed evaluation batches.
    pub final_train_loss: f64,
    /// Final evaluation: mean val loss over the fixed evaluation batches.
    pub final_val_loss: f64,
    /// Whether the run stopped early on Ctrl-C.
    pub interrupted: bool,
    /// Mean milliseconds per step in this call.
    pub ms_per_step: f64,
    /// Tokens per second in this call.
    pub tokens_per_s: f64,
}

/// Estimate the loss on `split` (nanoGPT's `estimate_loss`): the mean over
/// `train.eval_batches` fixed batches of the split's evaluation stream (the same batches at
/// every evaluation). For the loss over a *whole* split see [`crate::eval::evaluate_split`].
pub fn estimate_loss(model: &TinyLm, data: &Dataset, config: &Config, split: Split, device: &Device) -> Result<f64, TrainError> {
    let batches = Batches::of(config, Stream::eval(split));
    let n = config.train.eval_batches;
    let mut sum = 0.0;
    for i in 0..n {
        let (x, y) = data.batch(&batches, i as u64, device);
        let logits = model.forward(x, 0)?;
        sum += cross_entropy(logits, y, model.tok.padding_idx()).into_scalar::<f64>();
    }
    Ok(sum / n as f64)
}

/// Train `config` on `device` into `config.run.out_dir`. See the module docs.
pub fn train(config: &Config, device: &Device, options: &TrainOptions) -> Result<TrainOutcome, TrainError> {
    let run = RunDir::new(&config.run.out_dir);
    run.ensure()?;
    let tc = &config.train;
    let ad = device.clone().autodiff();

    // Data, tokenizer, model, optimizer — fresh or from the checkpoint.
    let resume = options.resume && run.checkpoint().exists();
    if options.resume && !resume {
        return Err(TrainError::checkpoint(run.checkpoint(), "--resume: no checkpoint here; train without --resume first"));
    }
    let tokenizer = if resume { Some(Tokenizer::load(&run.tokenizer())?) } else { None };
    let data = Dataset::load(&config.data, tokenizer)?;
    ad.seed(tc.seed);
    let mut model = config.tiny_lm(data.tokenizer.vocab_size()).init(&ad)?;
    let mut optim = optimizer(tc);
    let mut state = TrainState { step: 0, elapsed_s: 0.0, tokens: 0 };
    if resume {
        let ck = Checkpoint::load(&run.checkpoint())?;
        model = checkpoint::load_model(model, ck.model, &run.checkpoint())?;
        optim.module = checkpoint::load_optim(optim.module, ck.optim, &run.checkpoint())?;
        state = ck.state;
    } else {
        run.create(config, &data.tokenizer)?;
    }
    let mut metrics = MetricsLog::open(&run.metrics(), resume.then_some(state.step))?;
    let save = |model: &TinyLm, optim: &TrainOptimizer, state: &TrainState| -> Result<(), TrainError> {
        let (m, o) = checkpoint::to_bytes(model, &optim.module)?;
        Checkpoint { state: state.clone(), model: m, optim: o }.save(&run.checkpoint())
    };
    let train_batches = Batches::of(config, Stream::Train);
    let head_chunk = tc.head_chunk(data.tokenizer.vocab_size());

    let progress = crate::metrics::Progress::new(tc.steps, state.step, options.quiet, tc.log_interval);
    let tokens_per_step = (tc.batch_size * config.data.context) as u64;
    let started = Instant::now();
    let first_step = state.step;
    let base_elapsed = state.elapsed_s;
    let mut last_eval = None;
    let mut losses = Vec::new();
    let mut interrupted = false;
    while state.step < tc.steps {
        let step = state.step;
        let lr = lr_at(step, tc);
        ad.seed(tc.seed.wrapping_add(1 + step as u64));
        let (x, y) = data.batch(&train_batches, step as u64, &ad);
        let loss = model.loss(x, y, head_chunk)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = apply_update(model, &mut optim, grads, lr, tc);
        // Read the loss only now: on a GPU, reading it before the backward pass would drain
        // the queue on every step. A non-finite loss stops the run before anything is saved,
        // so the checkpoint on disk never holds the update it produced.
        let value = loss.into_scalar::<f64>();
        if !value.is_finite() {
            progress.finish();
            let checkpoint = if run.checkpoint().exists() { run.checkpoint().display().to_string() } else { "none written yet".into() };
            return Err(TrainError::NonFiniteLoss { step, value, checkpoint });
        }
        state.step += 1;
        state.tokens += tokens_per_step;
        losses.push((step, value));
        let elapsed = started.elapsed().as_secs_f64();
        let tok_s = (state.step - first_step) as f64 * tokens_per_step as f64 / elapsed.max(1e-9);
        metrics.step(step, value, lr, tok_s)?;
        progress.step(step, value, lr, tok_s);

        let last = state.step == tc.steps;
        let stop = !last
            && (options.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) || options.stop_at.is_some_and(|k| state.step >= k));
        if state.step % tc.eval_interval == 0 || last {
            let eval_model = model.valid();
            let dev = device.clone();
            let tr = estimate_loss(&eval_model, &data, config, Split::Train, &dev)?;
            let va = estimate_loss(&eval_model, &data, config, Split::Val, &dev)?;
            metrics.eval(state.step, tr, va)?;
            last_eval = Some((state.step, tr, va));
            progress.println(format!("step {:>5}: train loss {tr:.4}, val loss {va:.4}", state.step));
        }
        let ck_due = tc.checkpoint_interval > 0 && state.step % tc.checkpoint_interval == 0;
        if ck_due || last || stop {
            state.elapsed_s = base_elapsed + started.elapsed().as_secs_f64();
            save(&model, &optim, &state)?;
        }
        if stop {
            interrupted = true;
            progress.println(format!("interrupted: checkpoint saved at step {} in {}", state.step, run.checkpoint().display()));
            break;
        }
    }
    progress.finish();
    let ran = state.step - first_step;
    let secs = started.elapsed().as_secs_f64();
    let (final_train_loss, final_val_loss) = match last_eval {
        Some((s, tr, va)) if s == state.step => (tr, va),
        _ => {
            let eval_model = model.valid();
            (
                estimate_loss(&eval_model, &data, config, Split::Train, device)?,
                estimate_loss(&eval_model, &data, config, Split::Val, device)?,
            )
        }
    };
    Ok(TrainOutcome {
        steps: state.step,
        losses,
        final_train_loss,
        final_val_loss,
        interrupted,
        ms_per_step: if ran > 0 { 1e3 * secs / ran as f64 } else { 0.0 },
        tokens_per_s: ran as f64 * tokens_per_step as f64 / secs.max(1e-9),
    })
}
