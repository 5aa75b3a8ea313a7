//! # ember-train
//!
//! A tiny GPT-style language model trained from a TOML config, and the proof that its
//! gradients are right.
//!
//! - [`config`]: the TOML schema (unknown keys rejected, errors name the field);
//! - [`data`]: corpus → tokenizer → train/val ids → random windows;
//! - [`model`]: [`TinyLm`], readable top to bottom;
//! - [`trainer`]: AdamW, warm-up + cosine, clipping, eval, checkpoints, resume;
//! - [`gradcheck`]: analytic softmax-CE gradients and finite differences vs autodiff;
//! - [`eval`], [`sample`]: perplexity (sliding window) and generation from a run directory.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod gradcheck;
pub mod metrics;
pub mod model;
pub mod run;
pub mod sample;
pub mod trainer;

pub use config::Config;
pub use error::TrainError;
pub use model::TinyLm;
