//! Parity of ember's fused kernels (`ember_kernels`: causal attention, LayerNorm, linear, Σx²) with
//! the plain Burn composition they replace — forward values and the gradients of every
//! input — on flex, ndarray and wgpu, in f32 (1e-5 relative) and f64 (1e-9; flex and ndarray).
//! "Relative" is to the reference tensor's scale: `|a − b| ≤ rtol·(|b| + max |b|)`, since
//! the two sides sum in different orders and entries near zero carry the rounding of the
//! large ones they were summed from.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use ember_device::BackendName;
use ember_testing::{assert_close, test_devices};
use ember_kernels::{attention as causal_attention, attention_qkv as causal_attention_qkv, layer_norm, linear};

const B: usize = 3;
const H: usize = 2;
const T: usize = 13; // not a multiple of any SIMD width
const DH: usize = 8;

/// `t` on `device`, cast to `dtype`, as a fresh leaf that requires grad.
fn leaf<const D: usize>(t: &Tensor<D>, device: &Device, dtype: FloatDType) -> Tensor<D> {
    Tensor::<D>::from_data(t.to_data(), device).cast(dtype).require_grad()
}

/// Back on flex in f64, for comparison across devices and dtypes.
fn host<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    Tensor::<D>::from_data(t.into_data().convert::<f64>(), &Device::flex())
}

/// Relative tolerance for a dtype.
fn rtol(dtype: FloatDType) -> f64 {
    match dtype {
        FloatDType::F64 => 1e-9,
        _ => 1e-5,
    }
}

/// `a` ≈ `b` to `rtol` of `b`'s elements and scale (module docs).
fn assert_scaled<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, rtol: f64, what: &str) {
    let scale = b.clone().abs().max().into_scalar::<f64>();
    assert_close(a, b, rtol * scale, rtol, what);
}

fn dtypes(name: BackendName) -> Vec<FloatDType> {
    match name {
        BackendName::Wgpu => vec![FloatDType::F32],
        _ => vec![FloatDType::F32, FloatDType::F64],
    }
}

/// Runs attention on `qkv [B, T, 3, H, dh]` split like the model does (permuted views, so
/// the kernel sees strided q/k/v), weighting the output by `w` → (output, d qkv).
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Burn's `attention` on the split heads, then heads merged.
    Plain,
    /// `causal_attention` on the split heads.
    Fused,
    /// `causal_attention_qkv` on the projection itself.
    FusedQkv,
}

fn attention_run(path: Path, qkv: &Tensor<5>, w: &Tensor<3>, bias: Option<&Tensor<4>>, device: &Device, dtype: FloatDType) -> (Tensor<3>, Tensor<5>) {
    let qkv = leaf(qkv, device, dtype);
    let parts = qkv.clone().permute([2, 0, 3, 1, 4]); // [3, B, H, T, dh]
    let head = |i: usize| parts.clone().slice([i..i + 1]).squeeze_dim::<4>(0);
    let (q, k, v) = (head(0), head(1), head(2));
    let bias = bias.map(|b| Tensor::<4>::from_data(b.to_data(), device).cast(dtype));
    let out = match path {
        Path::Fused => causal_attention(q, k, v, bias).unwrap(),
        Path::FusedQkv => causal_attention_qkv(qkv.clone().reshape([B, T, 3 * H * DH]), H, bias).unwrap(),
        Path::Plain => {
            let options = AttentionModuleOptions { is_causal: true, ..Default::default() };
            attention(q, k, v, None, bias, options).swap_dims(1, 2).reshape([B, T, H * DH])
        }
    };
    let w = Tensor::<3>::from_data(w.to_data(), device).cast(dtype);
    let grads = (out.clone() * w).sum().backward();
    (host(out), host(qkv.grad(&grads).expect("qkv gradient")))
}

#[test]
fn causal_attention_matches_the_composition_forward_and_backward() {
    for td in test_devices() {
        Device::flex().seed(11);
        let qkv = Tensor::<5>::random([B, T, 3, H, DH], Distribution::Normal(0.0, 1.5), &Device::flex());
        let w = Tensor::<3>::random([B, T, H * DH], Distribution::Normal(0.0, 1.0), &Device::flex());
        // An ALiBi-shaped bias (slope·(j − i)) plus noise, shared by the batch.
        let alibi = Tensor::<4>::random([1, H, T, T], Distribution::Normal(0.0, 0.5), &Device::flex());
        for dtype in dtypes(td.name) {
            let device = td.device.clone().autodiff();
            for bias in [None, Some(&alibi)] {
                let (y_ref, g_ref) = attention_run(Path::Plain, &qkv, &w, bias, &device, dtype);
                for path in [Path::Fused, Path::FusedQkv] {
                    let what = format!("{path:?}, {} {dtype:?} bias={}", td.name, bias.is_some());
                    let (y, g) = attention_run(path, &qkv, &w, bias, &device, dtype);
                    assert_scaled(&y, &y_ref, rtol(dtype), &format!("attention output, {what}"));
                    assert_scaled(&g, &g_ref, rtol(dtype), &format!("attention d qkv, {what}"));
                }
            }
            // Without autodiff: the same forward.
            let q = Tensor::<4>::from_data(qkv.clone().slice([0..B, 0..T, 0..1]).reshape([B, T, H, DH]).swap_dims(1, 2).to_data(), &td.device);
            let plain = attention(q.clone(), q.clone(), q.clone(), None, None, AttentionModuleOptions { is_causal: true, ..Default::default() });
            let fused = causal_attention(q.clone(), q.clone(), q, None).unwrap();
            assert_scaled(&host(fused), &host(plain.swap_dims(1, 2).reshape([B, T, H * DH])), 1e-5, &format!("attention, {} no autodiff", td.name));
        }
    }
}

/// LayerNorm of `x` (with gain and optional bias `[d]`), output weighted by `w` → (y, dx, dγ, dβ).
fn layer_norm_run(fused: bool, x: &Tensor<3>, w: &Tensor<3>, (gamma, beta): (&Tensor<1>, Option<&Tensor<1>>), device: &Device, dtype: FloatDType) -> Vec<Tensor<3>> {
    let d = x.dims()[2];
    let x = leaf(x, device, dtype);
    let gamma = leaf(gamma, device, dtype);
    let beta = beta.map(|b| leaf(b, device, dtype));
    let y = if fused {
        layer_norm(x.clone(), gamma.clone(), beta.clone(), 1e-5).unwrap()
    } else {
        burn::tensor::module::layer_norm(x.clone(), gamma.clone(), beta.clone(), 1e-5) // what burn::nn::LayerNorm runs
    };
    let w = Tensor::<3>::from_data(w.to_data(), device).cast(dtype);
    let grads = (y.clone() * w).sum().backward();
    let mut out = vec![host(y), host(x.grad(&grads).unwrap()), host(gamma.grad(&grads).unwrap().reshape([1, 1, d]))];
    if let Some(beta) = beta {
        out.push(host(beta.grad(&grads).unwrap().reshape([1, 1, d])));
    }
    out
}

#[test]
fn layer_norm_matches_burn_forward_and_backward() {
    for td in test_devices() {
        Device::flex().seed(5);
        // Rows with a large mean (the centred variance is what matters) and several rayon tasks.
        let x = Tensor::<3>::random([5, 37, 24], Distribution::Normal(3.0, 2.0), &Device::flex());
        let w = Tensor::<3>::random([5, 37, 24], Distribution::Normal(0.0, 1.0), &Device::flex());
        // A non-trivial gain and bias, as after training.
        let gamma = Tensor::<1>::random([24], Distribution::Normal(1.0, 0.3), &Device::flex());
        let beta = Tensor::<1>::random([24], Distribution::Normal(0.0, 0.3), &Device::flex());
        for dtype in dtypes(td.name) {
            let device = td.device.clone().autodiff();
            for bias in [None, Some(&beta)] {
                let fused = layer_norm_run(true, &x, &w, (&gamma, bias), &device, dtype);
                let plain = layer_norm_run(false, &x, &w, (&gamma, bias), &device, dtype);
                for (i, (a, b)) in fused.iter().zip(&plain).enumerate() {
                    let what = ["y", "dx", "dgamma", "dbeta"][i];
                    assert_scaled(a, b, rtol(dtype), &format!("layer norm {what}, {} {dtype:?} bias={}", td.name, bias.is_some()));
                }
            }
        }
    }
}

#[test]
fn linear_matches_burn_forward_and_backward() {
    for td in test_devices() {
        Device::flex().seed(8);
        // 3·37 rows: the row fold; d_out 50 and 2·10⁶ FLOPs: both the one-thread and the
        // split gemm paths (the larger shape).
        for (rows, d_in, d_out) in [(37, 24, 50), (150, 96, 80)] {
            let x = Tensor::<3>::random([3, rows, d_in], Distribution::Normal(0.0, 1.0), &Device::flex());
            let w = Tensor::<2>::random([d_out, d_in], Distribution::Normal(0.0, 0.2), &Device::flex());
            let bias = Tensor::<1>::random([d_out], Distribution::Normal(0.0, 0.2), &Device::flex());
            let up = Tensor::<3>::random([3, rows, d_out], Distribution::Normal(0.0, 1.0), &Device::flex());
            for dtype in dtypes(td.name) {
                let device = td.device.clone().autodiff();
                // The weight enters transposed (a strided view, as the tied head's table does).
                let run = |fused: bool| {
                    let (x, w, b) = (leaf(&x, &device, dtype), leaf(&w, &device, dtype), leaf(&bias, &device, dtype));
                    let y = if fused {
                        linear(x.clone(), w.clone().transpose(), Some(b.clone())).unwrap()
                    } else {
                        burn::tensor::module::linear(x.clone(), w.clone().transpose(), Some(b.clone()))
                    };
                    let grads = (y.clone() * Tensor::<3>::from_data(up.to_data(), &device).cast(dtype)).sum().backward();
                    let gw = w.grad(&grads).unwrap().reshape([1, d_out, d_in]);
                    let gb = b.grad(&grads).unwrap().reshape([1, 1, d_out]);
                    [host(y), host(x.grad(&grads).unwrap()), host(gw), host(gb)]
                };
                let (fused, plain) = (run(true), run(false));
                for (i, (a, b)) in fused.iter().zip(&plain).enumerate() {
                    let what = ["y", "dx", "dw", "db"][i];
                    assert_scaled(a, b, rtol(dtype), &format!("linear {what} {rows}x{d_in}x{d_out}, {} {dtype:?}", td.name));
                }
            }
        }
    }
}

#[test]
fn sum_of_squares_equals_the_composition() {
    use ember_kernels::sum_of_squares;
    // 40 000 elements: several parallel chunks and a tail that is not a multiple of 16.
    let x = Tensor::<2>::random([200, 200], Distribution::Normal(0.0, 1.0), &Device::flex()).cast(FloatDType::F64);
    let reference: f64 = x.clone().into_data().convert::<f64>().iter::<f64>().map(|v| v * v).sum();
    for td in test_devices() {
        for dtype in dtypes(td.name) {
            let xd = Tensor::<2>::from_data(x.to_data(), &td.device).cast(dtype);
            let got = sum_of_squares(xd.clone()).into_scalar::<f64>();
            let plain = xd.square().sum().into_scalar::<f64>();
            let what = format!("Σx² on {} {dtype:?}", td.name);
            assert!((got - reference).abs() <= rtol(dtype) * reference, "{what}: {got} vs {reference} (composition {plain})");
            assert!((got - plain).abs() <= rtol(dtype) * reference, "{what}: {got} vs composition {plain}");
        }
    }
}


#[test]
fn target_log_probs_match_log_softmax_and_gather() {
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, TensorData};
    Device::flex().seed(17);
    // 37 rows over a vocabulary of 65 (tiny Shakespeare's), logits on a wide scale.
    let (n, v) = (37, 65);
    let z = Tensor::<2>::random([n, v], Distribution::Normal(0.0, 4.0), &Device::flex());
    let ids: Vec<i64> = (0..n as i64).map(|i| (i * 23 + 5) % v as i64).collect();
    let up = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &Device::flex());
    for td in test_devices() {
        for dtype in dtypes(td.name) {
            let device = td.device.clone().autodiff();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(ids.clone(), [n]), &device);
            let run = |fused: bool| {
                let z = leaf(&z, &device, dtype);
                let out = if fused {
                    ember_kernels::target_log_probs(z.clone(), targets.clone()).unwrap()
                } else {
                    log_softmax(z.clone(), 1).gather(1, targets.clone().reshape([n, 1])).reshape([n])
                };
                let grads = (out.clone() * Tensor::<1>::from_data(up.to_data(), &device).cast(dtype)).sum().backward();
                (host(out), host(z.grad(&grads).unwrap()))
            };
            let ((y, g), (y_ref, g_ref)) = (run(true), run(false));
            assert_scaled(&y, &y_ref, rtol(dtype), &format!("target log-probs, {} {dtype:?}", td.name));
            assert_scaled(&g, &g_ref, rtol(dtype), &format!("target log-probs d logits, {} {dtype:?}", td.name));
        }
    }
}
