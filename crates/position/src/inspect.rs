//! [`inspect`]: what a scheme computes for a small [`Probe`] (width, heads, positions), as
//! plain serializable data. `ember position show --json` prints it; `ember position plot`
//! and the text tables render it (root package, `viz::position`).
//!
//! JSON schema of [`Inspection`] (one object; keys by scheme):
//! - `sinusoidal` → `{"table": [[f64; D]; T]}` — row `p` is position `p`'s vector;
//! - `rope` → `{"inv_freq": [f64; r/2], "attention_factor": f64}` plus, with a probe vector,
//!   `"rotated": [[f64; D]; T]` (the vector rotated to positions `0 … T−1`);
//! - `alibi` → `{"slopes": [f64; H], "bias": [[[f64 | null; T]; T]; H]}` — `bias[h][i][j]` is
//!   `−m_h (i − j)`; `null` above the diagonal, where the tensor holds `−∞` (masked);
//! - `learned` → `{"max_len": N, "init_std": σ}` (its values are random until trained);
//! - `t5` → `{"buckets": [[usize | null; T]; T]}` — the bucket of each `(i, j ≤ i)` (the
//!   per-bucket biases start at 0 and are learned);
//! - `kerple` → `{"r1": [f64; H], "r2": [f64; H], "bias": [[[f64 | null; T]; T]; H]}` — the
//!   initial parameters and the bias they give;
//! - `fire` → `{"hidden": n, "threshold": L, "normalized": [[f64 | null; T]; T]}` — the MLP's
//!   input `ψ(i − j)/ψ(max(L, i))` at the initial `c` (the MLP itself is random until trained);
//! - `xpos` → `{"inv_freq": [f64; D/2], "zeta": [f64; D/2]}` — RoPE's frequencies and the
//!   per-pair decay bases;
//! - `none` → `{}`.
//!
//! All numbers are computed in f64 on the host.

use serde::Serialize;

use crate::alibi::{alibi_bias_host, slopes};
use crate::fire::FIRE_INIT_C;
use crate::kerple::{initial_parameters, KERPLE_MIN};
use crate::rope::rotate_vector;
use crate::rope_scaling::scaled_inv_freq;
use crate::sinusoidal::sinusoidal_table;
use crate::{PositionConfig, PositionError};

/// The sizes a scheme is evaluated at.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// Vector width `D`: `d_model` (sinusoidal, learned) or one head's `head_dim` (RoPE).
    pub dim: usize,
    /// Attention heads `H` (ALiBi).
    pub heads: usize,
    /// Positions `T`.
    pub positions: usize,
    /// Sequence length the RoPE frequencies are for (dynamic NTK); `None` = `positions`.
    pub seq_len: Option<usize>,
    /// RoPE only: a vector of `dim` values to rotate to positions `0 … T−1`.
    pub vector: Option<Vec<f64>>,
}

/// What [`inspect`] returns; serializes to the JSON documented in the module docs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Inspection {
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
        /// `[T, D]`: the probe vector at positions `0 … T−1`.
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
    /// `{"buckets": …}`.
    T5 {
        /// `[T, T]`, `None` above the diagonal.
        buckets: Vec<Vec<Option<usize>>>,
    },
    /// `{"r1": …, "r2": …, "bias": …}`.
    Kerple {
        /// Initial `r1` per head.
        r1: Vec<f64>,
        /// Initial `r2` per head.
        r2: Vec<f64>,
        /// `[H, T, T]`, `None` above the diagonal.
        bias: Vec<Vec<Vec<Option<f64>>>>,
    },
    /// `{"hidden": …, "threshold": …, "normalized": …}`.
    Fire {
        /// Hidden units of the MLP.
        hidden: usize,
        /// `L`.
        threshold: usize,
        /// `[T, T]` MLP inputs, `None` above the diagonal.
        normalized: Vec<Vec<Option<f64>>>,
    },
    /// `{"inv_freq": …, "zeta": …}`.
    Xpos {
        /// RoPE's `D/2` inverse frequencies.
        inv_freq: Vec<f64>,
        /// `ζ_m` per rotation pair.
        zeta: Vec<f64>,
    },
    /// `{}`.
    None {},
}

/// `f(i, j)` for `j ≤ i`, `None` above the diagonal, as `[T, T]`.
fn lower<V>(t: usize, f: impl Fn(usize, usize) -> V) -> Vec<Vec<Option<V>>> {
    (0..t).map(|i| (0..t).map(|j| (j <= i).then(|| f(i, j))).collect()).collect()
}

/// Validate `config` for the probe's width (RoPE: one head of `probe.dim` features; ALiBi:
/// `probe.heads` heads), then compute what it does at positions `0 … probe.positions − 1`.
pub fn inspect(config: &PositionConfig, probe: &Probe) -> Result<Inspection, PositionError> {
    let (d, t) = (probe.dim, probe.positions);
    let (width, heads) = match config {
        PositionConfig::Alibi {} | PositionConfig::Kerple {} => (d.max(2), probe.heads),
        PositionConfig::T5 { .. } | PositionConfig::Fire { .. } => (d.max(2), 1),
        PositionConfig::None {} => (d.max(2), 1),
        _ => (d, 1),
    };
    config.validate(width, heads)?;
    if probe.vector.is_some() && !matches!(config, PositionConfig::Rope { .. }) {
        return Err(PositionError::VectorWithoutRope { scheme: config.scheme() });
    }
    Ok(match config {
        PositionConfig::None {} => Inspection::None {},
        &PositionConfig::Learned { max_len, init_std } => Inspection::Learned { max_len, init_std },
        PositionConfig::Alibi {} => Inspection::Alibi { slopes: slopes(heads), bias: alibi_bias_host(heads, t, t, 0) },
        &PositionConfig::T5 { num_buckets, max_distance } => Inspection::T5 { buckets: lower(t, |i, j| crate::t5::bucket((i - j) as i64, num_buckets, max_distance)) },
        PositionConfig::Kerple {} => {
            let (r1, r2) = initial_parameters(heads);
            let bias = r1.iter().zip(&r2).map(|(&a, &b)| lower(t, |i, j| 0.0 - a.max(KERPLE_MIN) * (1.0 + b.max(KERPLE_MIN) * (i - j) as f64).ln())).collect();
            Inspection::Kerple { r1, r2, bias }
        }
        &PositionConfig::Fire { hidden, threshold } => {
            let psi = |x: f64| (FIRE_INIT_C * x).ln_1p();
            Inspection::Fire { hidden, threshold, normalized: lower(t, |i, j| psi((i - j) as f64) / psi(i.max(threshold) as f64)) }
        }
        &PositionConfig::Xpos { base, gamma, .. } => {
            let freqs = scaled_inv_freq(base, d, &crate::RopeScaling::None {}, None);
            Inspection::Xpos { inv_freq: freqs.inv_freq, zeta: crate::xpos::zeta(d, gamma) }
        }
        &PositionConfig::Sinusoidal { layout, base } => {
            let flat = sinusoidal_table(0..t, d, layout, base);
            Inspection::Sinusoidal { table: flat.chunks(d).map(<[f64]>::to_vec).collect() }
        }
        PositionConfig::Rope { layout, base, partial_rotary_factor, scaling } => {
            let rot_dim = PositionConfig::rotary_dim(d, *partial_rotary_factor);
            let seq_len = probe.seq_len.unwrap_or(t);
            let freqs = scaled_inv_freq(*base, rot_dim, scaling, scaling.seq_len_key(seq_len));
            let rotated = match &probe.vector {
                None => None,
                Some(v) if v.len() != d => return Err(PositionError::VectorLength { got: v.len(), dim: d }),
                Some(v) => Some((0..t).map(|p| rotate_vector(v, p as f64, &freqs, *layout)).collect()),
            };
            Inspection::Rope { inv_freq: freqs.inv_freq, attention_factor: freqs.attention_factor, rotated }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RopeLayout, RopeScaling};

    fn probe(dim: usize, heads: usize, positions: usize) -> Probe {
        Probe { dim, heads, positions, seq_len: None, vector: None }
    }

    #[test]
    fn rope_json_has_the_documented_keys_and_check_values() {
        let rope = PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling: RopeScaling::None {} };
        let v = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let out = inspect(&rope, &Probe { vector: Some(v.clone()), ..probe(8, 1, 4) }).unwrap();
        let json = serde_json::to_value(&out).unwrap();
        let rotated = json["rotated"].as_array().unwrap();
        assert_eq!(rotated.len(), 4);
        let half = [-1.69559254, 0.13755174, 2.7886816, 3.97598204, -4.80884247, 6.32305935, 7.08683674, 8.01196398];
        for (a, b) in rotated[3].as_array().unwrap().iter().zip(half) {
            assert!((a.as_f64().unwrap() - b).abs() < 1e-7);
        }
        assert_eq!(json["attention_factor"], 1.0);
        assert_eq!(json["inv_freq"].as_array().unwrap().len(), 4);
        let short = inspect(&rope, &Probe { vector: Some(v[..3].to_vec()), ..probe(8, 1, 4) });
        assert_eq!(short, Err(PositionError::VectorLength { got: 3, dim: 8 }));
        assert!(inspect(&rope, &probe(7, 1, 4)).is_err(), "odd head_dim");
    }

    #[test]
    fn alibi_sinusoidal_and_none_json() {
        let json = serde_json::to_value(inspect(&PositionConfig::Alibi {}, &probe(8, 2, 3)).unwrap()).unwrap();
        assert_eq!(json["slopes"], serde_json::json!([0.0625, 0.00390625]));
        assert_eq!(json["bias"][0], serde_json::json!([[0.0, null, null], [-0.0625, 0.0, null], [-0.125, -0.0625, 0.0]]));
        assert_eq!(inspect(&PositionConfig::Alibi {}, &probe(8, 0, 3)), Err(PositionError::ZeroHeads));
        let sin = PositionConfig::Sinusoidal { layout: Default::default(), base: 1e4 };
        let json = serde_json::to_value(inspect(&sin, &probe(4, 1, 2)).unwrap()).unwrap();
        assert_eq!(json["table"][0], serde_json::json!([0.0, 1.0, 0.0, 1.0]));
        let none = PositionConfig::None {};
        assert_eq!(serde_json::to_string(&inspect(&none, &probe(8, 8, 8)).unwrap()).unwrap(), "{}");
        let with_vector = Probe { vector: Some(vec![1.0]), ..probe(8, 8, 8) };
        assert_eq!(inspect(&none, &with_vector), Err(PositionError::VectorWithoutRope { scheme: "none" }));
    }
}
