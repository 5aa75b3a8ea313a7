//! Gradient checks on every backend (f32), and flex ↔ wgpu parity of a training step.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use ember_testing::{flex_and_wgpu, test_devices};
use ember_embed::loss::cross_entropy;
use ember_train::gradcheck::{default_problem, run};
use ember_train::model::{EmbedScale, TinyLm};

/// Every check `run` makes, in order: the tied model (analytic + finite differences on every
/// parameter tensor), the other head (analytic), and the model with a padding row (analytic,
/// finite differences, fused head vs plain; `B·T = 16`, so chunks of 6).
fn expected_names(other: &str, params: &[String]) -> Vec<String> {
    let analytic = ["head weights: autodiff vs (P − Y)ᵀH/n", "hidden states: autodiff vs (P − Y)W/n", "table: autodiff total vs head part + lookup part"];
    let fd: Vec<String> = params.iter().map(|p| format!("finite differences: {p}")).collect();
    let mut names: Vec<String> = analytic.iter().map(|n| n.to_string()).chain(fd.iter().cloned()).collect();
    names.extend(analytic.iter().map(|n| format!("{other}: {n}")));
    names.extend(analytic.iter().map(|n| format!("padding: {n}")));
    names.push("padding: pad row gradient is exactly 0".into());
    names.extend(fd.iter().map(|n| format!("padding: {n}")));
    names.push("padding: fused head (chunk 6): loss and every gradient vs plain autodiff".into());
    names
}

/// The dotted paths of every float parameter of the model `config` builds.
fn parameter_paths(config: &ember_train::Config, vocab: usize) -> Vec<String> {
    struct Paths(Vec<String>, Vec<String>);
    impl burn::module::ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.1.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.pop();
        }
        fn visit_float<const D: usize>(&mut self, _: &burn::module::Param<Tensor<D>>) {
            self.0.push(self.1.join("."));
        }
    }
    let model = config.tiny_lm(vocab).init(&Device::flex()).unwrap();
    let mut p = Paths(Vec::new(), Vec::new());
    model.visit(&mut p);
    p.0
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
        "scheme = \"t5\"\nnum_buckets = 6\nmax_distance = 6",
        "scheme = \"kerple\"",
        "scheme = \"fire\"\nhidden = 4\nthreshold = 2",
        "scheme = \"xpos\"\nscale_base = 4.0",
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
            assert_eq!(names, expected_names("untied", &parameter_paths(&config, vocab)), "{} {scheme}: every check ran", td.name);
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
        assert_eq!(names, expected_names(if tie { "untied" } else { "tied" }, &parameter_paths(&config, vocab)));
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

/// `ember gradcheck CONFIG` on a corpus whose training split holds one window (`T + 1`
/// tokens, all the dataset promises) but not the `B·T + 1` its batch needs: an error that
/// says how many tokens are needed and present, not a panic. With a long enough corpus the
/// same config gives the `[B, T]` batch.
#[test]
fn gradcheck_on_a_corpus_too_small_for_its_batch_is_an_error() {
    use ember_train::gradcheck::problem_from_config;
    use ember_train::{Config, TrainError};
    let dir = ember_testing::temp_dir("gradcheck-small-corpus");
    let config_for = |chars: usize| {
        // 40 characters, half of them validation: 20 training tokens ≥ T + 1 = 17 but < B·T + 1 = 33.
        let corpus = dir.join(format!("corpus-{chars}.txt"));
        std::fs::write(&corpus, "abcdefghij".repeat(chars / 10)).unwrap();
        let toml = format!(
            "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\n[data]\ncorpus = \"{}\"\ncontext = 16\nval_fraction = 0.5\n[train]\nbatch_size = 2\nsteps = 1\nlr = 1e-3\n",
            corpus.display()
        );
        Config::from_toml(&toml).unwrap()
    };
    let err = problem_from_config(config_for(40)).expect_err("20 training tokens cannot fill a [2, 16] batch");
    let message = err.to_string();
    assert!(matches!(err, TrainError::Corpus { .. }), "{err:?}");
    for part in ["needs 33 training tokens", "has 20", "train.batch_size", "data.context", "corpus-40.txt"] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    let (_, vocab, batch) = problem_from_config(config_for(80)).expect("40 training tokens fill a [2, 16] batch");
    assert_eq!((vocab, batch.batch, batch.seq, batch.ids.len(), batch.targets.len()), (10, 2, 16, 32, 32));
    assert_eq!(batch.ids[1..], batch.targets[..31], "targets are the ids shifted by one");
    std::fs::remove_dir_all(&dir).unwrap();
}
