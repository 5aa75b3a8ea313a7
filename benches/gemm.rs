//! GEMM yardstick: square f32 matmuls on each CPU backend (and wgpu when an adapter exists).
//! Every later speed figure in BENCHMARKS.md is read against these GFLOP/s.
//!
//! `cargo bench --bench gemm -- --warm-up-time 1 --measurement-time 3`
//! (`RAYON_NUM_THREADS=1` for the one-core comparison).

use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ember_device::BackendName;

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10);
    let backends = [BackendName::Flex, BackendName::Ndarray, BackendName::WgpuCpu];
    for name in backends {
        if name == BackendName::WgpuCpu && ember_testing::wgpu_device().is_none() {
            continue;
        }
        let device = name.device().unwrap();
        for n in [512usize, 1024, 2048] {
            if name == BackendName::WgpuCpu && n > 1024 {
                continue; // lavapipe: minutes per sample at 2048
            }
            let a = Tensor::<2>::random([n, n], Distribution::Default, &device);
            let b = Tensor::<2>::random([n, n], Distribution::Default, &device);
            group.throughput(Throughput::Elements((2 * n * n * n) as u64)); // FLOPs
            group.bench_with_input(BenchmarkId::new(name.to_string(), n), &n, |bench, _| {
                bench.iter(|| {
                    let c = a.clone().matmul(b.clone());
                    // Read one element back: forces the work to finish on lazy backends.
                    c.slice([0..1, 0..1]).into_scalar::<f32>()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
