//! `ember ablate CONFIG [--shard i/n | --collect | --jobs N] [--compare A B]`: compare
//! position schemes (see `ember_train::ablate` for the config, the outputs, and Slurm /
//! GNU parallel recipes; `jobs` for how `--jobs` children are ended).

mod jobs;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ember_device::device_from_name;
use ember_train::ablate::results::{collect, is_done, loss_curves, output_files, paired_markdown, write_outputs};
use ember_train::ablate::runner::progress_bar;
use ember_train::ablate::{grid, run_shard, AblateOptions, Ablation, Shard};

use ember::viz::ablate::{plot_attention, plot_extrapolation, plot_loss_curves};
use jobs::{supervise, Children, Ending};

/// `ember ablate CONFIG`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct AblateArgs {
    /// Ablation TOML (see configs/ablation-*.toml).
    pub config: PathBuf,
    /// Run only shard i of n (0 ≤ i < n); its cells go to the shared out_dir. Merge with --collect.
    #[arg(long, conflicts_with_all = ["collect", "jobs"])]
    pub shard: Option<Shard>,
    /// Merge the finished cells of all shards into results.{csv,json,md} and the plots.
    #[arg(long, conflicts_with = "jobs")]
    pub collect: bool,
    /// Run N shards at once as child processes, each with RAYON_NUM_THREADS = cores / N.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub jobs: Option<usize>,
    /// Also print the paired difference A − B (per seed, then mean and 95 % t interval) at
    /// every length and mode, after the run or the merge.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "shard")]
    pub compare: Option<Vec<String>>,
    /// Backend (default: the base config's).
    #[arg(long)]
    pub backend: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: AblateArgs) -> anyhow::Result<i32> {
    let ablation = Ablation::load(&args.config)?;
    if let Some([x, y]) = args.compare.as_deref() {
        ablation.check_compare(x, y)?; // before hours of training, not after
    }
    if !args.collect {
        let code = match args.jobs {
            Some(n) if n > 1 => run_jobs(&args, &ablation, n)?,
            _ => run_here(&args, &ablation)?,
        };
        if code != 0 {
            return Ok(code);
        }
        if let Some(s) = args.shard {
            println!("shard {s} done; merge with: ember ablate {} --collect", args.config.display());
            return Ok(0);
        }
    }
    finish(&ablation, args.compare.as_deref())?;
    Ok(0)
}

/// Run this process's shard (all of it without --shard).
fn run_here(args: &AblateArgs, a: &Ablation) -> anyhow::Result<i32> {
    let backend = args.backend.clone().unwrap_or_else(|| a.base.backend.clone());
    let device = device_from_name(&backend)?;
    let stop = super::train::stop_on_ctrl_c("saving the running training's checkpoint");
    let shard = args.shard.unwrap_or(Shard::ALL);
    let options = AblateOptions { shard, quiet: args.quiet, stop: Some(stop), stop_at: None };
    let out = run_shard(a, &device, &options)?;
    eprintln!("ember ablate: shard {shard}: {} cells evaluated, {} already done, trained {:?}", out.evaluated, out.skipped, out.trained);
    if out.interrupted {
        println!("interrupted; rerun `ember ablate {}` to resume", args.config.display());
        return Ok(130);
    }
    Ok(0)
}

/// `--jobs N`: N child processes, one per shard, cores split between them; supervised by
/// [`jobs::supervise`] so that a failure or Ctrl-C ends them all.
fn run_jobs(args: &AblateArgs, a: &Ablation, n: usize) -> anyhow::Result<i32> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = (cores / n).max(1);
    let exe = std::env::current_exe()?;
    let ctrl_c = count_ctrl_c();
    let mut children = Children::default(); // dropped on every return: kills what still runs
    for i in 0..n {
        let mut cmd = Command::new(&exe);
        cmd.arg("ablate").arg(&args.config).arg("--shard").arg(format!("{i}/{n}")).arg("--quiet").env("RAYON_NUM_THREADS", threads.to_string());
        if let Some(b) = &args.backend {
            cmd.arg("--backend").arg(b);
        }
        let pid = children.spawn(format!("shard {i}/{n}"), cmd)?;
        eprintln!("ember ablate: shard {i}/{n} is process {pid} ({threads} threads)");
    }
    let cells = grid::cells(a);
    let bar = progress_bar(cells.len(), args.quiet);
    bar.set_message(format!("{n} jobs × {threads} threads"));
    let ending = supervise(&mut children, &ctrl_c, STOP_GRACE, || bar.set_position(cells.iter().filter(|c| is_done(a, c)).count() as u64))?;
    bar.finish_and_clear();
    Ok(match ending {
        Ending::Done => 0,
        Ending::Failed { code, .. } => code,
        Ending::Interrupted => {
            println!("interrupted; rerun `ember ablate {} --jobs {n}` to resume", args.config.display());
            130
        }
    })
}

/// How long stopped shards get to save their checkpoints before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Counts Ctrl-C presses (for [`jobs::supervise`]); the process does not exit on them.
fn count_ctrl_c() -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let _ = ctrlc::set_handler(move || {
        h.fetch_add(1, Ordering::SeqCst);
    });
    hits
}

/// Merge every cell into the outputs and draw the plots; print `results.md` and, with
/// `compare = [A, B]`, the paired difference A − B.
fn finish(a: &Ablation, compare: Option<&[String]>) -> anyhow::Result<()> {
    let rows = collect(a)?;
    write_outputs(a, &rows)?;
    let [csv, json, md, curves, extrapolation, attention] = output_files(&a.config.out_dir);
    let failed = |path: &std::path::Path, e: Box<dyn std::error::Error>| anyhow::anyhow!("cannot draw {}: {e}", path.display());
    plot_loss_curves(&loss_curves(a)?, &curves).map_err(|e| failed(&curves, e))?;
    plot_extrapolation(a, &rows, &extrapolation).map_err(|e| failed(&extrapolation, e))?;
    plot_attention(a, &rows, &attention).map_err(|e| failed(&attention, e))?;
    print!("{}", std::fs::read_to_string(&md)?);
    if let Some([x, y]) = compare {
        print!("\n{}", paired_markdown(a, &rows, x, y));
    }
    let written: Vec<String> = [&csv, &json, &md, &curves, &extrapolation, &attention].iter().map(|p| p.display().to_string()).collect();
    println!("\nwrote {}", written.join(", "));
    Ok(())
}
