//! The fused-head parity harness shared by `fused.rs` (f32, flex and wgpu) and
//! `fused_f64.rs` (f64, flex): a tiny front-end `ids → tanh(E[ids] · M) → head → loss`
//! whose loss is computed once by the plain path (logits, then
//! [`ember_embed::loss::cross_entropy`]) and once by [`LmHead::fused_loss`], and every
//! gradient compared.

#![allow(dead_code)] // each test binary uses a part of the harness

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_embed::loss::cross_entropy;
use ember_embed::{LmHead, TokenEmbedding};

/// One parity problem: `b × t` positions, vocabulary `v`, width `d`.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub b: usize,
    pub t: usize,
    pub v: usize,
    pub d: usize,
    /// Tied head (else untied with a bias).
    pub tied: bool,
    /// Padding id: a padding row, pad ids in the input and pad targets.
    pub pad: Option<usize>,
    pub chunk: usize,
}

/// Deterministic values in about `[-scale, scale]`.
pub fn values(n: usize, salt: u64, scale: f64) -> Vec<f64> {
    let mut x = salt.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

#[derive(Module, Debug)]
pub struct Front {
    pub table: TokenEmbedding,
    pub head: LmHead,
    /// `M [d, d]`: an upstream weight between the lookup and the head.
    pub mix: Param<Tensor<2>>,
}

fn float<const D: usize>(data: Vec<f64>, shape: [usize; D], device: &Device) -> Tensor<D> {
    // Converted to the device's float type (f32 or f64) by `from_data`.
    Tensor::from_data(TensorData::new(data, shape), device)
}

impl Front {
    pub fn new(c: &Case, device: &Device) -> Self {
        let table = TokenEmbedding::from_weight(float(values(c.v * c.d, 1, 1.0), [c.v, c.d], device), c.pad).unwrap();
        let head = if c.tied {
            LmHead::tied()
        } else {
            LmHead::untied(float(values(c.d * c.v, 2, 1.0), [c.d, c.v], device), Some(float(values(c.v, 3, 0.5), [c.v], device))).unwrap()
        };
        let mix = Param::from_tensor(float(values(c.d * c.d, 4, 1.5 / (c.d as f64).sqrt()), [c.d, c.d], device));
        Self { table, head, mix }
    }

    pub fn hidden(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.table.forward(ids).matmul(self.mix.val().unsqueeze::<3>()).tanh().mul_scalar(2.0)
    }
}

/// Ids and targets `[B, T]`: every third target (and every fourth id) is the pad id when
/// there is one.
pub fn batch(c: &Case, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let n = c.b * c.t;
    let ids: Vec<i64> = (0..n).map(|k| match c.pad {
        Some(p) if k % 4 == 1 => p as i64,
        _ => ((k * 7 + 3) % c.v) as i64,
    }).collect();
    let targets: Vec<i64> = (0..n).map(|k| match c.pad {
        Some(p) if k % 3 == 2 => p as i64,
        _ => ((k * 11 + 5) % c.v) as i64,
    }).collect();
    let int = |data: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(data, [c.b, c.t]), device);
    (int(ids), int(targets))
}

/// `(loss, [table, mix, head weight, head bias] gradients)` of one path, as host vectors.
pub type Outcome = (f64, Vec<(&'static str, Vec<f64>)>);

/// Loss and gradients of `model` on `c`'s batch, plain (`fused = false`) or fused.
pub fn run(model: &Front, c: &Case, fused: bool) -> Outcome {
    let device = model.table.weight.device();
    let (ids, targets) = batch(c, &device);
    let h = model.hidden(ids);
    let loss = if fused {
        model.head.fused_loss(h, targets, &model.table, c.chunk).unwrap()
    } else {
        cross_entropy(model.head.logits(h, &model.table), targets, model.table.padding_idx())
    };
    let value = loss.clone().into_scalar::<f64>();
    let grads = loss.backward();
    let host = |t: Tensor<2>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    let mut out = vec![("table", host(model.table.weight.grad(&grads).unwrap())), ("mix", host(model.mix.grad(&grads).unwrap()))];
    if let Some(u) = &model.head.untied {
        out.push(("head weight", host(u.weight.grad(&grads).unwrap())));
        let b = u.bias.as_ref().unwrap().grad(&grads).unwrap();
        out.push(("head bias", host(b.unsqueeze::<2>())));
    }
    (value, out)
}

/// `max|a − b| / max|b|`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    assert!(scale > 0.0, "a reference gradient is all zero: the comparison would be vacuous");
    err / scale
}

/// Fused vs plain on `c`: loss and every gradient within `tol` (relative); returns the
/// largest relative error seen.
pub fn assert_parity(c: &Case, device: &Device, tol: f64, what: &str) -> f64 {
    let model = Front::new(c, &device.clone().autodiff());
    let (plain_loss, plain) = run(&model, c, false);
    let (fused_loss, fused) = run(&model, c, true);
    let loss_err = (fused_loss - plain_loss).abs() / plain_loss.abs();
    assert!(loss_err <= tol, "{what} {c:?}: loss {fused_loss} vs {plain_loss}");
    let mut worst = loss_err;
    assert_eq!(plain.len(), fused.len());
    for ((name, p), (_, f)) in plain.iter().zip(&fused) {
        let err = rel_err(f, p);
        assert!(err <= tol, "{what} {c:?}: {name} gradient, max relative error {err:.3e} > {tol:.0e}");
        worst = worst.max(err);
    }
    worst
}

/// The cases every precision runs: tied and untied + bias, with and without padding, and
/// chunks that do not divide `N`, equal it, exceed it, and of one row.
pub fn cases() -> Vec<Case> {
    let base = Case { b: 2, t: 7, v: 19, d: 8, tied: true, pad: None, chunk: 4 };
    let mut out = Vec::new();
    for tied in [true, false] {
        for pad in [None, Some(0), Some(5)] {
            for chunk in [4, 1, 14, 100] {
                out.push(Case { tied, pad, chunk, ..base });
            }
        }
    }
    out
}
