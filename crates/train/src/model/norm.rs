//! [`Norm`]: LayerNorm or RMSNorm over the last dimension, chosen by [`NormKind`].

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Tensor};

use super::NormKind;
use ember_kernels::{layer_norm, KernelError};

/// LayerNorm's `ε` (Burn's and PyTorch's default).
const LAYER_NORM_EPSILON: f64 = 1e-5;

/// LayerNorm or RMSNorm over the last dimension.
#[derive(Module, Debug)]
pub enum Norm {
    /// LayerNorm (optionally without bias).
    Layer(LayerNorm),
    /// RMSNorm.
    Rms(RmsNorm),
}

impl Norm {
    /// A norm of width `d` (gain 1, bias 0 when `bias`).
    pub fn new(kind: NormKind, d: usize, bias: bool, device: &Device) -> Self {
        match kind {
            NormKind::Layernorm => Self::Layer(LayerNormConfig::new(d).with_bias(bias).with_epsilon(LAYER_NORM_EPSILON).init(device)),
            NormKind::Rmsnorm => Self::Rms(RmsNormConfig::new(d).init(device)),
        }
    }

    /// `[B, T, d] → [B, T, d]`, normalised over `d`. LayerNorm runs as one fused op with its
    /// own backward ([`ember_kernels::layer_norm`]), the same formula as `burn::nn::LayerNorm`.
    /// Errors when `x`'s width is not `d`.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, KernelError> {
        match self {
            Self::Layer(n) => layer_norm(x, n.gamma.val(), n.beta.as_ref().map(|b| b.val()), LAYER_NORM_EPSILON),
            Self::Rms(n) => Ok(n.forward(x)),
        }
    }
}
