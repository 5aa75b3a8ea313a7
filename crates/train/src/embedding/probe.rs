//! The reports of `ember embed neighbors RUN --context … --at …` and `--compare`, built from
//! [`super::context`]: nearest table rows and corpus states to one contextual state, and one
//! token's spread across contexts layer by layer.

use burn::tensor::Device;
use ember_embed::neighbors::{Metric, NeighborIndex};
use ember_embed::report::NeighborsReport;
use serde::Serialize;

use super::context::{check_layer, context_spread, contextual_state, corpus_states, snippet};
use crate::dataset::{Dataset, Split};
use crate::run::LoadedRun;
use crate::TrainError;

/// Tokens of text shown either side of a corpus position.
pub const SNIPPET_RADIUS: usize = 12;

/// What to probe: a text, a position in it, a layer, and how to search.
#[derive(Clone, Debug)]
pub struct ProbeRequest {
    /// The text the model reads.
    pub text: String,
    /// The token position in it (checked: `0..T`).
    pub at: i64,
    /// The layer (checked: `0..=n_layers`); `None` = the last (after the final norm).
    pub layer: Option<i64>,
    /// The metric of both searches.
    pub metric: Metric,
    /// Neighbours per list.
    pub k: usize,
    /// Corpus positions sampled (checked: > 0).
    pub sample: i64,
    /// Seed of the corpus sample.
    pub seed: u64,
}

/// One corpus position near the probed state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CorpusNeighbor {
    /// The token there.
    pub token: String,
    /// Its index in the training split's ids.
    pub position: usize,
    /// The text around it, the token in `[brackets]` (newlines as `⏎`).
    pub context: String,
    /// The metric's value.
    pub score: f64,
}

/// `ember embed neighbors RUN --context TEXT --at N --json`: the static report's fields
/// (`query` is the token at `N`; `neighbors` are rows of the token table) plus the layer,
/// the position, the text, and the nearest states among the corpus sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextNeighborsReport {
    /// `query`, `metric`, `neighbors` (table rows).
    #[serde(flatten)]
    pub table: NeighborsReport,
    /// The layer of the state.
    pub layer: usize,
    /// Its position in the text.
    pub position: usize,
    /// The text.
    pub context: String,
    /// Corpus positions sampled.
    pub sample: usize,
    /// The nearest sampled corpus states, best first.
    pub corpus_neighbors: Vec<CorpusNeighbor>,
}

fn layer_or_last(run: &LoadedRun, layer: Option<i64>) -> Result<usize, TrainError> {
    check_layer(&run.model, layer.unwrap_or(run.model.blocks.len() as i64))
}

/// The state of `req.text` at `req.at` after `req.layer` in `run`'s model, its `k` nearest
/// rows of the token table `E` `[V, d]`, and its `k` nearest among the states (same layer) at
/// `req.sample` seeded positions of `data`'s training split (windows of the run's context).
pub fn contextual_neighbors(run: &LoadedRun, data: &Dataset, req: &ProbeRequest, device: &Device) -> Result<ContextNeighborsReport, TrainError> {
    let layer = layer_or_last(run, req.layer)?;
    if req.sample <= 0 {
        return Err(TrainError::request("--sample", format!("{}: the number of corpus positions must be positive", req.sample)));
    }
    let q = contextual_state(&run.model, &run.tokenizer, &req.text, req.at, layer as i64, device)?;
    let d = q.state.dims()[0];
    let query = q.state.clone().reshape([1, d]);
    let search = |e: ember_embed::neighbors::NeighborsError| TrainError::request("--metric", e.to_string());
    let table = NeighborIndex::new(run.model.tok.weight.val(), req.metric).search_vectors(query.clone(), req.k).map_err(search)?.remove(0);
    let ids = data.ids(Split::Train);
    let window = run.config.data.context.min(ids.len());
    let sample = corpus_states(&run.model, ids, layer, req.sample as usize, window, req.seed, device)?;
    let found = NeighborIndex::new(sample.states, req.metric).search_vectors(query, req.k).map_err(search)?.remove(0);
    let tok = &run.tokenizer;
    let corpus_neighbors = found
        .iter()
        .map(|n| {
            let p = sample.positions[n.id];
            Ok(CorpusNeighbor { token: tok.decode(&ids[p..p + 1])?, position: p, context: snippet(tok, ids, p, SNIPPET_RADIUS)?, score: n.score })
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    Ok(ContextNeighborsReport {
        table: NeighborsReport::new(&q.token, req.metric, &table, &tok.tokens()),
        layer,
        position: q.position,
        context: req.text.clone(),
        sample: sample.positions.len(),
        corpus_neighbors,
    })
}

/// One layer of a [`SpreadReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSpread {
    /// The layer.
    pub layer: usize,
    /// Mean cosine between the token's states in distinct contexts (`null` for one context).
    pub mean_pairwise_cosine: Option<f64>,
    /// Mean cosine between those states and the static input vector `s·E[id]`.
    pub mean_cosine_to_static: f64,
}

/// `--compare`: one token in several corpus contexts, layer by layer, next to its static row
/// (the same vector in every context: pairwise cosine 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpreadReport {
    /// The token.
    pub token: String,
    /// Its occurrences in the training split with a full window of history.
    pub occurrences: usize,
    /// The contexts used (text around each occurrence).
    pub contexts: Vec<String>,
    /// One entry per layer asked for.
    pub layers: Vec<LayerSpread>,
}

/// [`super::context::context_spread`] of token `token_id` over up to `contexts` seeded
/// occurrences in `data`'s training split, for `layer` (or every layer `0..=n_layers`).
pub fn compare_contexts(run: &LoadedRun, data: &Dataset, token_id: u32, layer: Option<i64>, contexts: i64, seed: u64, device: &Device) -> Result<SpreadReport, TrainError> {
    if contexts < 2 {
        return Err(TrainError::request("--contexts", format!("{contexts}: comparing needs at least 2 contexts")));
    }
    let layers: Vec<usize> = match layer {
        Some(l) => vec![check_layer(&run.model, l)?],
        None => (0..=run.model.blocks.len()).collect(),
    };
    let ids = data.ids(Split::Train);
    let window = run.config.data.context.min(ids.len());
    let mut out = Vec::new();
    let mut first = None;
    for &l in &layers {
        let s = context_spread(&run.model, ids, token_id, l, contexts as usize, window, seed, device)?;
        out.push(LayerSpread { layer: l, mean_pairwise_cosine: s.mean_pairwise_cosine, mean_cosine_to_static: s.mean_cosine_to_static });
        first.get_or_insert((s.positions, s.occurrences));
    }
    let (positions, occurrences) = first.unwrap_or_default();
    let contexts = positions.iter().map(|&p| snippet(&run.tokenizer, ids, p, SNIPPET_RADIUS)).collect::<Result<Vec<_>, _>>()?;
    Ok(SpreadReport { token: run.tokenizer.decode(&[token_id])?, occurrences, contexts, layers: out })
}
