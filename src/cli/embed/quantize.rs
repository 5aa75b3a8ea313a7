//! `ember embed quantize TABLE --bits 8|4 [--scheme rowwise|groupwise --group G] [--out FILE]`:
//! a run directory (table + untied head, with validation losses) or a table file (no model:
//! the losses are `null`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ember_embed::quantize::{check_bits, Scheme};
use ember_train::embedding::quantized::{quantize_run, quantize_table};
use ember_train::embedding::token_counts;

use super::TableArgs;

/// `ember embed quantize`.
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--bits -4` reaches our check, not "unexpected argument"
pub struct QuantizeArgs {
    #[command(flatten)]
    table: TableArgs,
    /// Bits per code: 8 or 4 (4-bit codes are packed two per byte).
    #[arg(long)]
    bits: i64,
    /// rowwise (one scale per row) or groupwise (one per --group entries of a row).
    #[arg(long, default_value = "rowwise")]
    scheme: String,
    /// groupwise only: entries per scale (must divide d).
    #[arg(long, value_name = "G")]
    group: Option<i64>,
    /// Write the quantized table (int codes + f32 scales, safetensors) here; `embed stats`
    /// and `embed neighbors` read it back.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// A run only: score at most this many validation targets (default: the whole split).
    #[arg(long, value_name = "N")]
    max_tokens: Option<i64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: QuantizeArgs) -> anyhow::Result<i32> {
    let bits = check_bits(a.bits)?;
    let scheme = Scheme::parse(&a.scheme, a.group)?;
    let max_tokens = match a.max_tokens {
        Some(n) if n <= 0 => anyhow::bail!("--max-tokens {n}: pass a positive number of targets, or drop it to score the whole split"),
        n => n.map(|n| n as usize),
    };
    let device = ember_device::device_from_name(&a.table.backend)?;
    let (report, what) = match a.table.run(&device)? {
        Some(run) => {
            let (data, _) = token_counts(&run).context("reading the run's corpus for the validation loss")?;
            let (report, weights) = quantize_run(&run, &data, bits, scheme, max_tokens, &device)?;
            if let Some(out) = &a.out {
                ember_embed::quantize::save(out, &run.tokenizer.tokens(), &weights.table, weights.head.as_ref())?;
            }
            (report, if run.model.head.is_tied() { "token table (tied head)" } else { "token table + untied head" })
        }
        None => {
            if max_tokens.is_some() {
                anyhow::bail!("--max-tokens applies to a run directory (its validation loss); {} is a table file", a.table.table.display());
            }
            let table = super::resolve(&a.table, None, false)?.table;
            let (report, q) = quantize_table(table.to_tensor(&device), bits, scheme)?;
            if let Some(out) = &a.out {
                ember_embed::quantize::save(out, &table.tokens, &q, None)?;
            }
            (report, "table")
        }
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", ember::viz::embed::quantize_text(&report, what));
        if let Some(out) = &a.out {
            println!("wrote {}", out.display());
        }
    }
    Ok(0)
}
