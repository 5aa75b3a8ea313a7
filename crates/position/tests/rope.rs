//! RoPE on every test device: check values, Burn parity, rotation properties, layouts,
//! partial rotary, offsets.

mod common;

use burn::tensor::Tensor;
use common::{random, tensor4, to_vec};
use ember_testing::{assert_close, test_devices};
use ember_position::rope::{rotate_vector, Rope, RopeLayout};
use ember_position::rope_scaling::{scaled_inv_freq, RopeScaling};

const Q: [f32; 8] = [1., 2., 3., 4., 5., 6., 7., 8.];
const INTERLEAVED_P3: [f64; 8] = [-1.27223251, -1.83886499, 1.68392864, 4.70790658, 4.81777717, 6.1472777, 6.97596854, 8.02096397];
const HALF_P3: [f64; 8] = [-1.69559254, 0.13755174, 2.7886816, 3.97598204, -4.80884247, 6.32305935, 7.08683674, 8.01196398];

fn rope(layout: RopeLayout, hd: usize, rot: usize) -> Rope {
    Rope::new(layout, 10000.0, hd, rot, RopeScaling::None {})
}

#[test]
fn check_values_both_layouts_on_device_and_host() {
    let freqs = scaled_inv_freq(10000.0, 8, &RopeScaling::None {}, None);
    let q64: Vec<f64> = Q.iter().map(|&v| v as f64).collect();
    for (layout, expect) in [(RopeLayout::Interleaved, INTERLEAVED_P3), (RopeLayout::HalfSplit, HALF_P3)] {
        let host = rotate_vector(&q64, 3.0, &freqs, layout);
        for (a, b) in host.iter().zip(expect) {
            assert!((a - b).abs() < 1e-7, "{layout:?} host {host:?}");
        }
        for td in test_devices() {
            let x = tensor4(Q.repeat(4), [1, 1, 4, 8], &td.device);
            let out = rope(layout, 8, 8).apply(x.clone(), 0);
            let row3 = out.slice([0..1, 0..1, 3..4, 0..8]);
            let e = tensor4(expect.iter().map(|&v| v as f32).collect(), [1, 1, 1, 8], &td.device);
            assert_close(&row3, &e, 1e-5, 1e-6, &format!("{} {layout:?} p3", td.name));
            // offset 3: the first row is position 3
            let at3 = rope(layout, 8, 8).apply(x.slice([0..1, 0..1, 0..1, 0..8]), 3);
            assert_close(&at3, &e, 1e-5, 1e-6, &format!("{} {layout:?} offset 3", td.name));
        }
    }
}

#[test]
fn interleaved_equals_burn_rotary_encoding() {
    for td in test_devices() {
        let dev = &td.device;
        let (b, h, t, d) = (2, 3, 40, 16);
        let x = tensor4(random(b * h * t * d, 1), [b, h, t, d], dev);
        let burn_rope = burn::nn::RotaryEncodingConfig::new(64, d).init(dev);
        let ours = rope(RopeLayout::Interleaved, d, d);
        assert_close(&ours.apply(x.clone(), 0), &burn_rope.apply(x.clone(), 0), 5e-5, 0.0, &format!("{} start 0", td.name));
        let tail = x.slice([0..b, 0..h, 0..20, 0..d]);
        assert_close(&ours.apply(tail.clone(), 17), &burn_rope.apply(tail, 17), 5e-5, 0.0, &format!("{} start 17", td.name));
    }
}

#[test]
fn norms_preserved_and_scores_depend_only_on_distance() {
    for td in test_devices() {
        let dev = &td.device;
        for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
            let (t, d) = (12, 16);
            let r = rope(layout, d, d);
            let q = tensor4(random(t * d, 2), [1, 1, t, d], dev);
            let k = tensor4(random(t * d, 3), [1, 1, t, d], dev);
            // norms, at a large offset
            let rq = r.apply(q.clone(), 10_000);
            let n0 = to_vec(&q.clone().powi_scalar(2).sum_dim(3));
            let n1 = to_vec(&rq.powi_scalar(2).sum_dim(3));
            for (a, b) in n0.iter().zip(&n1) {
                assert!((a - b).abs() <= 1e-5 * a.max(1.0), "{} {layout:?} norm {a} vs {b}", td.name);
            }
            // ⟨R_m q_m, R_n k_n⟩ for all m, n equals the same with every position shifted by s
            let scores = |s: usize| {
                let (rq, rk) = r.apply_qk(q.clone(), k.clone(), s);
                rq.matmul(rk.swap_dims(2, 3))
            };
            let base = scores(0);
            for s in [1, 7, 333, 4096] {
                assert_close(&scores(s), &base, 2e-4, 1e-4, &format!("{} {layout:?} shift {s}", td.name));
            }
        }
    }
}

#[test]
fn half_split_of_permuted_equals_permuted_interleaved() {
    let d = 8;
    let perm = [0, 2, 4, 6, 1, 3, 5, 7];
    for td in test_devices() {
        let dev = &td.device;
        let t = 6;
        let x = random(t * d, 4);
        let xp: Vec<f32> = x.chunks(d).flat_map(|row| perm.iter().map(|&i| row[i]).collect::<Vec<_>>()).collect();
        let inter = rope(RopeLayout::Interleaved, d, d).apply(tensor4(x, [1, 1, t, d], dev), 5);
        let half = rope(RopeLayout::HalfSplit, d, d).apply(tensor4(xp, [1, 1, t, d], dev), 5);
        let iv = to_vec(&inter);
        let inter_perm: Vec<f32> = iv.chunks(d).flat_map(|row| perm.iter().map(|&i| row[i] as f32).collect::<Vec<_>>()).collect();
        assert_close(&half, &tensor4(inter_perm, [1, 1, t, d], dev), 1e-6, 0.0, &format!("{} permutation", td.name));
    }
}

#[test]
fn partial_rotary_leaves_the_tail_untouched() {
    for td in test_devices() {
        let dev = &td.device;
        for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
            let (t, hd, r) = (5, 12, 6);
            let x = tensor4(random(2 * t * hd, 5), [1, 2, t, hd], dev);
            let out = rope(layout, hd, r).apply(x.clone(), 2);
            let tail = out.clone().slice([0..1, 0..2, 0..t, r..hd]);
            assert_close(&tail, &x.clone().slice([0..1, 0..2, 0..t, r..hd]), 0.0, 0.0, &format!("{} tail", td.name));
            let head = rope(layout, r, r).apply(x.slice([0..1, 0..2, 0..t, 0..r]), 2);
            assert_close(&out.slice([0..1, 0..2, 0..t, 0..r]), &head, 1e-6, 0.0, &format!("{} rotated part", td.name));
        }
    }
}

#[test]
fn offset_equals_slice_of_longer_sequence_for_every_scaling() {
    let scalings = [
        RopeScaling::None {},
        RopeScaling::Linear { factor: 4.0 },
        RopeScaling::Dynamic { factor: 2.0, max_position: 16 },
        RopeScaling::Yarn { factor: 8.0, original_max_position: 32, beta_fast: 32.0, beta_slow: 1.0, attention_factor: None },
        RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: 64 },
    ];
    for td in test_devices() {
        let dev = &td.device;
        for scaling in &scalings {
            for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
                let (o, t, d) = (19, 7, 16);
                let x = tensor4(random(2 * (o + t) * d, 6), [1, 2, o + t, d], dev);
                let long = Rope::new(layout, 10000.0, d, d, scaling.clone()).apply(x.clone(), 0);
                let fresh = Rope::new(layout, 10000.0, d, d, scaling.clone());
                let short = fresh.apply(x.clone().slice([0..1, 0..2, o..o + t, 0..d]), o);
                let what = format!("{} {layout:?} {scaling:?}", td.name);
                assert_close(&short, &long.clone().slice([0..1, 0..2, o..o + t, 0..d]), 1e-5, 0.0, &what);
                // and the device result equals the host rotation with the scaled frequencies
                let freqs = fresh.frequencies(o + t);
                let xs = to_vec(&x.slice([0..1, 0..1, o..o + t, 0..d]));
                let host: Vec<f32> = xs.chunks(d).enumerate().flat_map(|(i, v)| rotate_vector(v, (o + i) as f64, &freqs, layout)).map(|v| v as f32).collect();
                assert_close(&short.slice([0..1, 0..1, 0..t, 0..d]), &tensor4(host, [1, 1, t, d], dev), 1e-5, 1e-5, &format!("{what} host"));
            }
        }
    }
}

#[test]
fn gradients_flow_through_the_rotation() {
    let dev = burn::tensor::Device::flex().autodiff();
    let q = tensor4(random(32, 7), [1, 1, 4, 8], &dev).require_grad();
    let r = rope(RopeLayout::HalfSplit, 8, 8);
    let (rq, _) = r.apply_qk(q.clone(), q.clone(), 0);
    let loss: Tensor<1> = rq.powi_scalar(2).sum();
    let g = q.grad(&loss.backward()).expect("grad of q");
    // d/dq ‖R q‖² = 2 q (rotation preserves norm)
    assert_close(&g, &(q.clone().detach() * 2.0), 1e-5, 1e-5, "gradient of the norm");
}
