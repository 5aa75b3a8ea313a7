//! k nearest neighbours of rows or query vectors in a table `E` `[N, d]`.
//!
//! One batched matmul `Q Eᵀ` `[M, N]` plus an exact two-stage top-k on the device per call
//! (block maxima, then `topk_with_indices` over the best blocks; see `top_k_rows`) — never a
//! loop over rows — then a single read-back of the `[M, k]` winners. The metric is
//! always explicit ([`Metric`]): dot product, cosine similarity and Euclidean distance rank
//! differently whenever row norms differ. Euclidean uses `‖q − e‖² = ‖q‖² − 2 q·e + ‖e‖²`.
//!
//! Preprocessing (centering, whitening, all-but-the-top) is a [`crate::geometry::Transform`]
//! applied to the table (and to query vectors) before building the index; see [`Preprocess`].

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::geometry::{GeometryError, Transform};

/// How closeness is measured. There is no default: the choice changes the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// `q · e` (larger is closer): what a tied LM head scores.
    Dot,
    /// `q·e / (‖q‖ ‖e‖)` (larger is closer); zero rows score 0.
    Cosine,
    /// `‖q − e‖₂` (smaller is closer); the reported score is the distance.
    Euclidean,
}

/// Every metric name [`Metric::from_str`] accepts.
pub const METRIC_NAMES: &[&str] = &["dot", "cosine", "euclidean"];

impl Metric {
    /// The lowercase name (`dot`, `cosine`, `euclidean`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dot => "dot",
            Self::Cosine => "cosine",
            Self::Euclidean => "euclidean",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = NeighborsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dot" => Ok(Self::Dot),
            "cosine" | "cos" => Ok(Self::Cosine),
            "euclidean" | "l2" => Ok(Self::Euclidean),
            _ => Err(NeighborsError::UnknownMetric(s.to_string())),
        }
    }
}

/// Errors from neighbour queries (bad arguments; the data itself is never rejected).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NeighborsError {
    /// Not one of [`METRIC_NAMES`].
    #[error("unknown metric `{0}`; valid metrics are: dot, cosine, euclidean")]
    UnknownMetric(String),
    /// A query row index `≥ N`.
    #[error("row {row} is out of range for a table of {rows} rows")]
    RowOutOfRange { row: usize, rows: usize },
    /// Query vectors of the wrong width.
    #[error("query vectors have dimension {query}, the table has {table}")]
    DimMismatch { query: usize, table: usize },
    /// Preprocessing failed.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
}

/// One neighbour: row `id` of the table and its score under the metric (dot product, cosine,
/// or Euclidean distance).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    /// Row index in the table.
    pub id: usize,
    /// The metric's value between the query and this row.
    pub score: f64,
}

/// Optional preprocessing of the table before the search, applied in this order:
/// centering, all-but-the-top (`remove_top` directions), whitening.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preprocess {
    /// Subtract the mean row.
    pub center: bool,
    /// Whiten (BERT-whitening, keeping every direction with non-zero variance).
    pub whiten: bool,
    /// Remove the mean and the top `D` principal directions (0 = off).
    pub remove_top: usize,
}

impl Preprocess {
    /// Apply to `table` `[N, d]` → `[N, d']` (`d' ≤ d` after whitening a rank-deficient table).
    /// Each step is fitted on the output of the previous one.
    pub fn apply(&self, table: Tensor<2>) -> Result<Tensor<2>, GeometryError> {
        let mut x = table;
        if self.center {
            x = Transform::center(&x).apply(x);
        }
        if self.remove_top > 0 {
            x = Transform::all_but_the_top(&x, self.remove_top)?.apply(x);
        }
        if self.whiten {
            x = Transform::whiten(&x, None)?.apply(x);
        }
        Ok(x)
    }
}

/// A table prepared for one metric: for cosine the rows are stored normalised, for Euclidean
/// the squared row norms `‖e‖²` `[1, N]` are precomputed, so each search is one matmul.
#[derive(Clone, Debug)]
pub struct NeighborIndex {
    metric: Metric,
    /// `[N, d]`: the table (unit rows for cosine).
    keys: Tensor<2>,
    /// `[1, N]`: `‖e_i‖²` (Euclidean only).
    key_sq_norms: Option<Tensor<2>>,
}

impl NeighborIndex {
    /// Index the rows of `table` `[N, d]` for `metric`.
    pub fn new(table: Tensor<2>, metric: Metric) -> Self {
        let [n, _] = table.dims();
        let (keys, key_sq_norms) = match metric {
            Metric::Dot => (table, None),
            Metric::Cosine => (crate::geometry::normalize_rows(table), None),
            Metric::Euclidean => {
                let sq = table.clone().square().sum_dim(1).reshape([1, n]);
                (table, Some(sq))
            }
        };
        Self { metric, keys, key_sq_norms }
    }

    /// The metric this index answers.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// `N`, the number of rows.
    pub fn rows(&self) -> usize {
        self.keys.dims()[0]
    }

    /// The `k` nearest rows to each table row in `rows` (length `M`), excluding the row itself:
    /// `M` lists of at most `min(k, N − 1)` neighbours, best first.
    pub fn search_rows(&self, rows: &[usize], k: usize) -> Result<Vec<Vec<Neighbor>>, NeighborsError> {
        let n = self.rows();
        if let Some(&row) = rows.iter().find(|&&r| r >= n) {
            return Err(NeighborsError::RowOutOfRange { row, rows: n });
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let device = self.keys.device();
        let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &device);
        // For cosine the stored keys are already unit rows, so they are the normalised queries.
        let queries = self.keys.clone().select(0, ids);
        self.search(queries, k, Some(rows))
    }

    /// The `k` nearest rows to each query vector `queries` `[M, d]` (nothing excluded).
    pub fn search_vectors(&self, queries: Tensor<2>, k: usize) -> Result<Vec<Vec<Neighbor>>, NeighborsError> {
        let (q, d) = (queries.dims()[1], self.keys.dims()[1]);
        if q != d {
            return Err(NeighborsError::DimMismatch { query: q, table: d });
        }
        let queries = match self.metric {
            Metric::Cosine => crate::geometry::normalize_rows(queries),
            _ => queries,
        };
        self.search(queries, k, None)
    }

    /// `queries` `[M, d]` (already normalised for cosine); `exclude[m]` is dropped from list `m`.
    fn search(&self, queries: Tensor<2>, k: usize, exclude: Option<&[usize]>) -> Result<Vec<Vec<Neighbor>>, NeighborsError> {
        let [m, _] = queries.dims();
        let n = self.rows();
        let fetch = (k + usize::from(exclude.is_some())).min(n);
        if fetch == 0 || m == 0 {
            return Ok(vec![Vec::new(); m]);
        }
        let dots = queries.clone().matmul(self.keys.clone().transpose()); // [M, N]
        let (scores, query_sq) = match &self.key_sq_norms {
            // argmin ‖q − e‖² = argmax (2 q·e − ‖e‖²); ‖q‖² is added back on the host.
            Some(sq) => (dots * 2.0 - sq.clone(), Some(queries.square().sum_dim(1))),
            None => (dots, None),
        };
        let (values, indices) = top_k_rows(scores, fetch); // host, [M · fetch]
        let query_sq: Option<Vec<f64>> = query_sq.map(|t| t.into_data().iter::<f64>().collect());
        let mut out = Vec::with_capacity(m);
        for row in 0..m {
            let mut list = Vec::with_capacity(k);
            for j in 0..fetch {
                let id = indices[row * fetch + j];
                if id >= n || exclude.is_some_and(|e| e[row] == id) || list.len() == k {
                    continue;
                }
                let v = values[row * fetch + j];
                let score = match &query_sq {
                    Some(qsq) => (qsq[row] - v).max(0.0).sqrt(),
                    None => v,
                };
                list.push(Neighbor { id, score });
            }
            out.push(list);
        }
        Ok(out)
    }
}

/// Exact top-`k` of every row of `scores` `[M, N]`, read back as `(values, column ids)`, each
/// `[M · k]` row-major, best first (`k ≤ N`).
///
/// Burn's generic `topk_with_indices` sorts whole rows (O(N log N) each; flex has no faster
/// kernel), which dominated the search at N = 50k. This stays on the device and exact but
/// sorts far less: split each row into `B` blocks of `S` columns; a row's top-`k` entries all
/// lie in its `k` blocks with the largest maxima (an entry of any other block has `k` larger
/// block maxima above it). So: block maxima `[M, B]` → top-`k` blocks `[M, k]` → gather
/// their entries `[M, k·S]` → top-`k` of those. With `S ≈ √(N/k)` both sorts are `O(√(N k))`
/// long instead of `N`.
fn top_k_rows(scores: Tensor<2>, k: usize) -> (Vec<f64>, Vec<usize>) {
    let [m, n] = scores.dims();
    let s = ((n as f64 / k as f64).sqrt().ceil() as usize).max(16);
    let b = n.div_ceil(s);
    if b <= 2 * k {
        let (values, ids) = scores.topk_with_indices(k, 1);
        return (values.into_data().iter::<f64>().collect(), ids.into_data().iter::<i64>().map(|i| i as usize).collect());
    }
    let device = scores.device();
    let padded = if b * s > n { Tensor::cat(vec![scores, Tensor::full([m, b * s - n], f32::MIN, &device)], 1) } else { scores };
    let blocks = padded.reshape([m, b, s]);
    let block_max = blocks.clone().max_dim(2).reshape([m, b]);
    let (_, top_blocks) = block_max.topk_with_indices(k, 1); // [M, k]
    let gather_ids = top_blocks.clone().reshape([m, k, 1]).expand([m, k, s]);
    let candidates = blocks.gather(1, gather_ids).reshape([m, k * s]);
    let (values, pos) = candidates.topk_with_indices(k, 1); // [M, k], positions in [0, k·S)
    let top_blocks: Vec<i64> = top_blocks.into_data().iter::<i64>().collect();
    let ids = pos
        .into_data()
        .iter::<i64>()
        .enumerate()
        .map(|(i, p)| {
            let (row, p) = (i / k, p as usize);
            top_blocks[row * k + p / s] as usize * s + p % s
        })
        .collect();
    (values.into_data().iter::<f64>().collect(), ids)
}

/// The `k` nearest rows of `table` `[N, d]` to its row `row` under `metric`, excluding `row`.
pub fn nearest_to_row(table: &Tensor<2>, row: usize, k: usize, metric: Metric) -> Result<Vec<Neighbor>, NeighborsError> {
    Ok(NeighborIndex::new(table.clone(), metric).search_rows(&[row], k)?.remove(0))
}

/// The `k` nearest rows of `table` `[N, d]` to the vector `query` `[d]` under `metric`.
pub fn nearest_to_vector(table: &Tensor<2>, query: Tensor<1>, k: usize, metric: Metric) -> Result<Vec<Neighbor>, NeighborsError> {
    let [d] = query.dims();
    Ok(NeighborIndex::new(table.clone(), metric).search_vectors(query.reshape([1, d]), k)?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_testing::test_devices;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn tensor(rows: &[Vec<f64>], device: &burn::tensor::Device) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
    }

    /// Host brute force: every row's score against `q`, sorted best first, `skip` excluded.
    fn brute(rows: &[Vec<f64>], q: &[f64], metric: Metric, skip: Option<usize>) -> Vec<(usize, f64)> {
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut all: Vec<(usize, f64)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(i, r)| {
                let dot: f64 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                let s = match metric {
                    Metric::Dot => dot,
                    Metric::Cosine => dot / (norm(r) * norm(q)),
                    Metric::Euclidean => r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt(),
                };
                (i, s)
            })
            .collect();
        all.sort_by(|a, b| if metric == Metric::Euclidean { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) });
        all
    }

    #[test]
    fn the_three_metrics_rank_differently() {
        // query q = (1, 0) is row 0; A is long (wins on dot), B is parallel to q (cosine 1),
        // D is nearest in space (distance 0.45).
        let rows = vec![vec![1.0, 0.0], vec![3.0, 3.0], vec![0.5, 0.0], vec![1.2, 0.5], vec![1.0, 0.45]];
        let expect = [(Metric::Dot, [1, 3, 4, 2]), (Metric::Cosine, [2, 3, 4, 1]), (Metric::Euclidean, [4, 2, 3, 1])];
        for td in test_devices() {
            let table = tensor(&rows, &td.device);
            for (metric, order) in expect {
                let got = nearest_to_row(&table, 0, 10, metric).unwrap();
                assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), order, "{} {metric}", td.name);
                for (n, (id, s)) in got.iter().zip(brute(&rows, &rows[0], metric, Some(0))) {
                    assert_eq!(n.id, id);
                    assert!((n.score - s).abs() < 1e-5, "{} {metric}: {} vs {s}", td.name, n.score);
                }
            }
        }
    }

    #[test]
    fn batched_search_matches_brute_force() {
        let mut rng = StdRng::seed_from_u64(5);
        let rows: Vec<Vec<f64>> = (0..200).map(|_| (0..8).map(|_| rng.random_range(-1.0..1.0) * rng.random_range(0.2..2.0)).collect()).collect();
        let queries: Vec<Vec<f64>> = (0..3).map(|_| (0..8).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
        let query_rows = [0usize, 17, 199];
        for td in test_devices() {
            for metric in [Metric::Dot, Metric::Cosine, Metric::Euclidean] {
                let index = NeighborIndex::new(tensor(&rows, &td.device), metric);
                let by_row = index.search_rows(&query_rows, 5).unwrap();
                let by_vec = index.search_vectors(tensor(&queries, &td.device), 5).unwrap();
                for (got, (q, skip)) in by_row.iter().chain(&by_vec).zip(
                    query_rows.iter().map(|&r| (&rows[r], Some(r))).chain(queries.iter().map(|q| (q, None))),
                ) {
                    let want = brute(&rows, q, metric, skip);
                    assert_eq!(got.len(), 5);
                    for (n, (id, s)) in got.iter().zip(want) {
                        assert_eq!(n.id, id, "{} {metric}", td.name);
                        assert!((n.score - s).abs() < 1e-4, "{} {metric}", td.name);
                    }
                }
            }
        }
    }

    #[test]
    fn top_k_inside_one_block() {
        // Row i = (i/1000, 0): the 10 best dot products with (1, 0) are rows 999..990, all in
        // the last block(s) of the two-stage selection.
        let rows: Vec<Vec<f64>> = (0..1000).map(|i| vec![i as f64 / 1000.0, 0.0]).collect();
        for td in test_devices() {
            let q = Tensor::<1>::from_floats([1.0, 0.0], &td.device);
            let got = nearest_to_vector(&tensor(&rows, &td.device), q, 10, Metric::Dot).unwrap();
            assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), (990..1000).rev().collect::<Vec<_>>(), "{}", td.name);
            let by_row = nearest_to_row(&tensor(&rows, &td.device), 0, 3, Metric::Euclidean).unwrap();
            assert_eq!(by_row.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3], "{}", td.name);
        }
    }

    #[test]
    fn edge_cases_are_errors_not_panics() {
        let table = tensor(&[vec![1.0, 0.0], vec![0.0, 1.0]], &burn::tensor::Device::flex());
        assert_eq!(nearest_to_row(&table, 2, 1, Metric::Dot), Err(NeighborsError::RowOutOfRange { row: 2, rows: 2 }));
        assert_eq!(nearest_to_row(&table, 0, 10, Metric::Cosine).unwrap().len(), 1); // k > N − 1
        assert!(nearest_to_row(&table, 0, 0, Metric::Dot).unwrap().is_empty());
        let wrong = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &table.device());
        assert!(matches!(nearest_to_vector(&table, wrong, 1, Metric::Dot), Err(NeighborsError::DimMismatch { query: 3, table: 2 })));
        assert_eq!("L2".parse::<Metric>(), Ok(Metric::Euclidean));
        assert!("manhattan".parse::<Metric>().unwrap_err().to_string().contains("dot, cosine, euclidean"));
    }

    #[test]
    fn preprocessing_changes_the_space() {
        // All rows share a big common offset: centering must remove it before cosine.
        let rows = vec![vec![10.0, 1.0], vec![10.0, -1.0], vec![10.0, 1.1], vec![10.0, 0.9]];
        for td in test_devices() {
            let p = Preprocess { center: true, ..Default::default() };
            let x = p.apply(tensor(&rows, &td.device)).unwrap();
            let n = nearest_to_row(&x, 0, 3, Metric::Cosine).unwrap();
            assert_eq!(n[2].id, 1, "{}: the opposite row is last after centering", td.name);
            assert!(n[2].score < -0.9, "{}", td.name);
            let w = Preprocess { whiten: true, remove_top: 0, center: false }.apply(tensor(&rows, &td.device)).unwrap();
            assert_eq!(w.dims(), [4, 1], "{}: rank-1 table whitens to one dim", td.name);
        }
    }
}
