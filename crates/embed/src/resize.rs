//! Vocabulary resize (Hugging Face `resize_token_embeddings`, made explicit).
//!
//! [`resize`] takes a table `E [V, d]` and its head, and returns a table `E' [V', d]`:
//!
//! - `V' = n`, or with `pad_to_multiple_of = m`, `V' = m · ⌈n / m⌉` — rounded **up**, never
//!   below the `n` asked for ([`target_rows`]). The extra rows exist but no token maps to
//!   them; they are initialized like every new row (never left as garbage).
//! - Rows `0..min(V, V')` are kept bit for bit. Growing adds rows `V..V'`, initialized by a
//!   [`NewRows`] strategy; shrinking removes rows `V'..V`.
//! - A tied head stays tied (it reads the new table). An untied head `W [d, V]` gets
//!   the same treatment column by column (strategy applied to the head's own columns), and
//!   its bias `b [V]` too: new entries are the mean of the old bias for `Mean`/`MeanCov`,
//!   the mean of the pieces' bias for `PieceAverage`, and `0` for `Normal`/`Zeros`.
//! - Shrinking below the padding row or a protected special token's id is
//!   [`EmbedError::WouldDrop`] unless [`ResizeOptions::allow_drop`] (then `padding_idx`
//!   becomes `None`).
//!
//! Statistics (`μ`, `Σ`) are over the old rows except the padding row (which is zero).
//! Why the mean (Hewitt): with `x_new = μ`, the new logit `h·μ = (1/V) Σᵢ h·Eᵢ` is the mean
//! of the old logits, so by Jensen `exp(h·μ) ≤ (1/V) Σᵢ exp(h·Eᵢ)`: each new token takes at
//! most `1/(V+1)` of the probability, and `KL(p_old ‖ p_new) = −log(1 − P_new) ≤ log(1 + k/V)`
//! for `k` new tokens. A small random row instead gets logit `≈ 0`, far above the large
//! negative logits of a trained model, and takes most of the probability.
//!
//! The new table and head are new parameters: an optimizer's state for the old ones does
//! not carry over.

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::{EmbedError, LmHead, TokenEmbedding};

pub(crate) mod rows;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use rows::RowInit;
use rows::{assemble, pieces_of, RowPlan};

/// How the rows added by a resize are initialized (each applies to table rows and, for an
/// untied head, separately to the head's columns): drawn from a [`RowInit`], or composed
/// from the pieces of the new tokens.
#[derive(Clone, Debug)]
pub enum NewRows<'a> {
    /// Every added row drawn from the [`RowInit`] (default: [`RowInit::mean_cov`]).
    Init(RowInit),
    /// Row `V + k` = mean of the old rows of the pieces of `new_tokens[k]` under `tokenizer`
    /// (the **old** tokenizer: `tokenizer.encode(new_tokens[k])`, pieces with ids `< V`,
    /// padding row excluded; a piece counted as often as it occurs). New rows without pieces
    /// (past the end of `new_tokens`, reserved by `pad_to_multiple_of`, or text the tokenizer
    /// cannot encode) get `μ` ([`RowInit::Mean`]).
    PieceAverage {
        /// The tokenizer the old table was trained with.
        tokenizer: &'a Tokenizer,
        /// Surface strings of the new tokens, in id order from `V`.
        new_tokens: Vec<String>,
    },
}

impl Default for NewRows<'_> {
    fn default() -> Self {
        Self::Init(RowInit::default())
    }
}

impl NewRows<'_> {
    /// A short name for reports: [`RowInit::name`], or `piece_average`.
    pub fn name(&self) -> String {
        match self {
            Self::Init(init) => init.name(),
            Self::PieceAverage { .. } => "piece_average".into(),
        }
    }

    /// The strategy used for rows without pieces.
    fn base(&self) -> RowInit {
        match self {
            Self::Init(init) => init.clone(),
            Self::PieceAverage { .. } => RowInit::Mean,
        }
    }
}

impl From<RowInit> for NewRows<'_> {
    fn from(init: RowInit) -> Self {
        Self::Init(init)
    }
}

/// What [`resize`] should do.
#[derive(Clone, Debug, Default)]
pub struct ResizeOptions<'a> {
    /// Rows asked for, `n`; `None` keeps the current `V` (useful with `pad_to_multiple_of`).
    pub rows: Option<usize>,
    /// Round the size up to a multiple of this (`≥ 1`).
    pub pad_to_multiple_of: Option<usize>,
    /// Initialization of the added rows.
    pub new_rows: NewRows<'a>,
    /// Special tokens `(name, id)` that a shrink must not drop.
    pub protected: Vec<(String, usize)>,
    /// Let a shrink drop the padding row and protected tokens (padding becomes `None`).
    pub allow_drop: bool,
    /// Seed of the host RNG for random strategies (same seed ⇒ same rows).
    pub seed: u64,
}

impl<'a> ResizeOptions<'a> {
    /// Resize to exactly `n` rows with the default strategy (`MeanCov`, `eps = 1e-9`), seed 0.
    pub fn to(n: usize) -> Self {
        Self { rows: Some(n), ..Default::default() }
    }
    /// Round the size up to a multiple of `m`.
    pub fn with_multiple_of(mut self, m: usize) -> Self {
        self.pad_to_multiple_of = Some(m);
        self
    }
    /// Choose the new-row strategy: a [`NewRows`], or a [`RowInit`] for every added row.
    pub fn with_new_rows(mut self, new_rows: impl Into<NewRows<'a>>) -> Self {
        self.new_rows = new_rows.into();
        self
    }
    /// Protect a special token's row against a shrink.
    pub fn with_protected(mut self, name: impl Into<String>, id: usize) -> Self {
        self.protected.push((name.into(), id));
        self
    }
    /// Allow a shrink to drop the padding row and protected tokens.
    pub fn with_allow_drop(mut self, allow: bool) -> Self {
        self.allow_drop = allow;
        self
    }
    /// Seed for the random strategies.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// What a resize did (serializable for `--json` output).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResizeReport {
    /// `V` before.
    pub old_rows: usize,
    /// `n` asked for (the old `V` when no size was given).
    pub requested_rows: usize,
    /// `V'` after (`≥ requested_rows`; larger only by `pad_to_multiple_of` rounding).
    pub new_rows: usize,
    /// Rows kept bit for bit, `min(V, V')`.
    pub kept: usize,
    /// Rows added, `max(V' − V, 0)`, reserved rows included.
    pub added: usize,
    /// Of the added rows, those only reserved by rounding up (no token maps to them).
    pub reserved: usize,
    /// Rows removed, `max(V − V', 0)`.
    pub removed: usize,
    /// Added rows built from a token's pieces (`PieceAverage` only).
    pub composed: usize,
    /// The strategy's name ([`NewRows::name`]).
    pub strategy: String,
    /// `tied`, `untied` or `untied+bias`.
    pub head: String,
    /// The padding row after the resize.
    pub padding_idx: Option<usize>,
    /// Anything to know: MeanCov fell back to the mean, rows dropped on request, …
    pub note: Option<String>,
}

/// The result of [`resize`].
#[derive(Debug)]
pub struct Resized {
    /// The new table `[V', d]`.
    pub table: TokenEmbedding,
    /// The head: tied, or untied `[d, V']` (+ bias `[V']`).
    pub head: LmHead,
    /// What happened.
    pub report: ResizeReport,
}

/// The size a resize produces: `n = rows.unwrap_or(old)`, then with `m`,
/// `m · ⌈n / m⌉` (rounds up, never below `n`). Errors for `n = 0` or `m = 0`.
pub fn target_rows(old: usize, rows: Option<usize>, pad_to_multiple_of: Option<usize>) -> Result<usize, EmbedError> {
    let n = rows.unwrap_or(old);
    if n == 0 {
        return Err(EmbedError::invalid("rows", "0: a table needs at least one row"));
    }
    match pad_to_multiple_of {
        None => Ok(n),
        Some(0) => Err(EmbedError::invalid("pad_to_multiple_of", "0: use a multiple ≥ 1 (e.g. 64), or none")),
        Some(m) => Ok(n.div_ceil(m) * m),
    }
}

/// Resize `table` (`E [V, d]`, rows = input vectors) and `head` (tied, or `W [d, V]` whose
/// columns are output vectors, + bias `[V]`) to `V'` rows/columns; see the module docs.
///
/// Errors: [`EmbedError::WouldDrop`] for a shrink past the padding row or a protected id
/// (unless `allow_drop`); [`EmbedError::Invalid`] for a zero size, a zero multiple, a bad
/// strategy parameter, more `new_tokens` than added rows, or a head that does not match the
/// table; [`EmbedError::Tokenizer`] when `PieceAverage`'s tokenizer fails.
pub fn resize(table: &TokenEmbedding, head: &LmHead, opts: &ResizeOptions<'_>) -> Result<Resized, EmbedError> {
    let old = table.vocab_size();
    let requested = opts.rows.unwrap_or(old);
    let new = target_rows(old, opts.rows, opts.pad_to_multiple_of)?;
    let base = opts.new_rows.base();
    base.check()?;
    let mut notes = Vec::new();
    let mut padding_idx = table.padding_idx();

    // Shrink checks: the largest endangered id decides `min_rows`.
    let mut endangered: Vec<(String, usize)> = opts.protected.iter().filter(|(_, id)| *id >= new).cloned().collect();
    if let Some(p) = padding_idx.filter(|&p| p >= new) {
        endangered.push(("padding".into(), p));
    }
    if let Some((role, id)) = endangered.iter().max_by_key(|(_, id)| *id).cloned() {
        if !opts.allow_drop {
            let role = if role == "padding" { role } else { format!("special token {role:?}") };
            return Err(EmbedError::WouldDrop { new_rows: new, role, id, min_rows: id + 1 });
        }
        let names: Vec<String> = endangered.iter().map(|(r, i)| format!("{r} ({i})")).collect();
        notes.push(format!("dropped on request: {}", names.join(", ")));
        if padding_idx.is_some_and(|p| p >= new) {
            padding_idx = None;
        }
    }

    let keep = old.min(new);
    let added = new.saturating_sub(old);
    let mut plan = vec![RowPlan::Fresh; added];
    let mut composed = 0;
    if let NewRows::PieceAverage { tokenizer, new_tokens } = &opts.new_rows {
        if new_tokens.len() > added {
            return Err(EmbedError::invalid(
                "new_tokens",
                format!("{} new tokens but only {added} rows are added ({old} → {new}); resize to at least {} rows", new_tokens.len(), old + new_tokens.len()),
            ));
        }
        for (k, text) in new_tokens.iter().enumerate() {
            let ids = pieces_of(tokenizer, text, old, table.padding_idx())?;
            if !ids.is_empty() {
                plan[k] = RowPlan::Pieces(ids);
                composed += 1;
            }
        }
        if composed < added {
            notes.push(format!("{} added rows have no pieces and got the mean μ", added - composed));
        }
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (table2, head2) = assemble(table, head, keep, &plan, old, &base, padding_idx, &mut rng, &mut notes)?;
    let report = ResizeReport {
        old_rows: old,
        requested_rows: requested,
        new_rows: new,
        kept: keep,
        added,
        reserved: new - requested.max(old).min(new),
        removed: old.saturating_sub(new),
        composed,
        strategy: opts.new_rows.name(),
        head: head.name().into(),
        padding_idx,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    Ok(Resized { table: table2, head: head2, report })
}
