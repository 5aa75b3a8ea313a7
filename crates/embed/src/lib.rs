//! # ember-embed
//!
//! Everything about the token embedding table `E` (`[V, d]`, row `E[i]` is the input vector
//! of token `i`) and its use as the LM head (`logits = h · Eᵀ` when tied):
//!
//! - [`table`]: [`TokenEmbedding`] — lookup `ids [B, T] → x [B, T, d]`, optional padding row;
//! - [`head`]: [`LmHead`] — tied (the table's own parameter) or untied (`[d, V]` + bias);
//! - [`loss`]: softmax cross-entropy that ignores padded targets;
//! - [`fused`]: head + cross-entropy in chunks with the analytic gradient, never holding
//!   the `[N, V]` logits (large vocabularies);
//! - [`resize`], [`special`], [`migrate`]: change the vocabulary and keep the rows meaningful;
//! - [`geometry`], [`neighbors`]: diagnostics on any `[N, d]` tensor;
//! - [`frequency`]: row norms against token frequency (Spearman, Pearson, counts files);
//! - [`quantize`]: 8/4-bit symmetric absmax quantization of a table, its file format;
//! - [`io`]: tables from GloVe/word2vec text files and safetensors;
//! - [`vocab`]: find a token's row, with suggestions when it is missing;
//! - [`grads`]: the analytic gradients of the head and the lookup (gradient checks);
//! - [`error`]: [`EmbedError`].
//! - [`report`]: the data the `ember embed` commands print and draw (stats, neighbours, the
//!   2-D projection); the rendering lives in the root package (`ember::viz`).

pub mod error;
pub mod frequency;
pub mod fused;
pub mod geometry;
pub mod grads;
pub mod head;
pub mod io;
pub mod load;
pub mod loss;
pub mod migrate;
pub mod neighbors;
pub mod quantize;
pub mod report;
pub mod resize;
pub mod special;
pub mod table;
pub mod vocab;

pub use error::EmbedError;
pub use fused::{fused_linear_cross_entropy, FusedCrossEntropy};
pub use head::LmHead;
pub use table::{TokenEmbedding, TokenEmbeddingConfig};
pub use migrate::{MigrateOptions, Migrated, MigrationReport};
pub use resize::{NewRows, ResizeOptions, ResizeReport, Resized, RowInit};
pub use special::{add_special_tokens, SpecialOptions, SpecialReport, SpecialTokens};
pub use io::{LoadError, LoadedTable};
pub use load::load_table;
pub use neighbors::{Metric, Neighbor, NeighborIndex, Preprocess};
