//! `ember position show`: what a scheme computes, as a serde value (`--json`) or text.
//!
//! JSON schema (one object; keys by scheme):
//! - `sinusoidal` → `{"table": [[f64; D]; T]}` — row `p` is position `p`'s vector;
//! - `rope` → `{"inv_freq": [f64; r/2], "attention_factor": f64}` plus, with `--vector`,
//!   `"rotated": [[f64; D]; T]` (the vector rotated to positions `0 … T−1`);
//! - `alibi` → `{"slopes": [f64; H], "bias": [[[f64 | null; T]; T]; H]}` — `bias[h][i][j]` is
//!   `−m_h (i − j)`; `null` above the diagonal, where the tensor holds `−∞` (masked);
//! - `learned` → `{"max_len": N, "init_std": σ}` (its values are random until trained);
//! - `none` → `{}`.
//!
//! All numbers are computed in f64 on the host.

use serde::Serialize;

use crate::alibi::{alibi_bias_host, slopes};
use crate::rope::rotate_vector;
use crate::rope_scaling::scaled_inv_freq;
use crate::sinusoidal::sinusoidal_table;
use crate::{PositionConfig, PositionError, SchemeOptions};

/// What `show` prints; serializes to the JSON documented in the module docs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ShowOutput {
    /// `{"table": …}`.
    Sinusoidal {
        /// `[T, D]`.
        table: Vec<Vec<f64>>,
    },
    /// `{"inv_freq": …, "attention_factor": …, "rotated"?: …}`.
    Rope {
        /// `r/2` inverse frequencies.
        inv_freq: Vec<f64>,
        /// cos/sin scale.
        attention_factor: f64,
        /// `[T, D]`: the `--vector` at positions `0 … T−1`.
        #[serde(skip_serializing_if = "Option::is_none")]
        rotated: Option<Vec<Vec<f64>>>,
    },
    /// `{"slopes": …, "bias": …}`.
    Alibi {
        /// One slope per head.
        slopes: Vec<f64>,
        /// `[H, T, T]`, `None` (JSON `null`) above the diagonal.
        bias: Vec<Vec<Vec<Option<f64>>>>,
    },
    /// `{"max_len": …, "init_std": …}`.
    Learned {
        /// Table rows.
        max_len: usize,
        /// Init std.
        init_std: f64,
    },
    /// `{}`.
    None {},
}

/// Compute what `opts` describes; `vector` (length `opts.dim`) is rotated for RoPE.
pub fn show(opts: &SchemeOptions, vector: Option<&[f64]>) -> Result<ShowOutput, PositionError> {
    let config = opts.to_config()?;
    let (d, t) = (opts.dim, opts.positions);
    if vector.is_some() && !matches!(config, PositionConfig::Rope { .. }) {
        return Err(PositionError::option("--vector", format!("only --scheme rope rotates a vector (got --scheme {})", config.scheme())));
    }
    Ok(match config {
        PositionConfig::None => ShowOutput::None {},
        PositionConfig::Learned { max_len, init_std } => ShowOutput::Learned { max_len, init_std },
        PositionConfig::Alibi => ShowOutput::Alibi { slopes: slopes(opts.heads), bias: alibi_bias_host(opts.heads, t, t, 0) },
        PositionConfig::Sinusoidal { layout, base } => {
            let flat = sinusoidal_table(0..t, d, layout, base);
            ShowOutput::Sinusoidal { table: flat.chunks(d).map(<[f64]>::to_vec).collect() }
        }
        PositionConfig::Rope { layout, base, partial_rotary_factor, scaling } => {
            let rot_dim = PositionConfig::rotary_dim(d, partial_rotary_factor);
            let seq_len = opts.seq_len.unwrap_or(t);
            let freqs = scaled_inv_freq(base, rot_dim, &scaling, scaling.seq_len_key(seq_len));
            let rotated = match vector {
                None => None,
                Some(v) if v.len() != d => {
                    return Err(PositionError::option("--vector", format!("has {} values but --dim is {d}; give exactly {d} comma-separated numbers", v.len())))
                }
                Some(v) => Some((0..t).map(|p| rotate_vector(v, p as f64, &freqs, layout)).collect()),
            };
            ShowOutput::Rope { inv_freq: freqs.inv_freq, attention_factor: freqs.attention_factor, rotated }
        }
    })
}

fn row(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:>11.6}")).collect::<Vec<_>>().join(" ")
}

impl ShowOutput {
    /// Human-readable rendering (what `show` prints without `--json`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        match self {
            ShowOutput::None {} => s.push_str("scheme none: no position information (nothing to show)\n"),
            ShowOutput::Learned { max_len, init_std } => {
                s.push_str(&format!("scheme learned: trainable table [{max_len}, d], initialized N(0, {init_std}²); values exist only after init/training\n"));
            }
            ShowOutput::Sinusoidal { table } => {
                s.push_str("sinusoidal table (row = position)\n");
                for (p, r) in table.iter().enumerate() {
                    s.push_str(&format!("{p:>5} | {}\n", row(r)));
                }
            }
            ShowOutput::Rope { inv_freq, attention_factor, rotated } => {
                s.push_str(&format!("inv_freq          {}\nattention_factor  {attention_factor}\n", row(inv_freq)));
                if let Some(rot) = rotated {
                    s.push_str("rotated vector (row = position)\n");
                    for (p, r) in rot.iter().enumerate() {
                        s.push_str(&format!("{p:>5} | {}\n", row(r)));
                    }
                }
            }
            ShowOutput::Alibi { slopes, bias } => {
                s.push_str(&format!("slopes  {}\n", row(slopes)));
                for (h, m) in bias.iter().enumerate() {
                    s.push_str(&format!("head {h} (slope {}), bias[i][j], -inf = masked future key\n", slopes[h]));
                    for r in m {
                        let cells: Vec<String> = r.iter().map(|v| v.map_or(format!("{:>9}", "-inf"), |v| format!("{v:>9.4}"))).collect();
                        s.push_str(&format!("  {}\n", cells.join(" ")));
                    }
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_show_json_has_the_documented_keys_and_check_values() {
        let opts = SchemeOptions { dim: 8, positions: 4, ..Default::default() };
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let out = show(&opts, Some(&v)).unwrap();
        let json = serde_json::to_value(&out).unwrap();
        let rotated = json["rotated"].as_array().unwrap();
        assert_eq!(rotated.len(), 4);
        let half = [-1.69559254, 0.13755174, 2.7886816, 3.97598204, -4.80884247, 6.32305935, 7.08683674, 8.01196398];
        for (a, b) in rotated[3].as_array().unwrap().iter().zip(half) {
            assert!((a.as_f64().unwrap() - b).abs() < 1e-7);
        }
        assert_eq!(json["attention_factor"], 1.0);
        assert_eq!(json["inv_freq"].as_array().unwrap().len(), 4);
        assert!(show(&opts, Some(&v[..3])).is_err());
    }

    #[test]
    fn alibi_and_sinusoidal_json() {
        let opts = SchemeOptions { scheme: "alibi".into(), heads: 2, positions: 3, ..Default::default() };
        let json = serde_json::to_value(show(&opts, None).unwrap()).unwrap();
        assert_eq!(json["slopes"], serde_json::json!([0.0625, 0.00390625]));
        assert_eq!(json["bias"][0], serde_json::json!([[0.0, null, null], [-0.0625, 0.0, null], [-0.125, -0.0625, 0.0]]));
        let opts = SchemeOptions { scheme: "sinusoidal".into(), dim: 4, positions: 2, ..Default::default() };
        let json = serde_json::to_value(show(&opts, None).unwrap()).unwrap();
        assert_eq!(json["table"][0], serde_json::json!([0.0, 1.0, 0.0, 1.0]));
        let none = SchemeOptions { scheme: "none".into(), ..Default::default() };
        assert_eq!(serde_json::to_string(&show(&none, None).unwrap()).unwrap(), "{}");
        assert!(show(&none, Some(&[1.0])).is_err());
    }
}
