//! Apply every position scheme to the same input embeddings and queries/keys, through the
//! one `PositionEncoding` interface: `cargo run --release --example position_schemes`

use burn::tensor::{Device, Distribution, Tensor};
use ember::position::PositionConfig;

fn main() -> anyhow::Result<()> {
    let device = Device::flex();
    let (d_model, heads, t) = (32, 4, 6);
    let x = Tensor::<3>::random([1, t, d_model], Distribution::Normal(0.0, 1.0), &device);
    let q = Tensor::<4>::random([1, heads, t, d_model / heads], Distribution::Normal(0.0, 1.0), &device);
    for scheme in ["scheme = \"none\"", "scheme = \"sinusoidal\"", "scheme = \"learned\"\nmax_len = 16", "scheme = \"rope\"", "scheme = \"alibi\""] {
        let config: PositionConfig = toml::from_str(scheme)?;
        let pos = config.init(d_model, heads, &device)?;
        let dx = (pos.add_to_embeddings(x.clone(), 0)? - x.clone()).abs().max().into_scalar::<f32>();
        let (q2, _) = pos.rotate_qk(q.clone(), q.clone(), 0);
        let dq = (q2 - q.clone()).abs().max().into_scalar::<f32>();
        let bias = pos.score_bias(t, t, 0, &device).map(|b| b.dims());
        println!("{:<11} changes x by {dx:.3}, q by {dq:.3}, score bias {bias:?}", pos.scheme());
    }
    Ok(())
}
