//! `ember position plot`: PNG pictures of what a scheme computes.
//!
//! - sinusoidal: heatmap of the table (position × feature, blue −1 … white 0 … red +1);
//! - alibi: the bias `[T, T]` of every head on one colour scale (white 0 … dark blue most
//!   negative over all heads, grey = masked);
//! - rope: RoFormer's long-range decay curve, `⟨R_0 q, R_n k⟩ / head_dim` for `q = k = 1`
//!   (all ones) over relative distance `n` ([`crate::rope::decay_curve`]); with a scaling
//!   method the unscaled curve is drawn too.
//!
//! `learned` and `none` have nothing to draw before training.

use std::path::Path;

use ember_device::plot::{ensure_font, plotters};
use plotters::prelude::*;

use crate::alibi::alibi_bias_host;
use crate::rope::decay_curve;
use crate::rope_scaling::{scaled_inv_freq, RopeScaling};
use crate::sinusoidal::sinusoidal_table;
use crate::{PositionConfig, PositionError, SchemeOptions};

fn err<E: std::fmt::Display>(e: E) -> PositionError {
    PositionError::Plot(e.to_string())
}

/// Blue (−1) → white (0) → red (+1).
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let fade = |x: f64| (255.0 * (1.0 - x.abs())) as u8;
    if v >= 0.0 {
        RGBColor(255, fade(v), fade(v))
    } else {
        RGBColor(fade(v), fade(v), 255)
    }
}

/// Draw the plot `opts` describes into `out` (PNG). Returns a one-line description.
pub fn plot(opts: &SchemeOptions, out: &Path) -> Result<String, PositionError> {
    let config = opts.to_config()?;
    ensure_font();
    match config {
        PositionConfig::Sinusoidal { layout, base } => {
            let (t, d) = (opts.positions, opts.dim);
            let table = sinusoidal_table(0..t, d, layout, base);
            let root = BitMapBackend::new(out, (900, 650)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("sinusoidal positions ({layout:?}, base {base}), d = {d}"), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..d as f64, t as f64..0f64)
                .map_err(err)?;
            chart.configure_mesh().disable_mesh().x_desc("feature").y_desc("position").draw().map_err(err)?;
            let cells = (0..t).flat_map(|p| (0..d).map(move |i| (p, i)));
            chart
                .draw_series(cells.map(|(p, i)| {
                    let (x, y) = (i as f64, p as f64);
                    Rectangle::new([(x, y), (x + 1.0, y + 1.0)], diverging(table[p * d + i]).filled())
                }))
                .map_err(err)?;
            root.present().map_err(err)?;
            Ok(format!("sinusoidal heatmap, {t} positions x {d} features"))
        }
        PositionConfig::Alibi => {
            let (h, t) = (opts.heads, opts.positions);
            let bias = alibi_bias_host(h, t, t, 0);
            let slopes = crate::alibi::slopes(h);
            let cols = (h as f64).sqrt().ceil() as usize;
            let rows = h.div_ceil(cols);
            let root = BitMapBackend::new(out, (300 * cols as u32, 300 * rows as u32 + 40)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let root = root.titled(&format!("ALiBi bias per head, T = {t} (grey = masked)"), ("sans-serif", 22)).map_err(err)?;
            for (hh, area) in root.split_evenly((rows, cols)).iter().enumerate().take(h) {
                // one colour scale for all heads, so steeper slopes look darker
                let lowest = slopes.iter().cloned().fold(0.0, f64::max) * (t.saturating_sub(1)) as f64;
                let mut chart = ChartBuilder::on(area)
                    .caption(format!("head {} (m = {:.4})", hh + 1, slopes[hh]), ("sans-serif", 15))
                    .margin(6)
                    .x_label_area_size(22)
                    .y_label_area_size(28)
                    .build_cartesian_2d(0f64..t as f64, t as f64..0f64)
                    .map_err(err)?;
                chart.configure_mesh().disable_mesh().x_labels(4).y_labels(4).draw().map_err(err)?;
                let m = &bias[hh];
                let cells = (0..t).flat_map(|i| (0..t).map(move |j| (i, j)));
                chart
                    .draw_series(cells.map(|(i, j)| {
                        let color = match m[i][j] {
                            None => RGBColor(200, 200, 200),
                            Some(v) if lowest > 0.0 => diverging(v / lowest),
                            Some(_) => WHITE,
                        };
                        Rectangle::new([(j as f64, i as f64), (j as f64 + 1.0, i as f64 + 1.0)], color.filled())
                    }))
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
            Ok(format!("ALiBi bias, {h} heads, {t} x {t}"))
        }
        PositionConfig::Rope { layout, base, partial_rotary_factor, ref scaling } => {
            let d = opts.dim;
            let n = opts.positions.max(2);
            let rot_dim = PositionConfig::rotary_dim(d, partial_rotary_factor);
            let seq_len = opts.seq_len.unwrap_or(n);
            let freqs = scaled_inv_freq(base, rot_dim, scaling, scaling.seq_len_key(seq_len));
            let name = format!("{scaling:?}").split([' ', '{']).next().unwrap_or("").to_lowercase();
            let label = if *scaling == RopeScaling::None { "rope".to_string() } else { format!("{name} scaling") };
            let mut curves = vec![(label, decay_curve(d, &freqs, layout, n), BLUE)];
            if *scaling != RopeScaling::None {
                let plain = scaled_inv_freq(base, rot_dim, &RopeScaling::None, None);
                curves.push(("unscaled".into(), decay_curve(d, &plain, layout, n), RED));
            }
            let (lo, hi) = curves.iter().flat_map(|c| c.1.iter()).fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let root = BitMapBackend::new(out, (900, 600)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("RoPE long-range decay, head_dim {d}, base {base}"), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..(n - 1) as f64, (lo - 0.05)..(hi + 0.05))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("relative distance n")
                .y_desc("<R_0 q, R_n k> / head_dim, q = k = 1")
                .draw()
                .map_err(err)?;
            for (label, curve, color) in curves {
                chart
                    .draw_series(LineSeries::new(curve.iter().enumerate().map(|(i, &v)| (i as f64, v)), color))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
            root.present().map_err(err)?;
            Ok(format!("RoPE decay curve over {n} relative distances"))
        }
        PositionConfig::Learned { .. } | PositionConfig::None => Err(PositionError::option(
            "--scheme",
            format!("nothing to plot for `{}` (a learned table is random until trained); plot sinusoidal, rope or alibi", config.scheme()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plottable_scheme_writes_a_png() {
        let dir = std::env::temp_dir().join(format!("ember-position-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (scheme, scaling) in [("sinusoidal", None), ("alibi", None), ("rope", None), ("rope", Some("linear"))] {
            let opts = SchemeOptions {
                scheme: scheme.into(),
                dim: 16,
                heads: 6,
                positions: 24,
                scaling: scaling.map(str::to_string),
                factor: scaling.map(|_| 2.0),
                ..Default::default()
            };
            let path = dir.join(format!("{scheme}-{}.png", scaling.unwrap_or("none")));
            plot(&opts, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"), "{scheme}");
        }
        let learned = SchemeOptions { scheme: "learned".into(), ..Default::default() };
        assert!(plot(&learned, &dir.join("x.png")).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
