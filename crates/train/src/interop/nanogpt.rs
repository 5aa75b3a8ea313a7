//! A nanoGPT checkpoint as a source of weights: nanoGPT's `ckpt.pt` (read with burn-store's
//! [`PytorchStore`] and its pickle reader) or a safetensors file with nanoGPT's keys and
//! `model_args` metadata (what `ember export --names nanogpt` writes, read with
//! [`SafetensorsStore`]).
//!
//! `ckpt.pt` is `torch.save({'model': state_dict, 'model_args': {...}, 'iter_num', ...})`:
//! the architecture comes from `model_args` (`n_layer`, `n_head`, `n_embd`, `block_size`,
//! `bias`, `vocab_size`, `dropout`), every tensor of `model` is checked against the shape it
//! implies ([`names::nanogpt_shapes`]) before anything is loaded, and the `_orig_mod.` prefix
//! of a compiled model's keys is stripped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use burn_store::{ModuleSnapshot, ModuleStore, PathFilter, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};

use super::names::{self, NanoGptArgs, LM_HEAD};
use super::pickle;
use crate::model::TinyLm;
use crate::TrainError;

/// The container of a checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `torch.save` output (ZIP or legacy pickle).
    Pytorch,
    /// safetensors with nanoGPT keys.
    Safetensors,
}

/// An opened, checked nanoGPT checkpoint.
#[derive(Debug)]
pub struct NanoGptCheckpoint {
    path: PathBuf,
    format: Format,
    /// The architecture (`model_args`).
    pub args: NanoGptArgs,
    /// Whether `lm_head.weight` equals `transformer.wte.weight` (nanoGPT always ties).
    pub tied: bool,
    /// `iter_num` (0 when the file does not say).
    pub iter_num: usize,
    /// nanoGPT's training `config` dict as JSON (`null` when absent).
    pub train_config: serde_json::Value,
}

fn is_safetensors(path: &Path) -> Result<bool, TrainError> {
    use std::io::Read;
    let mut head = [0u8; 9];
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::read(path, e))?;
    let n = file.read(&mut head).map_err(|e| TrainError::read(path, e))?;
    Ok(n == 9 && u64::from_le_bytes(head[..8].try_into().unwrap()) < 100_000_000 && head[8] == b'{')
}

/// The `__metadata__` of a safetensors file's header (string → string).
fn safetensors_metadata(path: &Path) -> Result<std::collections::HashMap<String, String>, TrainError> {
    use std::io::Read;
    let bad = |why: String| TrainError::interop(path, format!("unreadable safetensors header: {why}"));
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::read(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
    file.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let mut header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    Ok(serde_json::from_value(header["__metadata__"].take()).unwrap_or_default())
}

impl NanoGptCheckpoint {
    /// Open `path`, read its `model_args` and check every tensor's name and shape. Errors
    /// name what is missing, unexpected or misshapen.
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        if !path.is_file() {
            return Err(TrainError::interop(path, "no such file; pass nanoGPT's ckpt.pt (e.g. out-shakespeare-char/ckpt.pt)"));
        }
        let format = if is_safetensors(path)? { Format::Safetensors } else { Format::Pytorch };
        let not_nanogpt = |why: String| {
            TrainError::interop(path, format!("not a nanoGPT checkpoint: {why} (nanoGPT's train.py saves a dict with `model` and `model_args`)"))
        };
        let (args, iter_num, train_config) = match format {
            Format::Pytorch => {
                let args = pickle::read_json(path, Some("model_args")).map_err(|e| not_nanogpt(e.to_string()))?;
                let iter_num = pickle::read_json(path, Some("iter_num")).ok().and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                let config = pickle::read_json(path, Some("config")).unwrap_or(serde_json::Value::Null);
                (args, iter_num, config)
            }
            Format::Safetensors => {
                let text = safetensors_metadata(path)?.remove("model_args");
                let text = text.ok_or_else(|| not_nanogpt("no `model_args` in the safetensors metadata (export with `ember export --names nanogpt`)".into()))?;
                let args = serde_json::from_str(&text).map_err(|e| not_nanogpt(format!("model_args metadata: {e}")))?;
                (args, 0, serde_json::Value::Null)
            }
        };
        let args: NanoGptArgs = serde_json::from_value(args.clone()).map_err(|e| not_nanogpt(format!("model_args {args}: {e}")))?;
        let mut ck = Self { path: path.to_path_buf(), format, args, tied: true, iter_num, train_config };
        let found = ck.shapes()?;
        ck.check_shapes(&found)?;
        ck.tied = ck.tensor("transformer.wte.weight", &found)? == ck.tensor(LM_HEAD, &found)?;
        Ok(ck)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A store over the file's model tensors; `to_ember` renames them to ember's paths and
    /// leaves the head out (an untied head is set from `lm_head.weight` by [`Self::load_into`]).
    fn store(&self, to_ember: bool) -> Store {
        let (remap, filter) = if to_ember {
            (names::nanogpt_to_ember(), PathFilter::new().with_predicate(|path, _| !path.starts_with("head.")))
        } else {
            (burn_store::KeyRemapper::new(), PathFilter::new().match_all())
        };
        match self.format {
            Format::Pytorch => {
                Store::Pytorch(PytorchStore::from_file(&self.path).with_top_level_key("model").remap(remap).filter(filter).allow_partial(true).skip_enum_variants(true))
            }
            Format::Safetensors => Store::Safetensors(
                SafetensorsStore::from_file(&self.path)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .remap(remap)
                    .filter(filter)
                    .allow_partial(true)
                    .skip_enum_variants(true),
            ),
        }
    }

    /// Every model tensor: key (without `_orig_mod.`) → (key in the file, shape).
    fn shapes(&self) -> Result<BTreeMap<String, (String, Vec<usize>)>, TrainError> {
        let mut store = self.store(false);
        let all = store.all().map_err(|e| TrainError::interop(&self.path, format!("not a nanoGPT checkpoint: cannot read its `model` tensors: {e}")))?;
        Ok(all.into_iter().map(|(k, shape)| (names::strip_compiled(&k).to_string(), (k, shape))).collect())
    }

    fn check_shapes(&self, found: &BTreeMap<String, (String, Vec<usize>)>) -> Result<(), TrainError> {
        let expected = names::nanogpt_shapes(&self.args);
        let a = &self.args;
        let implied = format!("model_args (n_layer {}, n_embd {}, block_size {}, vocab_size {}, bias {})", a.n_layer, a.n_embd, a.block_size, a.vocab_size, a.bias);
        let missing: Vec<&str> = expected.keys().filter(|k| !found.contains_key(*k)).map(String::as_str).collect();
        let unexpected: Vec<&str> = found.iter().filter(|(k, (_, s))| !expected.contains_key(*k) && !names::is_mask_buffer(k, s)).map(|(k, _)| k.as_str()).collect();
        let misshapen: Vec<String> = expected
            .iter()
            .filter_map(|(k, want)| found.get(k).filter(|(_, got)| got != want).map(|(_, got)| format!("{k} is {got:?}, expected {want:?}")))
            .collect();
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing tensors {missing:?}"));
        }
        if !unexpected.is_empty() {
            why.push(format!("tensors nanoGPT does not have {unexpected:?}"));
        }
        if !misshapen.is_empty() {
            why.push(format!("wrong shapes: {}", misshapen.join(", ")));
        }
        if why.is_empty() {
            return Ok(());
        }
        Err(TrainError::interop(&self.path, format!("does not match its {implied}: {}", why.join("; "))))
    }

    /// The data of model tensor `key` (nanoGPT name), as f32.
    fn tensor(&self, key: &str, found: &BTreeMap<String, (String, Vec<usize>)>) -> Result<TensorData, TrainError> {
        let file_key = &found[key].0;
        let mut store = self.store(false);
        let data = store.data(file_key).map_err(|e| TrainError::interop(&self.path, format!("cannot read tensor {file_key}: {e}")))?;
        Ok(data.convert::<f32>())
    }

    /// Load the weights into `model` (built from this checkpoint's config: same shapes, tied
    /// or untied like [`Self::tied`]). An untied head gets `lm_head.weight` transposed to
    /// `[d, V]` (and a zero bias when the config has biases).
    pub fn load_into(&self, mut model: TinyLm) -> Result<TinyLm, TrainError> {
        let mut store = self.store(true);
        let result = store.apply(&mut model).map_err(|e| TrainError::interop(&self.path, format!("cannot load the weights: {e}")))?;
        // The head is set below; anything else missing is an error.
        if !result.errors.is_empty() || result.missing.iter().any(|(path, _)| !path.starts_with("head.")) {
            return Err(TrainError::interop(&self.path, format!("cannot load the weights: {result}")));
        }
        if !self.tied {
            let device: Device = model.tok.weight.device();
            let found = self.shapes()?;
            let rows = Tensor::<2>::from_data(self.tensor(LM_HEAD, &found)?, &device); // [V, d]
            let bias = self.args.bias.then(|| Tensor::<1>::zeros([self.args.vocab_size], &device));
            model.head = ember_embed::LmHead::untied(rows.transpose(), bias)?;
        }
        Ok(model)
    }
}

/// The two stores, behind one interface (ModuleStore is not object safe).
enum Store {
    Pytorch(PytorchStore),
    Safetensors(SafetensorsStore),
}

macro_rules! each {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Store::Pytorch($s) => $body.map_err(|e| e.to_string()),
            Store::Safetensors($s) => $body.map_err(|e| e.to_string()),
        }
    };
}

impl Store {
    /// Every tensor's (remapped) name and shape.
    fn all(&mut self) -> Result<Vec<(String, Vec<usize>)>, String> {
        let tensors = each!(self, s => s.get_all_tensors())?;
        Ok(tensors.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect())
    }

    /// The data of tensor `name`.
    fn data(&mut self, name: &str) -> Result<TensorData, String> {
        let tensor = each!(self, s => s.get_tensor(name))?.ok_or_else(|| format!("no tensor {name}"))?;
        burn_store::bridge::to_data(tensor).map_err(|e| format!("{e:?}"))
    }

    /// Load every tensor into `model` by name.
    fn apply(&mut self, model: &mut TinyLm) -> Result<burn_store::ApplyResult, String> {
        each!(self, s => model.load_from(s))
    }
}
