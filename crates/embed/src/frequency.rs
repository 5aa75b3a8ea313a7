//! Row norms against token frequency: do frequent tokens get longer or shorter rows?
//!
//! - [`pearson`], [`spearman`] (Pearson on ranks, ties given their average rank);
//! - [`norm_frequency`]: both correlations between the row norms `‖x_i‖` of a table `[N, d]`
//!   and `ln c_i`, the log count of token `i`, over the tokens with `c_i > 0` (a token never
//!   seen has no log frequency: it is excluded and counted in `tokens_excluded`);
//! - [`count_ids`]: counts from token ids (a tokenized corpus);
//! - [`load_counts`]: counts from a frequency list (`token count` per line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::geometry::{self, GeometryError};
use crate::io::LoadError;

/// Pearson correlation `cov(a, b) / (σ_a σ_b)` of two equally long samples; `None` when
/// they differ in length, have fewer than 2 values, or either is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Spearman rank correlation: [`pearson`] of the ranks ([`ranks`], ties averaged); `None`
/// under the same conditions.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    pearson(&ranks(a), &ranks(b))
}

/// 1-based ranks of `v` in increasing order; equal values share the average of their ranks
/// (`[10, 20, 20, 30]` → `[1, 2.5, 2.5, 4]`).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let avg = (start + end - 1) as f64 / 2.0 + 1.0;
        for &i in &order[start..end] {
            r[i] = avg;
        }
        start = end;
    }
    r
}

/// How row norms relate to log frequency. Serializes as
/// `{"spearman":…,"pearson":…,"tokens_counted":…}` (`null` for an undefined correlation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormFrequency {
    /// Spearman correlation of `‖x_i‖` with `ln c_i` (equal to that with `c_i`: ranks).
    pub spearman: Option<f64>,
    /// Pearson correlation of `‖x_i‖` with `ln c_i`.
    pub pearson: Option<f64>,
    /// Tokens with `c_i > 0`: the sample both correlations are over.
    pub tokens_counted: usize,
    /// Tokens with `c_i = 0`, left out (not serialized; the text output says it).
    #[serde(skip)]
    pub tokens_excluded: usize,
}

/// The points of a norm-vs-frequency picture: `(row i, ‖x_i‖, ln c_i)` for every `c_i > 0`,
/// from the row norms `norms[i]` and counts `counts[i]` (both length `N`).
pub fn norm_log_count_points(norms: &[f64], counts: &[u64]) -> Result<Vec<(usize, f64, f64)>, GeometryError> {
    if counts.len() != norms.len() {
        return Err(GeometryError::CountsLength { counts: counts.len(), rows: norms.len() });
    }
    Ok(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, &c)| (i, norms[i], (c as f64).ln())).collect())
}

/// [`NormFrequency`] of the table `x` `[N, d]` (row `i` = token `i`) against `counts[i]`
/// (`N` values, the frequency of token `i`). Tokens with count 0 are excluded.
pub fn norm_frequency(x: &Tensor<2>, counts: &[u64]) -> Result<NormFrequency, GeometryError> {
    let norms = geometry::host_f64(geometry::row_norms(x));
    let points = norm_log_count_points(&norms, counts)?;
    let (n, lf): (Vec<f64>, Vec<f64>) = points.iter().map(|&(_, n, l)| (n, l)).unzip();
    Ok(NormFrequency { spearman: spearman(&n, &lf), pearson: pearson(&n, &lf), tokens_counted: points.len(), tokens_excluded: counts.len() - points.len() })
}

/// Occurrences of each id `0..vocab` in `ids` (`vocab` values). Ids `≥ vocab` are ignored.
pub fn count_ids(ids: &[u32], vocab: usize) -> Vec<u64> {
    let mut counts = vec![0u64; vocab];
    for &id in ids {
        if let Some(c) = counts.get_mut(id as usize) {
            *c += 1;
        }
    }
    counts
}

/// Counts read from a frequency list for a table's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct CountsFile {
    /// `counts[i]`: the count of row `i`'s token (0 when the list does not name it).
    pub counts: Vec<u64>,
    /// Tokens of the list that are not rows of the table (in file order).
    pub unknown: Vec<String>,
}

/// Read a frequency list for the table whose row `i` is `tokens[i]`: one `token count` line
/// per token (whitespace separated; blank lines ignored; `count` a non-negative integer).
/// A malformed line or a token listed twice is an error naming the line (1-based).
pub fn load_counts(path: &Path, tokens: &[String]) -> Result<CountsFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    let p = || PathBuf::from(path);
    let row: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut counts = vec![0u64; tokens.len()];
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut unknown = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (word, count) = match fields.as_slice() {
            [] => continue,
            [word, count] => (*word, *count),
            _ => {
                return Err(LoadError::Malformed { path: p(), line: lineno, reason: format!("expected `token count` (2 fields), found {} fields", fields.len()) })
            }
        };
        let count: u64 = count.parse().map_err(|_| LoadError::Malformed {
            path: p(),
            line: lineno,
            reason: format!("the count of `{word}` is `{count}`, not a non-negative integer"),
        })?;
        if let Some(&first_line) = seen.get(word) {
            return Err(LoadError::Duplicate { path: p(), line: lineno, word: word.into(), first_line });
        }
        seen.insert(word, lineno);
        match row.get(word) {
            Some(&r) => counts[r] = count,
            None => unknown.push(word.to_string()),
        }
    }
    if seen.is_empty() {
        return Err(LoadError::Format { path: p(), message: "no `token count` lines in the file".into() });
    }
    Ok(CountsFile { counts, unknown })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn correlations_against_a_hand_computed_case_with_ties() {
        // a = [1, 2, 2, 4], b = [1, 3, 2, 7]: means 2.25 and 3.25;
        // deviations a: −1.25, −.25, −.25, 1.75; b: −2.25, −.25, −1.25, 3.75;
        // cov·n = 2.8125 + .0625 + .3125 + 6.5625 = 9.75; Σda² = 4.75; Σdb² = 20.75.
        let (a, b) = ([1.0, 2.0, 2.0, 4.0], [1.0, 3.0, 2.0, 7.0]);
        let want = 9.75 / (4.75f64 * 20.75).sqrt();
        assert!((pearson(&a, &b).unwrap() - want).abs() < 1e-12);
        // ranks: a → [1, 2.5, 2.5, 4] (tie averaged), b → [1, 3, 2, 4];
        // deviations from 2.5: a −1.5, 0, 0, 1.5; b −1.5, .5, −.5, 1.5 → cov·n 4.5, Σ 4.5 and 5.
        assert_eq!(ranks(&a), [1.0, 2.5, 2.5, 4.0]);
        let rho = spearman(&a, &b).unwrap();
        assert!((rho - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{rho}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[3.0, 2.0, 1.0]), None);
        assert_eq!(pearson(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[2.0]), None);
    }

    #[test]
    fn norm_frequency_uses_log_counts_and_excludes_unseen_tokens() {
        // norms 1, 3, 2, 5; counts e, e³, e², 0 → ln c = 1, 3, 2 over the first three rows:
        // perfectly linear in the norms (Pearson 1), the zero-count row is excluded.
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 3.0, 2.0, 0.0, 5.0, 0.0], [4, 2]), &Device::flex());
        let e = std::f64::consts::E;
        let counts = [e.round() as u64, (e * e * e).round() as u64, (e * e).round() as u64, 0];
        let r = norm_frequency(&x, &counts).unwrap();
        assert_eq!((r.tokens_counted, r.tokens_excluded), (3, 1));
        assert!((r.spearman.unwrap() - 1.0).abs() < 1e-12);
        // counts 3, 20, 7 are not exactly e^k: Pearson on ln c, not on c.
        let ln: Vec<f64> = [3.0f64, 20.0, 7.0].iter().map(|c| c.ln()).collect();
        assert!((r.pearson.unwrap() - pearson(&[1.0, 3.0, 2.0], &ln).unwrap()).abs() < 1e-6);
        assert!((r.pearson.unwrap() - pearson(&[1.0, 3.0, 2.0], &[3.0, 20.0, 7.0]).unwrap()).abs() > 1e-3);
        assert_eq!(serde_json::to_string(&r).unwrap().matches(':').count(), 3, "exactly spearman, pearson, tokens_counted");
        assert!(norm_frequency(&x, &[1, 2]).is_err());
        assert_eq!(count_ids(&[0, 2, 2, 9], 3), [1, 0, 2]);
    }

    #[test]
    fn counts_file_parsing_and_errors() {
        let dir = std::env::temp_dir().join(format!("ember-counts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tokens: Vec<String> = ["the", "of", "king"].iter().map(|s| s.to_string()).collect();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ok = load_counts(&write("ok.txt", "the 100\n\nking\t7\nzebra 3\n"), &tokens).unwrap();
        assert_eq!(ok, CountsFile { counts: vec![100, 0, 7], unknown: vec!["zebra".into()] });
        let cases = [
            ("three.txt", "the 1\nof 2 3\n", "three.txt:2: expected `token count` (2 fields), found 3 fields"),
            ("neg.txt", "the 1\nof -2\n", "neg.txt:2: the count of `of` is `-2`, not a non-negative integer"),
            ("word.txt", "the\n", "word.txt:1: expected `token count` (2 fields), found 1 fields"),
            ("dup.txt", "the 1\nof 2\nthe 3\n", "dup.txt:3: duplicate token `the` (first on line 1)"),
            ("empty.txt", "\n\n", "empty.txt: no `token count` lines in the file"),
        ];
        for (name, text, want) in cases {
            let err = load_counts(&write(name, text), &tokens).unwrap_err().to_string();
            assert!(err.ends_with(want) || err.contains(want), "{name}: {err}");
        }
    }
}
