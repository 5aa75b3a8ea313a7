//! ALiBi (Press et al., "Train Short, Test Long"): no position vector at the input; head `h`
//! adds `−m_h · (i − j)` to the score of query `i` and key `j ≤ i` (not scaled by `√d`).
//!
//! Slopes: for `n` a power of two, `m_h = 2^(−8h/n)`, `h = 1 … n`. Otherwise take the
//! `c = 2^⌊log₂ n⌋` slopes, then append every other slope of the `2c` list (`m_1, m_3, …` of
//! it) until there are `n` (the official implementation's rule; the list is then unsorted).
//!
//! Keys above the diagonal (`j > i`, the future) get [`ALIBI_MASKED`] = `−∞`, the value Burn's
//! own causal mask uses, so the bias is also a causal mask; `softmax` turns it into exactly 0.
//! The diagonal always holds 0, so no row is fully masked.
//!
//! Cost: the bias `[1, H, Tq, Tk]` depends only on `Tq − Tk` and the distance, not on the
//! offset. It is built with a handful of device ops (two `arange`s, a mask, one broadcast
//! multiply by the slopes) and cached per `(Tq, Tk, device)` in the module, so a model that
//! asks for it once per forward (and reuses it across its layers) — or even once per layer —
//! builds it once per shape, not once per layer per step.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use ember_kernels::{causal_mask, relative_distance};

use crate::cache::BiasCache;

/// The value above the diagonal of [`alibi_bias`]: `−∞` (masked future keys).
pub const ALIBI_MASKED: f32 = f32::NEG_INFINITY;

/// `2^(−8h/n)` for `h = 1 … n`.
fn power_of_two_slopes(n: usize) -> Vec<f64> {
    (1..=n).map(|h| (-8.0 * h as f64 / n as f64).exp2()).collect()
}

/// ALiBi slopes `m_1 … m_n` for `n` heads (empty for `n = 0`).
pub fn slopes(n_heads: usize) -> Vec<f64> {
    if n_heads == 0 {
        return Vec::new();
    }
    let c = 1usize << n_heads.ilog2();
    let mut out = power_of_two_slopes(c);
    if c < n_heads {
        out.extend(power_of_two_slopes(2 * c).into_iter().step_by(2).take(n_heads - c));
    }
    out
}

/// Host bias `[H, Tq, Tk]` (row-major) for queries at `[offset, offset + Tq)` and keys ending
/// where the queries end; `None` above the diagonal (masked). For printing and checking.
pub fn alibi_bias_host(n_heads: usize, tq: usize, tk: usize, offset: usize) -> Vec<Vec<Vec<Option<f64>>>> {
    let key_start = (offset + tq) as i64 - tk as i64;
    slopes(n_heads)
        .iter()
        .map(|m| {
            (0..tq)
                .map(|a| {
                    let i = (offset + a) as i64;
                    (0..tk)
                        .map(|b| {
                            let j = key_start + b as i64;
                            (j <= i).then(|| if i == j { 0.0 } else { -m * (i - j) as f64 })
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The ALiBi bias `[1, H, Tq, Tk]` on `device` for queries at `[o, o + Tq)` and keys at
/// `[o + Tq − Tk, o + Tq)`: `−m_h (i − j)` for `j ≤ i`, [`ALIBI_MASKED`] above. Independent of `o`.
pub fn alibi_bias(slopes: &[f64], tq: usize, tk: usize, device: &Device) -> Tensor<4> {
    let h = slopes.len();
    // i − j = a − b + (Tk − Tq) for query row a, key column b (bottom-right aligned).
    let dist = relative_distance(tq, tk, device).float(); // [Tq, Tk]
    let future = causal_mask(tq, tk, device).reshape([tq, tk]);
    let neg_dist = dist.neg().mask_fill(future, ALIBI_MASKED); // −(i − j), −∞ above the diagonal
    let m: Vec<f32> = slopes.iter().map(|&s| s as f32).collect();
    let m = Tensor::<4>::from_data(TensorData::new(m, [1, h, 1, 1]), device);
    neg_dist.reshape([1, 1, tq, tk]) * m
}

/// The ALiBi scheme as a module: slopes and a cache of built biases (no parameters).
#[derive(Module, Debug)]
pub struct Alibi {
    #[module(skip)]
    slopes: Vec<f64>,
    #[module(skip)]
    cache: BiasCache,
}

impl Alibi {
    /// ALiBi for `n_heads` heads (≥ 1; checked by the config).
    pub fn new(n_heads: usize) -> Self {
        Self { slopes: slopes(n_heads), cache: BiasCache::default() }
    }

    /// The slopes, one per head.
    pub fn slopes(&self) -> &[f64] {
        &self.slopes
    }

    /// The bias `[1, H, Tq, Tk]` (see [`alibi_bias`]), from the cache when built before.
    pub fn bias(&self, tq: usize, tk: usize, device: &Device) -> Tensor<4> {
        self.cache.get(device, (tq, tk), || alibi_bias(&self.slopes, tq, tk, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_testing::test_devices;

    /// The official recursive definition, written independently (start · ratioⁱ form).
    fn reference(n: usize) -> Vec<f64> {
        fn pow2(n: usize) -> Vec<f64> {
            let start = 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0))));
            (0..n).map(|i| start * start.powi(i as i32)).collect()
        }
        if (n as f64).log2().fract() == 0.0 {
            pow2(n)
        } else {
            let c = 2usize.pow((n as f64).log2().floor() as u32);
            let mut s = pow2(c);
            s.extend(reference(2 * c).into_iter().step_by(2).take(n - c));
            s
        }
    }

    #[test]
    fn slopes_match_recursive_definition_for_1_to_64_heads() {
        for n in 1..=64 {
            let (a, b) = (slopes(n), reference(n));
            assert_eq!(a.len(), n);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-12 * y, "n = {n}: {a:?} vs {b:?}");
            }
        }
        let six = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        assert_eq!(slopes(6), six);
        let twelve = slopes(12);
        for (x, y) in twelve[8..].iter().zip([0.70710678, 0.35355339, 0.17677670, 0.08838835]) {
            assert!((x - y).abs() < 1e-8);
        }
    }

    #[test]
    fn bias_is_causal_zero_diagonal_linear_and_offset_free() {
        for td in test_devices() {
            let dev = &td.device;
            for h in [1, 3, 8] {
                let alibi = Alibi::new(h);
                let (tq, tk) = (5, 7);
                let got = alibi.bias(tq, tk, dev);
                assert_eq!(got.dims(), [1, h, tq, tk]);
                let v = got.to_data().convert::<f32>().try_to_vec::<f32>().unwrap();
                let host = alibi_bias_host(h, tq, tk, 11);
                for hh in 0..h {
                    let m = alibi.slopes()[hh];
                    for a in 0..tq {
                        let i = 11 + a;
                        for b in 0..tk {
                            let j = 11 + tq - tk + b;
                            let x = v[((hh * tq) + a) * tk + b];
                            match host[hh][a][b] {
                                None => assert!(j > i && x == f32::NEG_INFINITY, "{}: future key not masked", td.name),
                                Some(e) => {
                                    assert!(j <= i);
                                    assert_eq!(e, -m * (i - j) as f64);
                                    assert!((x as f64 - e).abs() <= 1e-6 * e.abs(), "{}: {x} vs {e}", td.name);
                                    if i == j {
                                        assert_eq!(x, 0.0);
                                    }
                                }
                            }
                        }
                    }
                }
                // square matrix of a longer sequence: the (Tq, Tk) block at the end of rows
                let long = alibi.bias(tk, tk, dev);
                let tail = long.slice([0..1, 0..h, tk - tq..tk, 0..tk]).into_data().try_to_vec::<f32>().unwrap();
                assert_eq!(tail, v, "{}: offset rows = slice of the longer bias", td.name);
            }
        }
    }

    #[test]
    fn bias_is_built_once_per_shape() {
        let dev = Device::flex();
        let alibi = Alibi::new(4);
        for _ in 0..3 {
            alibi.bias(6, 6, &dev);
        }
        assert_eq!(alibi.cache.len(), 1);
        alibi.bias(1, 7, &dev);
        assert_eq!(alibi.cache.len(), 2);
        let clone = alibi.clone();
        clone.bias(6, 6, &dev);
        assert_eq!(alibi.cache.len(), 2, "clones share the cache");
    }
}
