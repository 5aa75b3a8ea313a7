//! `ember bench head`: time and peak memory of the LM head's forward + backward, plain
//! (logits `[N, V]`, then cross-entropy, all kept by autodiff) or fused
//! ([`ember_embed::fused`], `chunk` rows at a time).
//!
//! The problem: hidden states `h [N, d]` (`N(0, 1/d)`) and head rows `W [V, d]` (`N(0, 1)`),
//! leaves that require gradients, targets uniform in `[0, V)` (seed 0). One call is the loss
//! and `backward()`, then a device sync. One untimed warm-up call, then `repeats` timed ones;
//! `ms` is their mean.
//!
//! Peak memory: where the device reports its memory pools (wgpu, cuda), the bytes they hold
//! reserved after the calls (pools keep their pages, so this is the high-water mark of the
//! pools); on the host backends (flex, ndarray), the process's peak resident set
//! (`VmHWM` in `/proc/self/status`, which includes the program itself). Run each
//! configuration in a process of its own so the peak is its own. `None` when neither exists.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use ember_embed::fused::fused_linear_cross_entropy;
use ember_embed::loss::cross_entropy;
use serde::Serialize;

use crate::TrainError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct HeadBenchOptions {
    /// Vocabulary `V` (≥ 1).
    pub vocab: usize,
    /// Positions `N` (≥ 1).
    pub tokens: usize,
    /// Width `d` (≥ 1).
    pub dim: usize,
    /// Fused with this many rows per chunk (≥ 1), or plain (`None`).
    pub fused_chunk: Option<usize>,
    /// Timed calls after the warm-up (≥ 1).
    pub repeats: usize,
}

/// The result (`--json` prints exactly these fields).
#[derive(Clone, Debug, Serialize)]
pub struct HeadBench {
    /// `V`.
    pub vocab: usize,
    /// `N`.
    pub tokens: usize,
    /// `d`.
    pub dim: usize,
    /// Fused (`true`) or plain.
    pub fused: bool,
    /// Rows per chunk of the fused head; `null` for the plain one.
    pub chunk: Option<usize>,
    /// Mean milliseconds per forward + backward.
    pub ms: f64,
    /// Peak memory in bytes (see the module docs); `null` when not available.
    pub peak_bytes: Option<u64>,
    /// Where `peak_bytes` comes from (`process peak RSS`, `device memory pools`, `n/a`).
    #[serde(skip)]
    pub peak_source: &'static str,
}

/// The process's peak resident set in bytes (`VmHWM`), `None` without `/proc`.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Run the benchmark on `device` (plain; the autodiff device is derived from it).
pub fn bench_head(o: &HeadBenchOptions, device: &Device) -> Result<HeadBench, TrainError> {
    for (option, value) in [("--vocab", o.vocab), ("--tokens", o.tokens), ("--dim", o.dim), ("--repeat", o.repeats)] {
        if value == 0 {
            return Err(TrainError::request(option, "must be ≥ 1"));
        }
    }
    if o.fused_chunk == Some(0) {
        return Err(TrainError::request("--chunk", "must be ≥ 1"));
    }
    let ad = device.clone().autodiff();
    ad.seed(0);
    let h = Tensor::<2>::random([o.tokens, o.dim], Distribution::Normal(0.0, 1.0 / (o.dim as f64).sqrt()), &ad).require_grad();
    let w = Tensor::<2>::random([o.vocab, o.dim], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let targets = Tensor::<1>::random([o.tokens], Distribution::Uniform(0.0, o.vocab as f64), &ad).int().clamp(0, o.vocab as i64 - 1);
    let call = || -> Result<(), TrainError> {
        let loss = match o.fused_chunk {
            Some(chunk) => fused_linear_cross_entropy(h.clone(), w.clone(), targets.clone(), None, chunk)?,
            None => {
                let logits = h.clone().matmul(w.clone().transpose()).reshape([1, o.tokens, o.vocab]);
                cross_entropy(logits, targets.clone().reshape([1, o.tokens]), None)
            }
        };
        let grads = loss.backward();
        let (gh, gw) = (h.grad(&grads), w.grad(&grads));
        assert!(gh.is_some() && gw.is_some(), "h and w are leaves that require gradients");
        super::sync(&ad)
    };
    call()?;
    let start = Instant::now();
    for _ in 0..o.repeats {
        call()?;
    }
    let ms = 1e3 * start.elapsed().as_secs_f64() / o.repeats as f64;
    let (peak_bytes, peak_source) = match device.memory_pool_usage() {
        Some(usage) => (Some(usage.bytes_reserved), "device memory pools"),
        None => match peak_rss_bytes() {
            Some(b) => (Some(b), "process peak RSS"),
            None => (None, "n/a"),
        },
    };
    Ok(HeadBench { vocab: o.vocab, tokens: o.tokens, dim: o.dim, fused: o.fused_chunk.is_some(), chunk: o.fused_chunk, ms, peak_bytes, peak_source })
}
