//! The LM head: hidden states `h [B, T, d]` → logits `[B, T, V]`.
//!
//! - **Tied**: `logits = h · Eᵀ`, where `E` is the token table's own parameter. The head
//!   stores nothing; it reads the table passed to [`LmHead::logits`]. There is one `Param`,
//!   so autodiff sums the head gradient `(P − Y)ᵀ H / N` and the lookup gradient into it, and
//!   the optimizer keeps one state: the two uses cannot drift apart.
//! - **Untied**: `logits = h · W + b`, with its own `W [d, V]` and optional bias `b [V]`.
//!
//! [`LmHead::fused_loss`] computes head + cross-entropy without the logits (see
//! [`crate::fused`]).
//!
//! When the table has a padding row `p`, the pad column's logit is set to
//! [`PAD_LOGIT`] (−1e9) in both variants: the pad token is never predicted, gets
//! probability exactly 0, and so its head row receives no gradient through the softmax.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Int, Tensor};

use crate::fused::FusedCrossEntropy;
use crate::{EmbedError, TokenEmbedding};

/// The logit given to the padding column: finite (safe on every backend) and so negative
/// that `exp` underflows to exactly 0 in f32 and f64.
pub use crate::loss::PAD_LOGIT;

/// Configuration of an [`LmHead`].
#[derive(Config, Debug)]
pub struct LmHeadConfig {
    /// Share the token table (`true`, default) or own a `[d, V]` weight.
    #[config(default = true)]
    pub tied: bool,
    /// Untied only: add a bias `[V]` (initialised to zero).
    #[config(default = false)]
    pub bias: bool,
    /// Untied only: weight initializer, default `N(0, 0.02)`.
    #[config(default = "Initializer::Normal { mean: 0.0, std: 0.02 }")]
    pub initializer: Initializer,
}

/// An untied head's parameters.
#[derive(Module, Debug)]
pub struct UntiedHead {
    /// `W [d, V]`: column `j` is the output vector of token `j`.
    pub weight: Param<Tensor<2>>,
    /// Optional bias `[V]`.
    pub bias: Option<Param<Tensor<1>>>,
}

/// The LM head, tied or untied. See the module docs.
#[derive(Module, Debug)]
pub struct LmHead {
    /// `None` means tied to the table.
    pub untied: Option<UntiedHead>,
}

impl LmHeadConfig {
    /// Build a head for `table` (same device, same `V` and `d`).
    pub fn init(&self, table: &TokenEmbedding) -> LmHead {
        if self.tied {
            return LmHead::tied();
        }
        let device = table.weight.device();
        let (v, d) = (table.vocab_size(), table.d_model());
        let weight = self.initializer.init([d, v], &device);
        let bias = self.bias.then(|| Initializer::Zeros.init([v], &device));
        LmHead { untied: Some(UntiedHead { weight, bias }) }
    }
}

impl LmHead {
    /// A head tied to whatever table is passed to [`Self::logits`].
    pub fn tied() -> Self {
        Self { untied: None }
    }

    /// An untied head from `weight [d, V]` and an optional `bias [V]` (new parameters).
    pub fn untied(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Result<Self, EmbedError> {
        let [_, v] = weight.dims();
        if let Some(b) = &bias {
            if b.dims()[0] != v {
                return Err(EmbedError::invalid("head bias", format!("length {} but the weight has {v} columns", b.dims()[0])));
            }
        }
        Ok(Self { untied: Some(UntiedHead { weight: Param::from_tensor(weight), bias: bias.map(Param::from_tensor) }) })
    }

    /// `true` when the head reads the table (`untied` is `None`).
    pub fn is_tied(&self) -> bool {
        self.untied.is_none()
    }

    /// `tied`, `untied` or `untied+bias`, for reports.
    pub fn name(&self) -> &'static str {
        match &self.untied {
            None => "tied",
            Some(u) if u.bias.is_some() => "untied+bias",
            Some(_) => "untied",
        }
    }

    /// The head's output vectors as rows, `[V, d]` (row `j` scores token `j`): the table
    /// itself when tied, `Wᵀ` when untied.
    pub fn rows(&self, table: &TokenEmbedding) -> Tensor<2> {
        match &self.untied {
            None => table.weight.val(),
            Some(u) => u.weight.val().transpose(),
        }
    }

    /// Hidden states `h [B, T, d]` → logits `[B, T, V]`; `table` is the model's token table
    /// (read when tied, used for the padding row in both cases). One matrix product over all
    /// `B·T` rows with its own backward ([`ember_kernels::linear`]: Burn's `linear` on a 3-D
    /// input keeps it batched, `B` products each packing the whole head again).
    ///
    /// # Panics
    /// If `h`'s width is not the head's `d` (the model builds `h`; a mismatch is a bug, and
    /// the message names both shapes).
    pub fn logits(&self, h: Tensor<3>, table: &TokenEmbedding) -> Tensor<3> {
        let logits = match &self.untied {
            None => ember_kernels::linear(h, table.weight.val().transpose(), None),
            Some(u) => ember_kernels::linear(h, u.weight.val(), u.bias.as_ref().map(|b| b.val())),
        };
        let logits = logits.unwrap_or_else(|e| panic!("LmHead::logits: {e}"));
        match table.padding_idx() {
            None => logits,
            Some(p) => {
                let v = logits.dims()[2];
                let pad_col = Tensor::<1, Int>::arange(0..v as i64, &logits.device())
                    .equal_elem(p as i64)
                    .reshape([1, 1, v]);
                let shape = logits.shape();
                logits.mask_fill(pad_col.expand(shape), PAD_LOGIT)
            }
        }
    }

    /// The loss `cross_entropy(self.logits(h, table), targets, table.padding_idx())` of hidden
    /// states `h [B, T, d]` against `targets [B, T]` (Int), computed by the fused, chunked
    /// head ([`crate::fused`], `chunk` rows of `B·T` at a time) without the `[B, T, V]`
    /// logits: same value, same gradients for `h`, the head (weight and bias) and the tied
    /// table. Returns a one-element tensor; errors on shapes or targets that do not fit.
    pub fn fused_loss(&self, h: Tensor<3>, targets: Tensor<2, Int>, table: &TokenEmbedding, chunk: usize) -> Result<Tensor<1>, EmbedError> {
        let [b, t, d] = h.dims();
        if targets.dims() != [b, t] {
            return Err(EmbedError::invalid("targets", format!("shape {:?} does not match the hidden states' [{b}, {t}]", targets.dims())));
        }
        let pad = table.padding_idx();
        let bias = self.untied.as_ref().and_then(|u| u.bias.as_ref()).map(|b| b.val());
        FusedCrossEntropy::new(chunk)
            .with_ignore_index(pad)
            .with_masked_column(pad)
            .loss(h.reshape([b * t, d]), self.rows(table), bias, targets.reshape([b * t]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grads::{head_rows_grad, logits_grad, lookup_grad};
    use crate::loss::cross_entropy;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::module::linear;
    use burn::tensor::{Device, TensorData};
    use ember_testing::{assert_close, test_devices};

    #[derive(Module, Debug)]
    struct Front {
        table: TokenEmbedding,
        head: LmHead,
        mix: Param<Tensor<2>>, // [d, d]: h = tanh(x · mix), so the lookup part is non-trivial
    }

    impl Front {
        fn new(v: usize, d: usize, tied: bool, padding_idx: Option<usize>, device: &Device) -> Self {
            let table_data = TensorData::new((0..v * d).map(|i| ((i * 31 % 97) as f32 - 48.0) / 60.0).collect::<Vec<_>>(), [v, d]);
            let mix_data = TensorData::new((0..d * d).map(|i| ((i * 17 % 13) as f32 - 6.0) / 8.0).collect::<Vec<_>>(), [d, d]);
            let table = TokenEmbedding::from_weight(Tensor::from_data(table_data, device), padding_idx).unwrap();
            let head = LmHeadConfig::new().with_tied(tied).with_bias(!tied).init(&table);
            Self { table, head, mix: Param::from_tensor(Tensor::from_data(mix_data, device)) }
        }
        fn hidden(&self, x: Tensor<3>) -> Tensor<3> {
            x.matmul(self.mix.val().unsqueeze::<3>()).tanh()
        }
        fn loss(&self, ids: Tensor<2, Int>, targets: Tensor<2, Int>) -> Tensor<1> {
            let h = self.hidden(self.table.forward(ids));
            cross_entropy(self.head.logits(h, &self.table), targets, self.table.padding_idx())
        }
    }

    fn ids(dev: &Device, data: &[u32], v: usize) -> Tensor<2, Int> {
        crate::table::ids_tensor(data, 2, data.len() / 2, v, dev).unwrap()
    }

    #[test]
    fn tied_model_has_one_table_parameter_untied_has_two() {
        let dev = Device::flex();
        let (v, d) = (13, 4);
        assert_eq!(Front::new(v, d, true, None, &dev).num_params(), v * d + d * d);
        assert_eq!(Front::new(v, d, false, None, &dev).num_params(), v * d + d * v + v + d * d);
    }

    /// `logits[n, j] = Σ_c h[n, c] · rows[j, c] + bias[j]`, on the host in f64: an
    /// implementation independent of the head's (`h [N, d]`, `rows [V, d]`, `bias [V]`).
    fn host_logits(h: &[f32], rows: &[f32], bias: Option<&[f32]>, d: usize) -> Vec<f64> {
        let v = rows.len() / d;
        let mut out = Vec::with_capacity(h.len() / d * v);
        for hn in h.chunks(d) {
            for j in 0..v {
                let dot: f64 = (0..d).map(|c| hn[c] as f64 * rows[j * d + c] as f64).sum();
                out.push(dot + bias.map_or(0.0, |b| b[j] as f64));
            }
        }
        out
    }

    fn host(t: Tensor<3>) -> Vec<f64> {
        t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
    }

    fn assert_all_close(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "{what}: element {i}: {g} vs {w}");
        }
    }

    #[test]
    fn tied_logits_are_h_times_the_table_and_follow_it_untied_logits_do_not() {
        let (v, d, b, t) = (7, 5, 2, 3);
        let vals = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 23) as f32 - 11.0) / 9.0).collect() };
        let (e, w, bias, h) = (vals(v * d, 7), vals(d * v, 5), vals(v, 3), vals(b * t * d, 11));
        // A second table that differs from the first in row 3 only.
        let changed = 3;
        let mut e2 = e.clone();
        e2[changed * d..(changed + 1) * d].iter_mut().enumerate().for_each(|(c, x)| *x += 0.5 + c as f32 * 0.25);
        // W [d, V] as rows [V, d] for the reference.
        let w_rows: Vec<f32> = (0..v * d).map(|k| w[(k % d) * v + k / d]).collect();
        for td in test_devices() {
            let dev = &td.device;
            let tab = |data: &[f32], pad| TokenEmbedding::from_weight(Tensor::from_data(TensorData::new(data.to_vec(), [v, d]), dev), pad).unwrap();
            let (table, table2) = (tab(&e, None), tab(&e2, None));
            let h_t = Tensor::<3>::from_data(TensorData::new(h.clone(), [b, t, d]), dev);
            let tied = LmHead::tied();
            let untied = LmHead::untied(
                Tensor::from_data(TensorData::new(w.clone(), [d, v]), dev),
                Some(Tensor::from_data(TensorData::new(bias.clone(), [v]), dev)),
            )
            .unwrap();
            assert!(tied.is_tied() && !untied.is_tied(), "{}", td.name);
            assert_eq!((tied.name(), untied.name()), ("tied", "untied+bias"));

            let tied1 = host(tied.logits(h_t.clone(), &table));
            let tied2 = host(tied.logits(h_t.clone(), &table2));
            assert_all_close(&tied1, &host_logits(&h, &e, None, d), &format!("{}: tied = h·Eᵀ", td.name));
            assert_all_close(&tied2, &host_logits(&h, &e2, None, d), &format!("{}: tied = h·E'ᵀ", td.name));
            // Only the changed token's column moves, and it does move.
            for (k, (a, b)) in tied1.iter().zip(&tied2).enumerate() {
                if k % v == changed {
                    assert!((a - b).abs() > 1e-2, "{}: column {changed} follows the table ({a} vs {b})", td.name);
                } else {
                    assert_eq!(a, b, "{}: element {k}", td.name);
                }
            }

            let untied1 = host(untied.logits(h_t.clone(), &table));
            let untied2 = host(untied.logits(h_t.clone(), &table2));
            assert_all_close(&untied1, &host_logits(&h, &w_rows, Some(&bias), d), &format!("{}: untied = h·W + b", td.name));
            assert_eq!(untied1, untied2, "{}: an untied head ignores the table's values", td.name);

            // With a padding row p, column p is PAD_LOGIT in both heads and the rest is unchanged.
            let pad = 4;
            let mut e_pad = e.clone();
            e_pad[pad * d..(pad + 1) * d].fill(0.0);
            let padded = tab(&e, Some(pad));
            for (head, want) in [(&tied, host_logits(&h, &e_pad, None, d)), (&untied, untied1.clone())] {
                let got = host(head.logits(h_t.clone(), &padded));
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    let w = if k % v == pad { PAD_LOGIT } else { *w };
                    assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "{} {}: padded element {k}: {g} vs {w}", td.name, head.name());
                }
            }
        }
    }

    #[test]
    fn tied_table_gradient_is_head_part_plus_lookup_part() {
        let (v, d) = (9, 6);
        let id_data = [1u32, 4, 4, 8, 0, 2, 7, 4];
        let tgt_data = [4u32, 4, 8, 0, 2, 7, 4, 3];
        for td in test_devices() {
            let dev = td.device.clone().autodiff();
            let model = Front::new(v, d, true, None, &dev);
            let (ids_t, tgt) = (ids(&dev, &id_data, v), ids(&dev, &tgt_data, v));
            let total = GradientsParams::from_grads(model.loss(ids_t.clone(), tgt.clone()).backward(), &model).get::<2>(model.table.weight.id).unwrap();

            // Lookup part: autodiff gradient at the embedding output, scatter-added by id.
            let x = model.table.forward(ids_t.clone()).detach().require_grad();
            let h = model.hidden(x.clone());
            let logits = linear(h.clone(), model.table.weight.val().detach().transpose(), None);
            let g_x = x.grad(&cross_entropy(logits.clone(), tgt.clone(), None).backward()).unwrap();
            let n = id_data.len();
            let lookup = lookup_grad(ids_t.inner().reshape([n]), g_x.reshape([n, d]), v, None);
            // Head part, analytic: (P − Y)ᵀ H / N.
            let dz = logits_grad(logits.inner().reshape([n, v]), tgt.inner().reshape([n]), None);
            let head = head_rows_grad(dz, h.inner().reshape([n, d]));

            let rel = 1e-5 * total.clone().abs().max().into_scalar::<f64>();
            assert_close(&total, &(head.clone() + lookup.clone()), rel, 1e-5, &format!("{}: tied sum rule", td.name));
            // Both parts matter: dropping either breaks the identity.
            assert!(ember_testing::max_abs_diff(&total, &head) > 1e3 * rel, "{}", td.name);
            assert!(ember_testing::max_abs_diff(&total, &lookup) > 1e3 * rel, "{}", td.name);
        }
    }

    #[test]
    fn tied_head_and_table_stay_one_tensor_through_adamw() {
        let (v, d) = (7, 4);
        for td in test_devices() {
            let dev = td.device.clone().autodiff();
            let mut model = Front::new(v, d, true, None, &dev);
            let before = model.table.weight.val().inner();
            let mut optim = AdamWConfig::new().with_weight_decay(0.1).init();
            let loss = model.loss(ids(&dev, &[1, 2, 3, 4], v), ids(&dev, &[2, 3, 4, 5], v));
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
            let after = model.table.weight.val().inner();
            assert!(ember_testing::max_abs_diff(&before, &after) > 1e-3, "{}: the step moved the table", td.name);
            // The head reads the updated table: logits = h · E_newᵀ exactly.
            let h = Tensor::<3>::from_data(TensorData::new((0..2 * d).map(|i| i as f32 * 0.1).collect::<Vec<_>>(), [1, 2, d]), &td.device);
            let got = model.head.logits(h.clone(), &model.table.valid());
            let want = h.matmul(after.transpose().unsqueeze::<3>());
            assert_close(&got, &want, 1e-6, 1e-6, &format!("{}: head == table after step", td.name));
        }
    }

    #[test]
    fn padding_row_gets_no_gradient_and_stays_zero_under_adamw_tied_and_untied() {
        let (v, d, pad) = (8, 4, 0usize);
        for td in test_devices() {
            for tied in [true, false] {
                let dev = td.device.clone().autodiff();
                let mut model = Front::new(v, d, tied, Some(pad), &dev);
                let mut optim = AdamWConfig::new().with_weight_decay(0.1).init();
                for step in 0..3 {
                    // Pad ids in the input and pad targets, both must be harmless.
                    let loss = model.loss(ids(&dev, &[0, 0, 3, 5, 1, 0], v), ids(&dev, &[0, 3, 5, 1, 0, 0], v));
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    let g = grads.get::<2>(model.table.weight.id).unwrap();
                    let g_pad: Vec<f32> = g.clone().slice([pad..pad + 1, 0..d]).into_data().try_to_vec().unwrap();
                    assert_eq!(g_pad, vec![0.0; d], "{} tied={tied} step {step}: pad row gradient", td.name);
                    let g_any: f32 = g.abs().sum().into_scalar();
                    assert!(g_any > 0.0, "{}: other rows learn", td.name);
                    // The pad column takes no probability.
                    let h = model.hidden(model.table.forward(ids(&dev, &[3, 5], v)));
                    let p = burn::tensor::activation::softmax(model.head.logits(h, &model.table), 2);
                    let p_pad: f32 = p.slice([0..2, 0..1, pad..pad + 1]).sum().into_scalar();
                    assert_eq!(p_pad, 0.0, "{} tied={tied}: p(pad)", td.name);
                    model = optim.step(5e-2, model, grads);
                }
                let row: Vec<f32> = model.table.weight.val().slice([pad..pad + 1, 0..d]).into_data().try_to_vec().unwrap();
                assert_eq!(row, vec![0.0; d], "{} tied={tied}: pad row after AdamW", td.name);
            }
        }
    }
}
