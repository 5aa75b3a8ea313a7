//! Embedding analyses that need a trained model or its corpus (the table-only ones live in
//! `ember_embed`):
//!
//! - [`token_counts`]: how often each token occurs in a run's training split;
//! - [`context`]: contextual hidden states (one text position, a corpus sample, one token
//!   across contexts);
//! - [`probe`]: the reports of contextual neighbours and of `--compare`;
//! - [`quantized`]: the quantized table swapped into the model and evaluated.

pub mod context;
pub mod probe;
pub mod quantized;

use crate::dataset::{Dataset, Split};
use crate::run::LoadedRun;
use crate::TrainError;

/// Occurrences of each token id `0..V` in the training split of `run`'s corpus (tokenized
/// with the run's tokenizer): `V` counts. Errors when the corpus cannot be read.
pub fn token_counts(run: &LoadedRun) -> Result<(Dataset, Vec<u64>), TrainError> {
    let data = Dataset::load(&run.config.data, Some(run.tokenizer.clone()))?;
    let counts = ember_embed::frequency::count_ids(data.ids(Split::Train), run.tokenizer.vocab_size());
    Ok((data, counts))
}
