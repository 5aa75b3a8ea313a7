//! The grid of an ablation: cells (variant × seed), the jobs that produce them, shards.
//!
//! A *job* is one trained variant at one seed: it trains (or resumes, or skips a finished
//! run) and then evaluates that variant's cell and the cells of every eval-only variant
//! built on it (same seed), since those need its weights. Jobs are numbered in config order
//! (variant-major, then seed); shard `i/n` (0-based `i`) takes the jobs `k` with
//! `k mod n = i`, so shards partition the grid and `n` shards of a grid with ≥ `n` jobs are
//! all non-empty.

use std::str::FromStr;

use super::config::Ablation;

/// One result cell: a variant at a seed (evaluated at every length, both modes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The variant's label.
    pub variant: String,
    /// The seed.
    pub seed: u64,
}

/// A trained variant at a seed, and the cells it produces (its own first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Label of the trained variant.
    pub variant: String,
    /// The seed.
    pub seed: u64,
    /// Cells evaluated from this run: the trained variant's, then its eval-only ones.
    pub cells: Vec<Cell>,
}

/// Shard `index` of `count` (`--shard index/count`, `0 ≤ index < count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether job number `k` belongs to this shard.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not a shard; write i/n with 0 ≤ i < n (e.g. 0/4, or $SLURM_ARRAY_TASK_ID/4)");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count) = (i.trim().parse::<usize>().map_err(|_| err())?, n.trim().parse::<usize>().map_err(|_| err())?);
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Every job of the ablation, in order.
pub fn jobs(a: &Ablation) -> Vec<Job> {
    let mut out = Vec::new();
    for v in a.config.variants.iter().filter(|v| v.trains()) {
        for &seed in &a.config.seeds {
            let mut cells = vec![Cell { variant: v.label.clone(), seed }];
            for e in a.config.variants.iter().filter(|e| e.eval_of.as_deref() == Some(v.label.as_str())) {
                cells.push(Cell { variant: e.label.clone(), seed });
            }
            out.push(Job { variant: v.label.clone(), seed, cells });
        }
    }
    out
}

/// Every cell in output order (config order of variants, then seeds).
pub fn cells(a: &Ablation) -> Vec<Cell> {
    let mut out = Vec::new();
    for v in &a.config.variants {
        for &seed in &a.config.seeds {
            out.push(Cell { variant: v.label.clone(), seed });
        }
    }
    out
}

/// The jobs of `shard`.
pub fn shard_jobs(a: &Ablation, shard: Shard) -> Vec<Job> {
    jobs(a).into_iter().enumerate().filter(|(k, _)| shard.owns(*k)).map(|(_, j)| j).collect()
}
