//! `ember embed …`: statistics, nearest neighbours and plots of an embedding table.
//! Thin: parse arguments, load the table ([`resolve_table`]), call `ember_embed`, print.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ember_embed::io::{self, LoadedTable};
use ember_embed::neighbors::{Metric, NeighborIndex, Preprocess};
use ember_embed::report::{self, NeighborsReport};
use ember::viz;

#[derive(Subcommand)]
pub enum EmbedCmd {
    /// Rows, dim, norm summary, mean-vector norm, anisotropy, explained variance (top 10 PCs).
    Stats {
        #[command(flatten)]
        table: TableArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The k nearest tokens to a token, under an explicit metric.
    Neighbors {
        #[command(flatten)]
        table: TableArgs,
        /// The query token (must be a row of the table).
        #[arg(long)]
        token: String,
        /// How many neighbours.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// dot, cosine or euclidean (score = dot product, cosine, or Euclidean distance).
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// Subtract the mean row first.
        #[arg(long)]
        center: bool,
        /// Whiten the table first (BERT-whitening; implies centering).
        #[arg(long)]
        whiten: bool,
        /// Remove the mean and the top D principal directions first (all-but-the-top).
        #[arg(long, value_name = "D", default_value_t = 0)]
        remove_top: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Norm histogram and 2-D PCA scatter with the first tokens labelled (PNG, or SVG for .svg).
    Plot {
        #[command(flatten)]
        table: TableArgs,
        /// Output image (.png or .svg).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where the table comes from and which backend computes on it.
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct TableArgs {
    /// A GloVe / word2vec text file (`word v1 … vd` per line, optional `N d` header), a
    /// `.safetensors` file (with --tensor and --vocab), or a run directory of `ember train`
    /// (its token table and tokenizer).
    pub table: PathBuf,
    /// safetensors only: the tensor holding the `[N, d]` table (default: the only 2-D tensor).
    #[arg(long)]
    pub tensor: Option<String>,
    /// safetensors only: tokenizer.json or a one-token-per-line file (default: tokenizer.json
    /// or vocab.txt next to the table).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Compute backend: flex, ndarray, wgpu, wgpu-cpu, cuda.
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

/// Turn the TABLE argument into a loaded table. The one place that knows what TABLE can be:
/// a text table, a safetensors file, or a training run directory.
pub fn resolve_table(args: &TableArgs) -> anyhow::Result<LoadedTable> {
    let run = ember_train::run::RunDir::new(&args.table);
    if run.exists() {
        return Ok(run.load(&burn::tensor::Device::flex())?.token_table());
    }
    let table = io::load_table(&args.table, args.tensor.as_deref(), args.vocab.as_deref())?;
    Ok(table)
}

pub fn run(cmd: EmbedCmd) -> anyhow::Result<i32> {
    match cmd {
        EmbedCmd::Stats { table, json } => {
            let device = ember_device::device_from_name(&table.backend)?;
            let loaded = resolve_table(&table)?;
            let report = report::stats(&loaded.to_tensor(&device))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", table.table.display());
                print!("{}", viz::embed::stats_text(&report));
            }
        }
        EmbedCmd::Neighbors { table, token, k, metric, center, whiten, remove_top, json } => {
            let metric: Metric = metric.parse()?;
            let device = ember_device::device_from_name(&table.backend)?;
            let loaded = resolve_table(&table)?;
            let row = loaded.find(&token)?;
            let pre = Preprocess { center, whiten, remove_top };
            let x = pre.apply(loaded.to_tensor(&device)).context("preprocessing the table")?;
            let found = NeighborIndex::new(x, metric).search_rows(&[row], k)?.remove(0);
            let report = NeighborsReport::new(&token, metric, &found, &loaded.tokens);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", viz::embed::neighbors_text(&report));
            }
        }
        EmbedCmd::Plot { table, out } => {
            let device = ember_device::device_from_name(&table.backend)?;
            let loaded = resolve_table(&table)?;
            viz::embed::plot_table(&loaded.to_tensor(&device), &loaded.tokens, None, &out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(0)
}
