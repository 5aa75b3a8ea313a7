//! Every rendering of ember's data: PNG/SVG plots and terminal tables. The library crates
//! return data (`Serialize` structs, `Vec`s); this module draws and prints it.
//!
//! Files:
//! - `font.rs`: the embedded DejaVu Sans, registered once for plotters ([`font::ensure_font`]);
//! - `position.rs`: `ember position show` tables and `ember position plot` pictures
//!   (sinusoidal heatmap, ALiBi bias per head, RoPE long-range decay);
//! - `embed.rs`: `ember embed stats/neighbors` tables and the `ember embed plot` picture
//!   (norm histogram + 2-D PCA scatter);
//! - `loss.rs`: `loss_curve.png` of a training run, from its `metrics.jsonl`;
//! - `ablate.rs`: `ember ablate`'s `loss_curves.png` and `extrapolation.png`;
//! - `testing.rs` (tests only): decode a drawn PNG and check it.

pub mod ablate;
pub mod embed;
pub mod font;
pub mod loss;
pub mod position;
#[cfg(test)]
mod testing;

/// Why a picture could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Bad arguments (lengths, an empty table, a scheme with nothing to draw).
    #[error("{0}")]
    Input(String),
    /// Computing the embedding data failed (PCA).
    #[error(transparent)]
    Geometry(#[from] ember_embed::geometry::GeometryError),
    /// The position configuration is invalid for the requested sizes.
    #[error(transparent)]
    Position(#[from] ember_position::PositionError),
    /// Reading the training metrics failed.
    #[error(transparent)]
    Train(#[from] ember_train::TrainError),
    /// The drawing backend failed (e.g. the output directory does not exist).
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The output file.
        path: String,
        /// The backend's message.
        message: String,
    },
}

impl PlotError {
    /// A drawing error for output `path`.
    pub(crate) fn draw(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        PlotError::Draw { path: path.display().to_string(), message: message.to_string() }
    }
}
