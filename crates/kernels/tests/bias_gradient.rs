//! A learned score bias (T5, KERPLE, FIRE) gets its gradient through the fused attention:
//! `∂L/∂bias` from `ember_kernels::attention` / `attention_qkv` equals Burn's autodiff of the
//! plain composition (scores + bias, causal mask, softmax, `· V`), for a per-batch
//! `[B, H, T, T]` bias and a broadcast `[1, H, T, T]` one (summed over the batch), with the
//! gradients of `q, k, v` unchanged; on every test device, f32 (1e-5) and f64 (1e-9).

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use ember_device::BackendName;
use ember_kernels::{attention, attention_qkv, causal_mask};
use ember_testing::{assert_close, test_devices};

const B: usize = 2;
const H: usize = 3;
const T: usize = 11;
const DH: usize = 4;

fn host<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    Tensor::<D>::from_data(t.into_data().convert::<f64>(), &Device::flex())
}

/// The plain composition: `q, k, v [B, H, T, dh]`, `bias [1 or B, H, T, T]` → `[B, T, H·dh]`.
fn plain(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<3> {
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (DH as f64).sqrt()) + bias;
    let mask = causal_mask(T, T, &scores.device()).expand([B, H, T, T]);
    let p = softmax(scores.mask_fill(mask, f64::NEG_INFINITY), 3);
    p.matmul(v).swap_dims(1, 2).reshape([B, T, H * DH])
}

#[test]
fn a_learned_bias_gets_the_composition_gradient() {
    for td in test_devices() {
        let dtypes = if td.name == BackendName::Wgpu { vec![FloatDType::F32] } else { vec![FloatDType::F32, FloatDType::F64] };
        for dtype in dtypes {
            let rtol = if dtype == FloatDType::F64 { 1e-9 } else { 1e-5 };
            let device = td.device.clone().autodiff();
            Device::flex().seed(11);
            let qkv0 = Tensor::<3>::random([B, T, 3 * H * DH], Distribution::Normal(0.0, 1.0), &Device::flex());
            let w0 = Tensor::<3>::random([B, T, H * DH], Distribution::Normal(0.0, 1.0), &Device::flex());
            for bias_batch in [1, B] {
                let bias0 = Tensor::<4>::random([bias_batch, H, T, T], Distribution::Normal(0.0, 1.0), &Device::flex());
                // path 0: plain composition, 1: attention on split heads, 2: attention_qkv.
                let run = |path: usize| {
                    let qkv = Tensor::<3>::from_data(qkv0.to_data(), &device).cast(dtype).require_grad();
                    let bias = Tensor::<4>::from_data(bias0.to_data(), &device).cast(dtype).require_grad();
                    let w = Tensor::<3>::from_data(w0.to_data(), &device).cast(dtype);
                    let heads = qkv.clone().reshape([B, T, 3, H, DH]).permute([2, 0, 3, 1, 4]);
                    let part = |i: usize| heads.clone().slice([i..i + 1]).squeeze_dim::<4>(0);
                    let out = match path {
                        0 => plain(part(0), part(1), part(2), bias.clone()),
                        1 => attention(part(0), part(1), part(2), Some(bias.clone())).unwrap(),
                        _ => attention_qkv(qkv.clone(), H, Some(bias.clone())).unwrap(),
                    };
                    let grads = (out.clone() * w).sum().backward();
                    (host(out), host(qkv.grad(&grads).unwrap()), host(bias.grad(&grads).unwrap()))
                };
                let (y0, dqkv0, db0) = run(0);
                assert_eq!(db0.dims(), [bias_batch, H, T, T]);
                for path in [1, 2] {
                    let (y, dqkv, db) = run(path);
                    let what = format!("{} {dtype:?}, bias batch {bias_batch}, path {path}", td.name);
                    let scaled = |a: &Tensor<3>, b: &Tensor<3>, name: &str| assert_close(a, b, rtol * b.clone().abs().max().into_scalar::<f64>(), rtol, &format!("{name}, {what}"));
                    scaled(&y, &y0, "output");
                    scaled(&dqkv, &dqkv0, "d qkv");
                    let db_scale = db0.clone().abs().max().into_scalar::<f64>();
                    assert!(db_scale > 1e-3, "the bias gradient is not trivially zero ({db_scale})");
                    assert_close(&db, &db0, rtol * db_scale, rtol, &format!("d bias, {what}"));
                }
            }
        }
    }
}

#[test]
fn a_constant_bias_gets_no_gradient_and_changes_nothing_else() {
    // ALiBi's bias does not require grad: the node takes the plain backward.
    let device = Device::flex().autodiff();
    device.seed(3);
    let qkv = Tensor::<3>::random([B, T, 3 * H * DH], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let bias = Tensor::<4>::random([1, H, T, T], Distribution::Normal(0.0, 1.0), &device);
    let grads = attention_qkv(qkv.clone(), H, Some(bias.clone())).unwrap().sum().backward();
    assert!(bias.grad(&grads).is_none());
    let learned = bias.clone().require_grad();
    let grads2 = attention_qkv(qkv.clone(), H, Some(learned.clone())).unwrap().sum().backward();
    assert_close(&host(qkv.grad(&grads).unwrap()), &host(qkv.grad(&grads2).unwrap()), 0.0, 0.0, "d qkv with and without a bias gradient");
    assert!(learned.grad(&grads2).is_some());
}
