//! The run directory: its layout, creating one, loading one, listing several.
//!
//! ```text
//! runs/<name>/
//!   config.toml      the resolved config (corpus path made absolute, so the run can be
//!                    evaluated from any working directory)
//!   tokenizer.json   the tokenizer the model was trained with
//!   metrics.jsonl    one JSON object per step / evaluation (see crate::metrics)
//!   checkpoint.bin   weights + optimizer + progress, replaced atomically (see checkpoint)
//!   loss_curve.png   drawn by the CLI after training
//!   sample.txt       the post-training sample
//! ```

pub mod checkpoint;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

pub use checkpoint::{Checkpoint, TrainState};

use crate::fs::write_atomic;

use crate::config::Config;
use crate::model::TinyLm;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// A run directory (it need not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir(PathBuf);

/// A trained model with its config and tokenizer.
pub struct LoadedRun {
    /// Where it was loaded from.
    pub dir: RunDir,
    /// The run's resolved config.
    pub config: Config,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The model (plain device: no autodiff).
    pub model: TinyLm,
    /// Steps it was trained for.
    pub step: usize,
}

impl LoadedRun {
    /// The model's token table `E` (`[V, d]`, row `i` = input vector of token `i`, unscaled)
    /// with the tokenizer's token strings, as host data for the embedding tools.
    pub fn token_table(&self) -> ember_embed::io::LoadedTable {
        ember_embed::io::LoadedTable { tokens: self.tokenizer.tokens(), weights: self.model.tok.weight.val().into_data() }
    }
}

/// One line of [`RunDir::list`].
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run directory.
    pub path: PathBuf,
    /// Steps completed (from the checkpoint's progress).
    pub step: usize,
    /// The last logged validation loss, if any evaluation ran.
    pub val_loss: Option<f64>,
}

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }
    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// `config.toml`
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// `tokenizer.json`
    pub fn tokenizer(&self) -> PathBuf {
        self.0.join("tokenizer.json")
    }
    /// `metrics.jsonl`
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }
    /// `checkpoint.bin`
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint.bin")
    }
    /// `loss_curve.png`
    pub fn loss_curve(&self) -> PathBuf {
        self.0.join("loss_curve.png")
    }
    /// `sample.txt`
    pub fn sample(&self) -> PathBuf {
        self.0.join("sample.txt")
    }

    /// Whether the directory holds a run (`config.toml` and `checkpoint.bin`).
    pub fn exists(&self) -> bool {
        self.0.is_dir() && self.config().exists() && self.checkpoint().exists()
    }

    /// Create the directory and write `config.toml` (with the corpus path made absolute)
    /// and `tokenizer.json`: the start of a fresh run.
    pub fn create(&self, config: &Config, tokenizer: &Tokenizer) -> Result<(), TrainError> {
        self.ensure()?;
        let mut config = config.clone();
        if let Ok(abs) = std::path::absolute(&config.data.corpus) {
            config.data.corpus = abs;
        }
        write_atomic(&self.config(), config.to_toml().as_bytes())?;
        tokenizer.save(&self.tokenizer())
    }

    /// Make sure the directory exists (for a resumed or fresh run).
    pub fn ensure(&self) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.0).map_err(|e| TrainError::write(&self.0, e))
    }

    /// Write `sample.txt`.
    pub fn save_sample(&self, text: &str) -> Result<(), TrainError> {
        write_atomic(&self.sample(), text.as_bytes())
    }

    /// Load `config.toml`, `tokenizer.json` and `checkpoint.bin` onto `device`.
    pub fn load(&self, device: &Device) -> Result<LoadedRun, TrainError> {
        if !self.checkpoint().exists() {
            return Err(TrainError::checkpoint(
                &self.0,
                "no checkpoint.bin here; pass the run directory of a finished `ember train` (e.g. runs/shakespeare-char)",
            ));
        }
        let config = Config::load(&self.config())?;
        let tokenizer = Tokenizer::load(&self.tokenizer())?;
        let ck = Checkpoint::load(&self.checkpoint())?;
        let model = config.tiny_lm(tokenizer.vocab_size()).init(device)?;
        let model = checkpoint::load_model(model, ck.model, &self.checkpoint())?;
        Ok(LoadedRun { dir: self.clone(), config, tokenizer, model, step: ck.state.step })
    }

    /// The runs directly below `parent` (sorted by path), with their progress.
    pub fn list(parent: &Path) -> Result<Vec<RunSummary>, TrainError> {
        let entries = std::fs::read_dir(parent).map_err(|e| TrainError::read(parent, e))?;
        let mut runs = Vec::new();
        for entry in entries.flatten() {
            let run = RunDir::new(entry.path());
            if !run.exists() {
                continue;
            }
            let step = Checkpoint::load(&run.checkpoint())?.state.step;
            let val_loss = crate::metrics::read_metrics(&run.metrics()).ok().and_then(|(_, evals)| evals.last().map(|e| e.2));
            runs.push(RunSummary { path: run.0, step, val_loss });
        }
        runs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(runs)
    }
}
