//! The gradient check's fused-head row: the loss and every parameter's autodiff gradient
//! with the fused, chunked head ([`TinyLm::loss`] with a chunk) against the plain head
//! (logits, then cross-entropy), on the same model and batch.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use super::{compare_host, host, Batch, Check};
use crate::model::TinyLm;
use crate::TrainError;

/// The loss and all parameter gradients (in visiting order, flattened) of `model` on
/// `batch`, plain head (`None`) or fused with `chunk` rows per chunk.
fn loss_and_grads(model: &TinyLm, batch: &Batch, chunk: Option<usize>) -> Result<(f64, Vec<f64>), TrainError> {
    struct Collect<'a>(&'a GradientsParams, Vec<f64>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                let n = g.shape().num_elements();
                self.1.extend(host(&g.reshape([1, n])));
            }
        }
    }
    let (b, t) = (batch.batch, batch.seq);
    let loss = model.loss(model.tok.ids_tensor(&batch.ids, b, t)?, model.tok.ids_tensor(&batch.targets, b, t)?, chunk)?;
    let value = loss.clone().into_scalar::<f64>();
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut collect = Collect(&grads, Vec::new());
    model.visit(&mut collect);
    Ok((value, collect.1))
}

/// One row: `max_rel_err` is the larger of the loss's relative error and the gradients'
/// (`max|a − b| / max|b|` over all parameters together).
pub(super) fn fused_head_check(model: &TinyLm, batch: &Batch, chunk: usize, tol: f64, label: &str) -> Result<Check, TrainError> {
    let (plain_loss, plain) = loss_and_grads(model, batch, None)?;
    let (fused_loss, fused) = loss_and_grads(model, batch, Some(chunk))?;
    let mut check = compare_host(&format!("{label}fused head (chunk {chunk}): loss and every gradient vs plain autodiff"), &fused, &plain, tol);
    let loss_err = (fused_loss - plain_loss).abs() / plain_loss.abs().max(f64::MIN_POSITIVE);
    if !(loss_err <= check.max_rel_err) {
        check.max_rel_err = loss_err;
        check.pass = check.pass && loss_err <= tol;
    }
    Ok(check)
}
