//! [`PositionEncoding`]: one Burn module for every scheme, with the three hook points of the
//! data path as methods, so attention code never branches on the scheme:
//!
//! 1. [`add_to_embeddings`](PositionEncoding::add_to_embeddings) — `x [B, T, d]` → `x + P`
//!    (sinusoidal, learned);
//! 2. [`rotate_qk`](PositionEncoding::rotate_qk) — `q, k [B, H, T, head_dim]` rotated (RoPE);
//! 3. [`score_bias`](PositionEncoding::score_bias) — `[1, H, Tq, Tk]` added to the scores
//!    (ALiBi, T5, KERPLE, FIRE).
//!
//! A scheme with nothing to do at a point returns its input / `None`. All hooks take an
//! explicit `offset`: the absolute position of the first query (KV-cache decoding, sliding
//! windows). `learned`, `t5`, `kerple` and `fire` have parameters (the last three in the score
//! bias, which then needs a gradient: the fused attention gives it one); computed tables are
//! cached, never saved.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::alibi::Alibi;
use crate::fire::Fire;
use crate::kerple::Kerple;
use crate::learned::LearnedPositions;
use crate::none::NoPosition;
use crate::rope::Rope;
use crate::sinusoidal::Sinusoidal;
use crate::t5::T5Bias;
use crate::xpos::XPos;
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
    /// Learned bucket biases.
    T5(T5Bias),
    /// Learned logarithmic kernel biases.
    Kerple(Kerple),
    /// A learned function of the normalised distance.
    Fire(Fire),
    /// Rotary q/k with an exponential decay.
    Xpos(XPos),
}

impl PositionEncoding {
    /// The scheme's name (`none`, `sinusoidal`, `learned`, `rope`, `alibi`, `t5`, `kerple`,
    /// `fire`, `xpos`).
    pub fn scheme(&self) -> &'static str {
        match self {
            PositionEncoding::None(_) => "none",
            PositionEncoding::Sinusoidal(_) => "sinusoidal",
            PositionEncoding::Learned(_) => "learned",
            PositionEncoding::Rope(_) => "rope",
            PositionEncoding::Alibi(_) => "alibi",
            PositionEncoding::T5(_) => "t5",
            PositionEncoding::Kerple(_) => "kerple",
            PositionEncoding::Fire(_) => "fire",
            PositionEncoding::Xpos(_) => "xpos",
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
            _ => Ok(x),
        }
    }

    /// Hook 2. `q, k`: `[B, H, T, head_dim]` at positions `[offset, offset + T)` (each tensor's
    /// own `T`). RoPE rotates them, cos/sin scaled by the attention factor; other schemes
    /// return them unchanged. xPos rotates them as RoPE does and scales them per pair
    /// (queries by `ζ^{n/B}`, keys by `ζ^{−n/B}`).
    ///
    /// # Panics
    /// For RoPE, if `head_dim` differs from `d_model / n_heads` given at `init`.
    pub fn rotate_qk(&self, q: Tensor<4>, k: Tensor<4>, offset: usize) -> (Tensor<4>, Tensor<4>) {
        match self {
            PositionEncoding::Rope(r) => r.apply_qk(q, k, offset),
            PositionEncoding::Xpos(x) => x.apply_qk(q, k, offset),
            _ => (q, k),
        }
    }

    /// Whether [`Self::rotate_qk`] changes `q, k` (RoPE, xPos); when it does not, a model may read
    /// `q, k, v` straight from a fused projection without splitting them first.
    pub fn rotates_qk(&self) -> bool {
        matches!(self, PositionEncoding::Rope(_) | PositionEncoding::Xpos(_))
    }

    /// Hook 3. Additive score bias `[1, H, Tq, Tk]` for queries at `[offset, offset + Tq)` and
    /// keys at `[offset + Tq − Tk, offset + Tq)` (keys end where the queries end; `Tk ≥ Tq`
    /// with a KV cache). ALiBi: `−m_h·(i − j)` for `j ≤ i`, `−∞` above the diagonal (so it is
    /// also the causal mask; see [`crate::alibi`]). T5: `w[bucket(i − j), h]`; KERPLE:
    /// `−r1_h ln(1 + r2_h (i − j))`; FIRE: `f_θ(ψ(i − j)/ψ(max(L, i)))_h` — these three are
    /// computed from parameters on every call (differentiable; finite above the diagonal,
    /// where the attention's causal mask applies). `None` for every other scheme.
    ///
    /// Build it once per forward and pass it to every layer (its gradient then sums over
    /// the layers); for ALiBi repeated calls with the same `(Tq, Tk)` and device return the
    /// cached tensor.
    pub fn score_bias(&self, tq: usize, tk: usize, offset: usize, device: &Device) -> Option<Tensor<4>> {
        // ALiBi, T5 and KERPLE depend only on i − j, which the offset does not change; FIRE's
        // normalisation ψ(max(L, i)) reads the absolute query position.
        match self {
            PositionEncoding::Alibi(a) => Some(a.bias(tq, tk, device)),
            PositionEncoding::T5(t) => Some(t.bias(tq, tk, device)),
            PositionEncoding::Kerple(k) => Some(k.bias(tq, tk, device)),
            PositionEncoding::Fire(f) => Some(f.bias(tq, tk, offset, device)),
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
