//! Special tokens: add pad / bos / eos / mask / user tokens to a `tokenizers` tokenizer and
//! grow the table (and head) to match.
//!
//! [`add_special_tokens`] registers the tokens with `Tokenizer::add_special_tokens` (a token
//! already known keeps its id), then builds the table `E' [V', d]` with
//! `V' = max(V, V_tok)` (rounded up to `pad_to_multiple_of`), where `V_tok = 1 + the largest
//! id the tokenizer now has`:
//!
//! - every old row is copied bit for bit — except a row that a newly added token lands on
//!   (a row reserved earlier by `pad_to_multiple_of`: its content had no token, so it is
//!   re-initialized like the other new tokens' rows);
//! - the new tokens' rows: with `pieces`, the mean of the rows of the token's pieces under
//!   the tokenizer *as it was before* (`"<|user|>"` → mean of `"<"`, `"|"`, `"user"`, …);
//!   otherwise (or when there are no pieces) drawn from [`RowInit`] over the old tokens' rows;
//! - rows past `V_tok` (reserved by rounding) are drawn from [`RowInit`] too.
//!
//! An untied head (`W [d, V]`, bias `[V]`) gets the same plan for its own columns. With
//! `set_padding_row`, the pad token's row becomes the table's padding row (zero, no gradient).
//! The returned ids are `tokenizer.token_to_id(token)`.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokenizers::{AddedToken, Tokenizer};

use crate::resize::rows::{assemble, pieces_of, RowPlan};
use crate::resize::{target_rows, ResizeReport, RowInit};
use crate::{EmbedError, LmHead, TokenEmbedding};

/// The special tokens to add (`None` = not this one).
#[derive(Clone, Debug, Default)]
pub struct SpecialTokens {
    /// Padding token, e.g. `"<pad>"`.
    pub pad: Option<String>,
    /// Beginning of sequence, e.g. `"<bos>"`.
    pub bos: Option<String>,
    /// End of sequence, e.g. `"<eos>"`.
    pub eos: Option<String>,
    /// Mask token (masked-LM), e.g. `"<mask>"`.
    pub mask: Option<String>,
    /// Any other special tokens, e.g. `"<|user|>"`.
    pub user: Vec<String>,
}

impl SpecialTokens {
    /// `<pad>`, `<bos>`, `<eos>` (no mask, no user tokens).
    pub fn pad_bos_eos() -> Self {
        Self { pad: Some("<pad>".into()), bos: Some("<bos>".into()), eos: Some("<eos>".into()), ..Default::default() }
    }

    /// All tokens in order: pad, bos, eos, mask, then user tokens, with their roles.
    fn all(&self) -> Vec<(String, String)> {
        let named = [("pad", &self.pad), ("bos", &self.bos), ("eos", &self.eos), ("mask", &self.mask)];
        let mut out: Vec<(String, String)> = named.iter().filter_map(|(r, t)| t.as_ref().map(|t| (r.to_string(), t.clone()))).collect();
        out.extend(self.user.iter().map(|t| ("user".to_string(), t.clone())));
        out
    }
}

/// How [`add_special_tokens`] initializes rows.
#[derive(Clone, Debug)]
pub struct SpecialOptions {
    /// For rows without pieces (or all new rows when `pieces` is false). Default
    /// `MeanCov { eps: 1e-9 }`.
    pub init: RowInit,
    /// Compose each new token's row from its pieces under the old tokenizer.
    pub pieces: bool,
    /// Make the pad token's row the table's padding row.
    pub set_padding_row: bool,
    /// Round the table size up to a multiple of this.
    pub pad_to_multiple_of: Option<usize>,
    /// Seed of the host RNG.
    pub seed: u64,
}

impl Default for SpecialOptions {
    fn default() -> Self {
        Self { init: RowInit::mean_cov(), pieces: false, set_padding_row: true, pad_to_multiple_of: None, seed: 0 }
    }
}

/// Ids of the special tokens (equal to `tokenizer.token_to_id(token)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SpecialIds {
    /// Pad token id.
    pub pad: Option<u32>,
    /// Bos token id.
    pub bos: Option<u32>,
    /// Eos token id.
    pub eos: Option<u32>,
    /// Mask token id.
    pub mask: Option<u32>,
    /// User tokens and their ids, in the order given.
    pub user: Vec<(String, u32)>,
}

/// What [`add_special_tokens`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpecialReport {
    /// The ids.
    pub ids: SpecialIds,
    /// Tokens the tokenizer did not know before.
    pub newly_added: Vec<String>,
    /// New tokens whose id fell on an existing (reserved) row, which was re-initialized.
    pub reinitialized_rows: Vec<usize>,
    /// The table change (`kept` = rows copied, `added` = rows appended, `composed` = new
    /// tokens built from pieces).
    pub resize: ResizeReport,
}

/// One more than the largest id of `tokenizer` (added tokens included); 0 when empty.
pub fn tokenizer_rows(tokenizer: &Tokenizer) -> usize {
    tokenizer.get_vocab(true).values().map(|&i| i as usize + 1).max().unwrap_or(0)
}

/// Add `specials` to `tokenizer` and grow `table` (`[V, d]`, input rows) and `head` (tied, or
/// `W [d, V]` columns + bias `[V]`) to the tokenizer's new size; see the module docs.
/// Returns the new table `[V', d]`, head, and a report with the ids.
///
/// Errors: the table has fewer rows than the tokenizer has tokens (they do not belong
/// together); a tokenizer failure; the errors of [`crate::resize::resize`].
pub fn add_special_tokens(
    tokenizer: &mut Tokenizer,
    table: &TokenEmbedding,
    head: &LmHead,
    specials: &SpecialTokens,
    opts: &SpecialOptions,
) -> Result<(TokenEmbedding, LmHead, SpecialReport), EmbedError> {
    opts.init.check()?;
    let rows = table.vocab_size();
    let tok_rows = tokenizer_rows(tokenizer);
    if tok_rows > rows {
        return Err(EmbedError::invalid(
            "table",
            format!("the tokenizer has ids up to {} but the table only {rows} rows; resize the table to at least {tok_rows} rows first, or use the matching tokenizer", tok_rows - 1),
        ));
    }
    let all = specials.all();
    if all.is_empty() {
        return Err(EmbedError::invalid("specials", "no tokens given; set pad, bos, eos, mask or user"));
    }
    let before = tokenizer.clone();
    let newly_added: Vec<String> = all.iter().map(|(_, t)| t.clone()).filter(|t| before.token_to_id(t).is_none()).collect();
    tokenizer
        .add_special_tokens(all.iter().map(|(_, t)| AddedToken::from(t.clone(), true)))
        .map_err(|e| EmbedError::Tokenizer(format!("adding special tokens: {e}")))?;
    let id_of = |t: &str| -> Result<u32, EmbedError> {
        tokenizer.token_to_id(t).ok_or_else(|| EmbedError::Tokenizer(format!("{t:?} has no id after adding it")))
    };
    let mut ids = SpecialIds::default();
    for (role, t) in &all {
        let id = id_of(t)?;
        match role.as_str() {
            "pad" => ids.pad = Some(id),
            "bos" => ids.bos = Some(id),
            "eos" => ids.eos = Some(id),
            "mask" => ids.mask = Some(id),
            _ => ids.user.push((t.clone(), id)),
        }
    }
    // Rows of the newly added tokens, and their text.
    let new_rows: BTreeMap<usize, &String> = newly_added.iter().map(|t| Ok((id_of(t)? as usize, t))).collect::<Result<_, EmbedError>>()?;
    let new_tok_rows = tokenizer_rows(tokenizer);
    let total = target_rows(rows, Some(rows.max(new_tok_rows)), opts.pad_to_multiple_of)?;
    let old_pad = table.padding_idx();
    let mut plan = Vec::with_capacity(total);
    let mut composed = 0;
    for i in 0..total {
        plan.push(match new_rows.get(&i) {
            Some(text) => {
                let pieces = if opts.pieces { pieces_of(&before, text, tok_rows, old_pad)? } else { Vec::new() };
                if pieces.is_empty() {
                    RowPlan::Fresh
                } else {
                    composed += 1;
                    RowPlan::Pieces(pieces)
                }
            }
            None if i < rows => RowPlan::Copy(i),
            None => RowPlan::Fresh,
        });
    }
    let reinitialized_rows: Vec<usize> = new_rows.keys().copied().filter(|&i| i < rows).collect();
    let mut notes = Vec::new();
    let padding_idx = match (opts.set_padding_row, ids.pad) {
        (true, Some(p)) => {
            if old_pad.is_some_and(|o| o != p as usize) {
                notes.push(format!("padding row moved from {} to {p}", old_pad.unwrap()));
            }
            Some(p as usize)
        }
        _ => old_pad,
    };
    if !reinitialized_rows.is_empty() {
        notes.push(format!("rows {reinitialized_rows:?} were reserved (no token) and now hold new tokens: re-initialized"));
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let stats_rows = tok_rows.max(1).min(rows);
    let (table2, head2) = assemble(table, head, 0, &plan, stats_rows, &opts.init, padding_idx, &mut rng, &mut notes)?;
    let copied = plan.iter().filter(|p| matches!(p, RowPlan::Copy(_))).count();
    let resize = ResizeReport {
        old_rows: rows,
        requested_rows: rows.max(new_tok_rows),
        new_rows: total,
        kept: copied,
        added: total - rows,
        reserved: total - rows.max(new_tok_rows),
        removed: 0,
        composed,
        strategy: if opts.pieces { format!("pieces, else {}", opts.init.name()) } else { opts.init.name() },
        head: head.name().into(),
        padding_idx,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    Ok((table2, head2, SpecialReport { ids, newly_added, reinitialized_rows, resize }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::rows::host_f32;
    use crate::resize::testkit::bpe;
    use crate::resize::{resize, ResizeOptions};
    use burn::tensor::{Tensor, TensorData};
    use ember_testing::test_devices;

    fn table(v: usize, d: usize, dev: &burn::tensor::Device) -> TokenEmbedding {
        let data = TensorData::new((0..v * d).map(|i| ((i * 7919 % 211) as f32 - 105.0) / 70.0).collect::<Vec<_>>(), [v, d]);
        TokenEmbedding::from_weight(Tensor::from_data(data, dev), None).unwrap()
    }

    #[test]
    fn special_ids_agree_with_tokenizer_and_table_grows() {
        let base = bpe(300, true);
        let d = 6;
        for td in test_devices() {
            let mut tok = base.clone();
            let t = table(300, d, &td.device);
            let mut specials = SpecialTokens::pad_bos_eos();
            specials.user.push("<|user|>".into());
            let opts = SpecialOptions { init: RowInit::Mean, ..Default::default() };
            let (t2, head, rep) = add_special_tokens(&mut tok, &t, &LmHead::tied(), &specials, &opts).unwrap();
            assert_eq!(tok.get_vocab_size(true), 304);
            assert_eq!(t2.vocab_size(), 304, "{}", td.name);
            assert_eq!(rep.ids.pad, tok.token_to_id("<pad>"));
            assert_eq!(rep.ids.eos, tok.token_to_id("<eos>"));
            assert_eq!(rep.ids.user, vec![("<|user|>".to_string(), tok.token_to_id("<|user|>").unwrap())]);
            let mut all = vec![rep.ids.pad.unwrap(), rep.ids.bos.unwrap(), rep.ids.eos.unwrap(), rep.ids.user[0].1];
            all.sort();
            assert_eq!(all, vec![300, 301, 302, 303]);
            assert!(head.is_tied());
            assert_eq!(t2.padding_idx(), Some(rep.ids.pad.unwrap() as usize), "{}", td.name);
            // The encoder now emits the new ids, and they index the table.
            let enc = tok.encode("<bos>To be<eos>", false).unwrap();
            assert_eq!(enc.get_ids().first().copied(), rep.ids.bos);
            assert_eq!(enc.get_ids().last().copied(), rep.ids.eos);
            assert!(t2.ids_tensor(enc.get_ids(), 1, enc.len()).is_ok());
            // Old rows copied bit for bit; pad row zero; the others = μ.
            let w = host_f32(t2.weight.val());
            assert_eq!(w[..300 * d].to_vec(), host_f32(t.weight.val()), "{}", td.name);
            let p = rep.ids.pad.unwrap() as usize;
            assert_eq!(w[p * d..(p + 1) * d].to_vec(), vec![0.0; d]);
            let eos = rep.ids.eos.unwrap() as usize;
            let old = host_f32(t.weight.val());
            for c in 0..d {
                let mu = (0..300).map(|i| old[i * d + c] as f64).sum::<f64>() / 300.0;
                assert!((w[eos * d + c] as f64 - mu).abs() < 1e-5, "{}", td.name);
            }
            assert_eq!((rep.resize.kept, rep.resize.added), (300, 4));
            // Adding a known token again changes nothing.
            let (t3, _, rep2) = add_special_tokens(&mut tok, &t2, &head, &SpecialTokens { eos: Some("<eos>".into()), ..Default::default() }, &opts).unwrap();
            assert!(rep2.newly_added.is_empty());
            assert_eq!(host_f32(t3.weight.val()), w);
        }
    }

    #[test]
    fn pieces_and_reserved_rows_and_untied_head() {
        let mut tok = bpe(300, true);
        let dev = burn::tensor::Device::flex();
        let d = 4;
        // A table padded to 320 rows earlier: rows 300..320 are reserved.
        let t = table(300, d, &dev);
        let w = Tensor::<2>::from_data(TensorData::new((0..d * 300).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), [d, 300]), &dev);
        let head = LmHead::untied(w, Some(Tensor::<1>::zeros([300], &dev))).unwrap();
        let r = resize(&t, &head, &ResizeOptions::to(300).with_multiple_of(64).with_new_rows(RowInit::Zeros)).unwrap();
        assert_eq!(r.table.vocab_size(), 320);
        let before = tok.clone();
        let specials = SpecialTokens { user: vec!["<|user|>".into()], ..Default::default() };
        let opts = SpecialOptions { pieces: true, pad_to_multiple_of: Some(64), ..Default::default() };
        let (t2, h2, rep) = add_special_tokens(&mut tok, &r.table, &r.head, &specials, &opts).unwrap();
        let id = rep.ids.user[0].1 as usize;
        assert_eq!((id, t2.vocab_size(), rep.reinitialized_rows.clone()), (300, 320, vec![300]));
        assert_eq!(rep.resize.composed, 1);
        let pieces: Vec<usize> = before.encode("<|user|>", false).unwrap().get_ids().iter().map(|&i| i as usize).collect();
        assert!(pieces.len() >= 2);
        let old = host_f32(r.table.weight.val());
        let got = host_f32(t2.weight.val());
        for c in 0..d {
            let want = pieces.iter().map(|&i| old[i * d + c] as f64).sum::<f64>() / pieces.len() as f64;
            assert!((got[id * d + c] as f64 - want).abs() < 1e-6);
        }
        let cols = host_f32(h2.untied.as_ref().unwrap().weight.val().transpose());
        let old_cols = host_f32(r.head.untied.as_ref().unwrap().weight.val().transpose());
        for c in 0..d {
            let want = pieces.iter().map(|&i| old_cols[i * d + c] as f64).sum::<f64>() / pieces.len() as f64;
            assert!((cols[id * d + c] as f64 - want).abs() < 1e-6, "head column from the same pieces");
        }
        assert_eq!(got[..300 * d], old[..300 * d]);
        // A table smaller than the tokenizer is refused with advice.
        let small = table(100, d, &dev);
        let err = add_special_tokens(&mut tok, &small, &LmHead::tied(), &specials, &opts).unwrap_err().to_string();
        assert!(err.contains("resize the table"), "{err}");
    }
}
