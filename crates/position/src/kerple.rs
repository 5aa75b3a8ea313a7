//! KERPLE, logarithmic variant (Chi et al. 2022, "KERPLE: Kernelized Relative Positional
//! Embedding for Length Extrapolation"): head `h` adds
//!
//! ```text
//! b_h(i, j) = −r1_h · ln(1 + r2_h · (i − j))      for j ≤ i,   r1_h, r2_h > 0 learned
//! ```
//!
//! to the score of query `i` and key `j` (a conditionally positive definite kernel of the
//! distance; ALiBi's `−m·(i − j)` is its linear cousin, this one decays logarithmically).
//!
//! Positivity: like the paper's code, the parameters are clamped to at least
//! [`KERPLE_MIN`] where they are used (`max(r, ε)`; a clamped parameter gets no gradient until
//! it is pushed back above `ε`). Initialization (deterministic; the paper draws uniformly at
//! random): `r1_h = 1` and `r2_h` = the ALiBi slope of head `h`, so every head starts with its
//! own decay scale. Future keys (`j > i`) get distance 0 here; the causal mask removes them.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use ember_kernels::relative_distance;

use crate::alibi::slopes;

/// The smallest value `r1`, `r2` take (the paper's `eps = 1e-2`).
pub const KERPLE_MIN: f64 = 1e-2;

/// Learned per-head `r1`, `r2`.
#[derive(Module, Debug)]
pub struct Kerple {
    /// `[H]`: the bias amplitude of each head.
    pub r1: Param<Tensor<1>>,
    /// `[H]`: the distance scale inside the logarithm of each head.
    pub r2: Param<Tensor<1>>,
}

/// The initial `(r1, r2)` per head: `r1 = 1`, `r2` = ALiBi's slopes (module docs).
pub fn initial_parameters(n_heads: usize) -> (Vec<f64>, Vec<f64>) {
    (vec![1.0; n_heads], slopes(n_heads))
}

impl Kerple {
    /// [`initial_parameters`] for `n_heads` heads on `device`.
    pub fn new(n_heads: usize, device: &Device) -> Self {
        let (r1, r2) = initial_parameters(n_heads);
        let param = |v: Vec<f64>| Param::from_tensor(Tensor::from_data(TensorData::new(v.into_iter().map(|x| x as f32).collect(), [n_heads]), device));
        Self { r1: param(r1), r2: param(r2) }
    }

    /// The bias `[1, H, Tq, Tk]` for `Tq` queries that are the last of `Tk` keys:
    /// `−max(r1, ε)·ln(1 + max(r2, ε)·max(i − j, 0))` (differentiable in `r1`, `r2`).
    pub fn bias(&self, tq: usize, tk: usize, device: &Device) -> Tensor<4> {
        let h = self.r1.dims()[0];
        let dist = relative_distance(tq, tk, device).clamp_min(0).float().reshape([1, 1, tq, tk]);
        let r1 = self.r1.val().clamp_min(KERPLE_MIN).reshape([1, h, 1, 1]);
        let r2 = self.r2.val().clamp_min(KERPLE_MIN).reshape([1, h, 1, 1]);
        (dist * r2).log1p() * r1.neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_is_the_log_kernel_with_clamped_parameters() {
        let device = Device::flex();
        let mut k = Kerple::new(3, &device);
        let (r1, r2) = ([0.5f32, 2.0, 0.001], [0.25f32, 0.0001, 3.0]); // two values below ε
        k.r1 = Param::from_tensor(Tensor::from_data(TensorData::new(r1.to_vec(), [3]), &device));
        k.r2 = Param::from_tensor(Tensor::from_data(TensorData::new(r2.to_vec(), [3]), &device));
        let (tq, tk) = (2, 5);
        let bias = k.bias(tq, tk, &device).into_data().try_to_vec::<f32>().unwrap();
        for h in 0..3 {
            let (a1, a2) = ((r1[h] as f64).max(KERPLE_MIN), (r2[h] as f64).max(KERPLE_MIN));
            for q in 0..tq {
                for j in 0..tk {
                    let n = ((q + tk - tq) as f64 - j as f64).max(0.0);
                    let want = -a1 * (1.0 + a2 * n).ln();
                    let got = bias[(h * tq + q) * tk + j] as f64;
                    assert!((got - want).abs() < 1e-6 * (1.0 + want.abs()), "h {h} q {q} j {j}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn starts_with_alibi_scales() {
        let device = Device::flex();
        let k = Kerple::new(4, &device);
        let r2 = k.r2.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(r2, slopes(4).iter().map(|&m| m as f32).collect::<Vec<_>>());
        assert_eq!(k.r1.val().into_data().try_to_vec::<f32>().unwrap(), vec![1.0; 4]);
    }
}
