//! Contextual hidden states of a trained model: the vector at one position of a text after a
//! given layer, the same for a seeded sample of corpus positions, and how far apart one
//! token's states are across contexts.
//!
//! Layers are counted as in [`TinyLm::hidden_at_layer`]: `0` = what enters block 0 (the
//! scaled lookup `s·E[id]` plus an additive position: learned or sinusoidal; RoPE and ALiBi
//! act inside attention, so there layer 0 is `s·E[id]` alone), `l` = the residual stream
//! after block `l`, `n_layers` = after the final norm (what the head reads).

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_embed::geometry;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use crate::model::TinyLm;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// Windows per forward pass when states of many windows are computed.
const BATCH: usize = 16;

/// The hidden state of one token of a text.
#[derive(Clone, Debug)]
pub struct ContextState {
    /// The token at the position.
    pub token_id: u32,
    /// Its string.
    pub token: String,
    /// The layer (`0..=n_layers`).
    pub layer: usize,
    /// The position in the text (0-based token index).
    pub position: usize,
    /// The text's token count `T`.
    pub tokens: usize,
    /// `h`, `[d]`: the hidden state at `position` after `layer`.
    pub state: Tensor<1>,
}

/// Check `layer` against the model's `n` blocks: `0..=n`.
pub fn check_layer(model: &TinyLm, layer: i64) -> Result<usize, TrainError> {
    let n = model.blocks.len();
    if layer < 0 || layer as usize > n {
        return Err(TrainError::request(
            "--layer",
            format!("{layer} is out of range: the model has {n} layers; use 0..={n} (0 = input embedding plus position, {n} = after the final norm)"),
        ));
    }
    Ok(layer as usize)
}

/// `T` tokens fit the model's positions (a learned table covers `max_len` of them).
fn check_length(model: &TinyLm, t: usize, what: &'static str) -> Result<(), TrainError> {
    match model.pos.max_len() {
        Some(max) if t > max => Err(TrainError::request(
            what,
            format!("{t} tokens, but the model's learned position table covers only {max}; shorten the text to at most {max} tokens"),
        )),
        _ => Ok(()),
    }
}

/// Run `model` on `text` (tokenized by `tokenizer`, positions `0..T`) and return the hidden
/// state `[d]` at token `at` after `layer` (see the module docs). Errors, with what to
/// change, for an empty text, `at` outside `0..T`, a layer outside `0..=n_layers`, or a text
/// longer than a learned position table.
pub fn contextual_state(model: &TinyLm, tokenizer: &Tokenizer, text: &str, at: i64, layer: i64, device: &Device) -> Result<ContextState, TrainError> {
    let layer = check_layer(model, layer)?;
    let ids = tokenizer.encode(text)?;
    let t = ids.len();
    if t == 0 {
        return Err(TrainError::request("--context", "the text is empty (0 tokens); pass some text"));
    }
    if at < 0 || at as usize >= t {
        return Err(TrainError::request("--at", format!("position {at} is past the text: it has {t} tokens, so use 0..={}", t - 1)));
    }
    check_length(model, t, "--context")?;
    let at = at as usize;
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, t]), device);
    let h = model.hidden_at_layer(x, layer, 0)?; // [1, T, d]
    let d = h.dims()[2];
    let state = h.slice([0..1, at..at + 1, 0..d]).reshape([d]);
    let token = tokenizer.decode(&ids[at..at + 1])?;
    Ok(ContextState { token_id: ids[at], token, layer, position: at, tokens: t, state })
}

/// Hidden states after `layer` of windows of `ids` (each `window` tokens, at positions
/// `0..window`): `[Σ window, d]`, window by window, position by position.
pub fn window_states(model: &TinyLm, ids: &[u32], starts: &[usize], window: usize, layer: usize, device: &Device) -> Result<Tensor<2>, TrainError> {
    check_length(model, window, "context")?;
    let mut parts = Vec::new();
    for group in starts.chunks(BATCH) {
        let flat: Vec<i64> = group.iter().flat_map(|&s| ids[s..s + window].iter().map(|&i| i as i64)).collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(flat, [group.len(), window]), device);
        let h = model.hidden_at_layer(x, layer, 0)?;
        let d = h.dims()[2];
        parts.push(h.reshape([group.len() * window, d]));
    }
    Ok(Tensor::cat(parts, 0))
}

/// Hidden states of a seeded sample of corpus positions.
#[derive(Clone, Debug)]
pub struct CorpusStates {
    /// `[M, d]`: row `m` is the state at corpus index `positions[m]`.
    pub states: Tensor<2>,
    /// The corpus index (into the ids) of each row.
    pub positions: Vec<usize>,
}

/// States after `layer` at `sample` corpus positions: `⌈sample / window⌉` windows of
/// `window` tokens start at seeded uniform offsets of `ids`, every position of a window is
/// kept (so a state has 0 to `window − 1` tokens of history), the first `sample` are
/// returned. Errors when `ids` is shorter than one window or `sample` is 0.
pub fn corpus_states(model: &TinyLm, ids: &[u32], layer: usize, sample: usize, window: usize, seed: u64, device: &Device) -> Result<CorpusStates, TrainError> {
    if sample == 0 {
        return Err(TrainError::request("--sample", "0 corpus positions: pass a positive number"));
    }
    if window == 0 || ids.len() < window {
        return Err(TrainError::request("--sample", format!("the corpus has {} tokens, fewer than one window of {window}", ids.len())));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let starts: Vec<usize> = (0..sample.div_ceil(window)).map(|_| rng.random_range(0..=ids.len() - window)).collect();
    let states = window_states(model, ids, &starts, window, layer, device)?;
    let d = states.dims()[1];
    let positions: Vec<usize> = starts.iter().flat_map(|&s| s..s + window).take(sample).collect();
    Ok(CorpusStates { states: states.slice([0..positions.len(), 0..d]), positions })
}

/// The text around corpus index `p` of `ids`: up to `radius` tokens either side, the token
/// itself in `[brackets]`, newlines shown as `⏎`.
pub fn snippet(tokenizer: &Tokenizer, ids: &[u32], p: usize, radius: usize) -> Result<String, TrainError> {
    let (lo, hi) = (p.saturating_sub(radius), (p + 1 + radius).min(ids.len()));
    let text = format!("{}[{}]{}", tokenizer.decode(&ids[lo..p])?, tokenizer.decode(&ids[p..p + 1])?, tokenizer.decode(&ids[p + 1..hi])?);
    Ok(text.replace('\n', "⏎"))
}

/// One token's contextual states across several corpus contexts.
#[derive(Clone, Debug)]
pub struct ContextSpread {
    /// The token's id.
    pub token_id: u32,
    /// The layer.
    pub layer: usize,
    /// The corpus index of each occurrence used (each the last position of a full window).
    pub positions: Vec<usize>,
    /// `[M, d]`: the state of each occurrence.
    pub states: Tensor<2>,
    /// Mean cosine between the states of distinct occurrences (`None` for fewer than 2).
    pub mean_pairwise_cosine: Option<f64>,
    /// Mean cosine between each state and the token's static input vector `s·E[id]`.
    pub mean_cosine_to_static: f64,
    /// How many times the token occurs in `ids` with a full window of history.
    pub occurrences: usize,
}

/// Up to `max` seeded occurrences of `token_id` in `ids`, each the last token of a window of
/// `window` tokens (positions `0..window`, so all occurrences sit at position `window − 1`
/// and differ only in their history), with their states after `layer`. Errors when the
/// token never occurs after `window − 1` tokens of history.
pub fn context_spread(model: &TinyLm, ids: &[u32], token_id: u32, layer: usize, max: usize, window: usize, seed: u64, device: &Device) -> Result<ContextSpread, TrainError> {
    let mut found: Vec<usize> = (window.max(1) - 1..ids.len()).filter(|&p| ids[p] == token_id).collect();
    let occurrences = found.len();
    if occurrences == 0 {
        return Err(TrainError::request("--token", format!("token id {token_id} never occurs in the corpus after {} tokens of history", window.max(1) - 1)));
    }
    found.shuffle(&mut StdRng::seed_from_u64(seed));
    found.truncate(max.max(1));
    found.sort_unstable();
    let starts: Vec<usize> = found.iter().map(|&p| p + 1 - window).collect();
    let all = window_states(model, ids, &starts, window, layer, device)?; // [M·window, d]
    let (m, d) = (found.len(), all.dims()[1]);
    let states = all.reshape([m, window, d]).slice([0..m, window - 1..window, 0..d]).reshape([m, d]);
    let ids_t = Tensor::<2, Int>::from_data(TensorData::new(vec![token_id as i64], [1, 1]), device);
    let stat = model.lookup(ids_t).reshape([1, d]);
    let unit = geometry::normalize_rows(states.clone());
    let cos_static: Vec<f64> = unit.matmul(geometry::normalize_rows(stat).transpose()).into_data().iter::<f64>().collect();
    Ok(ContextSpread {
        token_id,
        layer,
        positions: found,
        mean_pairwise_cosine: geometry::anisotropy(&states).ok(),
        mean_cosine_to_static: cos_static.iter().sum::<f64>() / m as f64,
        states,
        occurrences,
    })
}
