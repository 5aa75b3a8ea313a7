//! Synthetic length-generalization tasks (`[data] task = { kind = "copy", … }`): generated
//! text instead of a corpus, and exact-match evaluation on the answer tokens.
//!
//! One example is a line `prompt answer\n` of characters, `n` the length of its operand(s):
//!
//! | kind | example (n = 4) | answer |
//! | --- | --- | --- |
//! | `copy` | `dbca=dbca` | the string again |
//! | `reverse` | `dbca=acbd` | the string reversed |
//! | `addition` | `4071+0938=5009` | the sum of two n-digit numbers (leading zeros kept), n + 1 digits |
//!
//! Strings draw from the first `alphabet` letters `a…z`. Training text is `examples` lines with
//! `n` uniform in `[min_len, max_len]`, validation text a tenth of that, from independent
//! seeds derived from `seed`: the same seed gives the same text. The model is trained as a
//! language model on random windows of that text (every line starts after a `\n`), then
//! [`evaluate`] scores examples of any length `n` (up to 4·max_len and beyond): the answer
//! tokens are predicted with the prompt and the earlier answer tokens given (teacher forcing),
//! an example is correct when the argmax is right at every answer token — what greedy
//! decoding would produce.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::dataset::mix;
use crate::model::TinyLm;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

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
    /// Training examples generated.
    #[serde(default = "default_examples")]
    pub examples: usize,
    /// Seed of the generated text.
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
    /// Check the numbers; the error names the field.
    pub fn validate(&self) -> Result<(), TrainError> {
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
        Ok(())
    }

    /// Every character the task can produce (the tokenizer's vocabulary).
    pub fn symbols(&self) -> String {
        let letters: String = (b'a'..b'a' + self.alphabet as u8).map(char::from).collect();
        format!("\n=+0123456789{letters}")
    }

    /// `(prompt, answer)` of example `index` of stream `stream` at operand length `n`.
    pub fn example(&self, stream: u64, index: u64, n: usize) -> (String, String) {
        let draw = |j: u64| mix(self.seed, stream, index, j);
        match self.kind {
            TaskKind::Copy | TaskKind::Reverse => {
                let s: String = (0..n as u64).map(|j| char::from(b'a' + (draw(j) % self.alphabet as u64) as u8)).collect();
                let answer = if self.kind == TaskKind::Copy { s.clone() } else { s.chars().rev().collect() };
                (format!("{s}="), answer)
            }
            TaskKind::Addition => {
                let digits = |k: u64| -> Vec<u8> { (0..n as u64).map(|j| (draw(k * n as u64 + j) % 10) as u8).collect() };
                let (a, b) = (digits(0), digits(1));
                let mut sum = vec![0u8; n + 1];
                let mut carry = 0;
                for i in (0..n).rev() {
                    let t = a[i] + b[i] + carry;
                    sum[i + 1] = t % 10;
                    carry = t / 10;
                }
                sum[0] = carry;
                let text = |d: &[u8]| d.iter().map(|x| char::from(b'0' + x)).collect::<String>();
                (format!("{}+{}=", text(&a), text(&b)), text(&sum))
            }
        }
    }

    /// The generated text of a split: `count` lines, `n` uniform in `[min_len, max_len]`.
    pub fn text(&self, stream: u64, count: usize) -> String {
        let span = (self.max_len - self.min_len + 1) as u64;
        let mut out = String::from("\n");
        for i in 0..count as u64 {
            let n = self.min_len + (mix(self.seed, stream, i, u64::MAX) % span) as usize;
            let (p, a) = self.example(stream, i, n);
            out.push_str(&p);
            out.push_str(&a);
            out.push('\n');
        }
        out
    }

    /// Tokens of one example at operand length `n`: `\n` + prompt + answer.
    pub fn example_len(&self, n: usize) -> usize {
        let (p, a) = self.example(0, 0, n);
        1 + p.chars().count() + a.chars().count()
    }
}

/// The result of [`evaluate`] at one operand length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Operand length `n`.
    pub len: usize,
    /// Tokens per example (what the model's context must hold).
    pub tokens: usize,
    /// Examples scored.
    pub examples: usize,
    /// Answer tokens scored (all examples).
    pub scored: usize,
    /// Fraction with every answer token right.
    pub accuracy: f64,
    /// Mean cross-entropy over answer tokens (nats/token).
    pub loss: f64,
}

/// Score `count` fresh examples (stream 2, not seen in training) at operand length `n`.
pub fn evaluate(model: &TinyLm, tokenizer: &Tokenizer, task: &TaskConfig, n: usize, count: usize, device: &Device) -> Result<TaskReport, TrainError> {
    let mut ids = Vec::new();
    let (mut answer_at, mut t) = (0, 0);
    for i in 0..count as u64 {
        let (p, a) = task.example(2, i, n);
        let e = tokenizer.encode(&format!("\n{p}{a}"))?;
        (answer_at, t) = (1 + p.chars().count(), e.len());
        ids.extend(e.into_iter().map(|x| x as i64));
    }
    let v = model.tok.vocab_size();
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [count, t]), device);
    let logp = log_softmax(model.forward(x.clone().slice([0..count, 0..t - 1]), 0)?, 2); // [count, t-1, V]
    let logp = logp.slice([0..count, answer_at - 1..t - 1, 0..v]); // rows predicting the answer
    let targets = x.slice([0..count, answer_at..t]);
    let k = t - answer_at;
    let picked = logp.clone().gather(2, targets.clone().reshape([count, k, 1])).reshape([count, k]);
    let loss = -picked.mean().into_scalar::<f64>();
    let right = logp.argmax(2).reshape([count, k]).equal(targets).int().sum_dim(1).equal_elem(k as i64).int().sum().into_scalar::<i64>();
    Ok(TaskReport { len: n, tokens: t, examples: count, scored: count * k, accuracy: right as f64 / count as f64, loss })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: TaskKind) -> TaskConfig {
        TaskConfig { kind, min_len: 2, max_len: 5, alphabet: 6, examples: 100, seed: 9 }
    }

    #[test]
    fn answers_are_correct_and_lengths_respected() {
        for kind in [TaskKind::Copy, TaskKind::Reverse, TaskKind::Addition] {
            let t = task(kind);
            for n in [1, 3, 20] {
                let (p, a) = t.example(0, 7, n);
                let operand = p.trim_end_matches('=');
                match kind {
                    TaskKind::Copy => assert_eq!((operand.len(), a.as_str()), (n, operand)),
                    TaskKind::Reverse => assert_eq!((operand.len(), a.clone()), (n, operand.chars().rev().collect::<String>())),
                    TaskKind::Addition => {
                        let (x, y) = operand.split_once('+').unwrap();
                        assert_eq!((x.len(), y.len(), a.len()), (n, n, n + 1));
                        if n <= 18 {
                            assert_eq!(a.parse::<u64>().unwrap(), x.parse::<u64>().unwrap() + y.parse::<u64>().unwrap(), "{p}{a}");
                        }
                    }
                }
                assert!(p.chars().chain(a.chars()).all(|c| t.symbols().contains(c)), "{p}{a}");
                assert_eq!(t.example_len(n), 1 + p.len() + a.len());
            }
            let text = t.text(0, 100);
            assert_eq!(text, t.text(0, 100), "seeded");
            assert_ne!(text, t.text(1, 100), "streams differ");
            for line in text.lines().skip(1) {
                let operand = line.split('=').next().unwrap().split('+').next().unwrap();
                assert!((2..=5).contains(&operand.len()), "{line}");
            }
        }
        assert!(TaskConfig { max_len: 1, ..task(TaskKind::Copy) }.validate().is_err());
        assert!(TaskConfig { alphabet: 27, ..task(TaskKind::Copy) }.validate().is_err());
    }
}
