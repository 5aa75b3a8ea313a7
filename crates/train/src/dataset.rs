//! A tokenized corpus: train/val split and batches of training windows.
//!
//! The corpus is split by characters: the first `1 − val_fraction` is training text, the
//! rest validation (nanoGPT's split for the character level). Windows of `context + 1`
//! tokens start at uniformly random offsets drawn from a counter-based generator keyed by
//! `(seed, stream, index)` ([`Batches`]), so a resumed run draws exactly the batches the
//! uninterrupted one would, and training and evaluation draw independent streams.
//!
//! A synthetic task (`data.task`) has no windows: its batches are whole examples, one per
//! row, with the loss on the answer only ([`crate::tasks::batch`]); `train` and `val` then
//! hold its pools as text lines, which only `ember eval` reads.

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::{DataConfig, TokenizerConfig};
use crate::rng::mix;
use crate::tasks::TaskData;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// A tokenized corpus split into training and validation ids.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The tokenizer that produced the ids.
    pub tokenizer: Tokenizer,
    /// Training ids (the head of the corpus).
    pub train: Vec<u32>,
    /// Validation ids (the tail).
    pub val: Vec<u32>,
    /// A task's encoded examples; batches come from them instead of windows.
    pub task: Option<TaskData>,
}

/// Which split to draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The first `1 − val_fraction` of the corpus.
    Train,
    /// The rest.
    Val,
}

impl Split {
    /// `train` or `val`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Self::Train),
            "val" => Ok(Self::Val),
            other => Err(format!("`{other}` is not a split; use `train` or `val`")),
        }
    }
}

impl Dataset {
    /// Read the corpus and build (or load, with `tokenizer`) the tokenizer, then tokenize
    /// both splits. Checks that each split holds at least one window of `context + 1` tokens.
    pub fn load(config: &DataConfig, tokenizer: Option<Tokenizer>) -> Result<Self, TrainError> {
        if let Some(task) = &config.task {
            // Generated text: training and validation lines from independent streams.
            let (train, val) = (task.text(0, task.examples), task.text(1, task.examples.div_ceil(10)));
            let tokenizer = tokenizer.unwrap_or_else(|| Tokenizer::char_level(&task.symbols()));
            let examples = TaskData::new(task, &tokenizer, config.context)?;
            let data = Self::from_texts(config, tokenizer, &train, &val, &PathBuf::from(format!("<task {:?}>", task.kind)))?;
            return Ok(Self { task: Some(examples), ..data });
        }
        let path = &config.corpus;
        let corpus = |reason: String| TrainError::Corpus { path: path.clone(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => corpus(
                "not found; set data.corpus to a text file (the repo ships data/tinyshakespeare.txt)".into(),
            ),
            std::io::ErrorKind::InvalidData => corpus("is not UTF-8 text".into()),
            _ => TrainError::read(path, e),
        })?;
        if text.is_empty() {
            return Err(corpus("is empty".into()));
        }
        let n_chars = text.chars().count();
        let split_at = text.char_indices().nth(((n_chars as f64) * (1.0 - config.val_fraction)) as usize).map_or(text.len(), |(i, _)| i);
        let (train_text, val_text) = text.split_at(split_at);
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => match &config.tokenizer {
                TokenizerConfig::Char {} => Tokenizer::char_level(&text),
                TokenizerConfig::Bpe { vocab_size } => Tokenizer::train_bpe(train_text, *vocab_size)?,
                TokenizerConfig::File { path } => Tokenizer::load(path)?,
            },
        };
        Self::from_texts(config, tokenizer, train_text, val_text, path)
    }

    /// Tokenize both splits and check them (ids within the table, one window each).
    fn from_texts(config: &DataConfig, tokenizer: Tokenizer, train_text: &str, val_text: &str, path: &std::path::Path) -> Result<Self, TrainError> {
        let corpus = |reason: String| TrainError::Corpus { path: path.to_path_buf(), reason };
        let data = Self { train: tokenizer.encode(train_text)?, val: tokenizer.encode(val_text)?, tokenizer, task: None };
        // The model's table has exactly `vocab_size` rows: an id past it (a tokenizer.json whose
        // added tokens or model ids exceed its reported size) is an error here, not garbage rows.
        let vocab = data.tokenizer.vocab_size();
        for ids in [&data.train, &data.val] {
            ember_embed::table::check_ids(ids, vocab).map_err(|e| {
                TrainError::tokenizer(None, format!("it produced ids the model's {vocab}-row table cannot hold: {e}"))
            })?;
        }
        for (name, ids) in [("training", &data.train), ("validation", &data.val)] {
            if ids.len() < config.context + 1 {
                return Err(corpus(format!(
                    "the {name} split has {} tokens, fewer than one window of context + 1 = {}; \
                     use a longer corpus, a smaller data.context, or change data.val_fraction",
                    ids.len(),
                    config.context + 1
                )));
            }
        }
        Ok(data)
    }

    /// The ids of a split.
    pub fn ids(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Batch `index` of the stream `batches`: `batch_size` random windows of its split,
    /// inputs and next-token targets, both `[batch_size, context]` Int on `device` (for a
    /// task: whole examples, [`TaskData::batch`]). Deterministic in
    /// `(batches.seed, batches.stream, index)`.
    pub fn batch(&self, batches: &Batches, index: u64, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        if let Some(task) = &self.task {
            return task.batch(batches, index, device);
        }
        let (n, context) = (batches.batch_size, batches.context);
        let ids = self.ids(batches.stream.split());
        let span = (ids.len() - context) as u64; // window starts in [0, span)
        let mut x = Vec::with_capacity(n * context);
        let mut y = Vec::with_capacity(n * context);
        for b in 0..n as u64 {
            let start = (mix(batches.seed, batches.stream as u64, index, b) % span) as usize;
            x.extend(ids[start..start + context].iter().map(|&i| i as i64));
            y.extend(ids[start + 1..start + context + 1].iter().map(|&i| i as i64));
        }
        (Tensor::from_data(TensorData::new(x, [n, context]), device), Tensor::from_data(TensorData::new(y, [n, context]), device))
    }
}

/// The independent streams of the batch sampler (their numbers key the generator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Training steps: batch `k` is step `k`'s.
    Train = 0,
    /// Fixed evaluation batches of the training split.
    EvalTrain = 1,
    /// Fixed evaluation batches of the validation split.
    EvalVal = 2,
}

impl Stream {
    /// The split the stream draws from.
    pub fn split(self) -> Split {
        match self {
            Self::Train | Self::EvalTrain => Split::Train,
            Self::EvalVal => Split::Val,
        }
    }

    /// The evaluation stream of `split`.
    pub fn eval(split: Split) -> Self {
        match split {
            Split::Train => Self::EvalTrain,
            Split::Val => Self::EvalVal,
        }
    }
}

/// What [`Dataset::batch`] draws: a stream, a batch shape and a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batches {
    /// Which stream (and so which split).
    pub stream: Stream,
    /// Sequences per batch `B`.
    pub batch_size: usize,
    /// Window length `T`.
    pub context: usize,
    /// The run's seed.
    pub seed: u64,
}

impl Batches {
    /// The stream `stream` with `config`'s batch size, context and seed.
    pub fn of(config: &crate::Config, stream: Stream) -> Self {
        Self { stream, batch_size: config.train.batch_size, context: config.data.context, seed: config.train.seed }
    }
}
