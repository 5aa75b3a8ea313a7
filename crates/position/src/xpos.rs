//! xPos (Sun et al. 2022, "A Length-Extrapolatable Transformer"): RoPE plus a per-feature
//! exponential scale that makes attention decay with distance.
//!
//! For rotation pair `m = 0 … d/2 − 1` of a head with `d` features,
//! `ζ_m = (2m/d + γ) / (1 + γ)` (`γ = 0.4` in the paper), and at position `n` the rotated
//! query is scaled by `ζ_m^{n/B}` and the rotated key by `ζ_m^{−n/B}` (`B` = `scale_base`,
//! 512 in the paper):
//!
//! ```text
//! q̃_n = (R_n q) ⊙ ζ^{n/B},   k̃_n = (R_n k) ⊙ ζ^{−n/B}
//! ⟨q̃_n, k̃_m⟩ = Σ_pairs ζ_m^{(n−m)/B} · (rotated pair product)       (depends on n − m only)
//! ```
//!
//! Since `ζ_m < 1`, pairs with low `m` (fast rotation) decay fastest with distance. Both
//! members of a pair get the same scale, so [`crate::RopeLayout`] decides which features
//! those are. Positions are absolute (the paper's code centres them per call, which changes
//! nothing in the product but would break a KV cache): at position `n` the factor is
//! `ζ^{±n/B}`, finite in f32 while `n/B · ln(1/ζ_min) < 88`, i.e. `n < 70 · B` (35 840 at
//! `B = 512`). No parameters.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::cache::{upload, RowCache};
use crate::rope::{Rope, RopeLayout};
use crate::rope_scaling::RopeScaling;

/// `ζ_m = (2m/d + γ) / (1 + γ)` for the `d/2` rotation pairs of `head_dim = d` features.
pub fn zeta(head_dim: usize, gamma: f64) -> Vec<f64> {
    (0..head_dim / 2).map(|m| (2.0 * m as f64 / head_dim as f64 + gamma) / (1.0 + gamma)).collect()
}

/// Host table `[rows.len(), head_dim]` row-major of `ζ_{pair(f)}^{sign · n / B}` for positions `n`.
pub fn scale_table(rows: std::ops::Range<usize>, head_dim: usize, gamma: f64, scale_base: f64, layout: RopeLayout, sign: f64) -> Vec<f64> {
    let z = zeta(head_dim, gamma);
    let mut out = vec![0.0; rows.len() * head_dim];
    for (t, n) in rows.enumerate() {
        for (m, zm) in z.iter().enumerate() {
            let s = zm.powf(sign * n as f64 / scale_base);
            let (u, v) = layout.pair(m, head_dim);
            out[t * head_dim + u] = s;
            out[t * head_dim + v] = s;
        }
    }
    out
}

/// RoPE over the whole head plus the xPos scale.
#[derive(Module, Debug)]
pub struct XPos {
    rope: Rope,
    #[module(skip)]
    gamma: f64,
    #[module(skip)]
    scale_base: f64,
    #[module(skip)]
    layout: RopeLayout,
    #[module(skip)]
    cache: RowCache,
}

impl XPos {
    /// xPos for heads of `head_dim` (even) features (settings checked by the config).
    pub fn new(layout: RopeLayout, base: f64, head_dim: usize, gamma: f64, scale_base: f64) -> Self {
        Self { rope: Rope::new(layout, base, head_dim, head_dim, RopeScaling::None {}), gamma, scale_base, layout, cache: RowCache::default() }
    }

    /// `(query scale, key scale)` tables `[T, head_dim]` for positions `[offset, offset + T)`.
    pub fn scales(&self, offset: usize, len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let (hd, gamma, base, layout) = (self.rope.head_dim(), self.gamma, self.scale_base, self.layout);
        let mut t = self.cache.rows(device, 0, offset..offset + len, |rows| {
            let n = rows.len();
            let q = scale_table(rows.clone(), hd, gamma, base, layout, 1.0);
            let k = scale_table(rows, hd, gamma, base, layout, -1.0);
            vec![upload(q, n, hd, device), upload(k, n, hd, device)]
        });
        let k = t.pop().expect("two tables");
        let q = t.pop().expect("two tables");
        (q, k)
    }

    /// Rotate and scale `q, k [B, H, T, head_dim]` at positions `[offset, offset + T)` (each
    /// its own `T`, both starting at `offset`).
    ///
    /// # Panics
    /// If the last axis is not `head_dim` (a programming error in the caller).
    pub fn apply_qk(&self, q: Tensor<4>, k: Tensor<4>, offset: usize) -> (Tensor<4>, Tensor<4>) {
        let (tq, tk) = (q.dims()[2], k.dims()[2]);
        let (sq, sk) = self.scales(offset, tq.max(tk), &q.device());
        let (q, k) = self.rope.apply_qk(q, k, offset);
        (q * sq.slice([0..tq]).unsqueeze::<4>(), k * sk.slice([0..tk]).unsqueeze::<4>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rope::rotate_vector;
    use crate::rope_scaling::scaled_inv_freq;
    use burn::tensor::TensorData;

    #[test]
    fn zeta_matches_the_paper_and_torchscale_form() {
        // torchscale: (arange(0, d, 2) + 0.4·d) / (1.4·d)
        let d = 8;
        let want: Vec<f64> = (0..d).step_by(2).map(|i| (i as f64 + 0.4 * d as f64) / (1.4 * d as f64)).collect();
        for (a, b) in zeta(d, 0.4).iter().zip(&want) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn scores_decay_by_zeta_to_the_distance_and_match_host_rotation() {
        let device = Device::flex();
        let (hd, base, sb) = (8, 10000.0, 4.0);
        for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
            let x = XPos::new(layout, base, hd, 0.4, sb);
            let qv: Vec<f64> = (0..hd).map(|f| 0.3 + 0.1 * f as f64).collect();
            let kv: Vec<f64> = (0..hd).map(|f| 1.0 - 0.07 * f as f64).collect();
            let t = 6;
            let tile = |v: &[f64]| Tensor::<4>::from_data(TensorData::new((0..t).flat_map(|_| v.iter().map(|&a| a as f32)).collect::<Vec<_>>(), [1, 1, t, hd]), &device);
            let (q, k) = x.apply_qk(tile(&qv), tile(&kv), 3);
            let (q, k) = (q.into_data().try_to_vec::<f32>().unwrap(), k.into_data().try_to_vec::<f32>().unwrap());
            let freqs = scaled_inv_freq(base, hd, &RopeScaling::None {}, None);
            let z = zeta(hd, 0.4);
            for n in 0..t {
                for m in 0..t {
                    let (pn, pm) = ((3 + n) as f64, (3 + m) as f64);
                    let (rq, rk) = (rotate_vector(&qv, pn, &freqs, layout), rotate_vector(&kv, pm, &freqs, layout));
                    let want: f64 = (0..hd / 2)
                        .map(|i| {
                            let (u, v) = layout.pair(i, hd);
                            z[i].powf((pn - pm) / sb) * (rq[u] * rk[u] + rq[v] * rk[v])
                        })
                        .sum();
                    let got: f64 = (0..hd).map(|f| q[n * hd + f] as f64 * k[m * hd + f] as f64).sum();
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{layout:?} n {n} m {m}: {got} vs {want}");
                }
            }
        }
    }
}
