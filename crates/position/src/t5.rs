//! T5 relative position bias (Raffel et al. 2020), causal (unidirectional) form: head `h`
//! adds a *learned* scalar `w[bucket(i − j), h]` to the score of query `i` and key `j ≤ i`.
//!
//! Buckets (Hugging Face's `T5Attention._relative_position_bucket` with
//! `bidirectional=False`; `n = max(i − j, 0)`, `N = num_buckets`, `E = N / 2` exact buckets):
//!
//! ```text
//! bucket(n) = n                                                          if n < E
//!           = min(N − 1, E + ⌊ln(n / E) / ln(max_distance / E) · (N − E)⌋)   otherwise
//! ```
//!
//! Distances below `E` each get their own bucket; larger ones share logarithmically wider
//! buckets up to `max_distance`, and everything beyond falls into the last bucket — so the
//! scheme is defined at every length, and distances never seen in training reuse a trained
//! bucket. The logarithm is taken in f32, as HF computes it (`torch.log` of a float tensor),
//! so bucket edges agree exactly. Keys in the future (`j > i`) get bucket 0 (HF's rule); the
//! causal mask removes them anyway.
//!
//! The table `w [num_buckets, H]` starts at zero (the model starts as NoPE) and is trained;
//! its gradient is the sum of the attention's score gradient `dS` over every `(i, j)` that
//! shares a bucket (Burn's `select` backward), summed over layers (the bias is shared).

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// The causal T5 bucket of a query–key distance `n = i − j` (negative distances, i.e. future
/// keys, count as 0). `num_buckets ≥ 2` and `max_distance > num_buckets / 2` (checked by the
/// config).
pub fn bucket(n: i64, num_buckets: usize, max_distance: usize) -> usize {
    let n = n.max(0);
    let exact = (num_buckets / 2) as i64;
    if n < exact {
        return n as usize;
    }
    // f32 like HF: log(n.float() / max_exact) / math.log(max_distance / max_exact) * (N − E)
    let log_ratio = (n as f32 / exact as f32).ln();
    let span = ((max_distance as f64) / exact as f64).ln() as f32;
    let large = exact + (log_ratio / span * (num_buckets as i64 - exact) as f32) as i64;
    large.min(num_buckets as i64 - 1) as usize
}

/// Learned per-head bucket biases.
#[derive(Module, Debug)]
pub struct T5Bias {
    /// `[num_buckets, H]`: the bias of each distance bucket for each head.
    pub weight: Param<Tensor<2>>,
    #[module(skip)]
    max_distance: usize,
}

impl T5Bias {
    /// A zero table `[num_buckets, n_heads]` on `device` (settings checked by the config).
    pub fn new(num_buckets: usize, max_distance: usize, n_heads: usize, device: &Device) -> Self {
        Self { weight: Param::from_tensor(Tensor::zeros([num_buckets, n_heads], device)), max_distance }
    }

    /// Number of buckets.
    pub fn num_buckets(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Distance from which every key shares the last bucket.
    pub fn max_distance(&self) -> usize {
        self.max_distance
    }

    /// The bucket of every `(query row, key column)` pair, `[Tq, Tk]` row-major, for `Tq`
    /// queries that are the last of `Tk` keys (bottom-right aligned).
    pub fn buckets(&self, tq: usize, tk: usize) -> Vec<i64> {
        let (nb, md) = (self.num_buckets(), self.max_distance);
        let shift = tk as i64 - tq as i64;
        (0..tq * tk).map(|p| bucket((p / tk) as i64 + shift - (p % tk) as i64, nb, md) as i64).collect()
    }

    /// The bias `[1, H, Tq, Tk]`: `w[bucket(i − j), h]` (differentiable in `w`).
    pub fn bias(&self, tq: usize, tk: usize, device: &Device) -> Tensor<4> {
        let h = self.weight.dims()[1];
        let idx = Tensor::<1, Int>::from_data(TensorData::new(self.buckets(tq, tk), [tq * tk]), device);
        let rows = self.weight.val().select(0, idx); // [Tq·Tk, H]
        rows.reshape([tq, tk, h]).permute([2, 0, 1]).unsqueeze::<4>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HF's function transcribed step by step (f32 tensors: `log` of `n / E` in f32, the
    /// divisor `math.log(max_distance / E)` a Python float that the f32 tensor op rounds).
    fn hf(relative_position: i64, num_buckets: i64, max_distance: i64) -> i64 {
        let rp = -(relative_position.min(0)); // -min(memory − context, 0)
        let max_exact = num_buckets / 2;
        if rp < max_exact {
            return rp;
        }
        let scaled = (rp as f32 / max_exact as f32).ln() / ((max_distance as f64 / max_exact as f64).ln() as f32) * (num_buckets - max_exact) as f32;
        let large = max_exact + scaled as i64; // max_exact + (…).to(torch.long)
        large.min(num_buckets - 1)
    }

    #[test]
    fn buckets_equal_hugging_face_for_tested_settings() {
        for (nb, md) in [(32, 128), (8, 20), (16, 64), (2, 4), (5, 17)] {
            for n in 0..600i64 {
                // HF's relative_position is memory − context = j − i = −n
                assert_eq!(bucket(n, nb, md) as i64, hf(-n, nb as i64, md as i64), "n {n}, {nb} buckets, max {md}");
            }
            assert_eq!(bucket(-3, nb, md), 0, "future keys share bucket 0");
        }
    }

    #[test]
    fn known_t5_bucket_values() {
        // T5's defaults (32 buckets, max distance 128), unidirectional: 16 exact buckets, then
        // 16 log buckets over 16…128: 16 + ⌊16·ln(n/16)/ln 8⌋.
        let b = |n| bucket(n, 32, 128);
        assert_eq!((0..16).map(b).collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
        assert_eq!(b(16), 16);
        assert_eq!(b(22), 16 + (16.0 * (22f64 / 16.0).ln() / 8f64.ln()) as usize); // 18
        assert_eq!(b(127), 31);
        assert_eq!(b(128), 31);
        assert_eq!(b(10_000), 31);
    }

    #[test]
    fn bias_reads_the_bucket_rows_per_head() {
        let device = Device::flex();
        let mut t5 = T5Bias::new(8, 20, 2, &device);
        let table: Vec<f32> = (0..16).map(|v| v as f32).collect(); // w[b, h] = 2b + h
        t5.weight = Param::from_tensor(Tensor::from_data(TensorData::new(table, [8, 2]), &device));
        let (tq, tk) = (3, 30);
        let bias = t5.bias(tq, tk, &device).into_data().try_to_vec::<f32>().unwrap();
        for h in 0..2 {
            for a in 0..tq {
                for j in 0..tk {
                    let i = (a + tk - tq) as i64;
                    let want = (2 * bucket(i - j as i64, 8, 20) + h) as f32;
                    assert_eq!(bias[(h * tq + a) * tk + j], want, "h {h} a {a} j {j}");
                }
            }
        }
    }
}
