//! `metrics.jsonl` (written during training, read back by [`read_metrics`]) and the progress
//! bar. `loss_curve.png` is drawn from it by the root package (`ember::viz::loss`).
//!
//! Each line of `metrics.jsonl` is one JSON object, either a training step
//! `{"step": 12, "loss": 3.1, "lr": 0.0001, "tokens_per_s": 6400.0}` or an evaluation
//! `{"step": 250, "train_loss": 2.0, "val_loss": 2.1}` (`step` = steps completed).

use std::io::Write;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::TrainError;

/// Appends JSON lines to `metrics.jsonl`.
pub struct MetricsLog {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl MetricsLog {
    /// Open for a fresh run (`resume_at = None`: truncate) or for a run resumed from a
    /// checkpoint at `resume_at = Some(k)` completed steps: lines the crashed run logged
    /// after its checkpoint (training steps ≥ k, evaluations after k) are dropped, so the
    /// resumed run does not log those steps twice.
    pub fn open(path: &Path, resume_at: Option<usize>) -> Result<Self, TrainError> {
        if let Some(k) = resume_at {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let kept: String = text
                .lines()
                .filter(|line| {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { return false };
                    let step = v["step"].as_u64().unwrap_or(u64::MAX) as usize;
                    if v.get("loss").is_some() { step < k } else { step <= k }
                })
                .map(|line| format!("{line}\n"))
                .collect();
            crate::fs::write_atomic(path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resume_at.is_some())
            .truncate(resume_at.is_none())
            .open(path)
            .map_err(|e| TrainError::write(path, e))?;
        Ok(Self { file, path: path.to_path_buf() })
    }

    fn line(&mut self, value: serde_json::Value) -> Result<(), TrainError> {
        writeln!(self.file, "{value}").map_err(|e| TrainError::write(&self.path, e))
    }

    /// Log a training step (0-based `step`).
    pub fn step(&mut self, step: usize, loss: f64, lr: f64, tokens_per_s: f64) -> Result<(), TrainError> {
        self.line(serde_json::json!({"step": step, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}))
    }

    /// Log an evaluation after `step` completed steps.
    pub fn eval(&mut self, step: usize, train_loss: f64, val_loss: f64) -> Result<(), TrainError> {
        self.line(serde_json::json!({"step": step, "train_loss": train_loss, "val_loss": val_loss}))
    }
}

/// What a training run shows while it runs.
///
/// - stderr a terminal: a progress bar there (step, loss, lr, tokens/s, ETA);
/// - stdout not a terminal (CI, `nohup`, `| tee log`): plain lines on stdout, flushed as
///   they come — every evaluation, and a step line every `log_interval` steps (nanoGPT's
///   `iter N: loss …` lines), so a log file is never empty until the end;
/// - `quiet`: nothing.
pub struct Progress {
    bar: ProgressBar,
    plain: bool,
    log_interval: usize,
}

impl Progress {
    /// Over `total` steps, `done` of them already done (a resumed run).
    pub fn new(total: usize, done: usize, quiet: bool, log_interval: usize) -> Self {
        use std::io::IsTerminal;
        let bar = ProgressBar::with_draw_target(Some(total as u64), if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() });
        bar.set_style(
            ProgressStyle::with_template("{bar:30} step {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}")
                .expect("valid template"),
        );
        bar.set_position(done as u64);
        let plain = !quiet && (bar.is_hidden() || !std::io::stdout().is_terminal());
        Self { bar, plain, log_interval: log_interval.max(1) }
    }

    /// After step `step` (0-based) finished with `loss`.
    pub fn step(&self, step: usize, loss: f64, lr: f64, tokens_per_s: f64) {
        self.bar.set_position(step as u64 + 1);
        self.bar.set_message(format!("loss {loss:.4}  lr {lr:.2e}  {tokens_per_s:.0} tok/s"));
        if self.plain && step % self.log_interval == 0 {
            self.print(format!("step {step:>5}: loss {loss:.4}, lr {lr:.2e}, {tokens_per_s:.0} tokens/s"));
        }
    }

    /// A line that must reach the user (an evaluation, an interruption).
    pub fn println(&self, line: String) {
        if self.plain {
            self.print(line);
        } else {
            self.bar.println(line);
        }
    }

    fn print(&self, line: String) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Remove the bar (the run ended).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Read `metrics.jsonl` into (training steps, evaluations).
#[allow(clippy::type_complexity)]
pub fn read_metrics(path: &Path) -> Result<(Vec<(f64, f64)>, Vec<(f64, f64, f64)>), TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::read(path, e))?;
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| TrainError::checkpoint(path, format!("bad metrics line {line:?}: {e}")))?;
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(loss) = v["loss"].as_f64() {
            steps.push((step, loss));
        } else if let (Some(tr), Some(va)) = (v["train_loss"].as_f64(), v["val_loss"].as_f64()) {
            evals.push((step, tr, va));
        }
    }
    Ok((steps, evals))
}
