//! # ember-position
//!
//! Position schemes for a causal transformer, behind one Burn module with three hook points
//! (see [`PositionEncoding`]):
//!
//! | scheme | hook | saved? | module |
//! | --- | --- | --- | --- |
//! | `none` | — | — | [`none`] |
//! | `sinusoidal { layout, base }` | added to `x [B, T, d]` | no (computed, cached) | [`sinusoidal`] |
//! | `learned { max_len, init_std }` | added to `x [B, T, d]` | yes (`[max_len, d]` parameter) | [`learned`] |
//! | `rope { layout, base, partial_rotary_factor, scaling }` | rotates `q, k [B, H, T, dh]` | no | [`rope`], [`rope_scaling`] |
//! | `alibi` | bias on scores `[1, H, Tq, Tk]` | no | [`alibi`] |
//!
//! Build with [`PositionConfig::init`]; the pure host functions ([`sinusoidal::sinusoidal_table`],
//! [`rope_scaling::scaled_inv_freq`], [`rope::rotate_vector`], [`alibi::slopes`]) are what
//! `ember position show` prints ([`show`]) and plots ([`plot`]). Angles are computed in f64 on
//! the host and rounded once to f32.

pub mod alibi;
mod cache;
pub mod config;
pub mod encoding;
pub mod error;
pub mod learned;
pub mod none;
pub mod options;
pub mod plot;
pub mod rope;
pub mod rope_scaling;
pub mod show;
pub mod sinusoidal;

pub use alibi::{slopes as alibi_slopes, Alibi, ALIBI_MASKED};
pub use config::PositionConfig;
pub use encoding::PositionEncoding;
pub use error::PositionError;
pub use learned::LearnedPositions;
pub use none::NoPosition;
pub use options::SchemeOptions;
pub use rope::{rotate_vector, Rope, RopeLayout};
pub use rope_scaling::{scaled_inv_freq, RopeFrequencies, RopeScaling};
pub use show::{show, ShowOutput};
pub use sinusoidal::{sinusoidal_table, Sinusoidal, SinusoidalLayout};
