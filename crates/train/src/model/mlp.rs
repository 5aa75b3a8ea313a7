//! [`Mlp`]: the position-wise feed-forward block, `d → r·d → d` with GELU.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use ember_kernels::{gelu, KernelError};
use burn::tensor::{Device, Tensor};

use super::attention::{forward_rows, linear};

/// Configuration of an [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Residual width `d`.
    pub d_model: usize,
    /// Hidden width `r·d`.
    pub d_hidden: usize,
    /// Biases on both layers.
    #[config(default = false)]
    pub bias: bool,
    /// Dropout on the output.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Std of the first layer's normal init.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Std of the output projection's normal init.
    #[config(default = 0.02)]
    pub proj_std: f64,
}

impl MlpConfig {
    /// Build the block on `device`.
    pub fn init(&self, device: &Device) -> Mlp {
        Mlp {
            fc: linear(self.d_model, self.d_hidden, self.bias, self.init_std, device),
            proj: linear(self.d_hidden, self.d_model, self.bias, self.proj_std, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Position-wise MLP, `d → r·d → d` with (exact, erf) GELU.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[d, r·d]`.
    pub fc: Linear,
    /// `[r·d, d]`: residual projection.
    pub proj: Linear,
    dropout: Dropout,
}

impl Mlp {
    /// Hidden states `[B, T, d] → [B, T, d]`. Errors when `x`'s width is not `d`.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, KernelError> {
        Ok(self.dropout.forward(forward_rows(&self.proj, gelu(forward_rows(&self.fc, x)?))?))
    }
}
