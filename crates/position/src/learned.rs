//! Learned absolute positions (GPT-2's `wpe`): a trainable table `P [max_len, d]`, row `p`
//! added to the embedding of the token at position `p`. Initialized `N(0, init_std²)`;
//! saved with the model like any parameter. Positions `≥ max_len` do not exist: asking for
//! them is a [`PositionError::PastMaxLen`].
//!
//! **Amplitude.** Rows start at norm ≈ `init_std·√d` (0.23 at 0.02, d = 128), the same as
//! token rows drawn `N(0, 0.02²)`: it expects unscaled token rows (input-embedding scale 1,
//! GPT-2 / nanoGPT), and both are trained from there.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::PositionError;

/// A trainable position table.
#[derive(Module, Debug)]
pub struct LearnedPositions {
    /// `[max_len, d]`: row `p` is position `p`'s vector.
    pub weight: Param<Tensor<2>>,
}

impl LearnedPositions {
    /// A table `[max_len, d_model]` drawn from `N(0, init_std²)` on `device`.
    pub fn new(max_len: usize, d_model: usize, init_std: f64, device: &Device) -> Self {
        let weight = Initializer::Normal { mean: 0.0, std: init_std }.init([max_len, d_model], device);
        Self { weight }
    }

    /// Number of positions the table holds.
    pub fn max_len(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Rows `[offset, offset + len)` of the table, `[len, d]`, or an error past `max_len`.
    pub fn rows(&self, offset: usize, len: usize) -> Result<Tensor<2>, PositionError> {
        let max_len = self.max_len();
        let end = offset + len;
        if end > max_len {
            return Err(PositionError::PastMaxLen { offset, len, end, max_len });
        }
        Ok(self.weight.val().slice([offset..end]))
    }

    /// `x [B, T, d] + P[offset .. offset + T]`; errors past `max_len` or on a width mismatch.
    pub fn add(&self, x: Tensor<3>, offset: usize) -> Result<Tensor<3>, PositionError> {
        let [_, t, d] = x.dims();
        let width = self.weight.dims()[1];
        if d != width {
            return Err(PositionError::WidthMismatch { expected: width, got: d });
        }
        Ok(x + self.rows(offset, t)?.unsqueeze::<3>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use ember_testing::{assert_close, test_devices};

    fn with_table(device: &Device) -> LearnedPositions {
        let data: Vec<f32> = (0..24).map(|v| v as f32 * 0.5).collect();
        let mut l = LearnedPositions::new(6, 4, 0.02, device);
        l.weight = Param::from_tensor(Tensor::from_data(TensorData::new(data, [6, 4]), device));
        l
    }

    #[test]
    fn adds_rows_at_offset_and_errors_past_the_end() {
        for td in test_devices() {
            let dev = &td.device;
            let l = with_table(dev);
            let x = Tensor::<3>::ones([2, 6, 4], dev);
            let full = l.add(x.clone(), 0).unwrap();
            let expected = l.weight.val().unsqueeze::<3>().repeat_dim(0, 2) + 1.0;
            assert_close(&full, &expected, 0.0, 0.0, &format!("{} full", td.name));
            let part = l.add(x.clone().slice([0..2, 0..3]), 3).unwrap();
            assert_close(&part, &full.slice([0..2, 3..6]), 0.0, 0.0, &format!("{} offset", td.name));
            let err = l.add(x.clone().slice([0..2, 0..3]), 4).unwrap_err();
            assert_eq!(err, PositionError::PastMaxLen { offset: 4, len: 3, end: 7, max_len: 6 });
            let msg = err.to_string();
            assert!(msg.contains("7") && msg.contains("max_len = 6"), "{msg}");
        }
    }

    #[test]
    fn init_is_trainable_with_the_given_std() {
        let dev = Device::flex();
        let l = LearnedPositions::new(512, 64, 0.02, &dev);
        assert_eq!(l.num_params(), 512 * 64);
        let v = l.weight.val().into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!(mean.abs() < 2e-3 && (std - 0.02).abs() < 2e-3, "mean {mean} std {std}");
        // gradients reach the table on an autodiff device
        let ad = Device::flex().autodiff();
        let l = LearnedPositions::new(8, 4, 0.02, &ad);
        let y = l.add(Tensor::<3>::zeros([1, 3, 4], &ad), 2).unwrap().sum();
        let grads = y.backward();
        let g = l.weight.grad(&grads).expect("gradient on the table");
        let g = g.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        let ones: Vec<usize> = (0..8).filter(|r| g[r * 4] == 1.0).collect();
        assert_eq!(ones, vec![2, 3, 4]);
    }
}
