//! `ember export`: a run's weights as a safetensors file, written by burn-store's
//! [`SafetensorsStore`] (atomically: a scratch file beside the target, renamed when whole).
//!
//! - [`Names::Ember`]: Burn's module paths and layouts (`blocks.0.attn.qkv.weight [d, 3d]`,
//!   norms `gamma`/`beta`; enum variants left out of the paths). Metadata: the run's
//!   `config.toml` under `ember.config`.
//! - [`Names::Nanogpt`]: nanoGPT's keys and PyTorch's `[out, in]` layout (see [`super::names`]),
//!   with `lm_head.weight [V, d]` always written (a copy of `transformer.wte.weight` when the
//!   head is tied), so `GPT.load_state_dict(safetensors.torch.load_file(f))` loads it.
//!   Metadata: `model_args` (nanoGPT's dict, as JSON), `ember.config`, `format = "pt"`.
//!   Only configs with nanoGPT's architecture export this way ([`nanogpt_args`]).

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PathFilter, SafetensorsStore};
use ember_position::PositionConfig;

use super::names::{self, NanoGptArgs};
use crate::config::{Config, NormKind};
use crate::model::TinyLm;
use crate::run::LoadedRun;
use crate::TrainError;

/// Which tensor names (and layouts) an export uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// Burn's module paths, Burn's `[in, out]` linear layout.
    Ember,
    /// nanoGPT's state-dict keys, PyTorch's `[out, in]` layout.
    Nanogpt,
}

impl std::str::FromStr for Names {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ember" => Ok(Self::Ember),
            "nanogpt" => Ok(Self::Nanogpt),
            other => Err(format!("unknown names `{other}`; use ember or nanogpt")),
        }
    }
}

impl Names {
    /// The file name `ember export` writes into the run directory without `--out`.
    pub fn default_file(self) -> &'static str {
        match self {
            Self::Ember => "model.safetensors",
            Self::Nanogpt => "nanogpt.safetensors",
        }
    }
}

/// nanoGPT's `model_args` for a run's `config` with `vocab_size` tokens, or every way the
/// config departs from nanoGPT's architecture (each naming the config key and value).
pub fn nanogpt_args(config: &Config, vocab_size: usize) -> Result<NanoGptArgs, Vec<String>> {
    let m = &config.model;
    let mut why = Vec::new();
    let block_size = match &config.position {
        PositionConfig::Learned { max_len, .. } => *max_len,
        other => {
            let scheme = serde_json::to_value(other).ok().and_then(|v| v.get("scheme").and_then(|s| s.as_str()).map(String::from)).unwrap_or_default();
            why.push(format!("position.scheme = \"{scheme}\": nanoGPT adds learned absolute positions (`transformer.wpe`); only `learned` exports"));
            0
        }
    };
    if m.norm != NormKind::Layernorm {
        why.push("model.norm = \"rmsnorm\": nanoGPT uses LayerNorm".into());
    }
    if m.mlp_ratio != 4 {
        why.push(format!("model.mlp_ratio = {}: nanoGPT's MLP is d → 4d → d", m.mlp_ratio));
    }
    let scale = config.tiny_lm(vocab_size).embed_scale();
    if scale != 1.0 {
        why.push(format!("the token embeddings are scaled by {scale} (model.embed_scale): nanoGPT adds wte and wpe unscaled"));
    }
    if !m.tie_embeddings && m.bias {
        why.push("model.tie_embeddings = false with model.bias = true: ember's untied head then has a bias, nanoGPT's lm_head has none".into());
    }
    if !why.is_empty() {
        return Err(why);
    }
    Ok(NanoGptArgs { n_layer: m.n_layers, n_head: m.n_heads, n_embd: m.d_model, block_size, bias: m.bias, vocab_size, dropout: m.dropout })
}

/// The model with nanoGPT's `lm_head` beside it, for export under nanoGPT names.
#[derive(Module, Debug)]
struct NanoGptView {
    model: TinyLm,
    /// `[V, d]`: the head's output rows (the token table itself when tied).
    lm_head: Param<Tensor<2>>,
}

/// What [`export_safetensors`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportSummary {
    /// The file.
    pub path: PathBuf,
    /// Tensors in it.
    pub tensors: usize,
    /// The names used (`ember` or `nanogpt`).
    pub names: &'static str,
}

/// Write `run`'s weights to `out` as safetensors with `names` (see the module docs). A
/// config nanoGPT cannot express is an error listing every mismatch, and nothing is
/// written; so is a missing parent directory.
pub fn export_safetensors(run: &LoadedRun, names: Names, out: &Path) -> Result<ExportSummary, TrainError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(TrainError::interop(out, format!("the directory {} does not exist; create it or choose another --out", parent.display())));
        }
    }
    let encode = |e: burn_store::SafetensorsStoreError| TrainError::Encode { path: out.to_path_buf(), reason: e.to_string() };
    let mut store = SafetensorsStore::from_file(out).overwrite(true).skip_enum_variants(true).metadata("ember.config", run.config.to_toml());
    match names {
        Names::Ember => run.model.save_into(&mut store).map_err(encode)?,
        Names::Nanogpt => {
            let args = nanogpt_args(&run.config, run.tokenizer.vocab_size()).map_err(|why| {
                TrainError::interop(run.dir.path(), format!("cannot export under nanoGPT names: {}. Export with --names ember instead", why.join("; ")))
            })?;
            let view = NanoGptView { lm_head: Param::from_tensor(run.model.head.rows(&run.model.tok)), model: run.model.clone() };
            store = store
                .with_to_adapter(BurnToPyTorchAdapter)
                .filter(PathFilter::new().with_predicate(|path, _| !path.starts_with("model.head.")))
                .remap(names::ember_to_nanogpt("model."))
                .metadata("model_args", serde_json::to_string(&args).expect("args serialize"))
                .metadata("format", "pt");
            view.save_into(&mut store).map_err(encode)?
        }
    }
    let tensors = store.keys().map_err(encode)?.len();
    Ok(ExportSummary { path: out.to_path_buf(), tensors, names: match names { Names::Ember => "ember", Names::Nanogpt => "nanogpt" } })
}
