//! Training batches of a task: one example per row, left-aligned, padded, with the loss
//! on the answer only (see the [module docs](super)).
//!
//! For an example `ids = [\n, prompt…, answer…, \n]` in a row of `T` positions:
//!
//! ```text
//! position j   0    1 … P−1     P … P+A−1     P+A … T−1
//! input        \n   prompt…     answer…       pad…
//! target       pad  pad …  a₀   a₁ … \n       pad…        (P = answer_at, A = answer length)
//! ```
//!
//! The target at position `j` is `ids[j + 1]` for `answer_at − 1 ≤ j < ids.len() − 1` and
//! the pad id everywhere else, so the masked cross-entropy averages over the answer tokens
//! and the end `\n` only. Padding sits after the example, so under causal attention it
//! never changes what the scored positions see.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{Example, TaskConfig, PAD};
use crate::dataset::{Batches, Split};
use crate::rng::mix;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// A packed batch on the host: inputs and targets, row-major `[B, T]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Input ids `[B, T]`.
    pub inputs: Vec<i64>,
    /// Target ids `[B, T]`, the pad id where nothing is scored.
    pub targets: Vec<i64>,
    /// `[B, T]`.
    pub shape: [usize; 2],
}

impl Packed {
    /// Inputs and targets as `[B, T]` Int tensors on `device`.
    pub fn to_device(self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        (Tensor::from_data(TensorData::new(self.inputs, self.shape), device), Tensor::from_data(TensorData::new(self.targets, self.shape), device))
    }
}

/// Pack `examples` into rows of `t` positions (see the module docs). An example with more
/// than `t` input positions is an error: examples are never cut.
pub fn pack(examples: &[&Example], t: usize, pad: u32) -> Result<Packed, TrainError> {
    let pad = pad as i64;
    let (mut inputs, mut targets) = (vec![pad; examples.len() * t], vec![pad; examples.len() * t]);
    for (row, e) in examples.iter().enumerate() {
        let n = e.positions();
        if n > t {
            return Err(TrainError::config("data.context", format!("an example of {n} positions does not fit in {t}; examples are never cut, so set data.context ≥ {n}")));
        }
        let at = row * t;
        for (j, &id) in e.ids[..n].iter().enumerate() {
            inputs[at + j] = id as i64;
        }
        for j in e.answer_at - 1..n {
            targets[at + j] = e.ids[j + 1] as i64;
        }
    }
    Ok(Packed { inputs, targets, shape: [examples.len(), t] })
}

/// The encoded training and validation pools of a task and the row length `T`.
#[derive(Clone, Debug)]
pub struct TaskData {
    /// Stream 0: `examples` examples.
    pub train: Vec<Example>,
    /// Stream 1: a tenth of that (at least one).
    pub val: Vec<Example>,
    /// The pad id (the model's padding row).
    pub pad: u32,
    /// Positions per row (`data.context`).
    pub context: usize,
}

impl TaskData {
    /// Encode both pools with `tokenizer` (which must hold [`PAD`] at `task.pad_id()`:
    /// the character tokenizer of [`TaskConfig::symbols`]); every example must fit in
    /// `context` positions.
    pub fn new(task: &TaskConfig, tokenizer: &Tokenizer, context: usize) -> Result<Self, TrainError> {
        task.validate(context)?;
        let pad = tokenizer.encode(&PAD.to_string()).ok().filter(|p| p.as_slice() == [task.pad_id() as u32]).ok_or_else(|| {
            TrainError::tokenizer(None, format!(
                "a task needs the pad token {PAD:?} at id {} (the character tokenizer of the task's symbols); \
                 a run directory written before tasks had a pad token cannot be resumed: train it again",
                task.pad_id()
            ))
        })?[0];
        let data = Self { train: task.pool(tokenizer, 0, task.examples)?, val: task.pool(tokenizer, 1, task.examples.div_ceil(10))?, pad, context };
        if let Some(e) = data.train.iter().chain(&data.val).find(|e| e.positions() > context) {
            return Err(TrainError::config("data.context", format!("an example of {} positions does not fit in {context}", e.positions())));
        }
        Ok(data)
    }

    /// The pool of a split.
    pub fn examples(&self, split: Split) -> &[Example] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Batch `index` of the stream `batches`: `batch_size` examples of its split's pool,
    /// drawn uniformly (deterministic in `(batches.seed, batches.stream, index)`), packed
    /// into inputs and targets `[batch_size, context]` on `device`.
    pub fn batch(&self, batches: &Batches, index: u64, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let pool = self.examples(batches.stream.split());
        let rows: Vec<&Example> = (0..batches.batch_size as u64).map(|b| &pool[(mix(batches.seed, batches.stream as u64, index, b) % pool.len() as u64) as usize]).collect();
        pack(&rows, self.context, self.pad).expect("TaskData::new checked that every example fits").to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TaskKind;
    use super::*;
    use crate::dataset::Stream;

    fn task() -> TaskConfig {
        TaskConfig { kind: TaskKind::Copy, min_len: 1, max_len: 4, alphabet: 5, examples: 50, seed: 3 }
    }

    #[test]
    fn prompt_and_padding_are_masked_and_the_answer_is_not() {
        let t = task();
        let tok = Tokenizer::char_level(&t.symbols());
        let pad = t.pad_id() as i64;
        let ids = |s: &str| tok.encode(s).unwrap().into_iter().map(i64::from).collect::<Vec<_>>();
        let a = Example { ids: tok.encode("\nab=ab\n").unwrap(), answer_at: 4 };
        let b = Example { ids: tok.encode("\ncde=cde\n").unwrap(), answer_at: 5 };
        let p = pack(&[&a, &b], 9, pad as u32).unwrap();
        assert_eq!(p.shape, [2, 9]);
        assert_eq!(&p.inputs[..9], [ids("\nab=ab"), vec![pad; 3]].concat().as_slice());
        assert_eq!(&p.inputs[9..], [ids("\ncde=cde"), vec![pad; 1]].concat().as_slice());
        // row a: positions 0–2 (predicting a, b, =) masked; 3–5 predict a, b, \n
        let (ya, yb) = p.targets.split_at(9);
        assert_eq!(ya, [vec![pad; 3], ids("ab\n"), vec![pad; 3]].concat().as_slice());
        assert_eq!(yb, [vec![pad; 4], ids("cde\n"), vec![pad; 1]].concat().as_slice());
        let err = pack(&[&b], 7, pad as u32).unwrap_err().to_string();
        assert!(err.contains("data.context") && err.contains("≥ 8"), "{err}");
    }

    #[test]
    fn batches_hold_whole_examples_of_the_pool_seeded() {
        let t = task();
        let tok = Tokenizer::char_level(&t.symbols());
        let data = TaskData::new(&t, &tok, t.positions(4)).unwrap();
        assert_eq!((data.train.len(), data.val.len(), data.pad), (50, 5, t.pad_id() as u32));
        let dev = Device::flex();
        let batches = Batches { stream: Stream::Train, batch_size: 16, context: 10, seed: 1 };
        let (x, y) = data.batch(&batches, 7, &dev);
        assert_eq!(x.dims(), [16, 10]);
        let (x2, _) = data.batch(&batches, 7, &dev);
        assert_eq!(x.to_data(), x2.to_data(), "seeded");
        assert_ne!(x.to_data(), data.batch(&batches, 8, &dev).0.to_data(), "steps differ");
        let (x, y): (Vec<i64>, Vec<i64>) = (x.into_data().try_into_vec_as().unwrap(), y.into_data().try_into_vec_as().unwrap());
        for (xr, yr) in x.chunks(10).zip(y.chunks(10)) {
            // every row starts an example of the pool and holds all of it
            let e = data.train.iter().find(|e| e.ids[..e.positions()].iter().map(|&i| i as i64).eq(xr[..e.positions()].iter().copied())).expect("a whole pool example");
            assert!(xr[e.positions()..].iter().all(|&i| i == data.pad as i64));
            let scored: Vec<i64> = yr.iter().copied().filter(|&i| i != data.pad as i64).collect();
            assert_eq!(scored, e.answer().iter().map(|&i| i as i64).collect::<Vec<_>>(), "only the answer and the end are targets");
        }
        let err = TaskData::new(&t, &tok, 9).unwrap_err().to_string();
        assert!(err.contains("data.context"), "{err}");
        let old = Tokenizer::char_level(&t.symbols().replace(PAD, ""));
        let err = TaskData::new(&t, &old, 10).unwrap_err().to_string();
        assert!(err.contains("pad token") && err.contains("train it again"), "{err}");
    }
}
