//! Building rows of a new table (and new head columns) from an old one: the machinery
//! shared by [`crate::resize`], [`crate::special`] and [`crate::migrate`].
//!
//! Each new row follows a [`RowPlan`]: copy an old row, average the rows of a token's pieces,
//! or draw a fresh row from a [`RowInit`]. Statistics (`μ`, `Σ`) are taken over the rows that
//! are in use: rows `0..n` of the old matrix, except the padding row.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::Rng;
use tokenizers::Tokenizer;

use crate::{EmbedError, LmHead, TokenEmbedding};

/// How a fresh row (one with no pieces to average) is drawn, for a `[V, d]` matrix of rows
/// (table rows `E[i]`, or head columns `W[:, j]` seen as rows).
#[derive(Clone, Debug, PartialEq)]
pub enum RowInit {
    /// `x ~ N(μ, eps·Σ)`: `x = μ + √eps · L z`, `z ~ N(0, I)`, `Σ = L Lᵀ` (Cholesky) the
    /// population covariance of the old rows. When `Σ` is not (numerically) positive definite,
    /// `x = μ` exactly, as Hugging Face's `mean_resizing` does; the report says so.
    MeanCov {
        /// Noise scale `ε` (Hugging Face: `1e-9`).
        eps: f64,
    },
    /// `x = μ`, the mean of the old rows. Bounds the change of the next-token distribution
    /// (Hewitt): `h·μ` is the mean of the old logits, so a new token's probability is at most
    /// about `1/V` of the old mass.
    Mean,
    /// `x ~ N(0, std² I)` (what an untrained initializer gives; dangerous for trained models).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// `x = 0` (logit 0 — for a trained model with negative logits, a large probability).
    Zeros,
}

impl Default for RowInit {
    /// [`RowInit::mean_cov`].
    fn default() -> Self {
        Self::mean_cov()
    }
}

impl RowInit {
    /// `MeanCov { eps: 1e-9 }`, Hugging Face's default (and [`RowInit::default`]).
    pub fn mean_cov() -> Self {
        Self::MeanCov { eps: 1e-9 }
    }

    /// A short name for reports: `mean_cov(eps=1e-9)`, `mean`, `normal(std=0.02)`, `zeros`.
    pub fn name(&self) -> String {
        match self {
            Self::MeanCov { eps } => format!("mean_cov(eps={eps:e})"),
            Self::Mean => "mean".into(),
            Self::Normal { std } => format!("normal(std={std})"),
            Self::Zeros => "zeros".into(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), EmbedError> {
        match *self {
            Self::MeanCov { eps } if !(eps.is_finite() && eps >= 0.0) => {
                Err(EmbedError::invalid("MeanCov eps", format!("{eps}: use a finite ε ≥ 0 (default 1e-9)")))
            }
            Self::Normal { std } if !(std.is_finite() && std >= 0.0) => {
                Err(EmbedError::invalid("Normal std", format!("{std}: use a finite std ≥ 0, e.g. 0.02")))
            }
            _ => Ok(()),
        }
    }
}

/// Where one row of the new matrix comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RowPlan {
    /// Old row `i`, bit for bit.
    Copy(usize),
    /// The mean of old rows (non-empty list, repeats count twice).
    Pieces(Vec<usize>),
    /// Drawn from the [`RowInit`].
    Fresh,
}

/// Old row ids of the pieces of `text` under `tokenizer` (no post-processor specials),
/// keeping ids `< n` and `≠ skip`. Empty when the tokenizer has nothing for the text.
pub(crate) fn pieces_of(tokenizer: &Tokenizer, text: &str, n: usize, skip: Option<usize>) -> Result<Vec<usize>, EmbedError> {
    let enc = tokenizer.encode(text, false).map_err(|e| EmbedError::Tokenizer(format!("encoding {text:?}: {e}")))?;
    Ok(enc.get_ids().iter().map(|&i| i as usize).filter(|&i| i < n && Some(i) != skip).collect())
}

/// Host copy of a float tensor as `f32` (exact for an f32 tensor).
pub(crate) fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Mean `μ [d]` and, when asked, the lower Cholesky factor `L [d, d]` (row-major) of the
/// population covariance `Σ = (1/n) Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ` of rows `0..n` of `rows [V, d]`,
/// without row `skip`. `L` is `None` when `Σ` is not numerically positive definite.
/// The sums run on the device; the `[d, d]` factorisation on the host in f64.
fn stats(rows: &Tensor<2>, n: usize, skip: Option<usize>, want_cov: bool) -> Result<(Vec<f64>, Option<Vec<f64>>), EmbedError> {
    let d = rows.dims()[1];
    let mut parts = Vec::new();
    let skip = skip.filter(|&p| p < n);
    let (a, b) = match skip {
        Some(p) => (p, p + 1),
        None => (n, n),
    };
    if a > 0 {
        parts.push(rows.clone().slice([0..a, 0..d]));
    }
    if n > b {
        parts.push(rows.clone().slice([b..n, 0..d]));
    }
    if parts.is_empty() {
        return Err(EmbedError::invalid(
            "table",
            "no rows to take statistics from (the only old row is the padding row); use RowInit::Normal or Zeros",
        ));
    }
    let x = Tensor::cat(parts, 0);
    let m = x.dims()[0] as f64;
    let mu = x.clone().mean_dim(0); // [1, d]
    let mean: Vec<f64> = mu.clone().into_data().iter::<f64>().collect();
    if !want_cov {
        return Ok((mean, None));
    }
    let xc = x - mu;
    let cov: Vec<f64> = xc.clone().transpose().matmul(xc).into_data().iter::<f64>().map(|s| s / m).collect();
    Ok((mean, cholesky(&cov, d)))
}

/// Lower Cholesky factor of a symmetric `[d, d]` matrix (row-major), or `None` when a pivot
/// is `≤ 1e-6 · max diag` (not positive definite at the precision the covariance was summed
/// in, f32 on the device: a rank-deficient `Σ`, e.g. fewer rows than dimensions, lands here).
pub(crate) fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let max_diag = (0..d).map(|i| a[i * d + i]).fold(0.0f64, f64::max);
    if !max_diag.is_finite() || max_diag <= 0.0 {
        return None;
    }
    let tol = 1e-6 * max_diag;
    let mut l = vec![0.0f64; d * d];
    for j in 0..d {
        let s: f64 = a[j * d + j] - (0..j).map(|k| l[j * d + k] * l[j * d + k]).sum::<f64>();
        if s.is_nan() || s <= tol {
            return None;
        }
        let ljj = s.sqrt();
        l[j * d + j] = ljj;
        for i in j + 1..d {
            let s: f64 = a[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            l[i * d + j] = s / ljj;
        }
    }
    Some(l)
}

/// One standard normal draw (Box–Muller on the host RNG: deterministic for a seed).
pub(crate) fn std_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Rows (and bias entries) for `plan`, from the old `rows [V, d]` and `bias [V]`.
/// Statistics come from rows `0..n_stats` without `skip`. Returns `[plan.len() · d]` row-major
/// and the new bias entries: copy → `b[i]`; pieces → mean of the pieces' `b`; fresh →
/// mean of `b` for `Mean`/`MeanCov`, `0` for `Normal`/`Zeros` (the bias is treated as one more
/// coordinate of the row, without noise). `notes` receives the MeanCov fallback, if any.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    rows: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    plan: &[RowPlan],
    n_stats: usize,
    skip: Option<usize>,
    init: &RowInit,
    rng: &mut StdRng,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<(Vec<f32>, Option<Vec<f32>>), EmbedError> {
    let d = rows.dims()[1];
    let need_host = plan.iter().any(|p| !matches!(p, RowPlan::Fresh));
    let any_fresh = plan.iter().any(|p| matches!(p, RowPlan::Fresh));
    let host: Vec<f32> = if need_host { host_f32(rows.clone()) } else { Vec::new() };
    let host_bias: Option<Vec<f32>> = bias.map(|b| host_f32(b.clone()));
    let (mean, chol) = match init {
        RowInit::MeanCov { .. } if any_fresh => stats(rows, n_stats, skip, true)?,
        RowInit::Mean if any_fresh => stats(rows, n_stats, skip, false)?,
        _ => (vec![0.0; d], None),
    };
    if let (RowInit::MeanCov { .. }, true, None) = (init, any_fresh, &chol) {
        notes.push(format!(
            "{what}: the covariance of the old rows is not positive definite (e.g. fewer rows than \
             dimensions, or a constant coordinate); fresh rows are exactly the mean μ"
        ));
    }
    let bias_mean = host_bias.as_ref().map(|b| {
        let used: Vec<f64> = (0..n_stats.min(b.len())).filter(|&i| Some(i) != skip).map(|i| b[i] as f64).collect();
        if used.is_empty() { 0.0 } else { used.iter().sum::<f64>() / used.len() as f64 }
    });
    let mut out = Vec::with_capacity(plan.len() * d);
    let mut out_bias = Vec::with_capacity(plan.len());
    let mut noise = vec![0.0f64; d];
    for p in plan {
        match p {
            RowPlan::Copy(i) => {
                out.extend_from_slice(&host[i * d..(i + 1) * d]);
                if let Some(b) = &host_bias {
                    out_bias.push(b[*i]);
                }
            }
            RowPlan::Pieces(ids) => {
                let k = ids.len() as f64;
                for c in 0..d {
                    out.push((ids.iter().map(|&i| host[i * d + c] as f64).sum::<f64>() / k) as f32);
                }
                if let Some(b) = &host_bias {
                    out_bias.push((ids.iter().map(|&i| b[i] as f64).sum::<f64>() / k) as f32);
                }
            }
            RowPlan::Fresh => {
                match init {
                    RowInit::MeanCov { eps } => match &chol {
                        Some(l) => {
                            let z: Vec<f64> = (0..d).map(|_| std_normal(rng)).collect();
                            for (r, n) in noise.iter_mut().enumerate() {
                                *n = (0..=r).map(|k| l[r * d + k] * z[k]).sum::<f64>() * eps.sqrt();
                            }
                            out.extend(mean.iter().zip(&noise).map(|(m, n)| (m + n) as f32));
                        }
                        None => out.extend(mean.iter().map(|&m| m as f32)),
                    },
                    RowInit::Mean => out.extend(mean.iter().map(|&m| m as f32)),
                    RowInit::Normal { std } => out.extend((0..d).map(|_| (std * std_normal(rng)) as f32)),
                    RowInit::Zeros => out.extend(std::iter::repeat_n(0.0f32, d)),
                }
                if host_bias.is_some() {
                    let b = match init {
                        RowInit::MeanCov { .. } | RowInit::Mean => bias_mean.unwrap_or(0.0),
                        _ => 0.0,
                    };
                    out_bias.push(b as f32);
                }
            }
        }
    }
    Ok((out, host_bias.map(|_| out_bias)))
}

/// Upload `[n, d]` host rows onto `device`.
fn upload(rows: Vec<f32>, n: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(rows, [n, d]), device)
}

/// A new `(table, head)`: rows `0..keep` of the old table (and head columns) sliced on the
/// device (bit-exact), then one row per `plan` entry. Tied heads stay tied; an untied head
/// `W [d, V]` gets the same plan applied to its own columns (as rows `Wᵀ`), and its bias too.
/// The results are new parameters (fresh `ParamId`s, no gradient history).
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    table: &TokenEmbedding,
    head: &LmHead,
    keep: usize,
    plan: &[RowPlan],
    n_stats: usize,
    init: &RowInit,
    padding_idx: Option<usize>,
    rng: &mut StdRng,
    notes: &mut Vec<String>,
) -> Result<(TokenEmbedding, LmHead), EmbedError> {
    let device = table.weight.device();
    let d = table.d_model();
    let skip = table.padding_idx();
    let total = keep + plan.len();
    let join = |old: Tensor<2>, new: Vec<f32>| -> Tensor<2> {
        let new_t = (!plan.is_empty()).then(|| upload(new, plan.len(), d, &device));
        let kept = (keep > 0).then(|| old.slice([0..keep, 0..d]));
        let out = match (kept, new_t) {
            (Some(k), Some(n)) => Tensor::cat(vec![k, n], 0),
            (Some(k), None) => k,
            (None, Some(n)) => n,
            (None, None) => unreachable!("total ≥ 1 is checked by the callers"),
        };
        out.detach()
    };
    let old = table.weight.val();
    let (new_rows, _) = build(&old, None, plan, n_stats, skip, init, rng, "table", notes)?;
    let new_table = TokenEmbedding::from_weight(join(old, new_rows), padding_idx)?;
    let new_head = match &head.untied {
        None => LmHead::tied(),
        Some(u) => {
            let w_rows = u.weight.val().transpose(); // [V, d]: row j is head column j
            if w_rows.dims()[0] != table.vocab_size() {
                return Err(EmbedError::invalid(
                    "head",
                    format!("the untied head has {} columns but the table {} rows; they must match", w_rows.dims()[0], table.vocab_size()),
                ));
            }
            let bias = u.bias.as_ref().map(|b| b.val());
            let (cols, new_bias) = build(&w_rows, bias.as_ref(), plan, n_stats, skip, init, rng, "head", notes)?;
            let w = join(w_rows, cols).transpose(); // [d, V']
            let b = match (bias, new_bias) {
                (Some(old_b), Some(nb)) => {
                    let mut parts = Vec::new();
                    if keep > 0 {
                        parts.push(old_b.narrow(0, 0, keep));
                    }
                    if !plan.is_empty() {
                        parts.push(Tensor::<1>::from_data(TensorData::new(nb, [plan.len()]), &device));
                    }
                    Some(Tensor::cat(parts, 0).detach())
                }
                _ => None,
            };
            LmHead::untied(w, b)?
        }
    };
    debug_assert_eq!(new_table.vocab_size(), total);
    Ok((new_table, new_head))
}
