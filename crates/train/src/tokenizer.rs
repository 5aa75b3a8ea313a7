//! Tokenizers: text ↔ ids.
//!
//! - Character level (nanoGPT): the vocabulary is the sorted set of distinct characters;
//!   id `i` is the `i`-th character. Saved as a standard Hugging Face `tokenizer.json` that
//!   the `tokenizers` library (Rust or Python) loads as it is: a `WordLevel` model whose
//!   vocabulary is the characters, a `Split` pre-tokenizer isolating every character
//!   (regex [`CHAR_SPLIT`], so spaces and newlines are tokens like any other) and a `Fuse`
//!   decoder (tokens joined with nothing in between). Encoding and decoding give exactly
//!   ember's ids and text. A file of that shape loads back as [`Tokenizer::Char`]; runs
//!   written before it, with ember's old private format
//!   (`{"type": "ember-char", "chars": "…"}`), still load.
//! - Byte-level BPE: trained offline with the `tokenizers` crate on the training split only,
//!   saved as a standard Hugging Face `tokenizer.json`.
//! - A user's `tokenizer.json` (any Hugging Face tokenizer).

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer as HfTokenizer;

use crate::TrainError;

/// The regex of the character tokenizer's `Split` pre-tokenizer: any one character
/// (`[\s\S]`, not `.`, which skips newlines).
pub const CHAR_SPLIT: &str = r"[\s\S]";

/// The unknown token the `WordLevel` model names (never in a character vocabulary, so an
/// unknown character is an encoding error, as in ember).
const CHAR_UNK: &str = "<unk>";

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

    /// The character vocabulary `chars` (sorted, distinct) as a Hugging Face tokenizer (see
    /// the module docs): what [`Self::save`] writes for a [`Tokenizer::Char`].
    pub fn char_level_hf(chars: &[char]) -> Result<HfTokenizer, TrainError> {
        let vocab: serde_json::Map<String, serde_json::Value> = chars.iter().enumerate().map(|(i, c)| (c.to_string(), i.into())).collect();
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": CHAR_SPLIT}, "behavior": "Isolated", "invert": false},
            "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": CHAR_UNK},
        });
        json.to_string().parse::<HfTokenizer>().map_err(|e| TrainError::tokenizer(None, format!("cannot build the character tokenizer: {e}")))
    }

    /// Write `tokenizer.json`: always a Hugging Face tokenizer file (see the module docs for
    /// the character vocabulary's representation).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let serialize = |t: &HfTokenizer| t.to_string(true).map_err(|e| TrainError::tokenizer(Some(path), format!("cannot serialize: {e}")));
        let text = match self {
            Self::Char { chars } => serialize(&Self::char_level_hf(chars)?)?,
            Self::Hf(t) => serialize(t)?,
        };
        crate::fs::write_atomic(path, text.as_bytes())
    }

    /// The character vocabulary of a `tokenizer.json` value when it has exactly the shape
    /// [`Self::char_level_hf`] writes (sorted single characters, ids `0..V`), else `None`.
    fn char_vocab_of(value: &serde_json::Value) -> Option<Vec<char>> {
        let expected = Self::char_level_hf(&[]).ok().and_then(|t| serde_json::to_value(&t).ok())?;
        let same = |key: &str| value.get(key) == expected.get(key);
        let model = value.get("model")?;
        if !(same("pre_tokenizer") && same("decoder") && same("normalizer") && same("post_processor") && same("added_tokens"))
            || model.get("type")?.as_str()? != "WordLevel"
        {
            return None;
        }
        let mut entries: Vec<(u64, char)> = Vec::new();
        for (token, id) in model.get("vocab")?.as_object()? {
            let mut it = token.chars();
            let (c, None) = (it.next()?, it.next()) else { return None };
            entries.push((id.as_u64()?, c));
        }
        entries.sort_unstable();
        let ids_dense = entries.iter().enumerate().all(|(i, (id, _))| *id == i as u64);
        let sorted = entries.windows(2).all(|w| w[0].1 < w[1].1);
        (ids_dense && sorted).then(|| entries.into_iter().map(|(_, c)| c).collect())
    }

    /// Read a `tokenizer.json` written by [`Self::save`] (or by an older ember, in the private
    /// `ember-char` format) or by Hugging Face. A character vocabulary in the shape
    /// [`Self::save`] writes becomes [`Tokenizer::Char`].
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::read(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TrainError::tokenizer(Some(path), format!("not valid JSON: {e}")))?;
        if value.get("type").and_then(|t| t.as_str()) == Some("ember-char") {
            let chars = value["chars"].as_str().ok_or_else(|| TrainError::tokenizer(Some(path), "`chars` must be a string"))?;
            return Ok(Self::Char { chars: chars.chars().collect() });
        }
        if let Some(chars) = Self::char_vocab_of(&value) {
            return Ok(Self::Char { chars });
        }
        HfTokenizer::from_file(path)
            .map(|t| Self::Hf(Box::new(t)))
            .map_err(|e| TrainError::tokenizer(Some(path), format!("not a readable tokenizer.json: {e}")))
    }
}

