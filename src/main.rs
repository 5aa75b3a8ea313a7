//! The `ember` command line: a thin shell over the library crates. Each subcommand parses
//! its arguments and calls one library function; see `ember --help`.

use clap::{Parser, Subcommand};

mod allocator;
mod cli;
mod pool;

#[derive(Parser)]
#[command(name = "ember", version, about = "A trainable transformer front-end on Burn: embeddings, tied heads, position schemes, a tiny LM.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect embedding tables: statistics, nearest neighbours, plots.
    #[command(subcommand)]
    Embed(cli::embed::EmbedCmd),
    /// Show and plot what a position scheme computes.
    #[command(subcommand)]
    Position(cli::position::PositionCmd),
    /// Train a tiny LM from a TOML config (see configs/).
    Train(cli::train::TrainArgs),
    /// Verify the model's gradients: analytic softmax-CE formulas and finite differences vs autodiff.
    Gradcheck(cli::train::GradcheckArgs),
    /// Loss and perplexity of a trained run (non-overlapping or sliding windows).
    Eval(cli::train::EvalArgs),
    /// Generate text from a trained run.
    Sample(cli::train::SampleArgs),
    /// Benchmarks: `bench step` times the phases of a training step, `bench head` the LM head (plain or fused).
    #[command(subcommand)]
    Bench(cli::bench::BenchCmd),
    /// Write a run's weights as safetensors (ember or nanoGPT names) for PyTorch users.
    Export(cli::interop::ExportArgs),
    /// Read another framework's checkpoint into a new run directory (`import nanogpt`).
    #[command(subcommand)]
    Import(cli::interop::ImportCmd),
    /// Compare position schemes: train each variant × seed, evaluate at longer lengths.
    Ablate(cli::ablate::AblateArgs),
}

fn main() {
    allocator::retain_freed_memory();
    let cli = Cli::parse();
    // Every command runs on the rayon pool (`pool`: no hand-offs per parallel op).
    let result = pool::on_pool(move || match cli.command {
        Command::Embed(cmd) => cli::embed::run(cmd),
        Command::Position(cmd) => cli::position::run(cmd),
        Command::Train(args) => cli::train::run_train(args),
        Command::Gradcheck(args) => cli::train::run_gradcheck(args),
        Command::Eval(args) => cli::train::run_eval(args),
        Command::Sample(args) => cli::train::run_sample(args),
        Command::Bench(cmd) => cli::bench::run(cmd),
        Command::Ablate(args) => cli::ablate::run(args),
        Command::Export(args) => cli::interop::run_export(args),
        Command::Import(cmd) => cli::interop::run_import(cmd),
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(2);
        }
    }
}
