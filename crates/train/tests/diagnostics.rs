//! The attention probabilities behind `ember_train::diagnostics` are the ones the model
//! uses: for every scheme, `P · V` through the output projection reproduces the block's
//! fused attention output, rows sum to 1 and nothing above the diagonal is attended.

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use common::{rng_lock, SCHEMES};
use ember_position::PositionConfig;
use ember_testing::assert_close;
use ember_train::diagnostics::{attention_stats, head_stats};
use ember_train::model::{ModelConfig, TinyLmConfig};

#[test]
fn probabilities_reproduce_the_fused_attention_of_every_scheme() {
    let _lock = rng_lock();
    let device = Device::flex();
    let (v, t, d, h) = (13usize, 10usize, 16usize, 2usize);
    for scheme in SCHEMES {
        let position: PositionConfig = toml::from_str(scheme).unwrap();
        device.seed(9);
        let model = TinyLmConfig::new(v, ModelConfig::new(d, 1, h), position).init(&device).unwrap();
        let x = Tensor::<3>::random([2, t, d], Distribution::Normal(0.0, 1.0), &device);
        let attn = &model.blocks[0].attn;
        let bias = model.pos.score_bias(t, t, 0, &device);
        let p = attn.probabilities(x.clone(), &model.pos, bias.clone(), 0).unwrap(); // [2, H, T, T]
        // Rows sum to one; the future is never attended.
        assert_close(&p.clone().sum_dim(3), &Tensor::ones([2, h, t, 1], &device), 1e-6, 0.0, &format!("{scheme}: row sums"));
        let upper = p.clone().triu(1).abs().max().into_scalar::<f32>();
        assert!(upper == 0.0, "{scheme}: attention above the diagonal {upper}");
        // ctx = P · V, heads merged, through the output projection = the block's attention.
        let qkv = attn.qkv.forward(x.clone()); // [2, T, 3d]
        let vals = qkv.slice([0..2, 0..t, 2 * d..3 * d]).reshape([2, t, h, d / h]).swap_dims(1, 2);
        let ctx = p.matmul(vals).swap_dims(1, 2).reshape([2, t, d]);
        let want = attn.proj.forward(ctx);
        let got = attn.forward(x, &model.pos, bias, 0).unwrap();
        assert_close(&got, &want, 1e-5, 1e-4, &format!("{scheme}: P·V vs the fused attention"));
    }
}

#[test]
fn stats_cover_every_layer_and_head_within_their_ranges() {
    let device = Device::flex();
    device.seed(2);
    let position: PositionConfig = toml::from_str("scheme = \"alibi\"").unwrap();
    let model = TinyLmConfig::new(11, ModelConfig::new(16, 3, 4), position).init(&device).unwrap();
    let t = 9;
    let ids = model.tok.ids_tensor(&(0..t as u32).collect::<Vec<_>>(), 1, t).unwrap();
    let stats = attention_stats(&model, ids.clone()).unwrap();
    assert_eq!((stats.len(), stats[0].len()), (3, 4));
    // Bounds: 0 ≤ distance ≤ mean of i = (T − 1)/2 · 2, 0 ≤ entropy ≤ mean ln(i + 1).
    let max_h = (1..=t).map(|n| (n as f64).ln()).sum::<f64>() / t as f64;
    for (l, layer) in stats.iter().enumerate() {
        for s in layer {
            assert!(s.distance >= 0.0 && s.distance <= (t - 1) as f64, "layer {l}: {s:?}");
            assert!(s.entropy >= -1e-9 && s.entropy <= max_h + 1e-6, "layer {l}: {s:?}");
        }
    }
    // The first layer's numbers are head_stats of its probabilities.
    let p0 = model.attention_probabilities(ids, 0).unwrap().remove(0);
    assert_eq!(head_stats(p0), stats[0]);
}
