//! Build a TinyLm from code, without a training config, and run a forward pass.
//!
//!     cargo run --release --example tiny_lm [-- BACKEND]
use burn::tensor::{Device, Int, Tensor};
use ember::position::PositionConfig;
use ember::train::model::{ModelConfig, TinyLmConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "flex".into());
    let device: Device = ember::device::device_from_name(&backend)?;
    device.seed(0);
    // 2 layers, d = 64, 4 heads, RoPE; a 65-token vocabulary.
    let position: PositionConfig = toml::from_str("scheme = \"rope\"")?;
    let model = TinyLmConfig::new(65, ModelConfig::new(64, 2, 4), position).init(&device)?;
    let ids = Tensor::<2, Int>::from_ints([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], &device); // [B=2, T=5]
    let logits = model.forward(ids, 0)?; // [B, T, V]
    println!("logits {:?} on {backend}", logits.dims());
    Ok(())
}
