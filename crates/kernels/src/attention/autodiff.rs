//! The autodiff nodes of attention: one node per call whose backward is the analytic
//! gradient (`attention/mod.rs`), with the bias as a parent when it is given (it receives
//! `dS` only when it requires a gradient; a constant bias such as ALiBi's costs nothing).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::Shape;

use super::reduce_to_bias;
use crate::ops::{EmberKernels, ScoreBias};

/// Attention from `qkv [B, T, 3·H·dh]` as one node: parents `qkv` (and the bias, when
/// given), state `(qkv, probs)`.
pub(crate) fn autodiff_qkv<B: Backend + EmberKernels, C: CheckpointStrategy>(
    qkv: FloatTensor<Autodiff<B, C>>,
    heads: usize,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    /// Without a bias: parent `qkv`.
    #[derive(Debug)]
    struct QkvBackward {
        heads: usize,
    }

    impl<B: Backend + EmberKernels> Backward<B, 1> for QkvBackward {
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

    /// With a bias of shape `bias`: parents `qkv`, bias.
    #[derive(Debug)]
    struct QkvBiasBackward {
        heads: usize,
        bias: Shape,
    }

    impl<B: Backend + EmberKernels> Backward<B, 2> for QkvBiasBackward {
        /// `(qkv, probs)`.
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_qkv, node_bias] = ops.parents;
            let dctx = grads.consume::<B>(&ops.node);
            let (qkv, probs) = ops.state;
            let Some(node_bias) = node_bias else {
                // A constant bias (ALiBi): no dS.
                if let Some(node) = node_qkv {
                    grads.register::<B>(node.id, B::fused_attention_qkv_backward(qkv, probs, dctx, self.heads));
                }
                return;
            };
            let (dqkv, ds) = B::fused_attention_qkv_bias_backward(qkv, probs, dctx, self.heads);
            if let Some(node) = node_qkv {
                grads.register::<B>(node.id, dqkv);
            }
            grads.register::<B>(node_bias.id, reduce_to_bias::<B>(ds, &self.bias));
        }
    }

    let forward = |qkv: FloatTensor<B>, bias: Option<FloatTensor<B>>| B::fused_attention_qkv_forward(qkv, heads, ScoreBias::new(bias));
    match bias {
        None => match (QkvBackward { heads }).prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (ctx, probs) = forward(qkv.clone(), None);
                prep.finish((qkv, probs), ctx)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(qkv.into_primitive(), None).0),
        },
        Some(bias) => match (QkvBiasBackward { heads, bias: bias.shape() }).prepare::<C>([qkv.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (ctx, probs) = forward(qkv.clone(), Some(bias.into_primitive()));
                prep.finish((qkv, probs), ctx)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(qkv.into_primitive(), Some(bias.into_primitive())).0),
        },
    }
}

/// `(q, k, v, probs)`, the state of [`autodiff`]'s nodes.
type State<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// Attention from `q, k, v [B, H, T, dh]` as one node: parents `q, k, v` (and the bias,
/// when given), state `(q, k, v, probs)`.
pub(crate) fn autodiff<B: Backend + EmberKernels, C: CheckpointStrategy>(
    q: FloatTensor<Autodiff<B, C>>,
    k: FloatTensor<Autodiff<B, C>>,
    v: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    /// Without a bias: parents `q, k, v`.
    #[derive(Debug)]
    struct AttentionBackward;

    impl<B: Backend + EmberKernels> Backward<B, 3> for AttentionBackward {
        type State = State<B>;

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let dctx = grads.consume::<B>(&ops.node);
            let (q, k, v, probs) = ops.state;
            let (dq, dk, dv) = B::fused_attention_backward(q, k, v, probs, dctx);
            for (node, grad) in ops.parents.into_iter().zip([dq, dk, dv]) {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    /// With a bias of shape `bias`: parents `q, k, v`, bias.
    #[derive(Debug)]
    struct AttentionBiasBackward {
        bias: Shape,
    }

    impl<B: Backend + EmberKernels> Backward<B, 4> for AttentionBiasBackward {
        type State = State<B>;

        fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_q, node_k, node_v, node_bias] = ops.parents;
            let dctx = grads.consume::<B>(&ops.node);
            let (q, k, v, probs) = ops.state;
            let (dq, dk, dv) = match node_bias {
                Some(node_bias) => {
                    let (dq, dk, dv, ds) = B::fused_attention_bias_backward(q, k, v, probs, dctx);
                    grads.register::<B>(node_bias.id, reduce_to_bias::<B>(ds, &self.bias));
                    (dq, dk, dv)
                }
                None => B::fused_attention_backward(q, k, v, probs, dctx), // a constant bias
            };
            for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    let forward = |q: FloatTensor<B>, k, v, bias: Option<FloatTensor<B>>| B::fused_attention_forward(q, k, v, ScoreBias::new(bias));
    match bias {
        None => match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let (ctx, probs) = forward(q.clone(), k.clone(), v.clone(), None);
                prep.finish((q, k, v, probs), ctx)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(q.into_primitive(), k.into_primitive(), v.into_primitive(), None).0),
        },
        Some(bias) => match (AttentionBiasBackward { bias: bias.shape() }).prepare::<C>([q.node(), k.node(), v.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let (ctx, probs) = forward(q.clone(), k.clone(), v.clone(), Some(bias.into_primitive()));
                prep.finish((q, k, v, probs), ctx)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(q.into_primitive(), k.into_primitive(), v.into_primitive(), Some(bias.into_primitive())).0),
        },
    }
}
