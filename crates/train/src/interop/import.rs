//! `ember import nanogpt`: a nanoGPT checkpoint → an ordinary ember run directory
//! (`config.toml`, `tokenizer.json`, `checkpoint.bin`) that `eval`, `sample` and `embed`
//! read like any trained run.
//!
//! - Architecture: nanoGPT's `model_args` → `[model]` (LayerNorm, MLP ratio 4, `bias`,
//!   tied head unless `lm_head.weight` differs from `wte`) and `[position]`
//!   (`learned`, `max_len = block_size`); `data.context = block_size`.
//! - Vocabulary: nanoGPT's `meta.pkl` (`--meta`; found by itself at
//!   `data/<dataset>/meta.pkl` from the checkpoint's `config['dataset']` when neither
//!   `--meta` nor `--tokenizer` is given), or any `tokenizer.json` (`--tokenizer`).
//! - Corpus: `--corpus`, else `input.txt` beside `meta.pkl` (nanoGPT's `*_char` layout);
//!   `val_fraction = 0.1` as nanoGPT's `prepare.py` splits, so `ember eval` scores the same
//!   validation text.
//! - `[train]`: the checkpoint's `config` dict where it has the value (batch size, lr, …),
//!   nanoGPT's `train.py` defaults otherwise; step = `iter_num`. The optimizer state is not
//!   imported (a resumed run starts fresh AdamW moments).
//!
//! Everything is checked before anything is written; the run is assembled in a temporary
//! directory beside `--out` and renamed into place at the end, so a failure leaves nothing.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ember_position::PositionConfig;

use super::nanogpt::NanoGptCheckpoint;
use super::names::NanoGptArgs;
use super::pickle;
use crate::config::{Config, DataConfig, ModelConfig, NormKind, RunConfig, TokenizerConfig, TrainConfig};
use crate::dataset::Dataset;
use crate::run::{checkpoint, Checkpoint, RunDir, TrainState};
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// What `ember import nanogpt` was asked to do.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// nanoGPT's `ckpt.pt` (or a safetensors file from `ember export --names nanogpt`).
    pub checkpoint: PathBuf,
    /// The run directory to create (must not exist).
    pub out: PathBuf,
    /// nanoGPT's `meta.pkl` (character vocabulary).
    pub meta: Option<PathBuf>,
    /// A `tokenizer.json` instead of `meta.pkl`.
    pub tokenizer: Option<PathBuf>,
    /// The corpus the model was trained on.
    pub corpus: Option<PathBuf>,
}

/// What [`import_nanogpt`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportSummary {
    /// The new run directory.
    pub run: PathBuf,
    /// The checkpoint's architecture.
    pub model_args: NanoGptArgs,
    /// Whether the head is tied to the token table.
    pub tied: bool,
    /// The step recorded (nanoGPT's `iter_num`).
    pub step: usize,
    /// Where the vocabulary came from.
    pub vocabulary: PathBuf,
    /// The corpus the run evaluates on.
    pub corpus: PathBuf,
}

/// Import `opts.checkpoint` into a new run directory `opts.out`; the model is built on
/// `device` to load the weights. See the module docs.
pub fn import_nanogpt(opts: &ImportOptions, device: &Device) -> Result<ImportSummary, TrainError> {
    if opts.out.exists() {
        return Err(TrainError::interop(&opts.out, "already exists; choose another --out or remove it"));
    }
    let ck = NanoGptCheckpoint::open(&opts.checkpoint)?;
    let (tokenizer, vocabulary) = vocabulary(opts, &ck)?;
    if tokenizer.vocab_size() != ck.args.vocab_size {
        let reason = format!("has {} tokens but the checkpoint's vocab_size is {}; pass the vocabulary the model was trained with", tokenizer.vocab_size(), ck.args.vocab_size);
        return Err(TrainError::interop(&vocabulary, reason));
    }
    let corpus = corpus(opts, &vocabulary)?;
    let config = run_config(&ck, &tokenizer, corpus.clone(), &opts.out)?;
    // The corpus must tokenize and hold a validation window: `ember eval` needs both.
    Dataset::load(&config.data, Some(tokenizer.clone()))?;
    let model = ck.load_into(config.tiny_lm(ck.args.vocab_size).init(device)?)?;
    let (model_bytes, optim_bytes) = checkpoint::to_bytes(&model, &crate::trainer::optimizer(&config.train).module)?;
    let state = TrainState { step: ck.iter_num, elapsed_s: 0.0, tokens: 0 };

    let name = opts.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let tmp = RunDir::new(opts.out.with_file_name(format!(".{name}.import-{}.tmp", std::process::id())));
    let written = (|| {
        tmp.create(&config, &tokenizer)?;
        Checkpoint { state, model: model_bytes, optim: optim_bytes }.save(&tmp.checkpoint())?;
        std::fs::rename(tmp.path(), &opts.out).map_err(|e| TrainError::write(&opts.out, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(tmp.path());
    }
    written?;
    Ok(ImportSummary { run: opts.out.clone(), model_args: ck.args.clone(), tied: ck.tied, step: ck.iter_num, vocabulary, corpus })
}

/// The tokenizer (and the file it came from): `--meta`, `--tokenizer`, or the dataset's
/// `meta.pkl` found from the checkpoint's `config['dataset']`.
fn vocabulary(opts: &ImportOptions, ck: &NanoGptCheckpoint) -> Result<(Tokenizer, PathBuf), TrainError> {
    if let Some(path) = &opts.tokenizer {
        return Ok((Tokenizer::load(path)?, path.clone()));
    }
    let meta = match &opts.meta {
        Some(path) => path.clone(),
        None => {
            let dataset = ck.train_config.get("dataset").and_then(|d| d.as_str()).unwrap_or_default();
            let near = ck.path().parent().and_then(Path::parent).unwrap_or(Path::new("."));
            let candidates = [near.join("data").join(dataset).join("meta.pkl"), Path::new("data").join(dataset).join("meta.pkl")];
            candidates.into_iter().find(|p| !dataset.is_empty() && p.is_file()).ok_or_else(|| {
                TrainError::interop(ck.path(), "no vocabulary: pass --meta (nanoGPT's data/<dataset>/meta.pkl) or --tokenizer FILE")
            })?
        }
    };
    Ok((Tokenizer::Char { chars: pickle::read_meta_vocab(&meta)? }, meta))
}

/// `--corpus`, else `input.txt` beside `vocabulary` (nanoGPT's `data/<dataset>/` layout).
fn corpus(opts: &ImportOptions, vocabulary: &Path) -> Result<PathBuf, TrainError> {
    let beside = vocabulary.parent().map(|d| d.join("input.txt")).filter(|p| p.is_file());
    let path = opts.corpus.clone().or(beside).ok_or_else(|| {
        TrainError::interop(vocabulary, "no corpus: pass --corpus, the text the model was trained on (ember eval scores its last 10%)")
    })?;
    if !path.is_file() {
        return Err(TrainError::interop(&path, "no such corpus file; pass --corpus with the text the model was trained on"));
    }
    Ok(std::path::absolute(&path).unwrap_or(path))
}

/// The run's config: the architecture from `model_args`, `[train]` from the checkpoint's
/// `config` where present (nanoGPT's `train.py` defaults otherwise).
fn run_config(ck: &NanoGptCheckpoint, tokenizer: &Tokenizer, corpus: PathBuf, out: &Path) -> Result<Config, TrainError> {
    let a = &ck.args;
    let c = &ck.train_config;
    let num = |key: &str, default: f64| c.get(key).and_then(|v| v.as_f64()).unwrap_or(default);
    let count = |key: &str, default: usize| c.get(key).and_then(|v| v.as_u64()).map_or(default, |v| v as usize);
    let model = ModelConfig {
        norm: NormKind::Layernorm,
        bias: a.bias,
        dropout: a.dropout,
        tie_embeddings: ck.tied,
        ..ModelConfig::new(a.n_embd, a.n_layer, a.n_head)
    };
    let tokenizer_config = match tokenizer {
        Tokenizer::Char { .. } => TokenizerConfig::Char {},
        Tokenizer::Hf(_) => TokenizerConfig::File { path: std::path::absolute(out).unwrap_or(out.to_path_buf()).join("tokenizer.json") },
    };
    // `[train]` only matters to a later `ember train --resume`; clamp values a short nanoGPT
    // run may leave inconsistent (max_iters below warmup_iters) instead of refusing the import.
    let (steps, lr) = (count("max_iters", 600_000).max(2), num("learning_rate", 6e-4));
    let config = Config {
        backend: "flex".into(),
        model,
        position: PositionConfig::Learned { max_len: a.block_size, init_std: 0.02 },
        data: DataConfig { corpus, task: None, tokenizer: tokenizer_config, val_fraction: 0.1, context: a.block_size },
        train: TrainConfig {
            batch_size: count("batch_size", 12),
            steps,
            lr,
            warmup: count("warmup_iters", 2000).min(steps - 1),
            min_lr: num("min_lr", 6e-5).min(lr),
            weight_decay: num("weight_decay", 0.1),
            betas: [num("beta1", 0.9), num("beta2", 0.95)],
            grad_clip: num("grad_clip", 1.0),
            eval_interval: count("eval_interval", 2000).max(1),
            log_interval: count("log_interval", 100).max(1),
            eval_batches: count("eval_iters", 200).max(1),
            checkpoint_interval: 0,
            seed: 1337,
            fused_head: false,
            fused_head_chunk: 0,
        },
        run: RunConfig { out_dir: out.to_path_buf() },
    };
    config.validate().map_err(|e| TrainError::interop(ck.path(), format!("its model_args give no valid ember config: {e}")))?;
    Ok(config)
}
