//! Fused, chunked LM head + cross-entropy: the loss of `h · Wᵀ (+ b)` without ever holding
//! the `[N, V]` logits, and without autodiff keeping anything of size `[N, V]` for backward.
//!
//! ## Formulas
//!
//! `N` positions, hidden states `H [N, d]`, head rows `W [V, d]` (row `j` scores token `j`;
//! the token table itself when tied), optional bias `b [V]`, targets `y [N]`, keep weights
//! `m_n = 1{y_n ≠ ignore}` and `n = max(1, Σ m)` (exactly as in [`crate::loss`]):
//!
//! - logits `Z = H Wᵀ + b`, `P = softmax(Z)`, `Y = onehot(y)`;
//! - `L = Σ_n m_n (logsumexp(Z_n) − Z_n[y_n]) / n`;
//! - `G = M (P − Y) / n` (`M = diag(m)`), `∂L/∂H = G W`, `∂L/∂W = Gᵀ H`, `∂L/∂b = Σ_n G_n`.
//!
//! All of these split over row blocks of `H`: for a chunk `c` of `C` rows, `Z_c = H_c Wᵀ + b`
//! (`[C, V]`) gives `L_c`, `G_c`, `dH_c = G_c W` (`[C, d]`) and the contributions
//! `G_cᵀ H_c` (`[V, d]`) and `Σ G_c` (`[V]`), which are summed over chunks. At most one
//! chunk's `[C, V]` block (and a few temporaries of that size) exists at a time.
//!
//! ## How it plugs into autodiff (the surrogate)
//!
//! The chunked pass runs on the inner (non-autodiff) tensors, so nothing it does is
//! recorded. It yields the loss value `L` and the three gradients; the function then returns
//!
//! `S − sg(S) + L`, with `S = Σ H ⊙ sg(dH) + Σ W ⊙ sg(dW) + Σ b ⊙ sg(db)`,
//!
//! where `sg` stops gradients. Its value is exactly `L` (`S − S = 0` in floating point), and
//! its gradient with respect to `H`, `W` and `b` is exactly `dH`, `dW`, `db`: `backward()`
//! hands those to whatever produced `H` (the transformer body, the lookup) and `W` (the
//! table when tied, whose lookup gradient is added by autodiff as usual). The graph keeps
//! only `H`, `W`, `b` and their gradients, `O((N + V)·d)`.
//!
//! The surrogate was chosen over a backend extension (`#[backend_extension]` with its own
//! `Backward`) because it is backend-generic (flex, ndarray, wgpu, cuda with no per-backend
//! code) and costs the same matmuls: forward + backward of the plain path is `6·N·V·d`
//! FLOPs, the fused pass does three `[C, V, d]` matmuls per chunk, `6·N·V·d` in all. What it
//! gives up: the gradients are computed in the forward call, even if `backward()` is never
//! called (use it for training; on a device without autodiff only the loss is computed).
//! Measured (BENCHMARKS.md, flex): the fused head was faster than the plain one from
//! V = 8192 to 32768 and used 1/3 to 1/13 of its peak memory; a backend extension was not
//! built to compare against.
//!
//! A masked column (the padding token's) gets the logit [`PAD_LOGIT`] in every chunk, as
//! [`crate::head::LmHead::logits`] does, so it takes no probability and its row no gradient.

use burn::tensor::{IndexingUpdateOp, Int, Tensor};

use crate::loss::PAD_LOGIT;
use crate::EmbedError;

/// Logit entries per chunk the default chunk size aims at: `C·V ≈ 2²³` (32 MiB in f32).
/// Tuned on the head benchmark (BENCHMARKS.md, V = 32768, N = 4096, d = 256): each chunk
/// pays a fixed cost of order `V·d` (the passes over `W` and the `[V, d]` accumulation), so
/// small chunks are slow (C = 16: 3.5× the time of C = 256), while larger chunks add memory
/// (C = 512: +66 MiB of peak) for a time gain smaller than this machine's noise. C = 256
/// is the largest chunk that keeps the peak under 1/8 of the plain path's there.
pub const CHUNK_ELEMENTS: usize = 1 << 23;

/// The default chunk size (rows of `H` per chunk) for a vocabulary of `vocab` tokens:
/// `max(1, CHUNK_ELEMENTS / vocab)`.
pub fn default_chunk(vocab: usize) -> usize {
    (CHUNK_ELEMENTS / vocab.max(1)).max(1)
}

/// Settings of the fused loss (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedCrossEntropy {
    /// Rows of `H` per chunk (≥ 1); [`default_chunk`] by default.
    pub chunk: usize,
    /// Targets equal to this id are skipped (the padding id).
    pub ignore_index: Option<usize>,
    /// This column's logit is [`PAD_LOGIT`] (the padding token is never predicted).
    pub masked_column: Option<usize>,
}

impl FusedCrossEntropy {
    /// Chunks of `chunk` rows, nothing ignored or masked.
    pub fn new(chunk: usize) -> Self {
        Self { chunk, ignore_index: None, masked_column: None }
    }

    /// Skip targets equal to `ignore`.
    pub fn with_ignore_index(mut self, ignore: Option<usize>) -> Self {
        self.ignore_index = ignore;
        self
    }

    /// Give column `column` the logit [`PAD_LOGIT`].
    pub fn with_masked_column(mut self, column: Option<usize>) -> Self {
        self.masked_column = column;
        self
    }

    /// Mean cross-entropy of `h [N, d] · rowsᵀ [d, V] + bias [V]` against `targets [N]` (Int,
    /// in `[0, V)`), as a one-element tensor whose autodiff gradient with respect to `h`,
    /// `rows` and `bias` is the analytic one (see the module docs). Errors on mismatched
    /// shapes, a chunk of 0, a masked column outside `[0, V)` or a target outside `[0, V)`
    /// (this reads the targets back to the host).
    pub fn loss(&self, h: Tensor<2>, rows: Tensor<2>, bias: Option<Tensor<1>>, targets: Tensor<1, Int>) -> Result<Tensor<1>, EmbedError> {
        let [n, v] = self.validate(&h, &rows, bias.as_ref(), &targets)?;
        let grads = h.is_autodiff() || rows.is_autodiff();
        let inner_bias = bias.clone().map(|b| b.inner());
        let (loss, grads) = self.chunked(h.clone().inner(), rows.clone().inner(), inner_bias, targets.inner(), n, v, grads);
        let Some(g) = grads else { return Ok(loss) };
        let mut s = (h * Tensor::from_inner(g.dh)).sum() + (rows * Tensor::from_inner(g.dw)).sum();
        if let (Some(b), Some(db)) = (bias, g.db) {
            s = s + (b * Tensor::from_inner(db)).sum();
        }
        Ok(s.clone() - s.detach() + Tensor::from_inner(loss))
    }

    /// Shapes and values; returns `[N, V]`.
    fn validate(&self, h: &Tensor<2>, rows: &Tensor<2>, bias: Option<&Tensor<1>>, targets: &Tensor<1, Int>) -> Result<[usize; 2], EmbedError> {
        let ([n, d], [v, dw], [nt]) = (h.dims(), rows.dims(), targets.dims());
        if self.chunk == 0 {
            return Err(EmbedError::invalid("chunk", "must be ≥ 1 (rows of h per chunk)".to_string()));
        }
        if d != dw || v == 0 {
            return Err(EmbedError::invalid("head rows", format!("shape [{v}, {dw}] does not fit hidden states [{n}, {d}]; expected [V ≥ 1, {d}]")));
        }
        if n == 0 {
            return Err(EmbedError::invalid("hidden states", "no rows: the loss of zero positions is undefined".to_string()));
        }
        if nt != n {
            return Err(EmbedError::invalid("targets", format!("{nt} targets for {n} hidden states; give one target per row of h")));
        }
        if let Some(b) = bias {
            if b.dims()[0] != v {
                return Err(EmbedError::invalid("head bias", format!("length {} but the head has {v} rows", b.dims()[0])));
            }
        }
        if let Some(c) = self.masked_column.filter(|&c| c >= v) {
            return Err(EmbedError::invalid("masked column", format!("{c} is outside the vocabulary [0, {v})")));
        }
        let host = targets.clone().into_data().convert::<i64>();
        let ids = host.as_slice::<i64>().map_err(|e| EmbedError::invalid("targets", format!("{e:?}")))?;
        if let Some((k, y)) = ids.iter().enumerate().find(|&(_, &y)| y < 0 || y >= v as i64) {
            return Err(EmbedError::invalid("targets", format!("target {y} at position {k} is outside the vocabulary [0, {v})")));
        }
        Ok([n, v])
    }

    /// The chunked pass on inner tensors (see the module docs): the loss `[1]`, and the
    /// gradients when `grads`.
    #[allow(clippy::too_many_arguments)]
    fn chunked(&self, h: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>, targets: Tensor<1, Int>, n: usize, v: usize, grads: bool) -> (Tensor<1>, Option<Grads>) {
        let device = h.device();
        let d = h.dims()[1];
        // Per-row weights m_n / max(1, Σ m), [N, 1]: the mean over the kept targets.
        let weights = match self.ignore_index {
            None => Tensor::<2>::ones([n, 1], &device).div_scalar(n as f64),
            Some(p) => {
                let keep = targets.clone().not_equal_elem(p as i64).float().reshape([n, 1]);
                let count = keep.clone().sum().clamp_min(1.0).reshape([1, 1]);
                keep.div(count)
            }
        };
        let column = self.masked_column.map(|c| Tensor::<1, Int>::arange(0..v as i64, &device).equal_elem(c as i64).reshape([1, v]));
        let bias_row = bias.map(|b| b.reshape([1, v]));
        let wt = w.clone().transpose();
        let mut loss = Tensor::<1>::zeros([1], &device);
        let (mut dh, mut dw, mut db) = (Vec::new(), Tensor::<2>::zeros([v, d], &device), bias_row.as_ref().map(|_| Tensor::<2>::zeros([1, v], &device)));
        for start in (0..n).step_by(self.chunk) {
            let rows = start..(start + self.chunk).min(n);
            let c = rows.len();
            let hc = h.clone().slice([rows.clone()]);
            let yc = targets.clone().slice([rows.clone()]).reshape([c, 1]);
            let wc = weights.clone().slice([rows]);
            let mut z = hc.clone().matmul(wt.clone()); // [C, V]
            if let Some(b) = &bias_row {
                z = z + b.clone();
            }
            if let Some(col) = &column {
                z = z.mask_fill(col.clone().expand([c, v]), PAD_LOGIT);
            }
            let z_y = z.clone().gather(1, yc.clone()); // [C, 1]
            let max = z.clone().max_dim(1); // [C, 1]
            let e = (z - max.clone()).exp(); // [C, V]
            let sum = e.clone().sum_dim(1); // [C, 1]
            loss = loss + ((sum.clone().log() + max - z_y) * wc.clone()).sum();
            if !grads {
                continue;
            }
            // G_c = m (P − Y) / n: scale the softmax rows, then subtract the weight at y.
            let g = (e * (wc.clone() / sum)).scatter(1, yc, wc.neg(), IndexingUpdateOp::Add); // [C, V]
            dh.push(g.clone().matmul(w.clone())); // [C, d]
            db = db.map(|acc| acc + g.clone().sum_dim(0));
            dw = dw + g.transpose().matmul(hc); // [V, d]
        }
        let grads = grads.then(|| Grads { dh: Tensor::cat(dh, 0), dw, db: db.map(|b| b.reshape([v])) });
        (loss, grads)
    }
}

/// The gradients the chunked pass computes (inner tensors): `dh [N, d]`, `dw [V, d]`,
/// `db [V]` (with a bias).
struct Grads {
    dh: Tensor<2>,
    dw: Tensor<2>,
    db: Option<Tensor<1>>,
}

/// Mean cross-entropy of the head `h [N, d] · wᵀ` (`w [V, d]`: head rows; the token table
/// when tied) against `targets [N]`, skipping targets equal to `ignore_index`, computed
/// `chunk` rows at a time with the analytic gradient (see the module docs). Returns a
/// one-element tensor that plugs into autodiff like [`crate::loss::cross_entropy`] on the
/// logits would.
pub fn fused_linear_cross_entropy(h: Tensor<2>, w: Tensor<2>, targets: Tensor<1, Int>, ignore_index: Option<usize>, chunk: usize) -> Result<Tensor<1>, EmbedError> {
    FusedCrossEntropy::new(chunk).with_ignore_index(ignore_index).loss(h, w, None, targets)
}
