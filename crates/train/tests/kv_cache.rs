//! The KV cache changes nothing but speed: for every position scheme, cached logits equal
//! uncached ones position by position, and cached sampling gives the same tokens as the
//! uncached sampler, including past the window (where the cached sampler re-prefills).

mod common;

use burn::tensor::{Device, Tensor};
use common::{rng_lock, SCHEMES};
use ember_position::PositionConfig;
use ember_train::model::{ModelConfig, TinyLm, TinyLmConfig};
use ember_train::sample::{continue_ids, SampleOptions};

const V: usize = 13;

/// A tiny model (d 16, 2 layers, 2 heads over 13 tokens) with `scheme`, seeded.
fn model(scheme: &str, device: &Device) -> TinyLm {
    let position: PositionConfig = toml::from_str(scheme).unwrap();
    device.seed(7);
    TinyLmConfig::new(V, ModelConfig::new(16, 2, 2), position).init(device).unwrap()
}

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn cached_logits_equal_uncached_logits_position_by_position() {
    let _lock = rng_lock();
    let device = Device::flex();
    let (b, t) = (2usize, 12usize);
    let ids: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % V) as u32).collect();
    for scheme in SCHEMES {
        let model = model(scheme, &device);
        let full = host(model.forward(model.tok.ids_tensor(&ids, b, t).unwrap(), 0).unwrap()); // [B, T, V]
        // Feed the sequence in chunks: a prefill of 5, single tokens, a chunk of 3 after
        // cached tokens (the bottom-right causal mask), single tokens again.
        let mut cache = model.kv_cache();
        let mut at = 0;
        for chunk in [5usize, 1, 1, 3, 1, 1] {
            let rows: Vec<u32> = (0..b).flat_map(|r| ids[r * t + at..r * t + at + chunk].iter().copied()).collect();
            let got = host(model.forward_cached(model.tok.ids_tensor(&rows, b, chunk).unwrap(), &mut cache).unwrap());
            assert_eq!(cache.len(), at + chunk);
            for r in 0..b {
                let want = &full[(r * t + at) * V..(r * t + at + chunk) * V];
                let have = &got[r * chunk * V..(r + 1) * chunk * V];
                let diff = max_diff(want, have);
                assert!(diff <= 1e-5, "{scheme}: positions {at}..{} of row {r} differ by {diff}", at + chunk);
            }
            at += chunk;
        }
        assert_eq!(at, t);
        let k = cache.layers[0].get().unwrap().0;
        assert_eq!(k.dims(), [b, 2, t, 8], "{scheme}: cache keys are [B, H, T, dh]");
    }
}

#[test]
fn cached_sampling_equals_uncached_sampling_token_for_token() {
    let _lock = rng_lock();
    let device = Device::flex();
    for scheme in SCHEMES {
        let model = model(scheme, &device);
        // window 8 with 30 new tokens: most steps run past the window.
        for (prompt, temperature) in [(vec![1u32], 0.0), (vec![4, 2, 9], 0.0), ((0..11).map(|i| (i % V) as u32).collect(), 0.0), (vec![3], 1.0)] {
            let options = |cache| SampleOptions { prompt: String::new(), tokens: 30, temperature, top_k: None, seed: 11, window: 8, cache };
            let cached = continue_ids(&model, prompt.clone(), &options(true)).unwrap();
            let uncached = continue_ids(&model, prompt.clone(), &options(false)).unwrap();
            assert_eq!(cached.len(), prompt.len() + 30);
            assert_eq!(cached, uncached, "{scheme}, prompt {prompt:?}, temperature {temperature}");
        }
    }
}

#[test]
fn a_cache_of_another_model_is_refused_and_a_learned_table_is_not_overrun() {
    let _lock = rng_lock();
    let device = Device::flex();
    let model = model(SCHEMES[2], &device); // learned, 16 positions
    let mut wrong = ember_train::model::KvCache::new(3);
    let err = model.forward_cached(model.tok.ids_tensor(&[1], 1, 1).unwrap(), &mut wrong).unwrap_err().to_string();
    assert!(err.contains("cache"), "{err}");
    let mut cache = model.kv_cache();
    let ids: Vec<u32> = (0..16).map(|i| (i % V) as u32).collect();
    model.forward_cached(model.tok.ids_tensor(&ids, 1, 16).unwrap(), &mut cache).unwrap();
    assert!(model.forward_cached(model.tok.ids_tensor(&[1], 1, 1).unwrap(), &mut cache).is_err(), "position 16 is past the table");
    assert_eq!(cache.len(), 16, "a refused step leaves the cache as it was");
}
