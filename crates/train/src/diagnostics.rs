//! Why a position scheme extrapolates: per layer and head, how far back attention looks and
//! how spread out it is, measured on the model's own attention probabilities.
//!
//! For probabilities `P [B, H, T, T]` (row `i` = query `i`, `Σ_j P_ij = 1`, `P_ij = 0` for
//! `j > i`):
//!
//! ```text
//! distance_h = mean over b, i of  Σ_j P_bhij · (i − j)          (tokens back; 0 = self)
//! entropy_h  = mean over b, i of −Σ_j P_bhij · ln P_bhij        (nats; 0 = one key, ln(i+1) = uniform)
//! ```
//!
//! ALiBi's flat extrapolation curve shows as a small distance that stays put as the length
//! grows (local attention); a scheme that spreads attention over ever more keys shows as an
//! entropy that grows with the length.

use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::{ModelError, TinyLm};

/// One head's statistics (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadStats {
    /// Mean attention distance `Σ_j P_ij (i − j)`, in tokens.
    pub distance: f64,
    /// Mean attention entropy `−Σ_j P_ij ln P_ij`, in nats.
    pub entropy: f64,
}

/// Statistics of attention probabilities `P [B, H, T, T]` (one layer): one [`HeadStats`]
/// per head, averaged over the batch and the queries.
pub fn head_stats(probs: Tensor<4>) -> Vec<HeadStats> {
    let [b, h, t, _] = probs.dims();
    let device = probs.device();
    // (i − j) for query row i, key column j, clamped at 0 above the diagonal (where P = 0).
    let rows = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([t, 1]);
    let cols = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]);
    let dist = (rows - cols).clamp_min(0).float().reshape([1, 1, t, t]);
    let per_query = |x: Tensor<4>| x.sum_dim(3).mean_dim(2).mean_dim(0).reshape([h]); // [H]
    let distance = per_query(probs.clone() * dist.expand([b, h, t, t]));
    // 0 · ln 0 = 0: clamp inside the log only.
    let entropy = per_query(probs.clone().neg() * probs.clamp_min(1e-30).log());
    let host = |x: Tensor<1>| x.into_data().convert::<f64>().iter::<f64>().collect::<Vec<_>>();
    host(distance).into_iter().zip(host(entropy)).map(|(distance, entropy)| HeadStats { distance, entropy }).collect()
}

/// Attention statistics of `model` on ids `[B, T]` (positions from 0): `[layer][head]`.
pub fn attention_stats(model: &TinyLm, ids: Tensor<2, Int>) -> Result<Vec<Vec<HeadStats>>, ModelError> {
    Ok(model.attention_probabilities(ids, 0)?.into_iter().map(head_stats).collect())
}

/// The same on token rows `ids` (`B` rows of `T` ids each, row-major), on `model`'s device.
pub fn attention_stats_of(model: &TinyLm, ids: &[usize], rows: usize) -> Result<Vec<Vec<HeadStats>>, ModelError> {
    let t = ids.len() / rows.max(1);
    let data = TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [rows, t]);
    let device = model.tok.weight.val().device();
    attention_stats(model, Tensor::from_data(data, &device))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `P [1, 1, T, T]` from rows (stored in the device's default float, f32: tolerances 1e-6).
    fn probs(rows: Vec<Vec<f64>>) -> Tensor<4> {
        let t = rows.len();
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        Tensor::from_data(TensorData::new(flat, [1, 1, t, t]), &burn::tensor::Device::flex())
    }

    #[test]
    fn self_attention_is_distance_zero_and_entropy_zero() {
        let s = head_stats(probs(vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0]]));
        assert_eq!(s.len(), 1);
        assert!(s[0].distance.abs() < 1e-12 && s[0].entropy.abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn uniform_causal_attention_matches_the_closed_forms() {
        // Row i uniform over i + 1 keys: distance i/2, entropy ln(i + 1).
        let t = 4;
        let rows: Vec<Vec<f64>> = (0..t).map(|i| (0..t).map(|j| if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 }).collect()).collect();
        let s = head_stats(probs(rows))[0];
        let want_d = (0..t).map(|i| i as f64 / 2.0).sum::<f64>() / t as f64;
        let want_h = (0..t).map(|i| ((i + 1) as f64).ln()).sum::<f64>() / t as f64;
        assert!((s.distance - want_d).abs() < 1e-6, "{} vs {want_d}", s.distance);
        assert!((s.entropy - want_h).abs() < 1e-6, "{} vs {want_h}", s.entropy);
    }

    #[test]
    fn previous_token_attention_is_distance_one() {
        // Query 0 can only see itself; every later query looks exactly one back.
        let rows = vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]];
        let s = head_stats(probs(rows))[0];
        assert!((s.distance - 2.0 / 3.0).abs() < 1e-6, "{}", s.distance);
    }
}
