//! The `ember embed plot` picture: a histogram of the row norms `‖x_i‖` next to a 2-D PCA
//! scatter (coordinates `(X − μ) U_2`, from [`ember_embed::report::projection`]) with the
//! most frequent tokens (or the first ones, when no counts are given) labelled, and, given
//! counts, a third panel: row norm against `ln count`, a point per token with count > 0,
//! the most frequent labelled. PNG by default, SVG for a `.svg` path. The terminal tables
//! of `ember embed …` are in `text.rs`.

use std::path::Path;

mod text;

use burn::tensor::Tensor;
use ember_embed::frequency::{self, NormFrequency};
use ember_embed::report::{projection, Projection};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::font::ensure_font;
use super::PlotError;

pub use text::{context_neighbors_text, neighbors_text, quantize_text, spread_text, stats_text, visible};

/// How many tokens get a label in the scatter.
pub const LABELLED: usize = 30;
/// At most this many points are drawn (an even stride over the rows; labelled rows always).
pub const MAX_POINTS: usize = 20_000;
/// Size of the picture, pixels.
pub const SIZE: (u32, u32) = (1400, 640);
/// Size of the picture with the norm-vs-frequency panel, pixels.
pub const SIZE_WITH_COUNTS: (u32, u32) = (2100, 640);

/// The rows that get a label: the [`LABELLED`] most frequent (ties by id), or the first ones.
pub fn labelled_rows(n: usize, counts: Option<&[u64]>) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    if let Some(c) = counts {
        rows.sort_by(|&a, &b| c[b].cmp(&c[a]).then(a.cmp(&b)));
    }
    rows.truncate(LABELLED);
    rows
}

/// Draw `weights` `[N, d]` (rows named by `tokens`, `N` of them; `counts[i]` = frequency of
/// token `i`, optional) to `out` (`.svg` → SVG, anything else → PNG), [`SIZE`] pixels.
pub fn plot_table(weights: &Tensor<2>, tokens: &[String], counts: Option<&[u64]>, out: &Path) -> Result<(), PlotError> {
    let [n, d] = weights.dims();
    if n == 0 || d == 0 {
        return Err(PlotError::Input("cannot plot an empty table".into()));
    }
    if tokens.len() != n || counts.is_some_and(|c| c.len() != n) {
        return Err(PlotError::Input(format!("{n} rows but {} tokens and {:?} counts", tokens.len(), counts.map(|c| c.len()))));
    }
    let p = projection(weights)?;
    let freq = match counts {
        Some(c) => Some((frequency::norm_log_count_points(&p.norms, c)?, frequency::norm_frequency(weights, c)?)),
        None => None,
    };
    let data = PlotData { p, labelled: labelled_rows(n, counts), tokens, freq };
    let size = if data.freq.is_some() { SIZE_WITH_COUNTS } else { SIZE };
    ensure_font();
    if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
        let root = SVGBackend::new(out, size).into_drawing_area();
        draw(&root, &data).and_then(|_| root.present().map_err(|e| e.to_string())).map_err(|e| PlotError::draw(out, e))
    } else {
        let root = BitMapBackend::new(out, size).into_drawing_area();
        draw(&root, &data).and_then(|_| root.present().map_err(|e| e.to_string())).map_err(|e| PlotError::draw(out, e))
    }
}

struct PlotData<'a> {
    p: Projection,
    labelled: Vec<usize>,
    tokens: &'a [String],
    /// With counts: `(row, ‖x‖, ln count)` per counted token, and the correlations.
    freq: Option<(Vec<(usize, f64, f64)>, NormFrequency)>,
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).abs().max(1e-6 * hi.abs().max(1.0));
    (lo - 0.05 * span, hi + 0.05 * span)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &PlotData) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (p, norms) = (&data.p, &data.p.norms);
    root.fill(&WHITE).map_err(e)?;
    let (left, rest) = root.split_horizontally(560);
    let (middle, third) = match data.freq {
        Some(_) => {
            let (m, t) = rest.split_horizontally(770);
            (m, Some(t))
        }
        None => (rest, None),
    };
    let font = |size: u32| ("sans-serif", size).into_font();

    // Norm histogram: 40 equal bins over [min, max].
    let (lo, hi) = norms.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi - lo < 1e-12 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let bins = 40;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in norms {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64;
    let mean = norms.iter().sum::<f64>() / norms.len() as f64;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("Row norms ({} rows, mean {:.3})", norms.len(), mean), font(22))
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
    let which = if data.freq.is_some() { "most frequent" } else { "first" };
    let pct = |i: usize| p.explained_variance.get(i).map(|r| format!("{:.1}%", 100.0 * r)).unwrap_or_else(|| "0%".into());
    let labels: Vec<(usize, String)> = data.labelled.iter().map(|&i| (i, visible(&data.tokens[i]))).collect();
    let axes = [format!("PC1 ({} of variance)", pct(0)), format!("PC2 ({} of variance)", pct(1))];
    scatter(&middle, &format!("PCA of the rows ({which} {} tokens labelled)", labels.len()), &axes, &p.points, &labels)?;

    // Row norm against log frequency.
    if let (Some(area), Some((points, nf))) = (third, &data.freq) {
        let xy: Vec<(f64, f64)> = points.iter().map(|&(_, norm, lnc)| (lnc, norm)).collect();
        let labels: Vec<(usize, String)> = data
            .labelled
            .iter()
            .filter_map(|&row| points.iter().position(|q| q.0 == row).map(|j| (j, visible(&data.tokens[row]))))
            .collect();
        let r = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into());
        let caption = format!("Row norm vs log frequency (Spearman {}, Pearson {})", r(nf.spearman), r(nf.pearson));
        scatter(&area, &caption, &["ln count".to_string(), "‖x‖".to_string()], &xy, &labels)?;
    }
    Ok(())
}

/// A scatter of `points` on `area` with axis titles `axes`, every point a dot (at most
/// [`MAX_POINTS`]) and `labels` (`(index into points, text)`) drawn in red with their text,
/// placed greedily: four spots around each point in priority order, skipped when all
/// overlap an earlier label.
fn scatter<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, caption: &str, axes: &[String; 2], points: &[(f64, f64)], labels: &[(usize, String)]) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let font = |size: u32| ("sans-serif", size).into_font();
    let (xl, xh) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), q| (a.min(q.0), b.max(q.0)));
    let (yl, yh) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), q| (a.min(q.1), b.max(q.1)));
    let (xr, yr) = if points.is_empty() { ((0.0, 1.0), (0.0, 1.0)) } else { (padded(xl, xh), padded(yl, yh)) };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(axes[0].as_str())
        .y_desc(axes[1].as_str())
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(e)?;
    let stride = points.len().div_ceil(MAX_POINTS).max(1);
    let dot = RGBColor(70, 110, 180).mix(0.6).filled();
    chart.draw_series(points.iter().step_by(stride).map(|&q| Circle::new(q, 2, dot))).map_err(e)?;
    let red = RGBColor(200, 40, 40);
    chart.draw_series(labels.iter().map(|(i, _)| Circle::new(points[*i], 3, red.filled()))).map_err(e)?;
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    let mut texts = Vec::new();
    for (i, text) in labels {
        let (px, py) = chart.backend_coord(&points[*i]);
        let w = 8 * text.chars().count().min(24) as i32;
        let spots = [(5, -16), (5, 2), (-w - 5, -16), (-w - 5, 2)];
        let free = spots.iter().map(|&(dx, dy)| (px + dx, py + dy, px + dx + w, py + dy + 14)).find(|b| {
            !placed.iter().any(|q| b.0 < q.2 && q.0 < b.2 && b.1 < q.3 && q.1 < b.3)
        });
        if let Some(b) = free {
            placed.push(b);
            texts.push((text.clone(), (b.0 - px, b.1 - py), points[*i]));
        }
    }
    chart
        .draw_series(texts.into_iter().map(|(text, off, at)| EmptyElement::at(at) + Text::new(text, off, font(14).color(&BLACK))))
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::testing::{out_dir, png_summary};
    use burn::tensor::{Device, TensorData};
    use ember_embed::neighbors::{Metric, Neighbor};
    use ember_embed::report::NeighborsReport;

    fn table(n: usize, d: usize) -> Tensor<2> {
        let vals: Vec<f32> = (0..n * d).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % d) as f32 / 4.0)).collect();
        Tensor::<2>::from_data(TensorData::new(vals, [n, d]), &Device::flex())
    }

    #[test]
    fn writes_a_png_of_the_stated_size_and_an_svg_with_labels() {
        let (n, d) = (200, 16);
        let x = table(n, d);
        let tokens: Vec<String> = (0..n).map(|i| format!("tok{i}")).collect();
        let counts: Vec<u64> = (0..n as u64).map(|i| (i * 37) % 101).collect();
        let dir = out_dir();
        let png = dir.path().join("t.png");
        plot_table(&x, &tokens, Some(&counts), &png).unwrap();
        let (colours, inked) = png_summary(&png, SIZE_WITH_COUNTS.0, SIZE_WITH_COUNTS.1);
        assert!(colours > 20 && inked > 0.02 && inked < 0.6, "{colours} colours, {inked} inked");
        let has_red = image::open(&png).unwrap().to_rgb8().pixels().any(|p| p.0 == [200, 40, 40]);
        assert!(has_red, "labelled points are drawn in red");
        let svg = dir.path().join("t.svg");
        plot_table(&x, &tokens, None, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains("\ntok0\n") && !text.contains("\ntok30\n"), "first 30 labelled at most");
        let with_counts = dir.path().join("c.svg");
        plot_table(&x, &tokens, Some(&counts), &with_counts).unwrap();
        let text = std::fs::read_to_string(&with_counts).unwrap();
        assert!(text.contains("Row norm vs log frequency (Spearman") && text.contains("ln count"), "third panel");
        assert!(text.contains(&format!("width=\"{}\"", SIZE_WITH_COUNTS.0)), "wider picture");
        assert!(plot_table(&x, &tokens, Some(&counts[..5]), &png).is_err());
        assert!(plot_table(&x, &tokens[..3], None, &png).is_err());
        assert!(matches!(plot_table(&x, &tokens, None, &dir.path().join("no/such/dir/t.png")), Err(PlotError::Draw { .. })));
    }

    #[test]
    fn labels_go_to_the_most_frequent_rows() {
        let counts: Vec<u64> = (0..40).map(|i| if i % 10 == 3 { 100 } else { i }).collect();
        let rows = labelled_rows(40, Some(&counts));
        assert_eq!(rows.len(), LABELLED);
        assert_eq!(&rows[..5], &[3, 13, 23, 33, 39]);
        assert_eq!(labelled_rows(5, None), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn text_tables() {
        let tokens: Vec<String> = ["king", "queen", "man"].iter().map(|s| s.to_string()).collect();
        let r = NeighborsReport::new("king", Metric::Cosine, &[Neighbor { id: 1, score: 0.93 }], &tokens);
        assert_eq!(neighbors_text(&r), "nearest to `king` by cosine:\nrank  token        id      cosine\n   1  queen         1      0.9300\n");
        let s = ember_embed::report::stats(&table(3, 2)).unwrap();
        let text = stats_text(&s, None);
        assert!(text.starts_with("rows               3\ndim                2\n") && text.contains("  PC2 "), "{text}");
    }
}
