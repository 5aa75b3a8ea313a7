//! RoPE frequency scaling, exactly as Hugging Face's `modeling_rope_utils.py` defines it.
//!
//! Every method maps the rotated dimension `r = ⌊partial_rotary_factor · head_dim⌋` and the
//! base `b` to new inverse frequencies (`r / 2` of them) and an *attention factor* `a` that
//! multiplies both `cos` and `sin` (so queries and keys are scaled by `a`, scores by `a²`).
//! Unscaled: `inv_freq[i] = 1 / b^(2i/r)`, `i = 0 … r/2 − 1`, `a = 1`.
//!
//! | method | inverse frequencies | attention factor |
//! | --- | --- | --- |
//! | `none` | `1 / b^(2i/r)` | 1 |
//! | `linear { factor s }` | `inv_freq / s` (position interpolation) | 1 |
//! | `dynamic { factor s, max_position L }` | with `n = max(seq_len, L)`: base `b' = b · (s·n/L − (s − 1))^(r/(r−2))` | 1 |
//! | `yarn { factor s, original_max_position L, beta_fast β_f, beta_slow β_s }` | blend, below | `attention_factor` or `0.1·ln s + 1` (1 when `s ≤ 1`) |
//! | `llama3 { factor s, low_freq_factor l, high_freq_factor h, original_max_position L }` | by wavelength, below | 1 |
//!
//! YaRN: `corr(ρ) = r · ln(L / (2π ρ)) / (2 ln b)`, `low = max(⌊corr(β_f)⌋, 0)`,
//! `high = min(⌈corr(β_s)⌉, r − 1)` (`high += 0.001` when equal), ramp
//! `γ_i = clamp((i − low)/(high − low), 0, 1)`; `inv_freq_i = γ_i · θ_i / s + (1 − γ_i) · θ_i`.
//! HF also lets `max_position_embeddings / original_max_position_embeddings` override `s`;
//! here `factor` is always the one used (set it to that ratio yourself).
//!
//! llama3: wavelength `λ_i = 2π / θ_i`; keep `θ_i` when `λ_i < L/h`, use `θ_i / s` when
//! `λ_i > L/l`, otherwise `(1 − σ) θ_i / s + σ θ_i` with `σ = (L/λ_i − l) / (h − l)`.
//!
//! Everything is computed in f64 on the host.

use serde::{Deserialize, Serialize};

use crate::PositionError;

fn default_beta_fast() -> f64 {
    32.0
}
fn default_beta_slow() -> f64 {
    1.0
}
fn default_low_freq_factor() -> f64 {
    1.0
}
fn default_high_freq_factor() -> f64 {
    4.0
}

/// A RoPE scaling method (`[position.scaling]` in TOML, tagged by `type`, unknown keys
/// rejected; `none {}` is an empty struct variant so extra keys fail there too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RopeScaling {
    /// Plain RoPE (the default).
    None {},
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear {
        /// Interpolation factor `s > 0`.
        factor: f64,
    },
    /// Dynamic NTK: the base grows once the sequence passes `max_position`.
    Dynamic {
        /// Scaling factor `s > 0`.
        factor: f64,
        /// The trained context length `L` (HF `max_position_embeddings`).
        max_position: usize,
    },
    /// YaRN (NTK-by-parts with attention temperature).
    Yarn {
        /// Context extension factor `s > 0`.
        factor: f64,
        /// The pre-trained context length `L`.
        original_max_position: usize,
        /// Rotations at which extrapolation stops (default 32).
        #[serde(default = "default_beta_fast")]
        beta_fast: f64,
        /// Rotations at which interpolation starts (default 1).
        #[serde(default = "default_beta_slow")]
        beta_slow: f64,
        /// Overrides the default attention factor `0.1·ln(s) + 1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attention_factor: Option<f64>,
    },
    /// Llama 3.1's wavelength-dependent scaling.
    Llama3 {
        /// Scaling factor `s > 0` for low frequencies.
        factor: f64,
        /// `l`: wavelengths longer than `L/l` are divided by `factor` (default 1, Llama 3.1's).
        #[serde(default = "default_low_freq_factor")]
        low_freq_factor: f64,
        /// `h`: wavelengths shorter than `L/h` are kept (`h > l`; default 4, Llama 3.1's).
        #[serde(default = "default_high_freq_factor")]
        high_freq_factor: f64,
        /// The pre-trained context length `L`.
        original_max_position: usize,
    },
}

impl Default for RopeScaling {
    fn default() -> Self {
        RopeScaling::None {}
    }
}

/// Inverse frequencies (`r/2` values, radians per position) and the cos/sin attention factor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RopeFrequencies {
    /// `inv_freq[i]`: angle per position of feature pair `i`.
    pub inv_freq: Vec<f64>,
    /// Multiplies cos and sin (1 unless YaRN).
    pub attention_factor: f64,
}

fn positive(field: &'static str, value: f64) -> Result<(), PositionError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(PositionError::InvalidValue { field, value, expected: "must be a finite number > 0" })
    }
}

fn positive_len(field: &'static str, value: usize) -> Result<(), PositionError> {
    if value > 0 {
        Ok(())
    } else {
        Err(PositionError::InvalidValue { field, value: 0.0, expected: "must be at least 1 (a context length in tokens)" })
    }
}

impl RopeScaling {
    /// Checks the numbers for a rotated dimension `rot_dim` (already known even and ≥ 2).
    pub fn validate(&self, rot_dim: usize) -> Result<(), PositionError> {
        match *self {
            RopeScaling::None {} => Ok(()),
            RopeScaling::Linear { factor } => positive("rope.scaling.factor", factor),
            RopeScaling::Dynamic { factor, max_position } => {
                positive("rope.scaling.factor", factor)?;
                positive_len("rope.scaling.max_position", max_position)?;
                if rot_dim <= 2 {
                    return Err(PositionError::InvalidValue {
                        field: "rope rotated dimension (dynamic scaling)",
                        value: rot_dim as f64,
                        expected: "dynamic NTK raises the base to the power r/(r−2), so the rotated dimension must be at least 4",
                    });
                }
                Ok(())
            }
            RopeScaling::Yarn { factor, original_max_position, beta_fast, beta_slow, attention_factor } => {
                positive("rope.scaling.factor", factor)?;
                positive_len("rope.scaling.original_max_position", original_max_position)?;
                positive("rope.scaling.beta_fast", beta_fast)?;
                positive("rope.scaling.beta_slow", beta_slow)?;
                if let Some(a) = attention_factor {
                    positive("rope.scaling.attention_factor", a)?;
                }
                Ok(())
            }
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
                positive("rope.scaling.factor", factor)?;
                positive("rope.scaling.low_freq_factor", low_freq_factor)?;
                positive("rope.scaling.high_freq_factor", high_freq_factor)?;
                positive_len("rope.scaling.original_max_position", original_max_position)?;
                if high_freq_factor <= low_freq_factor {
                    return Err(PositionError::InvalidValue {
                        field: "rope.scaling.high_freq_factor",
                        value: high_freq_factor,
                        expected: "must be greater than low_freq_factor (Llama 3.1 uses low 1, high 4)",
                    });
                }
                Ok(())
            }
        }
    }

    /// Whether the frequencies depend on the sequence length at `seq_len` (dynamic NTK past
    /// `max_position`). Used as a cache key: `None` means "the static frequencies".
    pub fn seq_len_key(&self, seq_len: usize) -> Option<usize> {
        match *self {
            RopeScaling::Dynamic { max_position, .. } if seq_len > max_position => Some(seq_len),
            _ => None,
        }
    }
}

/// Unscaled RoPE inverse frequencies `1 / base^(2i/rot_dim)`, `i = 0 … rot_dim/2 − 1`.
pub fn default_inv_freq(base: f64, rot_dim: usize) -> Vec<f64> {
    (0..rot_dim / 2).map(|i| base.powf(-((2 * i) as f64) / rot_dim as f64)).collect()
}

/// Inverse frequencies and attention factor of `scaling` for a rotated dimension `rot_dim`
/// (even, ≥ 2; ≥ 4 for dynamic) and base `base`, for a sequence of `seq_len` positions (only
/// dynamic NTK looks at it; `None` = no longer than `max_position`). Inputs are assumed
/// validated ([`RopeScaling::validate`]).
pub fn scaled_inv_freq(base: f64, rot_dim: usize, scaling: &RopeScaling, seq_len: Option<usize>) -> RopeFrequencies {
    let r = rot_dim as f64;
    let plain = default_inv_freq(base, rot_dim);
    match *scaling {
        RopeScaling::None {} => RopeFrequencies { inv_freq: plain, attention_factor: 1.0 },
        RopeScaling::Linear { factor } => {
            RopeFrequencies { inv_freq: plain.iter().map(|f| f / factor).collect(), attention_factor: 1.0 }
        }
        RopeScaling::Dynamic { factor, max_position } => {
            let l = max_position as f64;
            let n = seq_len.map_or(l, |s| (s as f64).max(l));
            let new_base = base * (factor * n / l - (factor - 1.0)).powf(r / (r - 2.0));
            RopeFrequencies { inv_freq: default_inv_freq(new_base, rot_dim), attention_factor: 1.0 }
        }
        RopeScaling::Yarn { factor, original_max_position, beta_fast, beta_slow, attention_factor } => {
            let l = original_max_position as f64;
            let corr = |rot: f64| r * (l / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln());
            let low = corr(beta_fast).floor().max(0.0);
            let mut high = corr(beta_slow).ceil().min(r - 1.0);
            if low == high {
                high += 0.001;
            }
            let inv_freq = plain
                .iter()
                .enumerate()
                .map(|(i, &theta)| {
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                    // ramp = 1 − (HF's inv_freq_extrapolation_factor)
                    theta / factor * ramp + theta * (1.0 - ramp)
                })
                .collect();
            let attention_factor =
                attention_factor.unwrap_or(if factor <= 1.0 { 1.0 } else { 0.1 * factor.ln() + 1.0 });
            RopeFrequencies { inv_freq, attention_factor }
        }
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
            let l = original_max_position as f64;
            let low_wavelen = l / low_freq_factor;
            let high_wavelen = l / high_freq_factor;
            let inv_freq = plain
                .iter()
                .map(|&theta| {
                    let wavelen = 2.0 * std::f64::consts::PI / theta;
                    if wavelen < high_wavelen {
                        theta
                    } else if wavelen > low_wavelen {
                        theta / factor
                    } else {
                        let smooth = (l / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * theta / factor + smooth * theta
                    }
                })
                .collect();
            RopeFrequencies { inv_freq, attention_factor: 1.0 }
        }
    }
}
