//! `ember position show` (text tables of an [`Inspection`]) and `ember position plot` (PNG):
//!
//! - sinusoidal: heatmap of the table (position × feature, blue −1 … white 0 … red +1);
//! - alibi: the bias `[T, T]` of every head on one colour scale (white 0 … dark blue most
//!   negative over all heads, grey = masked);
//! - rope: RoFormer's long-range decay curve, `⟨R_0 q, R_n k⟩ / head_dim` for `q = k = 1`
//!   (all ones) over relative distance `n` ([`ember_position::rope::decay_curve`]); with a
//!   scaling method the unscaled curve is drawn too.
//!
//! `learned` and `none` have nothing to draw before training.

use std::path::Path;

use ember_position::rope::decay_curve;
use ember_position::{inspect, scaled_inv_freq, Inspection, PositionConfig, Probe, RopeFrequencies, RopeScaling};
use plotters::prelude::*;

use super::font::ensure_font;
use super::PlotError;

fn row(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:>11.6}")).collect::<Vec<_>>().join(" ")
}

/// Human-readable rendering of `out` (what `ember position show` prints without `--json`).
pub fn show_text(out: &Inspection) -> String {
    let mut s = String::new();
    match out {
        Inspection::None {} => s.push_str("scheme none: no position information (nothing to show)\n"),
        Inspection::Learned { max_len, init_std } => {
            s.push_str(&format!("scheme learned: trainable table [{max_len}, d], initialized N(0, {init_std}²); values exist only after init/training\n"));
        }
        Inspection::Sinusoidal { table } => {
            s.push_str("sinusoidal table (row = position)\n");
            for (p, r) in table.iter().enumerate() {
                s.push_str(&format!("{p:>5} | {}\n", row(r)));
            }
        }
        Inspection::Rope { inv_freq, attention_factor, rotated } => {
            s.push_str(&format!("inv_freq          {}\nattention_factor  {attention_factor}\n", row(inv_freq)));
            if let Some(rot) = rotated {
                s.push_str("rotated vector (row = position)\n");
                for (p, r) in rot.iter().enumerate() {
                    s.push_str(&format!("{p:>5} | {}\n", row(r)));
                }
            }
        }
        Inspection::Alibi { slopes, bias } => {
            s.push_str(&format!("slopes  {}\n", row(slopes)));
            for (h, m) in bias.iter().enumerate() {
                s.push_str(&format!("head {h} (slope {}), bias[i][j], -inf = masked future key\n", slopes[h]));
                lower(&mut s, m, "-inf", |v| format!("{v:>9.4}"));
            }
        }
        Inspection::T5 { buckets } => {
            s.push_str("scheme t5: bucket of each (i, j), - = masked future key; the per-bucket, per-head biases start at 0 and are learned\n");
            lower(&mut s, buckets, "-", |b| format!("{b:>9}"));
        }
        Inspection::Kerple { r1, r2, bias } => {
            s.push_str(&format!("scheme kerple: -r1 ln(1 + r2 (i - j)), learned; initial values\nr1  {}\nr2  {}\n", row(r1), row(r2)));
            for (h, m) in bias.iter().enumerate() {
                s.push_str(&format!("head {h}, bias[i][j] at init\n"));
                lower(&mut s, m, "-", |v| format!("{v:>9.4}"));
            }
        }
        Inspection::Fire { hidden, threshold, normalized } => {
            s.push_str(&format!("scheme fire: MLP 1 -> {hidden} -> heads of psi(i - j) / psi(max({threshold}, i)); its input at the initial c\n"));
            lower(&mut s, normalized, "-", |v| format!("{v:>9.4}"));
        }
        Inspection::Xpos { inv_freq, zeta } => {
            s.push_str(&format!("inv_freq  {}\nzeta      {}\n", row(inv_freq), row(zeta)));
        }
    }
    s
}

/// Rows of a lower-triangular `[T, T]` matrix, `masked` above the diagonal.
fn lower<V: Copy>(s: &mut String, m: &[Vec<Option<V>>], masked: &str, cell: impl Fn(V) -> String) {
    for r in m {
        let cells: Vec<String> = r.iter().map(|v| v.map_or(format!("{masked:>9}"), &cell)).collect();
        s.push_str(&format!("  {}\n", cells.join(" ")));
    }
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

/// Draw what `config` computes at the sizes of `probe` into `out` (PNG): the sinusoidal
/// table `[T, D]` (900 × 650), the ALiBi bias of each head (300 × 300 per panel, panels on a
/// near-square grid, + 40 for the title) or the RoPE decay curve over `max(T, 2)` relative
/// distances (900 × 600). Returns a one-line description of the picture.
pub fn plot_scheme(config: &PositionConfig, probe: &Probe, out: &Path) -> Result<String, PlotError> {
    ensure_font();
    let err = |e: DrawingAreaErrorKind<_>| PlotError::draw(out, e);
    match config {
        PositionConfig::Sinusoidal { layout, base } => {
            let Inspection::Sinusoidal { table } = inspect(config, probe)? else { unreachable!("sinusoidal config") };
            let (t, d) = (probe.positions, probe.dim);
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
            let cells = table.iter().enumerate().flat_map(|(p, r)| r.iter().enumerate().map(move |(i, &v)| (p, i, v)));
            chart
                .draw_series(cells.map(|(p, i, v)| {
                    let (x, y) = (i as f64, p as f64);
                    Rectangle::new([(x, y), (x + 1.0, y + 1.0)], diverging(v).filled())
                }))
                .map_err(err)?;
            root.present().map_err(err)?;
            Ok(format!("sinusoidal heatmap, {t} positions x {d} features"))
        }
        PositionConfig::Alibi {} => {
            let Inspection::Alibi { slopes, bias } = inspect(config, probe)? else { unreachable!("alibi config") };
            let (h, t) = (probe.heads, probe.positions);
            let cols = (h as f64).sqrt().ceil() as usize;
            let rows = h.div_ceil(cols);
            let root = BitMapBackend::new(out, (300 * cols as u32, 300 * rows as u32 + 40)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let root = root.titled(&format!("ALiBi bias per head, T = {t} (grey = masked)"), ("sans-serif", 22)).map_err(err)?;
            // one colour scale for all heads, so steeper slopes look darker
            let lowest = slopes.iter().cloned().fold(0.0, f64::max) * (t.saturating_sub(1)) as f64;
            for (hh, area) in root.split_evenly((rows, cols)).iter().enumerate().take(h) {
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
        PositionConfig::Rope { layout, base, partial_rotary_factor, scaling } => {
            let (d, n) = (probe.dim, probe.positions.max(2));
            let rope_probe = Probe { positions: n, vector: None, ..probe.clone() };
            let Inspection::Rope { inv_freq, attention_factor, .. } = inspect(config, &rope_probe)? else { unreachable!("rope config") };
            let freqs = RopeFrequencies { inv_freq, attention_factor };
            let unscaled = *scaling == RopeScaling::None {};
            let name = format!("{scaling:?}").split([' ', '{']).next().unwrap_or("").to_lowercase();
            let label = if unscaled { "rope".to_string() } else { format!("{name} scaling") };
            let mut curves = vec![(label, decay_curve(d, &freqs, *layout, n), BLUE)];
            if !unscaled {
                let rot_dim = PositionConfig::rotary_dim(d, *partial_rotary_factor);
                let plain = scaled_inv_freq(*base, rot_dim, &RopeScaling::None {}, None);
                curves.push(("unscaled".into(), decay_curve(d, &plain, *layout, n), RED));
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
        PositionConfig::Learned { .. } | PositionConfig::None {} | PositionConfig::T5 { .. } | PositionConfig::Kerple {} | PositionConfig::Fire { .. } | PositionConfig::Xpos { .. } => {
            Err(PlotError::Input(format!(
                "nothing to plot for `{}` here (learned schemes are what training makes them; `ember position show --scheme {0}` prints what is fixed); plot sinusoidal, rope or alibi",
                config.scheme()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::testing::{out_dir, png_summary};
    use ember_position::{RopeLayout, SinusoidalLayout};

    fn probe(dim: usize, heads: usize, positions: usize) -> Probe {
        Probe { dim, heads, positions, seq_len: None, vector: None }
    }

    fn count(path: &Path, colour: [u8; 3]) -> usize {
        image::open(path).unwrap().to_rgb8().pixels().filter(|p| p.0 == colour).count()
    }

    #[test]
    fn sinusoidal_heatmap_has_its_size_and_both_signs() {
        let dir = out_dir();
        let out = dir.path().join("sin.png");
        let config = PositionConfig::Sinusoidal { layout: SinusoidalLayout::Interleaved, base: 1e4 };
        let what = plot_scheme(&config, &probe(16, 1, 24), &out).unwrap();
        assert_eq!(what, "sinusoidal heatmap, 24 positions x 16 features");
        let (colours, inked) = png_summary(&out, 900, 650);
        assert!(colours > 50 && inked > 0.3, "{colours} colours, {inked} inked");
        // cos(0) = 1 fills whole cells in pure red; sines of later positions reach near −1 (blue).
        assert!(count(&out, [255, 0, 0]) > 100);
        let blue = image::open(&out).unwrap().to_rgb8().pixels().filter(|p| p.0[2] == 255 && p.0[0] < 60).count();
        assert!(blue > 100, "{blue} strongly negative pixels");
    }

    #[test]
    fn alibi_panels_are_laid_out_on_a_grid() {
        let dir = out_dir();
        let out = dir.path().join("alibi.png");
        assert_eq!(plot_scheme(&PositionConfig::Alibi {}, &probe(8, 6, 12), &out).unwrap(), "ALiBi bias, 6 heads, 12 x 12");
        let (colours, inked) = png_summary(&out, 900, 640); // 3 × 2 panels
        assert!(colours > 20 && inked > 0.2, "{colours} colours, {inked} inked");
        assert!(count(&out, [200, 200, 200]) > 1000, "masked cells are grey");
    }

    #[test]
    fn rope_decay_draws_the_unscaled_curve_only_with_scaling() {
        let dir = out_dir();
        let rope = |scaling| PositionConfig::Rope { layout: RopeLayout::HalfSplit, base: 1e4, partial_rotary_factor: 1.0, scaling };
        let out = dir.path().join("rope.png");
        assert_eq!(plot_scheme(&rope(RopeScaling::None {}), &probe(16, 1, 64), &out).unwrap(), "RoPE decay curve over 64 relative distances");
        let (colours, _) = png_summary(&out, 900, 600);
        assert!(colours > 10 && count(&out, [0, 0, 255]) > 100 && count(&out, [255, 0, 0]) == 0);
        plot_scheme(&rope(RopeScaling::Linear { factor: 2.0 }), &probe(16, 1, 64), &out).unwrap();
        assert!(count(&out, [0, 0, 255]) > 100 && count(&out, [255, 0, 0]) > 100, "scaled (blue) and unscaled (red)");
    }

    #[test]
    fn learned_none_and_invalid_configs_are_errors() {
        let dir = out_dir();
        let out = dir.path().join("x.png");
        assert!(matches!(plot_scheme(&PositionConfig::default(), &probe(8, 1, 8), &out), Err(PlotError::Input(_))));
        assert!(matches!(plot_scheme(&PositionConfig::None {}, &probe(8, 1, 8), &out), Err(PlotError::Input(_))));
        let odd = PositionConfig::Sinusoidal { layout: SinusoidalLayout::Halves, base: 1e4 };
        assert!(matches!(plot_scheme(&odd, &probe(7, 1, 8), &out), Err(PlotError::Position(_))));
        assert!(!out.exists());
    }

    #[test]
    fn text_tables() {
        let out = inspect(&PositionConfig::Alibi {}, &probe(8, 2, 2)).unwrap();
        assert_eq!(
            show_text(&out),
            "slopes     0.062500    0.003906\nhead 0 (slope 0.0625), bias[i][j], -inf = masked future key\n     0.0000      -inf\n    -0.0625    0.0000\nhead 1 (slope 0.00390625), bias[i][j], -inf = masked future key\n     0.0000      -inf\n    -0.0039    0.0000\n"
        );
        assert_eq!(show_text(&Inspection::None {}), "scheme none: no position information (nothing to show)\n");
    }
}
