//! [`Norm`]: LayerNorm or RMSNorm over the last dimension, chosen by [`NormKind`].

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Tensor};

use super::NormKind;

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
            NormKind::Layernorm => Self::Layer(LayerNormConfig::new(d).with_bias(bias).init(device)),
            NormKind::Rmsnorm => Self::Rms(RmsNormConfig::new(d).init(device)),
        }
    }

    /// `[B, T, d] → [B, T, d]`, normalised over `d`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Layer(n) => n.forward(x),
            Self::Rms(n) => n.forward(x),
        }
    }
}
