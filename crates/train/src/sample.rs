//! Autoregressive sampling with temperature and top-k.
//!
//! Each new token is drawn from `softmax(z / temperature)` restricted to the `top_k` largest
//! logits of the last position (temperature 0: the most likely token, greedy decoding), with the model seeing at most `window` tokens (its
//! training context). Draws use a seeded host RNG: the same seed gives the same text.

use burn::tensor::activation::softmax;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tokenizer::Tokenizer;
use crate::model::TinyLm;
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
}

/// Generate text: returns the prompt followed by the new tokens, decoded.
pub fn sample(model: &TinyLm, tokenizer: &Tokenizer, options: &SampleOptions) -> Result<String, TrainError> {
    if !(options.temperature >= 0.0 && options.temperature.is_finite()) {
        return Err(TrainError::request("--temperature", format!("must be ≥ 0 (0 = greedy), got {}", options.temperature)));
    }
    if options.top_k == Some(0) {
        return Err(TrainError::request("--top-k", "must be ≥ 1"));
    }
    let mut ids = if options.prompt.is_empty() {
        vec![tokenizer.encode("\n").ok().and_then(|v| v.first().copied()).unwrap_or(0)]
    } else {
        tokenizer.encode(&options.prompt)?
    };
    let window = options.window.min(model.pos.max_len().unwrap_or(usize::MAX)).max(1);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let v = model.tok.vocab_size();
    for _ in 0..options.tokens {
        let ctx = &ids[ids.len().saturating_sub(window)..];
        let x = model.tok.ids_tensor(ctx, 1, ctx.len())?;
        let last = model.forward(x, 0)?.slice([0..1, ctx.len() - 1..ctx.len(), 0..v]).reshape([v]);
        if options.temperature == 0.0 {
            let logits: Vec<f64> = last.into_data().convert::<f64>().try_to_vec().expect("floats");
            ids.push(argmax(&logits));
            continue;
        }
        let probs: Vec<f64> = softmax(last.div_scalar(options.temperature), 0).into_data().convert::<f64>().try_to_vec().expect("floats");
        ids.push(draw(&probs, options.top_k, &mut rng));
    }
    tokenizer.decode(&ids)
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
