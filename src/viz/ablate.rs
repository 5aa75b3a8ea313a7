//! The two plots of `ember ablate`: `loss_curves.png` (validation loss over steps, one line
//! per trained variant) and `extrapolation.png` (loss against evaluation length, log-x, one
//! line per variant, the training length marked). Non-overlapping loss, mean over seeds;
//! `n/a` points are left out.

use std::path::Path;

use ember_train::ablate::results::summary;
use ember_train::ablate::{Ablation, Row};
use plotters::prelude::*;

use super::font::ensure_font;

/// `(label, points)` per line.
pub type Lines = Vec<(String, Vec<(f64, f64)>)>;

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40),
        RGBColor(148, 103, 189), RGBColor(140, 86, 75), RGBColor(227, 119, 194), RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

fn y_range(lines: &Lines) -> std::ops::Range<f64> {
    let (lo, hi) = lines.iter().flat_map(|l| l.1.iter().map(|p| p.1)).fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (lo, hi) = if lo < hi { (lo, hi) } else if lo == hi { (lo - 0.5, hi + 0.5) } else { (0.0, 1.0) };
    (lo - 0.05 * (hi - lo))..(hi + 0.05 * (hi - lo))
}

/// `loss_curves.png` from `(label, [(step, val loss)])`.
pub fn plot_loss_curves(lines: &Lines, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    ensure_font();
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_step = lines.iter().flat_map(|l| l.1.iter().map(|p| p.0)).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("validation loss during training", ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_step, y_range(lines))?;
    chart.configure_mesh().x_desc("step").y_desc("val loss (nats/token)").draw()?;
    for (i, (label, pts)) in lines.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// `extrapolation.png`: non-overlapping loss (mean over seeds) against evaluation length.
pub fn plot_extrapolation(a: &Ablation, rows: &[Row], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    ensure_font();
    let mode = ember_train::ablate::results::modes(a)[0];
    let lines: Lines = summary(a, rows, mode, false)
        .into_iter()
        .map(|(label, cols)| (label, cols.into_iter().filter_map(|(len, c)| c.map(|(m, _)| (len as f64, m))).collect()))
        .collect();
    let lengths = a.eval_tokens();
    let (x0, x1) = (lengths.iter().copied().min().unwrap_or(1) as f64, lengths.iter().copied().max().unwrap_or(2) as f64);
    let (x0, x1) = if x0 < x1 { (x0 / 1.25, x1 * 1.25) } else { (x0 / 2.0, x0 * 2.0) };
    let yr = y_range(&lines);
    // A task ablation evaluates operand lengths and scores the answer tokens only.
    let (caption, x_desc, y_desc) = if a.base.data.task.is_some() {
        ("answer loss vs operand length", "operand length (characters, log scale)", "answer loss (nats/token)")
    } else {
        ("loss vs evaluation length (non-overlapping windows)", "evaluation length (tokens, log scale)", "val loss (nats/token)")
    };
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x0..x1).log_scale(), yr.clone())?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
    let t = a.train_len() as f64;
    chart
        .draw_series(LineSeries::new([(t, yr.start), (t, yr.end)], BLACK.mix(0.5).stroke_width(1)))?
        .label(format!("training length {t}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    for (i, (label, pts)) in lines.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)).point_size(4))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
