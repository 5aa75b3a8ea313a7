//! Gradient checks in f64 (own test binary: switching flex to f64 is process-wide).

use std::sync::OnceLock;

use burn::tensor::{DType, Device};
use ember_train::gradcheck::{default_problem, run, try_f64};

/// The flex device switched to f64 once for the whole binary (the switch is process-wide and
/// can be made only before the first tensor).
fn f64_device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let mut device = Device::flex();
            assert!(try_f64(&mut device), "flex supports f64");
            device
        })
        .clone()
}

/// Every scheme (and its trainable parameters) in f64: analytic checks to 1e-9, finite
/// differences on every parameter tensor to 1e-5 — the fused attention's score-bias gradient
/// (T5, KERPLE, FIRE), xPos's rotation and every other fused op against the loss itself.
#[test]
fn gradcheck_in_f64_passes_for_every_scheme_with_finite_differences_on_every_parameter() {
    let device = f64_device();
    let (base, vocab, batch) = default_problem();
    for scheme in [
        "scheme = \"none\"",
        "scheme = \"sinusoidal\"",
        "scheme = \"learned\"\nmax_len = 8",
        "scheme = \"rope\"",
        "scheme = \"alibi\"",
        "scheme = \"t5\"\nnum_buckets = 6\nmax_distance = 6",
        "scheme = \"kerple\"",
        "scheme = \"fire\"\nhidden = 4\nthreshold = 2",
        "scheme = \"xpos\"\nscale_base = 4.0",
    ] {
        let mut config = base.clone();
        config.position = toml::from_str(scheme).unwrap();
        let report = run(&config, vocab, &batch, &device, None).unwrap();
        assert_eq!(report.dtype, DType::F64);
        let fd: Vec<_> = report.checks.iter().filter(|c| c.name.starts_with("finite differences")).collect();
        // every parameter tensor: table, final norm, and per block 2 norms + 4 projections at least
        assert!(fd.len() >= 8, "{scheme}: {:?}", fd.iter().map(|c| &c.name).collect::<Vec<_>>());
        let own = fd.iter().filter(|c| c.name.contains("pos")).count();
        let trainable = ["learned", "t5", "kerple", "fire"].iter().any(|s| scheme.contains(&format!("\"{s}\"")));
        assert_eq!(own > 0, trainable, "{scheme}: the scheme's own parameters are checked iff it has some: {:?}", fd.iter().map(|c| &c.name).collect::<Vec<_>>());
        for c in &report.checks {
            assert!(c.pass, "{scheme}: {}: max_rel {:.3e} > {:.1e}", c.name, c.max_rel_err, c.tolerance);
            let tight = if c.name.contains("finite differences") { 1e-5 } else { 1e-9 };
            assert!(c.tolerance <= tight, "{}: f64 tolerances are tight", c.name);
        }
    }
}

#[test]
fn gradcheck_in_f64_agrees_to_1e_9() {
    let device = f64_device();
    let (config, vocab, batch) = default_problem();
    let dump = std::env::temp_dir().join(format!("ember-gradcheck-{}.safetensors", std::process::id()));
    let report = run(&config, vocab, &batch, &device, Some(&dump)).unwrap();
    assert_eq!(report.dtype, DType::F64);
    for c in &report.checks {
        assert!(c.pass, "{}: max_rel {:.3e} > {:.1e}", c.name, c.max_rel_err, c.tolerance);
        let tight = if c.name.contains("finite differences") { 1e-5 } else { 1e-9 };
        assert!(c.tolerance <= tight, "{}: f64 tolerances are tight", c.name);
    }
    // The dump holds the documented tensors with the documented shapes, in f64.
    let bytes = std::fs::read(&dump).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (n, d, v) = (16, 32, 23);
    for (name, shape) in [
        ("ids", vec![2, 8]),
        ("targets", vec![2, 8]),
        ("hidden", vec![n, d]),
        ("table", vec![v, d]),
        ("probs", vec![n, v]),
        ("grad_hidden", vec![n, d]),
        ("grad_table", vec![v, d]),
        ("grad_table_head", vec![v, d]),
        ("grad_embed_out", vec![n, d]),
    ] {
        let t = st.tensor(name).unwrap_or_else(|_| panic!("{name} missing"));
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        if !matches!(name, "ids" | "targets") {
            assert_eq!(t.dtype(), safetensors::Dtype::F64, "{name}");
        }
    }
    // Re-check the sum rule from the dumped tensors alone, as another framework would.
    let f = |name: &str| -> Vec<f64> {
        st.tensor(name).unwrap().data().chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let ids: Vec<i64> = st.tensor("ids").unwrap().data().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    let (head, ge, total) = (f("grad_table_head"), f("grad_embed_out"), f("grad_table"));
    let mut sum = head.clone();
    for (pos, &id) in ids.iter().enumerate() {
        for j in 0..d {
            sum[id as usize * d + j] += ge[pos * d + j];
        }
    }
    let err = sum.iter().zip(&total).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-12, "sum rule from the dump: {err:e}");
    std::fs::remove_file(&dump).unwrap();
}
