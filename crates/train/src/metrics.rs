//! `metrics.jsonl`, the progress bar and `loss_curve.png`.
//!
//! Each line of `metrics.jsonl` is one JSON object, either a training step
//! `{"step": 12, "loss": 3.1, "lr": 0.0001, "tokens_per_s": 6400.0}` or an evaluation
//! `{"step": 250, "train_loss": 2.0, "val_loss": 2.1}` (`step` = steps completed).

use std::io::Write;
use std::path::Path;

use ember_device::plot::{ensure_font, plotters};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plotters::prelude::*;

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

/// Draw train (per step, light) and eval (train and val, bold) losses over steps.
pub fn plot_loss_curve(metrics: &Path, out: &Path) -> Result<(), TrainError> {
    let (steps, evals) = read_metrics(metrics)?;
    ensure_font();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_step = steps.iter().map(|s| s.0).chain(evals.iter().map(|e| e.0)).fold(1.0, f64::max);
        let losses = steps.iter().map(|s| s.1).chain(evals.iter().flat_map(|e| [e.1, e.2]));
        let (lo, hi) = losses.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let (lo, hi) = if lo < hi { (lo, hi) } else { (0.0, 1.0) };
        let mut chart = ChartBuilder::on(&root)
            .caption("loss", ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_step, (lo - 0.05 * (hi - lo))..(hi + 0.05 * (hi - lo)))?;
        chart.configure_mesh().x_desc("step").y_desc("cross-entropy (nats/token)").draw()?;
        chart
            .draw_series(LineSeries::new(steps.iter().copied(), RGBColor(160, 160, 220)))?
            .label("train (per step)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(160, 160, 220)));
        chart
            .draw_series(LineSeries::new(evals.iter().map(|e| (e.0, e.1)), BLUE.stroke_width(3)))?
            .label("train (eval)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(3)));
        chart
            .draw_series(LineSeries::new(evals.iter().map(|e| (e.0, e.2)), RED.stroke_width(3)))?
            .label("val (eval)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| TrainError::Data(format!("cannot draw {}: {e}", out.display())))
}
