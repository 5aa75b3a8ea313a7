//! `ember train`, `ember gradcheck`, `ember eval`, `ember sample`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use ember_device::device_from_name;
use ember_train::data::{Dataset, Split};
use ember_train::gradcheck::{self, Batch};
use ember_train::sample::SampleOptions;
use ember_train::trainer::{train, TrainOptions};
use ember_train::Config;

/// `ember train CONFIG`
#[derive(Args)]
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
    let mut config = Config::load(&args.config)?;
    if let Some(b) = args.backend {
        config.backend = b;
    }
    if let Some(s) = args.steps {
        config.train.steps = s;
        config.train.warmup = config.train.warmup.min(s.saturating_sub(1));
    }
    if let Some(out) = args.out {
        config.run.out_dir = out;
    }
    config.validate()?;
    let device = device_from_name(&config.backend)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130); // second Ctrl-C: give up now
            }
            eprintln!("\nCtrl-C: finishing this step and saving a checkpoint (press again to abort)");
        });
    }
    eprintln!("ember: training {} on {} → {}", args.config.display(), config.backend, config.run.out_dir.display());
    let options = TrainOptions { resume: args.resume, quiet: args.quiet, stop: Some(stop), stop_at: None };
    let out = train(&config, &device, &options)?;
    let run = ember_train::checkpoint::RunDir(config.run.out_dir.clone());
    ember::viz::loss::plot_loss_curve(&run.metrics(), &run.loss_curve())?;
    println!(
        "step {}: train loss {:.4}, val loss {:.4} ({:.1} ms/step, {:.0} tokens/s)",
        out.steps, out.final_train_loss, out.final_val_loss, out.ms_per_step, out.tokens_per_s
    );
    if out.interrupted {
        println!("interrupted; continue with: ember train {} --resume", args.config.display());
        return Ok(130);
    }
    let loaded = ember_train::run::load_run(&config.run.out_dir, &device)?;
    let options = SampleOptions { prompt: String::new(), tokens: 300, temperature: 0.8, top_k: Some(40), seed: config.train.seed, window: config.data.context };
    let text = ember_train::sample::sample(&loaded.model, &loaded.tokenizer, &options)?;
    std::fs::write(run.sample(), &text).with_context(|| format!("writing {}", run.sample().display()))?;
    println!("--- sample (temperature 0.8, top-k 40) ---\n{}\n---", text.trim_end());
    println!("run directory: {} (loss_curve.png, metrics.jsonl, checkpoint.bin)", config.run.out_dir.display());
    Ok(0)
}

/// `ember gradcheck [CONFIG]`
#[derive(Args)]
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
        Some(path) => {
            let mut config = Config::load(path)?;
            // One small batch is enough and keeps the finite differences quick.
            config.train.batch_size = config.train.batch_size.min(2);
            config.data.context = config.data.context.min(16);
            let data = Dataset::load(&config.data, None)?;
            let (b, t) = (config.train.batch_size, config.data.context);
            let ids = &data.ids(Split::Train)[..b * t + 1];
            let batch = Batch { ids: ids[..b * t].to_vec(), targets: ids[1..].to_vec(), batch: b, seq: t };
            (config, data.tokenizer.vocab_size(), batch)
        }
        None => gradcheck::default_problem(),
    };
    let backend = args.backend.clone().unwrap_or_else(|| config.backend.clone());
    let name: ember_device::BackendName = backend.parse()?;
    let mut device = name.device()?;
    // f64 on the host backends. wgpu accepts f64 on lavapipe but its f64 kernels returned NaN
    // in this model's forward pass (seen with Burn 0.22.1), so GPU backends check in f32.
    if !args.f32 && name.is_host_cpu() {
        gradcheck::try_f64(&mut device);
    }
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
    pub split: String,
    /// Score at most this many tokens (default: the whole split).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Backend (default flex).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<i32> {
    let device = device_from_name(&args.backend)?;
    let split = match args.split.as_str() {
        "train" => Split::Train,
        "val" => Split::Val,
        other => anyhow::bail!("--split must be `train` or `val`, got `{other}`"),
    };
    let run = ember_train::run::load_run(&args.run_dir, &device)?;
    let data = Dataset::load(&run.config.data, Some(run.tokenizer.clone()))?;
    let context = args.context.unwrap_or(run.config.data.context);
    let stride = args.stride.unwrap_or(context);
    let report = ember_train::eval::evaluate_split(&run.model, data.ids(split), split, context, stride, args.max_tokens, &device)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} split: {} tokens, context {}, stride {}: loss {:.4}, perplexity {:.3}",
            args.split, report.tokens, report.context, report.stride, report.loss, report.perplexity
        );
    }
    Ok(0)
}

/// `ember sample RUN_DIR`
#[derive(Args)]
pub struct SampleArgs {
    /// Run directory written by `ember train`.
    pub run_dir: PathBuf,
    /// Text to continue.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// New tokens.
    #[arg(long, default_value_t = 300)]
    pub tokens: usize,
    /// Softmax temperature.
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
}

pub fn run_sample(args: SampleArgs) -> anyhow::Result<i32> {
    let device = device_from_name(&args.backend)?;
    let run = ember_train::run::load_run(&args.run_dir, &device)?;
    let options = SampleOptions {
        prompt: args.prompt,
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
        window: run.config.data.context,
    };
    println!("{}", ember_train::sample::sample(&run.model, &run.tokenizer, &options)?);
    Ok(0)
}
