//! Interop: the char tokenizer's tokenizer.json is a Hugging Face file; nanoGPT checkpoints
//! import with nanoGPT's own logits (fixture made by tests/fixtures/nanogpt/make_fixture.py);
//! export under nanoGPT names → import round-trips exactly; bad input is a clear error that
//! writes nothing.

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_store::ModuleSnapshot;
use ember_train::dataset::{Dataset, Split};
use ember_train::interop::{self, ImportOptions, Names};
use ember_train::run::{checkpoint, Checkpoint, LoadedRun, RunDir, TrainState};
use ember_train::tokenizer::Tokenizer;
use ember_train::Config;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/nanogpt").join(name)
}
fn corpus() -> PathBuf {
    root().join("data/tinyshakespeare.txt")
}

#[test]
fn char_tokenizer_json_is_a_hugging_face_file_that_encodes_like_ember() {
    let dir = common::temp_dir("interop-tok");
    let text = std::fs::read_to_string(corpus()).unwrap();
    let ember = Tokenizer::char_level(&text);
    let path = dir.join("tokenizer.json");
    ember.save(&path).unwrap();

    let hf = tokenizers::Tokenizer::from_file(&path).expect("the tokenizers library loads it");
    assert_eq!(hf.get_vocab_size(true), 65);
    let ids = ember.encode(&text).unwrap();
    let hf_ids = hf.encode(text.as_str(), false).unwrap().get_ids().to_vec();
    assert_eq!(hf_ids.len(), ids.len(), "one token per character");
    assert!(hf_ids == ids, "same ids for the whole corpus");
    assert!(hf.decode(&ids, false).unwrap() == text, "decoding gives the corpus back, spaces and newlines included");
    let tricky = "  a\n\n b  \n";
    assert_eq!(hf.encode(tricky, false).unwrap().get_ids(), ember.encode(tricky).unwrap().as_slice());
    assert_eq!(hf.decode(&ember.encode(tricky).unwrap(), false).unwrap(), tricky);
    assert!(hf.encode("é", false).is_err(), "an unknown character is an error, as in ember");

    // ember reads its own file back as the character tokenizer, and old runs still load.
    assert!(matches!(Tokenizer::load(&path).unwrap(), Tokenizer::Char { ref chars } if chars.len() == 65));
    let old = dir.join("old.json");
    std::fs::write(&old, r#"{"type": "ember-char", "chars": "\n !abc"}"#).unwrap();
    assert!(matches!(Tokenizer::load(&old).unwrap(), Tokenizer::Char { ref chars } if chars.len() == 6));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn logits(run: &LoadedRun, ids: &[u32], device: &Device) -> Tensor<3> {
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let n = ids.len();
    run.model.forward(Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), device).reshape([1, n]), 0).unwrap()
}

fn import(ck: &Path, out: &Path, meta: Option<PathBuf>, tokenizer: Option<PathBuf>) -> Result<interop::ImportSummary, ember_train::TrainError> {
    import_on(ck, out, meta, tokenizer, corpus())
}

fn import_on(ck: &Path, out: &Path, meta: Option<PathBuf>, tokenizer: Option<PathBuf>, corpus: PathBuf) -> Result<interop::ImportSummary, ember_train::TrainError> {
    let opts = ImportOptions { checkpoint: ck.to_path_buf(), out: out.to_path_buf(), meta, tokenizer, corpus: Some(corpus) };
    interop::import_nanogpt(&opts, &Device::flex())
}

#[test]
fn nanogpt_fixture_imports_with_pytorchs_logits_and_loss() {
    let dir = common::temp_dir("interop-fixture");
    let device = Device::flex();
    let out = dir.join("run");
    let summary = import(&fixture("ckpt.pt"), &out, Some(fixture("meta.pkl")), None).unwrap();
    assert!(summary.tied && summary.model_args.bias && summary.model_args.n_layer == 2);
    let run = RunDir::new(&out).load(&device).unwrap();
    assert!(matches!(run.tokenizer, Tokenizer::Char { .. }));

    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("logits.json")).unwrap()).unwrap();
    let ids: Vec<u32> = expected["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let rows: Vec<f32> = expected["logits"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect();
    let want = Tensor::<1>::from_data(TensorData::new(rows, [ids.len() * 65]), &device).reshape([1, ids.len(), 65]);
    ember_testing::assert_close(&logits(&run, &ids, &device), &want, 1e-5, 1e-5, "fixture logits");

    // The same validation windows give PyTorch's loss.
    let data = Dataset::load(&run.config.data, Some(run.tokenizer.clone())).unwrap();
    let report = ember_train::eval::evaluate_run(&run, &data, Split::Val, 16, 16, Some(8 * 16), &device).unwrap();
    let torch_loss = expected["val_loss_8_windows"].as_f64().unwrap();
    assert!((report.loss - torch_loss).abs() < 1e-5, "ember {} vs PyTorch {torch_loss}", report.loss);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every parameter of `model` as (path, f32 values).
fn params(model: &impl ModuleSnapshot) -> Vec<(String, Vec<f32>)> {
    let mut all: Vec<_> = model.collect(None, None, true).iter().map(|t| (t.name.clone(), burn_store::bridge::to_data(t).unwrap().try_to_vec::<f32>().unwrap())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

const LEARNED: &str = "scheme = \"learned\"\nmax_len = 16";

/// A run directory holding a freshly initialised (and perturbed) model of the tiny config
/// with `position`, `bias` and `tied` (no training).
fn make_run(dir: &Path, position: &str, bias: bool, tied: bool) -> PathBuf {
    let out = dir.join(format!("run-{}-bias{bias}-tied{tied}", position.len()));
    let mut config: Config = common::tiny_config(&common::small_corpus(dir, 5000), &out, position, 1);
    config.model.bias = bias;
    config.model.tie_embeddings = tied;
    let tokenizer = Tokenizer::char_level(&std::fs::read_to_string(&config.data.corpus).unwrap());
    let device = Device::flex();
    let _lock = common::rng_lock();
    device.seed(7);
    let model = config.tiny_lm(tokenizer.vocab_size()).init(&device).unwrap();
    // Non-trivial norms and biases, so that a mix-up of any two tensors shows.
    let model = model.map(&mut Perturb(0));
    let run = RunDir::new(&out);
    run.create(&config, &tokenizer).unwrap();
    let (m, o) = checkpoint::to_bytes(&model, &ember_train::trainer::optimizer(&config.train).module).unwrap();
    Checkpoint { state: TrainState { step: 1, elapsed_s: 0.0, tokens: 0 }, model: m, optim: o }.save(&run.checkpoint()).unwrap();
    out
}

/// Adds a distinct ramp to every parameter.
struct Perturb(usize);
impl burn::module::ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        self.0 += 1;
        let k = self.0 as f32;
        param.map(|t| {
            let dims = t.dims();
            let n: usize = dims.iter().product();
            let ramp = Tensor::<1, Int>::arange(0..n as i64, &t.device()).float().mul_scalar(0.37 * k).sin().mul_scalar(0.1).reshape(dims);
            t + ramp
        })
    }
}

#[test]
fn export_under_nanogpt_names_then_import_round_trips_exactly() {
    let dir = common::temp_dir("interop-roundtrip");
    let device = Device::flex();
    for (bias, tied) in [(true, true), (false, false), (false, true)] {
        let src = make_run(&dir, LEARNED, bias, tied);
        let run = RunDir::new(&src).load(&device).unwrap();
        let file = dir.join(format!("nanogpt-{bias}-{tied}.safetensors"));
        let summary = interop::export_safetensors(&run, Names::Nanogpt, &file).unwrap();
        assert_eq!(summary.tensors, 3 + if bias { 12 + 2 } else { 6 + 1 }, "wte, wpe, lm_head, one block, ln_f");

        let back = dir.join(format!("back-{bias}-{tied}"));
        let s = import_on(&file, &back, None, Some(RunDir::new(&src).tokenizer()), run.config.data.corpus.clone()).unwrap();
        assert_eq!(s.tied, tied);
        let imported = RunDir::new(&back).load(&device).unwrap();
        assert_eq!(params(&imported.model), params(&run.model), "bias {bias}, tied {tied}: identical weights");
        let ids = run.tokenizer.encode("First Citizen:\n").unwrap();
        let (a, b) = (logits(&run, &ids, &device), logits(&imported, &ids, &device));
        assert_eq!(a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap(), "identical logits");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fixture_exports_back_to_its_own_tensors() {
    // ckpt.pt → ember → nanoGPT-named safetensors: every tensor as PyTorch saved it.
    let dir = common::temp_dir("interop-reexport");
    let out = dir.join("run");
    import(&fixture("ckpt.pt"), &out, Some(fixture("meta.pkl")), None).unwrap();
    let run = RunDir::new(&out).load(&Device::flex()).unwrap();
    let file = dir.join("x.safetensors");
    interop::export_safetensors(&run, Names::Nanogpt, &file).unwrap();
    let reader = burn_store::pytorch_reader::PytorchReader::with_top_level_key(fixture("ckpt.pt"), "model").unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let exported = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(exported.len(), reader.len());
    for (key, tensor) in reader.tensors() {
        let name = key.strip_prefix("_orig_mod.").unwrap();
        let view = exported.tensor(name).unwrap_or_else(|_| panic!("{name} exported"));
        assert_eq!(view.shape(), tensor.shape(), "{name}");
        assert!(view.data() == tensor.read().unwrap().as_slice(), "{name}: same bytes");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = common::temp_dir("interop-bad");
    let out = dir.join("run");
    let err = |ck: &Path, meta: Option<PathBuf>| {
        let e = import(ck, &out, meta, None).unwrap_err().to_string();
        assert!(!out.exists(), "nothing written for {}", ck.display());
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")), "no temp dir left");
        e
    };
    // Not a checkpoint at all; a PyTorch file without model_args.
    let e = err(&corpus(), Some(fixture("meta.pkl")));
    assert!(e.contains("not a nanoGPT checkpoint"), "{e}");
    let e = err(&fixture("not_nanogpt.pt"), Some(fixture("meta.pkl")));
    assert!(e.contains("not a nanoGPT checkpoint") && e.contains("model_args"), "{e}");
    // meta.pkl that is not one; a vocabulary of the wrong size.
    let e = err(&fixture("ckpt.pt"), Some(fixture("ckpt.pt")));
    assert!(e.contains("meta.pkl"), "{e}");
    let small = dir.join("tok.json");
    Tokenizer::char_level("abc").save(&small).unwrap();
    let e = import(&fixture("ckpt.pt"), &out, None, Some(small)).unwrap_err().to_string();
    assert!(e.contains("3 tokens") && e.contains("vocab_size is 65") && !out.exists(), "{e}");

    // Missing keys, wrong shapes: rewrite an exported file without lm_head / with other args.
    let src = make_run(&dir, LEARNED, true, true);
    let run = RunDir::new(&src).load(&Device::flex()).unwrap();
    let good = dir.join("good.safetensors");
    interop::export_safetensors(&run, Names::Nanogpt, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let rewrite = |name: &str, skip: &str, meta: &std::collections::HashMap<String, String>| {
        let views: Vec<_> = st.tensors().into_iter().filter(|(k, _)| k != skip).collect();
        let path = dir.join(name);
        safetensors::serialize_to_file(views, Some(meta.clone()), &path).unwrap();
        path
    };
    let tok = Some(RunDir::new(&src).tokenizer());
    let small_corpus = run.config.data.corpus.clone();
    let e = import_on(&rewrite("missing.safetensors", "lm_head.weight", &meta), &out, None, tok.clone(), small_corpus.clone()).unwrap_err().to_string();
    assert!(e.contains("missing tensors") && e.contains("lm_head.weight") && !out.exists(), "{e}");
    meta.insert("model_args".into(), meta["model_args"].replace("\"n_embd\":16", "\"n_embd\":32"));
    let e = import_on(&rewrite("shapes.safetensors", "", &meta), &out, None, tok, small_corpus).unwrap_err().to_string();
    assert!(e.contains("wrong shapes") && e.contains("transformer.wte.weight is [") && !out.exists(), "{e}");

    // An existing --out is never overwritten.
    std::fs::create_dir_all(&out).unwrap();
    let e = import(&fixture("ckpt.pt"), &out, Some(fixture("meta.pkl")), None).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configs_nanogpt_cannot_express_are_refused_before_writing() {
    let dir = common::temp_dir("interop-mismatch");
    let out = dir.join("run");
    let mut config: Config = common::tiny_config(&common::small_corpus(&dir, 5000), &out, "scheme = \"rope\"", 1);
    config.model.norm = ember_train::config::NormKind::Rmsnorm;
    let why = interop::nanogpt_args(&config, 65).unwrap_err().join("; ");
    assert!(why.contains("position.scheme = \"rope\"") && why.contains("model.norm = \"rmsnorm\""), "{why}");
    config.position = ember_position::PositionConfig::Sinusoidal { layout: Default::default(), base: 10000.0 };
    config.model.norm = ember_train::config::NormKind::Layernorm;
    let why = interop::nanogpt_args(&config, 65).unwrap_err().join("; ");
    assert!(why.contains("sinusoidal") && why.contains("scaled by 4"), "{why}");

    // Through export: the error names every mismatch and no file appears.
    let device = Device::flex();
    for (position, bias, tied, needle) in [("scheme = \"rope\"", false, true, "position.scheme = \"rope\""), (LEARNED, true, false, "tie_embeddings = false")] {
        let run = RunDir::new(make_run(&dir, position, bias, tied)).load(&device).unwrap();
        let file = dir.join("refused.safetensors");
        let e = interop::export_safetensors(&run, Names::Nanogpt, &file).unwrap_err().to_string();
        assert!(e.contains("cannot export under nanoGPT names") && e.contains(needle) && e.contains("--names ember"), "{e}");
        assert!(!file.exists());
        // Under ember's names every config exports.
        assert!(interop::export_safetensors(&run, Names::Ember, &file).unwrap().tensors > 0);
        std::fs::remove_file(&file).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
