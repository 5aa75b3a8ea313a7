//! Interoperability: run directories PyTorch and Hugging Face users can open, and nanoGPT
//! checkpoints ember can read. All tensor I/O goes through burn-store.
//!
//! - [`export`]: `ember export` — a run's weights as safetensors, under ember's or nanoGPT's
//!   names ([`Names`]);
//! - [`import`]: `ember import nanogpt` — a nanoGPT checkpoint into a new run directory;
//! - [`nanogpt`]: opening and checking a nanoGPT checkpoint (`ckpt.pt` or safetensors);
//! - [`names`]: ember paths ↔ nanoGPT keys, nanoGPT's shapes;
//! - [`pickle`]: plain pickles (`model_args`, `meta.pkl`) through burn-store's reader.
//!
//! The tokenizer side (a char-level `tokenizer.json` is a Hugging Face file) lives in
//! [`crate::tokenizer`].

pub mod export;
pub mod import;
pub mod names;
pub mod nanogpt;
pub mod pickle;

pub use export::{export_safetensors, nanogpt_args, ExportSummary, Names};
pub use import::{import_nanogpt, ImportOptions, ImportSummary};
pub use names::NanoGptArgs;
pub use nanogpt::NanoGptCheckpoint;
