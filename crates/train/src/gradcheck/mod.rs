//! Gradient verification: the model's autodiff gradients against the analytic softmax
//! cross-entropy formulas and against central finite differences.
//!
//! On one batch (`N = B·T` positions, hidden `H [N, d]`, head rows `W [V, d]`,
//! `P = softmax(H Wᵀ)`, targets `Y`, mean over the `n` counted targets):
//!
//! 1. `head weights`: autodiff's gradient of the head's use of `W` vs `(P − Y)ᵀ H / n`;
//! 2. `hidden states`: autodiff's gradient at `H` vs `(P − Y) W / n`;
//! 3. `table sum rule`: autodiff's total table gradient vs head part + lookup part. The
//!    model feeds `x = s·E[ids]` to its body (`s` the input-embedding scale) while the tied
//!    head reads the unscaled `E`, so the lookup part is `s ·` the scatter-add of autodiff's
//!    gradient at `x` into the ids' rows; untied: the table gets the lookup part only;
//! 4. `finite differences`: the five-point central difference
//!    `(8(L(θ+ε) − L(θ−ε)) − (L(θ+2ε) − L(θ−2ε))) / 12ε` (truncation error O(ε⁴)) vs autodiff
//!    on entries of **every** parameter tensor — table, norms, every fused projection, and the
//!    position scheme's own parameters (T5, KERPLE, FIRE score biases; a learned table) — one
//!    check per tensor ([`params`]);
//! 5. the same on an untied model, and on a batch with pad tokens and pad targets (the pad
//!    row's gradient must be exactly 0, ignored targets contribute nothing);
//! 6. `fused head`: on that padded batch, the loss and every parameter's autodiff gradient
//!    with the fused, chunked head ([`ember_embed::fused`], chunks that do not divide `B·T`) vs the plain
//!    head.
//!
//! Errors: `max_abs_err = max|a − b|`, `max_rel_err = max|a − b| / max|b|` (relative to the
//! reference tensor's scale, robust to entries near zero; for finite differences the scale is
//! at least `100·ε_mach·|L|/ε`, the rounding noise of a central difference). A check passes
//! when `max_rel_err ≤ tolerance`; tolerances depend on the float precision the check ran in.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, Tensor, TensorData};
use ember_embed::grads::{head_rows_grad, hidden_grad, logits_grad, lookup_grad};
use ember_embed::loss::cross_entropy;
use serde::Serialize;

mod dump;
mod fused;
mod params;

pub use dump::{write_safetensors, Dump};

use crate::config::Config;
use crate::model::TinyLm;
use crate::TrainError;

/// One comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was compared.
    pub name: String,
    /// `max|a − b|`.
    pub max_abs_err: f64,
    /// `max|a − b| / max|b|`.
    pub max_rel_err: f64,
    /// Pass threshold on `max_rel_err`.
    pub tolerance: f64,
    /// `max_rel_err ≤ tolerance`.
    pub pass: bool,
}

/// All checks of one run (`--json` prints this).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Every check passed.
    pub pass: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Float precision the checks ran in (`f32` or `f64`).
    #[serde(skip)]
    pub dtype: DType,
}

/// A batch: ids and targets, `[B, T]` each, host side.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Input ids, row-major `[B, T]`.
    pub ids: Vec<u32>,
    /// Target ids, row-major `[B, T]`.
    pub targets: Vec<u32>,
    /// `B`.
    pub batch: usize,
    /// `T`.
    pub seq: usize,
}

fn host(t: &Tensor<2>) -> Vec<f64> {
    t.to_data().convert::<f64>().try_to_vec::<f64>().expect("float data")
}

fn compare(name: &str, got: &Tensor<2>, want: &Tensor<2>, tolerance: f64) -> Check {
    let (a, b) = (host(got), host(want));
    compare_host(name, &a, &b, tolerance)
}

fn compare_host(name: &str, a: &[f64], b: &[f64], tolerance: f64) -> Check {
    compare_with_floor(name, a, b, tolerance, f64::MIN_POSITIVE)
}

/// `max_rel_err = max|a − b| / max(max|b|, floor)`.
fn compare_with_floor(name: &str, a: &[f64], b: &[f64], tolerance: f64, floor: f64) -> Check {
    // NaN-aware: f64::max would silently drop a NaN difference.
    let finite = a.len() == b.len() && a.iter().chain(b).all(|x| x.is_finite());
    let max_abs_err = if finite { a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) } else { f64::NAN };
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(floor);
    let max_rel_err = max_abs_err / scale;
    let pass = finite && max_rel_err <= tolerance;
    Check { name: name.into(), max_abs_err, max_rel_err, tolerance, pass }
}

/// Checks 1–3 on `model` (any head, any padding) for `batch`; fills `dump` when given.
fn analytic_checks(model: &TinyLm, batch: &Batch, label: &str, tol: f64, dump: Option<&mut Dump>) -> Result<Vec<Check>, TrainError> {
    let (b, t, v, d) = (batch.batch, batch.seq, model.tok.vocab_size(), model.tok.d_model());
    let n = b * t;
    let pad = model.tok.padding_idx();
    let ids = model.tok.ids_tensor(&batch.ids, b, t)?;
    let targets = model.tok.ids_tensor(&batch.targets, b, t)?;

    // Full graph: the table's total gradient.
    let loss = cross_entropy(model.forward(ids.clone(), 0)?, targets.clone(), pad);
    let total = GradientsParams::from_grads(loss.backward(), model).get::<2>(model.tok.weight.id).expect("table is a parameter");

    // Split graph: the (scaled) lookup output and the final hidden states as leaves.
    let x = model.lookup(ids.clone()).detach().require_grad();
    let h = model.hidden_from_embeddings(x.clone(), 0)?;
    let h_leaf = h.clone().detach().require_grad();
    let logits = model.head.logits(h_leaf.clone(), &model.tok);
    let grads = cross_entropy(logits.clone(), targets.clone(), pad).backward();
    let g_h = h_leaf.grad(&grads).expect("leaf");
    let g_hidden = g_h.clone().reshape([n, d]);
    // Gradient reaching x needs the body's graph: backprop the hidden gradient through it.
    let g_x = x.grad(&(h * g_h).sum().backward()).expect("leaf").reshape([n, d]);
    let params = GradientsParams::from_grads(grads, model);
    let g_head_autodiff = match &model.head.untied {
        None => params.get::<2>(model.tok.weight.id).expect("tied head uses the table"),
        Some(u) => params.get::<2>(u.weight.id).expect("head weight").transpose(),
    };

    // Analytic.
    let hid = h_leaf.inner().reshape([n, d]);
    let rows = model.head.rows(&model.tok).inner();
    let dz = logits_grad(logits.inner().reshape([n, v]), targets.clone().inner().reshape([n]), pad);
    let head_part = head_rows_grad(dz.clone(), hid.clone());
    let lookup_part = lookup_grad(ids.clone().inner().reshape([n]), g_x.clone(), v, pad).mul_scalar(model.embed_scale());
    let expected_table = if model.head.is_tied() { head_part.clone() + lookup_part.clone() } else { lookup_part.clone() };
    let mut checks = vec![
        compare(&format!("{label}head weights: autodiff vs (P − Y)ᵀH/n"), &g_head_autodiff, &head_part, tol),
        compare(&format!("{label}hidden states: autodiff vs (P − Y)W/n"), &g_hidden, &hidden_grad(dz, rows), tol),
        compare(&format!("{label}table: autodiff total vs head part + lookup part"), &total, &expected_table, tol),
    ];
    if let Some(p) = pad {
        let row = host(&total.clone().slice([p..p + 1, 0..d]));
        let max = row.iter().map(|x| x.abs()).fold(0.0, f64::max);
        checks.push(Check { name: format!("{label}pad row gradient is exactly 0"), max_abs_err: max, max_rel_err: max, tolerance: 0.0, pass: max == 0.0 });
    }
    if let Some(dump) = dump {
        let probs = burn::tensor::activation::softmax(model.forward(ids.clone(), 0)?.inner().reshape([n, v]), 1);
        let int = |data: &[u32]| TensorData::new(data.iter().map(|&i| i as i64).collect::<Vec<_>>(), [b, t]);
        for (name, data) in [
            ("ids", int(&batch.ids)),
            ("targets", int(&batch.targets)),
            ("hidden", hid.to_data()),
            ("table", model.tok.weight.val().inner().to_data()),
            ("probs", probs.to_data()),
            ("grad_hidden", g_hidden.to_data()),
            ("grad_table", total.to_data()),
            ("grad_table_head", head_part.to_data()),
            ("grad_embed_out", g_x.to_data()),
        ] {
            dump.tensors.push((name.to_string(), data));
        }
    }
    Ok(checks)
}

/// Mean cross-entropy of `model` on `batch` (pad targets skipped), a scalar tensor `[1]` on
/// the model's device (differentiable when the model tracks gradients).
fn batch_loss(model: &TinyLm, batch: &Batch) -> Result<Tensor<1>, TrainError> {
    let (b, t) = (batch.batch, batch.seq);
    let ids = model.tok.ids_tensor(&batch.ids, b, t)?;
    let targets = model.tok.ids_tensor(&batch.targets, b, t)?;
    Ok(cross_entropy(model.forward(ids, 0)?, targets, model.tok.padding_idx()))
}

/// Loss of `model` (plain device) on `batch`, as f64.
fn loss_value(model: &TinyLm, batch: &Batch) -> Result<f64, TrainError> {
    Ok(batch_loss(model, batch)?.into_scalar::<f64>())
}

fn machine_epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::EPSILON,
        _ => f32::EPSILON as f64,
    }
}

/// Tolerances `(analytic, finite differences, eps)` for a float precision.
pub fn tolerances(dtype: DType) -> (f64, f64, f64) {
    match dtype {
        // f64: five-point differences err by ~ε⁴ (truncation) + ~1e-16·|L|/ε (rounding): with
        // ε = 1e-3 both are ~1e-12, far below the ~1e-10 of the three-point rule at 1e-5,
        // whose rounding alone failed the sinusoidal config's tiny qkv gradients (~1e-5).
        DType::F64 => (1e-9, 1e-5, 1e-3),
        _ => (2e-5, 5e-2, 1e-2),
    }
}

/// The float precision tensors get on `device` by default.
pub fn float_dtype(device: &Device) -> DType {
    Tensor::<1>::zeros([1], device).dtype()
}

/// Run every check for a model built from `config` (its `[model]` and `[position]`) with
/// `vocab` tokens on `device`, on `batch` (`ids`, `targets` in `[0, vocab)`; id 0 doubles as
/// the pad id in the padding checks). `dump`: write the tensors behind checks 1–3.
pub fn run(config: &Config, vocab: usize, batch: &Batch, device: &Device, dump: Option<&Path>) -> Result<Report, TrainError> {
    let ad = device.clone().autodiff();
    let dtype = float_dtype(&ad);
    let (tol, fd_tol, eps) = tolerances(dtype);
    ad.seed(config.train.seed);
    let mut checks = Vec::new();
    let mut dumped = Dump { tensors: Vec::new() };

    let tied = config.tiny_lm(vocab).init(&ad)?;
    checks.extend(analytic_checks(&tied, batch, "", tol, dump.is_some().then_some(&mut dumped))?);
    checks.extend(params::every_parameter(&tied, batch, eps, fd_tol, "")?);

    let mut untied_cfg = config.clone();
    untied_cfg.model.tie_embeddings = !config.model.tie_embeddings;
    let other = untied_cfg.tiny_lm(vocab).init(&ad)?;
    let label = if untied_cfg.model.tie_embeddings { "tied: " } else { "untied: " };
    checks.extend(analytic_checks(&other, batch, label, tol, None)?);

    // Pad id 0: pad tokens in the input, pad targets ignored.
    let mut padded = batch.clone();
    let n = padded.ids.len();
    for k in (0..n).step_by(3) {
        padded.ids[k] = 0;
        padded.targets[(k + 1) % n] = 0;
    }
    let with_pad = config.tiny_lm(vocab).with_padding_idx(Some(0)).init(&ad)?;
    checks.extend(analytic_checks(&with_pad, &padded, "padding: ", tol, None)?);
    checks.extend(params::every_parameter(&with_pad, &padded, eps, fd_tol, "padding: ")?);
    let chunk = (n / 3).max(2) + 1; // several chunks, the last one short
    checks.push(fused::fused_head_check(&with_pad, &padded, chunk, tol, "padding: ")?);

    if let Some(path) = dump {
        write_safetensors(&dumped, path)?;
    }
    Ok(Report { pass: checks.iter().all(|c| c.pass), checks, dtype })
}

/// Switch `device`'s default float type to f64 when the backend supports it (probed with a
/// small computation); returns whether it did. Process-wide for that device: call it in a
/// process of its own (the CLI, or a dedicated test binary), before any other tensor work.
pub fn try_f64(device: &mut Device) -> bool {
    use burn::tensor::FloatDType;
    if device.configure(FloatDType::F64).is_err() {
        return false;
    }
    let probe = device.clone();
    let ok = std::panic::catch_unwind(move || {
        let t = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &probe);
        let s = t.clone().matmul(t.clone()).exp().log().sum().into_scalar::<f64>();
        t.dtype() == DType::F64 && (s - 54.0).abs() < 1e-12
    })
    .unwrap_or(false);
    if !ok {
        let _ = device.configure(FloatDType::F32);
    }
    ok
}

/// The problem `ember gradcheck CONFIG` checks: `config`'s model and position scheme on one
/// small batch (`B ≤ 2`, `T ≤ 16` for a corpus, a task's own context, keeping the finite differences quick) from the start of
/// its training split. Returns the adjusted config, the vocabulary size and the batch.
///
/// # Errors
/// As [`crate::dataset::Dataset::load`], and [`TrainError::Corpus`] when the training split
/// holds fewer than `B·T + 1` tokens.
pub fn problem_from_config(mut config: Config) -> Result<(Config, usize, Batch), TrainError> {
    config.train.batch_size = config.train.batch_size.min(2);
    if config.data.task.is_none() {
        // (a task's context must hold its longest example, so it is kept: 16–20 positions)
        config.data.context = config.data.context.min(16);
    }
    let data = crate::dataset::Dataset::load(&config.data, None)?;
    let (b, t) = (config.train.batch_size, config.data.context);
    // The dataset guarantees one window (`t + 1` tokens) per split; the batch needs `b·t + 1`.
    let (ids, need) = (data.ids(crate::dataset::Split::Train), b * t + 1);
    if ids.len() < need {
        let reason = format!("the gradient check's batch needs {need} training tokens (train.batch_size {b} × data.context {t} + 1), the training split has {}; use a longer corpus, or a smaller train.batch_size or data.context", ids.len());
        return Err(TrainError::Corpus { path: config.data.corpus.clone(), reason });
    }
    let ids = &ids[..need];
    let batch = Batch { ids: ids[..b * t].to_vec(), targets: ids[1..].to_vec(), batch: b, seq: t };
    Ok((config, data.tokenizer.vocab_size(), batch))
}

/// The device a gradient check runs on: `backend` in f64 on the host backends (flex,
/// ndarray) unless `force_f32`; GPU backends always in f32 (wgpu accepts f64 on lavapipe
/// but its f64 kernels returned NaN in this model's forward pass with Burn 0.22.1).
pub fn check_device(backend: ember_device::BackendName, force_f32: bool) -> Result<Device, TrainError> {
    let mut device = backend.device()?;
    if !force_f32 && backend.is_host_cpu() {
        try_f64(&mut device);
    }
    Ok(device)
}

/// The default problem of `ember gradcheck` without a config: a 2-layer, 4-head, d = 32
/// model over 23 tokens, learned positions, one `[2, 8]` batch of pseudo-random ids.
pub fn default_problem() -> (Config, usize, Batch) {
    let config = Config::from_toml(
        r#"
        [model]
        d_model = 32
        n_layers = 2
        n_heads = 4
        [position]
        scheme = "learned"
        max_len = 8
        [data]
        corpus = "unused"
        context = 8
        [train]
        batch_size = 2
        steps = 1
        lr = 1e-3
        seed = 7
        "#,
    )
    .expect("built-in config is valid");
    let (vocab, b, t) = (23usize, 2usize, 8usize);
    let stream: Vec<u32> = (0..b * t + 1).map(|i| ((i * 7 + 3) * (i + 11) % vocab) as u32).collect();
    let batch = Batch { ids: stream[..b * t].to_vec(), targets: stream[1..].to_vec(), batch: b, seq: t };
    (config, vocab, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_fails_on_a_one_percent_error_and_passes_on_rounding() {
        let want = vec![0.5, -2.0, 1e-9, 3.0];
        let off: Vec<f64> = want.iter().map(|x| x * 1.01).collect();
        let (tol, _, _) = tolerances(DType::F32);
        let c = compare_host("scaled", &off, &want, tol);
        assert!(!c.pass && (c.max_rel_err - 0.01).abs() < 1e-12, "{c:?}");
        let close: Vec<f64> = want.iter().map(|x| x * (1.0 + 1e-7)).collect();
        assert!(compare_host("close", &close, &want, tol).pass);
        let nan = vec![f64::NAN, 0.0, 0.0, 0.0];
        assert!(!compare_host("nan", &nan, &want, tol).pass, "NaN never passes");
    }
}
