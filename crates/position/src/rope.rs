//! Rotary position embedding (Su et al., RoFormer), applied to queries and keys.
//!
//! A head vector `x` (`head_dim` features) at position `m` has its first
//! `r = ⌊partial_rotary_factor · head_dim⌋` features rotated pairwise by angles `m·θ_i`,
//! `θ_i = inv_freq[i]` ([`crate::rope_scaling`]), and scaled by the attention factor `a`:
//! `(x_u, x_v) ↦ a·(x_u cos mθ_i − x_v sin mθ_i, x_v cos mθ_i + x_u sin mθ_i)`, with pairs
//! - interleaved (`u = 2i, v = 2i+1`; the paper, Meta's LLaMA code, GPT-J, Burn's `RotaryEncoding`);
//! - half-split (`u = i, v = i + r/2`; GPT-NeoX, HF LLaMA's `q·cos + rotate_half(q)·sin`).
//!
//! Features `r … head_dim` pass through untouched. Since `R_m` is a rotation,
//! `⟨R_m q, R_n k⟩` depends only on `n − m` (times `a²`).
//!
//! Device path: `out = x ⊙ C + swap(x) ⊙ S`, with `C[m] = a·cos(mθ)` and `S[m] = a·(∓sin mθ)`
//! tables `[T, r]` (angles in f64 on the host, cached per device, see `cache.rs`) and
//! `swap` exchanging the two members of each pair (one `flip`). Four tensor ops per tensor.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::cache::{upload, RowCache};
use crate::rope_scaling::{scaled_inv_freq, RopeFrequencies, RopeScaling};

/// Which features form a rotation pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RopeLayout {
    /// Pairs `(x[2i], x[2i+1])`.
    Interleaved,
    /// Pairs `(x[i], x[i + r/2])` (HF LLaMA / GPT-NeoX); the default, as in most checkpoints.
    /// Written `half_split`; `half-split` is read too.
    #[default]
    #[serde(alias = "half-split")]
    HalfSplit,
}

impl RopeLayout {
    /// Index pair `(u, v)` of rotation pair `i` for a rotated dimension `r`.
    pub fn pair(self, i: usize, r: usize) -> (usize, usize) {
        match self {
            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
            RopeLayout::HalfSplit => (i, i + r / 2),
        }
    }
}

/// Rotate one host vector `v` (`head_dim` values) to `position` with `freqs`: the first
/// `2 · freqs.inv_freq.len()` features rotate (scaled by the attention factor), the rest pass.
pub fn rotate_vector(v: &[f64], position: f64, freqs: &RopeFrequencies, layout: RopeLayout) -> Vec<f64> {
    let r = 2 * freqs.inv_freq.len();
    let a = freqs.attention_factor;
    let mut out = v.to_vec();
    for (i, theta) in freqs.inv_freq.iter().enumerate() {
        let (u, w) = layout.pair(i, r);
        let (s, c) = (position * theta).sin_cos();
        out[u] = a * (v[u] * c - v[w] * s);
        out[w] = a * (v[w] * c + v[u] * s);
    }
    out
}

/// RoFormer's long-range decay curve: for `q = k = 1` (all ones, `head_dim` features),
/// `decay[n] = ⟨R_0 q, R_n k⟩ / head_dim`, `n = 0 … max_distance − 1`. Equals 1 at `n = 0`
/// (times `a²` on the rotated part) and oscillates with a decaying envelope as `n` grows.
pub fn decay_curve(head_dim: usize, freqs: &RopeFrequencies, layout: RopeLayout, max_distance: usize) -> Vec<f64> {
    let ones = vec![1.0; head_dim];
    let q = rotate_vector(&ones, 0.0, freqs, layout);
    (0..max_distance)
        .map(|n| {
            let k = rotate_vector(&ones, n as f64, freqs, layout);
            q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / head_dim as f64
        })
        .collect()
}

/// Host tables `(C, S)` for positions `rows`, each row-major `[rows.len(), r]` (see module docs).
pub fn rope_tables(rows: std::ops::Range<usize>, freqs: &RopeFrequencies, layout: RopeLayout) -> (Vec<f64>, Vec<f64>) {
    let r = 2 * freqs.inv_freq.len();
    let a = freqs.attention_factor;
    let n = rows.len();
    let (mut cos, mut sin) = (vec![0.0; n * r], vec![0.0; n * r]);
    for (t, p) in rows.enumerate() {
        for (i, theta) in freqs.inv_freq.iter().enumerate() {
            let (s, c) = (p as f64 * theta).sin_cos();
            let (u, w) = layout.pair(i, r);
            cos[t * r + u] = a * c;
            cos[t * r + w] = a * c;
            sin[t * r + u] = -a * s;
            sin[t * r + w] = a * s;
        }
    }
    (cos, sin)
}

/// The RoPE scheme as a module: no parameters; frequencies from the config and a cache of
/// `cos`/`sin` rows per device.
#[derive(Module, Debug)]
pub struct Rope {
    #[module(skip)]
    layout: RopeLayout,
    #[module(skip)]
    base: f64,
    #[module(skip)]
    head_dim: usize,
    #[module(skip)]
    rot_dim: usize,
    #[module(skip)]
    scaling: RopeScaling,
    #[module(skip)]
    cache: RowCache,
}

impl Rope {
    /// RoPE over `head_dim` features of which the first `rot_dim` (even, ≥ 2) rotate.
    /// Arguments are assumed validated by [`crate::PositionConfig::validate`].
    pub fn new(layout: RopeLayout, base: f64, head_dim: usize, rot_dim: usize, scaling: RopeScaling) -> Self {
        Self { layout, base, head_dim, rot_dim, scaling, cache: RowCache::default() }
    }

    /// Features per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Rotated features per head.
    pub fn rot_dim(&self) -> usize {
        self.rot_dim
    }

    /// Frequencies used for a sequence of `seq_len` positions (differs only for dynamic NTK
    /// past its `max_position`).
    pub fn frequencies(&self, seq_len: usize) -> RopeFrequencies {
        scaled_inv_freq(self.base, self.rot_dim, &self.scaling, self.scaling.seq_len_key(seq_len))
    }

    /// `(C, S)` tables `[len, rot_dim]` for positions `[offset, offset + len)` on `device`,
    /// with the frequencies of a sequence ending at `offset + len`.
    pub fn tables(&self, offset: usize, len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let seq_len = offset + len;
        let key = self.scaling.seq_len_key(seq_len).map_or(0, |s| s as u64);
        let freqs = self.frequencies(seq_len);
        let (r, layout) = (self.rot_dim, self.layout);
        let mut t = self.cache.rows(device, key, offset..seq_len, |rows| {
            let n = rows.len();
            let (c, s) = rope_tables(rows, &freqs, layout);
            vec![upload(c, n, r, device), upload(s, n, r, device)]
        });
        let s = t.pop().expect("two tables");
        let c = t.pop().expect("two tables");
        (c, s)
    }

    /// Rotate `x [B, H, T, head_dim]` holding positions `[offset, offset + T)`.
    ///
    /// # Panics
    /// If the last axis of `x` is not `head_dim` (a programming error in the caller).
    pub fn apply(&self, x: Tensor<4>, offset: usize) -> Tensor<4> {
        let [b, h, t, hd] = x.dims();
        assert_eq!(hd, self.head_dim, "RoPE built for head_dim {} got q/k with {hd} features", self.head_dim);
        let (c, s) = self.tables(offset, t, &x.device());
        self.apply_with(x, c, s, [b, h, t])
    }

    /// Rotate `q` and `k` (same `T`) with one table lookup.
    pub fn apply_qk(&self, q: Tensor<4>, k: Tensor<4>, offset: usize) -> (Tensor<4>, Tensor<4>) {
        let [bq, hq, tq, hd] = q.dims();
        let [bk, hk, tk, hdk] = k.dims();
        assert!(hd == self.head_dim && hdk == self.head_dim, "RoPE built for head_dim {} got q/k with {hd}/{hdk} features", self.head_dim);
        if tq != tk {
            return (self.apply(q, offset), self.apply(k, offset));
        }
        let (c, s) = self.tables(offset, tq, &q.device());
        let q = self.apply_with(q, c.clone(), s.clone(), [bq, hq, tq]);
        let k = self.apply_with(k, c, s, [bk, hk, tk]);
        (q, k)
    }

    fn apply_with(&self, x: Tensor<4>, c: Tensor<2>, s: Tensor<2>, [b, h, t]: [usize; 3]) -> Tensor<4> {
        let (r, hd) = (self.rot_dim, self.head_dim);
        let (rot, pass) = if r == hd {
            (x, None)
        } else {
            (x.clone().slice([0..b, 0..h, 0..t, 0..r]), Some(x.slice([0..b, 0..h, 0..t, r..hd])))
        };
        let swapped = match self.layout {
            RopeLayout::Interleaved => rot.clone().reshape([b, h, t, r / 2, 2]).flip([4]).reshape([b, h, t, r]),
            RopeLayout::HalfSplit => rot.clone().reshape([b, h, t, 2, r / 2]).flip([3]).reshape([b, h, t, r]),
        };
        let out = rot * c.unsqueeze::<4>() + swapped * s.unsqueeze::<4>();
        match pass {
            None => out,
            Some(pass) => Tensor::cat(vec![out, pass], 3),
        }
    }
}
