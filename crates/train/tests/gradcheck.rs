//! Gradient checks on every backend (f32), and flex ↔ wgpu parity of a training step.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use ember_testing::{flex_and_wgpu, test_devices};
use ember_embed::loss::cross_entropy;
use ember_train::gradcheck::{default_problem, run};
use ember_train::model::{EmbedScale, TinyLm};

/// Every check `run` makes, in order: the tied model (analytic + finite differences), the
/// other head (analytic), and the model with a padding row (analytic, finite differences,
/// fused head vs plain; `B·T = 16`, so chunks of 6).
fn expected_names(other: &str) -> Vec<String> {
    let analytic = ["head weights: autodiff vs (P − Y)ᵀH/n", "hidden states: autodiff vs (P − Y)W/n", "table: autodiff total vs head part + lookup part"];
    let fd = ["finite differences: token table", "finite differences: layer 0 qkv weight"];
    let mut names: Vec<String> = analytic.iter().chain(&fd).map(|n| n.to_string()).collect();
    names.extend(analytic.iter().map(|n| format!("{other}: {n}")));
    names.extend(analytic.iter().map(|n| format!("padding: {n}")));
    names.push("padding: pad row gradient is exactly 0".into());
    names.extend(fd.iter().map(|n| format!("padding: {n}")));
    names.push("padding: fused head (chunk 6): loss and every gradient vs plain autodiff".into());
    names
}

#[test]
fn gradcheck_passes_on_every_backend_for_every_scheme() {
    let (base, vocab, batch) = default_problem();
    let schemes = [
        "scheme = \"learned\"\nmax_len = 8",
        "scheme = \"rope\"",
        "scheme = \"alibi\"",
        "scheme = \"sinusoidal\"",
        "scheme = \"none\"",
    ];
    for td in flex_and_wgpu() {
        for scheme in schemes {
            let mut config = base.clone();
            config.position = toml::from_str(scheme).unwrap();
            let report = run(&config, vocab, &batch, &td.device, None).unwrap();
            for c in &report.checks {
                eprintln!("{} {scheme:?}: {:?}", td.name, c);
            }
            for c in &report.checks {
                assert!(c.pass, "{} {scheme}: {} max_rel {:.3e} > {:.1e}", td.name, c.name, c.max_rel_err, c.tolerance);
            }
            let names: Vec<String> = report.checks.iter().map(|c| c.name.clone()).collect();
            assert_eq!(names, expected_names("untied"), "{} {scheme}: every check ran", td.name);
        }
    }
}

#[test]
fn gradcheck_passes_with_a_non_unit_embedding_scale_tied_and_untied() {
    let (base, vocab, batch) = default_problem();
    for (tie, scale) in [(true, EmbedScale::Value(3.0)), (false, EmbedScale::SqrtD)] {
        let mut config = base.clone();
        config.model.tie_embeddings = tie;
        config.model.embed_scale = Some(scale);
        let report = run(&config, vocab, &batch, &burn::tensor::Device::flex(), None).unwrap();
        for c in &report.checks {
            assert!(c.pass, "tie {tie}, {scale:?}: {} max_rel {:.3e} > {:.1e}", c.name, c.max_rel_err, c.tolerance);
        }
        let names: Vec<String> = report.checks.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, expected_names(if tie { "untied" } else { "tied" }));
    }
}

fn grads_of(model: &TinyLm, x: &[u32], y: &[u32]) -> (f64, Vec<Vec<f64>>) {
    let ids = model.tok.ids_tensor(x, 2, 8).unwrap();
    let targets = model.tok.ids_tensor(y, 2, 8).unwrap();
    let loss = cross_entropy(model.forward(ids, 0).unwrap(), targets, None);
    let value = loss.clone().into_scalar::<f64>();
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let host = |t: Tensor<2>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    let g = vec![
        host(grads.get::<2>(model.tok.weight.id).unwrap()),
        host(grads.get::<2>(model.blocks[0].attn.qkv.weight.id).unwrap()),
        host(grads.get::<2>(model.blocks[1].mlp.proj.weight.id).unwrap()),
    ];
    (value, g)
}

#[test]
fn one_training_step_agrees_across_backends() {
    let (config, vocab, batch) = default_problem();
    let flex = Device::flex().autodiff();
    flex.seed(3);
    let reference = config.tiny_lm(vocab).init(&flex).unwrap();
    let bytes = reference.clone().into_record().into_bytes().unwrap();
    let (loss0, g0) = grads_of(&reference, &batch.ids, &batch.targets);
    let others: Vec<_> = test_devices().into_iter().filter(|td| td.name != ember_device::BackendName::Flex).collect();
    assert!(!others.is_empty(), "ndarray at least");
    for td in others {
        let dev = td.device.clone().autodiff();
        let model = config.tiny_lm(vocab).init(&dev).unwrap();
        let model = model.load_record(burn::store::ModuleRecord::from_bytes(bytes.clone()).unwrap());
        let (loss, g) = grads_of(&model, &batch.ids, &batch.targets);
        assert!((loss - loss0).abs() <= 1e-4 * loss0.abs(), "{}: loss {loss} vs {loss0}", td.name);
        for (k, (a, b)) in g.iter().zip(&g0).enumerate() {
            let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let err = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 1e-4 * scale, "{}: gradient {k}: max diff {err:.3e}, scale {scale:.3e}", td.name);
        }
    }
}
