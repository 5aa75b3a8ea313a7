//! [`PositionEncoding`]: one Burn module for every scheme, with the three hook points of the
//! data path as methods, so attention code never branches on the scheme:
//!
//! 1. [`add_to_embeddings`](PositionEncoding::add_to_embeddings) — `x [B, T, d]` → `x + P`
//!    (sinusoidal, learned);
//! 2. [`rotate_qk`](PositionEncoding::rotate_qk) — `q, k [B, H, T, head_dim]` rotated (RoPE);
//! 3. [`score_bias`](PositionEncoding::score_bias) — `[1, H, Tq, Tk]` added to the scores (ALiBi).
//!
//! A scheme with nothing to do at a point returns its input / `None`. All hooks take an
//! explicit `offset`: the absolute position of the first query (KV-cache decoding, sliding
//! windows). Only `learned` has parameters; computed tables are cached, never saved.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::alibi::Alibi;
use crate::learned::LearnedPositions;
use crate::none::NoPosition;
use crate::rope::Rope;
use crate::sinusoidal::Sinusoidal;
use crate::PositionError;

/// A position scheme ready to use; build it with [`crate::PositionConfig::init`].
#[derive(Module, Debug)]
pub enum PositionEncoding {
    /// NoPE.
    None(NoPosition),
    /// Sinusoids added to the embeddings.
    Sinusoidal(Sinusoidal),
    /// A trainable table added to the embeddings.
    Learned(LearnedPositions),
    /// Rotary q/k.
    Rope(Rope),
    /// Linear score biases.
    Alibi(Alibi),
}

impl PositionEncoding {
    /// The scheme's name (`none`, `sinusoidal`, `learned`, `rope`, `alibi`).
    pub fn scheme(&self) -> &'static str {
        match self {
            PositionEncoding::None(_) => "none",
            PositionEncoding::Sinusoidal(_) => "sinusoidal",
            PositionEncoding::Learned(_) => "learned",
            PositionEncoding::Rope(_) => "rope",
            PositionEncoding::Alibi(_) => "alibi",
        }
    }

    /// Hook 1. `x`: input embeddings `[B, T, d]` for positions `[offset, offset + T)`.
    /// Returns `x + P[offset .. offset + T]` (sinusoidal, learned; `P` broadcast over `B`) or
    /// `x` unchanged. Errors: learned past its table ([`PositionError::PastMaxLen`], naming
    /// `offset + T` and `max_len`), or `d` not the width the encoding was built for.
    pub fn add_to_embeddings(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, PositionError> {
        match self {
            PositionEncoding::Sinusoidal(s) => s.add(x, offset),
            PositionEncoding::Learned(l) => l.add(x, offset),
            PositionEncoding::None(_) | PositionEncoding::Rope(_) | PositionEncoding::Alibi(_) => Ok(x),
        }
    }

    /// Hook 2. `q, k`: `[B, H, T, head_dim]` at positions `[offset, offset + T)` (each tensor's
    /// own `T`). RoPE rotates them, cos/sin scaled by the attention factor; other schemes
    /// return them unchanged.
    ///
    /// # Panics
    /// For RoPE, if `head_dim` differs from `d_model / n_heads` given at `init`.
    pub fn rotate_qk(&self, q: Tensor<4>, k: Tensor<4>, offset: usize) -> (Tensor<4>, Tensor<4>) {
        match self {
            PositionEncoding::Rope(r) => r.apply_qk(q, k, offset),
            _ => (q, k),
        }
    }

    /// Whether [`Self::rotate_qk`] changes `q, k` (RoPE); when it does not, a model may read
    /// `q, k, v` straight from a fused projection without splitting them first.
    pub fn rotates_qk(&self) -> bool {
        matches!(self, PositionEncoding::Rope(_))
    }

    /// Hook 3. Additive score bias `[1, H, Tq, Tk]` for queries at `[offset, offset + Tq)` and
    /// keys at `[offset + Tq − Tk, offset + Tq)` (keys end where the queries end; `Tk ≥ Tq`
    /// with a KV cache). ALiBi: `−m_h·(i − j)` for `j ≤ i`, `−∞` above the diagonal (so it is
    /// also the causal mask; see [`crate::alibi`]). `None` for every other scheme.
    ///
    /// Build it once per forward and pass it to every layer; repeated calls with the same
    /// `(Tq, Tk)` and device return the cached tensor.
    pub fn score_bias(&self, tq: usize, tk: usize, offset: usize, device: &Device) -> Option<Tensor<4>> {
        let _ = offset; // ALiBi depends only on i − j, which the offset does not change.
        match self {
            PositionEncoding::Alibi(a) => Some(a.bias(tq, tk, device)),
            _ => None,
        }
    }

    /// Longest sequence supported: `Some(max_len)` for learned, `None` = unlimited.
    pub fn max_len(&self) -> Option<usize> {
        match self {
            PositionEncoding::Learned(l) => Some(l.max_len()),
            _ => None,
        }
    }
}
