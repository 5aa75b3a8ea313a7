//! The training loop: AdamW, warm-up + cosine schedule, global-norm clipping, periodic
//! evaluation, metrics, atomic checkpoints, resume, NaN guard, Ctrl-C.
//!
//! Determinism: the weights come from `device.seed(train.seed)`, batch `k` from the
//! stateless sampler keyed by `(seed, k)` (see [`crate::data`]), and the device is reseeded
//! with `seed + step` before each step (dropout masks), so on a CPU backend a run resumed
//! from step `k` produces bit-identical losses to an uninterrupted one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use ember_embed::loss::cross_entropy;
use serde::Serialize;

use crate::checkpoint::{Checkpoint, RunDir, TrainState};
use crate::config::{Config, TrainConfig};
use crate::data::{Dataset, Split};
use crate::metrics::MetricsLog;
use crate::model::TinyLm;
use crate::TrainError;

/// Learning rate at `step` (0-based): linear warm-up `lr·(step+1)/(warmup+1)`, then cosine
/// from `lr` to `min_lr` at `steps` (nanoGPT's `get_lr`).
pub fn lr_at(step: usize, t: &TrainConfig) -> f64 {
    if step < t.warmup {
        return t.lr * (step + 1) as f64 / (t.warmup + 1) as f64;
    }
    if step >= t.steps {
        return t.min_lr;
    }
    let ratio = (step - t.warmup) as f64 / (t.steps - t.warmup) as f64;
    t.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()) * (t.lr - t.min_lr)
}

/// Scale all gradients by `min(1, max_norm / ‖g‖)`, `‖g‖` the global L2 norm over every
/// parameter (as `torch.nn.utils.clip_grad_norm_`). Runs on the device, no sync.
pub fn clip_global_norm<M: Module>(grads: GradientsParams, model: &M, max_norm: f64) -> GradientsParams {
    struct SumSq<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSq<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
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
    let mut sum = SumSq { grads: &grads, total: None };
    model.visit(&mut sum);
    let Some(total) = sum.total else { return grads };
    // factor = max_norm / max(norm, max_norm) = min(1, max_norm / norm)
    let factor = total.sqrt().clamp_min(max_norm).recip().mul_scalar(max_norm);
    let mut scale = Scale { grads, factor };
    model.visit(&mut scale);
    scale.grads
}

/// AdamW (β from the config, ε = 1e-8) without built-in decay: decay is applied by
/// [`decay_matrices`] so that, as in nanoGPT, only parameters with 2+ dimensions (matrices,
/// tables) decay and the 1-D ones (norm gains, biases) do not.
pub fn optimizer(t: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(t.betas[0] as f32)
        .with_beta_2(t.betas[1] as f32)
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init()
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
    /// Final evaluation: mean train and val loss.
    pub final_train_loss: f64,
    /// Final evaluation: mean val loss.
    pub final_val_loss: f64,
    /// Whether the run stopped early on Ctrl-C.
    pub interrupted: bool,
    /// Mean milliseconds per step in this call.
    pub ms_per_step: f64,
    /// Tokens per second in this call.
    pub tokens_per_s: f64,
}

/// Mean loss over `batches` fixed batches of `split` (the same batches at every eval).
pub fn evaluate(model: &TinyLm, data: &Dataset, config: &Config, split: Split, batches: usize, device: &Device) -> Result<f64, TrainError> {
    let (t, stream) = (&config.train, if split == Split::Train { 1 } else { 2 });
    let mut sum = 0.0;
    for i in 0..batches {
        let (x, y) = data.batch(split, t.batch_size, config.data.context, t.seed, stream, i as u64, device);
        let logits = model.forward(x, 0)?;
        sum += cross_entropy(logits, y, model.tok.padding_idx()).into_scalar::<f64>();
    }
    Ok(sum / batches as f64)
}

/// Train `config` on `device` into `config.run.out_dir`. See the module docs.
pub fn train(config: &Config, device: &Device, options: &TrainOptions) -> Result<TrainOutcome, TrainError> {
    let run = RunDir(config.run.out_dir.clone());
    std::fs::create_dir_all(&run.0).map_err(|e| TrainError::write(&run.0, e))?;
    let t = &config.train;
    let ad = device.clone().autodiff();

    // Data, tokenizer, model, optimizer — fresh or from the checkpoint.
    let resume = options.resume && run.checkpoint().exists();
    if options.resume && !resume {
        return Err(TrainError::Checkpoint(format!("--resume: no checkpoint at {}; train without --resume first", run.checkpoint().display())));
    }
    let tokenizer = if resume { Some(crate::data::Tokenizer::load(&run.tokenizer())?) } else { None };
    let data = Dataset::load(&config.data, tokenizer)?;
    ad.seed(t.seed);
    let mut model = TinyLm::new(config, data.tokenizer.vocab_size(), &ad)?;
    let mut optim = optimizer(t);
    let mut state = TrainState { step: 0, elapsed_s: 0.0, tokens: 0 };
    if resume {
        let ck = Checkpoint::load(&run.checkpoint())?;
        model = crate::checkpoint::load_model(model, ck.model, &run.checkpoint())?;
        optim = crate::checkpoint::load_optim(optim, ck.optim, &run.checkpoint())?;
        state = ck.state;
    } else {
        std::fs::write(run.config(), config.to_toml()).map_err(|e| TrainError::write(run.config(), e))?;
        data.tokenizer.save(&run.tokenizer())?;
    }
    let mut metrics = MetricsLog::open(&run.metrics(), resume)?;
    let save = |model: &TinyLm, optim: &burn::optim::ModuleOptimizer, state: &TrainState| -> Result<(), TrainError> {
        let (m, o) = crate::checkpoint::to_bytes(model, optim)?;
        Checkpoint { state: state.clone(), model: m, optim: o }.save(&run.checkpoint())
    };

    let progress = crate::metrics::progress_bar(t.steps, state.step, options.quiet);
    let tokens_per_step = (t.batch_size * config.data.context) as u64;
    let started = Instant::now();
    let first_step = state.step;
    let base_elapsed = state.elapsed_s;
    let mut last_eval = None;
    let mut losses = Vec::new();
    let mut interrupted = false;
    while state.step < t.steps {
        let step = state.step;
        let lr = lr_at(step, t);
        ad.seed(t.seed.wrapping_add(1 + step as u64));
        let (x, y) = data.batch(Split::Train, t.batch_size, config.data.context, t.seed, 0, step as u64, &ad);
        let loss = cross_entropy(model.forward(x, 0)?, y, model.tok.padding_idx());
        let value = loss.clone().into_scalar::<f64>();
        if !value.is_finite() {
            progress.abandon();
            let checkpoint = if run.checkpoint().exists() { run.checkpoint().display().to_string() } else { "none written yet".into() };
            return Err(TrainError::NonFiniteLoss { step, value, checkpoint });
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        if t.grad_clip > 0.0 {
            grads = clip_global_norm(grads, &model, t.grad_clip);
        }
        if t.weight_decay > 0.0 {
            model = decay_matrices(model, 1.0 - lr * t.weight_decay);
        }
        model = optim.step(lr, model, grads);
        state.step += 1;
        state.tokens += tokens_per_step;
        losses.push((step, value));
        let elapsed = started.elapsed().as_secs_f64();
        let tok_s = (state.step - first_step) as f64 * tokens_per_step as f64 / elapsed.max(1e-9);
        metrics.step(step, value, lr, tok_s)?;
        progress.set_position(state.step as u64);
        progress.set_message(format!("loss {value:.4}  lr {lr:.2e}  {tok_s:.0} tok/s"));

        let last = state.step == t.steps;
        let stop = !last
            && (options.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) || options.stop_at.is_some_and(|k| state.step >= k));
        if state.step % t.eval_interval == 0 || last {
            let eval_model = model.valid();
            let dev = device.clone();
            let tr = evaluate(&eval_model, &data, config, Split::Train, t.eval_batches, &dev)?;
            let va = evaluate(&eval_model, &data, config, Split::Val, t.eval_batches, &dev)?;
            metrics.eval(state.step, tr, va)?;
            last_eval = Some((state.step, tr, va));
            progress.println(format!("step {:>5}: train loss {tr:.4}, val loss {va:.4}", state.step));
        }
        let ck_due = t.checkpoint_interval > 0 && state.step % t.checkpoint_interval == 0;
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
    progress.finish_and_clear();
    let ran = state.step - first_step;
    let secs = started.elapsed().as_secs_f64();
    let (final_train_loss, final_val_loss) = match last_eval {
        Some((s, tr, va)) if s == state.step => (tr, va),
        _ => {
            let eval_model = model.valid();
            (
                evaluate(&eval_model, &data, config, Split::Train, t.eval_batches, device)?,
                evaluate(&eval_model, &data, config, Split::Val, t.eval_batches, device)?,
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
