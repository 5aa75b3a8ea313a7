//! Errors of training, evaluation and gradient checks. Messages say what was wrong and
//! how to fix it.

use std::path::PathBuf;

/// Everything that can go wrong in `ember-train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad config file or value (the message names the field).
    #[error("config error: {0}")]
    Config(String),
    /// A bad or missing corpus / tokenizer.
    #[error("data error: {0}")]
    Data(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot read`, `cannot write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint or run directory that cannot be used.
    #[error("checkpoint error: {0}")]
    Checkpoint(String),
    /// The loss became NaN or infinite.
    #[error("loss is {value} at step {step}; the run stopped and the last good checkpoint ({checkpoint}) \
             is intact. Lower train.lr, set train.grad_clip, or check the data")]
    NonFiniteLoss {
        /// The step that produced it.
        step: usize,
        /// The value (NaN or ±inf).
        value: f64,
        /// Where the last good checkpoint is.
        checkpoint: String,
    },
    /// Evaluation asked for something the model cannot do.
    #[error("eval error: {0}")]
    Eval(String),
    /// From the embedding crate.
    #[error(transparent)]
    Embed(#[from] ember_embed::EmbedError),
    /// From the position crate.
    #[error(transparent)]
    Position(#[from] ember_position::PositionError),
    /// Backend selection.
    #[error(transparent)]
    Device(#[from] ember_device::DeviceError),
}

impl TrainError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action: "cannot read", path: path.into(), source }
    }
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action: "cannot write", path: path.into(), source }
    }
}
