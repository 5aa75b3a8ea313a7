//! [`SchemeOptions`]: loose, command-line shaped settings (`--scheme rope --scaling yarn
//! --factor 4 …`) turned into a checked [`PositionConfig`]. Used by `ember position show/plot`.

use crate::rope::RopeLayout;
use crate::rope_scaling::RopeScaling;
use crate::sinusoidal::SinusoidalLayout;
use crate::{PositionConfig, PositionError};

/// Scheme settings as typed on the command line; unset options take the config defaults.
#[derive(Clone, Debug)]
pub struct SchemeOptions {
    /// `none | sinusoidal | learned | rope | alibi`.
    pub scheme: String,
    /// Sinusoidal: `interleaved | halves`; RoPE: `interleaved | half_split`.
    pub layout: Option<String>,
    /// Vector width: `d_model` (sinusoidal, learned) or `head_dim` (RoPE).
    pub dim: usize,
    /// Attention heads (ALiBi).
    pub heads: usize,
    /// Positions `T` to show.
    pub positions: usize,
    /// Frequency / timescale base.
    pub base: Option<f64>,
    /// RoPE `partial_rotary_factor`.
    pub partial_rotary_factor: Option<f64>,
    /// RoPE scaling: `none | linear | dynamic | yarn | llama3`.
    pub scaling: Option<String>,
    /// Scaling factor.
    pub factor: Option<f64>,
    /// Dynamic NTK `max_position`.
    pub max_position: Option<usize>,
    /// YaRN / llama3 `original_max_position`.
    pub original_max: Option<usize>,
    /// Sequence length the frequencies are for (dynamic NTK); default `positions`.
    pub seq_len: Option<usize>,
    /// llama3 `low_freq_factor` (default 1).
    pub low_freq_factor: Option<f64>,
    /// llama3 `high_freq_factor` (default 4).
    pub high_freq_factor: Option<f64>,
    /// YaRN `beta_fast` (default 32).
    pub beta_fast: Option<f64>,
    /// YaRN `beta_slow` (default 1).
    pub beta_slow: Option<f64>,
    /// YaRN `attention_factor` override.
    pub attention_factor: Option<f64>,
    /// Learned `max_len` (default `positions`).
    pub max_len: Option<usize>,
    /// Learned `init_std` (default 0.02).
    pub init_std: Option<f64>,
}

impl Default for SchemeOptions {
    fn default() -> Self {
        Self {
            scheme: "rope".into(),
            layout: None,
            dim: 8,
            heads: 8,
            positions: 8,
            base: None,
            partial_rotary_factor: None,
            scaling: None,
            factor: None,
            max_position: None,
            original_max: None,
            seq_len: None,
            low_freq_factor: None,
            high_freq_factor: None,
            beta_fast: None,
            beta_slow: None,
            attention_factor: None,
            max_len: None,
            init_std: None,
        }
    }
}

fn need<T>(value: Option<T>, option: &str, scaling: &str, example: &str) -> Result<T, PositionError> {
    value.ok_or_else(|| PositionError::option(option, format!("--scaling {scaling} needs {option} (e.g. {option} {example})")))
}

impl SchemeOptions {
    /// Options given that the chosen scheme does not use (reported as an error).
    fn unused(&self) -> Vec<&'static str> {
        let rope = self.scheme == "rope";
        let mut out = Vec::new();
        let mut check = |set: bool, used: bool, name: &'static str| {
            if set && !used {
                out.push(name);
            }
        };
        let s = self.scheme.as_str();
        check(self.layout.is_some(), rope || s == "sinusoidal", "--layout");
        check(self.base.is_some(), rope || s == "sinusoidal", "--base");
        check(self.partial_rotary_factor.is_some(), rope, "--partial-rotary-factor");
        check(self.scaling.is_some(), rope, "--scaling");
        for (set, name) in self.scaling_options() {
            check(set, rope, name);
        }
        check(self.max_len.is_some(), s == "learned", "--max-len");
        check(self.init_std.is_some(), s == "learned", "--init-std");
        out
    }

    /// Whether each RoPE-scaling option was given, with its flag name.
    fn scaling_options(&self) -> [(bool, &'static str); 9] {
        [
            (self.factor.is_some(), "--factor"),
            (self.max_position.is_some(), "--max-position"),
            (self.original_max.is_some(), "--original-max"),
            (self.seq_len.is_some(), "--seq-len"),
            (self.low_freq_factor.is_some(), "--low-freq-factor"),
            (self.high_freq_factor.is_some(), "--high-freq-factor"),
            (self.beta_fast.is_some(), "--beta-fast"),
            (self.beta_slow.is_some(), "--beta-slow"),
            (self.attention_factor.is_some(), "--attention-factor"),
        ]
    }

    fn rope_scaling(&self) -> Result<RopeScaling, PositionError> {
        let kind = self.scaling.as_deref().unwrap_or("none");
        let factor = || need(self.factor, "--factor", kind, "4");
        let scaling = match kind {
            "none" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor: factor()? },
            "dynamic" => RopeScaling::Dynamic { factor: factor()?, max_position: need(self.max_position, "--max-position", kind, "2048")? },
            "yarn" => RopeScaling::Yarn {
                factor: factor()?,
                original_max_position: need(self.original_max, "--original-max", kind, "2048")?,
                beta_fast: self.beta_fast.unwrap_or(32.0),
                beta_slow: self.beta_slow.unwrap_or(1.0),
                attention_factor: self.attention_factor,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: factor()?,
                low_freq_factor: self.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: self.high_freq_factor.unwrap_or(4.0),
                original_max_position: need(self.original_max, "--original-max", kind, "8192")?,
            },
            other => return Err(PositionError::option("--scaling", format!("unknown scaling `{other}`; use none, linear, dynamic, yarn or llama3"))),
        };
        // Options of another scaling kind are mistakes too.
        let allowed: &[&str] = match kind {
            "none" => &[],
            "linear" => &["--factor"],
            "dynamic" => &["--factor", "--max-position", "--seq-len"],
            "yarn" => &["--factor", "--original-max", "--beta-fast", "--beta-slow", "--attention-factor"],
            _ => &["--factor", "--original-max", "--low-freq-factor", "--high-freq-factor"],
        };
        for (set, name) in self.scaling_options() {
            if set && !allowed.contains(&name) {
                return Err(PositionError::option(name, format!("does not apply to --scaling {kind}")));
            }
        }
        Ok(scaling)
    }

    /// The configuration these options describe (not yet validated against a width).
    pub fn to_config(&self) -> Result<PositionConfig, PositionError> {
        if let Some(first) = self.unused().first() {
            return Err(PositionError::option(*first, format!("does not apply to --scheme {}", self.scheme)));
        }
        let layout = self.layout.as_deref();
        let config = match self.scheme.as_str() {
            "none" => PositionConfig::None,
            "alibi" => PositionConfig::Alibi,
            "learned" => PositionConfig::Learned { max_len: self.max_len.unwrap_or(self.positions), init_std: self.init_std.unwrap_or(0.02) },
            "sinusoidal" => PositionConfig::Sinusoidal {
                layout: match layout.unwrap_or("interleaved") {
                    "interleaved" => SinusoidalLayout::Interleaved,
                    "halves" => SinusoidalLayout::Halves,
                    other => return Err(PositionError::option("--layout", format!("`{other}` is not a sinusoidal layout; use interleaved or halves"))),
                },
                base: self.base.unwrap_or(10000.0),
            },
            "rope" => PositionConfig::Rope {
                layout: match layout.unwrap_or("half_split") {
                    "interleaved" => RopeLayout::Interleaved,
                    "half_split" | "half-split" => RopeLayout::HalfSplit,
                    other => return Err(PositionError::option("--layout", format!("`{other}` is not a RoPE layout; use interleaved or half_split"))),
                },
                base: self.base.unwrap_or(10000.0),
                partial_rotary_factor: self.partial_rotary_factor.unwrap_or(1.0),
                scaling: self.rope_scaling()?,
            },
            other => return Err(PositionError::option("--scheme", format!("unknown scheme `{other}`; use none, sinusoidal, learned, rope or alibi"))),
        };
        // The width each scheme's vectors have: RoPE shows one head of `dim` features.
        let heads = if self.scheme == "alibi" { self.heads } else { 1 };
        config.validate(self.dim.max(2), heads)?;
        if self.dim == 0 && self.scheme != "alibi" && self.scheme != "none" {
            return Err(PositionError::option("--dim", "must be at least 2"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_configs_and_rejects_bad_options() {
        let o = |f: &dyn Fn(&mut SchemeOptions)| {
            let mut o = SchemeOptions::default();
            f(&mut o);
            o.to_config()
        };
        assert!(matches!(o(&|_| {}), Ok(PositionConfig::Rope { .. })));
        let yarn = o(&|o| {
            o.scaling = Some("yarn".into());
            o.factor = Some(4.0);
            o.original_max = Some(64);
        });
        assert!(matches!(yarn, Ok(PositionConfig::Rope { scaling: RopeScaling::Yarn { beta_fast: 32.0, .. }, .. })));
        let missing = o(&|o| o.scaling = Some("dynamic".into())).unwrap_err();
        assert!(missing.to_string().contains("--factor"), "{missing}");
        let wrong = o(&|o| {
            o.scheme = "sinusoidal".into();
            o.factor = Some(2.0);
        })
        .unwrap_err();
        assert!(wrong.to_string().contains("--factor") && wrong.to_string().contains("sinusoidal"));
        assert!(o(&|o| o.scheme = "rotary".into()).is_err());
        assert!(o(&|o| o.dim = 7).is_err());
        assert!(o(&|o| o.layout = Some("halves".into())).is_err());
        assert!(o(&|o| {
            o.scheme = "alibi".into();
            o.heads = 0;
        })
        .is_err());
        assert!(o(&|o| {
            o.scaling = Some("linear".into());
            o.factor = Some(0.0);
        })
        .is_err());
    }
}
