//! [`KvCache`]: the keys and values of every layer for the tokens seen so far, so that
//! decoding one more token costs one token's forward pass (attention over the cached keys)
//! instead of recomputing the whole window.
//!
//! Per layer `k, v: [B, H, T_cached, dh]`. Keys are stored *after* the position scheme
//! rotated them (RoPE), at their absolute positions `[0, T_cached)`; the next tokens enter
//! at `offset = T_cached` (see [`TinyLm::forward_cached`](super::TinyLm::forward_cached)).
//! A cache belongs to one model, one batch and one device; [`KvCache::clear`] empties it.

use burn::tensor::Tensor;

/// The keys and values of one layer.
#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

impl LayerCache {
    /// Tokens held (`T_cached`).
    pub fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dims()[2])
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.kv.is_none()
    }

    /// The cached keys and values, `[B, H, T_cached, dh]` each (`None` when empty).
    pub fn get(&self) -> Option<(Tensor<4>, Tensor<4>)> {
        self.kv.clone()
    }

    /// Append the new tokens' keys and values `k, v: [B, H, T_new, dh]` (keys already
    /// rotated at their positions) and return all of them, `[B, H, T_cached + T_new, dh]`.
    pub fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = match self.kv.take() {
            Some((ck, cv)) => (Tensor::cat(vec![ck, k], 2), Tensor::cat(vec![cv, v], 2)),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        (k, v)
    }
}

/// One [`LayerCache`] per transformer block.
#[derive(Clone, Debug)]
pub struct KvCache {
    /// Index = block index.
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    /// An empty cache for a model of `n_layers` blocks.
    pub fn new(n_layers: usize) -> Self {
        Self { layers: vec![LayerCache::default(); n_layers] }
    }

    /// Tokens held (`T_cached`, the same in every layer): the position of the next token.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop every cached key and value (the next forward is a prefill at position 0).
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = LayerCache::default());
    }
}

/// The causal mask `[1, 1, Tq, Tk]` of cached decoding (bottom-right aligned), one
/// definition for the whole workspace.
pub use ember_kernels::causal_mask;
