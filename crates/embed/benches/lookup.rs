//! Token lookup forward + backward against `burn::nn::Embedding`, and tied-head logits
//! forward + backward, on flex (V = 32768, d = 256, 4096 ids as [8, 512]).
//!
//! `cargo bench -p ember-embed --bench lookup -- --warm-up-time 1 --measurement-time 5`

use burn::nn::EmbeddingConfig;
use burn::tensor::{Distribution, Int, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use ember_embed::{LmHead, TokenEmbedding};

const V: usize = 32768;
const D: usize = 256;

fn lookup(c: &mut Criterion) {
    let device = burn::tensor::Device::flex().autodiff();
    let ids = Tensor::<2, Int>::random([8, 512], Distribution::Uniform(0.0, V as f64), &device);
    let weight = Tensor::<2>::random([V, D], Distribution::Normal(0.0, 0.02), &device);
    let burn_emb = {
        let mut e = EmbeddingConfig::new(V, D).init(&device);
        e.weight = burn::module::Param::from_tensor(weight.clone());
        e
    };
    let ours = TokenEmbedding::from_weight(weight.clone(), None).unwrap();
    let ours_pad = TokenEmbedding::from_weight(weight, Some(0)).unwrap();

    let mut group = c.benchmark_group("lookup_fwd_bwd_V32768_d256_4096ids");
    group.sample_size(20);
    group.bench_function("burn::nn::Embedding", |b| {
        b.iter(|| {
            let grads = burn_emb.forward(ids.clone()).sum().backward();
            burn_emb.weight.grad(&grads).unwrap().slice([0..1, 0..1]).into_scalar::<f32>()
        })
    });
    group.bench_function("ember TokenEmbedding", |b| {
        b.iter(|| {
            let grads = ours.forward(ids.clone()).sum().backward();
            ours.weight.grad(&grads).unwrap().slice([0..1, 0..1]).into_scalar::<f32>()
        })
    });
    group.bench_function("ember TokenEmbedding + padding_idx", |b| {
        b.iter(|| {
            let grads = ours_pad.forward(ids.clone()).sum().backward();
            ours_pad.weight.grad(&grads).unwrap().slice([0..1, 0..1]).into_scalar::<f32>()
        })
    });
    group.finish();

    // Tied head: logits [1, 512, V] from h [1, 512, D], CE-like reduction, backward to E.
    let h = Tensor::<3>::random([1, 512, D], Distribution::Normal(0.0, 1.0), &device);
    let head = LmHead::tied();
    let mut group = c.benchmark_group("tied_head_fwd_bwd_512x256_to_32768");
    group.sample_size(10);
    group.bench_function("ember LmHead::tied", |b| {
        b.iter(|| {
            let grads = head.logits(h.clone(), &ours).sum().backward();
            ours.weight.grad(&grads).unwrap().slice([0..1, 0..1]).into_scalar::<f32>()
        })
    });
    group.bench_function("plain matmul h·Eᵀ", |b| {
        b.iter(|| {
            let logits = h.clone().matmul(ours.weight.val().transpose().unsqueeze::<3>());
            let grads = logits.sum().backward();
            ours.weight.grad(&grads).unwrap().slice([0..1, 0..1]).into_scalar::<f32>()
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
