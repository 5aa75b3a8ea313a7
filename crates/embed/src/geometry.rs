//! Geometry of a set of vectors `X` `[N, d]` (rows `x_i` of an embedding table, of an LM head,
//! or hidden states): norms, mean direction, anisotropy, PCA, and the post-processing
//! transforms that undo the common direction (centering, whitening, all-but-the-top).
//!
//! The heavy parts (`[N, d]` reductions, the covariance `XcᵀXc` `[d, d]`) run on the tensor's
//! device; only `[d]`/`[d, d]` results come back to the host, where the symmetric
//! eigendecomposition runs in f64 (nalgebra). Covariances use the population normalisation
//! `1/N`.

use burn::tensor::{Int, Tensor, TensorData};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Errors from the geometry functions (all caused by arguments, never by the data's values).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeometryError {
    /// The operation needs more rows than the tensor has.
    #[error("{what} needs at least {needed} rows, the tensor has {rows}")]
    TooFewRows { what: &'static str, rows: usize, needed: usize },
    /// More principal components were requested than the data supports.
    #[error("{what}: {requested} components requested, but the data has only {available} directions with non-zero variance")]
    TooManyComponents { what: &'static str, requested: usize, available: usize },
    /// `counts` must have one entry per row.
    #[error("{counts} token counts given for {rows} rows")]
    CountsLength { counts: usize, rows: usize },
}

/// Eigenvalues below `RANK_TOL · λ_max` count as zero (the covariance is accumulated in f32).
pub const RANK_TOL: f64 = 1e-5;

/// Read any tensor back to the host as f64 values (row-major).
pub(crate) fn host_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Row norms `‖x_i‖₂`: `[N, d] → [N]`.
pub fn row_norms(x: &Tensor<2>) -> Tensor<1> {
    let [n, _] = x.dims();
    x.clone().square().sum_dim(1).sqrt().reshape([n])
}

/// Rows scaled to unit length, `x_i / max(‖x_i‖, 1e-12)`: `[N, d] → [N, d]` (zero rows stay zero).
pub fn normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norms = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norms
}

/// The mean vector `μ = (1/N) Σ_i x_i`: `[N, d] → [d]`.
pub fn mean_vector(x: &Tensor<2>) -> Tensor<1> {
    let [_, d] = x.dims();
    x.clone().mean_dim(0).reshape([d])
}

/// `‖μ‖₂`, the length of the mean vector (large when all rows share a common direction).
pub fn mean_vector_norm(x: &Tensor<2>) -> f64 {
    host_f64(mean_vector(x)).iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Centering `x_i − μ`: `[N, d] → [N, d]`; the result's column means are 0.
pub fn center(x: Tensor<2>) -> Tensor<2> {
    let mean = x.clone().mean_dim(0);
    x - mean
}

/// Anisotropy: the mean cosine similarity over all ordered pairs of distinct rows,
/// `(1 / N(N−1)) Σ_{i≠j} cos(x_i, x_j)` — the mean off-diagonal entry of the normalised Gram
/// matrix `X̂X̂ᵀ` (Ethayarajh 2019). Exact for every `N` without forming the `[N, N]` matrix:
/// with unit rows `x̂_i` and `s = Σ_i x̂_i`, `Σ_{i≠j} x̂_i·x̂_j = ‖s‖² − Σ_i ‖x̂_i‖²`.
/// ≈ 0 for isotropic data, `c` for a cone whose rows have pairwise cosine `c`.
/// Zero rows count as cosine 0 with every other row. Needs `N ≥ 2`.
pub fn anisotropy(x: &Tensor<2>) -> Result<f64, GeometryError> {
    let [n, _] = x.dims();
    if n < 2 {
        return Err(GeometryError::TooFewRows { what: "anisotropy", rows: n, needed: 2 });
    }
    let unit = normalize_rows(x.clone());
    let sum_sq: f64 = host_f64(unit.clone().square().sum())[0];
    let s = host_f64(unit.sum_dim(0));
    let s_sq: f64 = s.iter().map(|v| v * v).sum();
    Ok((s_sq - sum_sq) / (n as f64 * (n as f64 - 1.0)))
}

/// Anisotropy estimated from `pairs` random pairs `(i, j)`, `i ≠ j`, drawn with `seed`: the
/// mean of `cos(x_i, x_j)` over the sample (one gather of `[pairs, d]` rows and a row-wise dot
/// on the device). An unbiased estimate of [`anisotropy`]. Needs `N ≥ 2`, `pairs ≥ 1`.
pub fn anisotropy_sampled(x: &Tensor<2>, pairs: usize, seed: u64) -> Result<f64, GeometryError> {
    let [n, _] = x.dims();
    if n < 2 || pairs == 0 {
        return Err(GeometryError::TooFewRows { what: "sampled anisotropy", rows: n, needed: 2 });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ia, mut ib) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for _ in 0..pairs {
        let i = rng.random_range(0..n);
        let j = (i + rng.random_range(1..n)) % n; // uniform over j ≠ i
        ia.push(i as i64);
        ib.push(j as i64);
    }
    let device = x.device();
    let ia = Tensor::<1, Int>::from_data(TensorData::new(ia, [pairs]), &device);
    let ib = Tensor::<1, Int>::from_data(TensorData::new(ib, [pairs]), &device);
    let unit = normalize_rows(x.clone());
    let cos = (unit.clone().select(0, ia) * unit.select(0, ib)).sum_dim(1);
    Ok(host_f64(cos.mean())[0])
}

/// Principal components of `X` `[N, d]`: the eigendecomposition of the covariance
/// `Σ = (1/N) (X − μ)ᵀ(X − μ)` `[d, d]`, sorted by decreasing variance.
#[derive(Clone, Debug)]
pub struct Pca {
    /// The mean `μ` `[d]`.
    pub mean: Vec<f64>,
    /// The eigenvalues `λ_1 ≥ … ≥ λ_d ≥ 0` `[d]`: the variance along each component.
    pub variances: Vec<f64>,
    /// `U` `[d, d]`: column `j` is the unit direction of component `j`.
    pub components: DMatrix<f64>,
}

impl Pca {
    /// Fit on `x` `[N, d]` (`N ≥ 1`). The covariance is one `[d, N]·[N, d]` matmul on the device.
    pub fn fit(x: &Tensor<2>) -> Result<Self, GeometryError> {
        let [n, d] = x.dims();
        if n == 0 {
            return Err(GeometryError::TooFewRows { what: "PCA", rows: 0, needed: 1 });
        }
        let mean = host_f64(mean_vector(x));
        let xc = center(x.clone());
        let cov = host_f64(xc.clone().transpose().matmul(xc) / n as f64);
        let cov = DMatrix::from_row_slice(d, d, &cov);
        let cov = (&cov + cov.transpose()) * 0.5; // exact symmetry for the solver
        let eig = SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
        let variances = order.iter().map(|&i| eig.eigenvalues[i].max(0.0)).collect();
        let components = DMatrix::from_fn(d, d, |r, c| eig.eigenvectors[(r, order[c])]);
        Ok(Self { mean, variances, components })
    }

    /// The data's dimension `d`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Number of components with variance above `RANK_TOL · λ_1` (the numerical rank of `Σ`).
    pub fn rank(&self) -> usize {
        let top = self.variances.first().copied().unwrap_or(0.0);
        self.variances.iter().filter(|&&v| v > RANK_TOL * top && v > 0.0).count()
    }

    /// Explained-variance ratios `λ_j / Σ_i λ_i` of the top `min(k, d)` components (zeros when
    /// the data has no variance at all).
    pub fn explained_variance_ratio(&self, k: usize) -> Vec<f64> {
        let total: f64 = self.variances.iter().sum();
        let k = k.min(self.variances.len());
        self.variances[..k].iter().map(|v| if total > 0.0 { v / total } else { 0.0 }).collect()
    }

    /// `U_k` `[d, k]` (the top `k` directions as columns) on `x`'s device.
    pub fn basis(&self, k: usize, device: &burn::tensor::Device) -> Tensor<2> {
        let d = self.dim();
        let k = k.min(d);
        let vals: Vec<f32> = (0..d).flat_map(|r| (0..k).map(move |c| (r, c))).map(|(r, c)| self.components[(r, c)] as f32).collect();
        Tensor::from_data(TensorData::new(vals, [d, k]), device)
    }

    /// Coordinates on the top `k` components, `(X − μ) U_k`: `[N, d] → [N, min(k, d)]`.
    pub fn project(&self, x: Tensor<2>, k: usize) -> Tensor<2> {
        let device = x.device();
        (x - self.mean_tensor(&device)).matmul(self.basis(k, &device))
    }

    fn mean_tensor(&self, device: &burn::tensor::Device) -> Tensor<2> {
        let m: Vec<f32> = self.mean.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(m, [1, self.dim()]), device)
    }
}

/// Explained-variance ratios of the top `k` principal components of `x` `[N, d]` (see [`Pca`]).
pub fn explained_variance(x: &Tensor<2>, k: usize) -> Result<Vec<f64>, GeometryError> {
    Ok(Pca::fit(x)?.explained_variance_ratio(k))
}

/// A fitted affine map `y = (x − μ) W`, `[M, d] → [M, k]`, applicable to any rows (the table it
/// was fitted on, or query vectors): centering (`W = I`), whitening, all-but-the-top.
#[derive(Clone, Debug)]
pub struct Transform {
    /// `μ` `[1, d]`.
    pub mean: Tensor<2>,
    /// `W` `[d, k]`; `None` is the identity (plain centering).
    pub matrix: Option<Tensor<2>>,
}

impl Transform {
    /// Centering: `μ` = the mean of `x` `[N, d]`, `W = I`.
    pub fn center(x: &Tensor<2>) -> Self {
        Self { mean: x.clone().mean_dim(0), matrix: None }
    }

    /// BERT-whitening (Su et al. 2021): `W = U_k Λ_k^(−1/2)` from the PCA of `x` `[N, d]`,
    /// so that the transformed rows have mean 0 and covariance `I_k`. `keep = None` keeps every
    /// component with non-zero variance ([`Pca::rank`], `= d` for full-rank data); `Some(k)`
    /// keeps the top `k` and fails when `k` exceeds the rank.
    pub fn whiten(x: &Tensor<2>, keep: Option<usize>) -> Result<Self, GeometryError> {
        let pca = Pca::fit(x)?;
        let rank = pca.rank();
        let k = keep.unwrap_or(rank);
        if k > rank || k == 0 {
            return Err(GeometryError::TooManyComponents { what: "whitening", requested: k, available: rank });
        }
        let d = pca.dim();
        let vals: Vec<f32> = (0..d)
            .flat_map(|r| (0..k).map(move |c| (r, c)))
            .map(|(r, c)| (pca.components[(r, c)] / pca.variances[c].sqrt()) as f32)
            .collect();
        let device = x.device();
        Ok(Self { mean: pca.mean_tensor(&device), matrix: Some(Tensor::from_data(TensorData::new(vals, [d, k]), &device)) })
    }

    /// All-but-the-top (Mu & Viswanath 2018): remove the mean, then project out the top `D`
    /// principal directions, `W = I − U_D U_Dᵀ` `[d, d]`. `D = 0` is plain centering.
    pub fn all_but_the_top(x: &Tensor<2>, remove: usize) -> Result<Self, GeometryError> {
        let pca = Pca::fit(x)?;
        let d = pca.dim();
        if remove > d {
            return Err(GeometryError::TooManyComponents { what: "all-but-the-top", requested: remove, available: d });
        }
        let device = x.device();
        let mean = pca.mean_tensor(&device);
        if remove == 0 {
            return Ok(Self { mean, matrix: None });
        }
        let u = pca.basis(remove, &device);
        let w = Tensor::<2>::eye(d, &device) - u.clone().matmul(u.transpose());
        Ok(Self { mean, matrix: Some(w) })
    }

    /// Apply to rows `x` `[M, d]` → `[M, k]`.
    pub fn apply(&self, x: Tensor<2>) -> Tensor<2> {
        let xc = x - self.mean.clone();
        match &self.matrix {
            Some(w) => xc.matmul(w.clone()),
            None => xc,
        }
    }
}

/// Whitening of `x` `[N, d]` by its own statistics, `(x − μ) U_k Λ_k^(−1/2)` → `[N, k]`
/// (see [`Transform::whiten`]).
pub fn whiten(x: Tensor<2>, keep: Option<usize>) -> Result<Tensor<2>, GeometryError> {
    Ok(Transform::whiten(&x, keep)?.apply(x))
}

/// All-but-the-top on `x` `[N, d]` by its own statistics → `[N, d]`
/// (see [`Transform::all_but_the_top`]).
pub fn all_but_the_top(x: Tensor<2>, remove: usize) -> Result<Tensor<2>, GeometryError> {
    Ok(Transform::all_but_the_top(&x, remove)?.apply(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use ember_testing::test_devices;

    fn tensor(rows: &[Vec<f64>], device: &Device) -> Tensor<2> {
        let (n, d) = (rows.len(), rows[0].len());
        let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(flat, [n, d]), device)
    }

    /// Host covariance (1/N) of a `[N, k]` tensor.
    fn host_cov(x: &Tensor<2>) -> DMatrix<f64> {
        let [n, k] = x.dims();
        let m = DMatrix::from_row_slice(n, k, &host_f64(x.clone()));
        let mean = m.row_mean();
        let c = DMatrix::from_fn(n, k, |r, j| m[(r, j)] - mean[j]);
        c.transpose() * c / n as f64
    }

    /// 16 rows, d = 6: four exactly orthogonal ±1 (Hadamard) columns scaled by 3, 2, 1, 0.5,
    /// two zero columns, rotated by an orthogonal `R` and shifted. Returns (rows, R).
    fn planted() -> (Vec<Vec<f64>>, DMatrix<f64>) {
        let sig = [3.0, 2.0, 1.0, 0.5];
        let r = DMatrix::from_fn(6, 6, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0 + if i == j { 9.0 } else { 0.0 });
        let r = r.qr().q();
        let rows = (0..16usize)
            .map(|i| {
                let z: Vec<f64> = (0..6).map(|c| if c < 4 { sig[c] * (-1f64).powi(((i & (1 << c)).count_ones()) as i32) } else { 0.0 }).collect();
                (0..6).map(|j| (0..6).map(|c| z[c] * r[(c, j)]).sum::<f64>() + 1.5 + j as f64).collect()
            })
            .collect();
        (rows, r)
    }

    #[test]
    fn centering_and_norms() {
        for td in test_devices() {
            let x = tensor(&[vec![3.0, 4.0], vec![1.0, 0.0], vec![5.0, 2.0]], &td.device);
            assert_eq!(host_f64(row_norms(&x)).iter().map(|v| (v * 1e4).round() / 1e4).collect::<Vec<_>>(), vec![5.0, 1.0, 5.3852]);
            assert!((mean_vector_norm(&x) - 3.0f64.hypot(2.0)).abs() < 1e-5, "{}", td.name);
            let c = center(x);
            assert!(host_f64(mean_vector(&c)).iter().all(|v| v.abs() < 1e-6), "{}", td.name);
            assert!((host_f64(c)[0] - 0.0).abs() < 1e-6); // 3 − mean 3
        }
    }

    #[test]
    fn cone_anisotropy_is_its_cosine() {
        // x_i = √c·e_0 + √(1−c)·e_{i+1}: unit rows with pairwise cosine exactly c.
        let c: f64 = 0.8;
        let rows: Vec<Vec<f64>> = (0..20).map(|i| (0..24).map(|j| if j == 0 { c.sqrt() } else if j == i + 1 { (1.0 - c).sqrt() } else { 0.0 }).collect()).collect();
        for td in test_devices() {
            let x = tensor(&rows, &td.device) * 3.0; // scaling must not matter
            assert!((anisotropy(&x).unwrap() - c).abs() < 1e-5, "{}", td.name);
            assert!((anisotropy_sampled(&x, 500, 7).unwrap() - c).abs() < 1e-5, "{}", td.name);
            // centering removes the cone: the mean cosine of centered rows is −1/(N−1)
            assert!((anisotropy(&center(x)).unwrap() + 1.0 / 19.0).abs() < 1e-4, "{}", td.name);
        }
        assert!(anisotropy(&tensor(&[vec![1.0, 2.0]], &Device::flex())).is_err());
    }

    #[test]
    fn exact_anisotropy_matches_brute_force_pairs() {
        let mut rng = StdRng::seed_from_u64(3);
        let rows: Vec<Vec<f64>> = (0..30).map(|_| (0..5).map(|_| rng.random_range(-1.0..2.0)).collect()).collect();
        let unit: Vec<Vec<f64>> = rows.iter().map(|r| { let n = r.iter().map(|v| v * v).sum::<f64>().sqrt(); r.iter().map(|v| v / n).collect() }).collect();
        let mut sum = 0.0;
        for i in 0..30 { for j in 0..30 { if i != j { sum += unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum::<f64>(); } } }
        let brute = sum / (30.0 * 29.0);
        for td in test_devices() {
            let x = tensor(&rows, &td.device);
            assert!((anisotropy(&x).unwrap() - brute).abs() < 1e-5, "{}", td.name);
            assert!((anisotropy_sampled(&x, 20_000, 1).unwrap() - brute).abs() < 0.02, "{}", td.name);
        }
    }

    #[test]
    fn pca_recovers_planted_variances() {
        let (rows, r) = planted();
        for td in test_devices() {
            let pca = Pca::fit(&tensor(&rows, &td.device)).unwrap();
            for (got, want) in pca.variances.iter().zip([9.0, 4.0, 1.0, 0.25, 0.0, 0.0]) {
                assert!((got - want).abs() < 1e-4, "{}: {:?}", td.name, pca.variances);
            }
            assert_eq!(pca.rank(), 4, "{}", td.name);
            let ratios = pca.explained_variance_ratio(2);
            assert!((ratios[0] - 9.0 / 14.25).abs() < 1e-5 && (ratios[1] - 4.0 / 14.25).abs() < 1e-5);
            // component j is ±(row j of R)
            for j in 0..4 {
                let dot: f64 = (0..6).map(|i| pca.components[(i, j)] * r[(j, i)]).sum();
                assert!((dot.abs() - 1.0).abs() < 1e-4, "{}: component {j}", td.name);
            }
        }
    }

    #[test]
    fn whitening_gives_identity_covariance() {
        let mut rng = StdRng::seed_from_u64(9);
        let random: Vec<Vec<f64>> = (0..500)
            .map(|_| { let z: Vec<f64> = (0..5).map(|_| rng.random_range(-1.0..1.0)).collect(); (0..5).map(|j| z[j] * (j + 1) as f64 + z[0] * 2.0 - 4.0).collect() })
            .collect();
        for td in test_devices() {
            let w = whiten(tensor(&random, &td.device), None).unwrap();
            let cov = host_cov(&w);
            assert!((cov - DMatrix::identity(5, 5)).abs().max() < 2e-3, "{}", td.name);
            assert!(host_f64(mean_vector(&w)).iter().all(|v| v.abs() < 1e-4));
            // rank-4 planted data: keeps 4 dims by default, k = 2 on request, 5 is an error
            let x = tensor(&planted().0, &td.device);
            assert_eq!(whiten(x.clone(), None).unwrap().dims(), [16, 4]);
            let w2 = whiten(x.clone(), Some(2)).unwrap();
            assert!((host_cov(&w2) - DMatrix::identity(2, 2)).abs().max() < 1e-3, "{}", td.name);
            assert!(matches!(whiten(x, Some(5)), Err(GeometryError::TooManyComponents { available: 4, .. })));
        }
    }

    #[test]
    fn all_but_the_top_removes_the_top_directions() {
        let (rows, r) = planted();
        for td in test_devices() {
            let y = all_but_the_top(tensor(&rows, &td.device), 2).unwrap();
            assert_eq!(y.dims(), [16, 6]);
            let yh = DMatrix::from_row_slice(16, 6, &host_f64(y.clone()));
            for j in 0..2 {
                let along = &yh * r.row(j).transpose();
                assert!(along.abs().max() < 1e-4, "{}: variance left along direction {j}", td.name);
            }
            let pca = Pca::fit(&y).unwrap();
            assert!((pca.variances[0] - 1.0).abs() < 1e-4 && (pca.variances[1] - 0.25).abs() < 1e-4, "{}", td.name);
            assert!(host_f64(mean_vector(&y)).iter().all(|v| v.abs() < 1e-4));
        }
    }
}
