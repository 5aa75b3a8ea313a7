//! Scoring a task: fresh examples (stream 2, never trained on) at one operand length,
//! teacher-forced and greedily decoded.
//!
//! For `count` examples of `L` tokens with the answer at `answer_at = P` (all examples at
//! one length share both):
//!
//! - **teacher forcing**: one forward pass over the inputs `ids[.., ..L−1]` `[count, L−1]`;
//!   the rows `P−1 .. L−1` of the logits predict the targets `ids[.., P..L]` (the answer and
//!   the end `\n`, `k = L − P` tokens). `loss` is their mean cross-entropy, `accuracy` the
//!   fraction of examples whose argmax is right at all `k`.
//! - **greedy decoding**: from the prompt alone (`ids[.., ..P]`), `k` tokens generated one at
//!   a time, each the argmax fed back in ([`TaskModel::greedy`]; a KV cache for [`TinyLm`]);
//!   `greedy` is the fraction of examples whose `k` tokens equal the targets — the answer
//!   followed by the end `\n`, so a right answer that does not stop there is wrong — and
//!   `greedy_prefix` the mean fraction of the `k` targets decoded right before the first
//!   mistake (a graded measure where exact match is 0 everywhere).
//!
//! Both exact matches are the same quantity when every step is computed exactly (each greedy
//! step sees the right prefix as long as it has been right), so they differ only by float
//! rounding between the cached and the full forward pass at near-ties; a larger gap means a
//! decoding bug (positions, cache), which is why both are reported.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_embed::loss::target_log_probs;
use serde::{Deserialize, Serialize};

use super::{Example, TaskConfig};
use crate::model::TinyLm;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// The stream of the examples [`evaluate`] scores (0 and 1 are the training pools).
pub const EVAL_STREAM: u64 = 2;

/// What scoring needs from a model: logits, and greedy continuation.
pub trait TaskModel {
    /// ids `[B, T]` at positions `[0, T)` → logits `[B, T, V]`.
    fn logits(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, TrainError>;

    /// Greedy decoding: prompts `[B, P]` (at positions `[0, P)`) → the next `k` tokens
    /// `[B, k]`, each the argmax of the last position's logits, fed back in. The default
    /// runs [`Self::logits`] on the whole sequence for every token.
    fn greedy(&self, prompts: Tensor<2, Int>, k: usize) -> Result<Tensor<2, Int>, TrainError> {
        let [b, _] = prompts.dims();
        let (mut ids, mut out) = (prompts, Vec::with_capacity(k));
        for _ in 0..k {
            let next = last_argmax(self.logits(ids.clone())?);
            ids = Tensor::cat(vec![ids, next.clone()], 1);
            out.push(next);
        }
        Ok(if out.is_empty() { Tensor::zeros([b, 0], &ids.device()) } else { Tensor::cat(out, 1) })
    }
}

/// The argmax of the last position of logits `[B, T, V]` → ids `[B, 1]`.
fn last_argmax(logits: Tensor<3>) -> Tensor<2, Int> {
    let [b, t, v] = logits.dims();
    logits.slice([0..b, t - 1..t, 0..v]).argmax(2).reshape([b, 1])
}

impl TaskModel for TinyLm {
    fn logits(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, TrainError> {
        Ok(self.forward(ids, 0)?)
    }

    /// The prompt is prefilled into a KV cache once; each new token costs one token's pass.
    fn greedy(&self, prompts: Tensor<2, Int>, k: usize) -> Result<Tensor<2, Int>, TrainError> {
        let [b, _] = prompts.dims();
        let device = prompts.device();
        let mut cache = self.kv_cache();
        let mut logits = self.forward_cached(prompts, &mut cache)?;
        let mut out = Vec::with_capacity(k);
        for step in 0..k {
            let next = last_argmax(logits.clone());
            if step + 1 < k {
                logits = self.forward_cached(next.clone(), &mut cache)?;
            }
            out.push(next);
        }
        Ok(if out.is_empty() { Tensor::zeros([b, 0], &device) } else { Tensor::cat(out, 1) })
    }
}

/// The result of [`evaluate`] at one operand length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Operand length `n`.
    pub len: usize,
    /// Input positions per example (what the model's context must hold).
    pub tokens: usize,
    /// Examples scored.
    pub examples: usize,
    /// Targets scored, all examples: answer tokens and the end `\n`.
    pub scored: usize,
    /// Teacher-forced exact match: fraction of examples with the argmax right at every target.
    pub accuracy: f64,
    /// Greedy exact match: fraction of examples whose decoded answer (and end) is right.
    pub greedy: f64,
    /// Mean over examples of the fraction of targets decoded right before the first mistake.
    pub greedy_prefix: f64,
    /// Mean teacher-forced cross-entropy over the targets (nats/token).
    pub loss: f64,
}

/// Score `count` fresh examples at operand length `n` on `device`. See the module docs.
pub fn evaluate(model: &impl TaskModel, tokenizer: &Tokenizer, task: &TaskConfig, n: usize, count: usize, device: &Device) -> Result<TaskReport, TrainError> {
    if count == 0 || n == 0 {
        return Err(TrainError::request("eval.task_examples", format!("need ≥ 1 example of length ≥ 1, got {count} of length {n}")));
    }
    let examples: Vec<Example> = (0..count as u64).map(|i| task.encode(tokenizer, EVAL_STREAM, i, n)).collect::<Result<_, _>>()?;
    let (len, at) = (examples[0].ids.len(), examples[0].answer_at);
    assert!(examples.iter().all(|e| e.ids.len() == len && e.answer_at == at), "examples of one length share their shape");
    let k = len - at;
    let ids: Vec<i64> = examples.iter().flat_map(|e| e.ids.iter().map(|&i| i as i64)).collect();
    let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [count, len]), device);
    let targets = all.clone().slice([0..count, at..len]); // [count, k]

    let logits = model.logits(all.clone().slice([0..count, 0..len - 1]))?; // [count, len − 1, V]
    let v = logits.dims()[2];
    let rows = logits.slice([0..count, at - 1..len - 1, 0..v]); // [count, k, V]: the rows predicting the targets
    let picked = target_log_probs(rows.clone(), targets); // [count, k]: log p(target)
    let loss = -picked.mean().into_scalar::<f64>();
    let answers: Vec<&[u32]> = examples.iter().map(Example::answer).collect();
    let (forced, _) = agreement(rows.argmax(2).reshape([count, k]), &answers); // argmax of logits = of log-probs
    let (greedy, greedy_prefix) = agreement(model.greedy(all.slice([0..count, 0..at]), k)?, &answers);
    Ok(TaskReport { len: n, tokens: len - 1, examples: count, scored: count * k, accuracy: forced, greedy, greedy_prefix, loss })
}

/// How `predicted` `[B, k]` agrees with the `B` answers of `k` tokens each: the fraction of
/// rows equal at every column, and the mean fraction of leading columns equal.
fn agreement(predicted: Tensor<2, Int>, answers: &[&[u32]]) -> (f64, f64) {
    let k = predicted.dims()[1];
    let predicted: Vec<i64> = predicted.into_data().try_into_vec_as().expect("ids read back as integers");
    let (mut exact, mut prefix) = (0usize, 0.0);
    for (row, answer) in predicted.chunks(k).zip(answers) {
        let right = row.iter().zip(answer.iter()).take_while(|(p, a)| **p == **a as i64).count();
        exact += usize::from(right == k);
        prefix += right as f64 / k as f64;
    }
    (exact as f64 / answers.len() as f64, prefix / answers.len() as f64)
}
