//! The flex host kernel of attention: per (batch row, head) task, `gemm` on strided views
//! of `q, k, v` (or of the three column blocks of `qkv`), the causal softmax in SIMD lanes,
//! and the backward writing `dq, dk, dv` (and `dS` for a trainable bias) into disjoint blocks.

use std::mem::MaybeUninit;

use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::TensorMetadata;
use burn::tensor::{DType, Shape};
use rayon::prelude::*;

use super::{compose_backward, compose_forward, merge_qkv, split_qkv};
use crate::host::{all_of, contiguous, filled, max, mm, simd, sum, tensor, HostFloat, Mat, MatMut, OutPtr, View};

/// Flex: the host kernel for f32/f64 when shapes and dtypes agree, the composition otherwise.
pub(crate) fn flex_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, bias: Option<FlexTensor>) -> (FlexTensor, FlexTensor) {
    let dims = q.shape();
    let host = (dims.num_dims() == 4 && dims.num_elements() > 0 && k.shape() == dims && v.shape() == dims && bias.as_ref().is_none_or(|b| bias_fits(b, &dims))).then(|| q.dtype());
    let host = host.filter(|&dtype| all_of(dtype, &[&k, &v]) && bias.as_ref().is_none_or(|b| b.dtype() == dtype));
    match host {
        Some(DType::F32) => host_forward::<f32>(&q, &k, &v, bias.as_ref()),
        Some(DType::F64) => host_forward::<f64>(&q, &k, &v, bias.as_ref()),
        _ => compose_forward::<Flex>(q, k, v, bias),
    }
}

/// Flex backward: the host kernel for f32/f64 when shapes and dtypes agree, the
/// composition otherwise: `(dq, dk, dv)` and, when `scores`, `dS [B, H, T, T]`.
pub(crate) fn flex_backward(q: FlexTensor, k: FlexTensor, v: FlexTensor, probs: FlexTensor, dctx: FlexTensor, scores: bool) -> (FlexTensor, FlexTensor, FlexTensor, Option<FlexTensor>) {
    let dims = q.shape();
    let host = (dims.num_dims() == 4 && dims.num_elements() > 0 && k.shape() == dims && v.shape() == dims && backward_fits(&dims, &probs, &dctx)).then(|| q.dtype());
    match host.filter(|&dtype| all_of(dtype, &[&k, &v, &probs, &dctx])) {
        Some(DType::F32) => host_backward::<f32>(&q, &k, &v, &probs, &dctx, scores),
        Some(DType::F64) => host_backward::<f64>(&q, &k, &v, &probs, &dctx, scores),
        _ => {
            let (dq, dk, dv, ds) = compose_backward::<Flex>(q, k, v, probs, dctx);
            (dq, dk, dv, scores.then_some(ds))
        }
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

/// Flex, the backward of [`flex_qkv_forward`]: `dqkv [B, T, 3d]`, each block written once,
/// and, when `scores`, `dS [B, H, T, T]`.
pub(crate) fn flex_qkv_backward(qkv: FlexTensor, probs: FlexTensor, dctx: FlexTensor, heads: usize, scores: bool) -> (FlexTensor, Option<FlexTensor>) {
    fn run<T: HostFloat>(qkv: &FlexTensor, probs: &FlexTensor, dctx: &FlexTensor, heads: usize, scores: bool) -> (FlexTensor, Option<FlexTensor>) {
        let [b, t, d3] = qkv.shape().dims::<3>();
        let d = d3 / 3;
        let views = [0, 1, 2].map(|part| View::part(qkv, heads, part));
        let mut ds = ScoreGrad::new(scores, [b, heads, t]);
        let fill = |slots: &mut [MaybeUninit<T>]| {
            let ptr = OutPtr::new(slots);
            let out = GradOut { ptrs: [ptr; 3], offsets: [0, d, 2 * d], strides: [t * d3, d / heads, d3], scores: ds.slots() };
            backward_views(views, &contiguous::<T>(probs), View::of(dctx, Some(heads)), &out);
        };
        // SAFETY: for every (b, h), the three blocks (columns p·d + h·dh.., each t × dh with
        // row stride 3d) are written in full by `backward_views`; over all (b, h) and p they
        // cover the b·t·3d slots exactly once.
        let dqkv = tensor(unsafe { filled(b * t * d3, fill) }, [b, t, d3]);
        (dqkv, ds.finish())
    }
    let host = qkv_dims(&qkv, heads).filter(|dims| backward_fits(&Shape::new(*dims), &probs, &dctx) && all_of(qkv.dtype(), &[&probs, &dctx]));
    match host.map(|_| qkv.dtype()) {
        Some(DType::F32) => run::<f32>(&qkv, &probs, &dctx, heads, scores),
        Some(DType::F64) => run::<f64>(&qkv, &probs, &dctx, heads, scores),
        _ => {
            let [q, k, v] = split_qkv::<Flex>(qkv, heads);
            let (dq, dk, dv, ds) = compose_backward::<Flex>(q, k, v, probs, dctx);
            (merge_qkv::<Flex>([dq, dk, dv]), scores.then_some(ds))
        }
    }
}

/// The optional `dS [B, H, T, T]` output of the backward (a trainable bias's gradient):
/// one buffer whose (b, h) block of `T·T` slots the (b, h) task writes in full.
struct ScoreGrad<T> {
    buf: Option<Vec<T>>,
    dims: [usize; 3],
}

impl<T: HostFloat> ScoreGrad<T> {
    /// `[B, H, T]`; no buffer unless `wanted`.
    fn new(wanted: bool, dims @ [b, h, t]: [usize; 3]) -> Self {
        Self { buf: wanted.then(|| Vec::with_capacity(b * h * t * t)), dims }
    }

    /// The slots for the tasks, if wanted.
    fn slots(&mut self) -> Option<OutPtr<'_, T>> {
        let [b, h, t] = self.dims;
        self.buf.as_mut().map(|buf| OutPtr::new(&mut buf.spare_capacity_mut()[..b * h * t * t]))
    }

    /// The tensor, once `backward_views` has run with [`Self::slots`].
    fn finish(self) -> Option<FlexTensor> {
        let [b, h, t] = self.dims;
        self.buf.map(|mut buf| {
            // SAFETY: `backward_views` wrote every row of every (b, h) block of T·T slots
            // (the diagonal and below from dS, the rest zero), which cover the buffer.
            unsafe { buf.set_len(b * h * t * t) };
            tensor(buf, [b, h, t, t])
        })
    }
}

/// `[B, H, T, dh]` of `qkv [B, T, 3·H·dh]` with `heads` = `H > 0`, if it has that shape.
fn qkv_dims(qkv: &FlexTensor, heads: usize) -> Option<[usize; 4]> {
    let s = qkv.shape();
    (s.num_dims() == 3 && s.num_elements() > 0 && heads > 0 && s[2] % (3 * heads) == 0).then(|| [s[0], heads, s[1], s[2] / 3 / heads])
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

/// Where the backward writes `dq, dk, dv`: output slots for each (one buffer may serve
/// all three), the offset of each gradient's `[0, 0, 0, 0]` element in its slots and the
/// element strides of the batch, head and time axes (the head-dim axis is contiguous).
struct GradOut<'a, T> {
    ptrs: [OutPtr<'a, T>; 3],
    offsets: [usize; 3],
    strides: [usize; 3],
    /// `dS [B, H, T, T]` (contiguous), when a trainable bias wants it.
    scores: Option<OutPtr<'a, T>>,
}

/// Requires (checked by [`flex_forward`]): `q, k, v [B, H, T, dh]`, optional bias
/// `[1 or B, H, T, T]`, one dtype `T` (a view or index outside a tensor panics, never reads).
fn host_forward<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, bias: Option<&FlexTensor>) -> (FlexTensor, FlexTensor) {
    forward_views::<T>(View::of(q, None), View::of(k, None), View::of(v, None), bias.map(|bias| View::of(bias, None)))
}

/// Requires (checked by [`flex_backward`]): `q, k, v [B, H, T, dh]`, `probs [B, H, T, T]`,
/// `dctx [B, T, H·dh]`, one dtype `T`.
fn host_backward<T: HostFloat>(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, probs: &FlexTensor, dctx: &FlexTensor, scores: bool) -> (FlexTensor, FlexTensor, FlexTensor, Option<FlexTensor>) {
    let views = [View::of(q, None), View::of(k, None), View::of(v, None)];
    let [b, h, t, dh] = views[0].dims();
    let n = b * h * t * dh;
    let mut bufs: [Vec<T>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut ds = ScoreGrad::new(scores, [b, h, t]);
    {
        let ptrs = bufs.each_mut().map(|buf| OutPtr::new(&mut buf.spare_capacity_mut()[..n]));
        let out = GradOut { ptrs, offsets: [0; 3], strides: [h * t * dh, t * dh, dh], scores: ds.slots() };
        backward_views(views, &contiguous::<T>(probs), View::of(dctx, Some(h)), &out);
    }
    let [dq, dk, dv] = bufs.map(|mut buf| {
        // SAFETY: `backward_views` wrote every (b, h) block of each gradient in full (t × dh
        // contiguous slots at (b·H + h)·t·dh), and those blocks cover all n slots.
        unsafe { buf.set_len(n) };
        tensor(buf, [b, h, t, dh])
    });
    (dq, dk, dv, ds.finish())
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
        // SAFETY: the (bi, hi) block of dS — T·T contiguous slots at bh·T·T — is written by
        // this task only.
        let mut scores = out.scores.as_ref().map(|s| unsafe { s.mat(bh * t * t, [t, t], [t as isize, 1]) });
        simd(#[inline(always)] || {
            for i in 0..t {
                // dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik), zero above the diagonal; scaled by s
                // here for dQ, dK (the bias, added after the scale, gets it unscaled).
                let (d, masked) = ds[i * t..(i + 1) * t].split_at_mut(i + 1);
                let p = &probs[i * t..][..i + 1];
                for (d, &p) in d.iter_mut().zip(p) {
                    *d = p.mul(*d);
                }
                let dot = sum(d);
                masked.fill(T::ZERO);
                match &mut scores {
                    None => {
                        for (d, &p) in d.iter_mut().zip(p) {
                            *d = d.sub(p.mul(dot)).mul(scale);
                        }
                    }
                    Some(scores) => {
                        let row = scores.row(i);
                        for ((d, &p), o) in d.iter_mut().zip(p).zip(row.iter_mut()) {
                            let u = d.sub(p.mul(dot));
                            o.write(u);
                            *d = u.mul(scale);
                        }
                        for o in &mut row[i + 1..] {
                            o.write(T::ZERO);
                        }
                    }
                }
            }
        });
        // dQ = s·dS K,  dK = s·dSᵀ Q (the scale is folded into dS)
        let ds = Mat::rows(&ds, t, t);
        mm(grad(0), ds, k, T::ONE, gemm::Parallelism::None);
        mm(grad(1), ds.t(), q, T::ONE, gemm::Parallelism::None);
    });
}
