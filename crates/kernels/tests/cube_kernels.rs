//! The shapes the CubeCL kernels (`src/cube`, one unit per row) are most likely to get wrong,
//! against Burn's own composition on the same device, forward and backward, f32 to 1e-5 of the
//! reference's scale: a single position (`T = 1`), rows longer than a cube and a head count
//! that does not divide them, a per-batch bias, and LayerNorm on a permuted (strided) input.
//! On every test device; the wgpu one is where the kernels run (lavapipe in CI).

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};
use ember_testing::{assert_close, test_devices};

/// Back on flex, for comparison.
fn host<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    Tensor::<D>::from_data(t.into_data(), &Device::flex())
}

fn assert_scaled<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
    let (a, b) = (host(a), host(b));
    let scale = b.clone().abs().max().into_scalar::<f64>();
    assert_close(&a, &b, 1e-5 * scale, 1e-5, what);
}

fn random<const D: usize>(shape: [usize; D], std: f64) -> Tensor<D> {
    Tensor::<D>::random(shape, Distribution::Normal(0.0, std), &Device::flex())
}

#[test]
fn attention_edge_shapes_match_the_composition() {
    // (B, H, T, dh, bias batch): one position; 67 rows of 67 keys with 3 heads; a bias per
    // batch row (as a learned bias of batch-dependent shape would be).
    for (b, h, t, dh, bias_b) in [(2, 2, 1, 8, None), (2, 3, 67, 16, Some(1)), (3, 2, 20, 4, Some(3))] {
        Device::flex().seed(21 + t as u64);
        let q = random([b, h, t, dh], 1.0);
        let k = random([b, h, t, dh], 1.0);
        let v = random([b, h, t, dh], 1.0);
        let up = random([b, t, h * dh], 1.0);
        let bias = bias_b.map(|bb| random([bb, h, t, t], 0.5));
        for td in test_devices() {
            let device = td.device.clone().autodiff();
            let leaf = |x: &Tensor<4>| Tensor::<4>::from_data(x.to_data(), &device).require_grad();
            let run = |fused: bool| {
                let (q, k, v) = (leaf(&q), leaf(&k), leaf(&v));
                let bias = bias.as_ref().map(&leaf);
                let out = if fused {
                    ember_kernels::attention(q.clone(), k.clone(), v.clone(), bias.clone()).unwrap()
                } else {
                    let options = AttentionModuleOptions { is_causal: true, ..Default::default() };
                    attention(q.clone(), k.clone(), v.clone(), None, bias.clone(), options).swap_dims(1, 2).reshape([b, t, h * dh])
                };
                let grads = (out.clone() * Tensor::<3>::from_data(up.to_data(), &device)).sum().backward();
                let mut grads4 = vec![q.grad(&grads).unwrap(), k.grad(&grads).unwrap(), v.grad(&grads).unwrap()];
                grads4.extend(bias.map(|bias| bias.grad(&grads).unwrap()));
                (out, grads4)
            };
            let ((out, grads), (out_ref, grads_ref)) = (run(true), run(false));
            let what = format!("B={b} H={h} T={t} dh={dh} bias batch {bias_b:?} on {}", td.name);
            assert_scaled(out, out_ref, &format!("attention output, {what}"));
            for ((g, g_ref), name) in grads.into_iter().zip(grads_ref).zip(["dq", "dk", "dv", "dbias"]) {
                assert_scaled(g, g_ref, &format!("attention {name}, {what}"));
            }
        }
    }
}

#[test]
fn layer_norm_of_a_strided_input_matches_the_composition() {
    Device::flex().seed(3);
    // Stored [d, rows] and normalised over d through a transposed view: the kernel reads each
    // row with a stride of `rows`. Mean 3 so that the centring matters.
    let stored = Tensor::<2>::random([48, 33], Distribution::Normal(3.0, 2.0), &Device::flex());
    let gamma = Tensor::<1>::random([48], Distribution::Normal(1.0, 0.3), &Device::flex());
    let up = random([33, 48], 1.0);
    for td in test_devices() {
        let device = td.device.clone().autodiff();
        let run = |fused: bool| {
            let x = Tensor::<2>::from_data(stored.to_data(), &device).require_grad();
            let g = Tensor::<1>::from_data(gamma.to_data(), &device).require_grad();
            let xt = x.clone().transpose();
            let y = if fused {
                ember_kernels::layer_norm(xt, g.clone(), None, 1e-5).unwrap()
            } else {
                burn::tensor::module::layer_norm(xt, g.clone(), None, 1e-5)
            };
            let grads = (y.clone() * Tensor::<2>::from_data(up.to_data(), &device)).sum().backward();
            (y, x.grad(&grads).unwrap(), g.grad(&grads).unwrap())
        };
        let ((y, dx, dg), (y_ref, dx_ref, dg_ref)) = (run(true), run(false));
        assert_scaled(y, y_ref, &format!("layer norm y (strided) on {}", td.name));
        assert_scaled(dx, dx_ref, &format!("layer norm dx (strided) on {}", td.name));
        assert_scaled(dg, dg_ref, &format!("layer norm dgamma (strided) on {}", td.name));
    }
}
