//! RoPE apply (q and k of one attention layer) against `burn::nn::RotaryEncoding`, on flex.
//!
//! Both sides rotate a `[B, H, T, dh]` query and key; tables are built before timing (Burn
//! precomputes them at init; ours are cached after the first call). Each iteration reads the
//! result back (`into_data`) so lazy backends cannot skip work.
//!
//! `cargo bench --release -p ember-position --bench rope -- --warm-up-time 1 --measurement-time 3`

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ember_position::{Rope, RopeLayout, RopeScaling};

fn input(shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("rope_apply_qk");
    for shape in [[12, 4, 64, 32], [8, 16, 1024, 64]] {
        let [_, _, t, dh] = shape;
        let label = format!("{shape:?}");
        let q = input(shape, &device);
        let k = input(shape, &device) * 0.5;

        let burn_rope = burn::nn::RotaryEncodingConfig::new(t, dh).init(&device);
        group.bench_with_input(BenchmarkId::new("burn_rotary_encoding", &label), &shape, |b, _| {
            b.iter(|| {
                let rq = burn_rope.apply(q.clone(), 0);
                let rk = burn_rope.apply(k.clone(), 0);
                (rq.into_data(), rk.into_data())
            })
        });
        for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
            let ours = Rope::new(layout, 10000.0, dh, dh, RopeScaling::None {});
            let _ = ours.apply_qk(q.clone(), k.clone(), 0); // fill the table cache
            group.bench_with_input(BenchmarkId::new(format!("ember_{layout:?}"), &label), &shape, |b, _| {
                b.iter(|| {
                    let (rq, rk) = ours.apply_qk(q.clone(), k.clone(), 0);
                    (rq.into_data(), rk.into_data())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
