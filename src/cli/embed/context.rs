//! `ember embed neighbors RUN --context TEXT --at N [--layer L]` and `--compare`: hidden
//! states of the run's model (`ember_train::embedding::probe`), printed.

use anyhow::Context as _;
use clap::Args;
use ember::viz;
use ember_embed::neighbors::Metric;
use ember_train::embedding::probe::{compare_contexts, contextual_neighbors, ProbeRequest};
use ember_train::embedding::token_counts;

use super::NeighborsArgs;

/// The contextual flags of `ember embed neighbors` (a run directory only).
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct ProbeArgs {
    /// Run the model on TEXT and search from the hidden state at --at (a run only).
    #[arg(long, value_name = "TEXT")]
    context: Option<String>,
    /// The 0-based token position in --context whose state is searched from.
    #[arg(long, value_name = "N")]
    at: Option<i64>,
    /// The layer: 0 = input embedding plus position (what enters block 0), n_layers = after
    /// the final norm (default: the last).
    #[arg(long, value_name = "L")]
    layer: Option<i64>,
    /// Corpus positions sampled (from the training split) for the corpus neighbours.
    #[arg(long, value_name = "M", default_value_t = 2048)]
    sample: i64,
    /// Seed of the corpus sample and of the --compare contexts.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Compare one token's states across corpus contexts (mean pairwise cosine, layer by
    /// layer unless --layer) with its static row: the token of --token, or the one at --at.
    #[arg(long)]
    compare: bool,
    /// --compare: how many corpus contexts (occurrences of the token).
    #[arg(long, value_name = "C", default_value_t = 16)]
    contexts: i64,
}

impl ProbeArgs {
    /// Whether any contextual flag was given (else the search is static).
    pub fn is_contextual(&self) -> bool {
        self.context.is_some() || self.at.is_some() || self.layer.is_some() || self.compare
    }
}

pub fn run(args: NeighborsArgs) -> anyhow::Result<i32> {
    let NeighborsArgs { table, token, k, metric, center, whiten, remove_top, probe: p, json } = args;
    if center || whiten || remove_top > 0 {
        anyhow::bail!("--center/--whiten/--remove-top preprocess the static table; they do not apply to --context/--compare");
    }
    let metric: Metric = metric.parse()?;
    if p.seed < 0 {
        anyhow::bail!("--seed {}: pass a non-negative seed", p.seed);
    }
    let (k, seed) = (k as usize, p.seed as u64);
    let device = ember_device::device_from_name(&table.backend)?;
    let run = table.require_run(&device, "--context/--at/--layer/--compare")?;
    let (data, _) = token_counts(&run).context("reading the run's corpus")?;
    if p.compare {
        let token_id = match (&token, &p.context, p.at) {
            (Some(t), None, None) => run.token_table().find(t)? as u32,
            (None, Some(text), Some(at)) => ember_train::embedding::context::contextual_state(&run.model, &run.tokenizer, text, at, 0, &device)?.token_id,
            _ => anyhow::bail!("--compare needs the token: either --token WORD, or --context TEXT --at N (the token at N)"),
        };
        let report = compare_contexts(&run, &data, token_id, p.layer, p.contexts, seed, &device)?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", viz::embed::spread_text(&report));
        }
        return Ok(0);
    }
    let (Some(text), Some(at)) = (p.context, p.at) else {
        anyhow::bail!("a contextual search needs both --context TEXT and --at N (the 0-based token position in TEXT)");
    };
    if token.is_some() {
        anyhow::bail!("--token and --context exclude each other: the query is the token at --at in --context (use --compare to follow --token across contexts)");
    }
    let req = ProbeRequest { text, at, layer: p.layer, metric, k, sample: p.sample, seed };
    let report = contextual_neighbors(&run, &data, &req, &device)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", viz::embed::context_neighbors_text(&report));
    }
    Ok(0)
}
