//! `ember train`, `ember gradcheck`, `ember eval`, `ember sample`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use ember_device::device_from_name;
use ember_train::config::Overrides;
use ember_train::dataset::{Dataset, Split};
use ember_train::eval::{self, EvalScaling, ScalingKind};
use ember_train::gradcheck;
use ember_train::run::RunDir;
use ember_train::sample::SampleOptions;
use ember_train::trainer::{train, TrainOptions};
use ember_train::Config;

/// `ember train CONFIG`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct TrainArgs {
    /// TOML config (see configs/).
    pub config: PathBuf,
    /// Backend: flex (default), ndarray, wgpu, wgpu-cpu, cuda. Overrides the config's `backend`.
    #[arg(long)]
    pub backend: Option<String>,
    /// Override train.steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override run.out_dir.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the run directory's checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run_train(args: TrainArgs) -> anyhow::Result<i32> {
    let resume_hint = resume_command(&args);
    let overrides = Overrides { backend: args.backend, steps: args.steps, out_dir: args.out };
    let config = Config::load(&args.config)?.with_overrides(&overrides)?;
    let device = device_from_name(&config.backend)?;
    let stop = stop_on_ctrl_c("finishing this step and saving a checkpoint");
    eprintln!("ember: training {} on {} → {}", args.config.display(), config.backend, config.run.out_dir.display());
    let options = TrainOptions { resume: args.resume, quiet: args.quiet, stop: Some(stop), stop_at: None };
    let out = train(&config, &device, &options)?;
    let run = RunDir::new(&config.run.out_dir);
    ember::viz::loss::plot_loss_curve(&run.metrics(), &run.loss_curve())?;
    println!(
        "step {}: train loss {:.4}, val loss {:.4} ({:.1} ms/step, {:.0} tokens/s)",
        out.steps, out.final_train_loss, out.final_val_loss, out.ms_per_step, out.tokens_per_s
    );
    if out.interrupted {
        println!("interrupted; continue with: {resume_hint}");
        return Ok(130);
    }
    let loaded = run.load(&device)?;
    let options = SampleOptions { prompt: String::new(), tokens: 300, temperature: 0.8, top_k: Some(40), seed: config.train.seed, window: config.data.context, cache: true };
    let text = ember_train::sample::sample(&loaded.model, &loaded.tokenizer, &options)?;
    run.save_sample(&text)?;
    println!("--- sample (temperature 0.8, top-k 40) ---\n{}\n---", text.trim_end());
    println!("run directory: {} (loss_curve.png, metrics.jsonl, checkpoint.bin)", config.run.out_dir.display());
    Ok(0)
}

/// The command that continues an interrupted `ember train` run: the same config and
/// overrides (`--backend`, `--steps`, `--out`), plus `--resume`; paths with spaces or quotes
/// are single-quoted for a POSIX shell.
fn resume_command(args: &TrainArgs) -> String {
    fn quoted(path: &std::path::Path) -> String {
        let s = path.display().to_string();
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) { s } else { format!("'{}'", s.replace('\'', "'\\''")) }
    }
    let mut cmd = format!("ember train {}", quoted(&args.config));
    if let Some(backend) = &args.backend {
        cmd += &format!(" --backend {backend}");
    }
    if let Some(steps) = args.steps {
        cmd += &format!(" --steps {steps}");
    }
    if let Some(out) = &args.out {
        cmd += &format!(" --out {}", quoted(out));
    }
    cmd + " --resume"
}

/// A flag Ctrl-C sets (after printing `what`); a second Ctrl-C exits at once with 130.
pub fn stop_on_ctrl_c(what: &'static str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // second Ctrl-C: give up now
        }
        eprintln!("\nCtrl-C: {what} (press again to abort)");
    });
    stop
}

/// `ember gradcheck [CONFIG]`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct GradcheckArgs {
    /// Config whose [model], [position] and data are used; default: a tiny built-in model on random ids.
    pub config: Option<PathBuf>,
    /// Backend (default: the config's, else flex).
    #[arg(long)]
    pub backend: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the tensors behind checks 1–3 to a safetensors file.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Run in f32 on flex/ndarray too (GPU backends always run in f32).
    #[arg(long)]
    pub f32: bool,
}

pub fn run_gradcheck(args: GradcheckArgs) -> anyhow::Result<i32> {
    let (config, vocab, batch) = match &args.config {
        Some(path) => gradcheck::problem_from_config(Config::load(path)?)?,
        None => gradcheck::default_problem(),
    };
    let backend = args.backend.clone().unwrap_or_else(|| config.backend.clone());
    let device = gradcheck::check_device(backend.parse()?, args.f32)?;
    let report = gradcheck::run(&config, vocab, &batch, &device, args.dump.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("gradient check on {backend} in {:?} (pass when max_rel_err ≤ tolerance)", report.dtype);
        println!("{:<62} {:>11} {:>11} {:>9}  result", "check", "max_abs", "max_rel", "tol");
        for c in &report.checks {
            println!("{:<62} {:>11.3e} {:>11.3e} {:>9.1e}  {}", c.name, c.max_abs_err, c.max_rel_err, c.tolerance, if c.pass { "PASS" } else { "FAIL" });
        }
        println!("{}", if report.pass { "all checks PASS" } else { "some checks FAIL" });
        if let Some(p) = &args.dump {
            println!("tensors written to {}", p.display());
        }
    }
    Ok(if report.pass { 0 } else { 1 })
}

/// `ember eval RUN_DIR`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct EvalArgs {
    /// Run directory written by `ember train`.
    pub run_dir: PathBuf,
    /// Window length (default: the training context).
    #[arg(long)]
    pub context: Option<usize>,
    /// Window step (default: the context, i.e. non-overlapping); smaller = sliding window.
    #[arg(long)]
    pub stride: Option<usize>,
    /// train or val.
    #[arg(long, default_value = "val")]
    pub split: Split,
    /// Score at most this many tokens (default: the whole split).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Backend (default flex).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Evaluate a RoPE run with frequency scaling switched on: linear, dynamic, yarn or
    /// llama3 (original context = the run's training context; the run's files are not changed).
    #[arg(long, requires = "factor")]
    pub rope_scaling: Option<ScalingKind>,
    /// Scaling factor for --rope-scaling (e.g. eval length / training context).
    #[arg(long, requires = "rope_scaling")]
    pub factor: Option<f64>,
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<i32> {
    let device = device_from_name(&args.backend)?;
    let split = args.split;
    let mut run = RunDir::new(&args.run_dir).load(&device)?;
    if let (Some(kind), Some(factor)) = (args.rope_scaling, args.factor) {
        run = eval::with_rope_scaling(run, &EvalScaling { kind, factor }, &device)?;
    }
    let data = Dataset::load(&run.config.data, Some(run.tokenizer.clone()))?;
    let context = args.context.unwrap_or(run.config.data.context);
    let stride = args.stride.unwrap_or(context);
    let report = eval::evaluate_run(&run, &data, split, context, stride, args.max_tokens, &device)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} split: {} tokens, context {}, stride {}: loss {:.4}, perplexity {:.3}",
            args.split.as_str(), report.tokens, report.context, report.stride, report.loss, report.perplexity
        );
    }
    Ok(0)
}

/// `ember sample RUN_DIR`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // `--temperature -1` reaches our check, not "unexpected argument"
pub struct SampleArgs {
    /// Run directory written by `ember train`.
    pub run_dir: PathBuf,
    /// Text to continue.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// New tokens.
    #[arg(long, default_value_t = 300)]
    pub tokens: usize,
    /// Softmax temperature; 0 = greedy (always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Keep the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend (default flex).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Recompute the whole window for every new token instead of using the KV cache
    /// (same tokens; slower).
    #[arg(long)]
    pub no_cache: bool,
    /// Print `{"text", "tokens", "tokens_per_s", "cached"}` as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_sample(args: SampleArgs) -> anyhow::Result<i32> {
    let device = device_from_name(&args.backend)?;
    let run = RunDir::new(&args.run_dir).load(&device)?;
    let options = SampleOptions {
        prompt: args.prompt,
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
        window: run.config.data.context,
        cache: !args.no_cache,
    };
    let out = ember_train::sample::generate(&run.model, &run.tokenizer, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{}", out.text);
    }
    Ok(0)
}
