//! Quantization of tables: the error bound, packing, recall, the file format, bad input.

use burn::tensor::{Device, Tensor, TensorData};
use ember_embed::quantize::{self, check_bits, max_code, quantize, recall_at_k, Quantized, Scheme};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn random_table(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    // rows of very different scales, a few exact zeros and one all-zero row
    (0..rows * dim)
        .map(|j| if j / dim == 3 || j % 17 == 5 { 0.0 } else { rng.random_range(-1.0f32..1.0) * (1.0 + (j / dim) as f32 * 0.37) })
        .collect()
}

#[test]
fn error_is_at_most_half_a_scale_per_entry() {
    let (rows, dim) = (40, 24);
    let x = random_table(rows, dim, 7);
    for bits in [8u8, 4] {
        for scheme in [Scheme::Rowwise, Scheme::Groupwise(8), Scheme::Groupwise(3), Scheme::Groupwise(24)] {
            let q = quantize(&x, rows, dim, bits, scheme).unwrap();
            let g = scheme.group(dim);
            assert_eq!(q.scales.len(), rows * dim / g);
            let back = q.dequantize();
            let qmax = max_code(bits);
            for (j, (&a, &b)) in x.iter().zip(&back).enumerate() {
                let s = q.scales[j / g] as f64;
                assert!((a as f64 - b as f64).abs() <= s / 2.0 * (1.0 + 1e-6) + 1e-12, "{bits} bits {scheme}: entry {j}: {a} vs {b}, scale {s}");
                assert!((q.codes[j] as i32).abs() <= qmax);
            }
            // each group's absmax entry is represented exactly by ±q (up to f32 rounding)
            for (gi, group) in x.chunks(g).enumerate() {
                let absmax = group.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!((q.scales[gi] * qmax as f32 - absmax).abs() <= 1e-6 * absmax.max(1.0), "{bits} {scheme} group {gi}");
            }
            assert!(q.max_abs_err(&x) <= q.scales.iter().fold(0.0f32, |m, &s| m.max(s)) as f64 / 2.0 * (1.0 + 1e-6));
            assert!(back[3 * dim..4 * dim].iter().all(|&v| v == 0.0), "an all-zero row stays zero");
        }
    }
}

#[test]
fn finer_groups_and_more_bits_are_more_accurate_and_bytes_are_counted() {
    let (rows, dim) = (30, 32);
    let x = random_table(rows, dim, 3);
    let err = |bits, scheme| quantize(&x, rows, dim, bits, scheme).unwrap().max_abs_err(&x);
    assert!(err(8, Scheme::Rowwise) < err(4, Scheme::Rowwise) / 8.0);
    assert!(err(4, Scheme::Groupwise(4)) <= err(4, Scheme::Rowwise));
    let q8 = quantize(&x, rows, dim, 8, Scheme::Rowwise).unwrap();
    assert_eq!(q8.bytes(), rows * dim + 4 * rows);
    let q4 = quantize(&x, rows, dim, 4, Scheme::Groupwise(8)).unwrap();
    assert_eq!(q4.bytes(), rows * dim / 2 + 4 * rows * 4, "two codes per byte, four scales per row");
    let odd = quantize(&[1.0, -1.0, 0.5, 1.0, 2.0, -2.0], 2, 3, 4, Scheme::Rowwise).unwrap();
    assert_eq!(odd.code_bytes(), 4, "a row of 3 codes packs into 2 bytes");
}

#[test]
fn four_bit_packing_round_trips_every_code() {
    // all 15 codes −7..=7 in rows of odd length
    let codes: Vec<i8> = (0..30).map(|j| (j % 15) as i8 - 7).collect();
    let q = Quantized { bits: 4, scheme: Scheme::Rowwise, rows: 6, dim: 5, codes: codes.clone(), scales: vec![1.0; 6] };
    let packed = q.pack4();
    assert_eq!(packed.len(), 6 * 3);
    assert_eq!(Quantized::unpack4(&packed, 6, 5), codes);
    assert_eq!(packed[0], 0x9u8 | (0xA << 4), "−7 = 0b1001 low, −6 = 0b1010 high");
}

#[test]
fn recall_is_one_for_an_exactly_representable_table_and_drops_otherwise() {
    let (rows, dim) = (60, 8);
    // codes in [−7, 7] times a power-of-two row scale, each row holding ±7: 4-bit rowwise
    // quantization reproduces it exactly.
    let mut rng = StdRng::seed_from_u64(11);
    let mut x = Vec::new();
    for r in 0..rows {
        let s = 2f32.powi((r % 5) as i32 - 2);
        let mut row: Vec<f32> = (0..dim).map(|_| rng.random_range(-7i32..=7) as f32 * s).collect();
        row[r % dim] = if r % 2 == 0 { 7.0 * s } else { -7.0 * s };
        x.extend(row);
    }
    let device = Device::flex();
    let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [rows, dim]), &device);
    let q = quantize(&x, rows, dim, 4, Scheme::Rowwise).unwrap();
    assert_eq!(q.dequantize(), x, "exactly representable");
    assert_eq!(q.max_abs_err(&x), 0.0);
    assert_eq!(recall_at_k(&t(x.clone()), &t(q.dequantize()), 10).unwrap(), 1.0);
    // a perturbed table loses neighbours
    let y = random_table(rows, dim, 5);
    let noisy: Vec<f32> = y.iter().map(|v| v + rng.random_range(-0.5f32..0.5)).collect();
    let r = recall_at_k(&t(y.clone()), &t(noisy), 10).unwrap();
    assert!(r < 1.0 && r > 0.0, "{r}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let x = vec![0.5f32; 12];
    for bits in [0i64, 2, 16, -8] {
        let e = check_bits(bits).unwrap_err().to_string();
        assert!(e.contains("--bits 8 or --bits 4") && e.contains(&bits.to_string()), "{e}");
    }
    assert!(quantize(&x, 3, 4, 3, Scheme::Rowwise).unwrap_err().to_string().contains("--bits"));
    let e = quantize(&x, 3, 4, 8, Scheme::Groupwise(3)).unwrap_err().to_string();
    assert!(e.contains("3 does not divide d = 4"), "{e}");
    let e = quantize(&x, 3, 4, 8, Scheme::Groupwise(0)).unwrap_err().to_string();
    assert!(e.contains("0 does not divide"), "{e}");
    assert!(quantize(&x, 2, 4, 8, Scheme::Rowwise).is_err(), "wrong length");
    assert!(Scheme::parse("groupwise", Some(0)).unwrap_err().to_string().contains("positive divisor"));
    assert!(Scheme::parse("groupwise", Some(-4)).unwrap_err().to_string().contains("-4"));
    assert!(Scheme::parse("groupwise", None).unwrap_err().to_string().contains("needs --group"));
    assert!(Scheme::parse("rowwise", Some(8)).unwrap_err().to_string().contains("only to --scheme groupwise"));
    assert!(Scheme::parse("columnwise", None).unwrap_err().to_string().contains("rowwise or groupwise"));
    assert_eq!(Scheme::parse("groupwise", Some(16)).unwrap(), Scheme::Groupwise(16));
}

#[test]
fn file_round_trip_through_load_table() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dim) = (5, 6);
    let x = random_table(rows, dim, 9);
    let tokens: Vec<String> = ["a", " ", "\n", "the", "b"].iter().map(|s| s.to_string()).collect();
    for (bits, scheme) in [(8u8, Scheme::Rowwise), (4, Scheme::Groupwise(3))] {
        let q = quantize(&x, rows, dim, bits, scheme).unwrap();
        let head = quantize(&x.iter().map(|v| -v).collect::<Vec<_>>(), rows, dim, bits, scheme).unwrap();
        let path = dir.path().join(format!("q{bits}.safetensors"));
        quantize::save(&path, &tokens, &q, Some(&head)).unwrap();
        let t = ember_embed::load_table(&path, None, None).unwrap();
        assert_eq!(t.tokens, tokens);
        assert_eq!(t.weights.iter::<f32>().collect::<Vec<_>>(), q.dequantize());
        let h = ember_embed::load_table(&path, Some("head"), None).unwrap();
        assert_eq!(h.weights.iter::<f32>().collect::<Vec<_>>(), head.dequantize());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(quantize::load(&path, &bytes, None).unwrap().0, q);
        let e = ember_embed::load_table(&path, Some("wte"), None).unwrap_err().to_string();
        assert!(e.contains("no tensor named `wte.codes`"), "{e}");
    }
}
