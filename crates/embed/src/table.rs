//! The token embedding table.
//!
//! `E` is a `[V, d]` parameter; row `E[i]` is the input vector of token `i`. A lookup
//! maps ids `[B, T]` to input embeddings `x [B, T, d]` with `x[b, t] = E[ids[b, t]]`, which
//! is the same as `one_hot(ids) · E` (forward and gradient: the gradient of row `i` is the
//! sum of the output gradients at every position holding id `i`).
//!
//! ## Padding row (PyTorch `padding_idx` semantics, tightened)
//!
//! With `padding_idx = Some(p)` the row `E[p]` starts at zero, never receives a gradient,
//! and so stays zero through any optimizer step (AdamW's decay of a zero row is zero).
//! *No* gradient path reaches it: the lookup multiplies the output rows at pad positions by
//! 0 (their gradient is 0, so nothing is scattered into row `p`), and the head sets the pad
//! column's logit to a constant (see [`crate::head`]), which stops the tied head's softmax
//! path (`p_pad · h`) that PyTorch's `padding_idx` lets through. Both cost `O(B·T·d)` and
//! `O(B·T·V)` element-wise work, not a copy of the `[V, d]` table.
//!
//! ## Where ids are checked
//!
//! [`TokenEmbedding::forward`] does not check ids: a check on the device would force a
//! device-to-host sync every training step. Ids are checked where they enter from a user —
//! on the host, once, before upload: [`TokenEmbedding::ids_tensor`] (token ids from a
//! tokenizer, CLI or file) and [`check_ids`]. [`TokenEmbedding::forward_checked`] is the
//! convenient, synchronising variant for code off the hot path.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{module::embedding, Device, Int, Tensor, TensorData};

use crate::EmbedError;

/// Configuration of a [`TokenEmbedding`].
#[derive(Config, Debug)]
pub struct TokenEmbeddingConfig {
    /// Number of rows `V` (vocabulary size).
    pub vocab_size: usize,
    /// Width `d` of each row.
    pub d_model: usize,
    /// Row initializer; default `N(0, 0.02)` (GPT-2).
    #[config(default = "Initializer::Normal { mean: 0.0, std: 0.02 }")]
    pub initializer: Initializer,
    /// Optional padding row: starts at zero and never receives gradient.
    #[config(default = "None")]
    pub padding_idx: Option<usize>,
}

/// A `[V, d]` token table with an optional padding row. See the module docs.
#[derive(Module, Debug)]
pub struct TokenEmbedding {
    /// The table `E`, `[V, d]`; row `i` is token `i`'s input embedding.
    pub weight: Param<Tensor<2>>,
    #[module(skip)]
    padding_idx: Option<usize>,
}

impl TokenEmbeddingConfig {
    /// Build the table on `device` (use `device.autodiff()` to train it).
    pub fn init(&self, device: &Device) -> Result<TokenEmbedding, EmbedError> {
        check_shape(self.vocab_size, self.d_model, self.padding_idx)?;
        let weight = self.initializer.init([self.vocab_size, self.d_model], device);
        Ok(TokenEmbedding { weight, padding_idx: self.padding_idx }.zero_padding_row())
    }
}

fn check_shape(vocab: usize, d: usize, padding_idx: Option<usize>) -> Result<(), EmbedError> {
    if vocab == 0 || d == 0 {
        return Err(EmbedError::invalid("table shape", format!("[{vocab}, {d}]: both sizes must be ≥ 1")));
    }
    if let Some(p) = padding_idx {
        if p >= vocab {
            return Err(EmbedError::invalid(
                "padding_idx",
                format!("{p} is not a row of a table with {vocab} rows; use an id below {vocab}"),
            ));
        }
    }
    Ok(())
}

/// Check host-side ids against a vocabulary of `vocab` rows.
pub fn check_ids<I: Copy + Into<i64>>(ids: &[I], vocab: usize) -> Result<(), EmbedError> {
    match ids.iter().map(|&i| i.into()).find(|&i| i < 0 || i >= vocab as i64) {
        Some(id) => Err(EmbedError::IdOutOfRange { id, vocab }),
        None => Ok(()),
    }
}

impl TokenEmbedding {
    /// Wrap an existing table `weight [V, d]` (a new parameter). The padding row, if any,
    /// is set to zero.
    pub fn from_weight(weight: Tensor<2>, padding_idx: Option<usize>) -> Result<Self, EmbedError> {
        let [v, d] = weight.dims();
        check_shape(v, d, padding_idx)?;
        Ok(Self { weight: Param::from_tensor(weight), padding_idx }.zero_padding_row())
    }

    fn zero_padding_row(self) -> Self {
        match self.padding_idx {
            None => self,
            Some(p) => {
                // A fresh leaf: mapping the parameter would make it the output of an op and
                // untrackable (no gradient).
                let w = self.weight.val().detach();
                let d = w.dims()[1];
                Self { weight: Param::from_tensor(w.slice_fill([p..p + 1, 0..d], 0.0).detach()), padding_idx: self.padding_idx }
            }
        }
    }

    /// Number of rows `V`.
    pub fn vocab_size(&self) -> usize {
        self.weight.shape().dims::<2>()[0]
    }

    /// Row width `d`.
    pub fn d_model(&self) -> usize {
        self.weight.shape().dims::<2>()[1]
    }

    /// The padding row, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    /// Lookup: ids `[B, T]` → input embeddings `x [B, T, d]`, `x[b, t] = E[ids[b, t]]`.
    ///
    /// Ids are **not** checked here (that would sync the device every step); they must be
    /// in `[0, V)`. Check them where they enter: [`Self::ids_tensor`] or [`check_ids`].
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self.padding_idx {
            None => embedding(self.weight.val(), ids),
            Some(p) => {
                let keep = ids.clone().not_equal_elem(p as i64).float().unsqueeze_dim::<3>(2); // [B, T, 1]
                embedding(self.weight.val(), ids) * keep
            }
        }
    }

    /// Like [`Self::forward`], but first reads the ids' min and max back from the device and
    /// returns [`EmbedError::IdOutOfRange`] for an id outside `[0, V)`. One sync; use off the
    /// training hot path.
    pub fn forward_checked(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, EmbedError> {
        let max = ids.clone().max().into_scalar::<i64>();
        let min = ids.clone().min().into_scalar::<i64>();
        check_ids(&[min, max], self.vocab_size())?;
        Ok(self.forward(ids))
    }

    /// Upload host ids (row-major, `batch · seq` of them) as a `[batch, seq]` Int tensor on
    /// the table's device, after checking every id against `V` on the host.
    pub fn ids_tensor(&self, ids: &[u32], batch: usize, seq: usize) -> Result<Tensor<2, Int>, EmbedError> {
        ids_tensor(ids, batch, seq, self.vocab_size(), &self.weight.device())
    }
}

/// Upload host ids as a `[batch, seq]` Int tensor on `device`, checking each id `< vocab`
/// and that `ids.len() == batch · seq`.
pub fn ids_tensor(ids: &[u32], batch: usize, seq: usize, vocab: usize, device: &Device) -> Result<Tensor<2, Int>, EmbedError> {
    if ids.len() != batch * seq {
        return Err(EmbedError::invalid("ids", format!("{} ids cannot form a [{batch}, {seq}] batch", ids.len())));
    }
    check_ids(ids, vocab)?;
    let data = TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [batch, seq]);
    Ok(Tensor::from_data(data, device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::GradientsParams;
    use ember_testing::{assert_close, test_devices};

    fn table_data(v: usize, d: usize) -> TensorData {
        TensorData::new((0..v * d).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect::<Vec<_>>(), [v, d])
    }

    #[test]
    fn lookup_equals_one_hot_matmul_forward_and_gradient() {
        let (v, d) = (11, 6);
        let ids: Vec<u32> = vec![3, 0, 10, 3, 7, 3, 1, 10];
        for td in test_devices() {
            let dev = td.device.clone().autodiff();
            let table = TokenEmbedding::from_weight(Tensor::from_data(table_data(v, d), &dev), None).unwrap();
            let ids_t = table.ids_tensor(&ids, 2, 4).unwrap();
            // Weighted sum so each position's gradient differs.
            let w = Tensor::<3>::from_data(
                TensorData::new((0..2 * 4 * d).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), [2, 4, d]),
                &dev,
            );
            let x = table.forward(ids_t.clone());
            let grads = (x.clone() * w.clone()).sum().backward();
            let g_lookup = GradientsParams::from_grads(grads, &table).get::<2>(table.weight.id).unwrap();

            let table2 = TokenEmbedding::from_weight(Tensor::from_data(table_data(v, d), &dev), None).unwrap();
            let one_hot: Tensor<3> = ids_t.one_hot::<3>(v).float();
            let x2 = one_hot.matmul(table2.weight.val().unsqueeze::<3>());
            let grads2 = (x2.clone() * w).sum().backward();
            let g_onehot = GradientsParams::from_grads(grads2, &table2).get::<2>(table2.weight.id).unwrap();

            assert_close(&x.inner(), &x2.inner(), 1e-6, 1e-6, &format!("{}: forward", td.name));
            assert_close(&g_lookup, &g_onehot, 1e-5, 1e-5, &format!("{}: gradient", td.name));
            // Row 3 appears three times: its gradient is the sum of three output gradients.
            let g3: Vec<f32> = g_lookup.clone().slice([3..4, 0..d]).into_data().try_to_vec().unwrap();
            assert!(g3.iter().any(|x| x.abs() > 1e-3), "{}: row 3 must get gradient", td.name);
            // Rows never looked up get none.
            let g5: Vec<f32> = g_lookup.slice([5..6, 0..d]).into_data().try_to_vec().unwrap();
            assert!(g5.iter().all(|&x| x == 0.0), "{}: row 5 is unused", td.name);
        }
    }

    #[test]
    fn out_of_range_ids_are_errors_naming_id_and_vocab() {
        let dev = Device::flex();
        let table = TokenEmbeddingConfig::new(5, 3).init(&dev).unwrap();
        let err = table.ids_tensor(&[1, 5, 2], 1, 3).unwrap_err().to_string();
        assert!(err.contains("token id 5") && err.contains("5 rows"), "{err}");
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 7], [1, 2]), &dev);
        let err = table.forward_checked(ids).unwrap_err().to_string();
        assert!(err.contains("token id 7"), "{err}");
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, -1], [1, 2]), &dev);
        assert!(table.forward_checked(ids).is_err());
        assert!(table.ids_tensor(&[1, 2], 2, 2).is_err(), "length mismatch");
        assert!(table.ids_tensor(&[0, 4, 2, 1], 2, 2).is_ok());
    }

    #[test]
    fn bad_shapes_and_padding_idx_are_errors() {
        let dev = Device::flex();
        assert!(TokenEmbeddingConfig::new(0, 3).init(&dev).is_err());
        assert!(TokenEmbeddingConfig::new(4, 0).init(&dev).is_err());
        let err = TokenEmbeddingConfig::new(4, 3).with_padding_idx(Some(4)).init(&dev).unwrap_err().to_string();
        assert!(err.contains("padding_idx") && err.contains('4'), "{err}");
    }

    #[test]
    fn padding_table_is_still_a_trainable_parameter() {
        let dev = Device::flex().autodiff();
        let table = TokenEmbeddingConfig::new(5, 3).with_padding_idx(Some(1)).init(&dev).unwrap();
        assert!(table.weight.is_require_grad());
        let x = table.forward(table.ids_tensor(&[1, 2], 1, 2).unwrap());
        let grads = burn::optim::GradientsParams::from_grads(x.sum().backward(), &table);
        let g: Vec<f32> = grads.get::<2>(table.weight.id).unwrap().into_data().try_to_vec().unwrap();
        assert_eq!(&g[3..6], &[0.0; 3], "pad row");
        assert_eq!(&g[6..9], &[1.0; 3], "row 2");
    }

    #[test]
    fn padding_row_starts_at_zero_and_looks_up_zero() {
        for td in test_devices() {
            let table = TokenEmbeddingConfig::new(6, 4)
                .with_initializer(Initializer::Normal { mean: 1.0, std: 1.0 })
                .with_padding_idx(Some(2))
                .init(&td.device)
                .unwrap();
            let row: Vec<f32> = table.weight.val().slice([2..3, 0..4]).into_data().try_to_vec().unwrap();
            assert_eq!(row, vec![0.0; 4], "{}", td.name);
            let other: Vec<f32> = table.weight.val().slice([1..2, 0..4]).into_data().try_to_vec().unwrap();
            assert!(other.iter().all(|&x| x != 0.0), "{}", td.name);
            let x = table.forward(table.ids_tensor(&[2, 1], 1, 2).unwrap());
            let x0: Vec<f32> = x.slice([0..1, 0..1, 0..4]).into_data().try_to_vec().unwrap();
            assert_eq!(x0, vec![0.0; 4], "{}", td.name);
        }
    }
}
