//! Shared set-up of the train crate's integration tests: a tiny config over a small corpus.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Burn's CPU RNG is process-global: tests that need seeded, repeatable weights take this
/// lock so parallel test threads do not draw from it in between.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

use ember_train::Config;

/// Every position scheme, as `[position]` TOML (learned with a 16-position table).
pub const SCHEMES: [&str; 10] = [
    "scheme = \"none\"",
    "scheme = \"sinusoidal\"",
    "scheme = \"learned\"\nmax_len = 16",
    "scheme = \"rope\"",
    "scheme = \"rope\"\nlayout = \"interleaved\"",
    "scheme = \"alibi\"",
    "scheme = \"t5\"\nnum_buckets = 8\nmax_distance = 12",
    "scheme = \"kerple\"",
    "scheme = \"fire\"\nhidden = 8\nthreshold = 4",
    "scheme = \"xpos\"\nscale_base = 16.0",
];

#[allow(unused_imports)]
pub use ember_testing::{small_corpus, temp_dir};

/// A tiny model config (d 16, 1 layer, 2 heads, context 8, batch 4) training `steps` steps
/// on `corpus`, writing into `out`.
pub fn tiny_config(corpus: &Path, out: &Path, position: &str, steps: usize) -> Config {
    Config::from_toml(&format!(
        r#"
        [model]
        d_model = 16
        n_layers = 1
        n_heads = 2
        [position]
        {position}
        [data]
        corpus = "{corpus}"
        context = 8
        [train]
        batch_size = 4
        steps = {steps}
        lr = 3e-3
        warmup = {warmup}
        min_lr = 3e-4
        weight_decay = 0.1
        grad_clip = 1.0
        eval_interval = 3
        eval_batches = 2
        checkpoint_interval = 3
        seed = 5
        [run]
        out_dir = "{out}"
        "#,
        corpus = corpus.display(),
        out = out.display(),
        warmup = if steps > 2 { 2 } else { 0 },
    ))
    .unwrap()
}
