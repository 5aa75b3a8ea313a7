//! # ember-kernels
//!
//! Fused training ops for ember's tiny LM: ops that Burn would otherwise run as a chain of
//! small tensor ops, each with its own allocation, pass over memory and autodiff node,
//! written as one op with its own backward through Burn 0.22's backend extensions.
//!
//! | function | forward | backward | kept for backward |
//! | --- | --- | --- | --- |
//! | [`attention`], [`attention_qkv`] | `softmax(q kᵀ/√d_h + bias + causal) v`, heads merged | `dq, dk, dv` | the probabilities `P` |
//! | [`linear`] | `x W (+ b)` over all rows | `dx = dy Wᵀ, dW = xᵀ dy` | `x`, `W` |
//! | [`layer_norm`] | `γ ⊙ (x − μ)/√(σ² + ε) (+ β)` over the last dim | `dx, dγ` | `x`, `γ` |
//! | [`target_log_probs`] | `z[y] − logsumexp(z)` per row (the cross-entropy's term) | `dz = dy ⊙ (e_y − softmax(z))` | `z`, `y`, `logsumexp(z)` |
//! | [`gelu`] | `x·Φ(x)` (exact, `erf`) | `dx = dy ⊙ gelu'(x)` | `gelu'(x)` |
//! | [`FusedAdamW`] | AdamW's update + matrix decay + the clipping factor, one pass per parameter | — | — |
//! | [`sum_of_squares`] | `Σ x²` → `[1]` (clipping's norm) | — | — |
//!
//! plus [`causal_mask`] and [`relative_distance`], the one definition of the causal mask.
//!
//! Every backend runs the same op: on flex (host memory) kernels parallel over rows or
//! batch × heads, attention with `gemm`'s micro-kernels on strided views (no copies of the
//! permuted `q/k/v`); ndarray runs the flex kernels on a copy of its tensors (but keeps its
//! own matmul for the linear layer); the cubecl backends (wgpu, cuda; `Fusion<CubeBackend>`
//! under Burn's `fusion`) run CubeCL kernels for attention's causal softmax and its backward
//! and for LayerNorm forward and backward (`cube`, registered as custom operations in the
//! fusion stream), cubecl's autotuned matmul, and Burn compositions for the element-wise ops
//! (GELU, AdamW, Σx²), which fusion merges into few kernels. Under autodiff each op is a
//! single node whose backward is the analytic gradient. Parity with Burn's own autodiff of
//! the composition (f32 and f64, every backend; f32 on wgpu) is tested in `tests/`.
//!
//! ## Checked at the boundary
//!
//! The public functions check shapes, dtypes and devices and return a [`KernelError`]
//! naming the inputs when they do not fit. The backend extension (`ops`, private) takes
//! Burn primitives unchecked; its host kernels check again and fall back to the composition
//! (or panic) rather than read or write outside a buffer. Every `unsafe` block, `unsafe fn`
//! and `unsafe impl` of the crate, and the invariant that makes it sound:
//!
//! | where | `unsafe` | invariant (why it holds) |
//! | --- | --- | --- |
//! | `host::view` | `Mat`, `View`, `MatMut` hold borrows of their buffer; constructors check every addressed element is inside it | no raw offset is taken from a safe fn without that check; `OutPtr::mat` is `unsafe`: its caller promises the tasks' parts are disjoint |
//! | `host::view` | `unsafe impl Send` and `Sync for OutPtr<'_, T>`, `T: Send` only | an `OutPtr<'a, T>` stands for the unique borrow `&'a mut [MaybeUninit<T>]` split among tasks: it reads nothing and writes only through the `MatMut`s of the unsafe `OutPtr::mat`, whose contract keeps the tasks' parts disjoint, so sending or sharing it is sound exactly when it is for that `&mut [T]` (`T: Send`) |
//! | `host::gemm::mm` | one `gemm::gemm` call | the three matrices' shapes are asserted to chain, their elements lie in their buffers (view invariant), `dst` is a unique borrow and `read_dst = false`, so all of `dst` is written and nothing else |
//! | `host::filled` (unsafe fn) and each `set_len` | new buffers without a zero fill | each call site states why its kernel writes every slot, after the shapes were checked (e.g. LayerNorm: the length is a multiple of `d`) |
//! | attention | `OutPtr::mat` per (b, h) task; the `probs` block read as `&mut [T]` after its gemm | the (b, h) blocks of `ctx` and of `dq, dk, dv` are disjoint; the block was borrowed uniquely by `par_chunks_mut` and written in full |
//! | `host::simd` | calling `#[target_feature]` wrappers | the CPU feature is detected first |
//!
//! The CubeCL kernels (`cube`) contain no `unsafe`: they are launched with CubeCL's checked
//! `launch`, whose generated code bounds-checks every tensor access, and each kernel also
//! stops units past the last row itself.
//!
//! ## Under Miri
//!
//! Miri needs a nightly toolchain with its component (the stable one has none:
//! `rustup component add --toolchain nightly miri rust-src`). With it, these pass with no
//! undefined behaviour reported (nightly 1.97 of 2026-05-19; ≈ 4 min to build, ≈ 15 min to
//! run on 2 cores):
//!
//! ```sh
//! export MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks"
//! cargo +nightly miri test -p ember-kernels --lib                          # views, gemm, SIMD, exp/erf, mask
//! cargo +nightly miri test -p ember-kernels --test host_kernels            # every flex kernel, forward + backward
//! cargo +nightly miri test -p ember-kernels --test checked_inputs rejects  # the checks, and each op's flex forward
//! cargo +nightly miri test -p ember-kernels --test bias_gradient a_constant_bias
//! ```
//!
//! The flags: Burn reads `burn.toml` from the working directory (isolation off); rayon's pool
//! threads outlive the test (leaks ignored); rayon's deque (crossbeam-epoch 0.9) casts
//! integers to pointers, and under Miri's default aliasing model (Stacked Borrows) Miri stops
//! inside crossbeam-epoch's own list (`List::element_of`) before reaching ember's code, so the
//! runs use Tree Borrows. Under Stacked Borrows the tests that run no parallel iterator pass
//! (the unit tests of `host::view`, `host::gemm`, `host::simd`, `mask`, and the `exp` test).
//! Not under Miri: the tests over `ember_testing::test_devices()` (the rest
//! of `fused_kernels`, `gelu`, `bias_gradient`, `checked_inputs`), which open wgpu, whose
//! Vulkan/GL driver calls Miri cannot run.
//!
//! ## What a program should set
//!
//! The kernels split work with rayon. A program calling them from outside a rayon pool (its
//! main thread) hands every parallel op to the pool and parks: run the whole program on a
//! pool thread (`rayon::ThreadPoolBuilder::new().build()?.install(main)`), as the `ember`
//! binary does (measured −10 % step time on 2 cores). On glibc, raising `M_TRIM_THRESHOLD`
//! and `M_MMAP_THRESHOLD` (`mallopt`) keeps freed tensor buffers mapped between steps (about
//! a quarter of a step was page faults without it). Both are process policy, so they live in
//! the binary (`src/pool.rs`, `src/allocator.rs`), not here.

mod adamw;
mod attention;
mod cube;
mod error;
mod gelu;
mod host;
mod layer_norm;
mod linear;
mod log_probs;
mod mask;
mod ops;
mod sum_of_squares;

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::Dispatch;
use burn::tensor::{Int, Shape, Tensor};

pub use adamw::{FusedAdamW, GradScale};
pub use error::KernelError;
pub use mask::{causal_mask, relative_distance};
use ops::{EmberKernels, ScoreBias};

/// Causal multi-head attention of one layer as one op: queries, keys and values
/// `[B, H, T, dh]` (any layout, e.g. permuted views of the fused projection), an optional
/// constant score bias `[1 or B, H, T, T]` (e.g. ALiBi's) → the context with heads merged,
/// `[B, T, H·dh]`. Scale `1/√dh`; key `j` is visible to query `i` iff `j ≤ i`. Gradients flow
/// to `q`, `k`, `v`, and to the bias when it requires one (a learned bias: T5, KERPLE, FIRE;
/// `∂L/∂bias = dS`, summed over the batch when the bias is `[1, H, T, T]`); a constant bias
/// (ALiBi's) costs nothing in the backward.
///
/// # Errors
/// If `k` or `v` is not shaped like `q`, the bias is not `[1 or B, H, T, T]`, a dimension is
/// 0, or the inputs differ in dtype or device.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<4>>) -> Result<Tensor<3>, KernelError> {
    let dims @ [b, h, t, _] = q.dims();
    error::nonempty("attention", "q", &dims)?;
    error::same_shape("attention", [("q", &q.dims()[..]), ("k", &k.dims()[..]), ("v", &v.dims()[..])])?;
    check_bias("attention", bias.as_ref(), [b, h, t])?;
    error::same_kind("attention", &[("q", &q), ("k", &k), ("v", &v)], bias.as_ref().map(|b| ("bias", b)))?;
    let out = <Dispatch as EmberKernels>::fused_attention(q.into_dispatch(), k.into_dispatch(), v.into_dispatch(), ScoreBias::new(bias.map(Tensor::into_dispatch)));
    Ok(Tensor::from_dispatch(out))
}

/// Causal multi-head attention straight from the fused projection: `qkv [B, T, 3d]` (the
/// `qkv` linear's output, columns `[q | k | v]`, each `[H, dh]` heads-major), `heads` = `H`,
/// an optional constant bias `[1 or B, H, T, T]` → the context with heads merged, `[B, T, d]`.
/// The same result (and gradients, the bias's included) as splitting `qkv` into heads and
/// calling [`attention`].
///
/// # Errors
/// If `heads` is 0 or `3·heads` does not divide the last dimension, a dimension is 0, the
/// bias shape disagrees, or the bias differs in dtype or device.
pub fn attention_qkv(qkv: Tensor<3>, heads: usize, bias: Option<Tensor<4>>) -> Result<Tensor<3>, KernelError> {
    let dims @ [b, t, d3] = qkv.dims();
    error::nonempty("attention_qkv", "qkv", &dims)?;
    if heads == 0 || d3 % (3 * heads) != 0 {
        return Err(KernelError::shape("attention_qkv", format!("qkv {dims:?} cannot be split into q, k, v of {heads} heads: the last dimension must be a multiple of 3·heads")));
    }
    check_bias("attention_qkv", bias.as_ref(), [b, heads, t])?;
    if let Some(bias) = &bias {
        error::same_kind("attention_qkv", &[("qkv", &qkv)], Some(("bias", bias)))?;
    }
    let out = <Dispatch as EmberKernels>::fused_attention_qkv(qkv.into_dispatch(), heads, ScoreBias::new(bias.map(Tensor::into_dispatch)));
    Ok(Tensor::from_dispatch(out))
}

fn check_bias(op: &'static str, bias: Option<&Tensor<4>>, [b, h, t]: [usize; 3]) -> Result<(), KernelError> {
    match bias.map(|bias| bias.dims()) {
        Some(s @ [bb, bh, bq, bk]) if !((bb == 1 || bb == b) && bh == h && bq == t && bk == t) => Err(KernelError::shape(op, format!("score bias {s:?} does not fit {b} sequences × {h} heads × {t} positions: expected [1 or {b}, {h}, {t}, {t}]"))),
        _ => Ok(()),
    }
}

/// LayerNorm as one op: hidden states `x [.., d]`, gain `gamma [d]`, optional `beta [d]`
/// (added after, a plain broadcast add) → same shape as `x`: `γ ⊙ (x − μ)/√(σ² + ε) + β` over
/// the last dimension, biased variance (as `burn::nn::LayerNorm`).
///
/// # Errors
/// If `gamma` (or `beta`) is not `[d]` for `x`'s last dimension `d`, `d` is 0, or the inputs
/// differ in dtype or device.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Option<Tensor<1>>, epsilon: f64) -> Result<Tensor<D>, KernelError> {
    let d = x.dims()[D - 1];
    for (name, p) in [("gamma", Some(&gamma)), ("beta", beta.as_ref())] {
        if let Some(p) = p {
            if p.dims() != [d] || d == 0 {
                return Err(KernelError::shape("layer_norm", format!("{name} {:?} for x {:?}: expected [{d}] (x's last dimension, at least 1)", p.dims(), x.dims())));
            }
            error::same_kind("layer_norm", &[("x", &x)], Some((name, p)))?;
        }
    }
    let y = Tensor::<D>::from_dispatch(<Dispatch as EmberKernels>::fused_layer_norm(x.into_dispatch(), gamma.into_dispatch(), epsilon));
    Ok(match beta {
        Some(beta) => y + beta.unsqueeze(),
        None => y,
    })
}

/// The log-probability of each row's target, the per-token term of the cross-entropy:
/// logits `z [N, V]` (the LM head's rows), targets `y [N]` (token ids) →
/// `log softmax(z_n)[y_n] = z_n[y_n] − logsumexp(z_n)`, `[N]`. One op with its analytic
/// backward `∂/∂z_n = e_{y_n} − softmax(z_n)` (only `logsumexp` is kept); one CubeCL kernel
/// per direction on the cubecl backends, Burn's ops elsewhere.
///
/// Targets must lie in `[0, V)`. They are not read back here (on a GPU that would wait for
/// the device every call): check them where they are made, as ember's data pipeline and
/// embedding lookups do.
///
/// # Errors
/// If `N` or `V` is 0, `targets` is not `[N]`, or the two are on different devices.
pub fn target_log_probs(logits: Tensor<2>, targets: Tensor<1, Int>) -> Result<Tensor<1>, KernelError> {
    let dims @ [n, _] = logits.dims();
    error::nonempty("target_log_probs", "logits", &dims)?;
    if targets.dims() != [n] {
        return Err(KernelError::shape("target_log_probs", format!("targets {:?} must be [N] = [{n}] for logits {dims:?}", targets.dims())));
    }
    if targets.device() != logits.device() {
        return Err(KernelError::Mixed { op: "target_log_probs", detail: format!("targets are on {:?} but logits on {:?}", targets.device(), logits.device()) });
    }
    Ok(Tensor::from_dispatch(<Dispatch as EmberKernels>::fused_target_log_probs(logits.into_dispatch(), targets.into_dispatch())))
}

/// Exact GELU as one op: pre-activations `x` (any shape, e.g. `[B, T, r·d]`) → `gelu(x)`,
/// same shape. The host kernel on flex in f32 (A&S 7.1.26 `erf`, |error| ≤ 1.5·10⁻⁷), Burn's
/// `erf`/`exp` elsewhere; the backward is the exact derivative on every backend.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as EmberKernels>::fused_gelu(x.into_dispatch()))
}

/// A linear layer as one op with its own backward: hidden states `x [.., d_in]` (e.g.
/// `[B, T, d_in]`), weight `w [d_in, d_out]` (any layout, e.g. the tied table's transpose),
/// optional bias `[d_out]` (a broadcast add after) → `[.., d_out]`, computed as one
/// `[rows, d_in] × [d_in, d_out]` product over all rows.
///
/// Empty inputs are fine: no rows (`x [0, d_in]`, `[B, 0, d_in]`) or `d_out = 0` give an
/// empty output, `d_in = 0` an all-zero product; their gradients are the empty or all-zero
/// tensors of the inputs' shapes (`dW = Xᵀ dY` over no rows is `[d_in, d_out]` of zeros),
/// written without a product on every backend.
///
/// # Errors
/// If `x`'s last dimension is not `d_in`, the bias is not `[d_out]`, or the inputs differ in
/// dtype or device.
pub fn linear<const D: usize>(x: Tensor<D>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Result<Tensor<D>, KernelError> {
    let dims = x.dims();
    let [d_in, d_out] = w.dims();
    if dims[D - 1] != d_in || bias.as_ref().is_some_and(|b| b.dims() != [d_out]) {
        return Err(KernelError::shape("linear", format!("x {dims:?} · weight {:?} (+ bias {:?}): x's last dimension must be the weight's rows, the bias [{d_out}]", w.dims(), bias.as_ref().map(|b| b.dims()))));
    }
    error::same_kind("linear", &[("x", &x)], Some(("weight", &w)))?;
    if let Some(b) = &bias {
        error::same_kind("linear", &[("x", &x)], Some(("bias", b)))?;
    }
    // Reshaped as primitives: `Tensor::reshape` (and `unsqueeze`) read a 0 in the new shape
    // as "keep this dimension", which turns an empty input's `[0, d_in]` into another shape.
    let reshape = |t: FloatTensor<Dispatch>, dims: &[usize]| Dispatch::float_reshape(t, Shape::from(dims.to_vec()));
    let rows = dims[..D - 1].iter().product();
    let y = <Dispatch as EmberKernels>::fused_linear(reshape(x.into_dispatch(), &[rows, d_in]), w.into_dispatch());
    let mut out = dims;
    out[D - 1] = d_out;
    let y = Tensor::<D>::from_dispatch(reshape(y, &out));
    Ok(match bias {
        Some(b) => {
            let mut row = [1; D];
            row[D - 1] = d_out;
            y + Tensor::<D>::from_dispatch(reshape(b.into_dispatch(), &row))
        }
        None => y,
    })
}

/// `Σ x²` over every element of `x` (any shape, e.g. a parameter's gradient) → `[1]`, as
/// one op (no `x²` tensor); not differentiable.
pub fn sum_of_squares<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as EmberKernels>::fused_sum_of_squares(x.into_dispatch()))
}
