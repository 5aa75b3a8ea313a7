//! `ember bench step`, `ember bench head`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ember_device::device_from_name;
use ember_train::bench::{bench_head, bench_step, HeadBenchOptions};
use ember_train::Config;

/// `ember bench …`
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Time the phases of a training step (data, forward, backward, optimizer) and an eval batch.
    Step(StepArgs),
    /// Time the LM head's forward + backward (plain or fused) and report peak memory.
    Head(HeadArgs),
}

/// `ember bench step CONFIG`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct StepArgs {
    /// TOML config (see configs/): its model, data and batch size are benchmarked.
    pub config: PathBuf,
    /// Backend: flex, ndarray, wgpu, wgpu-cpu, cuda (default: the config's).
    #[arg(long)]
    pub backend: Option<String>,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ember bench head --vocab V --tokens N --dim d [--fused] [--chunk C]`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--vocab -1` reaches our check, not "unexpected argument"
pub struct HeadArgs {
    /// Vocabulary size V.
    #[arg(long)]
    pub vocab: i64,
    /// Positions N (rows of the hidden states).
    #[arg(long)]
    pub tokens: i64,
    /// Hidden width d.
    #[arg(long)]
    pub dim: i64,
    /// The fused, chunked head instead of logits + cross-entropy.
    #[arg(long)]
    pub fused: bool,
    /// Rows per chunk of the fused head (default: ember_embed's default_chunk(V)); needs --fused.
    #[arg(long)]
    pub chunk: Option<i64>,
    /// Backend: flex, ndarray, wgpu, wgpu-cpu, cuda.
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Timed calls (after one warm-up call).
    #[arg(long, default_value_t = 3)]
    pub repeat: i64,
    /// Print `{"vocab","tokens","dim","fused","chunk","ms","peak_bytes"}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCmd) -> anyhow::Result<i32> {
    match cmd {
        BenchCmd::Step(args) => run_step(args),
        BenchCmd::Head(args) => run_head(args),
    }
}

/// A flag that must be a positive count.
fn count(flag: &str, value: i64) -> anyhow::Result<usize> {
    if value < 1 {
        anyhow::bail!("{flag}: must be ≥ 1, got {value}");
    }
    Ok(value as usize)
}

fn run_head(args: HeadArgs) -> anyhow::Result<i32> {
    let vocab = count("--vocab", args.vocab)?;
    let chunk = match (args.fused, args.chunk) {
        (false, Some(_)) => anyhow::bail!("--chunk: only the fused head is chunked; add --fused"),
        (false, None) => None,
        (true, None) => Some(ember_embed::fused::default_chunk(vocab)),
        (true, Some(c)) => Some(count("--chunk", c)?),
    };
    let options = HeadBenchOptions { vocab, tokens: count("--tokens", args.tokens)?, dim: count("--dim", args.dim)?, fused_chunk: chunk, repeats: count("--repeat", args.repeat)? };
    let device = device_from_name(&args.backend)?;
    let b = bench_head(&options, &device)?;
    if args.json {
        println!("{}", serde_json::to_string(&b)?);
        return Ok(0);
    }
    let head = match b.chunk {
        Some(c) => format!("fused head, chunks of {c} rows"),
        None => "plain head (logits + cross-entropy)".into(),
    };
    println!("{head} on {}: V = {}, N = {}, d = {}", args.backend, b.vocab, b.tokens, b.dim);
    println!("  forward + backward {:>10.2} ms (mean of {} after 1 warm-up)", b.ms, options.repeats);
    match b.peak_bytes {
        Some(p) => println!("  peak memory        {:>10.1} MiB ({})", p as f64 / (1 << 20) as f64, b.peak_source),
        None => println!("  peak memory        n/a"),
    }
    Ok(0)
}

fn run_step(args: StepArgs) -> anyhow::Result<i32> {
    let config = Config::load(&args.config)?;
    let backend = args.backend.unwrap_or_else(|| config.backend.clone());
    let device = device_from_name(&backend)?;
    let b = bench_step(&config, &device, args.steps)?;
    if args.json {
        println!("{}", serde_json::to_string(&b)?);
        return Ok(0);
    }
    println!("{} on {backend}: batch {} × {} tokens, {} parameters, {} timed steps (after 1 warm-up)", args.config.display(), b.batch_size, b.context, b.params, b.steps);
    for (phase, ms) in [("data", b.data_ms), ("forward", b.forward_ms), ("backward", b.backward_ms), ("clip + decay + optimizer", b.optimizer_ms), ("step", b.step_ms), ("eval batch (not in step)", b.eval_batch_ms)] {
        println!("  {phase:<26} {ms:>9.2} ms");
    }
    let cpu = b.cpu_utilisation.map_or("n/a".into(), |c| format!("{c:.2} cores"));
    println!("  {:.0} tokens/s, {:.1} GFLOP/s ({:.1} MFLOP/step), CPU {cpu}", b.tokens_per_s, b.gflop_per_s, b.flops_per_step / 1e6);
    Ok(0)
}
