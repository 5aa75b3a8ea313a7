//! Softmax cross-entropy over logits, ignoring padded targets.
//!
//! For `N` positions with logits `z [N, V]`, targets `y [N]` and weights
//! `m_n = 1{y_n ≠ pad}`: `L = Σ_n m_n · (logsumexp(z_n) − z_n[y_n]) / max(1, Σ_n m_n)`.
//! Its gradient is `∂L/∂z_n = m_n (p_n − e_{y_n}) / max(1, Σ m)`. An all-pad batch gives
//! `L = 0` and all-zero gradients, never `0/0 = NaN`.

use burn::tensor::{Int, Tensor};

/// The logit every head gives the padding token's column (tied or untied, plain or fused):
/// it is never predicted, gets `exp(−1e9) = 0` probability and no gradient.
pub const PAD_LOGIT: f64 = -1e9;

/// The log-probability of each target: `logits [B, T, V]`, `targets [B, T]` (Int, in
/// `[0, V)`) → `log softmax(logits)[b, t, targets[b, t]]`, `[B, T]`. The one definition of
/// the per-token likelihood that the loss, evaluation and task scoring share (the fused
/// head computes the same value in chunks with its analytic gradient, [`crate::fused`]).
///
/// One op with its analytic backward ([`ember_kernels::target_log_probs`] over the `B·T`
/// rows: a CubeCL kernel on wgpu/cuda, Burn's ops on the CPU).
///
/// # Panics
/// If `logits` and `targets` are on different devices (as Burn's own ops do).
pub fn target_log_probs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [b, t, v] = logits.dims();
    if b * t == 0 {
        return Tensor::zeros([b, t], &logits.device());
    }
    let rows = ember_kernels::target_log_probs(logits.reshape([b * t, v]), targets.reshape([b * t]));
    rows.unwrap_or_else(|e| panic!("target_log_probs: {e}")).reshape([b, t])
}

/// Mean cross-entropy of `logits [B, T, V]` against `targets [B, T]` (Int), skipping
/// positions whose target equals `ignore` (the padding id). Returns a one-element tensor.
///
/// Targets must be in `[0, V)` (checked where they are made, like ids; see
/// [`crate::table`]).
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>, ignore: Option<usize>) -> Tensor<1> {
    let picked = target_log_probs(logits, targets.clone()); // [B, T] = log p_y
    match ignore {
        None => picked.mean().neg(),
        Some(pad) => {
            let keep = targets.not_equal_elem(pad as i64).float(); // [B, T]
            let count = keep.clone().sum().clamp_min(1.0);
            (picked * keep).sum().neg().div(count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use ember_testing::test_devices;

    fn reference(z: &[f64], y: &[i64], v: usize, pad: Option<i64>) -> f64 {
        let (mut total, mut n) = (0.0, 0usize);
        for (row, &target) in z.chunks(v).zip(y) {
            if Some(target) == pad {
                continue;
            }
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            total += lse - row[target as usize];
            n += 1;
        }
        if n == 0 { 0.0 } else { total / n as f64 }
    }

    #[test]
    fn matches_logsumexp_formula_with_and_without_padding() {
        let (b, t, v) = (2, 3, 5);
        let z: Vec<f32> = (0..b * t * v).map(|i| ((i * 7919) % 23) as f32 * 0.3 - 3.0).collect();
        let y: Vec<i64> = vec![0, 4, 2, 1, 2, 3];
        let z64: Vec<f64> = z.iter().map(|&x| x as f64).collect();
        for td in test_devices() {
            for pad in [None, Some(2i64)] {
                let logits = Tensor::<3>::from_data(TensorData::new(z.clone(), [b, t, v]), &td.device);
                let targets = Tensor::<2, Int>::from_data(TensorData::new(y.clone(), [b, t]), &td.device);
                let got = cross_entropy(logits, targets, pad.map(|p| p as usize)).into_scalar::<f64>();
                let want = reference(&z64, &y, v, pad);
                assert!((got - want).abs() < 1e-5, "{} pad {pad:?}: {got} vs {want}", td.name);
            }
        }
    }

    #[test]
    fn all_pad_batch_gives_zero_loss_and_zero_gradient() {
        for td in test_devices() {
            let dev = td.device.clone().autodiff();
            let logits = Tensor::<3>::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 0.1, 0.2, 0.3], [1, 2, 3]), &dev).require_grad();
            let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1], [1, 2]), &dev);
            let loss = cross_entropy(logits.clone(), targets, Some(1));
            let grads = loss.backward();
            assert_eq!(loss.into_scalar::<f32>(), 0.0, "{}", td.name);
            let g: Vec<f32> = logits.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            assert!(g.iter().all(|x| *x == 0.0 && x.is_finite()), "{}: {g:?}", td.name);
        }
    }

    #[test]
    fn gradient_is_p_minus_onehot_over_count() {
        let (v, z) = (4, vec![0.2f32, -0.4, 1.0, 0.0, 1.5, 0.5, -1.0, 0.25]);
        let y = vec![2i64, 0];
        for td in test_devices() {
            let dev = td.device.clone().autodiff();
            let logits = Tensor::<3>::from_data(TensorData::new(z.clone(), [1, 2, v]), &dev).require_grad();
            let targets = Tensor::<2, Int>::from_data(TensorData::new(y.clone(), [1, 2]), &dev);
            let grads = cross_entropy(logits.clone(), targets, None).backward();
            let g: Vec<f32> = logits.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            for (n, row) in z.chunks(v).enumerate() {
                let m = row.iter().cloned().fold(f32::MIN, f32::max);
                let s: f32 = row.iter().map(|x| (x - m).exp()).sum();
                for j in 0..v {
                    let p = (row[j] - m).exp() / s;
                    let want = (p - if j as i64 == y[n] { 1.0 } else { 0.0 }) / 2.0;
                    assert!((g[n * v + j] - want).abs() < 1e-6, "{} [{n},{j}]: {} vs {want}", td.name, g[n * v + j]);
                }
            }
        }
    }
}
