//! The causal mask and the query–key distance, written once for every user: the attention
//! composition, the KV-cached attention of sampling, and the score-bias schemes (ALiBi).
//!
//! Queries are the *last* `Tq` of `Tk` keys (bottom-right aligned, as in cached decoding):
//! query row `a` is at position `i = a + Tk − Tq`, key column `b` at `j = b`, and the key is
//! visible iff `j ≤ i`.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// The mask `[Tq, Tk]` row-major on the host, `true` = masked (key in the query's future).
pub(crate) fn causal_mask_values(tq: usize, tk: usize) -> Vec<bool> {
    let shift = tk as i64 - tq as i64;
    (0..tq * tk).map(|n| ((n % tk) as i64) > (n / tk) as i64 + shift).collect()
}

/// The causal mask `[1, 1, Tq, Tk]` on `device` (`true` = masked) for `Tq` queries that are
/// the last `Tq` of `Tk` keys (module docs). Written out rather than left to a backend's
/// `is_causal`, whose alignment for `Tq ≠ Tk` is the backend's business.
pub fn causal_mask(tq: usize, tk: usize, device: &Device) -> Tensor<4, Bool> {
    Tensor::from_data(TensorData::new(causal_mask_values(tq, tk), [1, 1, tq, tk]), device)
}

/// The query–key distance `i − j` as `[Tq, Tk]` integers (negative above the diagonal, i.e.
/// where [`causal_mask`] is `true`), for score biases that depend on it (ALiBi, T5, …).
pub fn relative_distance(tq: usize, tk: usize, device: &Device) -> Tensor<2, Int> {
    let rows = Tensor::<1, Int>::arange(0..tq as i64, device).reshape([tq, 1]).add_scalar(tk as i64 - tq as i64);
    let cols = Tensor::<1, Int>::arange(0..tk as i64, device).reshape([1, tk]);
    rows - cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_distance_agree_and_align_bottom_right() {
        let device = Device::flex();
        for (tq, tk) in [(4, 4), (1, 5), (3, 7)] {
            let mask = causal_mask(tq, tk, &device).into_data().try_to_vec::<bool>().unwrap();
            let dist = relative_distance(tq, tk, &device).into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
            for a in 0..tq {
                for b in 0..tk {
                    let i = (a + tk - tq) as i64;
                    assert_eq!(dist[a * tk + b], i - b as i64, "distance ({a}, {b}) of {tq}×{tk}");
                    assert_eq!(mask[a * tk + b], (b as i64) > i, "mask ({a}, {b}) of {tq}×{tk}");
                }
            }
        }
    }
}
