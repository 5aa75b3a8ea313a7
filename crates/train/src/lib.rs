//! # ember-train
//!
//! A tiny GPT-style language model trained from a TOML config, and the proof that its
//! gradients are right. One concept per file:
//!
//! - [`config`]: the TOML schema of a run (unknown keys rejected, errors name the field);
//! - [`model`]: [`TinyLm`] and its own [`model::TinyLmConfig`] (no training
//!   settings), with `attention`, `mlp`, `block`, `norm` beside it;
//! - [`tokenizer`]: text ↔ ids (characters, offline BPE, a user's `tokenizer.json`);
//! - [`dataset`]: corpus → train/val ids → batches of random windows ([`dataset::Batches`]);
//! - [`trainer`]: AdamW, warm-up + cosine, clipping, evaluation, NaN guard, Ctrl-C;
//! - [`run`]: the run directory — layout, create, load, list — and its checkpoint;
//! - [`fs`]: [`fs::write_atomic`], the one way files are written (temp file + rename);
//! - [`metrics`]: `metrics.jsonl` and the progress display;
//! - [`diagnostics`]: attention distance and entropy per layer and head (why a scheme extrapolates);
//! - [`embedding`]: token counts, contextual hidden states, quantized tables on a run;
//! - [`eval`]: loss and perplexity over a whole split (non-overlapping or sliding windows);
//! - [`sample`]: text generation (temperature, top-k, greedy; KV cache);
//! - [`bench`](mod@bench): the phases of a training step timed (`ember bench step`);
//! - [`tasks`]: synthetic copy / reverse / addition: generation, answer-only batches, scoring
//!   (teacher-forced and greedy exact match);
//! - [`rng`]: the counter-based generator behind every seeded data draw;
//! - [`gradcheck`]: analytic softmax-CE gradients and finite differences vs autodiff;
//! - [`interop`]: safetensors export (ember or nanoGPT names), nanoGPT checkpoint import;
//! - [`ablate`]: `ember ablate` — position-scheme ablations (grid, resume, shards, results);
//! - [`error`]: [`TrainError`], one variant per failure kind.

pub mod bench;
pub mod ablate;
pub mod config;
pub mod dataset;
pub mod diagnostics;
pub mod embedding;
pub mod error;
pub mod eval;
pub mod fs;
pub mod gradcheck;
pub mod interop;
pub mod metrics;
pub mod model;
pub mod run;
pub mod rng;
pub mod sample;
pub mod tasks;
pub mod tokenizer;
pub mod trainer;

pub use config::Config;
pub use error::TrainError;
pub use model::{TinyLm, TinyLmConfig};
