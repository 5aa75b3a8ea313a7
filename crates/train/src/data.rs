//! Corpus → tokenizer → train/val ids → random training windows.
//!
//! - Character level (nanoGPT): the vocabulary is the sorted set of distinct characters;
//!   id `i` is the `i`-th character. Saved as `tokenizer.json` in ember's own small format
//!   (`{"type": "ember-char", "chars": "…"}`).
//! - Byte-level BPE: trained offline with the `tokenizers` crate on the training split only,
//!   saved as a standard Hugging Face `tokenizer.json`.
//! - A user's `tokenizer.json` (any Hugging Face tokenizer).
//!
//! The corpus is split by characters: the first `1 − val_fraction` is training text, the
//! rest validation (nanoGPT's split for the character level). Windows of `context + 1`
//! tokens start at uniformly random offsets drawn from a counter-based generator keyed by
//! `(seed, step)`, so a resumed run draws exactly the batches the uninterrupted one would.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer as HfTokenizer;

use crate::config::{DataConfig, TokenizerConfig};
use crate::TrainError;

/// A tokenizer: characters or any Hugging Face tokenizer.
#[derive(Clone)]
pub enum Tokenizer {
    /// One token per character; `chars[i]` is token `i` (sorted).
    Char {
        /// The vocabulary, sorted.
        chars: Vec<char>,
    },
    /// A Hugging Face tokenizer (trained BPE or the user's file).
    Hf(Box<HfTokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Char { chars } => write!(f, "Tokenizer::Char({} chars)", chars.len()),
            Self::Hf(t) => write!(f, "Tokenizer::Hf({} tokens)", t.get_vocab_size(true)),
        }
    }
}

impl Tokenizer {
    /// The character tokenizer of `text`.
    pub fn char_level(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::Char { chars }
    }

    /// Train a byte-level BPE with `vocab_size` tokens on `text` (offline).
    pub fn train_bpe(text: &str, vocab_size: usize) -> Result<Self, TrainError> {
        let mut tok = HfTokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        tok.with_decoder(Some(ByteLevel::default()));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        tok.train(&mut trainer, text.split_inclusive('\n'))
            .map_err(|e| TrainError::Data(format!("BPE training failed: {e}")))?;
        Ok(Self::Hf(Box::new(tok)))
    }

    /// Number of tokens `V`.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Char { chars } => chars.len(),
            Self::Hf(t) => t.get_vocab_size(true),
        }
    }

    /// Text → ids. Characters outside a char vocabulary are an error naming them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TrainError> {
        match self {
            Self::Char { chars } => text
                .chars()
                .map(|c| {
                    chars.binary_search(&c).map(|i| i as u32).map_err(|_| {
                        TrainError::Data(format!("character {c:?} is not in the character vocabulary ({} chars)", chars.len()))
                    })
                })
                .collect(),
            Self::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TrainError::Data(format!("tokenizer failed: {e}"))),
        }
    }

    /// Ids → text.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TrainError> {
        match self {
            Self::Char { chars } => ids
                .iter()
                .map(|&i| chars.get(i as usize).copied().ok_or(ember_embed::EmbedError::IdOutOfRange { id: i as i64, vocab: chars.len() }))
                .collect::<Result<String, _>>()
                .map_err(TrainError::from),
            Self::Hf(t) => t.decode(ids, false).map_err(|e| TrainError::Data(format!("tokenizer failed: {e}"))),
        }
    }

    /// The string of each token, in id order (for embedding reports).
    pub fn tokens(&self) -> Vec<String> {
        match self {
            Self::Char { chars } => chars.iter().map(|c| c.to_string()).collect(),
            Self::Hf(t) => (0..t.get_vocab_size(true) as u32).map(|i| t.id_to_token(i).unwrap_or_default()).collect(),
        }
    }

    /// Write `tokenizer.json` (see the module docs for the char format).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let text = match self {
            Self::Char { chars } => serde_json::json!({"type": "ember-char", "chars": chars.iter().collect::<String>()}).to_string(),
            Self::Hf(t) => t.to_string(true).map_err(|e| TrainError::Data(format!("cannot serialize tokenizer: {e}")))?,
        };
        crate::checkpoint::write_atomic(path, text.as_bytes())
    }

    /// Read a `tokenizer.json` written by [`Self::save`] or by Hugging Face.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::read(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TrainError::Data(format!("{} is not valid JSON: {e}", path.display())))?;
        if value.get("type").and_then(|t| t.as_str()) == Some("ember-char") {
            let chars = value["chars"].as_str().ok_or_else(|| TrainError::Data(format!("{}: `chars` must be a string", path.display())))?;
            return Ok(Self::Char { chars: chars.chars().collect() });
        }
        HfTokenizer::from_file(path)
            .map(|t| Self::Hf(Box::new(t)))
            .map_err(|e| TrainError::Data(format!("{} is not a readable tokenizer.json: {e}", path.display())))
    }
}

/// A tokenized corpus split into training and validation ids.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The tokenizer that produced the ids.
    pub tokenizer: Tokenizer,
    /// Training ids (the head of the corpus).
    pub train: Vec<u32>,
    /// Validation ids (the tail).
    pub val: Vec<u32>,
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

impl Dataset {
    /// Read the corpus and build (or load, with `tokenizer`) the tokenizer, then tokenize
    /// both splits. Checks that each split holds at least one window of `context + 1` tokens.
    pub fn load(config: &DataConfig, tokenizer: Option<Tokenizer>) -> Result<Self, TrainError> {
        let path = &config.corpus;
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TrainError::Data(format!(
                "corpus {} not found; set data.corpus to a text file (the repo ships data/tinyshakespeare.txt)",
                path.display()
            )),
            std::io::ErrorKind::InvalidData => TrainError::Data(format!("corpus {} is not UTF-8 text", path.display())),
            _ => TrainError::read(path, e),
        })?;
        if text.is_empty() {
            return Err(TrainError::Data(format!("corpus {} is empty", path.display())));
        }
        let n_chars = text.chars().count();
        let split_at = text.char_indices().nth(((n_chars as f64) * (1.0 - config.val_fraction)) as usize).map_or(text.len(), |(i, _)| i);
        let (train_text, val_text) = text.split_at(split_at);
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => match &config.tokenizer {
                TokenizerConfig::Char => Tokenizer::char_level(&text),
                TokenizerConfig::Bpe { vocab_size } => Tokenizer::train_bpe(train_text, *vocab_size)?,
                TokenizerConfig::File { path } => Tokenizer::load(path)?,
            },
        };
        let data = Self { train: tokenizer.encode(train_text)?, val: tokenizer.encode(val_text)?, tokenizer };
        // The model's table has exactly `vocab_size` rows: an id past it (a tokenizer.json whose
        // added tokens or model ids exceed its reported size) is an error here, not garbage rows.
        let vocab = data.tokenizer.vocab_size();
        for ids in [&data.train, &data.val] {
            ember_embed::table::check_ids(ids, vocab).map_err(|e| {
                TrainError::Data(format!("the tokenizer produced ids the model's {vocab}-row table cannot hold: {e}"))
            })?;
        }
        for (name, ids) in [("training", &data.train), ("validation", &data.val)] {
            if ids.len() < config.context + 1 {
                return Err(TrainError::Data(format!(
                    "the {name} split of {} has {} tokens, fewer than one window of context + 1 = {}; \
                     use a longer corpus, a smaller data.context, or change data.val_fraction",
                    path.display(),
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

    /// A batch of `batch` random windows from `split`: inputs and next-token targets, both
    /// `[batch, context]` Int on `device`. Deterministic in `(seed, stream, index)`.
    pub fn batch(&self, split: Split, batch: usize, context: usize, seed: u64, stream: u64, index: u64, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let ids = self.ids(split);
        let span = (ids.len() - context) as u64; // window starts in [0, span)
        let mut x = Vec::with_capacity(batch * context);
        let mut y = Vec::with_capacity(batch * context);
        for b in 0..batch as u64 {
            let start = (mix(seed, stream, index, b) % span) as usize;
            x.extend(ids[start..start + context].iter().map(|&i| i as i64));
            y.extend(ids[start + 1..start + context + 1].iter().map(|&i| i as i64));
        }
        (
            Tensor::from_data(TensorData::new(x, [batch, context]), device),
            Tensor::from_data(TensorData::new(y, [batch, context]), device),
        )
    }
}

/// SplitMix64 over a combination of the keys: a stateless, well-mixed 64-bit draw.
fn mix(seed: u64, stream: u64, index: u64, item: u64) -> u64 {
    let mut z = seed
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ item.wrapping_mul(0x94D0_49BB_1331_11EB);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
