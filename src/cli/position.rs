//! `ember position …`: show and plot what a position scheme computes.
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ember_position::{plot::plot, show, SchemeOptions};

#[derive(Subcommand)]
pub enum PositionCmd {
    /// Print what a scheme computes: sinusoidal table, RoPE frequencies (and a rotated
    /// vector), ALiBi slopes and bias. `--json` prints the schema in crates/position/README.md.
    Show(ShowArgs),
    /// Draw a PNG: sinusoidal heatmap, ALiBi bias per head, RoPE long-range decay curve.
    Plot(PlotArgs),
}

#[derive(Args)]
pub struct SchemeArgs {
    /// none | sinusoidal | learned | rope | alibi
    #[arg(long)]
    scheme: String,
    /// sinusoidal: interleaved | halves; rope: interleaved | half_split (default)
    #[arg(long)]
    layout: Option<String>,
    /// Vector width: d_model (sinusoidal, learned) or head_dim (rope) [show: 8; plot: 64]
    #[arg(long)]
    dim: Option<usize>,
    /// Attention heads (alibi) [default: 8]
    #[arg(long)]
    heads: Option<usize>,
    /// Positions T [show: 8; plot: 64 sinusoidal, 16 alibi, 1024 rope distances]
    #[arg(long)]
    positions: Option<usize>,
    /// Frequency / timescale base [default: 10000]
    #[arg(long)]
    base: Option<f64>,
    /// rope: fraction of features that rotate [default: 1]
    #[arg(long)]
    partial_rotary_factor: Option<f64>,
    /// rope scaling: none | linear | dynamic | yarn | llama3
    #[arg(long)]
    scaling: Option<String>,
    /// Scaling factor (linear, dynamic, yarn, llama3)
    #[arg(long)]
    factor: Option<f64>,
    /// dynamic: trained context length
    #[arg(long)]
    max_position: Option<usize>,
    /// yarn, llama3: original (pre-trained) context length
    #[arg(long)]
    original_max: Option<usize>,
    /// dynamic: sequence length the frequencies are for [default: --positions]
    #[arg(long)]
    seq_len: Option<usize>,
    /// llama3 [default: 1]
    #[arg(long)]
    low_freq_factor: Option<f64>,
    /// llama3 [default: 4]
    #[arg(long)]
    high_freq_factor: Option<f64>,
    /// yarn [default: 32]
    #[arg(long)]
    beta_fast: Option<f64>,
    /// yarn [default: 1]
    #[arg(long)]
    beta_slow: Option<f64>,
    /// yarn: override the attention factor 0.1 ln(factor) + 1
    #[arg(long)]
    attention_factor: Option<f64>,
    /// learned: table size [default: --positions]
    #[arg(long)]
    max_len: Option<usize>,
    /// learned: init std [default: 0.02]
    #[arg(long)]
    init_std: Option<f64>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    /// rope: a vector of --dim numbers to rotate to positions 0..T-1, e.g. 1,2,3,4,5,6,7,8
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    vector: Option<Vec<f64>>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PlotArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    /// Output PNG file
    #[arg(long)]
    out: PathBuf,
}

impl SchemeArgs {
    fn options(self, plot: bool) -> SchemeOptions {
        let positions_default = match (plot, self.scheme.as_str()) {
            (false, _) => 8,
            (true, "alibi") => 16,
            (true, "rope") => 1024,
            (true, _) => 64,
        };
        SchemeOptions {
            dim: self.dim.unwrap_or(if plot { 64 } else { 8 }),
            heads: self.heads.unwrap_or(8),
            positions: self.positions.unwrap_or(positions_default),
            scheme: self.scheme,
            layout: self.layout,
            base: self.base,
            partial_rotary_factor: self.partial_rotary_factor,
            scaling: self.scaling,
            factor: self.factor,
            max_position: self.max_position,
            original_max: self.original_max,
            seq_len: self.seq_len,
            low_freq_factor: self.low_freq_factor,
            high_freq_factor: self.high_freq_factor,
            beta_fast: self.beta_fast,
            beta_slow: self.beta_slow,
            attention_factor: self.attention_factor,
            max_len: self.max_len,
            init_std: self.init_std,
        }
    }
}

pub fn run(cmd: PositionCmd) -> anyhow::Result<i32> {
    match cmd {
        PositionCmd::Show(args) => {
            let out = show(&args.scheme.options(false), args.vector.as_deref())?;
            if args.json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                print!("{}", out.to_text());
            }
        }
        PositionCmd::Plot(args) => {
            let what = plot(&args.scheme.options(true), &args.out)?;
            println!("wrote {} ({what})", args.out.display());
        }
    }
    Ok(0)
}
