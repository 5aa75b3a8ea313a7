//! Tests of [`crate::resize`].

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use ember_testing::{assert_close, flex_and_wgpu, test_devices};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::rows::{host_f32, std_normal};
use super::*;

/// `[v, d]` with entry `(i, c)` = `offset[c] + scale · z`, z standard normal from `seed`.
pub(crate) fn gaussian(v: usize, d: usize, seed: u64, scale: f64, offset: &[f64]) -> TensorData {
    let mut rng = StdRng::seed_from_u64(seed);
    let data: Vec<f32> = (0..v * d).map(|k| (offset.get(k % d).copied().unwrap_or(0.0) + scale * std_normal(&mut rng)) as f32).collect();
    TensorData::new(data, [v, d])
}

fn table(data: TensorData, pad: Option<usize>, dev: &Device) -> TokenEmbedding {
    TokenEmbedding::from_weight(Tensor::from_data(data, dev), pad).unwrap()
}

fn rows_of(t: &Tensor<2>, a: usize, b: usize) -> Vec<f32> {
    let d = t.dims()[1];
    host_f32(t.clone().slice([a..b, 0..d]))
}

fn host_mean(data: &[f32], v: usize, d: usize, skip: Option<usize>) -> Vec<f64> {
    let used: Vec<usize> = (0..v).filter(|&i| Some(i) != skip).collect();
    (0..d).map(|c| used.iter().map(|&i| data[i * d + c] as f64).sum::<f64>() / used.len() as f64).collect()
}

#[test]
fn target_rows_rounds_up_and_never_below_n() {
    assert_eq!(target_rows(100, Some(130), Some(64)).unwrap(), 192);
    assert_eq!(target_rows(100, None, Some(64)).unwrap(), 128);
    assert_eq!(target_rows(100, Some(128), Some(64)).unwrap(), 128);
    assert_eq!(target_rows(100, Some(90), Some(64)).unwrap(), 128, "HF rounds up even when that grows");
    assert_eq!(target_rows(100, Some(7), None).unwrap(), 7);
    assert!(target_rows(100, Some(0), None).unwrap_err().to_string().contains("at least one row"));
    assert!(target_rows(100, Some(10), Some(0)).unwrap_err().to_string().contains("multiple ≥ 1"));
}

#[test]
fn kept_rows_are_bit_identical_and_reserved_rows_initialized() {
    let (v, d) = (20, 6);
    for td in test_devices() {
        let t = table(gaussian(v, d, 1, 0.7, &[0.3]), None, &td.device);
        let old = host_f32(t.weight.val());
        // Grow 20 → 23, rounded to 24 (one reserved row), with the mean.
        let opts = ResizeOptions::to(23).with_multiple_of(8).with_new_rows(RowInit::Mean);
        let r = resize(&t, &LmHead::tied(), &opts).unwrap();
        let w = r.table.weight.val();
        assert_eq!(w.dims(), [24, d], "{}", td.name);
        assert_eq!(rows_of(&w, 0, v), old, "{}: kept rows bit-identical", td.name);
        let mu = host_mean(&old, v, d, None);
        for i in v..24 {
            let row = rows_of(&w, i, i + 1);
            for c in 0..d {
                assert!((row[c] as f64 - mu[c]).abs() < 1e-5, "{}: row {i} (reserved={}) = μ", td.name, i == 23);
            }
        }
        let rep = &r.report;
        assert_eq!((rep.old_rows, rep.requested_rows, rep.new_rows, rep.kept, rep.added, rep.reserved, rep.removed), (20, 23, 24, 20, 4, 1, 0));
        // Shrink 20 → 7.
        let r = resize(&t, &LmHead::tied(), &ResizeOptions::to(7)).unwrap();
        assert_eq!(rows_of(&r.table.weight.val(), 0, 7), old[..7 * d].to_vec(), "{}: shrink keeps a prefix", td.name);
        assert_eq!((r.report.kept, r.report.added, r.report.removed), (7, 0, 13));
        let json = serde_json::to_string(&r.report).unwrap();
        assert!(json.contains("\"removed\":13") && json.contains("\"strategy\":\"mean_cov(eps=1e-9)\""), "{json}");
    }
}

#[test]
fn mean_cov_samples_have_mean_mu_and_covariance_eps_sigma() {
    let (v, d, added) = (400, 3, 6000);
    for td in flex_and_wgpu() {
        // Correlated rows: x = A z + m, Σ = A Aᵀ.
        let z = host_f32(Tensor::<2>::from_data(gaussian(v, d, 7, 1.0, &[]), &Device::flex()));
        let a = [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]];
        let m = [2.0, -1.0, 0.5];
        let x: Vec<f32> = (0..v * d).map(|k| (m[k % d] + (0..d).map(|j| a[k % d][j] * z[k / d * d + j] as f64).sum::<f64>()) as f32).collect();
        let t = table(TensorData::new(x.clone(), [v, d]), None, &td.device);
        let mu = host_mean(&x, v, d, None);
        let cov = |data: &[f32], n: usize, mean: &[f64], i: usize, j: usize| -> f64 {
            (0..n).map(|r| (data[r * d + i] as f64 - mean[i]) * (data[r * d + j] as f64 - mean[j])).sum::<f64>() / n as f64
        };
        let eps = 0.25;
        let r = resize(&t, &LmHead::tied(), &ResizeOptions::to(v + added).with_new_rows(RowInit::MeanCov { eps }).with_seed(3)).unwrap();
        assert!(r.report.note.is_none(), "{:?}", r.report.note);
        let new = rows_of(&r.table.weight.val(), v, v + added);
        let new_mu = host_mean(&new, added, d, None);
        for i in 0..d {
            assert!((new_mu[i] - mu[i]).abs() < 0.05, "{}: sample mean {new_mu:?} vs μ {mu:?}", td.name);
            for j in 0..d {
                let (s, e) = (cov(&new, added, &new_mu, i, j), eps * cov(&x, v, &mu, i, j));
                assert!((s - e).abs() < 0.1 * eps, "{}: cov[{i}][{j}] {s} vs ε·Σ {e}", td.name);
            }
        }
        // Default ε = 1e-9: tiny noise around μ, but noise.
        let r = resize(&t, &LmHead::tied(), &ResizeOptions::to(v + 50).with_seed(3)).unwrap();
        let new = rows_of(&r.table.weight.val(), v, v + 50);
        let dev: Vec<f64> = new.iter().enumerate().map(|(k, &x)| (x as f64 - mu[k % d]).abs()).collect();
        assert!(dev.iter().all(|&e| e < 1e-3) && dev.iter().any(|&e| e > 0.0), "{}", td.name);
        // Same seed, same rows; other seed, other rows.
        let again = resize(&t, &LmHead::tied(), &ResizeOptions::to(v + 50).with_seed(3)).unwrap();
        assert_eq!(host_f32(again.table.weight.val()), host_f32(r.table.weight.val()));
        let other = resize(&t, &LmHead::tied(), &ResizeOptions::to(v + 50).with_seed(4)).unwrap();
        assert_ne!(host_f32(other.table.weight.val()), host_f32(r.table.weight.val()));
    }
}

/// Assert `xs` look like independent `N(0, std²)` draws: sample mean, standard deviation,
/// the fraction inside `±std` (0.6827 for a normal, 0.577 for a uniform of the same std) and
/// the lag-1 correlation, each within 5 standard errors of its expected value.
fn assert_normal_sample(xs: &[f32], std: f64, what: &str) {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let sd = (xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 5.0 * std / n.sqrt(), "{what}: sample mean {mean}, want 0 ± {}", 5.0 * std / n.sqrt());
    assert!((sd - std).abs() < 5.0 * std / (2.0 * n).sqrt(), "{what}: sample std {sd}, want {std}");
    let p = 0.682_689_5;
    let inside = xs.iter().filter(|&&x| (x as f64).abs() < std).count() as f64 / n;
    assert!((inside - p).abs() < 5.0 * (p * (1.0 - p) / n).sqrt(), "{what}: P(|x| < std) = {inside}, want {p}");
    let lag1 = xs.windows(2).map(|w| w[0] as f64 * w[1] as f64).sum::<f64>() / (n - 1.0) / (std * std);
    assert!(lag1.abs() < 5.0 / n.sqrt(), "{what}: lag-1 correlation {lag1}");
}

#[test]
fn zeros_and_normal_new_rows_have_the_requested_values_and_old_rows_are_untouched() {
    let (v, d, added) = (16, 8, 6000);
    for td in flex_and_wgpu() {
        // Old rows and columns centred far from 0, so a strategy that used their statistics shows.
        let t = table(gaussian(v, d, 31, 1.0, &[2.0]), None, &td.device);
        let w = Tensor::<2>::from_data(gaussian(d, v, 32, 1.0, &[3.0]), &td.device); // [d, V]
        let b = Tensor::<1>::from_data(TensorData::new((0..v).map(|i| 1.0 + i as f32).collect::<Vec<_>>(), [v]), &td.device);
        let head = LmHead::untied(w.clone(), Some(b.clone())).unwrap();
        let (old, old_w, old_b) = (host_f32(t.weight.val()), host_f32(w.clone()), host_f32(b.clone()));
        let parts = |r: &Resized| {
            let u = r.head.untied.as_ref().expect("still untied");
            let w2 = u.weight.val();
            let (kept_cols, new_cols) = (host_f32(w2.clone().slice([0..d, 0..v])), host_f32(w2.slice([0..d, v..v + added]).transpose()));
            let b2 = host_f32(u.bias.as_ref().unwrap().val());
            let table = r.table.weight.val();
            (rows_of(&table, 0, v), rows_of(&table, v, v + added), kept_cols, new_cols, b2[..v].to_vec(), b2[v..].to_vec())
        };

        let r = resize(&t, &head, &ResizeOptions::to(v + added).with_new_rows(RowInit::Zeros)).unwrap();
        assert_eq!(r.report.strategy, "zeros");
        let (kept, new, kept_cols, new_cols, kept_b, new_b) = parts(&r);
        assert_eq!((kept, kept_cols, kept_b), (old.clone(), old_w.clone(), old_b.clone()), "{}: zeros: old entries bit for bit", td.name);
        assert!(new.iter().chain(&new_cols).chain(&new_b).all(|&x| x == 0.0), "{}: zeros: new rows, columns and bias exactly 0", td.name);

        let std = 0.3;
        let r = resize(&t, &head, &ResizeOptions::to(v + added).with_new_rows(RowInit::Normal { std }).with_seed(5)).unwrap();
        assert_eq!(r.report.strategy, "normal(std=0.3)");
        let (kept, new, kept_cols, new_cols, kept_b, new_b) = parts(&r);
        assert_eq!((kept, kept_cols, kept_b), (old.clone(), old_w.clone(), old_b.clone()), "{}: normal: old entries bit for bit", td.name);
        assert_normal_sample(&new, std, &format!("{}: table rows", td.name));
        assert_normal_sample(&new_cols, std, &format!("{}: head columns", td.name));
        for c in 0..d {
            let col: Vec<f32> = (0..added).map(|i| new[i * d + c]).collect();
            let m = col.iter().map(|&x| x as f64).sum::<f64>() / added as f64;
            assert!(m.abs() < 5.0 * std / (added as f64).sqrt(), "{}: coordinate {c} mean {m}", td.name);
        }
        assert_ne!(new, new_cols, "{}: the head's columns are their own draws", td.name);
        assert!(new_b.iter().all(|&x| x == 0.0), "{}: normal: new bias entries 0", td.name);
    }
}

#[test]
fn mean_cov_falls_back_to_exactly_the_mean_when_sigma_is_singular() {
    for td in test_devices() {
        // 5 rows in 8 dimensions: Σ has rank ≤ 4.
        let t = table(gaussian(5, 8, 11, 1.0, &[]), None, &td.device);
        let cov = resize(&t, &LmHead::tied(), &ResizeOptions::to(9).with_new_rows(RowInit::MeanCov { eps: 1e-2 })).unwrap();
        let mean = resize(&t, &LmHead::tied(), &ResizeOptions::to(9).with_new_rows(RowInit::Mean)).unwrap();
        assert_eq!(host_f32(cov.table.weight.val()), host_f32(mean.table.weight.val()), "{}", td.name);
        let note = cov.report.note.unwrap_or_default();
        assert!(note.contains("not positive definite"), "{}: {note}", td.name);
        let mu = host_mean(&host_f32(t.weight.val()), 5, 8, None);
        let row = rows_of(&cov.table.weight.val(), 7, 8);
        assert!(row.iter().zip(&mu).all(|(a, b)| (*a as f64 - b).abs() < 1e-6), "{}", td.name);
    }
}

#[test]
fn shrinking_past_padding_or_special_is_an_error_unless_dropped() {
    let dev = Device::flex();
    let t = table(gaussian(16, 4, 2, 1.0, &[]), Some(10), &dev);
    let err = resize(&t, &LmHead::tied(), &ResizeOptions::to(8)).unwrap_err();
    assert!(matches!(err, EmbedError::WouldDrop { id: 10, min_rows: 11, .. }), "{err}");
    assert!(err.to_string().contains("padding") && err.to_string().contains("drop it explicitly"), "{err}");
    let opts = ResizeOptions::to(8).with_protected("<eos>", 12);
    let err = resize(&t, &LmHead::tied(), &opts).unwrap_err().to_string();
    assert!(err.contains("\"<eos>\"") && err.contains("at least 13 rows"), "{err}");
    let r = resize(&t, &LmHead::tied(), &opts.with_allow_drop(true)).unwrap();
    assert_eq!((r.table.vocab_size(), r.table.padding_idx(), r.report.padding_idx), (8, None, None));
    assert!(r.report.note.unwrap().contains("<eos> (12)"));
    // Shrinking that keeps them is fine and keeps the padding row.
    let r = resize(&t, &LmHead::tied(), &ResizeOptions::to(11).with_protected("<eos>", 3)).unwrap();
    assert_eq!(r.table.padding_idx(), Some(10));
    // Bad strategy parameters are errors, not panics.
    assert!(resize(&t, &LmHead::tied(), &ResizeOptions::to(20).with_new_rows(RowInit::Normal { std: -1.0 })).is_err());
}

#[test]
fn untied_head_and_bias_are_resized_consistently() {
    let (v, d, pad) = (12, 5, 2);
    for td in test_devices() {
        let t = table(gaussian(v, d, 5, 1.0, &[]), Some(pad), &td.device);
        let w = Tensor::<2>::from_data(gaussian(d, v, 6, 1.0, &[]), &td.device); // [d, V]
        let b = Tensor::<1>::from_data(TensorData::new((0..v).map(|i| i as f32 * 0.25 - 1.0).collect::<Vec<_>>(), [v]), &td.device);
        let head = LmHead::untied(w.clone(), Some(b.clone())).unwrap();
        let r = resize(&t, &head, &ResizeOptions::to(15).with_new_rows(RowInit::Mean)).unwrap();
        assert_eq!(r.report.head, "untied+bias");
        let u = r.head.untied.as_ref().expect("still untied");
        let (w2, b2) = (u.weight.val(), u.bias.as_ref().unwrap().val());
        assert_eq!(w2.dims(), [d, 15]);
        assert_eq!(host_f32(w2.clone().slice([0..d, 0..v])), host_f32(w.clone()), "{}: kept columns", td.name);
        // New columns: mean of the old columns except the padding one; bias: mean of old bias.
        let cols = host_f32(w.clone().transpose());
        let mu = host_mean(&cols, v, d, Some(pad));
        let new_col = host_f32(w2.clone().slice([0..d, 13..14]));
        assert!(new_col.iter().zip(&mu).all(|(a, b)| (*a as f64 - b).abs() < 1e-5), "{}: {new_col:?} vs {mu:?}", td.name);
        let bh = host_f32(b.clone());
        let b_mean = (0..v).filter(|&i| i != pad).map(|i| bh[i] as f64).sum::<f64>() / (v - 1) as f64;
        let b2h = host_f32(b2);
        assert_eq!(b2h[..v].to_vec(), bh, "{}: kept bias", td.name);
        assert!(b2h[v..].iter().all(|&x| (x as f64 - b_mean).abs() < 1e-6), "{}: {b2h:?}", td.name);
        // Old-vocabulary logits are unchanged.
        let h = Tensor::<2>::from_data(gaussian(4, d, 9, 1.0, &[]), &td.device).reshape([1, 4, d]);
        let before = head.logits(h.clone(), &t);
        let after = r.head.logits(h, &r.table).slice([0..1, 0..4, 0..v]);
        assert_close(&after, &before, 1e-6, 1e-6, &format!("{}: old logits", td.name));
        // Normal: bias entries 0; shrink: everything cut the same way.
        let r = resize(&t, &head, &ResizeOptions::to(14).with_new_rows(RowInit::Normal { std: 0.1 })).unwrap();
        assert_eq!(host_f32(r.head.untied.unwrap().bias.unwrap().val())[v..].to_vec(), vec![0.0; 2]);
        let r = resize(&t, &head, &ResizeOptions::to(9)).unwrap();
        let u = r.head.untied.unwrap();
        assert_eq!((u.weight.val().dims(), u.bias.unwrap().val().dims()), ([d, 9], [9]));
    }
}

#[derive(Module, Debug)]
struct Front {
    table: TokenEmbedding,
    head: LmHead,
}

#[test]
fn tied_head_stays_tied() {
    let (v, d) = (10, 4);
    for td in test_devices() {
        let t = table(gaussian(v, d, 8, 1.0, &[]), None, &td.device);
        let r = resize(&t, &LmHead::tied(), &ResizeOptions::to(13)).unwrap();
        assert_eq!(r.report.head, "tied");
        let front = Front { table: r.table, head: r.head };
        assert_eq!(front.num_params(), 13 * d, "{}: one table parameter", td.name);
        let h = Tensor::<2>::from_data(gaussian(3, d, 9, 1.0, &[]), &td.device).reshape([1, 3, d]);
        let want = h.clone().matmul(front.table.weight.val().transpose().unsqueeze::<3>());
        assert_close(&front.head.logits(h, &front.table), &want, 1e-6, 1e-6, &td.name.to_string());
    }
}

#[test]
fn piece_average_rows_are_means_of_the_old_pieces() {
    let tok = testkit::bpe(300, true);
    let (v, d) = (300, 8);
    let t = table(gaussian(v, d, 12, 1.0, &[]), None, &Device::flex());
    let old = host_f32(t.weight.val());
    let words = vec!["Shakespeare".to_string(), " citizens".to_string()];
    let opts = ResizeOptions::to(v + 2).with_multiple_of(16).with_new_rows(NewRows::PieceAverage { tokenizer: &tok, new_tokens: words.clone() });
    let r = resize(&t, &LmHead::tied(), &opts).unwrap();
    assert_eq!((r.report.new_rows, r.report.composed, r.report.reserved), (304, 2, 2));
    let w = r.table.weight.val();
    for (k, word) in words.iter().enumerate() {
        let ids = tok.encode(word.as_str(), false).unwrap().get_ids().to_vec();
        assert!(ids.len() > 1, "{word} has several pieces");
        let want: Vec<f64> = (0..d).map(|c| ids.iter().map(|&i| old[i as usize * d + c] as f64).sum::<f64>() / ids.len() as f64).collect();
        let got = rows_of(&w, v + k, v + k + 1);
        assert!(got.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-5), "{word}: {got:?} vs {want:?}");
    }
    let mu = host_mean(&old, v, d, None);
    let reserved = rows_of(&w, 303, 304);
    assert!(reserved.iter().zip(&mu).all(|(a, b)| (*a as f64 - b).abs() < 1e-5), "reserved rows get μ");
    let err = resize(&t, &LmHead::tied(), &ResizeOptions::to(v + 1).with_new_rows(NewRows::PieceAverage { tokenizer: &tok, new_tokens: words }));
    assert!(err.unwrap_err().to_string().contains("at least 302 rows"));
}

/// Hewitt's argument on a constructed model whose logits are large and negative.
#[test]
fn mean_init_keeps_kl_small_where_normal_init_does_not() {
    let (v, d, k, n) = (64, 16, 4, 32);
    for td in flex_and_wgpu() {
        // Rows 3·e₀ + noise, hidden states −7·e₀ + noise: logits ≈ −21 ± 1.5.
        let t = table(gaussian(v, d, 21, 0.2, &[3.0]), None, &td.device);
        let h = Tensor::<2>::from_data(gaussian(n, d, 22, 0.3, &[-7.0]), &td.device).reshape([1, n, d]);
        let old = t.weight.val().clone();
        let logits_old = LmHead::tied().logits(h.clone(), &t);
        let max_old: f32 = logits_old.clone().max().into_scalar();
        assert!(max_old < -10.0, "{}: logits are large and negative ({max_old})", td.name);
        let logp = log_softmax(logits_old, 2);
        let measure = |new_rows: RowInit| -> (f64, f64) {
            let r = resize(&t, &LmHead::tied(), &ResizeOptions::to(v + k).with_new_rows(new_rows).with_seed(1)).unwrap();
            assert_eq!(rows_of(&r.table.weight.val(), 0, v), host_f32(old.clone()));
            let logq = log_softmax(r.head.logits(h.clone(), &r.table), 2);
            let p_new: f64 = logq.clone().slice([0..1, 0..n, v..v + k]).exp().sum().into_scalar::<f64>() / n as f64;
            let kl = (logp.clone().exp() * (logp.clone() - logq.slice([0..1, 0..n, 0..v]))).sum().into_scalar::<f64>() / n as f64;
            (kl, p_new)
        };
        let (kl_mean, p_mean) = measure(RowInit::Mean);
        let (kl_normal, p_normal) = measure(RowInit::Normal { std: 0.02 });
        let bound = (1.0 + k as f64 / v as f64).ln();
        assert!(kl_mean <= bound + 1e-4, "{}: KL(mean) {kl_mean} ≤ log(1 + k/V) = {bound}", td.name);
        assert!(p_mean <= k as f64 / (v + k) as f64 + 1e-4, "{}: new mass {p_mean}", td.name);
        assert!(kl_normal > 100.0 * kl_mean, "{}: KL(normal) {kl_normal} vs KL(mean) {kl_mean}", td.name);
        assert!(p_normal > 0.99, "{}: small random rows take the mass ({p_normal})", td.name);
    }
}
