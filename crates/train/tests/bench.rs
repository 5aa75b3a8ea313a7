//! `ember bench step`'s library part on a tiny config.

mod common;

use burn::tensor::Device;
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_train::bench::{bench_step, step_flops};

#[test]
fn bench_step_returns_finite_positive_phases_that_sum_to_the_step() {
    let _lock = rng_lock();
    let dir = temp_dir("bench-step");
    let corpus = small_corpus(&dir, 10_000);
    let config = tiny_config(&corpus, &dir.join("run"), "scheme = \"rope\"", 2);
    let b = bench_step(&config, &Device::flex(), 2).unwrap();
    assert_eq!(b.steps, 2);
    let phases = [b.data_ms, b.forward_ms, b.backward_ms, b.optimizer_ms];
    for x in phases.iter().chain(&[b.step_ms, b.eval_batch_ms, b.tokens_per_s, b.flops_per_step, b.gflop_per_s]) {
        assert!(x.is_finite() && *x > 0.0, "{b:?}");
    }
    let sum: f64 = phases.iter().sum();
    assert!((sum - b.step_ms).abs() <= 0.05 * b.step_ms, "phases {sum} ms vs step {} ms", b.step_ms);
    if let Some(c) = b.cpu_utilisation {
        assert!(c.is_finite() && c >= 0.0, "{b:?}");
    }
    assert!(!dir.join("run").exists(), "the bench writes no run directory");
    // d 16, 1 layer, r 4, V vocab, B 4, T 8: 3·(2·(16·16·(4 + 8) + V·16) + 4·8·16)·32
    let v = (b.flops_per_step / 96.0 - 512.0) / 2.0 - 3072.0;
    assert_eq!(v % 16.0, 0.0, "{}", b.flops_per_step);
    assert_eq!(step_flops(&config, (v / 16.0) as usize), b.flops_per_step);
    std::fs::remove_dir_all(&dir).unwrap();
}
