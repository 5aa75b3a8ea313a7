//! Errors of the embedding crate. Every message says what was wrong and how to fix it.

/// Errors from building, indexing, resizing or migrating embedding tables.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A token id outside `[0, V)`.
    #[error("token id {id} is out of range for a vocabulary of {vocab} rows (valid ids are 0..{vocab}); \
             check that the tokenizer matches the table, or resize the table")]
    IdOutOfRange {
        /// The offending id.
        id: i64,
        /// The number of rows `V`.
        vocab: usize,
    },
    /// A size or index argument that cannot work.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The argument's name.
        what: &'static str,
        /// Why it is invalid and what to do.
        why: String,
    },
    /// Shrinking would delete a row that still has a role (padding, special token).
    #[error("shrinking to {new_rows} rows would drop {role} row {id}; keep at least {min_rows} rows, \
             or ask to drop it explicitly")]
    WouldDrop {
        /// The new size asked for.
        new_rows: usize,
        /// What the row is (`padding`, `special token "<eos>"`, …).
        role: String,
        /// Its id.
        id: usize,
        /// The smallest size that keeps it.
        min_rows: usize,
    },
    /// An error from the `tokenizers` crate.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
}

impl EmbedError {
    pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid { what, why: why.into() }
    }
}
