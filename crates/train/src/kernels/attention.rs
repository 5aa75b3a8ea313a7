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
use burn::tensor::{DType, Shape, Slice, TensorData};
use rayon::prelude::*;

use super::host::{contiguous, max, mm, simd, sum, HostFloat, OutPtr, View};
use super::{EmberKernels, ScoreBias};

/// Flex: the host kernel for f32/f64, the composition otherwise.
pub(super) fn flex_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, bias: Option<FlexTensor>) -> (FlexTensor, FlexTensor) {
    match q.dtype() {
        DType::F32 => host_forward::<f32>(&q, &k, &v, bias.as_ref()),
        DType::F64 => host_forward::<f64>(&q, &k, &v, bias.as_ref()),
        _ => compose_forward::<Flex>(q, k, v, bias),
    }
}

/// Flex backward: the host kernel for f32/f64, the composition otherwise.
pub(super) fn flex_backward(q: FlexTensor, k: FlexTensor, v: FlexTensor, probs: FlexTensor, dctx: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    match q.dtype() {
        DType::F32 => host_backward::<f32>(&q, &k, &v, &probs, &dctx),
        DType::F64 => host_backward::<f64>(&q, &k, &v, &probs, &dctx),
        _ => compose_backward::<Flex>(q, k, v, probs, dctx),
    }
}

/// Flex, attention from `qkv [B, T, 3d]`: the host kernel for f32/f64 on views of the three
/// column blocks, the composition otherwise.
pub(super) fn flex_qkv_forward(qkv: FlexTensor, heads: usize, bias: Option<FlexTensor>) -> (FlexTensor, FlexTensor) {
    fn run<T: HostFloat>(qkv: &FlexTensor, heads: usize, bias: Option<&FlexTensor>) -> (FlexTensor, FlexTensor) {
        let [b, t, d3] = qkv.shape().dims::<3>();
        let dims = [b, heads, t, d3 / 3 / heads];
        forward_views::<T>(dims, View::part(qkv, heads, 0), View::part(qkv, heads, 1), View::part(qkv, heads, 2), bias.map(|bias| View::of(bias, None)))
    }
    match qkv.dtype() {
        DType::F32 => run::<f32>(&qkv, heads, bias.as_ref()),
        DType::F64 => run::<f64>(&qkv, heads, bias.as_ref()),
        _ => {
            let [q, k, v] = split_qkv::<Flex>(qkv, heads);
            compose_forward::<Flex>(q, k, v, bias)
        }
    }
}

/// Flex, the backward of [`flex_qkv_forward`]: `dqkv [B, T, 3d]`, each block written once.
pub(super) fn flex_qkv_backward(qkv: FlexTensor, probs: FlexTensor, dctx: FlexTensor, heads: usize) -> FlexTensor {
    fn run<T: HostFloat>(qkv: &FlexTensor, probs: &FlexTensor, dctx: &FlexTensor, heads: usize) -> FlexTensor {
        let [b, t, d3] = qkv.shape().dims::<3>();
        let (d, n) = (d3 / 3, b * t * d3);
        let dims = [b, heads, t, d / heads];
        let mut buf = Vec::<T>::with_capacity(n);
        let base = buf.as_mut_ptr();
        // SAFETY: the three offsets are inside the n-element buffer.
        let ptrs = [0, d, 2 * d].map(|off| OutPtr(unsafe { base.add(off) }));
        let out = GradOut { ptrs, strides: [t * d3, d / heads, d3] };
        let views = [0, 1, 2].map(|part| View::part(qkv, heads, part));
        backward_views(dims, views, &contiguous::<T>(probs), View::of(dctx, Some(heads)), &out);
        // SAFETY: the three blocks of every (b, h) cover all n elements.
        unsafe { buf.set_len(n) };
        FlexTensor::from_data(TensorData::new(buf, [b, t, d3]))
    }
    match qkv.dtype() {
        DType::F32 => run::<f32>(&qkv, &probs, &dctx, heads),
        DType::F64 => run::<f64>(&qkv, &probs, &dctx, heads),
        _ => {
            let [q, k, v] = split_qkv::<Flex>(qkv, heads);
            let (dq, dk, dv) = compose_backward::<Flex>(q, k, v, probs, dctx);
            merge_qkv::<Flex>([dq, dk, dv])
        }
    }
}

/// `qkv [B, T, 3d]` → `[q, k, v]`, each `[B, H, T, dh]` (views where the backend allows).
pub(super) fn split_qkv<B: Backend>(qkv: FloatTensor<B>, heads: usize) -> [FloatTensor<B>; 3] {
    let [b, t, d3] = qkv.shape().dims::<3>();
    let d = d3 / 3;
    [0, 1, 2].map(|part| {
        let block = B::float_slice(qkv.clone(), &[Slice::from(0..b), Slice::from(0..t), Slice::from(part * d..(part + 1) * d)]);
        B::float_swap_dims(B::float_reshape(block, Shape::new([b, t, heads, d / heads])), 1, 2)
    })
}

/// `[dq, dk, dv]`, each `[B, H, T, dh]` → `[B, T, 3d]` (the inverse of [`split_qkv`]).
pub(super) fn merge_qkv<B: Backend>(parts: [FloatTensor<B>; 3]) -> FloatTensor<B> {
    let [b, h, t, dh] = parts[0].shape().dims::<4>();
    let parts = parts.map(|p| B::float_reshape(B::float_swap_dims(p, 1, 2), Shape::new([b, t, h * dh])));
    B::float_cat(parts.into(), 2)
}

/// The autodiff node of attention from `qkv`: parent `qkv`, state `(qkv, probs)`; the bias
/// is a constant.
pub(super) fn autodiff_qkv<B: Backend + EmberKernels, C: CheckpointStrategy>(
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
                grads.register::<B>(node.id, B::attention_qkv_backward(qkv, probs, dctx, self.heads));
            }
        }
    }

    let bias = ScoreBias::new(bias.map(|b| b.into_primitive()));
    match (AttentionQkvBackward { heads }).prepare::<C>([qkv.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let qkv = qkv.into_primitive();
            let (ctx, probs) = B::attention_qkv_forward(qkv.clone(), heads, bias);
            prep.finish((qkv, probs), ctx)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::attention_qkv_forward(qkv.into_primitive(), heads, bias).0),
    }
}

/// The autodiff node: parents `q, k, v`, state `(q, k, v, probs)`; the bias is a constant.
pub(super) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(
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
            let (dq, dk, dv) = B::attention_backward(q, k, v, probs, dctx);
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
            let (ctx, probs) = B::attention_forward(q.clone(), k.clone(), v.clone(), ScoreBias::new(bias));
            prep.finish((q, k, v, probs), ctx)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::attention_forward(q.into_primitive(), k.into_primitive(), v.into_primitive(), ScoreBias::new(bias)).0),
    }
}

/// The forward as a composition of Burn primitives (ndarray, cubecl, and dtypes the host
/// kernel does not take): `(ctx [B, T, H·dh], probs [B, H, T, T])`.
pub(super) fn compose_forward<B: Backend>(
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
    // The causal mask as an additive −∞ above the diagonal, in the scores' dtype.
    let future: Vec<f64> = (0..t * t).map(|n| if n % t > n / t { f64::NEG_INFINITY } else { 0.0 }).collect();
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
pub(super) fn compose_backward<B: Backend>(
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

/// The `[B, H, T, dh]` shape of `q` and its views; with `qkv [B, T, 3d]`, the three parts.
fn views<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor) -> ([usize; 4], [View<T>; 3]) {
    (q.shape().dims::<4>(), [View::of(q, None), View::of(k, None), View::of(v, None)])
}

/// Where the backward writes `dq, dk, dv`: a base pointer each and the element strides of
/// the batch, head and time axes (the head-dim axis is contiguous).
struct GradOut<T> {
    ptrs: [OutPtr<T>; 3],
    strides: [usize; 3],
}

fn host_forward<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, bias: Option<&FlexTensor>) -> (FlexTensor, FlexTensor) {
    let (dims, [qv, kv, vv]) = views::<T>(q, k, v);
    forward_views(dims, qv, kv, vv, bias.map(|bias| View::of(bias, None)))
}

fn host_backward<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, probs: &FlexTensor, dctx: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (dims @ [b, h, t, dh], [qv, kv, vv]) = views::<T>(q, k, v);
    let n = b * h * t * dh;
    let mut bufs = [Vec::<T>::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
    let out = GradOut { ptrs: bufs.each_mut().map(|b| OutPtr(b.as_mut_ptr())), strides: [h * t * dh, t * dh, dh] };
    backward_views(dims, [qv, kv, vv], &contiguous::<T>(probs), View::of(dctx, Some(h)), &out);
    let [dq, dk, dv] = bufs.map(|mut buf| {
        // SAFETY: `backward_views` wrote all `n` elements (every (b, h) block, in full).
        unsafe { buf.set_len(n) };
        FlexTensor::from_data(TensorData::new(buf, [b, h, t, dh]))
    });
    (dq, dk, dv)
}

/// The forward on views: `(ctx [B, T, H·dh], probs [B, H, T, T])`.
fn forward_views<T: HostFloat>([b, h, t, dh]: [usize; 4], qv: View<T>, kv: View<T>, vv: View<T>, bv: Option<View<T>>) -> (FlexTensor, FlexTensor) {
    let scale = T::from_f64(1.0 / (dh as f64).sqrt());
    let mut probs = Vec::<T>::with_capacity(b * h * t * t);
    let mut ctx = Vec::<T>::with_capacity(b * t * h * dh);
    let (out, pout) = (OutPtr(ctx.as_mut_ptr()), OutPtr(probs.as_mut_ptr()));
    (0..b * h).into_par_iter().for_each(|bh| {
        let (bi, hi) = (bh / h, bh % h);
        let (out, pout) = (out, pout);
        // SAFETY: every matrix lies inside its tensor; this task writes only its own P block
        // (all t² entries, by the gemm) and its own O block of ctx.
        let p = unsafe {
            let p = pout.0.add(bh * t * t);
            // P ← s·Q Kᵀ
            let (kp, krs, kcs) = kv.matrix(bi, hi);
            mm(t, t, dh, (p, t as isize, 1), qv.matrix(bi, hi), (kp, kcs, krs), scale, gemm::Parallelism::None);
            std::slice::from_raw_parts_mut(p, t * t)
        };
        simd(#[inline(always)] || {
            for i in 0..t {
                let (row, masked) = p[i * t..(i + 1) * t].split_at_mut(i + 1);
                if let Some(bv) = &bv {
                    let (bp, brs, bcs) = bv.matrix(bi, hi);
                    for (j, s) in row.iter_mut().enumerate() {
                        // SAFETY: (i, j) is inside the bias matrix.
                        *s = s.add(unsafe { *bp.offset(i as isize * brs + j as isize * bcs) });
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
        // SAFETY: this task's O block of ctx: rows (bi, ·), columns hi·dh..(hi+1)·dh.
        unsafe {
            let o = out.0.add(bi * t * h * dh + hi * dh);
            mm(t, dh, t, (o, (h * dh) as isize, 1), (p.as_ptr(), t as isize, 1), vv.matrix(bi, hi), T::ONE, gemm::Parallelism::None);
        }
    });
    // SAFETY: the loop wrote every element of both (all (b, h) blocks, each in full).
    unsafe {
        probs.set_len(b * h * t * t);
        ctx.set_len(b * t * h * dh);
    }
    (FlexTensor::from_data(TensorData::new(ctx, [b, t, h * dh])), FlexTensor::from_data(TensorData::new(probs, [b, h, t, t])))
}

/// The backward on views, writing `dq, dk, dv` where `out` says (every element of each).
/// `probs`: the forward's `[B, H, T, T]`, row-major.
fn backward_views<T: HostFloat>([b, h, t, dh]: [usize; 4], [qv, kv, vv]: [View<T>; 3], probs: &[T], dov: View<T>, out: &GradOut<T>) {
    let scale = T::from_f64(1.0 / (dh as f64).sqrt());
    (0..b * h).into_par_iter().for_each(|bh| {
        let (bi, hi) = (bh / h, bh % h);
        let at = |g: usize| {
            let [sb, sh, _] = out.strides;
            // SAFETY: (bi, hi) is inside the output's shape.
            unsafe { out.ptrs[g].0.add(bi * sb + hi * sh) }
        };
        let row = out.strides[2] as isize;
        let (dq, dk, dv) = (at(0), at(1), at(2));
        let (pp, prs, pcs) = (probs[bh * t * t..].as_ptr(), t as isize, 1);
        let (op, ors, ocs) = dov.matrix(bi, hi);
        let (vp, vrs, vcs) = vv.matrix(bi, hi);
        let (kp, krs, kcs) = kv.matrix(bi, hi);
        let (qp, qrs, qcs) = qv.matrix(bi, hi);
        let mut ds = vec![T::ZERO; t * t];
        // SAFETY: every matrix lies inside its tensor, this task's output blocks or `ds`.
        unsafe {
            // dV = Pᵀ dO
            mm(t, dh, t, (dv, row, 1), (pp, pcs, prs), (op, ors, ocs), T::ONE, gemm::Parallelism::None);
            // dP = dO Vᵀ
            mm(t, t, dh, (ds.as_mut_ptr(), t as isize, 1), (op, ors, ocs), (vp, vcs, vrs), T::ONE, gemm::Parallelism::None);
            simd(#[inline(always)] || {
                for i in 0..t {
                    // dS_ij = s·P_ij (dP_ij − Σ_k P_ik dP_ik), zero above the diagonal.
                    let (d, masked) = ds[i * t..(i + 1) * t].split_at_mut(i + 1);
                    let p = &probs[bh * t * t + i * t..][..i + 1];
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
            mm(t, dh, t, (dq, row, 1), (ds.as_ptr(), t as isize, 1), (kp, krs, kcs), T::ONE, gemm::Parallelism::None);
            mm(t, dh, t, (dk, row, 1), (ds.as_ptr(), 1, t as isize), (qp, qrs, qcs), T::ONE, gemm::Parallelism::None);
        }
    });
}
