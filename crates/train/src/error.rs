//! Errors of training, evaluation and gradient checks: one variant per kind of failure,
//! each naming the file or config field it concerns. Messages say what was wrong and how
//! to fix it.

use std::path::PathBuf;

/// Everything that can go wrong in `ember-train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad config value; `field` is the key (`train.lr`, `data.context`).
    #[error("config error: `{field}`: {reason}")]
    Config {
        /// The config key.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A config file (or text, `path` empty) that does not parse: TOML syntax, unknown
    /// keys, wrong types.
    #[error("config error: {}{reason}", if path.as_os_str().is_empty() { String::new() } else { format!("{}: ", path.display()) })]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key and line).
        reason: String,
    },
    /// The model config or a forward pass (e.g. past a learned position table).
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A missing, empty, non-UTF-8 or too short corpus.
    #[error("corpus {}: {reason}", path.display())]
    Corpus {
        /// The corpus file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A tokenizer that cannot be built, read or applied.
    #[error("tokenizer{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Tokenizer {
        /// Its `tokenizer.json`, when one is involved.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint or run directory that cannot be used.
    #[error("checkpoint error: {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file or run directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A file ember writes (a tensor dump) that could not be encoded.
    #[error("cannot write {}: {reason}", path.display())]
    Encode {
        /// The output file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file to import or a model to export that does not fit (not a nanoGPT checkpoint,
    /// missing or misshapen tensors, a config nanoGPT cannot express).
    #[error("{}: {reason}", path.display())]
    Interop {
        /// The file read or written (or the run directory).
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
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
    /// An evaluation or sampling request the model cannot serve (`option` names the flag).
    #[error("{option}: {reason}")]
    Request {
        /// The option (`--context`, `--temperature`).
        option: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
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
    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Self {
        Self::Config { field: field.into(), reason: reason.into() }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint { path: path.into(), reason: reason.into() }
    }
    pub(crate) fn tokenizer(path: Option<&std::path::Path>, reason: impl Into<String>) -> Self {
        Self::Tokenizer { path: path.map(|p| p.to_path_buf()), reason: reason.into() }
    }
    pub(crate) fn interop(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Interop { path: path.into(), reason: reason.into() }
    }
    pub(crate) fn request(option: &'static str, reason: impl Into<String>) -> Self {
        Self::Request { option, reason: reason.into() }
    }
}
