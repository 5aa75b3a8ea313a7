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
    /// Open (`append` when resuming, else truncate).
    pub fn open(path: &Path, append: bool) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
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

/// A progress bar over `total` steps starting at `done` (hidden when `quiet` or when
/// stderr is not a terminal).
pub fn progress_bar(total: usize, done: usize, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() });
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}")
            .expect("valid template"),
    );
    bar.set_position(done as u64);
    bar
}

/// Read `metrics.jsonl` into (training steps, evaluations).
#[allow(clippy::type_complexity)]
pub fn read_metrics(path: &Path) -> Result<(Vec<(f64, f64)>, Vec<(f64, f64, f64)>), TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::read(path, e))?;
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| TrainError::Data(format!("{}: bad line {line:?}: {e}", path.display())))?;
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(loss) = v["loss"].as_f64() {
            steps.push((step, loss));
        } else if let (Some(tr), Some(va)) = (v["train_loss"].as_f64(), v["val_loss"].as_f64()) {
            evals.push((step, tr, va));
        }
    }
    Ok((steps, evals))
}
