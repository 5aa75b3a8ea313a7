//! Sinusoidal absolute positions (Vaswani et al. 2017), added to the token embeddings.
//!
//! With `ω_i = 1 / base^(2i/d)`, `i = 0 … d/2 − 1`, position `p` gets the `d`-vector
//! - interleaved (Burn's `PositionalEncoding`, HF DistilBERT): `PE[p, 2i] = sin(p·ω_i)`, `PE[p, 2i+1] = cos(p·ω_i)`;
//! - halves (HF Marian, GPT-NeoX style): `PE[p, i] = sin(p·ω_i)`, `PE[p, d/2 + i] = cos(p·ω_i)`.
//!
//! **Amplitude.** Every entry is in `[−1, 1]` and each (sin, cos) pair has norm 1, so
//! `‖PE[p]‖ = √(d/2)` for every position (8 at d = 128). Token rows initialised `N(0, σ²)`
//! have norm ≈ `σ·√d` (0.23 at σ = 0.02, d = 128): added unscaled, the signal drowns the
//! tokens. It expects token rows of comparable size: Vaswani et al. multiply the lookup by
//! `√d` (ember's default input-embedding scale for this scheme, `[model] embed_scale`), which
//! gives rows of norm ≈ `σ·d` (2.6).
//!
//! Angles are computed in f64 on the host and rounded once to f32, so large positions stay
//! exact to f32 rounding. Nothing is saved with the model: rows are computed for any length
//! and cached per device (`cache.rs`).

use std::ops::Range;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::cache::{upload, RowCache};
use crate::PositionError;

/// How sin and cos features are laid out in the `d`-vector of one position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SinusoidalLayout {
    /// `[sin ω_0 p, cos ω_0 p, sin ω_1 p, cos ω_1 p, …]`.
    #[default]
    Interleaved,
    /// `[sin ω_0 p, …, sin ω_{d/2−1} p, cos ω_0 p, …, cos ω_{d/2−1} p]`.
    Halves,
}

/// The sinusoidal table for `positions` as row-major f64, shape `[positions.len(), d]`
/// (row `t` is position `positions.start + t`). `d` must be even.
pub fn sinusoidal_table(positions: Range<usize>, d: usize, layout: SinusoidalLayout, base: f64) -> Vec<f64> {
    let half = d / 2;
    let omega: Vec<f64> = (0..half).map(|i| base.powf(-((2 * i) as f64) / d as f64)).collect();
    let mut out = vec![0.0; positions.len() * d];
    for (row, p) in out.chunks_exact_mut(d.max(1)).zip(positions) {
        for (i, w) in omega.iter().enumerate() {
            let (s, c) = (p as f64 * w).sin_cos();
            match layout {
                SinusoidalLayout::Interleaved => {
                    row[2 * i] = s;
                    row[2 * i + 1] = c;
                }
                SinusoidalLayout::Halves => {
                    row[i] = s;
                    row[half + i] = c;
                }
            }
        }
    }
    out
}

/// The sinusoidal table for positions `[offset, offset + len)` as a tensor `[len, d]` on `device`.
pub fn sinusoidal_tensor(offset: usize, len: usize, d: usize, layout: SinusoidalLayout, base: f64, device: &Device) -> Tensor<2> {
    upload(sinusoidal_table(offset..offset + len, d, layout, base), len, d, device)
}

/// The sinusoidal scheme as a module (no parameters; a cache of computed rows).
#[derive(Module, Debug)]
pub struct Sinusoidal {
    #[module(skip)]
    d_model: usize,
    #[module(skip)]
    layout: SinusoidalLayout,
    #[module(skip)]
    base: f64,
    #[module(skip)]
    cache: RowCache,
}

impl Sinusoidal {
    /// A sinusoidal encoding of width `d_model` (even; checked by the config).
    pub fn new(d_model: usize, layout: SinusoidalLayout, base: f64) -> Self {
        Self { d_model, layout, base, cache: RowCache::default() }
    }

    /// Rows `[offset, offset + len)` of the table, `[len, d_model]`, from the cache.
    pub fn table(&self, offset: usize, len: usize, device: &Device) -> Tensor<2> {
        let (d, layout, base) = (self.d_model, self.layout, self.base);
        let mut tables = self.cache.rows(device, 0, offset..offset + len, |rows| {
            vec![sinusoidal_tensor(rows.start, rows.len(), d, layout, base, device)]
        });
        tables.remove(0)
    }

    /// `x [B, T, d] + PE[offset .. offset + T]` (broadcast over the batch).
    pub fn add(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, PositionError> {
        let [_, t, d] = x.dims();
        if d != self.d_model {
            return Err(PositionError::WidthMismatch { expected: self.d_model, got: d });
        }
        let table = self.table(offset, t, &x.device());
        Ok(x + table.unsqueeze::<3>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_testing::{assert_close, test_devices};

    const INTERLEAVED_P1: [f64; 8] = [0.84147098, 0.54030231, 0.09983342, 0.99500417, 0.00999983, 0.99995, 0.001, 0.9999995];
    const HALVES_P1: [f64; 8] = [0.84147098, 0.09983342, 0.00999983, 0.001, 0.54030231, 0.99500417, 0.99995, 0.9999995];

    #[test]
    fn check_values_both_layouts() {
        let t = sinusoidal_table(1..2, 8, SinusoidalLayout::Interleaved, 10000.0);
        for (a, b) in t.iter().zip(INTERLEAVED_P1) {
            assert!((a - b).abs() < 1e-7, "{t:?}");
        }
        let t = sinusoidal_table(1..2, 8, SinusoidalLayout::Halves, 10000.0);
        for (a, b) in t.iter().zip(HALVES_P1) {
            assert!((a - b).abs() < 1e-7, "{t:?}");
        }
    }

    #[test]
    fn formula_at_large_positions() {
        let d = 16;
        for layout in [SinusoidalLayout::Interleaved, SinusoidalLayout::Halves] {
            let t = sinusoidal_table(100_000..100_003, d, layout, 500.0);
            for (r, p) in (100_000..100_003).enumerate() {
                for i in 0..d / 2 {
                    let angle = p as f64 / 500f64.powf(2.0 * i as f64 / d as f64);
                    let (s, c) = match layout {
                        SinusoidalLayout::Interleaved => (t[r * d + 2 * i], t[r * d + 2 * i + 1]),
                        SinusoidalLayout::Halves => (t[r * d + i], t[r * d + d / 2 + i]),
                    };
                    assert!((s - angle.sin()).abs() < 1e-9 && (c - angle.cos()).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn module_adds_table_and_offset_is_a_slice() {
        for td in test_devices() {
            let dev = &td.device;
            for layout in [SinusoidalLayout::Interleaved, SinusoidalLayout::Halves] {
                let enc = Sinusoidal::new(6, layout, 10000.0);
                let x = Tensor::<3>::ones([2, 5, 6], dev);
                let long = enc.add(x.clone(), 0).unwrap();
                let direct = sinusoidal_tensor(0, 5, 6, layout, 10000.0, dev).unsqueeze::<3>() + 1.0;
                assert_close(&long, &direct.repeat_dim(0, 2), 1e-6, 0.0, &format!("{} add", td.name));
                // fresh encoding (empty cache) at offset 3 equals rows 3..5 of the long one
                let enc2 = Sinusoidal::new(6, layout, 10000.0);
                let short = enc2.add(x.clone().slice([0..2, 0..2]), 3).unwrap();
                assert_close(&short, &long.clone().slice([0..2, 3..5]), 1e-6, 0.0, &format!("{} offset", td.name));
                // a cached encoding asked for an offset slice after a long one
                let short2 = enc.add(x.slice([0..2, 0..2]), 3).unwrap();
                assert_close(&short2, &short, 0.0, 0.0, &format!("{} cached offset", td.name));
            }
        }
    }

    #[test]
    fn matches_burn_positional_encoding() {
        for td in test_devices() {
            let dev = &td.device;
            let burn_pe = burn::nn::PositionalEncodingConfig::new(32).with_max_sequence_size(64).init(dev);
            let x = Tensor::<3>::zeros([1, 64, 32], dev);
            let theirs = burn_pe.forward(x.clone());
            let ours = Sinusoidal::new(32, SinusoidalLayout::Interleaved, 10000.0).add(x, 0).unwrap();
            // Burn computes angles in f32: agreement to f32 angle rounding at p < 64.
            assert_close(&ours, &theirs, 2e-5, 0.0, &format!("{} vs burn", td.name));
        }
    }

    #[test]
    fn cache_is_reused_and_grows() {
        let dev = Device::flex();
        let enc = Sinusoidal::new(4, SinusoidalLayout::Interleaved, 10000.0);
        for t in [4, 8, 3, 100] {
            let got = enc.table(0, t, &dev);
            assert_eq!(got.dims(), [t, 4]);
        }
        assert_eq!(enc.cache.len(), 1);
        let wrong = enc.add(Tensor::<3>::zeros([1, 2, 6], &dev), 0);
        assert_eq!(wrong.unwrap_err(), PositionError::WidthMismatch { expected: 4, got: 6 });
    }
}
