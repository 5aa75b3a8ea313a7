//! The fused head + loss against the plain path (logits, then cross-entropy), in f32 on
//! flex and wgpu: loss, the tied table (lookup + head parts), an untied head's weight and
//! bias, an upstream weight and the hidden states, with pad targets and every kind of chunk.

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{assert_parity, cases, values, Case, Front};
use ember_embed::fused::{default_chunk, fused_linear_cross_entropy, FusedCrossEntropy};
use ember_embed::loss::cross_entropy;
use ember_embed::EmbedError;
use ember_testing::flex_and_wgpu;

#[test]
fn fused_loss_and_gradients_match_the_plain_path_in_f32() {
    for td in flex_and_wgpu() {
        let mut worst = 0.0f64;
        for c in cases() {
            worst = worst.max(assert_parity(&c, &td.device, 1e-5, &td.name.to_string()));
        }
        eprintln!("{}: worst relative error {worst:.2e}", td.name);
    }
}

/// `h [N, d]` and `w [V, d]` as leaves: the free function's gradients of both, and its loss,
/// against autodiff through the plain logits `h · wᵀ`.
#[test]
fn free_function_gradients_of_h_and_w_match_autodiff_of_the_plain_logits() {
    let (n, v, d, pad) = (23, 37, 6, 3usize);
    let targets: Vec<i64> = (0..n).map(|k| if k % 5 == 0 { pad as i64 } else { ((k * 13 + 1) % v) as i64 }).collect();
    for td in flex_and_wgpu() {
        let dev = td.device.clone().autodiff();
        let leaf = |data: Vec<f64>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(data, shape), &dev).require_grad();
        let h_data = values(n * d, 7, 1.5);
        let w_data = values(v * d, 8, 1.0);
        let y = || Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [n]), &dev);

        let (h, w) = (leaf(h_data.clone(), [n, d]), leaf(w_data.clone(), [v, d]));
        let logits = h.clone().matmul(w.clone().transpose()).reshape([1, n, v]);
        let plain = cross_entropy(logits, y().reshape([1, n]), Some(pad));
        let plain_value = plain.clone().into_scalar::<f64>();
        let g = plain.backward();
        let (gh, gw) = (h.grad(&g).unwrap(), w.grad(&g).unwrap());

        for chunk in [5, n, 2 * n] {
            let (h2, w2) = (leaf(h_data.clone(), [n, d]), leaf(w_data.clone(), [v, d]));
            let fused = fused_linear_cross_entropy(h2.clone(), w2.clone(), y(), Some(pad), chunk).unwrap();
            let value = fused.clone().into_scalar::<f64>();
            assert!((value - plain_value).abs() <= 1e-5 * plain_value, "{} chunk {chunk}: loss {value} vs {plain_value}", td.name);
            let g2 = fused.backward();
            for (name, got, want) in [("h", h2.grad(&g2).unwrap(), gh.clone()), ("w", w2.grad(&g2).unwrap(), gw.clone())] {
                let err = ember_testing::max_abs_diff(&got, &want) / want.abs().max().into_scalar::<f64>();
                assert!(err <= 1e-5, "{} chunk {chunk}: gradient of {name}: relative error {err:.2e}", td.name);
            }
        }
    }
}

#[test]
fn without_autodiff_the_fused_loss_is_the_plain_loss() {
    let c = Case { b: 3, t: 5, v: 11, d: 4, tied: true, pad: Some(2), chunk: 4 };
    for td in flex_and_wgpu() {
        let model = Front::new(&c, &td.device);
        let (ids, targets) = common::batch(&c, &td.device);
        let h = model.hidden(ids);
        let plain = cross_entropy(model.head.logits(h.clone(), &model.table), targets.clone(), c.pad).into_scalar::<f64>();
        let fused = model.head.fused_loss(h, targets, &model.table, c.chunk).unwrap();
        assert!(!fused.is_autodiff());
        let fused = fused.into_scalar::<f64>();
        assert!((fused - plain).abs() <= 1e-5 * plain, "{}: {fused} vs {plain}", td.name);
    }
}

#[test]
fn an_all_pad_batch_gives_zero_loss_and_zero_gradients() {
    let dev = Device::flex().autodiff();
    let h = Tensor::<2>::from_data(TensorData::new(values(8, 1, 1.0), [4, 2]), &dev).require_grad();
    let w = Tensor::<2>::from_data(TensorData::new(values(10, 2, 1.0), [5, 2]), &dev).require_grad();
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64; 4], [4]), &dev);
    let loss = fused_linear_cross_entropy(h.clone(), w.clone(), y, Some(1), 3).unwrap();
    assert_eq!(loss.clone().into_scalar::<f64>(), 0.0);
    let g = loss.backward();
    for grad in [h.grad(&g).unwrap(), w.grad(&g).unwrap()] {
        assert_eq!(grad.abs().max().into_scalar::<f64>(), 0.0);
    }
}

#[test]
fn bad_shapes_targets_and_chunks_are_clear_errors() {
    let dev = Device::flex();
    let h = Tensor::<2>::zeros([4, 3], &dev);
    let w = Tensor::<2>::zeros([6, 3], &dev);
    let y = |data: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(data.clone(), [data.len()]), &dev);
    let err = |r: Result<Tensor<1>, EmbedError>| r.unwrap_err().to_string();
    assert!(err(fused_linear_cross_entropy(h.clone(), w.clone(), y(vec![0, 1, 2, 3]), None, 0)).contains("chunk"));
    assert!(err(fused_linear_cross_entropy(h.clone(), Tensor::zeros([6, 2], &dev), y(vec![0, 1, 2, 3]), None, 2)).contains("does not fit"));
    assert!(err(fused_linear_cross_entropy(h.clone(), w.clone(), y(vec![0, 1, 2]), None, 2)).contains("3 targets for 4"));
    let e = err(fused_linear_cross_entropy(h.clone(), w.clone(), y(vec![0, 1, 6, 3]), None, 2));
    assert!(e.contains("target 6 at position 2") && e.contains("[0, 6)"), "{e}");
    assert!(err(fused_linear_cross_entropy(h.clone(), w.clone(), y(vec![0, -1, 2, 3]), None, 2)).contains("target -1"));
    let masked = FusedCrossEntropy::new(2).with_masked_column(Some(6));
    assert!(err(masked.loss(h.clone(), w.clone(), None, y(vec![0, 1, 2, 3]))).contains("masked column"));
    let bias = Some(Tensor::<1>::zeros([5], &dev));
    assert!(err(FusedCrossEntropy::new(2).loss(h.clone(), w.clone(), bias, y(vec![0, 1, 2, 3]))).contains("head bias"));
    assert!(err(fused_linear_cross_entropy(Tensor::zeros([0, 3], &dev), w, y(vec![]), None, 2)).contains("no rows"));
    // Through the head: targets of another shape.
    let table = ember_embed::TokenEmbedding::from_weight(Tensor::zeros([6, 3], &dev), None).unwrap();
    let t = Tensor::<2, Int>::zeros([2, 3], &dev);
    let e = ember_embed::LmHead::tied().fused_loss(Tensor::zeros([2, 2, 3], &dev), t, &table, 2).unwrap_err().to_string();
    assert!(e.contains("does not match"), "{e}");
}

#[test]
fn default_chunk_shrinks_with_the_vocabulary_and_is_never_zero() {
    assert!(default_chunk(65) >= 4096, "a small vocabulary fits a whole batch in one chunk");
    assert!(default_chunk(32768) < default_chunk(8192));
    assert_eq!(default_chunk(usize::MAX), 1);
    assert_eq!(default_chunk(0), ember_embed::fused::CHUNK_ELEMENTS);
}
