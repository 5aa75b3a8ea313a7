//! Gradient checks on every backend (f32), and flex ↔ wgpu parity of a training step.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use ember_device::testing::{flex_and_wgpu, test_devices};
use ember_embed::loss::cross_entropy;
use ember_train::gradcheck::{default_problem, run};
use ember_train::model::TinyLm;

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
            assert!(report.checks.len() >= 12, "all five groups of checks ran");
        }
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
    let reference = TinyLm::new(&config, vocab, &flex).unwrap();
    let bytes = reference.clone().into_record().into_bytes().unwrap();
    let (loss0, g0) = grads_of(&reference, &batch.ids, &batch.targets);
    for td in test_devices() {
        let dev = td.device.clone().autodiff();
        let model = TinyLm::new(&config, vocab, &dev).unwrap();
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
