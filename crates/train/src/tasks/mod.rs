//! Synthetic length-generalization tasks (`[data] task = { kind = "copy", … }`), trained and
//! scored the way Kazemnejad et al. (2023, "The Impact of Positional Encoding on Length
//! Generalization in Transformers") train and score them.
//!
//! One example is one sequence of characters, `n` the length of its operand(s):
//!
//! | kind | sequence (n = 4) | answer |
//! | --- | --- | --- |
//! | `copy` | `\ndbca=dbca\n` | the string again |
//! | `reverse` | `\ndbca=acbd\n` | the string reversed |
//! | `addition` | `\n4071+0938=5009\n` | the sum of two n-digit numbers (leading zeros kept), n + 1 digits |
//!
//! The first `\n` starts the sequence, the prompt runs to `=`, the answer follows and the
//! last `\n` ends it ([`BOUNDARY`]). Strings draw from the first `alphabet` letters `a…z`.
//!
//! - **Generation** ([`generate`]): example `i` of stream `s` at length `n` is a pure
//!   function of `(seed, s, i, n)`. Stream 0 is the training pool (`examples` examples, `n`
//!   uniform in `[min_len, max_len]`), stream 1 the validation pool (a tenth of that),
//!   stream 2 the fresh examples [`evaluate`] scores.
//! - **Batches** ([`batch`]): one example per row, left-aligned at position 0, padded with
//!   [`PAD`] to `data.context` (which must hold the longest training example: examples are
//!   never cut). Targets are the next tokens with every prompt position and every padded
//!   position set to the pad id, so the loss (which skips pad targets) is the mean over
//!   answer tokens and the end-of-answer `\n` only. The model's table has a padding row at
//!   the pad id ([`TaskConfig::pad_id`]): zero, no gradient, never predicted.
//! - **Scoring** ([`score`]): teacher-forced answer loss and exact match, and greedy
//!   autoregressive decoding (KV cache) from the prompt alone.
//!
//! Files: [`generate`] (text and ids of examples), [`batch`] (pools and training
//! batches), [`score`] (evaluation); this file holds the config. Generation depends on
//! nothing but the counter-based generator ([`crate::rng`]); batches on generation; scoring
//! on generation and the model.

pub mod batch;
pub mod generate;
pub mod score;

use serde::{Deserialize, Serialize};

use crate::TrainError;

pub use batch::{pack, Packed, TaskData};
pub use generate::Example;
pub use score::{evaluate, TaskModel, TaskReport};

/// Starts and ends every sequence (the end is the last target the model must predict).
pub const BOUNDARY: char = '\n';

/// Fills the rest of a row after the example; its id is the model's padding row.
pub const PAD: char = '_';

/// Which task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Repeat the string.
    Copy,
    /// Reverse the string.
    Reverse,
    /// Add two n-digit numbers.
    Addition,
}

/// `[data] task = { kind = "copy", min_len = 1, max_len = 16 }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The task.
    pub kind: TaskKind,
    /// Shortest training operand.
    #[serde(default = "one")]
    pub min_len: usize,
    /// Longest training operand `L`.
    pub max_len: usize,
    /// Letters used by copy / reverse (2–26).
    #[serde(default = "ten")]
    pub alphabet: usize,
    /// Training examples generated (the pool batches draw from).
    #[serde(default = "default_examples")]
    pub examples: usize,
    /// Seed of the generated examples.
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}
fn ten() -> usize {
    10
}
fn default_examples() -> usize {
    20_000
}

impl TaskConfig {
    /// Check the numbers against each other and against the sequence length `context`
    /// (`data.context`); the error names the field and the fix.
    pub fn validate(&self, context: usize) -> Result<(), TrainError> {
        let bad = |f: &str, why: String| Err(TrainError::config(f, why));
        if self.min_len == 0 || self.min_len > self.max_len {
            return bad("data.task.min_len", format!("need 1 ≤ min_len ≤ max_len, got {} and {}", self.min_len, self.max_len));
        }
        if !(2..=26).contains(&self.alphabet) {
            return bad("data.task.alphabet", format!("{} is not in 2..=26", self.alphabet));
        }
        if self.examples < 10 {
            return bad("data.task.examples", format!("{} is too few (need ≥ 10)", self.examples));
        }
        let longest = self.positions(self.max_len);
        if context < longest {
            return bad("data.context", format!(
                "{context} cannot hold the longest training example: {:?} at max_len = {} takes {longest} positions \
                 (start, prompt, answer; examples are never cut); set data.context = {longest} or lower data.task.max_len",
                self.kind, self.max_len
            ));
        }
        Ok(())
    }

    /// Every character the task can produce, [`PAD`] included (the tokenizer's vocabulary).
    pub fn symbols(&self) -> String {
        let letters: String = (b'a'..b'a' + self.alphabet as u8).map(char::from).collect();
        format!("{BOUNDARY}{PAD}=+0123456789{letters}")
    }

    /// The id of [`PAD`] under the character tokenizer of [`Self::symbols`] (ids in sorted
    /// order): the model's padding row.
    pub fn pad_id(&self) -> usize {
        self.symbols().chars().filter(|&c| c < PAD).count()
    }

    /// Input positions of one example at operand length `n`: the start token, the prompt
    /// and the answer (the final `\n` is only a target). What the model's context must hold.
    pub fn positions(&self, n: usize) -> usize {
        let (p, a) = self.example(0, 0, n);
        1 + p.chars().count() + a.chars().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Tokenizer;

    fn task(kind: TaskKind) -> TaskConfig {
        TaskConfig { kind, min_len: 2, max_len: 5, alphabet: 6, examples: 100, seed: 9 }
    }

    #[test]
    fn pad_id_is_the_pad_characters_id_and_positions_count_the_inputs() {
        for kind in [TaskKind::Copy, TaskKind::Reverse, TaskKind::Addition] {
            let t = task(kind);
            let tok = Tokenizer::char_level(&t.symbols());
            assert_eq!(tok.encode(&PAD.to_string()).unwrap(), vec![t.pad_id() as u32]);
            assert_eq!(tok.vocab_size(), 4 + 10 + 6, "\\n, _, =, +, digits, 6 letters");
        }
        // copy at n: `\n` + n + `=` + n; addition: `\n` + n + `+` + n + `=` + (n + 1)
        assert_eq!(task(TaskKind::Copy).positions(5), 12);
        assert_eq!(task(TaskKind::Reverse).positions(1), 4);
        assert_eq!(task(TaskKind::Addition).positions(3), 13);
    }

    #[test]
    fn validation_names_the_field_and_the_fix() {
        let t = task(TaskKind::Copy);
        assert!(t.validate(12).is_ok());
        let err = t.validate(11).unwrap_err().to_string();
        assert!(err.contains("data.context") && err.contains("set data.context = 12"), "{err}");
        let err = TaskConfig { min_len: 6, ..t.clone() }.validate(64).unwrap_err().to_string();
        assert!(err.contains("data.task.min_len"), "{err}");
        let err = TaskConfig { alphabet: 27, ..t.clone() }.validate(64).unwrap_err().to_string();
        assert!(err.contains("data.task.alphabet"), "{err}");
        let err = TaskConfig { examples: 9, ..t }.validate(64).unwrap_err().to_string();
        assert!(err.contains("data.task.examples"), "{err}");
    }
}
