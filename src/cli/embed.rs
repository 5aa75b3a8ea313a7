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
    if ember_train::run::is_run_dir(&args.table) {
        let run = ember_train::run::load_run(&args.table, &burn::tensor::Device::flex())?;
        let weights = run.model.tok.weight.val().into_data();
        return Ok(LoadedTable { tokens: run.tokenizer.tokens(), weights });
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
            let row = loaded.index_of(&token).ok_or_else(|| unknown_token(&token, &loaded))?;
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

/// "token not found" with up to five close tokens (case-insensitive match or small edit distance).
fn unknown_token(token: &str, table: &LoadedTable) -> anyhow::Error {
    let lower = token.to_lowercase();
    let mut scored: Vec<(usize, &String)> = table
        .tokens
        .iter()
        .filter(|t| t.len().abs_diff(token.len()) <= 3)
        .map(|t| (if t.to_lowercase() == lower { 0 } else { edit_distance(&lower, &t.to_lowercase()) }, t))
        .filter(|(d, _)| *d <= 2.max(token.chars().count() / 3))
        .collect();
    scored.sort();
    let close: Vec<&str> = scored.iter().take(5).map(|(_, t)| t.as_str()).collect();
    let hint = if close.is_empty() { String::new() } else { format!("; did you mean: {}", close.join(", ")) };
    anyhow::anyhow!("token `{token}` is not in the table ({} tokens){hint}", table.tokens.len())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
