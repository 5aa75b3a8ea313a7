//! Autoregressive sampling with temperature and top-k, with or without a KV cache.
//!
//! Each new token is drawn from `softmax(z / temperature)` restricted to the `top_k` largest
//! logits of the last position (temperature 0: the most likely token, greedy decoding), with
//! the model seeing at most `window` tokens (its training context), always at positions
//! `[0, len)`. Draws use a seeded host RNG: the same seed gives the same text.
//!
//! ## KV cache
//!
//! Without a cache every new token recomputes the whole window. With one
//! ([`SampleOptions::cache`], the default of `ember sample`), the prompt is run once (a
//! prefill into a [`KvCache`]) and each new token then costs one token's forward pass
//! ([`TinyLm::forward_cached`]). Once the sequence is longer than `window`, the uncached
//! sampler's window slides and every token in it moves to a new position (and sees less
//! history), so cached keys and values no longer describe it: for those steps the cached
//! sampler re-prefills the last `window` tokens, which is what the uncached one computes.
//! Both therefore produce the same tokens (to float rounding of the logits).

use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::model::{KvCache, TinyLm};
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// Sampling settings.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Text to continue (empty: start from a newline, or token 0).
    pub prompt: String,
    /// New tokens to generate.
    pub tokens: usize,
    /// Softmax temperature (≥ 0; 0 = greedy: always the most likely token).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// RNG seed.
    pub seed: u64,
    /// Most tokens the model sees at once.
    pub window: usize,
    /// Keep keys and values of earlier tokens (KV cache); `false` recomputes the window for
    /// every new token (`ember sample --no-cache`). Same tokens either way.
    pub cache: bool,
}

/// A generated text and how fast it came (`ember sample --json`).
#[derive(Clone, Debug, Serialize)]
pub struct Sampled {
    /// The prompt followed by the new tokens, decoded.
    pub text: String,
    /// New tokens generated.
    pub tokens: usize,
    /// New tokens per second of generation (prompt prefill included, tokenizer excluded).
    pub tokens_per_s: f64,
    /// Whether the KV cache was used.
    pub cached: bool,
}

/// Generate text: returns the prompt followed by the new tokens, decoded.
pub fn sample(model: &TinyLm, tokenizer: &Tokenizer, options: &SampleOptions) -> Result<String, TrainError> {
    Ok(generate(model, tokenizer, options)?.text)
}

/// [`sample`], also reporting the number of new tokens and the generation speed.
pub fn generate(model: &TinyLm, tokenizer: &Tokenizer, options: &SampleOptions) -> Result<Sampled, TrainError> {
    let prompt = if options.prompt.is_empty() {
        vec![tokenizer.encode("\n").ok().and_then(|v| v.first().copied()).unwrap_or(0)]
    } else {
        tokenizer.encode(&options.prompt)?
    };
    let started = Instant::now();
    let ids = continue_ids(model, prompt, options)?;
    let secs = started.elapsed().as_secs_f64();
    Ok(Sampled { text: tokenizer.decode(&ids)?, tokens: options.tokens, tokens_per_s: options.tokens as f64 / secs.max(1e-9), cached: options.cache })
}

/// Continue the token ids `ids` (non-empty) by `options.tokens` new ones and return them all
/// (`options.prompt` is not read). The token-level core of [`sample`].
pub fn continue_ids(model: &TinyLm, mut ids: Vec<u32>, options: &SampleOptions) -> Result<Vec<u32>, TrainError> {
    if !(options.temperature >= 0.0 && options.temperature.is_finite()) {
        return Err(TrainError::request("--temperature", format!("must be ≥ 0 (0 = greedy), got {}", options.temperature)));
    }
    if options.top_k == Some(0) {
        return Err(TrainError::request("--top-k", "must be ≥ 1"));
    }
    if ids.is_empty() {
        return Err(TrainError::request("--prompt", "needs at least one token"));
    }
    let window = options.window.min(model.pos.max_len().unwrap_or(usize::MAX)).max(1);
    let mut cache = options.cache.then(|| model.kv_cache());
    let mut rng = StdRng::seed_from_u64(options.seed);
    for _ in 0..options.tokens {
        let last = next_logits(model, &ids, window, cache.as_mut())?;
        if options.temperature == 0.0 {
            let logits: Vec<f64> = last.into_data().convert::<f64>().try_to_vec().expect("floats");
            ids.push(argmax(&logits));
            continue;
        }
        let probs: Vec<f64> = softmax(last.div_scalar(options.temperature), 0).into_data().convert::<f64>().try_to_vec().expect("floats");
        ids.push(draw(&probs, options.top_k, &mut rng));
    }
    Ok(ids)
}

/// Logits `[V]` of the token after `ids`, the model seeing the last `window` of them at
/// positions `[0, window)`. With a `cache` holding `ids[..n]` at positions `[0, n)` (and the
/// sequence still within the window) only `ids[n..]` is run; otherwise the cache is refilled
/// with the visible window (see the module docs).
fn next_logits(model: &TinyLm, ids: &[u32], window: usize, cache: Option<&mut KvCache>) -> Result<Tensor<1>, TrainError> {
    let start = ids.len().saturating_sub(window);
    let v = model.tok.vocab_size();
    let logits = match cache {
        None => {
            let ctx = &ids[start..];
            model.forward(model.tok.ids_tensor(ctx, 1, ctx.len())?, 0)?
        }
        Some(cache) => {
            let reuse = start == 0 && !cache.is_empty() && cache.len() < ids.len();
            if !reuse {
                cache.clear();
            }
            let new = &ids[if reuse { cache.len() } else { start }..];
            model.forward_cached(model.tok.ids_tensor(new, 1, new.len())?, cache)?
        }
    };
    let t = logits.dims()[1];
    Ok(logits.slice([0..1, t - 1..t, 0..v]).reshape([v]))
}

/// The index of the largest entry (the first one on ties).
fn argmax(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Draw an index from `probs` restricted to its `top_k` largest entries.
fn draw(probs: &[f64], top_k: Option<usize>, rng: &mut StdRng) -> u32 {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.truncate(top_k.unwrap_or(probs.len()).min(probs.len()));
    let mass: f64 = order.iter().map(|&i| probs[i]).sum();
    let mut u = rng.random::<f64>() * mass;
    for &i in &order {
        u -= probs[i];
        if u <= 0.0 {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_one_is_argmax_and_draws_follow_probabilities() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = [0.1, 0.6, 0.3];
        assert!((0..50).all(|_| draw(&p, Some(1), &mut rng) == 1));
        let mut counts = [0usize; 3];
        for _ in 0..20000 {
            counts[draw(&p, None, &mut rng) as usize] += 1;
        }
        for (c, q) in counts.iter().zip(p) {
            assert!((*c as f64 / 20000.0 - q).abs() < 0.02, "{counts:?}");
        }
        // top-2 renormalises over {1, 2}: token 0 never drawn
        assert!((0..500).all(|_| draw(&p, Some(2), &mut rng) != 0));
    }

    #[test]
    fn argmax_takes_the_largest_and_the_first_of_ties() {
        assert_eq!(argmax(&[0.1, -3.0, 2.5, 2.4]), 2);
        assert_eq!(argmax(&[-1.0, 7.0, 7.0]), 1);
        assert_eq!(argmax(&[-5.0]), 0);
    }
}
