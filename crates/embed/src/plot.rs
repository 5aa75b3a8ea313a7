//! `ember embed plot`: one picture of a table `[N, d]` — a histogram of the row norms `‖x_i‖`
//! next to a 2-D PCA scatter (coordinates `(X − μ) U_2`) with the most frequent tokens (or the
//! first ones, when no counts are given) labelled. PNG by default, SVG for a `.svg` path.

use std::path::Path;

use burn::tensor::Tensor;
use ember_device::plot::{ensure_font, plotters};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::geometry::{self, GeometryError, Pca};

/// How many tokens get a label in the scatter.
pub const LABELLED: usize = 30;
/// At most this many points are drawn (an even stride over the rows; labelled rows always).
pub const MAX_POINTS: usize = 20_000;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Bad arguments (lengths, empty table).
    #[error("{0}")]
    Input(String),
    /// PCA failed.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// The drawing backend failed (e.g. the output directory does not exist).
    #[error("cannot draw {path}: {message}")]
    Draw { path: String, message: String },
}

/// Draw `weights` `[N, d]` (rows named by `tokens`, `N` of them; `counts[i]` = frequency of
/// token `i`, optional) to `out` (`.svg` → SVG, anything else → PNG), 1400 × 640 pixels.
pub fn plot_table(weights: &Tensor<2>, tokens: &[String], counts: Option<&[u64]>, out: &Path) -> Result<(), PlotError> {
    let [n, d] = weights.dims();
    if n == 0 || d == 0 {
        return Err(PlotError::Input("cannot plot an empty table".into()));
    }
    if tokens.len() != n || counts.is_some_and(|c| c.len() != n) {
        return Err(PlotError::Input(format!("{n} rows but {} tokens and {:?} counts", tokens.len(), counts.map(|c| c.len()))));
    }
    let norms = geometry::host_f64(geometry::row_norms(weights));
    let pca = Pca::fit(weights)?;
    let ratios = pca.explained_variance_ratio(2);
    let xy = geometry::host_f64(pca.project(weights.clone(), 2));
    let k = xy.len() / n; // 2, or 1 for d = 1
    let points: Vec<(f64, f64)> = (0..n).map(|i| (xy[i * k], if k > 1 { xy[i * k + 1] } else { 0.0 })).collect();
    let mut labelled: Vec<usize> = (0..n).collect();
    if let Some(c) = counts {
        labelled.sort_by(|&a, &b| c[b].cmp(&c[a]).then(a.cmp(&b)));
    }
    labelled.truncate(LABELLED);
    let data = PlotData { norms, points, labelled, tokens, ratios, frequent: counts.is_some() };
    ensure_font();
    let draw_err = |e: String| PlotError::Draw { path: out.display().to_string(), message: e };
    let size = (1400, 640);
    if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
        let root = SVGBackend::new(out, size).into_drawing_area();
        draw(&root, &data).and_then(|_| root.present().map_err(|e| e.to_string())).map_err(draw_err)
    } else {
        let root = BitMapBackend::new(out, size).into_drawing_area();
        draw(&root, &data).and_then(|_| root.present().map_err(|e| e.to_string())).map_err(draw_err)
    }
}

struct PlotData<'a> {
    norms: Vec<f64>,
    points: Vec<(f64, f64)>,
    labelled: Vec<usize>,
    tokens: &'a [String],
    ratios: Vec<f64>,
    frequent: bool,
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).abs().max(1e-6 * hi.abs().max(1.0));
    (lo - 0.05 * span, hi + 0.05 * span)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &PlotData) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (left, right) = root.split_horizontally(560);
    let font = |size: u32| ("sans-serif", size).into_font();

    // Norm histogram: 40 equal bins over [min, max].
    let (lo, hi) = p.norms.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi - lo < 1e-12 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let bins = 40;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in &p.norms {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64;
    let mean = p.norms.iter().sum::<f64>() / p.norms.len() as f64;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("Row norms ({} rows, mean {:.3})", p.norms.len(), mean), font(22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0..top * 1.08)
        .map_err(e)?;
    let light = RGBColor(235, 235, 235);
    chart
        .configure_mesh()
        .x_desc("‖x‖")
        .y_desc("rows")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(light)
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(e)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + i as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.95, c as f64)], RGBColor(70, 110, 180).filled())
        }))
        .map_err(e)?;

    // PCA scatter.
    let (xl, xh) = p.points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), q| (a.min(q.0), b.max(q.0)));
    let (yl, yh) = p.points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), q| (a.min(q.1), b.max(q.1)));
    let (xr, yr) = (padded(xl, xh), padded(yl, yh));
    let which = if p.frequent { "most frequent" } else { "first" };
    let mut chart = ChartBuilder::on(&right)
        .caption(format!("PCA of the rows ({which} {} tokens labelled)", p.labelled.len()), font(22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(e)?;
    let pct = |i: usize| p.ratios.get(i).map(|r| format!("{:.1}%", 100.0 * r)).unwrap_or_else(|| "0%".into());
    chart
        .configure_mesh()
        .x_desc(format!("PC1 ({} of variance)", pct(0)))
        .y_desc(format!("PC2 ({} of variance)", pct(1)))
        .light_line_style(light)
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(e)?;
    let stride = p.points.len().div_ceil(MAX_POINTS).max(1);
    let dot = RGBColor(70, 110, 180).mix(0.6).filled();
    chart.draw_series(p.points.iter().step_by(stride).map(|&q| Circle::new(q, 2, dot))).map_err(e)?;
    let red = RGBColor(200, 40, 40);
    chart.draw_series(p.labelled.iter().map(|&i| Circle::new(p.points[i], 3, red.filled()))).map_err(e)?;
    // Greedy label placement: try four spots around each point (in priority order) and skip
    // the label when all of them overlap an earlier one.
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    let mut labels = Vec::new();
    for &i in &p.labelled {
        let (px, py) = chart.backend_coord(&p.points[i]);
        let w = 8 * p.tokens[i].chars().count().min(24) as i32;
        let spots = [(5, -16), (5, 2), (-w - 5, -16), (-w - 5, 2)];
        let free = spots.iter().map(|&(dx, dy)| (px + dx, py + dy, px + dx + w, py + dy + 14)).find(|b| {
            !placed.iter().any(|q| b.0 < q.2 && q.0 < b.2 && b.1 < q.3 && q.1 < b.3)
        });
        if let Some(b) = free {
            placed.push(b);
            labels.push((p.tokens[i].clone(), (b.0 - px, b.1 - py), p.points[i]));
        }
    }
    chart
        .draw_series(labels.into_iter().map(|(text, off, at)| EmptyElement::at(at) + Text::new(text, off, font(14).color(&BLACK))))
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn writes_png_and_svg() {
        let (n, d) = (200, 16);
        let vals: Vec<f32> = (0..n * d).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % d) as f32 / 4.0)).collect();
        let x = Tensor::<2>::from_data(TensorData::new(vals, [n, d]), &Device::flex());
        let tokens: Vec<String> = (0..n).map(|i| format!("tok{i}")).collect();
        let counts: Vec<u64> = (0..n as u64).map(|i| (i * 37) % 101).collect();
        let dir = std::env::temp_dir().join(format!("ember-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("t.png");
        plot_table(&x, &tokens, Some(&counts), &png).unwrap();
        assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
        let svg = dir.join("t.svg");
        plot_table(&x, &tokens, None, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains("\ntok0\n") && !text.contains("\ntok30\n"), "first 30 labelled at most");
        assert!(plot_table(&x, &tokens[..3], None, &png).is_err());
        assert!(plot_table(&x, &tokens, None, &dir.join("no/such/dir/t.png")).is_err());
    }
}
