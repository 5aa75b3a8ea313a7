//! k-NN over a 50,000 × 300 random table on flex: top-10 for a batch of 64 query rows, per
//! metric (one `[64, 300]·[300, 50000]` matmul + top-k + one read-back per search), plus the
//! one-off index build (normalising the rows for cosine, squared norms for Euclidean).
//!
//! `cargo bench -p ember-embed --bench knn -- --warm-up-time 1 --measurement-time 3`

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ember_embed::neighbors::{Metric, NeighborIndex};
use rand::{rngs::StdRng, Rng, SeedableRng};

const N: usize = 50_000;
const D: usize = 300;
const K: usize = 10;

fn knn(c: &mut Criterion) {
    let device = Device::flex();
    device.seed(0);
    let table = Tensor::<2>::random([N, D], Distribution::Normal(0.0, 1.0), &device);
    let _ = table.to_data(); // materialise before timing
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = c.benchmark_group("knn_50000x300_top10_flex");
    group.sample_size(10);
    for batch in [1usize, 64] {
        let rows: Vec<usize> = (0..batch).map(|_| rng.random_range(0..N)).collect();
        group.throughput(Throughput::Elements(batch as u64));
        for metric in [Metric::Dot, Metric::Cosine, Metric::Euclidean] {
            let index = NeighborIndex::new(table.clone(), metric);
            index.search_rows(&rows[..1], K).unwrap(); // materialise the index
            group.bench_with_input(BenchmarkId::new(format!("{metric}/batch"), batch), &rows, |b, rows| {
                b.iter(|| index.search_rows(rows, K).unwrap())
            });
        }
    }
    group.bench_function("index_build_cosine", |b| {
        b.iter(|| {
            let index = NeighborIndex::new(table.clone(), Metric::Cosine);
            index.search_rows(&[0], 1).unwrap()
        })
    });
    let queries = TensorData::new(vec![0.5f32; 64 * D], [64, D]);
    let index = NeighborIndex::new(table.clone(), Metric::Cosine);
    group.bench_function("cosine/vectors64", |b| {
        b.iter(|| index.search_vectors(Tensor::from_data(queries.clone(), &device), K).unwrap())
    });
    group.finish();
}

criterion_group!(benches, knn);
criterion_main!(benches);
