//! Check 4: finite differences on **every** parameter tensor of the model — the token table,
//! each block's norms, fused `qkv`/output/MLP projections, the final norm, and the position
//! scheme's own parameters (a learned table, T5's bucket biases, KERPLE's `r1, r2`, FIRE's MLP
//! and `c`) — so every fused kernel's backward (attention with its score-bias gradient,
//! LayerNorm, GELU, linear) is compared with the loss itself, not with another autodiff.
//!
//! Per tensor, [`ENTRIES`] entries are checked: the ones with the largest autodiff gradient
//! (a zero gradient would pass trivially) plus one at a fixed spread-out index (a wrongly
//! zero gradient there would show). Each is the five-point central difference
//! `(8(L(θ+ε) − L(θ−ε)) − (L(θ+2ε) − L(θ−2ε))) / 12ε` of the loss on the plain device.
//!
//! The loss is piecewise smooth: FIRE's MLP has ReLU kinks, and with many pre-activations
//! some lie within `±2ε` of a kink, where a difference quotient measures nothing. A tensor whose
//! check fails is therefore checked once more at `ε/100` ([`KINK_RETRY`]; the noise floor scaled
//! to match), and that result is reported: a wrong gradient fails at both step sizes.
//! Parameters are found with Burn's [`ModuleVisitor`] and nudged with a [`ModuleMapper`], so a
//! new parameter anywhere in the model is covered without listing it here.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use super::{batch_loss, compare_with_floor, loss_value, machine_epsilon, Batch, Check};
use crate::model::TinyLm;
use crate::TrainError;

/// Entries checked per parameter tensor.
pub const ENTRIES: usize = 3;

/// A failed check is repeated once at `ε · KINK_RETRY` (module docs).
pub const KINK_RETRY: f64 = 1e-2;

/// One float parameter: its dotted path, id, values and autodiff gradient (both flattened, f64).
struct Found {
    path: String,
    id: ParamId,
    values: Vec<f64>,
    grad: Vec<f64>,
}

/// Every float parameter of a module, as [`Found`].
struct Collect<'a> {
    path: Vec<String>,
    grads: &'a GradientsParams,
    found: Vec<Found>,
}

/// A tensor's values, flattened, as f64.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().expect("float data")
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n = param.shape().num_elements();
        let grad = match self.grads.get::<D>(param.id) {
            Some(g) => host(g),
            None => vec![0.0; n], // not reached by the loss (e.g. a frozen or unused tensor)
        };
        self.found.push(Found { path: self.path.join("."), id: param.id, values: host(param.val()), grad });
    }
}

/// Sets flat entry `index` of the parameter `id` to `value`.
struct SetEntry {
    id: ParamId,
    index: usize,
    value: f64,
}

impl ModuleMapper for SetEntry {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if param.id != self.id {
            return param;
        }
        let id = param.id;
        let w = param.val();
        let shape = w.shape();
        let n = shape.num_elements();
        let one = Tensor::<1>::from_data(TensorData::new(vec![self.value], [1]).convert_dtype(w.dtype()), &w.device());
        let flat = w.reshape([n]).slice_assign([self.index..self.index + 1], one);
        Param::initialized(id, flat.reshape(shape))
    }
}

/// The flat indices checked in a tensor with gradient `g`: the `ENTRIES − 1` largest `|g|`,
/// then one fixed index (`⌊0.618·n⌋`) when not already taken. `skip` excludes an index range
/// (a padding row, whose gradient is checked to be exactly 0 elsewhere).
fn chosen(g: &[f64], skip: Option<std::ops::Range<usize>>) -> Vec<usize> {
    let allowed = |i: &usize| skip.as_ref().is_none_or(|r| !r.contains(i));
    let mut order: Vec<usize> = (0..g.len()).filter(allowed).collect();
    order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()).then(a.cmp(&b)));
    let mut picked: Vec<usize> = order.into_iter().take(ENTRIES - 1).collect();
    let fixed = (g.len() as f64 * 0.618) as usize;
    if !picked.contains(&fixed) && allowed(&fixed) && fixed < g.len() {
        picked.push(fixed);
    }
    picked
}

/// One check per parameter tensor of `model` (named `{label}finite differences: {path}`).
pub(super) fn every_parameter(model: &TinyLm, batch: &Batch, eps: f64, tol: f64, label: &str) -> Result<Vec<Check>, TrainError> {
    let loss = batch_loss(model, batch)?;
    let base_loss = loss.clone().into_scalar::<f64>();
    // A central difference carries rounding noise ~ ε_mach·|L|/ε. An absolute error within
    // 10× that always passes (the relative error is taken against at least `noise / tol`):
    // a gradient that is 0 by symmetry (a bias every score of a softmax row shares, as FIRE's
    // MLP biases often are) has a difference quotient of pure noise, and nothing finer than
    // that noise can be resolved by finite differences anyway.
    let noise = 10.0 * machine_epsilon(loss.dtype()) * base_loss.abs() / eps;
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut collect = Collect { path: Vec::new(), grads: &grads, found: Vec::new() };
    model.visit(&mut collect);
    let plain = model.valid();
    let d = model.tok.d_model();
    let pad_rows = model.tok.padding_idx().map(|p| p * d..(p + 1) * d);
    let mut checks = Vec::new();
    for Found { path, id, values: w, grad: g } in collect.found {
        let skip = (id == model.tok.weight.id).then(|| pad_rows.clone()).flatten();
        let entries = chosen(&g, skip);
        let ad: Vec<f64> = entries.iter().map(|&i| g[i]).collect();
        let name = format!("{label}finite differences: {path}");
        let differences = |eps: f64| -> Result<Vec<f64>, TrainError> {
            let mut fd = Vec::with_capacity(entries.len());
            for &index in &entries {
                let loss_at = |h: f64| -> Result<f64, TrainError> {
                    let probe = plain.clone().map(&mut SetEntry { id, index, value: w[index] + h });
                    loss_value(&probe, batch)
                };
                let (d1, d2) = (loss_at(eps)? - loss_at(-eps)?, loss_at(2.0 * eps)? - loss_at(-2.0 * eps)?);
                fd.push((8.0 * d1 - d2) / (12.0 * eps));
            }
            Ok(fd)
        };
        let mut check = compare_with_floor(&name, &ad, &differences(eps)?, tol, noise / tol);
        if !check.pass {
            // A kink (ReLU in FIRE's MLP) within ±2ε of some pre-activation makes the
            // difference meaningless there; a real gradient error fails at both step sizes.
            let small = eps * KINK_RETRY;
            check = compare_with_floor(&name, &ad, &differences(small)?, tol, noise * eps / small / tol);
        }
        checks.push(check);
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn picks_the_largest_gradients_and_a_fixed_entry_never_the_skipped_row() {
        let g = [0.1, -5.0, 0.0, 3.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(chosen(&g, None), vec![1, 3, 6]);
        assert_eq!(chosen(&g, Some(0..4)), vec![4, 5, 6]);
        assert_eq!(chosen(&g, Some(6..8)), vec![1, 3]);
    }
}
