//! The TOML schema of an ablation (`ember ablate CONFIG`), unknown keys rejected.
//!
//! ```toml
//! base = "shakespeare-char.toml"     # a training config, relative to this file
//! out_dir = "runs/ablation"          # runs/, cells/ and the outputs go here
//! seeds = [0, 1]                      # every trained variant runs once per seed
//! eval_lengths = [1, 2, 4, 8]         # multiples of the base's data.context
//! steps = 300                         # optional: overrides train.steps for every variant
//! eval_interval = 50                  # optional: overrides train.eval_interval
//!
//! [eval]                              # optional
//! split = "val"
//! sliding_stride = 0.25               # sliding stride = this × eval length (≥ 1 token)
//! max_tokens = 20000                  # score at most this many targets per cell
//!
//! [[variant]]
//! label = "rope"
//! position = { scheme = "rope" }      # any [position] table
//!
//! [[variant]]                         # eval-only: the "rope" runs, evaluated with YaRN on
//! label = "rope+yarn"
//! eval_of = "rope"
//! rope_scaling = { kind = "yarn", factor = 4.0 }
//! ```

use std::path::{Path, PathBuf};

use ember_position::PositionConfig;
use serde::{Deserialize, Serialize};

use crate::dataset::Split;
use crate::eval::EvalScaling;
use crate::{Config, TrainError};

/// A whole ablation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblationConfig {
    /// The training config every variant starts from (relative to the ablation file).
    pub base: PathBuf,
    /// Where runs, finished cells and outputs are written.
    pub out_dir: PathBuf,
    /// Seeds (weights and batch order); default `[0]`.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Evaluation lengths as multiples of the training context.
    pub eval_lengths: Vec<usize>,
    /// Overrides `train.steps` of the base (the warm-up is shortened to fit).
    #[serde(default)]
    pub steps: Option<usize>,
    /// Overrides `train.eval_interval` (the points of `loss_curves.png`).
    #[serde(default)]
    pub eval_interval: Option<usize>,
    /// Evaluation settings.
    #[serde(default)]
    pub eval: EvalSettings,
    /// The variants, in output order.
    #[serde(rename = "variant")]
    pub variants: Vec<Variant>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// `[eval]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    /// Split scored (default `val`).
    #[serde(default = "default_split")]
    pub split: Split,
    /// Sliding-window stride as a fraction of the evaluation length, in (0, 1].
    #[serde(default = "default_sliding")]
    pub sliding_stride: f64,
    /// Cap on targets scored per cell (the first ones of the split).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Task ablations: generated examples scored per length.
    #[serde(default = "default_task_examples")]
    pub task_examples: usize,
}

fn default_task_examples() -> usize {
    200
}

fn default_split() -> Split {
    Split::Val
}
fn default_sliding() -> f64 {
    0.25
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self { split: default_split(), sliding_stride: default_sliding(), max_tokens: None, task_examples: default_task_examples() }
    }
}

/// One `[[variant]]`: trained (`position`) or eval-only (`eval_of` + `rope_scaling`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name in outputs and the run directory (letters, digits, `-`, `_`, `+`, `.`).
    pub label: String,
    /// The position scheme to train with.
    #[serde(default)]
    pub position: Option<PositionConfig>,
    /// Eval-only: the label of the trained RoPE variant whose runs are evaluated.
    #[serde(default)]
    pub eval_of: Option<String>,
    /// Eval-only: the RoPE scaling switched on at evaluation.
    #[serde(default)]
    pub rope_scaling: Option<EvalScaling>,
}

impl Variant {
    /// The trained variant whose runs this one evaluates (itself when trained).
    pub fn run_label(&self) -> &str {
        self.eval_of.as_deref().unwrap_or(&self.label)
    }
    /// Whether it trains (not eval-only).
    pub fn trains(&self) -> bool {
        self.eval_of.is_none()
    }
}

/// A parsed ablation with its base config loaded.
#[derive(Clone, Debug)]
pub struct Ablation {
    /// The ablation's settings.
    pub config: AblationConfig,
    /// The base training config (steps overridden).
    pub base: Config,
}

impl Ablation {
    /// Read an ablation file and the base config it names; validate both.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::read(path, e))?;
        let config: AblationConfig = toml::from_str(&text).map_err(|e| TrainError::ConfigFile { path: path.to_path_buf(), reason: e.to_string() })?;
        let base_path = path.parent().unwrap_or(Path::new(".")).join(&config.base);
        let base = Config::load(&base_path)?;
        Self::new(config, base).map_err(|e| match e {
            TrainError::Config { field, reason } => TrainError::ConfigFile { path: path.to_path_buf(), reason: format!("`{field}`: {reason}") },
            other => other,
        })
    }

    /// From parts (tests): applies `steps` to the base and validates everything.
    pub fn new(config: AblationConfig, base: Config) -> Result<Self, TrainError> {
        let overrides = crate::config::Overrides { steps: config.steps, ..Default::default() };
        let mut base = base.with_overrides(&overrides)?;
        if let Some(k) = config.eval_interval {
            base.train.eval_interval = k;
            base.validate()?;
        }
        let a = Self { config, base };
        a.validate()?;
        Ok(a)
    }

    /// The variant labelled `label`.
    pub fn variant(&self, label: &str) -> Option<&Variant> {
        self.config.variants.iter().find(|v| v.label == label)
    }

    /// The training config of `variant` (trained) at `seed`: the base with only the position
    /// scheme, the seed and the run directory changed.
    pub fn run_config(&self, variant: &Variant, seed: u64) -> Config {
        let mut c = self.base.clone();
        if let Some(p) = &variant.position {
            c.position = p.clone();
        }
        c.train.seed = seed;
        c.run.out_dir = self.run_dir(variant.run_label(), seed);
        c
    }

    /// `out_dir/runs/<label>/seed-<seed>`.
    pub fn run_dir(&self, label: &str, seed: u64) -> PathBuf {
        self.config.out_dir.join("runs").join(label).join(format!("seed-{seed}"))
    }

    /// The training length the multiples refer to: `data.context`, or for a task its
    /// `max_len` (operand length).
    pub fn train_len(&self) -> usize {
        self.base.data.task.as_ref().map_or(self.base.data.context, |t| t.max_len)
    }

    /// The evaluation lengths: tokens, or operand lengths for a task.
    pub fn eval_tokens(&self) -> Vec<usize> {
        self.config.eval_lengths.iter().map(|m| m * self.train_len()).collect()
    }

    /// Check a `--compare x y` request: two different variant labels of this ablation.
    pub fn check_compare(&self, x: &str, y: &str) -> Result<(), TrainError> {
        let labels = || self.config.variants.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(", ");
        if let Some(unknown) = [x, y].into_iter().find(|l| self.variant(l).is_none()) {
            return Err(TrainError::request("--compare", format!("`{unknown}` is not a variant of this ablation; its variants are {}", labels())));
        }
        if x == y {
            return Err(TrainError::request("--compare", format!("compare two different variants (got `{x}` twice); the variants are {}", labels())));
        }
        Ok(())
    }

    /// An eval-only variant's scaling must make a valid RoPE config of its trained variant
    /// `of` (caught here, not after training).
    fn check_scaling(&self, v: &Variant, of: &Variant, scaling: &EvalScaling) -> Result<(), TrainError> {
        let mut c = self.run_config(of, self.config.seeds[0]);
        if let PositionConfig::Rope { scaling: s, .. } = &mut c.position {
            *s = scaling.rope_scaling(c.data.context);
        }
        c.validate().map_err(|e| TrainError::config("variant.rope_scaling", format!("variant `{}`: {e}", v.label)))
    }

    fn validate(&self) -> Result<(), TrainError> {
        let c = &self.config;
        let bad = |field: &str, why: String| Err(TrainError::config(field, why));
        if c.variants.is_empty() {
            return bad("variant", "list at least one [[variant]]".into());
        }
        if c.seeds.is_empty() {
            return bad("seeds", "the list is empty; list at least one seed, e.g. seeds = [0, 1, 2] (≥ 2 for confidence intervals)".into());
        }
        if let Some(i) = (1..c.seeds.len()).find(|&i| c.seeds[..i].contains(&c.seeds[i])) {
            return bad("seeds", format!("{:?}: seed {} is listed twice; list each seed once", c.seeds, c.seeds[i]));
        }
        if c.eval_lengths.is_empty() || c.eval_lengths.contains(&0) {
            return bad("eval_lengths", format!("{:?}: need multiples ≥ 1 of the training context", c.eval_lengths));
        }
        if c.eval.task_examples == 0 {
            return bad("eval.task_examples", "must be ≥ 1".into());
        }
        if !(c.eval.sliding_stride > 0.0 && c.eval.sliding_stride <= 1.0) {
            return bad("eval.sliding_stride", format!("{} is not in (0, 1]; it is the sliding stride as a fraction of the length", c.eval.sliding_stride));
        }
        let longest = self.eval_tokens().into_iter().max().unwrap_or(0);
        match c.eval.max_tokens {
            Some(m) if self.base.data.task.is_none() && m < longest => {
                return bad("eval.max_tokens", format!(
                    "{m} is shorter than the longest evaluation length ({longest} tokens), so its windows would be cut short; \
                     set it to at least {longest}, or leave it out to score the whole split"
                ));
            }
            _ => {}
        }
        for (i, v) in c.variants.iter().enumerate() {
            let ok_char = |ch: char| ch.is_ascii_alphanumeric() || "-_+.".contains(ch);
            if v.label.is_empty() || !v.label.chars().all(ok_char) || v.label.starts_with('.') {
                return bad("variant.label", format!("`{}`: use letters, digits, -, _, + and . (it names a directory)", v.label));
            }
            if c.variants[..i].iter().any(|w| w.label == v.label) {
                return bad("variant.label", format!("`{}` is used twice", v.label));
            }
            match (&v.position, &v.eval_of, &v.rope_scaling) {
                (Some(_), None, None) => {
                    self.run_config(v, c.seeds[0]).validate().map_err(|e| TrainError::config("variant.position", format!("variant `{}`: {e}", v.label)))?;
                }
                (None, Some(of), Some(scaling)) => match self.variant(of) {
                    Some(t) if t.trains() && matches!(t.position, Some(PositionConfig::Rope { .. })) => self.check_scaling(v, t, scaling)?,
                    _ => return bad("variant.eval_of", format!("variant `{}`: `{of}` must be the label of a trained variant with scheme = \"rope\"", v.label)),
                },
                _ => {
                    return bad("variant", format!(
                        "variant `{}`: give either `position` (a trained variant) or both `eval_of` and `rope_scaling` (an eval-only one)",
                        v.label
                    ))
                }
            }
        }
        Ok(())
    }
}
