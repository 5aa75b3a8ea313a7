//! FIRE, functional interpolation for relative positions (Li et al. 2023, "Functional
//! Interpolation for Relative Positions Improves Long Context Transformers"): the score bias
//! of query `i` and key `j ≤ i` is a learned function of the *progressively normalised*
//! distance,
//!
//! ```text
//! b(i, j) = f_θ( ψ(i − j) / ψ(max(L, i)) ),   ψ(x) = ln(1 + c·x),
//! f_θ: 1 → hidden (ReLU) → H          (one output per head)
//! ```
//!
//! Dividing by `ψ(i)` maps every distance a query can see into `[0, 1]` whatever the
//! sequence length, so a longer sequence *interpolates* inside the trained input range
//! instead of extrapolating past it; the threshold `L` keeps the normalisation from
//! amplifying the short distances of the first positions. `c > 0` is learned (initial
//! [`FIRE_INIT_C`], clamped to at least [`FIRE_MIN_C`] where used); `L` is a fixed setting
//! here (the paper also allows learning it). Positions are 0-based absolute positions (the
//! KV-cache offset included); `L ≥ 1` keeps the denominator `≥ ψ(1) > 0`. Future keys get
//! distance 0; the causal mask removes them.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use ember_kernels::relative_distance;

/// Initial `c` of `ψ(x) = ln(1 + c·x)`.
pub const FIRE_INIT_C: f64 = 0.1;
/// The smallest `c` used (keeps `ψ` increasing and the denominator positive).
pub const FIRE_MIN_C: f64 = 1e-4;

/// The learned function `f_θ` and the log scale `c`.
#[derive(Module, Debug)]
pub struct Fire {
    /// `[1, hidden]`: input layer of `f_θ` (with bias).
    pub fc: Linear,
    /// `[hidden, H]`: output layer of `f_θ`, one bias per head (with bias).
    pub out: Linear,
    /// `[1]`: the `c` of `ψ`.
    pub c: Param<Tensor<1>>,
    #[module(skip)]
    threshold: usize,
}

impl Fire {
    /// `f_θ` with `hidden` ReLU units (Burn's default Linear init, drawn from the device's
    /// seeded RNG) for `n_heads` heads, threshold `L = threshold ≥ 1` (checked by the config).
    pub fn new(hidden: usize, threshold: usize, n_heads: usize, device: &Device) -> Self {
        Self {
            fc: LinearConfig::new(1, hidden).init(device),
            out: LinearConfig::new(hidden, n_heads).init(device),
            c: Param::from_tensor(Tensor::from_data(TensorData::new(vec![FIRE_INIT_C as f32], [1]), device)),
            threshold,
        }
    }

    /// The threshold `L`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The normalised distances `ψ(i − j) / ψ(max(L, i))` as `[Tq, Tk]`, for `Tq` queries at
    /// absolute positions `[offset, offset + Tq)` that are the last of `Tk` keys.
    pub fn normalized_distance(&self, tq: usize, tk: usize, offset: usize, device: &Device) -> Tensor<2> {
        let c = self.c.val().clamp_min(FIRE_MIN_C).reshape([1, 1]);
        let dist = relative_distance(tq, tk, device).clamp_min(0).float(); // [Tq, Tk]
        let rows: Vec<f32> = (0..tq).map(|a| (offset + a).max(self.threshold) as f32).collect();
        let rows = Tensor::<2>::from_data(TensorData::new(rows, [tq, 1]), device);
        let psi = |x: Tensor<2>| (x * c.clone()).log1p();
        psi(dist) / psi(rows)
    }

    /// The bias `[1, H, Tq, Tk]` for queries at `[offset, offset + Tq)` (differentiable in
    /// `θ` and `c`).
    pub fn bias(&self, tq: usize, tk: usize, offset: usize, device: &Device) -> Tensor<4> {
        let x = self.normalized_distance(tq, tk, offset, device).reshape([tq * tk, 1]);
        let hidden = burn::tensor::activation::relu(self.fc.forward(x));
        let h = self.out.forward(hidden); // [Tq·Tk, H]
        let heads = h.dims()[1];
        h.reshape([tq, tk, heads]).permute([2, 0, 1]).unsqueeze::<4>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_is_the_mlp_of_the_normalized_distance() {
        let device = Device::flex();
        let fire = Fire::new(4, 3, 2, &device);
        let w1 = fire.fc.weight.val().into_data().try_to_vec::<f32>().unwrap(); // [1, 4]
        let b1 = fire.fc.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap();
        let w2 = fire.out.weight.val().into_data().try_to_vec::<f32>().unwrap(); // [4, 2]
        let b2 = fire.out.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap();
        let (tq, tk, offset) = (3, 6, 5); // queries at 5, 6, 7; keys at 2 … 7
        let bias = fire.bias(tq, tk, offset, &device).into_data().try_to_vec::<f32>().unwrap();
        let psi = |x: f64| (1.0 + FIRE_INIT_C * x).ln();
        for a in 0..tq {
            let i = offset + a;
            for b in 0..tk {
                let j = offset + tq - tk + b;
                let x = psi(i.saturating_sub(j) as f64) / psi(i.max(3) as f64);
                for h in 0..2 {
                    let hidden = (0..4).map(|u| (w1[u] as f64 * x + b1[u] as f64).max(0.0));
                    let want = b2[h] as f64 + hidden.enumerate().map(|(u, z)| z * w2[u * 2 + h] as f64).sum::<f64>();
                    let got = bias[(h * tq + a) * tk + b] as f64;
                    assert!((got - want).abs() < 1e-5, "h {h} i {i} j {j}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn normalized_distance_stays_in_unit_interval_at_any_length() {
        let device = Device::flex();
        let fire = Fire::new(2, 1, 1, &device);
        for t in [4, 64, 500] {
            let d = fire.normalized_distance(t, t, 0, &device).into_data().try_to_vec::<f32>().unwrap();
            let max = d.iter().cloned().fold(f32::MIN, f32::max);
            assert!(d.iter().all(|&v| (0.0..=1.0 + 1e-6).contains(&v)) && (max - 1.0).abs() < 1e-5, "T {t}: max {max}");
        }
    }
}
