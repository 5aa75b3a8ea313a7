//! The TOML schema of a training run.
//!
//! Sections `[model]`, `[position]`, `[data]`, `[train]`, `[run]` and a top-level
//! `backend`. Unknown keys are rejected (`deny_unknown_fields`) so a typo never silently
//! falls back to a default; [`Config::validate`] checks values and names the field.
//! Example: `configs/shakespeare-char.toml`.

use std::path::{Path, PathBuf};

use ember_position::PositionConfig;
use serde::{Deserialize, Serialize};

pub use crate::model::{EmbedScale, ModelConfig, NormKind};
use crate::model::TinyLmConfig;
use crate::TrainError;

/// A whole run's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Backend name (`flex`, `ndarray`, `wgpu`, `wgpu-cpu`, `cuda`); `--backend` overrides it.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Model shape.
    pub model: ModelConfig,
    /// Position scheme (the position crate's config, tagged by `scheme = "..."`).
    #[serde(default)]
    pub position: PositionConfig,
    /// Corpus and tokenizer.
    pub data: DataConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Output.
    #[serde(default)]
    pub run: RunConfig,
}

fn default_backend() -> String {
    "flex".into()
}

/// Which tokenizer turns the corpus into ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TokenizerConfig {
    /// One token per distinct character, ids in sorted order (nanoGPT). (An empty struct
    /// variant, so that unknown keys next to `kind = "char"` are rejected.)
    Char {},
    /// Byte-level BPE trained on the training split (offline) with `vocab_size` tokens.
    Bpe {
        /// Target vocabulary size.
        vocab_size: usize,
    },
    /// A user's `tokenizer.json`.
    File {
        /// Path to the file.
        path: PathBuf,
    },
}

/// `[data]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Corpus text file (relative paths are relative to the working directory); omitted
    /// with `task`.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub corpus: PathBuf,
    /// A synthetic task generating the text instead of a corpus (see [`crate::tasks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::tasks::TaskConfig>,
    /// Tokenizer; default `{ kind = "char" }`.
    #[serde(default = "default_tokenizer")]
    pub tokenizer: TokenizerConfig,
    /// Fraction of tokens (the tail) held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Context length `T` of training windows (for a task: positions per row, at least
    /// the longest training example's, [`crate::tasks::TaskConfig::positions`]).
    pub context: usize,
}

fn is_empty_path(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

fn default_tokenizer() -> TokenizerConfig {
    TokenizerConfig::Char {}
}
fn default_val_fraction() -> f64 {
    0.1
}

/// `[train]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Sequences per step.
    pub batch_size: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup: usize,
    /// Final learning rate of the cosine decay (reached at `steps`).
    #[serde(default)]
    pub min_lr: f64,
    /// AdamW decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW betas.
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// Clip gradients to this global L2 norm (0 = off).
    #[serde(default)]
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the end).
    #[serde(default = "default_eval_interval")]
    pub eval_interval: usize,
    /// Print a step line every this many steps when the output is not a terminal.
    #[serde(default = "default_log_interval")]
    pub log_interval: usize,
    /// Batches averaged per evaluation.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Checkpoint every this many steps (and at the end); 0 = only at the end.
    #[serde(default)]
    pub checkpoint_interval: usize,
    /// Seed of the weights and the batch sampler.
    #[serde(default)]
    pub seed: u64,
    /// Compute the training loss with the fused, chunked head (`ember_embed::fused`): same
    /// loss and gradients, without the `[B, T, V]` logits.
    #[serde(default)]
    pub fused_head: bool,
    /// Rows of `B·T` per chunk of the fused head; 0 = `ember_embed::fused::default_chunk(V)`.
    #[serde(default)]
    pub fused_head_chunk: usize,
}

impl TrainConfig {
    /// The fused head's chunk size for a vocabulary of `vocab` tokens, or `None` when the
    /// plain head is used (`fused_head = false`).
    pub fn head_chunk(&self, vocab: usize) -> Option<usize> {
        self.fused_head.then(|| if self.fused_head_chunk > 0 { self.fused_head_chunk } else { ember_embed::fused::default_chunk(vocab) })
    }
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eval_interval() -> usize {
    250
}
fn default_log_interval() -> usize {
    100
}
fn default_eval_batches() -> usize {
    20
}

/// `[run]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run directory: resolved config, tokenizer, metrics, checkpoints, plots.
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self { out_dir: default_out_dir() }
    }
}

fn default_out_dir() -> PathBuf {
    PathBuf::from("runs/default")
}

/// What a command line may change in a loaded config (see [`Config::with_overrides`]).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--backend`.
    pub backend: Option<String>,
    /// `--steps` (must be ≥ 1).
    pub steps: Option<usize>,
    /// `--out`.
    pub out_dir: Option<PathBuf>,
}

impl Config {
    /// Parse TOML text; unknown keys and bad values are errors naming the field.
    pub fn from_toml(text: &str) -> Result<Self, TrainError> {
        let config: Config = toml::from_str(text).map_err(|e| TrainError::ConfigFile { path: PathBuf::new(), reason: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::ConfigFile { path: path.to_path_buf(), reason: format!("cannot read the config file: {e}") })?;
        Self::from_toml(&text).map_err(|e| match e {
            TrainError::ConfigFile { reason, .. } => TrainError::ConfigFile { path: path.to_path_buf(), reason },
            TrainError::Config { field, reason } => TrainError::ConfigFile { path: path.to_path_buf(), reason: format!("`{field}`: {reason}") },
            other => other,
        })
    }

    /// The config as TOML (what the run directory keeps as `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a Config always serializes")
    }

    /// Check values; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |field: &str, why: String| Err(TrainError::config(field, why));
        self.model.validate().map_err(|e| match e {
            crate::model::ModelError::Invalid { field, reason } => TrainError::config(field, reason),
            other => other.into(),
        })?;
        if let Err(e) = self.position.validate(self.model.d_model, self.model.n_heads) {
            return bad("position", e.to_string());
        }
        let d = &self.data;
        match (&d.task, d.corpus.as_os_str().is_empty()) {
            (Some(task), true) => {
                task.validate(d.context)?;
                if !matches!(d.tokenizer, TokenizerConfig::Char {}) {
                    return bad("data.tokenizer", "a task uses the character tokenizer; remove data.tokenizer".into());
                }
            }
            (Some(_), false) => return bad("data.corpus", "give either a corpus or a task, not both".into()),
            (None, true) => return bad("data.corpus", "missing: set data.corpus to a text file (or data.task)".into()),
            (None, false) => {}
        }
        if d.context < 1 {
            return bad("data.context", "must be ≥ 1".into());
        }
        if !(0.0 < d.val_fraction && d.val_fraction < 1.0) {
            return bad("data.val_fraction", format!("{} is not in (0, 1)", d.val_fraction));
        }
        if let TokenizerConfig::Bpe { vocab_size } = d.tokenizer {
            if vocab_size < 257 {
                return bad("data.tokenizer.vocab_size", format!("{vocab_size} is below 257 (byte-level BPE needs the 256 bytes plus merges)"));
            }
        }
        if let Some(max) = self.position_max_len() {
            if d.context > max {
                return bad("data.context", format!("{} is longer than the learned position table (position.max_len = {max}); raise max_len", d.context));
            }
        }
        let tc = &self.train;
        if tc.batch_size == 0 || tc.steps == 0 {
            return bad("train", "batch_size and steps must be ≥ 1".into());
        }
        if !(tc.lr > 0.0 && tc.lr.is_finite()) {
            return bad("train.lr", format!("{} must be a positive number", tc.lr));
        }
        if !(0.0..=tc.lr).contains(&tc.min_lr) {
            return bad("train.min_lr", format!("{} must be in [0, lr = {}]", tc.min_lr, tc.lr));
        }
        if tc.warmup >= tc.steps {
            return bad("train.warmup", format!("{} warm-up steps leave nothing of {} steps", tc.warmup, tc.steps));
        }
        if tc.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad("train.betas", format!("{:?}: each must be in [0, 1)", tc.betas));
        }
        if tc.weight_decay < 0.0 || tc.grad_clip < 0.0 {
            return bad("train", "weight_decay and grad_clip must be ≥ 0".into());
        }
        if tc.eval_interval == 0 || tc.eval_batches == 0 || tc.log_interval == 0 {
            return bad("train", "eval_interval, eval_batches and log_interval must be ≥ 1".into());
        }
        if let Err(e) = self.backend.parse::<ember_device::BackendName>() {
            return bad("backend", e.to_string());
        }
        Ok(())
    }

    /// The model this config trains, for a tokenizer of `vocab_size` tokens (a task's
    /// model has a padding row at the task's pad id, [`crate::tasks::TaskConfig::pad_id`]).
    pub fn tiny_lm(&self, vocab_size: usize) -> TinyLmConfig {
        let padding_idx = self.data.task.as_ref().map(crate::tasks::TaskConfig::pad_id);
        TinyLmConfig::new(vocab_size, self.model.clone(), self.position.clone()).with_padding_idx(padding_idx)
    }

    /// Apply command-line overrides: backend, a step budget (the warm-up is shortened to
    /// fit it, as `--steps 10` on a 100-step warm-up config would otherwise be invalid),
    /// run directory. Validates the result.
    pub fn with_overrides(mut self, o: &Overrides) -> Result<Self, TrainError> {
        if let Some(b) = &o.backend {
            self.backend = b.clone();
        }
        if let Some(s) = o.steps {
            self.train.steps = s;
            self.train.warmup = self.train.warmup.min(s.saturating_sub(1));
        }
        if let Some(out) = &o.out_dir {
            self.run.out_dir = out.clone();
        }
        self.validate()?;
        Ok(self)
    }

    fn position_max_len(&self) -> Option<usize> {
        match &self.position {
            PositionConfig::Learned { max_len, .. } => Some(*max_len),
            _ => None,
        }
    }
}
