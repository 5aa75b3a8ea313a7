//! Tasks end to end: the scoring against a model stub whose answers are right or wrong at
//! known positions (so an off-by-one in the answer span fails), greedy decoding through the
//! KV cache against decoding without it, and the training loss of a task batch against the
//! cross-entropy over the answer positions only.

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{rng_lock, SCHEMES};
use ember_position::PositionConfig;
use ember_train::dataset::{Batches, Dataset, Stream};
use ember_train::model::{ModelConfig, TinyLm, TinyLmConfig};
use ember_train::tasks::score::EVAL_STREAM;
use ember_train::tasks::{evaluate, TaskConfig, TaskKind, TaskModel};
use ember_train::tokenizer::Tokenizer;
use ember_train::trainer::decay_matrices;
use ember_train::{Config, TrainError};

/// Logit of the stub's chosen token (every other logit is 0).
const C: f64 = 5.0;

/// A model that knows the right sequences: at input position `j` it puts logit [`C`] on
/// the true token `j + 1` of the example whose prompt the row starts with, except at the
/// positions in `wrong` (and, with `only_full`, in every call shorter than the whole
/// example's inputs), where it picks the next id instead.
struct Oracle {
    examples: Vec<Vec<u32>>,
    prompt: usize,
    vocab: usize,
    wrong: Vec<usize>,
    only_full: bool,
}

impl TaskModel for Oracle {
    fn logits(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, TrainError> {
        let [b, t] = ids.dims();
        let host: Vec<i64> = ids.to_data().try_into_vec_as().unwrap();
        let mut z = vec![0f32; b * t * self.vocab];
        for (r, row) in host.chunks(t).enumerate() {
            let e = self.examples.iter().find(|e| e[..self.prompt].iter().zip(row).all(|(&a, &b)| a as i64 == b)).expect("rows start with a known prompt");
            let broken = self.only_full && t < e.len() - 1;
            for j in 0..t {
                let right = e.get(j + 1).copied().unwrap_or(0) as usize;
                let id = if broken || self.wrong.contains(&j) { (right + 1) % self.vocab } else { right };
                z[(r * t + j) * self.vocab + id] = C as f32;
            }
        }
        Ok(Tensor::from_data(TensorData::new(z, [b, t, self.vocab]), &ids.device()))
    }
}

fn copy_task() -> TaskConfig {
    TaskConfig { kind: TaskKind::Copy, min_len: 1, max_len: 4, alphabet: 5, examples: 100, seed: 11 }
}

#[test]
fn scoring_reads_exactly_the_answer_span() {
    let (task, n, count) = (copy_task(), 3, 7);
    let tok = Tokenizer::char_level(&task.symbols());
    let v = tok.vocab_size();
    let examples: Vec<Vec<u32>> = (0..count as u64).map(|i| task.encode(&tok, EVAL_STREAM, i, n).unwrap().ids).collect();
    // `\n abc = abc \n`: the answer starts at 5, 9 tokens, targets 5..9 predicted at 4..8
    let (at, len) = (1 + n + 1, 2 * n + 3);
    assert!(examples.iter().all(|e| e.len() == len && tok.decode(&e[at - 1..at]).unwrap() == "="));
    let k = (len - at) as f64;
    let (right, wrong) = (((C).exp() + v as f64 - 1.0).ln() - C, (C.exp() + v as f64 - 1.0).ln());
    // (positions answered wrong, teacher-forced and greedy exact match, targets right before
    // the first mistake, wrong targets per example)
    let cases: [(&[usize], f64, usize, usize); 7] = [
        (&[], 1.0, 4, 0),
        (&[0], 1.0, 4, 0),          // predicting the first letter of the prompt: not scored
        (&[at - 2], 1.0, 4, 0),     // predicting `=`: not scored
        (&[at - 1], 0.0, 0, 1),     // the first answer token
        (&[at, at + 1], 0.0, 1, 2), // inside the answer
        (&[len - 2], 0.0, 3, 1),    // the end `\n` after the answer: scored
        (&[len - 1], 1.0, 4, 0),    // one past the end: never asked for
    ];
    let device = Device::flex();
    for (wrong_at, exact, prefix, w) in cases {
        let stub = Oracle { examples: examples.clone(), prompt: at, vocab: v, wrong: wrong_at.to_vec(), only_full: false };
        let r = evaluate(&stub, &tok, &task, n, count, &device).unwrap();
        assert_eq!((r.accuracy, r.greedy, r.greedy_prefix), (exact, exact, prefix as f64 / k), "wrong at {wrong_at:?}: {r:?}");
        let want = ((k - w as f64) * right + w as f64 * wrong) / k;
        assert!((r.loss - want).abs() < 1e-5, "wrong at {wrong_at:?}: loss {} vs {want}", r.loss);
        assert_eq!((r.len, r.tokens, r.examples, r.scored), (n, len - 1, count, count * (len - at)));
    }
    // A model right under teacher forcing but wrong whenever it sees less than the whole
    // example (as a decoder with a position bug would be): greedy decoding exposes it.
    let stub = Oracle { examples, prompt: at, vocab: v, wrong: vec![], only_full: true };
    let r = evaluate(&stub, &tok, &task, n, count, &device).unwrap();
    assert_eq!((r.accuracy, r.greedy, r.greedy_prefix), (1.0, 0.0, 0.0), "{r:?}");
}

/// [`TinyLm`] decoding without its KV cache (the trait's default `greedy`).
struct Uncached<'a>(&'a TinyLm);

impl TaskModel for Uncached<'_> {
    fn logits(&self, ids: Tensor<2, Int>) -> Result<Tensor<3>, TrainError> {
        self.0.logits(ids)
    }
}

#[test]
fn cached_greedy_decoding_equals_decoding_without_the_cache() {
    let _lock = rng_lock();
    let task = TaskConfig { kind: TaskKind::Reverse, ..copy_task() };
    let tok = Tokenizer::char_level(&task.symbols());
    let device = Device::flex();
    for scheme in SCHEMES {
        let position: PositionConfig = toml::from_str(scheme).unwrap();
        device.seed(3);
        let config = TinyLmConfig::new(tok.vocab_size(), ModelConfig::new(16, 2, 2), position).with_padding_idx(Some(task.pad_id()));
        // Larger weights than the init's, so the argmax is far from ties.
        let model = decay_matrices(config.init(&device).unwrap(), 20.0);
        let e: Vec<_> = (0..6).map(|i| task.encode(&tok, EVAL_STREAM, i, 6).unwrap()).collect();
        let at = e[0].answer_at;
        let prompts: Vec<i64> = e.iter().flat_map(|e| e.prompt().iter().map(|&i| i as i64)).collect();
        let prompts = Tensor::<2, Int>::from_data(TensorData::new(prompts, [6, at]), &device);
        let k = e[0].answer().len();
        let cached: Vec<i64> = model.greedy(prompts.clone(), k).unwrap().to_data().try_into_vec_as().unwrap();
        let plain: Vec<i64> = Uncached(&model).greedy(prompts, k).unwrap().to_data().try_into_vec_as().unwrap();
        assert_eq!(cached, plain, "{scheme}");
        assert_eq!(cached.len(), 6 * k);
        assert!(cached.iter().all(|&i| i != task.pad_id() as i64), "{scheme}: the pad token is never predicted");
        let (a, b) = (evaluate(&model, &tok, &task, 6, 6, &device).unwrap(), evaluate(&Uncached(&model), &tok, &task, 6, 6, &device).unwrap());
        assert_eq!(a, b, "{scheme}");
    }
}

#[test]
fn a_task_batch_trains_on_the_answer_positions_only() {
    let _lock = rng_lock();
    let config = Config::from_toml(
        r#"
        [model]
        d_model = 16
        n_layers = 1
        n_heads = 2
        [position]
        scheme = "rope"
        [data]
        task = { kind = "addition", min_len = 1, max_len = 3, examples = 40, seed = 2 }
        context = 13
        [train]
        batch_size = 6
        steps = 1
        lr = 1e-3
        "#,
    )
    .unwrap();
    let task = config.data.task.clone().unwrap();
    assert_eq!(task.positions(3), 13);
    let err = Config::from_toml(&config.to_toml().replace("context = 13", "context = 12")).unwrap_err().to_string();
    assert!(err.contains("data.context") && err.contains("= 13"), "{err}");
    let data = Dataset::load(&config.data, None).unwrap();
    let device = Device::flex();
    device.seed(4);
    let model = config.tiny_lm(data.tokenizer.vocab_size()).init(&device).unwrap();
    let pad = task.pad_id() as i64;
    assert_eq!(model.tok.padding_idx(), Some(task.pad_id()));
    let (x, y) = data.batch(&Batches::of(&config, Stream::Train), 0, &device);
    let logits: Vec<f64> = model.forward(x.clone(), 0).unwrap().into_data().convert::<f64>().try_to_vec().unwrap();
    let (xs, ys): (Vec<i64>, Vec<i64>) = (x.to_data().try_into_vec_as().unwrap(), y.to_data().try_into_vec_as().unwrap());
    let (v, t) = (data.tokenizer.vocab_size(), 13);
    let eq = data.tokenizer.encode("=").unwrap()[0] as i64;
    // By hand: the mean cross-entropy over the positions from `=` to the last answer digit
    // (each predicting the next answer digit or the end `\n`), found from the inputs.
    let (mut sum, mut scored) = (0.0, 0);
    for (r, row) in xs.chunks(t).enumerate() {
        let from = row.iter().position(|&i| i == eq).unwrap();
        let to = row.iter().position(|&i| i == pad).unwrap_or(t);
        for j in 0..t {
            assert_eq!(ys[r * t + j] != pad, (from..to).contains(&j), "row {r} position {j}");
        }
        for j in from..to {
            let z = &logits[(r * t + j) * v..(r * t + j + 1) * v];
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            sum += m + z.iter().map(|q| (q - m).exp()).sum::<f64>().ln() - z[ys[r * t + j] as usize];
            scored += 1;
        }
    }
    let want = sum / scored as f64;
    for chunk in [None, Some(7)] {
        let got = model.loss(x.clone(), y.clone(), chunk).unwrap().into_scalar::<f64>();
        assert!((got - want).abs() < 1e-5, "fused chunk {chunk:?}: {got} vs {want}");
    }
}
