//! Tokenizers: text ↔ ids.
//!
//! - Character level (nanoGPT): the vocabulary is the sorted set of distinct characters;
//!   id `i` is the `i`-th character. Saved as `tokenizer.json` in ember's own small format
//!   (`{"type": "ember-char", "chars": "…"}`).
//! - Byte-level BPE: trained offline with the `tokenizers` crate on the training split only,
//!   saved as a standard Hugging Face `tokenizer.json`.
//! - A user's `tokenizer.json` (any Hugging Face tokenizer).

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer as HfTokenizer;

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
            .map_err(|e| TrainError::tokenizer(None, format!("BPE training failed: {e}")))?;
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
                        TrainError::tokenizer(None, format!("character {c:?} is not in the character vocabulary ({} chars)", chars.len()))
                    })
                })
                .collect(),
            Self::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TrainError::tokenizer(None, format!("failed: {e}"))),
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
            Self::Hf(t) => t.decode(ids, false).map_err(|e| TrainError::tokenizer(None, format!("failed: {e}"))),
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
            Self::Hf(t) => t.to_string(true).map_err(|e| TrainError::tokenizer(Some(path), format!("cannot serialize: {e}")))?,
        };
        crate::run::write_atomic(path, text.as_bytes())
    }

    /// Read a `tokenizer.json` written by [`Self::save`] or by Hugging Face.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::read(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TrainError::tokenizer(Some(path), format!("not valid JSON: {e}")))?;
        if value.get("type").and_then(|t| t.as_str()) == Some("ember-char") {
            let chars = value["chars"].as_str().ok_or_else(|| TrainError::tokenizer(Some(path), "`chars` must be a string"))?;
            return Ok(Self::Char { chars: chars.chars().collect() });
        }
        HfTokenizer::from_file(path)
            .map(|t| Self::Hf(Box::new(t)))
            .map_err(|e| TrainError::tokenizer(Some(path), format!("not a readable tokenizer.json: {e}")))
    }
}

