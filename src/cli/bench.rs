//! `ember bench step`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ember_device::device_from_name;
use ember_train::bench::bench_step;
use ember_train::Config;

/// `ember bench …`
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Time the phases of a training step (data, forward, backward, optimizer) and an eval batch.
    Step(StepArgs),
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

pub fn run(cmd: BenchCmd) -> anyhow::Result<i32> {
    match cmd {
        BenchCmd::Step(args) => run_step(args),
    }
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
