//! Model-level properties of every position scheme: causality, and the sinusoidal scheme
//! actually learning (the input-embedding scale).

mod common;

use burn::tensor::{Device, Tensor};
use common::{rng_lock, small_corpus, temp_dir, tiny_config, SCHEMES};
use ember_position::PositionConfig;
use ember_train::model::{ModelConfig, TinyLmConfig};
use ember_train::trainer::{train, TrainOptions};


#[test]
fn changing_later_tokens_never_changes_earlier_logits() {
    let _lock = rng_lock();
    let device = Device::flex();
    let (v, t) = (11usize, 12usize);
    for scheme in SCHEMES {
        let position: PositionConfig = toml::from_str(scheme).unwrap();
        device.seed(4);
        let model = TinyLmConfig::new(v, ModelConfig::new(16, 2, 2), position).init(&device).unwrap();
        let ids: Vec<u32> = (0..t).map(|i| ((i * 5 + 2) % v) as u32).collect();
        let logits = |ids: &[u32]| -> Vec<f32> {
            let x = model.tok.ids_tensor(ids, 1, t).unwrap();
            model.forward(x, 0).unwrap().into_data().try_to_vec::<f32>().unwrap()
        };
        let base = logits(&ids);
        for cut in [0, 5, t - 2] {
            let mut changed = ids.clone();
            for id in &mut changed[cut + 1..] {
                *id = (*id + 3) % v as u32;
            }
            let other = logits(&changed);
            let upto = (cut + 1) * v; // positions 0..=cut
            let diff = base[..upto].iter().zip(&other[..upto]).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-6, "{scheme}: logits at positions ≤ {cut} moved by {diff} when later tokens changed");
            let later = base[upto..].iter().zip(&other[upto..]).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(later > 1e-4, "{scheme}: the change must reach position {} (sanity)", cut + 1);
        }
    }
}

/// Entropy (nats) of the unigram distribution of `ids`: the loss of the best model that
/// ignores context.
fn unigram_loss(ids: &[u32]) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0usize) += 1;
    }
    let n = ids.len() as f64;
    counts.values().map(|&c| -(c as f64 / n) * (c as f64 / n).ln()).sum()
}

#[test]
fn sinusoidal_trains_below_the_unigram_loss() {
    let _lock = rng_lock();
    let dir = temp_dir("sinusoidal-learns");
    let corpus = small_corpus(&dir, 40_000);
    let mut config = tiny_config(&corpus, &dir.join("run"), "scheme = \"sinusoidal\"", 150);
    config.model.d_model = 32;
    config.train.batch_size = 8;
    config.train.eval_interval = 150;
    config.train.eval_batches = 8;
    let data = ember_train::dataset::Dataset::load(&config.data, None).unwrap();
    let unigram = unigram_loss(&data.val);
    let out = train(&config, &Device::flex(), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    eprintln!("sinusoidal (scale √d): val {:.4}, unigram {unigram:.4}", out.final_val_loss);
    assert!(out.final_val_loss < unigram - 0.1, "val loss {} is not below the unigram loss {unigram}", out.final_val_loss);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embedding_scale_defaults_per_scheme_and_the_head_reads_the_unscaled_table() {
    let d = 16usize;
    for (scheme, want) in SCHEMES.iter().map(|s| (*s, if s.contains("sinusoidal") { (d as f64).sqrt() } else { 1.0 })) {
        let position: PositionConfig = toml::from_str(scheme).unwrap();
        let config = TinyLmConfig::new(7, ModelConfig::new(d, 1, 2), position);
        assert_eq!(config.embed_scale(), want, "{scheme}");
    }
    // lookup = s·E[ids]; logits of the tied head = h·Eᵀ with the unscaled E.
    let device = Device::flex();
    let mut m = ModelConfig::new(d, 1, 2);
    m.embed_scale = Some(ember_train::model::EmbedScale::Value(2.5));
    let model = TinyLmConfig::new(7, m, toml::from_str("scheme = \"none\"").unwrap()).init(&device).unwrap();
    let ids = model.tok.ids_tensor(&[1, 4, 6], 1, 3).unwrap();
    let table = model.tok.weight.val();
    let direct = table.clone().select(0, Tensor::<1, burn::tensor::Int>::from_ints([1, 4, 6], &device)).mul_scalar(2.5);
    ember_testing_close(model.lookup(ids.clone()).reshape([3, d]), direct);
    let h = model.hidden_from_embeddings(model.lookup(ids.clone()), 0).unwrap();
    let want = h.clone().reshape([3, d]).matmul(table.transpose());
    ember_testing_close(model.forward(ids, 0).unwrap().reshape([3, 7]), want);
}

fn ember_testing_close(a: Tensor<2>, b: Tensor<2>) {
    let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
    let diff = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff < 1e-5, "max diff {diff}");
}
