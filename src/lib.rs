//! # ember
//!
//! Facade over the ember crates: a trainable transformer front-end on Burn.
//!
//! - [`device`] (`ember-device`): backend names → `burn::tensor::Device`;
//! - [`embed`] (`ember-embed`): token table, padding row, tied head, vocab resize, geometry;
//! - [`position`] (`ember-position`): none, sinusoidal, learned, RoPE, ALiBi;
//! - [`train`] (`ember-train`): configs, the tiny LM, training, gradient checks;
//! - [`viz`] (`src/viz/`): every plot and terminal table the `ember` command draws or prints.
//!
//! The command line itself is `src/main.rs` + `src/cli/` (one file per command group).

pub use ember_device as device;
pub use ember_embed as embed;
pub use ember_kernels as kernels;
pub use ember_position as position;
pub use ember_train as train;

pub mod viz;
