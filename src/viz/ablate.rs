//! The plots of `ember ablate`: `loss_curves.png` (validation loss over steps, one line
//! per trained variant), `extrapolation.png` (loss against evaluation length, log-x, one
//! line per variant, the training length marked) and `attention.png` (mean attention
//! distance against length, the same axes). Non-overlapping loss: the mean over seeds
//! as a line, its 95 % confidence interval as a shaded band; `n/a` points are left out.

use std::path::Path;

use ember_train::ablate::results::{attention_summary, summary, LengthStat};
use ember_train::ablate::{Ablation, Row};
use plotters::prelude::*;

use super::font::ensure_font;

/// `(label, points)` per line.
pub type Lines = Vec<(String, Vec<(f64, f64)>)>;

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40),
        RGBColor(148, 103, 189), RGBColor(140, 86, 75), RGBColor(227, 119, 194), RGBColor(127, 127, 127),
        RGBColor(188, 189, 34), RGBColor(23, 190, 207),
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

/// One variant's line of `extrapolation.png`: `(length, mean, Some((low, high)) = its
/// confidence interval | None = one seed)` per length it can be evaluated at.
pub type Band = (String, Vec<(f64, f64, Option<(f64, f64)>)>);

/// The lines of `extrapolation.png`: per variant, the first mode's loss against evaluation
/// length, mean and 95 % t interval over seeds ([`summary`]); `n/a` lengths left out.
pub fn extrapolation_bands(a: &Ablation, rows: &[Row]) -> Vec<Band> {
    let mode = ember_train::ablate::results::modes(a)[0];
    bands(summary(a, rows, mode, false))
}

/// A summary (per variant, an estimate per length) as lines with bands; `n/a` left out.
fn bands(summary: Vec<(String, Vec<LengthStat>)>) -> Vec<Band> {
    summary.into_iter().map(|(label, cols)| (label, cols.into_iter().filter_map(|(len, e)| e.map(|e| (len as f64, e.mean, e.interval()))).collect())).collect()
}

/// `attention.png`: each variant's mean attention distance (tokens back, averaged over layers
/// and heads; mean and 95 % interval over seeds) against evaluation length, log-x, the
/// training length marked ([`attention_summary`]). A flat line is local attention (ALiBi);
/// a line that grows with the length spreads attention over ever more keys.
pub fn plot_attention(a: &Ablation, rows: &[Row], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let x = if a.base.data.task.is_some() { "operand length (characters, log scale)" } else { "evaluation length (tokens, log scale)" };
    let axes = ["mean attention distance vs length", x, "mean attention distance (tokens back)"];
    draw_extrapolation(&bands(attention_summary(a, rows)), &a.eval_tokens(), a.train_len(), axes, out)
}

/// `extrapolation.png`: non-overlapping loss against evaluation length, the mean over seeds
/// as a line and its 95 % confidence interval as a shaded band per variant (no band with
/// one seed), the training length marked.
pub fn plot_extrapolation(a: &Ablation, rows: &[Row], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // A task ablation evaluates operand lengths and scores the answer tokens only.
    let axes = if a.base.data.task.is_some() {
        ["answer loss vs operand length", "operand length (characters, log scale)", "answer loss (nats/token)"]
    } else {
        ["loss vs evaluation length (non-overlapping windows)", "evaluation length (tokens, log scale)", "val loss (nats/token)"]
    };
    draw_extrapolation(&extrapolation_bands(a, rows), &a.eval_tokens(), a.train_len(), axes, out)
}

/// Draw `bands` over the evaluation `lengths` (log-x), with a vertical line at `train_len`;
/// `axes` = `[caption, x label, y label]`.
pub fn draw_extrapolation(bands: &[Band], lengths: &[usize], train_len: usize, axes: [&str; 3], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    ensure_font();
    let [caption, x_desc, y_desc] = axes;
    // The y range covers the bands too.
    let extent: Lines = bands.iter().map(|(l, pts)| (l.clone(), pts.iter().flat_map(|&(x, m, ci)| [(x, m), (x, ci.map_or(m, |c| c.0)), (x, ci.map_or(m, |c| c.1))]).collect())).collect();
    let (x0, x1) = (lengths.iter().copied().min().unwrap_or(1) as f64, lengths.iter().copied().max().unwrap_or(2) as f64);
    let (x0, x1) = if x0 < x1 { (x0 / 1.25, x1 * 1.25) } else { (x0 / 2.0, x0 * 2.0) };
    let yr = y_range(&extent);
    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x0..x1).log_scale(), yr.clone())?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
    for (i, (_, pts)) in bands.iter().enumerate() {
        // upper edge left to right, lower edge back: one polygon per run of lengths with intervals
        for run in pts.split(|p| p.2.is_none()).filter(|r| r.len() > 1) {
            let edge = run.iter().map(|&(x, _, c)| (x, c.expect("split on None").1)).chain(run.iter().rev().map(|&(x, _, c)| (x, c.expect("split on None").0)));
            chart.draw_series(std::iter::once(Polygon::new(edge.collect::<Vec<_>>(), color(i).mix(BAND_ALPHA).filled())))?;
        }
    }
    let t = train_len as f64;
    chart
        .draw_series(LineSeries::new([(t, yr.start), (t, yr.end)], BLACK.mix(0.5).stroke_width(1)))?
        .label(format!("training length {t}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    for (i, (label, pts)) in bands.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)).point_size(4))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    if bands.iter().any(|b| b.1.iter().any(|p| p.2.is_some())) {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("shaded: 95 % CI of the mean over seeds")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLACK.mix(BAND_ALPHA).filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Opacity of a confidence band.
const BAND_ALPHA: f64 = 0.2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::testing::{out_dir, png_summary};

    /// Pixels of exactly `c` drawn at [`BAND_ALPHA`] over white (±1 per channel for rounding).
    fn tinted(img: &image::RgbImage, c: RGBColor) -> usize {
        let tint = [c.0, c.1, c.2].map(|v| 255.0 - BAND_ALPHA * (255.0 - v as f64));
        img.pixels().filter(|p| p.0.iter().zip(tint).all(|(&a, b)| (a as f64 - b).abs() <= 1.0)).count()
    }

    #[test]
    fn extrapolation_draws_a_band_only_where_there_is_an_interval() {
        let dir = out_dir();
        let lengths = [64, 128, 256];
        let line = |ci: bool, base: f64| -> Vec<(f64, f64, Option<(f64, f64)>)> {
            lengths.iter().enumerate().map(|(k, &l)| (l as f64, base + 0.1 * k as f64, ci.then_some((base + 0.1 * k as f64 - 0.15, base + 0.1 * k as f64 + 0.15)))).collect()
        };
        let axes = ["c", "x", "y"];
        let with = dir.path().join("with.png");
        draw_extrapolation(&[("a".into(), line(true, 2.0)), ("b".into(), line(false, 3.0))], &lengths, 64, axes, &with).unwrap();
        let img = image::open(&with).unwrap().to_rgb8();
        // band a: 0.3 of a y range of ~1.5 over most of the width: thousands of tinted pixels
        assert!(tinted(&img, color(0)) > 5_000, "band of the first variant: {} pixels", tinted(&img, color(0)));
        assert!(tinted(&img, color(1)) < 50, "no band for one seed: {} pixels", tinted(&img, color(1)));
        let (colours, inked) = png_summary(&with, 900, 560);
        assert!(colours > 10 && inked > 0.05 && inked < 0.6, "{colours} colours, {inked} inked");

        let without = dir.path().join("without.png");
        draw_extrapolation(&[("a".into(), line(false, 2.0))], &lengths, 64, axes, &without).unwrap();
        assert!(tinted(&image::open(&without).unwrap().to_rgb8(), color(0)) < 50, "one seed: no band");
    }
}
