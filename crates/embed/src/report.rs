//! What `ember embed stats`, `neighbors` and `plot` show, as serializable data with a stable
//! JSON shape (documented in the README). The root package renders it (terminal tables,
//! images: `ember::viz::embed`).
//!
//! `StatsReport` serializes as
//! `{"rows":N,"dim":d,"norm":{"mean":…,"std":…,"min":…,"max":…},"mean_vector_norm":…,"centered_norm":{…},"anisotropy":…,"explained_variance":[…]}`
//! plus `"norm_frequency":{"spearman":…,"pearson":…,"tokens_counted":…}` when token counts are known
//! and `NeighborsReport` as
//! `{"query":"king","metric":"cosine","neighbors":[{"token":"queen","id":12,"score":0.93},…]}`.
//! Undefined values (anisotropy of a one-row table) serialize as `null`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::frequency::NormFrequency;
use crate::geometry::{self, GeometryError, Pca};
use crate::neighbors::{Metric, Neighbor};

/// How many principal components `stats` reports.
pub const STATS_COMPONENTS: usize = 10;

/// Summary of the row norms `‖x_i‖`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormSummary {
    /// Mean of the norms.
    pub mean: f64,
    /// Population standard deviation of the norms.
    pub std: f64,
    /// Smallest norm.
    pub min: f64,
    /// Largest norm.
    pub max: f64,
}

/// `ember embed stats`: the geometry of a table `[N, d]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// `N`.
    pub rows: usize,
    /// `d`.
    pub dim: usize,
    /// Row-norm summary.
    pub norm: NormSummary,
    /// `‖μ‖`, the mean row's length.
    pub mean_vector_norm: f64,
    /// Summary of the centered row norms `‖x_i − μ‖` (how much of each row's length is the
    /// common direction `μ`).
    pub centered_norm: NormSummary,
    /// Mean cosine between distinct rows ([`geometry::anisotropy`]); `null` when `N < 2`.
    pub anisotropy: Option<f64>,
    /// Explained-variance ratios of the top `min(10, d)` principal components.
    pub explained_variance: Vec<f64>,
    /// Row norm against log token frequency, when counts are known (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_frequency: Option<NormFrequency>,
}

impl NormSummary {
    /// Mean, population std, min and max of `norms` (non-empty).
    pub fn of(norms: &[f64]) -> Self {
        let n = norms.len() as f64;
        let mean = norms.iter().sum::<f64>() / n;
        let var = norms.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt(),
            min: norms.iter().copied().fold(f64::INFINITY, f64::min),
            max: norms.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Compute [`StatsReport`] for `weights` `[N, d]` (`N ≥ 1`) on its device.
pub fn stats(weights: &Tensor<2>) -> Result<StatsReport, GeometryError> {
    let [rows, dim] = weights.dims();
    if rows == 0 {
        return Err(GeometryError::TooFewRows { what: "stats", rows, needed: 1 });
    }
    let norms = geometry::host_f64(geometry::row_norms(weights));
    let centered = geometry::host_f64(geometry::row_norms(&geometry::center(weights.clone())));
    Ok(StatsReport {
        rows,
        dim,
        norm: NormSummary::of(&norms),
        mean_vector_norm: geometry::mean_vector_norm(weights),
        centered_norm: NormSummary::of(&centered),
        anisotropy: geometry::anisotropy(weights).ok(),
        explained_variance: Pca::fit(weights)?.explained_variance_ratio(STATS_COMPONENTS),
        norm_frequency: None,
    })
}

/// One row of a neighbours list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeighborEntry {
    /// The neighbour's token string.
    pub token: String,
    /// Its row index.
    pub id: usize,
    /// Dot product, cosine, or Euclidean distance (per `metric`).
    pub score: f64,
}

/// `ember embed neighbors`: the nearest tokens to a query token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeighborsReport {
    /// The query token.
    pub query: String,
    /// The metric the scores are in.
    pub metric: Metric,
    /// Best first.
    pub neighbors: Vec<NeighborEntry>,
}

impl NeighborsReport {
    /// Name the neighbours' rows with `tokens` (`tokens[id]`; ids beyond it print as `#id`).
    pub fn new(query: &str, metric: Metric, neighbors: &[Neighbor], tokens: &[String]) -> Self {
        let neighbors = neighbors
            .iter()
            .map(|n| NeighborEntry { token: tokens.get(n.id).cloned().unwrap_or_else(|| format!("#{}", n.id)), id: n.id, score: n.score })
            .collect();
        Self { query: query.to_string(), metric, neighbors }
    }
}

/// What `ember embed plot` draws for a table `[N, d]`: the row norms and the rows projected
/// on the top two principal directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// `‖x_i‖`, `N` values.
    pub norms: Vec<f64>,
    /// `(X − μ) U_2`, one `(PC1, PC2)` point per row (`PC2 = 0` when `d = 1`).
    pub points: Vec<(f64, f64)>,
    /// Explained-variance ratios of PC1 and PC2 (one value when `d = 1`).
    pub explained_variance: Vec<f64>,
}

/// Compute [`Projection`] for `weights` `[N, d]` (`N ≥ 1`, `d ≥ 1`) on its device.
pub fn projection(weights: &Tensor<2>) -> Result<Projection, GeometryError> {
    let [n, _] = weights.dims();
    if n == 0 {
        return Err(GeometryError::TooFewRows { what: "projection", rows: n, needed: 1 });
    }
    let norms = geometry::host_f64(geometry::row_norms(weights));
    let pca = Pca::fit(weights)?;
    let xy = geometry::host_f64(pca.project(weights.clone(), 2));
    let k = xy.len() / n; // 2, or 1 for d = 1
    let points = (0..n).map(|i| (xy[i * k], if k > 1 { xy[i * k + 1] } else { 0.0 })).collect();
    Ok(Projection { norms, points, explained_variance: pca.explained_variance_ratio(2) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use ember_testing::test_devices;

    #[test]
    fn stats_values_and_json_shape() {
        // rows (3,4), (0,0), (6,8): norms 5, 0, 10; mean vector (3, 4).
        for td in test_devices() {
            let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0, 6.0, 8.0], [3, 2]), &td.device);
            let r = stats(&x).unwrap();
            assert_eq!((r.rows, r.dim), (3, 2));
            assert!((r.norm.mean - 5.0).abs() < 1e-5 && (r.norm.std - (50.0f64 / 3.0).sqrt()).abs() < 1e-4, "{}", td.name);
            assert!((r.norm.min - 0.0).abs() < 1e-6 && (r.norm.max - 10.0).abs() < 1e-5);
            assert!((r.mean_vector_norm - 5.0).abs() < 1e-5);
            // centered rows (0,0), (−3,−4), (3,4): norms 0, 5, 5
            let c = &r.centered_norm;
            assert!((c.mean - 10.0 / 3.0).abs() < 1e-5 && c.min.abs() < 1e-5 && (c.max - 5.0).abs() < 1e-5, "{c:?}");
            // pairs: (a,c) cos 1 twice, pairs with the zero row count 0 → 2/6
            assert!((r.anisotropy.unwrap() - 1.0 / 3.0).abs() < 1e-5, "{}", td.name);
            assert_eq!(r.explained_variance.len(), 2);
            assert!((r.explained_variance[0] - 1.0).abs() < 1e-5, "collinear rows: one component");
            let json: serde_json::Value = serde_json::to_value(&r).unwrap();
            let keys: Vec<&str> = json.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            for k in ["rows", "dim", "norm", "mean_vector_norm", "centered_norm", "anisotropy", "explained_variance"] {
                assert!(keys.contains(&k), "{k} missing from {json}");
            }
            assert_eq!(json["norm"].as_object().unwrap().len(), 4);
            assert!(json.get("norm_frequency").is_none(), "absent without counts");
        }
    }

    #[test]
    fn neighbors_json_shape() {
        let tokens: Vec<String> = ["king", "queen", "man"].iter().map(|s| s.to_string()).collect();
        let r = NeighborsReport::new("king", Metric::Cosine, &[Neighbor { id: 1, score: 0.93 }, Neighbor { id: 2, score: 0.5 }], &tokens);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"query":"king","metric":"cosine","neighbors":[{"token":"queen","id":1,"score":0.93},{"token":"man","id":2,"score":0.5}]}"#);
        let one = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &burn::tensor::Device::flex());
        let s = stats(&one).unwrap();
        assert!(serde_json::to_string(&s).unwrap().contains("\"anisotropy\":null"));
    }

    #[test]
    fn projection_of_collinear_rows_lies_on_pc1() {
        // rows (3,4), (0,0), (6,8): all on one line, so PC2 is 0 and PC1 spans ±5 around the mean.
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0, 6.0, 8.0], [3, 2]), &burn::tensor::Device::flex());
        let p = projection(&x).unwrap();
        assert_eq!(p.norms.len(), 3);
        assert!((p.norms[2] - 10.0).abs() < 1e-5);
        assert!((p.explained_variance[0] - 1.0).abs() < 1e-5);
        assert!(p.points.iter().all(|q| q.1.abs() < 1e-4), "{:?}", p.points);
        let pc1: Vec<f64> = p.points.iter().map(|q| q.0.abs()).collect();
        assert!(pc1[0] < 1e-4 && (pc1[1] - 5.0).abs() < 1e-4 && (pc1[2] - 5.0).abs() < 1e-4, "{pc1:?}");
        let empty = Tensor::<2>::from_data(TensorData::new(Vec::<f32>::new(), [0, 2]), &burn::tensor::Device::flex());
        assert!(projection(&empty).is_err());
    }
}
