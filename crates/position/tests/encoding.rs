//! The three hooks through `PositionConfig::init` for every scheme: pass-through where a
//! scheme does nothing, offsets as slices, errors, and the learned table in the record.

mod common;

use burn::module::Module;
use burn::tensor::Tensor;
use common::{random, tensor4, to_vec};
use ember_testing::{assert_close, test_devices};
use ember_position::{PositionConfig, PositionError, RopeLayout, RopeScaling, SinusoidalLayout};

fn all_configs() -> Vec<PositionConfig> {
    vec![
        PositionConfig::None {},
        PositionConfig::Sinusoidal { layout: SinusoidalLayout::Halves, base: 10000.0 },
        PositionConfig::Learned { max_len: 32, init_std: 0.02 },
        PositionConfig::Rope { layout: RopeLayout::Interleaved, base: 10000.0, partial_rotary_factor: 0.5, scaling: RopeScaling::None {} },
        PositionConfig::Alibi {},
        PositionConfig::T5 { num_buckets: 8, max_distance: 10 },
        PositionConfig::Kerple {},
        PositionConfig::Fire { hidden: 6, threshold: 4 },
        PositionConfig::Xpos { layout: RopeLayout::HalfSplit, base: 10000.0, gamma: 0.4, scale_base: 16.0 },
    ]
}

#[test]
fn hooks_pass_through_or_act_and_offsets_are_slices() {
    let (b, h, d, o, t) = (2, 4, 32, 9, 5);
    let hd = d / h;
    for td in test_devices() {
        let dev = &td.device;
        for config in all_configs() {
            let enc = config.init(d, h, dev).unwrap();
            let what = format!("{} {}", td.name, config.scheme());
            let x: Tensor<3> = tensor4(random(b * (o + t) * d, 11), [1, b, o + t, d], dev).squeeze_dim(0);
            let long = enc.add_to_embeddings(x.clone(), 0).unwrap();
            let short = enc.add_to_embeddings(x.clone().slice([0..b, o..o + t]), o).unwrap();
            assert_close(&short, &long.clone().slice([0..b, o..o + t]), 1e-6, 0.0, &format!("{what} embeddings offset"));
            let changes_x = matches!(config, PositionConfig::Sinusoidal { .. } | PositionConfig::Learned { .. });
            assert_eq!(to_vec(&long) != to_vec(&x), changes_x, "{what}: hook 1");

            let q = tensor4(random(b * h * (o + t) * hd, 12), [b, h, o + t, hd], dev);
            let k = tensor4(random(b * h * (o + t) * hd, 13), [b, h, o + t, hd], dev);
            let (lq, lk) = enc.rotate_qk(q.clone(), k.clone(), 0);
            let (sq, sk) = enc.rotate_qk(q.clone().slice([0..b, 0..h, o..o + t]), k.clone().slice([0..b, 0..h, o..o + t]), o);
            assert_close(&sq, &lq.clone().slice([0..b, 0..h, o..o + t]), 1e-6, 0.0, &format!("{what} q offset"));
            assert_close(&sk, &lk.slice([0..b, 0..h, o..o + t]), 1e-6, 0.0, &format!("{what} k offset"));
            assert_eq!(to_vec(&lq) != to_vec(&q), matches!(config.scheme(), "rope" | "xpos"), "{what}: hook 2");
            assert_eq!(enc.rotates_qk(), matches!(config.scheme(), "rope" | "xpos"), "{what}: rotates_qk");

            let bias = enc.score_bias(t, o + t, o, dev);
            assert_eq!(bias.is_some(), matches!(config.scheme(), "alibi" | "t5" | "kerple" | "fire"), "{what}: hook 3");
            if let Some(bias) = bias {
                assert_eq!(bias.dims(), [1, h, t, o + t]);
                let full = enc.score_bias(o + t, o + t, 0, dev).unwrap();
                let rows = full.slice([0..1, 0..h, o..o + t]).into_data().try_to_vec::<f32>().unwrap();
                for (a, b) in rows.iter().zip(bias.into_data().try_to_vec::<f32>().unwrap()) {
                    // equal, −∞ (ALiBi's masked keys) included
                    assert!(*a == b || (a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{what}: bias rows {a} vs {b}");
                }
            }
            assert_eq!(enc.max_len(), if config.scheme() == "learned" { Some(32) } else { None });
        }
    }
}

#[test]
fn errors_for_bad_requests() {
    let dev = burn::tensor::Device::flex();
    let enc = PositionConfig::Learned { max_len: 8, init_std: 0.02 }.init(4, 1, &dev).unwrap();
    let x = Tensor::<3>::zeros([1, 6, 4], &dev);
    assert!(enc.add_to_embeddings(x.clone(), 2).is_ok());
    let e = enc.add_to_embeddings(x.clone(), 3).unwrap_err();
    assert_eq!(e, PositionError::PastMaxLen { offset: 3, len: 6, end: 9, max_len: 8 });
    let e = enc.add_to_embeddings(Tensor::<3>::zeros([1, 9, 4], &dev), 0).unwrap_err().to_string();
    assert!(e.contains("9") && e.contains("max_len = 8"), "{e}");
    let rope = |f| PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: f, scaling: RopeScaling::None {} };
    assert!(matches!(rope(1.0).init(12, 4, &dev), Err(PositionError::BadRotaryDim { rot_dim: 3, .. })));
    assert!(matches!(PositionConfig::Alibi {}.init(12, 0, &dev), Err(PositionError::ZeroHeads)));
    let lin = PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling: RopeScaling::Linear { factor: 0.0 } };
    assert!(matches!(lin.init(16, 2, &dev), Err(PositionError::InvalidValue { field: "rope.scaling.factor", .. })));
}

#[test]
fn learned_table_is_in_the_record_and_computed_ones_are_not() {
    let dev = burn::tensor::Device::flex();
    let a = PositionConfig::Learned { max_len: 8, init_std: 0.5 }.init(4, 1, &dev).unwrap();
    let b = PositionConfig::Learned { max_len: 8, init_std: 0.5 }.init(4, 1, &dev).unwrap();
    assert_eq!(a.num_params(), 32);
    let x = Tensor::<3>::zeros([1, 8, 4], &dev);
    let before = to_vec(&b.add_to_embeddings(x.clone(), 0).unwrap());
    let b = b.load_record(a.clone().into_record());
    let (ya, yb) = (a.add_to_embeddings(x.clone(), 0).unwrap(), b.add_to_embeddings(x, 0).unwrap());
    assert_ne!(before, to_vec(&yb));
    assert_close(&yb, &ya, 0.0, 0.0, "loaded learned table");
    for config in [PositionConfig::None {}, PositionConfig::Sinusoidal { layout: SinusoidalLayout::Interleaved, base: 1e4 }, PositionConfig::Alibi {}] {
        assert_eq!(config.init(8, 2, &dev).unwrap().num_params(), 0);
    }
}
