//! The plotting font: plotters is built with `ab_glyph` (no system font lookup, so no
//! fontconfig at build time), which needs a font registered once per process. The font
//! (DejaVu Sans, free licence, see `assets/DejaVuSans.LICENSE`) is compiled into the binary,
//! so plots render the same on a machine without any fonts installed.

use std::sync::Once;

use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Register the embedded font as `sans-serif` for plotters. Idempotent; call before drawing.
pub fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            // Registration only fails on an unparsable font, and this one is fixed at build time.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}
