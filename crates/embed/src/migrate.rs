//! Migration of a trained table across tokenizers.
//!
//! Given `E_A [V_A, d]` trained with tokenizer A and a new tokenizer B, [`migrate`] builds
//! `E_B [V_B, d]` (`V_B` = 1 + B's largest id, added tokens included), row by row:
//!
//! - **copied**: B's token string `s` is also A's token (`A.token_to_id(s) = i < V_A`):
//!   `E_B[j] = E_A[i]` bit for bit. Strings are compared as the tokenizers spell them, so
//!   this assumes both use the same pre-tokenizer alphabet (e.g. both byte-level, `Ġ` = space);
//! - **composed**: otherwise B's token is decoded to its surface text (`B.decode([j])`, so
//!   byte-level `Ġthe` becomes `" the"`), the text is encoded with A (no added specials),
//!   and `E_B[j] = (1/k) Σ E_A[pieceₘ]` over its `k` pieces (ids `< V_A`, padding excluded).
//!   A token whose bytes are not valid UTF-8 alone (part of a multi-byte character) decodes
//!   to `�`; its raw token string is then run through A's *model* instead (right when both
//!   are byte-level). Note: an A that adds a prefix space (`add_prefix_space`) sees
//!   `"the"` as `" the"`;
//! - **fresh**: no pieces (text A cannot encode, or an id B does not use): drawn from the
//!   fallback [`RowInit`] over A's rows.
//!
//! An untied head (`W [d, V_A]` + bias) is migrated with the same plan on its own columns.
//! A's padding row maps to B's id of the same token string, if B has it.

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokenizers::{Model, Tokenizer};

use crate::resize::rows::{assemble, pieces_of, RowPlan};
use crate::resize::RowInit;
use crate::special::tokenizer_rows;
use crate::{EmbedError, LmHead, TokenEmbedding};

/// Options of [`migrate`].
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// For rows with neither a shared token nor pieces. Default `MeanCov { eps: 1e-9 }`.
    pub fallback: RowInit,
    /// How many examples of each kind the report lists.
    pub examples: usize,
    /// Seed of the host RNG.
    pub seed: u64,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self { fallback: RowInit::mean_cov(), examples: 5, seed: 0 }
    }
}

/// One migrated row, for the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationExample {
    /// Id in B.
    pub id: usize,
    /// B's token string.
    pub token: String,
    /// `copied`, `composed` or `fresh`.
    pub kind: String,
    /// A's tokens the row came from (one for copied, the pieces for composed, none for fresh).
    pub from: Vec<String>,
}

/// What [`migrate`] did. `copied + composed + fresh = rows_b`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationReport {
    /// `V_A`.
    pub rows_a: usize,
    /// `V_B`.
    pub rows_b: usize,
    /// Rows copied from A's row of the same token.
    pub copied: usize,
    /// Rows composed as the mean of A's piece rows.
    pub composed: usize,
    /// Rows from the fallback.
    pub fresh: usize,
    /// The fallback's name.
    pub fallback: String,
    /// `tied`, `untied` or `untied+bias`.
    pub head: String,
    /// B's padding row.
    pub padding_idx: Option<usize>,
    /// Up to `examples` rows of each kind.
    pub examples: Vec<MigrationExample>,
    /// Anything to know (MeanCov fallback, padding row lost).
    pub note: Option<String>,
}

/// The result of [`migrate`].
#[derive(Debug)]
pub struct Migrated {
    /// B's table `[V_B, d]`.
    pub table: TokenEmbedding,
    /// B's head: tied, or untied `[d, V_B]` (+ bias `[V_B]`).
    pub head: LmHead,
    /// What happened.
    pub report: MigrationReport,
}

/// Where B's token `id` comes from in A (see the module docs).
fn plan_row(a: &Tokenizer, b: &Tokenizer, id: u32, rows_a: usize, pad_a: Option<usize>) -> Result<RowPlan, EmbedError> {
    let Some(token) = b.id_to_token(id) else { return Ok(RowPlan::Fresh) };
    if let Some(i) = a.token_to_id(&token).map(|i| i as usize).filter(|&i| i < rows_a) {
        return Ok(RowPlan::Copy(i));
    }
    let text = b.decode(&[id], false).map_err(|e| EmbedError::Tokenizer(format!("decoding B's token {id} ({token:?}): {e}")))?;
    let pieces: Vec<usize> = if text.contains('\u{FFFD}') && !token.contains('\u{FFFD}') {
        let toks = a.get_model().tokenize(&token).map_err(|e| EmbedError::Tokenizer(format!("{token:?} with A's model: {e}")))?;
        toks.iter().map(|t| t.id as usize).filter(|&i| i < rows_a && Some(i) != pad_a).collect()
    } else {
        pieces_of(a, &text, rows_a, pad_a)?
    };
    Ok(if pieces.is_empty() { RowPlan::Fresh } else { RowPlan::Pieces(pieces) })
}

/// Build B's table and head from A's: `table_a` `[V_A, d]` (input rows, trained with
/// `tok_a`), `head_a` (tied, or `W [d, V_A]` columns + bias `[V_A]`), and `tok_b`.
/// Returns `E_B [V_B, d]`, B's head, and the report; see the module docs.
///
/// Errors: `tok_a` has ids beyond the table (the table was not trained with it), B is empty,
/// a tokenizer failure, or a bad fallback parameter.
pub fn migrate(table_a: &TokenEmbedding, head_a: &LmHead, tok_a: &Tokenizer, tok_b: &Tokenizer, opts: &MigrateOptions) -> Result<Migrated, EmbedError> {
    opts.fallback.check()?;
    let rows_a = table_a.vocab_size();
    let tok_rows_a = tokenizer_rows(tok_a);
    if tok_rows_a > rows_a {
        return Err(EmbedError::invalid(
            "tokenizer A",
            format!("it has ids up to {} but the table only {rows_a} rows; pass the tokenizer the table was trained with", tok_rows_a - 1),
        ));
    }
    let rows_b = tokenizer_rows(tok_b);
    if rows_b == 0 {
        return Err(EmbedError::invalid("tokenizer B", "it has no tokens; train or load it first"));
    }
    let pad_a = table_a.padding_idx();
    let plan = (0..rows_b as u32).map(|id| plan_row(tok_a, tok_b, id, rows_a, pad_a)).collect::<Result<Vec<_>, _>>()?;

    let mut notes = Vec::new();
    let padding_idx = match pad_a {
        None => None,
        Some(p) => {
            let b_pad = tok_a.id_to_token(p as u32).and_then(|t| tok_b.token_to_id(&t)).map(|i| i as usize);
            if b_pad.is_none() {
                notes.push(format!("A's padding row {p} has no token in B: B's table has no padding row"));
            }
            b_pad
        }
    };
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (table, head) = assemble(table_a, head_a, 0, &plan, rows_a, &opts.fallback, padding_idx, &mut rng, &mut notes)?;

    let name = |t: &Tokenizer, i: usize| t.id_to_token(i as u32).unwrap_or_default();
    let mut examples = Vec::new();
    for kind in ["copied", "composed", "fresh"] {
        let rows = plan.iter().enumerate().filter(|(_, p)| {
            matches!((kind, p), ("copied", RowPlan::Copy(_)) | ("composed", RowPlan::Pieces(_)) | ("fresh", RowPlan::Fresh))
        });
        for (id, p) in rows.take(opts.examples) {
            let from = match p {
                RowPlan::Copy(i) => vec![name(tok_a, *i)],
                RowPlan::Pieces(ids) => ids.iter().map(|&i| name(tok_a, i)).collect(),
                RowPlan::Fresh => Vec::new(),
            };
            examples.push(MigrationExample { id, token: name(tok_b, id), kind: kind.into(), from });
        }
    }
    let count = |f: fn(&RowPlan) -> bool| plan.iter().filter(|p| f(p)).count();
    let report = MigrationReport {
        rows_a,
        rows_b,
        copied: count(|p| matches!(p, RowPlan::Copy(_))),
        composed: count(|p| matches!(p, RowPlan::Pieces(_))),
        fresh: count(|p| matches!(p, RowPlan::Fresh)),
        fallback: opts.fallback.name(),
        head: head_a.name().into(),
        padding_idx,
        examples,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    Ok(Migrated { table, head, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::rows::host_f32;
    use crate::resize::testkit::bpe;
    use burn::tensor::{Device, Tensor, TensorData};
    use ember_testing::flex_and_wgpu;

    fn data(r: usize, c: usize, k: usize) -> TensorData {
        TensorData::new((0..r * c).map(|i| (((i * k) % 997) as f32 - 498.0) / 300.0).collect::<Vec<_>>(), [r, c])
    }

    #[test]
    fn migration_copies_shared_rows_and_composes_new_ones() {
        // A: only the bytes seen in the corpus + merges; B: all 256 bytes + more merges.
        let (tok_a, tok_b) = (bpe(300, false), bpe(700, true));
        let (rows_a, d) = (tokenizer_rows(&tok_a), 6);
        assert_eq!(tokenizer_rows(&tok_b), 700);
        for td in flex_and_wgpu() {
            let table_a = TokenEmbedding::from_weight(Tensor::from_data(data(rows_a, d, 31), &td.device), None).unwrap();
            let w = Tensor::<2>::from_data(data(d, rows_a, 17), &td.device);
            let bias = Tensor::<1>::from_data(TensorData::new((0..rows_a).map(|i| i as f32 / 100.0).collect::<Vec<_>>(), [rows_a]), &td.device);
            let head_a = LmHead::untied(w, Some(bias)).unwrap();
            let opts = MigrateOptions { fallback: RowInit::Mean, ..Default::default() };
            let m = migrate(&table_a, &head_a, &tok_a, &tok_b, &opts).unwrap();
            let r = &m.report;
            assert_eq!(r.copied + r.composed + r.fresh, 700, "{r:?}");
            assert_eq!(m.table.vocab_size(), 700);
            assert!(r.copied > 250 && r.composed > 150 && r.fresh > 100, "{}: {r:?}", td.name);
            let a = host_f32(table_a.weight.val());
            let b = host_f32(m.table.weight.val());
            let a_cols = host_f32(head_a.untied.as_ref().unwrap().weight.val().transpose());
            let b_cols = host_f32(m.head.untied.as_ref().unwrap().weight.val().transpose());
            let a_bias = host_f32(head_a.untied.as_ref().unwrap().bias.as_ref().unwrap().val());
            let b_bias = host_f32(m.head.untied.as_ref().unwrap().bias.as_ref().unwrap().val());
            let mu: Vec<f64> = (0..d).map(|c| (0..rows_a).map(|i| a[i * d + c] as f64).sum::<f64>() / rows_a as f64).collect();
            let (mut copied, mut composed) = (0, 0);
            for j in 0..700u32 {
                let jb = j as usize;
                let tok = tok_b.id_to_token(j).unwrap();
                let row = &b[jb * d..(jb + 1) * d];
                if let Some(i) = tok_a.token_to_id(&tok) {
                    let i = i as usize;
                    assert_eq!(row, &a[i * d..(i + 1) * d], "{tok:?}: copied bit for bit");
                    assert_eq!(&b_cols[jb * d..(jb + 1) * d], &a_cols[i * d..(i + 1) * d]);
                    assert_eq!(b_bias[jb], a_bias[i]);
                    copied += 1;
                    continue;
                }
                let text = tok_b.decode(&[j], false).unwrap();
                let ids: Vec<usize> = if text.contains('\u{FFFD}') { Vec::new() } else { tok_a.encode(text.as_str(), false).unwrap().get_ids().iter().map(|&i| i as usize).collect() };
                if !ids.is_empty() {
                    composed += 1;
                    for c in 0..d {
                        let want = ids.iter().map(|&i| a[i * d + c] as f64).sum::<f64>() / ids.len() as f64;
                        assert!((row[c] as f64 - want).abs() < 1e-6, "{tok:?} → {text:?}: composed from {ids:?}");
                    }
                    let want_b = ids.iter().map(|&i| a_bias[i] as f64).sum::<f64>() / ids.len() as f64;
                    assert!((b_bias[jb] as f64 - want_b).abs() < 1e-6);
                } else if !text.contains('\u{FFFD}') {
                    // Fresh with the Mean fallback: exactly μ.
                    assert!(row.iter().zip(&mu).all(|(x, m)| (*x as f64 - m).abs() < 1e-5), "{tok:?}: fresh = μ");
                }
            }
            assert_eq!(copied, r.copied, "{}", td.name);
            assert!(composed <= r.composed && composed > 150);
            // A multi-word-piece example: B's merged token composed from A's pieces.
            let ex = r.examples.iter().find(|e| e.kind == "composed").unwrap();
            assert!(!ex.from.is_empty());
            let json = serde_json::to_string(r).unwrap();
            assert!(json.contains("\"copied\"") && json.contains("\"fresh\""), "{json}");
        }
    }

    #[test]
    fn tied_table_with_padding_migrates_padding_row() {
        let (mut tok_a, mut tok_b) = (bpe(300, true), bpe(400, true));
        use tokenizers::AddedToken;
        tok_a.add_special_tokens([AddedToken::from("<pad>", true)]).unwrap();
        // "<pad><eos>" is new to A, and A encodes its text as its own "<pad>" + pieces of "<eos>".
        tok_b.add_special_tokens([AddedToken::from("<eos>", true), AddedToken::from("<pad>", true), AddedToken::from("<pad><eos>", true)]).unwrap();
        let dev = Device::flex();
        let table_a = TokenEmbedding::from_weight(Tensor::from_data(data(301, 4, 7), &dev), Some(300)).unwrap();
        let m = migrate(&table_a, &LmHead::tied(), &tok_a, &tok_b, &MigrateOptions::default()).unwrap();
        assert_eq!(m.report.padding_idx, tok_b.token_to_id("<pad>").map(|i| i as usize));
        assert_eq!(m.table.padding_idx(), Some(401));
        assert!(m.head.is_tied());
        assert_eq!((m.report.rows_b, m.report.fresh), (403, 0), "{:?}", m.report);
        let (a, b, d) = (host_f32(table_a.weight.val()), host_f32(m.table.weight.val()), 4);
        assert_eq!(b[401 * d..402 * d].to_vec(), vec![0.0; d], "B's padding row is zero");
        // Composed rows are the mean of A's piece rows, the padding row never among them
        // (counting A's zero pad row would scale "<pad><eos>"'s row by k/(k+1)).
        for text in ["<eos>", "<pad><eos>"] {
            let j = tok_b.token_to_id(text).unwrap() as usize;
            let all: Vec<usize> = tok_a.encode(text, false).unwrap().get_ids().iter().map(|&i| i as usize).collect();
            assert_eq!(all.contains(&300), text.starts_with("<pad>"), "{text}: {all:?}");
            let pieces: Vec<usize> = all.into_iter().filter(|&i| i != 300).collect();
            assert!(pieces.len() >= 2, "{text}: {pieces:?}");
            let row = &b[j * d..(j + 1) * d];
            let mean = |ids: &[usize], c: usize| ids.iter().map(|&i| a[i * d + c] as f64).sum::<f64>() / ids.len() as f64;
            for c in 0..d {
                assert!((row[c] as f64 - mean(&pieces, c)).abs() < 1e-6, "{text}: column {c}: {row:?} vs mean of {pieces:?}");
            }
            let with_pad = [pieces.clone(), vec![300]].concat();
            assert!((0..d).any(|c| (row[c] as f64 - mean(&with_pad, c)).abs() > 1e-3), "{text}: the check can tell the pad row apart");
        }
        // A tokenizer that does not match the table is refused.
        let small = TokenEmbedding::from_weight(Tensor::from_data(data(50, 4, 7), &dev), None).unwrap();
        let err = migrate(&small, &LmHead::tied(), &tok_a, &tok_b, &MigrateOptions::default()).unwrap_err().to_string();
        assert!(err.contains("trained with"), "{err}");
    }
}
