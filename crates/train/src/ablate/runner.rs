//! Run the jobs of a shard: train (fresh, resumed or skipped), then evaluate each cell at
//! every length in both modes and save it.
//!
//! Resume: a cell whose file exists is skipped; a job whose cells are all finished does not
//! even load its run; a run whose checkpoint is at `train.steps` is not trained again; a run
//! with an earlier checkpoint (an interrupted job) continues from it
//! (`TrainOptions { resume: true }`, bit-identical on CPU backends).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::config::Ablation;
use super::grid::{shard_jobs, Cell, Job, Shard};
use super::results::{check_settings, is_done, modes, save_cell, Row, ATTENTION_ROWS, TASK_MODE};
use crate::dataset::{Dataset, Split};
use crate::diagnostics::{attention_stats_of, HeadStats};
use crate::tasks::score::EVAL_STREAM;
use crate::eval::{evaluate_split, untrained_length, with_rope_scaling};
use crate::run::{Checkpoint, LoadedRun, RunDir};
use crate::trainer::{train, TrainOptions};
use crate::TrainError;

/// How [`run_shard`] runs.
#[derive(Clone, Debug)]
pub struct AblateOptions {
    /// Which slice of the jobs.
    pub shard: Shard,
    /// No progress bar.
    pub quiet: bool,
    /// Ctrl-C: the running training saves a checkpoint and the shard stops (between
    /// evaluations: before the next cell; finished cells are kept).
    pub stop: Option<Arc<AtomicBool>>,
    /// Tests: stop each training after this many steps (as if interrupted).
    pub stop_at: Option<usize>,
}

impl Default for AblateOptions {
    fn default() -> Self {
        Self { shard: Shard::ALL, quiet: false, stop: None, stop_at: None }
    }
}

/// What [`run_shard`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardOutcome {
    /// Cells evaluated in this call.
    pub evaluated: usize,
    /// Cells already finished, skipped.
    pub skipped: usize,
    /// Runs trained (or continued) in this call, as `label/seed-N`.
    pub trained: Vec<String>,
    /// A training was interrupted; its checkpoint is saved and the shard stopped.
    pub interrupted: bool,
}

/// A bar over `total` cells (hidden when `quiet`): cells done / left and the ETA.
pub fn progress_bar(total: usize, quiet: bool) -> ProgressBar {
    let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(total as u64), target);
    bar.set_style(ProgressStyle::with_template("{bar:30} cells {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}").expect("valid template"));
    bar
}

/// Run the jobs of `options.shard` on `device`. See the module docs.
pub fn run_shard(a: &Ablation, device: &Device, options: &AblateOptions) -> Result<ShardOutcome, TrainError> {
    check_settings(a)?;
    let jobs = shard_jobs(a, options.shard);
    let bar = progress_bar(jobs.iter().map(|j| j.cells.len()).sum(), options.quiet);
    let mut out = ShardOutcome::default();
    for job in &jobs {
        let todo: Vec<&Cell> = job.cells.iter().filter(|c| !is_done(a, c)).collect();
        let skipped = job.cells.len() - todo.len();
        out.skipped += skipped;
        bar.inc(skipped as u64);
        if todo.is_empty() {
            bar.reset_eta();
            continue;
        }
        bar.set_message(format!("training {} seed {}", job.variant, job.seed));
        if stopped(options) || train_job(a, job, device, options, &mut out)? {
            out.interrupted = true;
            bar.abandon_with_message(format!("interrupted during {} seed {}; rerun the same command to resume", job.variant, job.seed));
            return Ok(out);
        }
        let run = RunDir::new(a.run_dir(&job.variant, job.seed));
        let train_time_s = Checkpoint::load(&run.checkpoint())?.state.elapsed_s;
        for cell in todo {
            if stopped(options) {
                // Ctrl-C between evaluations: finished cells are saved; the rest are redone on resume.
                out.interrupted = true;
                bar.abandon_with_message(format!("interrupted before evaluating {} seed {}; rerun the same command to resume", cell.variant, cell.seed));
                return Ok(out);
            }
            bar.set_message(format!("evaluating {} seed {}", cell.variant, cell.seed));
            let rows = evaluate_cell(a, cell, &run, train_time_s, device)?;
            save_cell(a, cell, &rows)?;
            out.evaluated += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Whether `options.stop` (Ctrl-C) is set.
fn stopped(options: &AblateOptions) -> bool {
    options.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
}

/// Train the job's run unless its checkpoint is complete; `Ok(true)` when interrupted.
fn train_job(a: &Ablation, job: &Job, device: &Device, options: &AblateOptions, out: &mut ShardOutcome) -> Result<bool, TrainError> {
    let variant = a.variant(&job.variant).expect("jobs come from the config");
    let config = a.run_config(variant, job.seed);
    let run = RunDir::new(&config.run.out_dir);
    let resume = run.checkpoint().exists();
    if resume && Checkpoint::load(&run.checkpoint())?.state.step >= config.train.steps {
        return Ok(false);
    }
    let train_options = TrainOptions { resume, quiet: true, stop: options.stop.clone(), stop_at: options.stop_at };
    let outcome = train(&config, device, &train_options)?;
    out.trained.push(format!("{}/seed-{}", job.variant, job.seed));
    Ok(outcome.interrupted)
}

/// Attention diagnostics ([`crate::diagnostics`]) of a loaded run at evaluation length `len`
/// on [`ATTENTION_ROWS`] sequences: for a task, the inputs of the first fresh evaluation
/// examples of operand length `len` (the ones [`crate::tasks::evaluate`] scores, without their
/// last token, which is only a target; as long as the scorer's inputs); for a corpus, the first windows
/// of `len` tokens of the evaluation split (fewer when the split is short). `[layer][head]`.
fn attention_probe(loaded: &LoadedRun, data: &Dataset, split: Split, len: usize) -> Result<Vec<Vec<HeadStats>>, TrainError> {
    let (ids, rows): (Vec<usize>, usize) = match &loaded.config.data.task {
        Some(task) => {
            let examples = (0..ATTENTION_ROWS as u64).map(|i| task.encode(&loaded.tokenizer, EVAL_STREAM, i, len)).collect::<Result<Vec<_>, _>>()?;
            // the model's inputs: every token but the last (the closing `\n` is only a target)
            (examples.iter().flat_map(|e| e.ids[..e.ids.len() - 1].iter().map(|&t| t as usize)).collect(), ATTENTION_ROWS)
        }
        None => {
            let split_ids = data.ids(split);
            let rows = (split_ids.len() / len).clamp(1, ATTENTION_ROWS);
            (split_ids.iter().take(rows * len).map(|&t| t as usize).collect(), rows)
        }
    };
    Ok(attention_stats_of(&loaded.model, &ids, rows)?)
}

/// Every row of `cell` (each evaluation length × mode) from the trained run `run`.
pub fn evaluate_cell(a: &Ablation, cell: &Cell, run: &RunDir, train_time_s: f64, device: &Device) -> Result<Vec<Row>, TrainError> {
    let variant = a.variant(&cell.variant).expect("cells come from the config");
    let mut loaded: LoadedRun = run.load(device)?;
    if let Some(scaling) = &variant.rope_scaling {
        loaded = with_rope_scaling(loaded, scaling, device)?;
    }
    let data = Dataset::load(&loaded.config.data, Some(loaded.tokenizer.clone()))?;
    let e = &a.config.eval;
    let mut rows = Vec::new();
    for len in a.eval_tokens() {
        for &mode in modes(a) {
            let stride = if mode == "sliding" { ((len as f64 * e.sliding_stride).round() as usize).clamp(1, len) } else { len };
            let mut row = Row {
                variant: cell.variant.clone(),
                seed: cell.seed,
                eval_len: len,
                mode: mode.into(),
                loss: None,
                perplexity: None,
                accuracy: None,
                greedy: None,
                greedy_prefix: None,
                tokens: None,
                train_time_s,
                reason: None,
                attention: None,
            };
            let task = loaded.config.data.task.clone();
            let seq = task.as_ref().map_or(len, |t| t.positions(len));
            match untrained_length(&loaded.config, seq) {
                Some(reason) => row.reason = Some(reason),
                None if mode == TASK_MODE => {
                    let task = task.expect("task mode only with a task");
                    let r = crate::tasks::evaluate(&loaded.model, &loaded.tokenizer, &task, len, e.task_examples, device)?;
                    (row.loss, row.perplexity, row.tokens) = (Some(r.loss), Some(r.loss.exp()), Some(r.scored));
                    (row.accuracy, row.greedy, row.greedy_prefix) = (Some(r.accuracy), Some(r.greedy), Some(r.greedy_prefix));
                }
                None => {
                    let r = evaluate_split(&loaded.model, data.ids(e.split), e.split, len, stride, e.max_tokens, device)?;
                    (row.loss, row.perplexity, row.tokens) = (Some(r.loss), Some(r.perplexity), Some(r.tokens));
                }
            }
            if row.reason.is_none() && mode == modes(a)[0] {
                row.attention = Some(attention_probe(&loaded, &data, e.split, len)?);
            }
            rows.push(row);
        }
    }
    Ok(rows)
}
