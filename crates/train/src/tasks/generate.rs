//! Examples of a task as text and as token ids: a pure function of the task's seed, a
//! stream and an index (see the [module docs](super)).

use super::{TaskConfig, TaskKind, BOUNDARY};
use crate::rng::mix;
use crate::tokenizer::Tokenizer;
use crate::TrainError;

/// One example as token ids: `ids = [\n, prompt…, answer…, \n]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The whole sequence, start and end `\n` included.
    pub ids: Vec<u32>,
    /// Index in `ids` of the first answer token (= 1 + prompt length): the targets the
    /// loss and the scoring read are `ids[answer_at..]` (the answer and the end `\n`),
    /// predicted at input positions `answer_at − 1 .. ids.len() − 1`.
    pub answer_at: usize,
}

impl Example {
    /// Input positions: every token but the last (`ids.len() − 1`).
    pub fn positions(&self) -> usize {
        self.ids.len() - 1
    }

    /// The scored targets: the answer and the end `\n` (`ids[answer_at..]`).
    pub fn answer(&self) -> &[u32] {
        &self.ids[self.answer_at..]
    }

    /// The prompt with the start token (`ids[..answer_at]`): what greedy decoding starts from.
    pub fn prompt(&self) -> &[u32] {
        &self.ids[..self.answer_at]
    }
}

impl TaskConfig {
    /// `(prompt, answer)` of example `index` of stream `stream` at operand length `n`,
    /// without the `\n`s (`("dbca=", "dbca")`).
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

    /// The operand length of example `index` of a training or validation pool: uniform in
    /// `[min_len, max_len]`.
    pub fn pool_len(&self, stream: u64, index: u64) -> usize {
        let span = (self.max_len - self.min_len + 1) as u64;
        self.min_len + (mix(self.seed, stream, index, u64::MAX) % span) as usize
    }

    /// Example `index` of `stream` at operand length `n` as ids under `tokenizer`.
    pub fn encode(&self, tokenizer: &Tokenizer, stream: u64, index: u64, n: usize) -> Result<Example, TrainError> {
        let (p, a) = self.example(stream, index, n);
        let ids = tokenizer.encode(&format!("{BOUNDARY}{p}{a}{BOUNDARY}"))?;
        Ok(Example { ids, answer_at: 1 + p.chars().count() })
    }

    /// The first `count` examples of a pool (`stream` 0: training, 1: validation) as ids.
    pub fn pool(&self, tokenizer: &Tokenizer, stream: u64, count: usize) -> Result<Vec<Example>, TrainError> {
        (0..count as u64).map(|i| self.encode(tokenizer, stream, i, self.pool_len(stream, i))).collect()
    }

    /// The same pool as text, one example per line (`\ndbca=dbca\nab=ab\n…`): what
    /// `ember eval` scores on a task run, as a language model over whole lines.
    pub fn text(&self, stream: u64, count: usize) -> String {
        let mut out = String::from(BOUNDARY);
        for i in 0..count as u64 {
            let (p, a) = self.example(stream, i, self.pool_len(stream, i));
            out.push_str(&p);
            out.push_str(&a);
            out.push(BOUNDARY);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::PAD;
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
                let operand = p.strip_suffix('=').expect("prompts end with =");
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
                assert!(p.chars().chain(a.chars()).all(|c| t.symbols().contains(c) && c != PAD), "{p}{a}");
                assert_eq!(t.positions(n), 1 + p.len() + a.len());
            }
            let text = t.text(0, 100);
            assert_eq!(text, t.text(0, 100), "seeded");
            assert_ne!(text, t.text(1, 100), "streams differ");
            assert_ne!(text, TaskConfig { seed: 10, ..t.clone() }.text(0, 100), "seeds differ");
            let mut seen = [false; 6];
            for line in text.lines().skip(1) {
                let operand = line.split('=').next().unwrap().split('+').next().unwrap();
                assert!((2..=5).contains(&operand.len()), "{line}");
                seen[operand.len()] = true;
            }
            assert_eq!(seen, [false, false, true, true, true, true], "every length of [min_len, max_len] drawn");
        }
    }

    #[test]
    fn encoded_examples_frame_the_answer() {
        let t = task(TaskKind::Addition);
        let tok = Tokenizer::char_level(&t.symbols());
        let e = t.encode(&tok, 2, 5, 3).unwrap();
        let (p, a) = t.example(2, 5, 3);
        assert_eq!(tok.decode(&e.ids).unwrap(), format!("\n{p}{a}\n"));
        assert_eq!(tok.decode(e.prompt()).unwrap(), format!("\n{p}"));
        assert_eq!(tok.decode(e.answer()).unwrap(), format!("{a}\n"));
        assert_eq!((e.positions(), e.answer().len()), (t.positions(3), 3 + 1 + 1));
        let pool = t.pool(&tok, 0, 30).unwrap();
        assert_eq!(tok.decode(&pool.iter().flat_map(|e| e.ids[1..].to_vec()).collect::<Vec<_>>()).unwrap(), t.text(0, 30)[1..]);
    }
}
