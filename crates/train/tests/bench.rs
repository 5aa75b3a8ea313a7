//! `ember bench step`'s library part on a tiny config: every reported number is checked
//! against what it is documented to be (the FLOP formula written out here, tokens and
//! GFLOP/s from the step time, the model's parameter count), and against the same config
//! with twice the batch.

mod common;

use burn::module::Module;
use burn::tensor::Device;
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_train::bench::{bench_step, StepBench};
use ember_train::dataset::Dataset;

/// `a` = `b` up to rounding (relative 1e-9).
fn assert_rel(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9 * b.abs(), "{what}: {a} vs {b}");
}

/// The module docs' count for `tiny_config` (d 16, 1 layer, MLP ratio 4, B 4, T 8) over
/// `vocab` tokens with batch `batch`: `3 · (2·N_mm + 4·L·T·d) · B·T`, with
/// `N_mm = L·(4d² + 2·r·d²) + V·d`.
fn documented_flops(vocab: usize, batch: usize) -> f64 {
    let (d, l, r, t) = (16.0, 1.0, 4.0, 8.0);
    let n_mm = l * (4.0 * d * d + 2.0 * r * d * d) + vocab as f64 * d;
    3.0 * (2.0 * n_mm + 4.0 * l * t * d) * batch as f64 * t
}

/// The checks that hold for any one bench of a `batch × 8` config over `vocab` tokens.
fn check_one(b: &StepBench, vocab: usize, batch: usize, params: usize) {
    assert_eq!((b.steps, b.batch_size, b.context, b.params), (2, batch, 8, params), "{b:?}");
    for (name, ms) in [("data", b.data_ms), ("forward", b.forward_ms), ("backward", b.backward_ms), ("optimizer", b.optimizer_ms), ("step", b.step_ms), ("eval batch", b.eval_batch_ms)] {
        assert!(ms.is_finite() && ms > 0.0, "{name}: {ms} ms ({b:?})");
    }
    // Each phase is timed inside the step, so none can exceed it.
    for ms in [b.data_ms, b.forward_ms, b.backward_ms, b.optimizer_ms] {
        assert!(ms <= b.step_ms, "{b:?}");
    }
    let step_s = b.step_ms / 1e3;
    assert_rel(b.tokens_per_s, (batch * 8) as f64 / step_s, "tokens/s = B·T / step time");
    assert_eq!(b.flops_per_step, documented_flops(vocab, batch), "FLOPs per step, vocab {vocab}");
    assert_rel(b.gflop_per_s, b.flops_per_step / step_s / 1e9, "GFLOP/s = FLOPs / step time");
    if let Some(c) = b.cpu_utilisation {
        assert!(c.is_finite() && c >= 0.0, "{b:?}");
    }
}

#[test]
fn bench_step_reports_the_documented_counts_and_scales_with_the_batch() {
    let _lock = rng_lock();
    let dir = temp_dir("bench-step");
    let corpus = small_corpus(&dir, 10_000);
    let config = tiny_config(&corpus, &dir.join("run"), "scheme = \"rope\"", 2);
    let vocab = Dataset::load(&config.data, None).unwrap().tokenizer.vocab_size();
    assert!(vocab > 20, "the corpus has a real alphabet: {vocab}");
    let params = config.tiny_lm(vocab).init(&Device::flex()).unwrap().num_params();

    let one = bench_step(&config, &Device::flex(), 2).unwrap();
    check_one(&one, vocab, 4, params);
    let mut doubled = config.clone();
    doubled.train.batch_size = 8;
    let two = bench_step(&doubled, &Device::flex(), 2).unwrap();
    check_one(&two, vocab, 8, params);

    // Twice the batch: twice the tokens and the FLOPs of a step, the same model.
    let tokens_per_step = |b: &StepBench| b.tokens_per_s * b.step_ms / 1e3;
    assert_rel(tokens_per_step(&one), 32.0, "tokens per step, B = 4");
    assert_rel(tokens_per_step(&two), 2.0 * tokens_per_step(&one), "tokens per step, B = 8");
    assert_eq!(two.flops_per_step, 2.0 * one.flops_per_step);
    assert!(!dir.join("run").exists(), "the bench writes no run directory");
    std::fs::remove_dir_all(&dir).unwrap();
}
