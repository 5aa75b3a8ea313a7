//! `ember export` and `ember import nanogpt`: thin over `ember_train::interop`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ember_device::device_from_name;
use ember_train::interop::{self, ImportOptions, Names};
use ember_train::run::RunDir;

/// `ember export RUN_DIR --format safetensors`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // negative numbers reach ember's checks, not "unexpected argument"
pub struct ExportArgs {
    /// Run directory written by `ember train` (or `ember import`).
    pub run_dir: PathBuf,
    /// Output format (only safetensors).
    #[arg(long, default_value = "safetensors", value_parser = ["safetensors"])]
    pub format: String,
    /// Tensor names and layouts: ember (Burn paths, [in, out] linears) or nanogpt
    /// (nanoGPT's state-dict keys, PyTorch's [out, in] linears, lm_head.weight included).
    #[arg(long, default_value = "ember")]
    pub names: Names,
    /// Output file (default: RUN_DIR/model.safetensors, or RUN_DIR/nanogpt.safetensors with --names nanogpt).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Backend to load the run on (default flex).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Print `{"path", "tensors", "names"}` as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_export(args: ExportArgs) -> anyhow::Result<i32> {
    let device = device_from_name(&args.backend)?;
    let run = RunDir::new(&args.run_dir).load(&device)?;
    let out = args.out.unwrap_or_else(|| args.run_dir.join(args.names.default_file()));
    let summary = interop::export_safetensors(&run, args.names, &out)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("wrote {} ({} tensors, {} names)", summary.path.display(), summary.tensors, summary.names);
    }
    Ok(0)
}

/// `ember import …`
#[derive(Subcommand)]
pub enum ImportCmd {
    /// A nanoGPT checkpoint (ckpt.pt, or a safetensors file from `ember export --names nanogpt`) → a new run directory.
    Nanogpt(ImportNanogptArgs),
}

/// `ember import nanogpt CKPT --out RUN_DIR`
#[derive(Args)]
#[command(allow_negative_numbers = true)] // negative numbers reach ember's checks, not "unexpected argument"
pub struct ImportNanogptArgs {
    /// nanoGPT's ckpt.pt (its `model` and `model_args`), or nanoGPT-named safetensors.
    pub checkpoint: PathBuf,
    /// The run directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// nanoGPT's meta.pkl (character vocabulary; default: data/<dataset>/meta.pkl from the checkpoint's config, if found).
    #[arg(long, conflicts_with = "tokenizer")]
    pub meta: Option<PathBuf>,
    /// A tokenizer.json instead of meta.pkl.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// The corpus the model was trained on (default: input.txt beside meta.pkl).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Backend to load the weights on (default flex).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_import(cmd: ImportCmd) -> anyhow::Result<i32> {
    let ImportCmd::Nanogpt(args) = cmd;
    let device = device_from_name(&args.backend)?;
    let opts = ImportOptions { checkpoint: args.checkpoint, out: args.out, meta: args.meta, tokenizer: args.tokenizer, corpus: args.corpus };
    let s = interop::import_nanogpt(&opts, &device)?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        let a = &s.model_args;
        println!(
            "imported {} → {}: {} layers, {} heads, d {}, block_size {}, vocab {}, bias {}, {} head, step {}",
            opts.checkpoint.display(), s.run.display(), a.n_layer, a.n_head, a.n_embd, a.block_size, a.vocab_size, a.bias,
            if s.tied { "tied" } else { "untied" }, s.step
        );
        println!("vocabulary {}, corpus {}; try: ember eval {}", s.vocabulary.display(), s.corpus.display(), s.run.display());
    }
    Ok(0)
}
