//! Every RoPE scaling against an independent f64 transcription of Hugging Face's
//! `modeling_rope_utils.py` (written in its own structure: arrays, masks, ramps).

use ember_position::rope_scaling::{default_inv_freq, scaled_inv_freq, RopeScaling};
use std::f64::consts::PI;

fn arange_inv_freq(base: f64, dim: usize) -> Vec<f64> {
    // 1.0 / (base ** (arange(0, dim, 2) / dim))
    (0..dim).step_by(2).map(|k| 1.0 / base.powf(k as f64 / dim as f64)).collect()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1e-30), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn plain_and_linear() {
    for (base, dim) in [(10000.0, 8), (500000.0, 128), (10.0, 2)] {
        let f = scaled_inv_freq(base, dim, &RopeScaling::None {}, None);
        close(&f.inv_freq, &arange_inv_freq(base, dim), "plain");
        assert_eq!(f.attention_factor, 1.0);
        close(&default_inv_freq(base, dim), &arange_inv_freq(base, dim), "default");
        let f = scaled_inv_freq(base, dim, &RopeScaling::Linear { factor: 4.0 }, Some(100_000));
        let expect: Vec<f64> = arange_inv_freq(base, dim).iter().map(|v| v / 4.0).collect();
        close(&f.inv_freq, &expect, "linear");
        assert_eq!(f.attention_factor, 1.0);
    }
}

#[test]
fn dynamic_ntk_changes_nothing_until_the_sequence_passes_max_position() {
    let (base, dim, factor, max_pos) = (10000.0, 64, 2.0, 256usize);
    let s = RopeScaling::Dynamic { factor, max_position: max_pos };
    let plain = arange_inv_freq(base, dim);
    for seq in [1, 100, 255, 256] {
        assert_eq!(s.seq_len_key(seq), None);
        close(&scaled_inv_freq(base, dim, &s, s.seq_len_key(seq)).inv_freq, &plain, "dynamic below");
        close(&scaled_inv_freq(base, dim, &s, Some(seq)).inv_freq, &plain, "dynamic below (explicit)");
    }
    for seq in [257, 512, 10_000] {
        let new_base = base * ((factor * seq as f64 / max_pos as f64) - (factor - 1.0)).powf(dim as f64 / (dim as f64 - 2.0));
        let f = scaled_inv_freq(base, dim, &s, s.seq_len_key(seq));
        close(&f.inv_freq, &arange_inv_freq(new_base, dim), "dynamic above");
        assert!(f.inv_freq[1] < plain[1]);
        assert_eq!(f.attention_factor, 1.0);
    }
}

fn hf_yarn(base: f64, dim: usize, factor: f64, omax: f64, beta_fast: f64, beta_slow: f64, attention_factor: Option<f64>) -> (Vec<f64>, f64) {
    fn get_mscale(scale: f64) -> f64 {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * scale.ln() + 1.0
        }
    }
    let attention = attention_factor.unwrap_or_else(|| get_mscale(factor));
    let find_correction_dim = |num_rotations: f64| (dim as f64 * (omax / (num_rotations * 2.0 * PI)).ln()) / (2.0 * base.ln());
    let low = find_correction_dim(beta_fast).floor();
    let high = find_correction_dim(beta_slow).ceil();
    let (low, mut high) = (low.max(0.0), high.min(dim as f64 - 1.0));
    if low == high {
        high += 0.001;
    }
    let linear_ramp: Vec<f64> = (0..dim / 2).map(|i| ((i as f64 - low) / (high - low)).clamp(0.0, 1.0)).collect();
    let pos_freqs: Vec<f64> = (0..dim).step_by(2).map(|k| base.powf(k as f64 / dim as f64)).collect();
    let inv_freq = pos_freqs
        .iter()
        .zip(&linear_ramp)
        .map(|(pf, ramp)| {
            let extrapolation = 1.0 / pf;
            let interpolation = 1.0 / (factor * pf);
            let extrapolation_factor = 1.0 - ramp;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect();
    (inv_freq, attention)
}

#[test]
fn yarn_matches_hf() {
    for (base, dim, factor, omax, bf, bs, af) in [
        (10000.0, 64, 4.0, 2048.0, 32.0, 1.0, None),
        (10000.0, 128, 16.0, 4096.0, 32.0, 1.0, None),
        (500000.0, 128, 8.0, 8192.0, 16.0, 2.0, Some(1.3)),
        (10000.0, 8, 2.0, 64.0, 32.0, 1.0, None),
        (10000.0, 16, 0.5, 512.0, 32.0, 1.0, None),
    ] {
        let s = RopeScaling::Yarn { factor, original_max_position: omax as usize, beta_fast: bf, beta_slow: bs, attention_factor: af };
        let got = scaled_inv_freq(base, dim, &s, None);
        let (inv, att) = hf_yarn(base, dim, factor, omax, bf, bs, af);
        close(&got.inv_freq, &inv, &format!("yarn {dim} {factor}"));
        assert!((got.attention_factor - att).abs() < 1e-15);
    }
    // the documented default: 0.1 ln(4) + 1
    let s = RopeScaling::Yarn { factor: 4.0, original_max_position: 2048, beta_fast: 32.0, beta_slow: 1.0, attention_factor: None };
    assert!((scaled_inv_freq(10000.0, 64, &s, None).attention_factor - 1.1386294361119891).abs() < 1e-15);
    // high frequencies kept, low ones interpolated
    let f = scaled_inv_freq(10000.0, 64, &s, None).inv_freq;
    let plain = arange_inv_freq(10000.0, 64);
    assert_eq!(f[0], plain[0]);
    assert!((f[31] - plain[31] / 4.0).abs() < 1e-18);
}

fn hf_llama3(base: f64, dim: usize, factor: f64, low_ff: f64, high_ff: f64, old_ctx: f64) -> Vec<f64> {
    let inv_freq = arange_inv_freq(base, dim);
    let low_freq_wavelen = old_ctx / low_ff;
    let high_freq_wavelen = old_ctx / high_ff;
    let wavelen: Vec<f64> = inv_freq.iter().map(|f| 2.0 * PI / f).collect();
    let inv_freq_llama: Vec<f64> = inv_freq.iter().zip(&wavelen).map(|(f, w)| if *w > low_freq_wavelen { f / factor } else { *f }).collect();
    let smooth: Vec<f64> = wavelen.iter().map(|w| (old_ctx / w - low_ff) / (high_ff - low_ff)).collect();
    let smoothed: Vec<f64> = inv_freq_llama.iter().zip(&smooth).map(|(f, s)| (1.0 - s) * f / factor + s * f).collect();
    let is_medium: Vec<bool> = wavelen.iter().map(|w| !(*w < high_freq_wavelen) && !(*w > low_freq_wavelen)).collect();
    inv_freq_llama.iter().zip(&smoothed).zip(&is_medium).map(|((l, s), m)| if *m { *s } else { *l }).collect()
}

#[test]
fn llama3_matches_hf() {
    for (base, dim, factor, l, h, ctx) in [(500000.0, 128, 8.0, 1.0, 4.0, 8192.0), (10000.0, 64, 4.0, 1.0, 4.0, 256.0), (10000.0, 32, 32.0, 2.0, 8.0, 1024.0)] {
        let s = RopeScaling::Llama3 { factor, low_freq_factor: l, high_freq_factor: h, original_max_position: ctx as usize };
        let got = scaled_inv_freq(base, dim, &s, None);
        let expect = hf_llama3(base, dim, factor, l, h, ctx);
        close(&got.inv_freq, &expect, &format!("llama3 {dim}"));
        assert_eq!(got.attention_factor, 1.0);
        // all three regimes occur for the Llama 3.1 setting
        if dim == 128 {
            let plain = arange_inv_freq(base, dim);
            let kept = got.inv_freq.iter().zip(&plain).filter(|(a, b)| a == b).count();
            let divided = got.inv_freq.iter().zip(&plain).filter(|(a, b)| (**a - **b / factor).abs() < 1e-20).count();
            assert!(kept > 0 && divided > 0 && kept + divided < dim / 2, "kept {kept} divided {divided}");
        }
    }
}
