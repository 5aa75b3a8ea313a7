//! `loss_curve.png`: training loss per step (light) and the evaluation losses (train and
//! val, bold) over steps, read from a run's `metrics.jsonl` ([`ember_train::metrics::read_metrics`]).

use std::path::Path;

use ember_train::metrics::read_metrics;
use plotters::prelude::*;

use super::font::ensure_font;
use super::PlotError;

/// Size of the picture, pixels.
pub const SIZE: (u32, u32) = (900, 560);

/// Draw the losses logged in `metrics` (`metrics.jsonl`) to `out` (PNG).
pub fn plot_loss_curve(metrics: &Path, out: &Path) -> Result<(), PlotError> {
    let (steps, evals) = read_metrics(metrics)?;
    ensure_font();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(out, SIZE).into_drawing_area();
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
    draw().map_err(|e| PlotError::draw(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::testing::{out_dir, png_summary};

    #[test]
    fn draws_step_and_eval_curves_at_the_stated_size() {
        let dir = out_dir();
        let metrics = dir.path().join("metrics.jsonl");
        let mut lines = String::new();
        for step in 0..40 {
            let loss = 4.0 * (-(step as f64) / 15.0).exp() + 1.0;
            lines += &format!("{{\"step\":{step},\"loss\":{loss},\"lr\":0.001,\"tokens_per_s\":100.0}}\n");
            if step % 10 == 9 {
                lines += &format!("{{\"step\":{},\"train_loss\":{loss},\"val_loss\":{}}}\n", step + 1, loss + 0.2);
            }
        }
        std::fs::write(&metrics, lines).unwrap();
        let out = dir.path().join("loss.png");
        plot_loss_curve(&metrics, &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
        assert!(has([0, 0, 255]) && has([255, 0, 0]) && has([160, 160, 220]), "train, eval-train and val curves drawn");
        let (colours, inked) = png_summary(&out, SIZE.0, SIZE.1);
        assert!(colours > 10 && inked > 0.01 && inked < 0.5, "{colours} colours, {inked} inked");
        assert!(plot_loss_curve(&dir.path().join("missing.jsonl"), &out).is_err());
    }
}
