//! `ember embed …`: statistics, nearest neighbours (static and contextual), plots and
//! quantization of an embedding table. Thin: parse arguments, load the table
//! ([`resolve`]), call `ember_embed` / `ember_train::embedding`, print.
//!
//! Files: this one (the subcommands, TABLE, stats, static neighbours, plot), `context.rs`
//! (`neighbors --context/--compare`), `quantize.rs` (`quantize`).

mod context;
mod quantize;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ember::viz;
use ember_embed::frequency;
use ember_embed::io::LoadedTable;
use ember_embed::neighbors::{Metric, NeighborIndex, Preprocess};
use ember_embed::report::{self, NeighborsReport};
use ember_train::run::{LoadedRun, RunDir};

#[derive(Subcommand)]
pub enum EmbedCmd {
    /// Rows, dim, norm summary, mean-vector norm, centered norms, anisotropy, explained
    /// variance (top 10 PCs), and row norm vs log frequency (a run, or --counts FILE).
    Stats {
        #[command(flatten)]
        table: TableArgs,
        /// A frequency list (`token count` per line) for the table's tokens (a run counts its
        /// own training split without this).
        #[arg(long, value_name = "FILE")]
        counts: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The k nearest tokens to a token (static), or to a token's hidden state in a text
    /// (--context/--at, a run only), or one token's spread across contexts (--compare).
    Neighbors(NeighborsArgs),
    /// Norm histogram and 2-D PCA scatter with the first (or most frequent) tokens labelled,
    /// plus row norm vs log frequency with --counts (PNG, or SVG for .svg).
    Plot {
        #[command(flatten)]
        table: TableArgs,
        /// Add the row-norm vs log-frequency panel: bare `--counts` on a run counts its
        /// training split; `--counts FILE` reads a frequency list (`token count` per line).
        #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
        counts: Option<String>, // not PathBuf: clap's path parser rejects the empty "bare" value
        /// Output image (.png or .svg).
        #[arg(long)]
        out: PathBuf,
    },
    /// Quantize a token table (a run's, with its untied head, or a table file) to 8 or 4
    /// bits; report size, error, neighbour recall and (a run) the validation loss.
    Quantize(quantize::QuantizeArgs),
}

/// `ember embed neighbors`.
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--at -1` reaches our check, not "unexpected argument"
pub struct NeighborsArgs {
    #[command(flatten)]
    table: TableArgs,
    /// The query token (must be a row of the table); with --compare, the token compared.
    #[arg(long)]
    token: Option<String>,
    /// How many neighbours.
    #[arg(long, short = 'k', default_value_t = 10)]
    k: i64,
    /// dot, cosine or euclidean (score = dot product, cosine, or Euclidean distance).
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Subtract the mean row first (static neighbours only).
    #[arg(long)]
    center: bool,
    /// Whiten the table first (BERT-whitening; implies centering; static neighbours only).
    #[arg(long)]
    whiten: bool,
    /// Remove the mean and the top D principal directions first (all-but-the-top; static only).
    #[arg(long, value_name = "D", default_value_t = 0)]
    remove_top: usize,
    #[command(flatten)]
    probe: context::ProbeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where the table comes from and which backend computes on it.
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct TableArgs {
    /// A GloVe / word2vec text file (`word v1 … vd` per line, optional `N d` header), a
    /// `.safetensors` file (with --tensor and --vocab; or one written by `embed quantize
    /// --out`), or a run directory of `ember train` (its token table and tokenizer).
    pub table: PathBuf,
    /// safetensors only: the tensor holding the `[N, d]` table (default: the only 2-D tensor;
    /// `table` or `head` for a quantized file).
    #[arg(long)]
    pub tensor: Option<String>,
    /// safetensors only: tokenizer.json or a one-token-per-line file (default: tokenizer.json
    /// or vocab.txt next to the table; a quantized file stores its own).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Compute backend: flex, ndarray, wgpu, wgpu-cpu, cuda.
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

impl TableArgs {
    /// The run at TABLE, loaded on `device`, when TABLE is a run directory.
    pub fn run(&self, device: &burn::tensor::Device) -> anyhow::Result<Option<LoadedRun>> {
        let run = RunDir::new(&self.table);
        Ok(if run.exists() { Some(run.load(device)?) } else { None })
    }

    /// The run at TABLE, or an error saying that `what` needs one.
    pub fn require_run(&self, device: &burn::tensor::Device, what: &str) -> anyhow::Result<LoadedRun> {
        self.run(device)?.ok_or_else(|| {
            anyhow::anyhow!("{what} needs the model: {} is not a run directory of `ember train` (config.toml + checkpoint.bin)", self.table.display())
        })
    }
}

/// A loaded table and, when known, the count of each of its tokens, with where they came from.
pub struct Resolved {
    pub table: LoadedTable,
    /// `counts[i]` for row `i`, and a description of the source.
    pub counts: Option<(Vec<u64>, String)>,
}

/// Turn the TABLE argument into a loaded table (the one place that knows what TABLE can be:
/// a text table, a safetensors file, or a training run directory), with token counts from
/// `counts` (a frequency list; `Some("")` = the run's own corpus) or, for a run when
/// `auto_counts`, its training split.
pub fn resolve(args: &TableArgs, counts: Option<&PathBuf>, auto_counts: bool) -> anyhow::Result<Resolved> {
    let flex = burn::tensor::Device::flex();
    let run = args.run(&flex)?;
    let table = match &run {
        Some(r) => r.token_table(),
        None => ember_embed::load_table(&args.table, args.tensor.as_deref(), args.vocab.as_deref())?,
    };
    let counts = match (counts.filter(|p| !p.as_os_str().is_empty()), &run) {
        (Some(file), _) => {
            let c = frequency::load_counts(file, &table.tokens)?;
            if !c.unknown.is_empty() {
                let shown: Vec<&str> = c.unknown.iter().take(10).map(String::as_str).collect();
                eprintln!("note: {} token(s) of {} are not in the table and were ignored: {}{}", c.unknown.len(), file.display(), shown.join(" "), if c.unknown.len() > 10 { " …" } else { "" });
            }
            Some((c.counts, format!("counts from {}", file.display())))
        }
        (None, Some(r)) if auto_counts || counts.is_some() => match ember_train::embedding::token_counts(r) {
            Ok((_, c)) => Some((c, format!("counts over the training split of {}", r.config.data.corpus.display()))),
            Err(e) if counts.is_some() => return Err(e).context("counting the run's tokens for --counts"),
            Err(e) => {
                eprintln!("note: norm vs frequency skipped: cannot count the run's tokens: {e}");
                None
            }
        },
        (None, None) if counts.is_some() => {
            anyhow::bail!("bare --counts counts a run's corpus, and {} is not a run directory; pass --counts FILE (`token count` per line)", args.table.display())
        }
        _ => None,
    };
    Ok(Resolved { table, counts })
}

pub fn run(cmd: EmbedCmd) -> anyhow::Result<i32> {
    match cmd {
        EmbedCmd::Stats { table, counts, json } => {
            let device = ember_device::device_from_name(&table.backend)?;
            let r = resolve(&table, counts.as_ref(), true)?;
            let x = r.table.to_tensor(&device);
            let mut report = report::stats(&x)?;
            if let Some((c, _)) = &r.counts {
                report.norm_frequency = Some(frequency::norm_frequency(&x, c)?);
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", table.table.display());
                print!("{}", viz::embed::stats_text(&report, r.counts.as_ref().map(|c| c.1.as_str())));
            }
        }
        EmbedCmd::Neighbors(args) => {
            if args.k <= 0 {
                anyhow::bail!("--k {}: pass a positive number of neighbours", args.k);
            }
            if args.probe.is_contextual() {
                return context::run(args);
            }
            let NeighborsArgs { table, token, k, metric, center, whiten, remove_top, json, .. } = args;
            let token = token.ok_or_else(|| anyhow::anyhow!("--token WORD is required (or --context TEXT --at N on a run for a contextual state)"))?;
            let metric: Metric = metric.parse()?;
            let device = ember_device::device_from_name(&table.backend)?;
            let loaded = resolve(&table, None, false)?.table;
            let row = loaded.find(&token)?;
            let pre = Preprocess { center, whiten, remove_top };
            let x = pre.apply(loaded.to_tensor(&device)).context("preprocessing the table")?;
            let found = NeighborIndex::new(x, metric).search_rows(&[row], k as usize)?.remove(0);
            let report = NeighborsReport::new(&token, metric, &found, &loaded.tokens);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", viz::embed::neighbors_text(&report));
            }
        }
        EmbedCmd::Plot { table, counts, out } => {
            let device = ember_device::device_from_name(&table.backend)?;
            let r = resolve(&table, counts.map(PathBuf::from).as_ref(), false)?;
            let c = r.counts.as_ref().map(|c| c.0.as_slice());
            viz::embed::plot_table(&r.table.to_tensor(&device), &r.table.tokens, c, &out)?;
            println!("wrote {}", out.display());
        }
        EmbedCmd::Quantize(args) => return quantize::run(args),
    }
    Ok(0)
}
