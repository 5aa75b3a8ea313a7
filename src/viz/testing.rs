//! Test helper: decode a PNG that a plot wrote and check that it shows something.

use std::path::Path;

/// Decode `path` as PNG, assert it is `width × height`, and return how many distinct colours
/// it has and the fraction of pixels that are not white. Panics with the path on failure.
pub fn png_summary(path: &Path, width: u32, height: u32) -> (usize, f64) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: not a readable image: {e}", path.display())).to_rgb8();
    assert_eq!(img.dimensions(), (width, height), "{}", path.display());
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    (colours.len(), inked as f64 / (width * height) as f64)
}

/// A fresh temporary directory for one test's images.
pub fn out_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}
