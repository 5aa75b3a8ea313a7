//! Causal attention as one op: the plain composition (default bodies), the host kernel
//! (flex) and the autodiff node.
//!
//! Per batch row `b` and head `h`, with `Q, K, V [T, dh]` and `s = 1/√dh`:
//!
//! ```text
//! S = s·Q Kᵀ + bias,  S_ij = −∞ for j > i,  P = softmax_rows(S),  O = P V
//! dV = Pᵀ dO,  dP = dO Vᵀ,  dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik),  dQ = s·dS K,  dK = s·dSᵀ Q
//! ```
//!
//! (the softmax Jacobian `diag(p) − p pᵀ` applied row by row; references.md, "softmax
//! gradient"). `O` is written with heads merged, `ctx[b, i, h·dh + e] = O[i, e]`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use std::mem::MaybeUninit;

use burn::tensor::{DType, Shape, Slice, TensorData};
use rayon::prelude::*;

use crate::host::{all_of, contiguous, filled, max, mm, simd, sum, tensor, HostFloat, Mat, MatMut, OutPtr, View};
use crate::mask::causal_mask_values;
use crate::ops::{EmberKernels, ScoreBias};

/// Flex: the host kernel for f32/f64 when shapes and dtypes agree, the composition otherwise.
pub(crate) fn flex_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, bias: Option<FlexTensor>) -> (FlexTensor, FlexTensor) {
    let dims = q.shape();
    let host = (dims.num_dims() == 4 && k.shape() == dims && v.shape() == dims && bias.as_ref().is_none_or(|b| bias_fits(b, &dims))).then(|| q.dtype());
    let host = host.filter(|&dtype| all_of(dtype, &[&k, &v]) && bias.as_ref().is_none_or(|b| b.dtype() == dtype));
    match host {
        Some(DType::F32) => host_forward::<f32>(&q, &k, &v, bias.as_ref()),
        Some(DType::F64) => host_forward::<f64>(&q, &k, &v, bias.as_ref()),
        _ => compose_forward::<Flex>(q, k, v, bias),
    }
}

/// Flex backward: the host kernel for f32/f64 when shapes and dtypes agree, the
/// composition otherwise.
pub(crate) fn flex_backward(q: FlexTensor, k: FlexTensor, v: FlexTensor, probs: FlexTensor, dctx: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let dims = q.shape();
    let host = (dims.num_dims() == 4 && k.shape() == dims && v.shape() == dims && backward_fits(&dims, &probs, &dctx)).then(|| q.dtype());
    match host.filter(|&dtype| all_of(dtype, &[&k, &v, &probs, &dctx])) {
        Some(DType::F32) => host_backward::<f32>(&q, &k, &v, &probs, &dctx),
        Some(DType::F64) => host_backward::<f64>(&q, &k, &v, &probs, &dctx),
        _ => compose_backward::<Flex>(q, k, v, probs, dctx),
    }
}

/// Flex, attention from `qkv [B, T, 3d]`: the host kernel for f32/f64 on views of the three
/// column blocks when shapes and dtypes agree, the composition otherwise.
pub(crate) fn flex_qkv_forward(qkv: FlexTensor, heads: usize, bias: Option<FlexTensor>) -> (FlexTensor, FlexTensor) {
    fn run<T: HostFloat>(qkv: &FlexTensor, heads: usize, bias: Option<&FlexTensor>) -> (FlexTensor, FlexTensor) {
        let [q, k, v] = [0, 1, 2].map(|part| View::part(qkv, heads, part));
        forward_views::<T>(q, k, v, bias.map(|bias| View::of(bias, None)))
    }
    let host = qkv_dims(&qkv, heads).filter(|dims| bias.as_ref().is_none_or(|b| bias_fits(b, &Shape::new(*dims) ) && b.dtype() == qkv.dtype()));
    match host.map(|_| qkv.dtype()) {
        Some(DType::F32) => run::<f32>(&qkv, heads, bias.as_ref()),
        Some(DType::F64) => run::<f64>(&qkv, heads, bias.as_ref()),
        _ => {
            let [q, k, v] = split_qkv::<Flex>(qkv, heads);
            compose_forward::<Flex>(q, k, v, bias)
        }
    }
}

/// Flex, the backward of [`flex_qkv_forward`]: `dqkv [B, T, 3d]`, each block written once.
pub(crate) fn flex_qkv_backward(qkv: FlexTensor, probs: FlexTensor, dctx: FlexTensor, heads: usize) -> FlexTensor {
    fn run<T: HostFloat>(qkv: &FlexTensor, probs: &FlexTensor, dctx: &FlexTensor, heads: usize) -> FlexTensor {
        let [b, t, d3] = qkv.shape().dims::<3>();
        let d = d3 / 3;
        let views = [0, 1, 2].map(|part| View::part(qkv, heads, part));
        let fill = |slots: &mut [MaybeUninit<T>]| {
            let ptr = OutPtr::new(slots);
            let out = GradOut { ptrs: [ptr; 3], offsets: [0, d, 2 * d], strides: [t * d3, d / heads, d3] };
            backward_views(views, &contiguous::<T>(probs), View::of(dctx, Some(heads)), &out);
        };
        // SAFETY: for every (b, h), the three blocks (columns p·d + h·dh.., each t × dh with
        // row stride 3d) are written in full by `backward_views`; over all (b, h) and p they
        // cover the b·t·3d slots exactly once.
        tensor(unsafe { filled(b * t * d3, fill) }, [b, t, d3])
    }
    let host = qkv_dims(&qkv, heads).filter(|dims| backward_fits(&Shape::new(*dims), &probs, &dctx) && all_of(qkv.dtype(), &[&probs, &dctx]));
    match host.map(|_| qkv.dtype()) {
        Some(DType::F32) => run::<f32>(&qkv, &probs, &dctx, heads),
        Some(DType::F64) => run::<f64>(&qkv, &probs, &dctx, heads),
        _ => {
            let [q, k, v] = split_qkv::<Flex>(qkv, heads);
            let (dq, dk, dv) = compose_backward::<Flex>(q, k, v, probs, dctx);
            merge_qkv::<Flex>([dq, dk, dv])
        }
    }
}

/// `[B, H, T, dh]` of `qkv [B, T, 3·H·dh]` with `heads` = `H > 0`, if it has that shape.
fn qkv_dims(qkv: &FlexTensor, heads: usize) -> Option<[usize; 4]> {
    let s = qkv.shape();
    (s.num_dims() == 3 && heads > 0 && s[2] % (3 * heads) == 0).then(|| [s[0], heads, s[1], s[2] / 3 / heads])
}

/// Whether `bias` is `[1 or B, H, T, T]` for `q [B, H, T, dh]`.
fn bias_fits(bias: &FlexTensor, q: &Shape) -> bool {
    let s = bias.shape();
    s.num_dims() == 4 && (s[0] == 1 || s[0] == q[0]) && s[1] == q[1] && s[2] == q[2] && s[3] == q[2]
}

/// Whether `probs [B, H, T, T]` and `dctx [B, T, H·dh]` fit `q [B, H, T, dh]`.
fn backward_fits(q: &Shape, probs: &FlexTensor, dctx: &FlexTensor) -> bool {
    let (b, h, t, dh) = (q[0], q[1], q[2], q[3]);
    probs.shape() == Shape::new([b, h, t, t]) && dctx.shape() == Shape::new([b, t, h * dh])
}

/// `qkv [B, T, 3d]` → `[q, k, v]`, each `[B, H, T, dh]` (views where the backend allows).
pub(crate) fn split_qkv<B: Backend>(qkv: FloatTensor<B>, heads: usize) -> [FloatTensor<B>; 3] {
    let [b, t, d3] = qkv.shape().dims::<3>();
    let d = d3 / 3;
    [0, 1, 2].map(|part| {
        let block = B::float_slice(qkv.clone(), &[Slice::from(0..b), Slice::from(0..t), Slice::from(part * d..(part + 1) * d)]);
        B::float_swap_dims(B::float_reshape(block, Shape::new([b, t, heads, d / heads])), 1, 2)
    })
}

/// `[dq, dk, dv]`, each `[B, H, T, dh]` → `[B, T, 3d]` (the inverse of [`split_qkv`]).
pub(crate) fn merge_qkv<B: Backend>(parts: [FloatTensor<B>; 3]) -> FloatTensor<B> {
    let [b, h, t, dh] = parts[0].shape().dims::<4>();
    let parts = parts.map(|p| B::float_reshape(B::float_swap_dims(p, 1, 2), Shape::new([b, t, h * dh])));
    B::float_cat(parts.into(), 2)
}

/// The autodiff node of attention from `qkv`: parent `qkv`, state `(qkv, probs)`; the bias
/// is a constant.
pub(crate) fn autodiff_qkv<B: Backend + EmberKernels, C: CheckpointStrategy>(
    qkv: FloatTensor<Autodiff<B, C>>,
    heads: usize,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct AttentionQkvBackward {
        heads: usize,
    }

    impl<B: Backend + EmberKernels> Backward<B, 1> for AttentionQkvBackward {
        /// `(qkv, probs)`.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node] = ops.parents;
            let dctx = grads.consume::<B>(&ops.node);
            let (qkv, probs) = ops.state;
            if let Some(node) = node {
                grads.register::<B>(node.id, B::fused_attention_qkv_backward(qkv, probs, dctx, self.heads));
            }
        }
    }

    let bias = ScoreBias::new(bias.map(|b| b.into_primitive()));
    match (AttentionQkvBackward { heads }).prepare::<C>([qkv.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let qkv = qkv.into_primitive();
            let (ctx, probs) = B::fused_attention_qkv_forward(qkv.clone(), heads, bias);
            prep.finish((qkv, probs), ctx)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_attention_qkv_forward(qkv.into_primitive(), heads, bias).0),
    }
}

/// The autodiff node: parents `q, k, v`, state `(q, k, v, probs)`; the bias is a constant.
pub(crate) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(
    q: FloatTensor<Autodiff<B, C>>,
    k: FloatTensor<Autodiff<B, C>>,
    v: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct AttentionBackward;

    impl<B: Backend + EmberKernels> Backward<B, 3> for AttentionBackward {
        /// `(q, k, v, probs)`.
        type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_q, node_k, node_v] = ops.parents;
            let dctx = grads.consume::<B>(&ops.node);
            let (q, k, v, probs) = ops.state;
            let (dq, dk, dv) = B::fused_attention_backward(q, k, v, probs, dctx);
            for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    let bias = bias.map(|b| b.into_primitive()); // a constant: no gradient flows to it
    match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
            let (ctx, probs) = B::fused_attention_forward(q.clone(), k.clone(), v.clone(), ScoreBias::new(bias));
            prep.finish((q, k, v, probs), ctx)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_attention_forward(q.into_primitive(), k.into_primitive(), v.into_primitive(), ScoreBias::new(bias)).0),
    }
}

/// The forward as a composition of Burn primitives (ndarray, cubecl, and dtypes the host
/// kernel does not take): `(ctx [B, T, H·dh], probs [B, H, T, T])`.
pub(crate) fn compose_forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [b, h, t, dh] = q.shape().dims::<4>();
    let device = q.device();
    let scores = B::float_mul_scalar(B::float_matmul(q, B::float_swap_dims(k, 2, 3)), (1.0 / (dh as f64).sqrt()).into());
    let scores = match bias {
        Some(bias) => B::float_add(scores, bias),
        None => scores,
    };
    // The causal mask (crate::mask) as an additive −∞ in the scores' dtype.
    let future: Vec<f64> = causal_mask_values(t, t).into_iter().map(|m| if m { f64::NEG_INFINITY } else { 0.0 }).collect();
    let mask = B::float_from_data(TensorData::new(future, [1, 1, t, t]).convert_dtype(scores.dtype()), &device);
    let scores = B::float_add(scores, B::float_expand(mask, Shape::new([b, h, t, t])));
    // Every row keeps its diagonal, so its max is finite and its sum ≥ 1.
    let max = B::float_max_dim(scores.clone(), 3);
    let exp = B::float_exp(B::float_sub(scores, max));
    let probs = B::float_div(exp.clone(), B::float_sum_dim(exp, 3));
    let ctx = B::float_matmul(probs.clone(), v); // [B, H, T, dh]
    let ctx = B::float_reshape(B::float_swap_dims(ctx, 1, 2), Shape::new([b, t, h * dh]));
    (ctx, probs)
}

/// The backward as a composition of Burn primitives (formulas in the module docs).
pub(crate) fn compose_backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    probs: FloatTensor<B>,
    dctx: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [b, h, t, dh] = q.shape().dims::<4>();
    let scale = 1.0 / (dh as f64).sqrt();
    let d_out = B::float_swap_dims(B::float_reshape(dctx, Shape::new([b, t, h, dh])), 1, 2); // [B, H, T, dh]
    let dv = B::float_matmul(B::float_swap_dims(probs.clone(), 2, 3), d_out.clone());
    let dp = B::float_matmul(d_out, B::float_swap_dims(v, 2, 3));
    let row = B::float_sum_dim(B::float_mul(probs.clone(), dp.clone()), 3);
    let ds = B::float_mul_scalar(B::float_mul(probs, B::float_sub(dp, row)), scale.into());
    let dq = B::float_matmul(ds.clone(), k);
    let dk = B::float_matmul(B::float_swap_dims(ds, 2, 3), q);
    (dq, dk, dv)
}

/// Where the backward writes `dq, dk, dv`: output slots for each (one buffer may serve
/// all three), the offset of each gradient's `[0, 0, 0, 0]` element in its slots and the
/// element strides of the batch, head and time axes (the head-dim axis is contiguous).
struct GradOut<'a, T> {
    ptrs: [OutPtr<'a, T>; 3],
    offsets: [usize; 3],
    strides: [usize; 3],
}

/// Requires (checked by [`flex_forward`]): `q, k, v [B, H, T, dh]`, optional bias
/// `[1 or B, H, T, T]`, one dtype `T` (a view or index outside a tensor panics, never reads).
fn host_forward<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, bias: Option<&FlexTensor>) -> (FlexTensor, FlexTensor) {
    forward_views::<T>(View::of(q, None), View::of(k, None), View::of(v, None), bias.map(|bias| View::of(bias, None)))
}

/// Requires (checked by [`flex_backward`]): `q, k, v [B, H, T, dh]`, `probs [B, H, T, T]`,
/// `dctx [B, T, H·dh]`, one dtype `T`.
fn host_backward<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, probs: &FlexTensor, dctx: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let views = [View::of(q, None), View::of(k, None), View::of(v, None)];
    let [b, h, t, dh] = views[0].dims();
    let n = b * h * t * dh;
    let mut bufs: [Vec<T>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
    {
        let ptrs = bufs.each_mut().map(|buf| OutPtr::new(&mut buf.spare_capacity_mut()[..n]));
        let out = GradOut { ptrs, offsets: [0; 3], strides: [h * t * dh, t * dh, dh] };
        backward_views(views, &contiguous::<T>(probs), View::of(dctx, Some(h)), &out);
    }
    let [dq, dk, dv] = bufs.map(|mut buf| {
        // SAFETY: `backward_views` wrote every (b, h) block of each gradient in full (t × dh
        // contiguous slots at (b·H + h)·t·dh), and those blocks cover all n slots.
        unsafe { buf.set_len(n) };
        tensor(buf, [b, h, t, dh])
    });
    (dq, dk, dv)
}

/// The forward on views `q, k, v [B, H, T, dh]`, `bias [1 or B, H, T, T]`:
/// `(ctx [B, T, H·dh], probs [B, H, T, T])`. A view whose shape disagrees panics (an index
/// or matrix outside it), never reads out of bounds.
fn forward_views<T: HostFloat>(qv: View<T>, kv: View<T>, vv: View<T>, bv: Option<View<T>>) -> (FlexTensor, FlexTensor) {
    let [b, h, t, dh] = qv.dims();
    let scale = T::from_f64(1.0 / (dh as f64).sqrt());
    let (nc, np) = (b * t * h * dh, b * h * t * t);
    let (mut ctx, mut probs) = (Vec::<T>::with_capacity(nc), Vec::<T>::with_capacity(np));
    {
        let out = OutPtr::new(&mut ctx.spare_capacity_mut()[..nc]);
        probs.spare_capacity_mut()[..np].par_chunks_mut(t * t).enumerate().for_each(|(bh, slots)| {
            let (bi, hi) = (bh / h, bh % h);
            // P ← s·Q Kᵀ
            mm(MatMut::of(&mut *slots, t, t), qv.matrix(bi, hi), kv.matrix(bi, hi).t(), scale, gemm::Parallelism::None);
            // SAFETY: the gemm initialised all t·t slots of this task's block, which this task
            // borrows uniquely (`par_chunks_mut`); `[MaybeUninit<T>]` and `[T]` share a layout.
            let p = unsafe { &mut *(slots as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
            let bias = bv.map(|bv| bv.matrix(if bv.dims()[0] == 1 { 0 } else { bi }, hi));
            softmax_rows(p, t, bias);
            // SAFETY: this task's O block of ctx — rows (bi, ·), columns hi·dh..(hi+1)·dh — is
            // written by this task only (disjoint from every other (b, h)).
            let o = unsafe { out.mat(bi * t * h * dh + hi * dh, [t, dh], [(h * dh) as isize, 1]) };
            mm(o, Mat::rows(p, t, t), vv.matrix(bi, hi), T::ONE, gemm::Parallelism::None);
        });
    }
    // SAFETY: every task wrote its t·t block of probs (gemm, then the softmax in place) and
    // its t × dh block of ctx (gemm); the b·h tasks' blocks cover both buffers.
    unsafe {
        ctx.set_len(nc);
        probs.set_len(np);
    }
    (tensor(ctx, [b, t, h * dh]), tensor(probs, [b, h, t, t]))
}

/// Row `i` of the scores `p [T, T]` (+ `bias [T, T]`) → the causal softmax: entries
/// `0..=i` normalised, the rest zero.
fn softmax_rows<T: HostFloat>(p: &mut [T], t: usize, bias: Option<Mat<T>>) {
    assert!(p.len() == t * t && bias.is_none_or(|m| m.shape() == [t, t]), "attention: {} scores, bias {:?}, {t} positions", p.len(), bias.map(|m| m.shape()));
    simd(#[inline(always)] || {
        for i in 0..t {
            let (row, masked) = p[i * t..(i + 1) * t].split_at_mut(i + 1);
            if let Some(bias) = &bias {
                for (j, s) in row.iter_mut().enumerate() {
                    *s = s.add(bias.at(i, j));
                }
            }
            let m = max(row);
            for s in row.iter_mut() {
                *s = s.sub(m).exp_nonpositive();
            }
            let inv = T::ONE.div(sum(row));
            for s in row.iter_mut() {
                *s = s.mul(inv);
            }
            masked.fill(T::ZERO);
        }
    });
}

/// The backward on views `q, k, v [B, H, T, dh]`, `dO [B, H, T, dh]` (of `dctx`), writing
/// `dq, dk, dv` where `out` says (every element of each). `probs`: the forward's
/// `[B, H, T, T]`, row-major.
fn backward_views<T: HostFloat>([qv, kv, vv]: [View<T>; 3], probs: &[T], dov: View<T>, out: &GradOut<T>) {
    let [b, h, t, dh] = qv.dims();
    assert!(kv.dims() == qv.dims() && vv.dims() == qv.dims() && dov.dims() == qv.dims() && probs.len() == b * h * t * t, "attention backward: q {:?}, k {:?}, v {:?}, dO {:?}, {} probabilities", qv.dims(), kv.dims(), vv.dims(), dov.dims(), probs.len());
    let scale = T::from_f64(1.0 / (dh as f64).sqrt());
    (0..b * h).into_par_iter().for_each(|bh| {
        let (bi, hi) = (bh / h, bh % h);
        let [sb, sh, st] = out.strides;
        // SAFETY: the (bi, hi) block of gradient g — t × dh at offsets[g] + bi·sb + hi·sh, row
        // stride st — is written by this task only (disjoint from every other (b, h) and g).
        let grad = |g: usize| unsafe { out.ptrs[g].mat(out.offsets[g] + bi * sb + hi * sh, [t, dh], [st as isize, 1]) };
        let p = Mat::rows(&probs[bh * t * t..(bh + 1) * t * t], t, t);
        let (d_o, v, k, q) = (dov.matrix(bi, hi), vv.matrix(bi, hi), kv.matrix(bi, hi), qv.matrix(bi, hi));
        // dV = Pᵀ dO
        mm(grad(2), p.t(), d_o, T::ONE, gemm::Parallelism::None);
        // dP = dO Vᵀ
        let mut ds = vec![T::ZERO; t * t];
        mm(MatMut::of_init(&mut ds, t, t), d_o, v.t(), T::ONE, gemm::Parallelism::None);
        let probs = &probs[bh * t * t..(bh + 1) * t * t];
        simd(#[inline(always)] || {
            for i in 0..t {
                // dS_ij = s·P_ij (dP_ij − Σ_k P_ik dP_ik), zero above the diagonal.
                let (d, masked) = ds[i * t..(i + 1) * t].split_at_mut(i + 1);
                let p = &probs[i * t..][..i + 1];
                for (d, &p) in d.iter_mut().zip(p) {
                    *d = p.mul(*d);
                }
                let dot = sum(d);
                for (d, &p) in d.iter_mut().zip(p) {
                    *d = d.sub(p.mul(dot)).mul(scale);
                }
                masked.fill(T::ZERO);
            }
        });
        // dQ = s·dS K,  dK = s·dSᵀ Q (the scale is folded into dS)
        let ds = Mat::rows(&ds, t, t);
        mm(grad(0), ds, k, T::ONE, gemm::Parallelism::None);
        mm(grad(1), ds.t(), q, T::ONE, gemm::Parallelism::None);
    });
}
