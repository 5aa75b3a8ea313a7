//! # ember-position
//!
//! Position schemes for a causal transformer, behind one Burn module with three hook points
//! (see [`PositionEncoding`]):
//!
//! | scheme | hook | saved? | additive signal's amplitude → token-row scale it expects | module |
//! | --- | --- | --- | --- | --- |
//! | `none {}` | — | — | nothing added → any (1) | [`none`] |
//! | `sinusoidal { layout, base }` | added to `x [B, T, d]` | no (computed, cached) | entries in [−1, 1], `‖PE_p‖ = √(d/2)` → rows scaled by `√d` | [`sinusoidal`] |
//! | `learned { max_len, init_std }` | added to `x [B, T, d]` | yes (`[max_len, d]` parameter) | `‖P_p‖ ≈ init_std·√d` at init, trained → unscaled rows (1) | [`learned`] |
//! | `rope { layout, base, partial_rotary_factor, scaling }` | rotates `q, k [B, H, T, dh]` | no | nothing added (norm-preserving rotation) → any (1) | [`rope`], [`rope_scaling`] |
//! | `alibi {}` | bias on scores `[1, H, Tq, Tk]` | no | nothing added to `x` → any (1) | [`alibi`] |
//! | `t5 { num_buckets, max_distance }` | learned bias on scores | yes (`[num_buckets, H]`) | nothing added to `x` → any (1) | [`t5`] |
//! | `kerple {}` | learned bias on scores | yes (`r1, r2 [H]`) | nothing added to `x` → any (1) | [`kerple`] |
//! | `fire { hidden, threshold }` | learned bias on scores | yes (MLP `1 → hidden → H`, `c`) | nothing added to `x` → any (1) | [`fire`] |
//! | `xpos { layout, base, gamma, scale_base }` | rotates and scales `q, k` | no | nothing added → any (1) | [`xpos`] |
//!
//! The token-row scale is the model's input-embedding scale (`ember_train`'s
//! `[model] embed_scale`, whose per-scheme defaults are the right-hand values above).
//!
//! Files: one per scheme (`none.rs`, `sinusoidal.rs`, `learned.rs`, `rope.rs` +
//! `rope_scaling.rs`, `alibi.rs`, `t5.rs`, `kerple.rs`, `fire.rs`, `xpos.rs`); `config.rs` ([`PositionConfig`], the one type TOML and the
//! CLI parse into); `encoding.rs` ([`PositionEncoding`], the three hooks); `cache.rs` (device
//! sin/cos rows); `inspect.rs` ([`inspect()`]: what a scheme computes, as serializable data);
//! `error.rs`.
//!
//! Build with [`PositionConfig::init`]; the pure host functions ([`sinusoidal::sinusoidal_table`],
//! [`rope_scaling::scaled_inv_freq`], [`rope::rotate_vector`], [`rope::decay_curve`],
//! [`alibi::slopes`], [`inspect()`]) return the data `ember position show` prints and
//! `ember position plot` draws (the rendering lives in the root package). Angles are computed
//! in f64 on the host and rounded once to f32.

pub mod alibi;
mod cache;
pub mod config;
pub mod encoding;
pub mod error;
pub mod fire;
pub mod inspect;
pub mod kerple;
pub mod learned;
pub mod none;
pub mod rope;
pub mod rope_scaling;
pub mod sinusoidal;
pub mod t5;
pub mod xpos;

pub use alibi::{slopes as alibi_slopes, Alibi, ALIBI_MASKED};
pub use config::PositionConfig;
pub use encoding::PositionEncoding;
pub use error::PositionError;
pub use fire::Fire;
pub use kerple::Kerple;
pub use inspect::{inspect, Inspection, Probe};
pub use learned::LearnedPositions;
pub use none::NoPosition;
pub use rope::{rotate_vector, Rope, RopeLayout};
pub use rope_scaling::{scaled_inv_freq, RopeFrequencies, RopeScaling};
pub use sinusoidal::{sinusoidal_table, Sinusoidal, SinusoidalLayout};
pub use t5::T5Bias;
pub use xpos::XPos;
