//! `ember bench step`: where the time of one training step goes. (`ember bench head`, the
//! LM head alone, plain or fused: `bench::head`.)
//!
//! Runs the trainer's step (the same calls as [`crate::trainer::train`]: batch, forward +
//! loss (plain or fused head, as `train.fused_head` says), backward, clip + decay + AdamW) on a config's model and data for a few steps and
//! times each phase, with a device sync ([`Device::sync`]) at every phase end — only here,
//! never in the trainer, whose phases overlap on asynchronous backends. One untimed warm-up
//! step comes first (lazy allocations, shader compilation on wgpu). After each timed step one
//! evaluation batch (forward + loss on the plain device, as in `estimate_loss`) is timed
//! separately; it is not part of the step total.
//!
//! ## FLOPs
//!
//! Only matrix multiplications are counted. Per token, forward:
//! `2·N_mm + 4·L·T·d`, where `N_mm = L·(3d² + d² + 2·r·d²) + V·d` are the weights used in
//! matmuls (attention `qkv` and projection, the MLP's two layers, the head; the lookup and
//! the position table are not matmuls) and `4·L·T·d` is `q·kᵀ` and `softmax·v` over the full
//! `T × T` score matrix (the causal half is computed too). Backward ≈ 2 × forward, so a
//! step costs `3 · (2·N_mm + 4·L·T·d) · B·T` — nanoGPT's `6N + 12·L·T·d` per token.
//! Achieved GFLOP/s = that count / the step's wall time.
//!
//! ## CPU utilisation
//!
//! Process CPU time (user + system, `/proc/self/stat` fields 14–15 in clock ticks of 1/100 s,
//! the Linux default) over the wall time of the timed steps: 2.0 = two cores busy all the
//! time. `None` where `/proc` is not available.

mod head;

pub use head::{bench_head, peak_rss_bytes, HeadBench, HeadBenchOptions};

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use ember_embed::loss::cross_entropy;
use serde::Serialize;

use crate::config::Config;
use crate::dataset::{Batches, Dataset, Split, Stream};
use crate::trainer::{apply_update, lr_at, optimizer};
use crate::TrainError;

/// The result of [`bench_step`]: mean milliseconds per phase over the timed steps.
#[derive(Clone, Debug, Serialize)]
pub struct StepBench {
    /// Timed steps (after one warm-up step).
    pub steps: usize,
    /// Batch size `B`.
    pub batch_size: usize,
    /// Context `T`.
    pub context: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Drawing the batch and uploading it.
    pub data_ms: f64,
    /// Forward pass and loss (autodiff device).
    pub forward_ms: f64,
    /// `loss.backward()` and collecting the gradients.
    pub backward_ms: f64,
    /// Global-norm clipping, weight decay and the AdamW step.
    pub optimizer_ms: f64,
    /// Wall time of a whole step (≈ the sum of the four phases above).
    pub step_ms: f64,
    /// One evaluation batch (forward + loss on the plain device); not part of `step_ms`.
    pub eval_batch_ms: f64,
    /// `B·T / step time`.
    pub tokens_per_s: f64,
    /// Matmul FLOPs per training step (see the module docs).
    pub flops_per_step: f64,
    /// `flops_per_step / step time`, in GFLOP/s.
    pub gflop_per_s: f64,
    /// Process CPU time / wall time over the timed steps (2.0 = two cores busy); `None`
    /// without `/proc/self/stat`.
    pub cpu_utilisation: Option<f64>,
}

/// Matmul FLOPs of one training step (forward + backward) of `config`'s model over a vocabulary
/// of `vocab` tokens: `3 · (2·N_mm + 4·L·T·d) · B·T` (see the module docs).
pub fn step_flops(config: &Config, vocab: usize) -> f64 {
    let m = &config.model;
    let (d, l, r) = (m.d_model as f64, m.n_layers as f64, m.mlp_ratio as f64);
    let (b, t) = (config.train.batch_size as f64, config.data.context as f64);
    let n_mm = l * (4.0 * d * d + 2.0 * r * d * d) + vocab as f64 * d;
    3.0 * (2.0 * n_mm + 4.0 * l * t * d) * b * t
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat`.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces): the
    // first is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn sync(device: &Device) -> Result<(), TrainError> {
    device.sync().map_err(|e| TrainError::request("--backend", format!("the device failed: {e}")))
}

/// Time `steps` training steps (after one warm-up step) of `config` on `device` (plain; the
/// autodiff device is derived from it). Loads the config's corpus; writes nothing.
pub fn bench_step(config: &Config, device: &Device, steps: usize) -> Result<StepBench, TrainError> {
    if steps == 0 {
        return Err(TrainError::request("--steps", "must be ≥ 1"));
    }
    let tc = &config.train;
    let data = Dataset::load(&config.data, None)?;
    let vocab = data.tokenizer.vocab_size();
    let ad = device.clone().autodiff();
    ad.seed(tc.seed);
    let mut model = config.tiny_lm(vocab).init(&ad)?;
    let mut optim = optimizer(tc);
    let train_batches = Batches::of(config, Stream::Train);
    let eval_batches = Batches::of(config, Stream::eval(Split::Val));
    let pad = model.tok.padding_idx();
    let head_chunk = tc.head_chunk(vocab);

    let mut sums = [0.0f64; 5]; // data, forward, backward, optimizer, eval (seconds)
    let (mut wall, mut cpu) = (0.0f64, Some(0.0f64));
    for step in 0..=steps {
        let timed = step > 0;
        let cpu0 = process_cpu_seconds();
        let start = Instant::now();
        let mut marks = [0.0f64; 4];
        let (x, y) = data.batch(&train_batches, step as u64, &ad);
        sync(&ad)?;
        marks[0] = start.elapsed().as_secs_f64();
        let loss = model.loss(x, y, head_chunk)?;
        let value = loss.clone().into_scalar::<f64>();
        marks[1] = start.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        sync(&ad)?;
        marks[2] = start.elapsed().as_secs_f64();
        model = apply_update(model, &mut optim, grads, lr_at(step, tc), tc);
        sync(&ad)?;
        marks[3] = start.elapsed().as_secs_f64();
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss { step, value, checkpoint: "none (bench)".into() });
        }
        if timed {
            wall += marks[3];
            cpu = match (cpu, cpu0, process_cpu_seconds()) {
                (Some(c), Some(a), Some(b)) => Some(c + b - a),
                _ => None,
            };
            let mut prev = 0.0;
            for (sum, mark) in sums.iter_mut().zip(marks) {
                *sum += mark - prev;
                prev = mark;
            }
            let eval_model = model.valid();
            let start = Instant::now();
            let (x, y) = data.batch(&eval_batches, step as u64, device);
            cross_entropy(eval_model.forward(x, 0)?, y, pad).into_scalar::<f64>();
            sums[4] += start.elapsed().as_secs_f64();
        }
    }
    let n = steps as f64;
    let ms = |s: f64| 1e3 * s / n;
    let step_s = wall / n;
    let flops = step_flops(config, vocab);
    let tokens = (tc.batch_size * config.data.context) as f64;
    Ok(StepBench {
        steps,
        batch_size: tc.batch_size,
        context: config.data.context,
        params: model.num_params(),
        data_ms: ms(sums[0]),
        forward_ms: ms(sums[1]),
        backward_ms: ms(sums[2]),
        optimizer_ms: ms(sums[3]),
        step_ms: 1e3 * step_s,
        eval_batch_ms: ms(sums[4]),
        tokens_per_s: tokens / step_s.max(1e-12),
        flops_per_step: flops,
        gflop_per_s: flops / step_s.max(1e-12) / 1e9,
        cpu_utilisation: cpu.map(|c| c / wall.max(1e-12)),
    })
}
