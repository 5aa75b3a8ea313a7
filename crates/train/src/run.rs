//! Opening a finished (or interrupted) run directory for evaluation, sampling and the
//! embedding commands.

use std::path::Path;

use burn::tensor::Device;

use crate::checkpoint::{load_model, Checkpoint, RunDir};
use crate::config::Config;
use crate::data::Tokenizer;
use crate::model::TinyLm;
use crate::TrainError;

/// A trained model with its config and tokenizer.
pub struct LoadedRun {
    /// The run's resolved config.
    pub config: Config,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The model (plain device: no autodiff).
    pub model: TinyLm,
    /// Steps it was trained for.
    pub step: usize,
}

/// Whether `path` looks like a run directory (has `config.toml` and `checkpoint.bin`).
pub fn is_run_dir(path: &Path) -> bool {
    let run = RunDir(path.to_path_buf());
    path.is_dir() && run.config().exists() && run.checkpoint().exists()
}

/// Load `config.toml`, `tokenizer.json` and `checkpoint.bin` from `dir` onto `device`.
pub fn load_run(dir: &Path, device: &Device) -> Result<LoadedRun, TrainError> {
    let run = RunDir(dir.to_path_buf());
    if !run.checkpoint().exists() {
        return Err(TrainError::Checkpoint(format!(
            "{} has no checkpoint.bin; pass the run directory of a finished `ember train` (e.g. runs/shakespeare-char)",
            dir.display()
        )));
    }
    let config = Config::load(&run.config())?;
    let tokenizer = Tokenizer::load(&run.tokenizer())?;
    let ck = Checkpoint::load(&run.checkpoint())?;
    let model = TinyLm::new(&config, tokenizer.vocab_size(), device)?;
    let model = load_model(model, ck.model, &run.checkpoint())?;
    Ok(LoadedRun { config, tokenizer, model, step: ck.state.step })
}
