//! [`PositionConfig`]: the user-facing, serde-tagged choice of scheme (TOML
//! `[position] scheme = "rope" …`), its validation, and `init` into a [`PositionEncoding`].
//!
//! ```toml
//! [position]
//! scheme = "rope"            # none | sinusoidal | learned | rope | alibi | t5 | kerple | fire | xpos
//! layout = "half_split"      # rope: interleaved | half_split; sinusoidal: interleaved | halves
//! base = 10000.0
//! partial_rotary_factor = 1.0
//! [position.scaling]         # rope only; omitted = none
//! type = "yarn"              # none | linear | dynamic | yarn | llama3
//! factor = 4.0
//! original_max_position = 2048
//! ```
//! Unknown keys are rejected.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::alibi::Alibi;
use crate::fire::Fire;
use crate::kerple::Kerple;
use crate::learned::LearnedPositions;
use crate::none::NoPosition;
use crate::rope::{Rope, RopeLayout};
use crate::rope_scaling::RopeScaling;
use crate::sinusoidal::{Sinusoidal, SinusoidalLayout};
use crate::t5::T5Bias;
use crate::xpos::XPos;
use crate::{PositionEncoding, PositionError};

fn default_base() -> f64 {
    10000.0
}
fn default_init_std() -> f64 {
    0.02
}
fn default_partial() -> f64 {
    1.0
}
fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_fire_hidden() -> usize {
    32
}
fn default_fire_threshold() -> usize {
    512
}
fn default_xpos_gamma() -> f64 {
    0.4
}
fn default_xpos_scale_base() -> f64 {
    512.0
}

/// Which position scheme a model uses, with its settings.
///
/// Serialized (TOML/JSON) as a map tagged by `scheme` (`scheme = "rope"`, snake_case names),
/// unknown keys rejected — also for the field-less `none {}` and `alibi {}`: they are empty
/// struct variants because serde's internally tagged *unit* variants would silently ignore
/// extra keys. This is the one type both the TOML `[position]` table and the
/// `ember position` flags parse into; the defaults below are the only place they are written.
///
/// The default is `learned { max_len = 1024, init_std = 0.02 }`, GPT-2's / nanoGPT's choice
/// (the project's baseline recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum PositionConfig {
    /// NoPE: nothing.
    None {},
    /// Fixed sinusoids added to the embeddings (any length).
    Sinusoidal {
        /// `interleaved` (default) or `halves`.
        #[serde(default)]
        layout: SinusoidalLayout,
        /// Timescale base (default 10000).
        #[serde(default = "default_base")]
        base: f64,
    },
    /// A trainable table added to the embeddings.
    Learned {
        /// Positions in the table; longer sequences are an error.
        max_len: usize,
        /// Std of the normal init (default 0.02).
        #[serde(default = "default_init_std")]
        init_std: f64,
    },
    /// Rotary embeddings on queries and keys.
    Rope {
        /// `half_split` (default, HF LLaMA; `half-split` also accepted) or `interleaved`
        /// (RoFormer, Burn).
        #[serde(default)]
        layout: RopeLayout,
        /// Frequency base (default 10000).
        #[serde(default = "default_base")]
        base: f64,
        /// Fraction of each head's features that rotate (default 1).
        #[serde(default = "default_partial")]
        partial_rotary_factor: f64,
        /// Frequency scaling (default none).
        #[serde(default)]
        scaling: RopeScaling,
    },
    /// Linear attention biases.
    Alibi {},
    /// T5's learned relative-position bucket biases (causal buckets, [`crate::t5`]).
    T5 {
        /// Buckets per head (default 32, T5's); half are exact distances, half logarithmic.
        #[serde(default = "default_buckets")]
        num_buckets: usize,
        /// Distance from which every key shares the last bucket (default 128, T5's).
        #[serde(default = "default_max_distance")]
        max_distance: usize,
    },
    /// KERPLE's logarithmic kernel bias `−r1·ln(1 + r2·(i − j))`, learned per head ([`crate::kerple`]).
    Kerple {},
    /// FIRE: a learned MLP of the progressively normalised distance ([`crate::fire`]).
    Fire {
        /// Hidden ReLU units of the MLP (default 32, the paper's).
        #[serde(default = "default_fire_hidden")]
        hidden: usize,
        /// The threshold `L` of `ψ(max(L, i))` (default 512, the paper's initial value).
        #[serde(default = "default_fire_threshold")]
        threshold: usize,
    },
    /// xPos: RoPE with a per-pair exponential decay ([`crate::xpos`]).
    Xpos {
        /// Which features pair up (default `half_split`).
        #[serde(default)]
        layout: RopeLayout,
        /// Frequency base (default 10000).
        #[serde(default = "default_base")]
        base: f64,
        /// `γ` of `ζ_m = (2m/d + γ)/(1 + γ)` (default 0.4, the paper's).
        #[serde(default = "default_xpos_gamma")]
        gamma: f64,
        /// `B` of the exponent `n/B` (default 512, the paper's).
        #[serde(default = "default_xpos_scale_base")]
        scale_base: f64,
    },
}

impl Default for PositionConfig {
    fn default() -> Self {
        PositionConfig::Learned { max_len: 1024, init_std: 0.02 }
    }
}

impl PositionConfig {
    /// The scheme's name as written in TOML (`none`, `sinusoidal`, …).
    pub fn scheme(&self) -> &'static str {
        match self {
            PositionConfig::None {} => "none",
            PositionConfig::Sinusoidal { .. } => "sinusoidal",
            PositionConfig::Learned { .. } => "learned",
            PositionConfig::Rope { .. } => "rope",
            PositionConfig::Alibi {} => "alibi",
            PositionConfig::T5 { .. } => "t5",
            PositionConfig::Kerple {} => "kerple",
            PositionConfig::Fire { .. } => "fire",
            PositionConfig::Xpos { .. } => "xpos",
        }
    }

    /// RoPE's rotated dimension `⌊partial_rotary_factor · head_dim⌋` (HF's `int(...)`).
    pub fn rotary_dim(head_dim: usize, partial_rotary_factor: f64) -> usize {
        (head_dim as f64 * partial_rotary_factor).floor() as usize
    }

    /// Check the settings for a model of width `d_model` with `n_heads` heads
    /// (`head_dim = d_model / n_heads`). Errors name the field and the fix.
    pub fn validate(&self, d_model: usize, n_heads: usize) -> Result<(), PositionError> {
        if n_heads == 0 {
            return Err(PositionError::ZeroHeads);
        }
        if d_model == 0 {
            return Err(PositionError::ZeroWidth);
        }
        match *self {
            PositionConfig::None {} | PositionConfig::Alibi {} | PositionConfig::Kerple {} => Ok(()),
            PositionConfig::T5 { num_buckets, max_distance } => {
                if num_buckets < 2 {
                    return Err(PositionError::InvalidValue { field: "t5.num_buckets", value: num_buckets as f64, expected: "must be at least 2 (half exact distances, half logarithmic; T5 uses 32)" });
                }
                if max_distance <= num_buckets / 2 {
                    return Err(PositionError::InvalidValue { field: "t5.max_distance", value: max_distance as f64, expected: "must be larger than num_buckets / 2, the last exactly-bucketed distance (T5 uses 128 with 32 buckets)" });
                }
                Ok(())
            }
            PositionConfig::Fire { hidden, threshold } => {
                if hidden == 0 {
                    return Err(PositionError::InvalidValue { field: "fire.hidden", value: 0.0, expected: "the MLP needs at least 1 hidden unit (the paper uses 32)" });
                }
                if threshold == 0 {
                    return Err(PositionError::InvalidValue { field: "fire.threshold", value: 0.0, expected: "must be at least 1 (it keeps ψ(max(L, i)) > 0; the paper starts at 512)" });
                }
                Ok(())
            }
            PositionConfig::Xpos { base, gamma, scale_base, .. } => {
                check_base("xpos.base", base)?;
                if d_model % n_heads != 0 {
                    return Err(PositionError::HeadsDontDivide { d_model, n_heads });
                }
                let head_dim = d_model / n_heads;
                if head_dim % 2 == 1 {
                    return Err(PositionError::BadRotaryDim { head_dim, partial_rotary_factor: 1.0, rot_dim: head_dim });
                }
                if !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(PositionError::InvalidValue { field: "xpos.gamma", value: gamma, expected: "must be a finite number > 0 (the paper uses 0.4)" });
                }
                if !(scale_base > 0.0 && scale_base.is_finite()) {
                    return Err(PositionError::InvalidValue { field: "xpos.scale_base", value: scale_base, expected: "must be a finite number > 0 (the paper uses 512)" });
                }
                Ok(())
            }
            PositionConfig::Sinusoidal { base, .. } => {
                check_base("sinusoidal.base", base)?;
                if d_model % 2 == 1 {
                    return Err(PositionError::OddWidth { d_model });
                }
                Ok(())
            }
            PositionConfig::Learned { max_len, init_std } => {
                if max_len == 0 {
                    return Err(PositionError::InvalidValue { field: "learned.max_len", value: 0.0, expected: "must be at least 1 (usually the training context length)" });
                }
                if !(init_std >= 0.0 && init_std.is_finite()) {
                    return Err(PositionError::InvalidValue { field: "learned.init_std", value: init_std, expected: "must be a finite number >= 0 (GPT-2 uses 0.02)" });
                }
                Ok(())
            }
            PositionConfig::Rope { base, partial_rotary_factor, ref scaling, .. } => {
                check_base("rope.base", base)?;
                if d_model % n_heads != 0 {
                    return Err(PositionError::HeadsDontDivide { d_model, n_heads });
                }
                if !(partial_rotary_factor > 0.0 && partial_rotary_factor <= 1.0) {
                    return Err(PositionError::InvalidValue { field: "rope.partial_rotary_factor", value: partial_rotary_factor, expected: "must be in (0, 1]: the fraction of each head's features that rotate" });
                }
                let head_dim = d_model / n_heads;
                let rot_dim = Self::rotary_dim(head_dim, partial_rotary_factor);
                if rot_dim == 0 || rot_dim % 2 == 1 {
                    return Err(PositionError::BadRotaryDim { head_dim, partial_rotary_factor, rot_dim });
                }
                scaling.validate(rot_dim)
            }
        }
    }

    /// Validate, then build the module for width `d_model` and `n_heads` heads on `device`
    /// (the trainable schemes allocate their parameters: `learned` `[max_len, d_model]`, `t5`
    /// `[num_buckets, H]`, `kerple` `2 × [H]`, `fire` its MLP and `c`).
    pub fn init(&self, d_model: usize, n_heads: usize, device: &Device) -> Result<PositionEncoding, PositionError> {
        self.validate(d_model, n_heads)?;
        Ok(match *self {
            PositionConfig::None {} => PositionEncoding::None(NoPosition::new()),
            PositionConfig::Sinusoidal { layout, base } => PositionEncoding::Sinusoidal(Sinusoidal::new(d_model, layout, base)),
            PositionConfig::Learned { max_len, init_std } => PositionEncoding::Learned(LearnedPositions::new(max_len, d_model, init_std, device)),
            PositionConfig::Rope { layout, base, partial_rotary_factor, ref scaling } => {
                let head_dim = d_model / n_heads;
                let rot_dim = Self::rotary_dim(head_dim, partial_rotary_factor);
                PositionEncoding::Rope(Rope::new(layout, base, head_dim, rot_dim, scaling.clone()))
            }
            PositionConfig::Alibi {} => PositionEncoding::Alibi(Alibi::new(n_heads)),
            PositionConfig::T5 { num_buckets, max_distance } => PositionEncoding::T5(T5Bias::new(num_buckets, max_distance, n_heads, device)),
            PositionConfig::Kerple {} => PositionEncoding::Kerple(Kerple::new(n_heads, device)),
            PositionConfig::Fire { hidden, threshold } => PositionEncoding::Fire(Fire::new(hidden, threshold, n_heads, device)),
            PositionConfig::Xpos { layout, base, gamma, scale_base } => PositionEncoding::Xpos(XPos::new(layout, base, d_model / n_heads, gamma, scale_base)),
        })
    }
}

fn check_base(field: &'static str, base: f64) -> Result<(), PositionError> {
    if base > 1.0 && base.is_finite() {
        Ok(())
    } else {
        Err(PositionError::InvalidValue { field, value: base, expected: "must be a finite number > 1 (10000 is usual)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_every_scheme() {
        let configs = [
            PositionConfig::None {},
            PositionConfig::Alibi {},
            PositionConfig::default(),
            PositionConfig::Sinusoidal { layout: SinusoidalLayout::Halves, base: 500.0 },
            PositionConfig::Rope { layout: RopeLayout::Interleaved, base: 1e6, partial_rotary_factor: 0.5, scaling: RopeScaling::None {} },
            PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling: RopeScaling::Linear { factor: 2.0 } },
            PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling: RopeScaling::Dynamic { factor: 2.0, max_position: 512 } },
            PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling: RopeScaling::Yarn { factor: 4.0, original_max_position: 2048, beta_fast: 32.0, beta_slow: 1.0, attention_factor: Some(1.2) } },
            PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 5e5, partial_rotary_factor: 1.0, scaling: RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: 8192 } },
            PositionConfig::T5 { num_buckets: 16, max_distance: 40 },
            PositionConfig::Kerple {},
            PositionConfig::Fire { hidden: 8, threshold: 16 },
            PositionConfig::Xpos { layout: RopeLayout::Interleaved, base: 1e4, gamma: 0.5, scale_base: 64.0 },
        ];
        #[derive(Serialize, Deserialize)]
        struct Wrap {
            position: PositionConfig,
        }
        for c in configs {
            let text = toml::to_string(&Wrap { position: c.clone() }).unwrap();
            let back: Wrap = toml::from_str(&text).unwrap();
            assert_eq!(back.position, c, "{text}");
        }
    }

    #[test]
    fn toml_defaults_and_tags() {
        let c: PositionConfig = toml::from_str("scheme = \"rope\"\nlayout = \"interleaved\"\n[scaling]\ntype = \"yarn\"\nfactor = 4.0\noriginal_max_position = 2048\n").unwrap();
        let yarn = RopeScaling::Yarn { factor: 4.0, original_max_position: 2048, beta_fast: 32.0, beta_slow: 1.0, attention_factor: None };
        assert_eq!(c, PositionConfig::Rope { layout: RopeLayout::Interleaved, base: 10000.0, partial_rotary_factor: 1.0, scaling: yarn });
        let c: PositionConfig = toml::from_str("scheme = \"learned\"\nmax_len = 64\n").unwrap();
        assert_eq!(c, PositionConfig::Learned { max_len: 64, init_std: 0.02 });
        let c: PositionConfig = toml::from_str("scheme = \"rope\"\n[scaling]\ntype = \"llama3\"\nfactor = 8.0\noriginal_max_position = 8192\n").unwrap();
        let llama3 = RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: 8192 };
        assert!(matches!(c, PositionConfig::Rope { scaling, .. } if scaling == llama3));
        let c: PositionConfig = toml::from_str("scheme = \"sinusoidal\"\n").unwrap();
        assert_eq!(c, PositionConfig::Sinusoidal { layout: SinusoidalLayout::Interleaved, base: 10000.0 });
    }

    #[test]
    fn unknown_keys_and_values_are_rejected() {
        for bad in [
            "scheme = \"rope\"\nlayuot = \"interleaved\"\n",
            "scheme = \"learned\"\nmax_len = 8\nstd = 0.1\n",
            "scheme = \"rope\"\n[scaling]\ntype = \"linear\"\nfactor = 2.0\nfactr = 3.0\n",
            "scheme = \"alibi\"\nslopes = 3\n",
            "scheme = \"none\"\nbase = 3\n",
            "scheme = \"rope\"\n[scaling]\ntype = \"none\"\nfactor = 2.0\n",
            "scheme = \"rotary\"\n",
            "scheme = \"rope\"\nlayout = \"halves\"\n",
            "scheme = \"learned\"\n",
            "scheme = \"t5\"\nbuckets = 8\n",
            "scheme = \"kerple\"\nr1 = 1.0\n",
            "scheme = \"fire\"\nwidth = 8\n",
            "scheme = \"xpos\"\nscale = 8.0\n",
        ] {
            assert!(toml::from_str::<PositionConfig>(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn empty_variants_parse_bare_and_reject_any_key() {
        let none: PositionConfig = toml::from_str("scheme = \"none\"\n").unwrap();
        assert_eq!(none, PositionConfig::None {});
        let alibi: PositionConfig = serde_json::from_str(r#"{"scheme":"alibi"}"#).unwrap();
        assert_eq!(alibi, PositionConfig::Alibi {});
        assert_eq!(serde_json::to_string(&PositionConfig::None {}).unwrap(), r#"{"scheme":"none"}"#);
        for (bad, key) in [("scheme = \"none\"\nmax_len = 8\n", "max_len"), ("scheme = \"alibi\"\nheads = 4\n", "heads")] {
            let e = toml::from_str::<PositionConfig>(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
        let e = toml::from_str::<PositionConfig>("scheme = \"rope\"\n[scaling]\ntype = \"none\"\nbeta_fast = 3.0\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `beta_fast`"), "{e}");
    }

    #[test]
    fn half_split_is_accepted_in_both_spellings() {
        for layout in ["half_split", "half-split"] {
            let c: PositionConfig = toml::from_str(&format!("scheme = \"rope\"\nlayout = \"{layout}\"\n")).unwrap();
            assert!(matches!(c, PositionConfig::Rope { layout: RopeLayout::HalfSplit, .. }), "{layout}");
        }
        let text = toml::to_string(&PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling: RopeScaling::None {} }).unwrap();
        assert!(text.contains("layout = \"half_split\""), "written in the canonical spelling: {text}");
    }

    #[test]
    fn validation_errors_name_the_problem() {
        let rope = |f: f64, s: RopeScaling| PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: f, scaling: s };
        assert_eq!(PositionConfig::Alibi {}.validate(64, 0), Err(PositionError::ZeroHeads));
        assert_eq!(rope(1.0, RopeScaling::None {}).validate(64, 0), Err(PositionError::ZeroHeads));
        // head_dim 6, factor 0.5 → 3 rotated features
        let e = rope(0.5, RopeScaling::None {}).validate(12, 2).unwrap_err();
        assert_eq!(e, PositionError::BadRotaryDim { head_dim: 6, partial_rotary_factor: 0.5, rot_dim: 3 });
        assert!(e.to_string().contains("odd"));
        assert!(matches!(rope(1.0, RopeScaling::None {}).validate(10, 2), Err(PositionError::BadRotaryDim { rot_dim: 5, .. })));
        assert!(matches!(rope(1.0, RopeScaling::None {}).validate(10, 3), Err(PositionError::HeadsDontDivide { .. })));
        for s in [
            RopeScaling::Linear { factor: 0.0 },
            RopeScaling::Linear { factor: -2.0 },
            RopeScaling::Dynamic { factor: 0.0, max_position: 10 },
            RopeScaling::Yarn { factor: -1.0, original_max_position: 10, beta_fast: 32.0, beta_slow: 1.0, attention_factor: None },
            RopeScaling::Llama3 { factor: 0.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: 10 },
        ] {
            let e = rope(1.0, s.clone()).validate(64, 4).unwrap_err();
            assert!(matches!(e, PositionError::InvalidValue { field: "rope.scaling.factor", .. }), "{s:?}: {e}");
        }
        assert!(PositionConfig::Sinusoidal { layout: SinusoidalLayout::Halves, base: 1e4 }.validate(7, 1).is_err());
        assert!(PositionConfig::Learned { max_len: 0, init_std: 0.02 }.validate(8, 1).is_err());
        assert!(PositionConfig::default().init(8, 0, &Device::flex()).is_err());
        let field = |c: PositionConfig| match c.validate(16, 2) {
            Err(PositionError::InvalidValue { field, .. }) => field,
            other => panic!("{c:?}: {other:?}"),
        };
        assert_eq!(field(PositionConfig::T5 { num_buckets: 0, max_distance: 128 }), "t5.num_buckets");
        assert_eq!(field(PositionConfig::T5 { num_buckets: 32, max_distance: 16 }), "t5.max_distance");
        assert_eq!(field(PositionConfig::Fire { hidden: 0, threshold: 512 }), "fire.hidden");
        assert_eq!(field(PositionConfig::Fire { hidden: 32, threshold: 0 }), "fire.threshold");
        assert_eq!(field(PositionConfig::Xpos { layout: RopeLayout::HalfSplit, base: 1e4, gamma: 0.0, scale_base: 512.0 }), "xpos.gamma");
        assert_eq!(field(PositionConfig::Xpos { layout: RopeLayout::HalfSplit, base: 1e4, gamma: 0.4, scale_base: -1.0 }), "xpos.scale_base");
        let odd = PositionConfig::Xpos { layout: RopeLayout::HalfSplit, base: 1e4, gamma: 0.4, scale_base: 512.0 };
        assert!(matches!(odd.validate(10, 2), Err(PositionError::BadRotaryDim { head_dim: 5, .. })));
        let e = PositionConfig::T5 { num_buckets: 0, max_distance: 128 }.validate(16, 2).unwrap_err().to_string();
        assert!(e.contains("t5.num_buckets = 0") && e.contains("at least 2"), "{e}");
    }
}
