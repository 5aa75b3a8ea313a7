//! Result rows, the per-cell files shards write, and the merged outputs.
//!
//! Each finished cell is one file `out_dir/cells/<label>/seed-<seed>.json` (a JSON array of
//! [`Row`]s, written atomically): its existence is what "finished" means, for resume and for
//! `--collect`. [`write_outputs`] merges all cells into `results.csv`, `results.json` (the
//! same rows) and `results.md` (per mode: mean and 95 % t interval over seeds, one row per
//! variant, one column per evaluation length; then each variant's paired difference from the
//! first variant, see [`super::stats`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::Ablation;
use super::grid::{cells, Cell};
use super::stats::{estimate, paired_difference, Estimate, LEVEL};
use crate::fs::write_atomic;
use crate::TrainError;

/// `non_overlapping` (stride = length) or `sliding` (stride = `eval.sliding_stride` × length).
pub const MODES: [&str; 2] = ["non_overlapping", "sliding"];

/// Sequences the attention diagnostics of a cell are measured on, per length.
pub const ATTENTION_ROWS: usize = 8;

/// The mode of a task ablation: answer tokens of generated examples (see [`crate::tasks`]).
pub const TASK_MODE: &str = "exact_match";

/// The modes rows of `a` have.
pub fn modes(a: &Ablation) -> &'static [&'static str] {
    if a.base.data.task.is_some() { &[TASK_MODE] } else { &MODES }
}

/// One evaluation of one cell at one length in one mode. `loss`, `perplexity`, `tokens` are
/// absent (and `reason` says why) when the cell cannot be evaluated there (`n/a`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Variant label.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Evaluation length in tokens.
    pub eval_len: usize,
    /// One of [`MODES`].
    pub mode: String,
    /// Mean cross-entropy (nats/token).
    pub loss: Option<f64>,
    /// `exp(loss)`.
    pub perplexity: Option<f64>,
    /// Task ablations: fraction of examples with every answer token right.
    pub accuracy: Option<f64>,
    /// Task ablations: fraction of examples whose greedily decoded answer is right (see
    /// [`crate::tasks::score`]; `accuracy` is the teacher-forced one).
    #[serde(default)]
    pub greedy: Option<f64>,
    /// Task ablations: mean fraction of the answer decoded greedily right before the first mistake.
    #[serde(default)]
    pub greedy_prefix: Option<f64>,
    /// Targets scored.
    pub tokens: Option<usize>,
    /// Training time of the run the cell evaluates (seconds, from its checkpoint).
    pub train_time_s: f64,
    /// Attention diagnostics at this length, `[layer][head]`: mean attention distance and
    /// entropy ([`crate::diagnostics`]) on [`ATTENTION_ROWS`] evaluation sequences; on the
    /// first mode's row of each evaluated length only (`results.json`; not in the CSV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<Vec<Vec<crate::diagnostics::HeadStats>>>,
    /// Why the cell is `n/a`.
    pub reason: Option<String>,
}

/// `out_dir/cells/<label>/seed-<seed>.json`.
pub fn cell_path(a: &Ablation, cell: &Cell) -> PathBuf {
    a.config.out_dir.join("cells").join(&cell.variant).join(format!("seed-{}.json", cell.seed))
}

/// Whether `cell` is finished (its file exists).
pub fn is_done(a: &Ablation, cell: &Cell) -> bool {
    cell_path(a, cell).exists()
}

/// Record the ablation's settings in `out_dir/ablation.toml` on the first run, and refuse to
/// mix cells of different settings afterwards (finished cells are reused by label and seed).
pub fn check_settings(a: &Ablation) -> Result<(), TrainError> {
    let path = a.config.out_dir.join("ablation.toml");
    let text = format!("{}\n# the base config, as resolved\n# {}\n", toml::to_string(&a.config).expect("serializes"), a.base.to_toml().replace('\n', "\n# "));
    match std::fs::read_to_string(&path) {
        Ok(old) if old == text => Ok(()),
        Ok(_) => Err(TrainError::checkpoint(
            &path,
            "this out_dir holds cells of an ablation with other settings (base, steps, lengths, variants…); \
             use a new out_dir, or delete this one to start over",
        )),
        Err(_) => {
            std::fs::create_dir_all(&a.config.out_dir).map_err(|e| TrainError::write(&a.config.out_dir, e))?;
            write_atomic(&path, text.as_bytes())
        }
    }
}

/// Write a finished cell's rows.
pub fn save_cell(a: &Ablation, cell: &Cell, rows: &[Row]) -> Result<(), TrainError> {
    let path = cell_path(a, cell);
    let dir = path.parent().expect("cell files sit in a directory");
    std::fs::create_dir_all(dir).map_err(|e| TrainError::write(dir, e))?;
    write_atomic(&path, serde_json::to_string_pretty(rows).expect("rows serialize").as_bytes())
}

/// Every cell's rows in output order; errors name the cells not finished yet.
pub fn collect(a: &Ablation) -> Result<Vec<Row>, TrainError> {
    let all = cells(a);
    let missing: Vec<String> = all.iter().filter(|c| !is_done(a, c)).map(|c| format!("{} seed {}", c.variant, c.seed)).collect();
    if !missing.is_empty() {
        return Err(TrainError::checkpoint(
            a.config.out_dir.join("cells"),
            format!("{} of {} cells are not finished ({}); run the missing shards first", missing.len(), all.len(), missing.join(", ")),
        ));
    }
    let mut rows = Vec::new();
    for c in &all {
        let path = cell_path(a, c);
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::read(&path, e))?;
        let mut r: Vec<Row> = serde_json::from_str(&text).map_err(|e| TrainError::checkpoint(&path, format!("unreadable cell file ({e}); delete it to rerun the cell")))?;
        rows.append(&mut r);
    }
    Ok(rows)
}

/// Write `results.csv`, `results.json` and `results.md` into the ablation's directory.
pub fn write_outputs(a: &Ablation, rows: &[Row]) -> Result<(), TrainError> {
    let out = &a.config.out_dir;
    std::fs::create_dir_all(out).map_err(|e| TrainError::write(out, e))?;
    write_atomic(&out.join("results.csv"), to_csv(rows).as_bytes())?;
    write_atomic(&out.join("results.json"), serde_json::to_string_pretty(rows).expect("rows serialize").as_bytes())?;
    write_atomic(&out.join("results.md"), to_markdown(a, rows).as_bytes())
}

/// The rows as CSV (header `variant,seed,eval_len,mode,loss,perplexity,accuracy,greedy,greedy_prefix,tokens,train_time_s,reason`;
/// empty fields for `n/a`; text fields quoted when they hold `,`, `"` or a newline).
pub fn to_csv(rows: &[Row]) -> String {
    let quote = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    let mut s = String::from("variant,seed,eval_len,mode,loss,perplexity,accuracy,greedy,greedy_prefix,tokens,train_time_s,reason\n");
    for r in rows {
        let tokens = r.tokens.map_or(String::new(), |t| t.to_string());
        let reason = r.reason.as_deref().map_or(String::new(), quote);
        let (accuracy, greedy, prefix) = (opt(r.accuracy), opt(r.greedy), opt(r.greedy_prefix));
        let _ = writeln!(s, "{},{},{},{},{},{},{accuracy},{greedy},{prefix},{},{:.3},{}", quote(&r.variant), r.seed, r.eval_len, r.mode, opt(r.loss), opt(r.perplexity), tokens, r.train_time_s, reason);
    }
    s
}

/// `(evaluation length, Some(estimate over seeds) | None = n/a)`.
pub type LengthStat = (usize, Option<Estimate>);

/// `(label, [(step, mean val loss)])`.
pub type Curve = (String, Vec<(f64, f64)>);

/// The `(seed, value)` pairs of `variant` at `len` in `mode`: the loss, or the accuracy when
/// `accuracy`; `None` when any seed's value is missing (`n/a`) or there are no rows.
pub fn seed_values(rows: &[Row], variant: &str, mode: &str, len: usize, accuracy: bool) -> Option<Vec<(u64, f64)>> {
    seed_values_by(rows, variant, mode, len, loss_or_accuracy(accuracy))
}

/// The column a loss table (`accuracy = false`) or an accuracy table reads from a row.
fn loss_or_accuracy(accuracy: bool) -> fn(&Row) -> Option<f64> {
    if accuracy { |r| r.accuracy } else { |r| r.loss }
}

/// [`seed_values`] of any column, `pick` reading it from a row.
pub fn seed_values_by(rows: &[Row], variant: &str, mode: &str, len: usize, pick: impl Fn(&Row) -> Option<f64>) -> Option<Vec<(u64, f64)>> {
    let sel: Vec<&Row> = rows.iter().filter(|r| r.variant == variant && r.mode == mode && r.eval_len == len).collect();
    let values: Option<Vec<(u64, f64)>> = sel.iter().map(|r| pick(r).map(|v| (r.seed, v))).collect();
    values.filter(|v| !v.is_empty())
}

/// Per variant of `a` and length: the loss (or accuracy, `accuracy = true`) in `mode`, its
/// mean and [`LEVEL`] t interval over seeds (a length is `n/a` when any seed is).
pub fn summary(a: &Ablation, rows: &[Row], mode: &str, accuracy: bool) -> Vec<(String, Vec<LengthStat>)> {
    summary_by(a, rows, mode, loss_or_accuracy(accuracy))
}

/// [`summary`] of any per-row value, `pick` reading it from a row.
pub fn summary_by(a: &Ablation, rows: &[Row], mode: &str, pick: impl Fn(&Row) -> Option<f64> + Copy) -> Vec<(String, Vec<LengthStat>)> {
    let lengths = a.eval_tokens();
    let stat = |label: &str, len: usize| seed_values_by(rows, label, mode, len, pick).and_then(|v| estimate(&v.iter().map(|x| x.1).collect::<Vec<_>>(), LEVEL));
    a.config.variants.iter().map(|v| (v.label.clone(), lengths.iter().map(|&len| (len, stat(&v.label, len))).collect())).collect()
}

/// Per length: the paired difference `x − y` (variant labels) in `mode` over the seeds, its
/// mean and [`LEVEL`] t interval (`n/a` when either is `n/a` there). See [`paired_difference`].
pub fn paired(a: &Ablation, rows: &[Row], mode: &str, accuracy: bool, x: &str, y: &str) -> Vec<LengthStat> {
    let values = |label: &str, len: usize| seed_values(rows, label, mode, len, accuracy);
    a.eval_tokens().into_iter().map(|len| (len, values(x, len).zip(values(y, len)).and_then(|(vx, vy)| paired_difference(&vx, &vy, LEVEL)))).collect()
}

/// The tables of `a`: `(mode, accuracy)` — loss per mode, and accuracy for a task.
fn tables(a: &Ablation) -> Vec<(&'static str, bool)> {
    modes(a).iter().flat_map(|m| [(*m, false)].into_iter().chain((*m == TASK_MODE).then_some((*m, true)))).collect()
}

fn title(mode: &str, accuracy: bool) -> String {
    match (accuracy, mode) {
        (true, _) => "exact-match accuracy (teacher-forced)".to_string(),
        (false, TASK_MODE) => "answer loss (teacher-forced)".to_string(),
        (false, _) => format!("{} loss", mode.replace('_', "-")),
    }
}

/// One Markdown table: a header of lengths, then `(row label, cells)`.
fn md_table(s: &mut String, heading: &str, lengths: &[usize], body: impl IntoIterator<Item = (String, Vec<String>)>) {
    let _ = write!(s, "\n## {heading}\n\n| variant |");
    for len in lengths {
        let _ = write!(s, " {len} |");
    }
    s.push_str("\n| --- |");
    s.push_str(&" ---: |".repeat(lengths.len()));
    s.push('\n');
    for (label, cells) in body {
        let _ = writeln!(s, "| {label} | {} |", cells.join(" | "));
    }
}

/// A cell: `mean ± half-width` (`signed`: with a sign, and `*` when the interval leaves out 0),
/// the mean alone with one seed, `n/a` when missing.
fn cell(e: &Option<Estimate>, signed: bool) -> String {
    match (e, signed) {
        (None, _) => "n/a".into(),
        (Some(e), false) => e.half_width.map_or(format!("{:.4}", e.mean), |h| format!("{:.4} ± {h:.4}", e.mean)),
        (Some(e), true) => {
            let star = if e.excludes_zero() { " *" } else { "" };
            e.half_width.map_or(format!("{:+.4}", e.mean), |h| format!("{:+.4} ± {h:.4}{star}", e.mean))
        }
    }
}

/// How the cells are computed, for the text above the tables.
fn interval_note(seeds: usize) -> String {
    if seeds > 1 {
        format!(
            "mean ± half-width of the {:.0} % confidence interval over the {seeds} seeds (Student t, {} degrees of freedom)",
            LEVEL * 100.0,
            seeds - 1
        )
    } else {
        "one seed, so no confidence interval (list more `seeds` for one)".into()
    }
}

/// The paired-difference tables `x − y` (one per mode; see [`paired`]) as Markdown.
pub fn paired_markdown(a: &Ablation, rows: &[Row], x: &str, y: &str) -> String {
    let mut s = format!(
        "# Paired difference: {x} − {y}\n\nPer seed, {x}'s value minus {y}'s (same seeds, same data order); {}. \
         `*`: the interval leaves out 0.\n",
        interval_note(a.config.seeds.len())
    );
    for (mode, accuracy) in tables(a) {
        md_table(&mut s, &title(mode, accuracy), &a.eval_tokens(), [(format!("{x} − {y}"), paired(a, rows, mode, accuracy, x, y).iter().map(|c| cell(&c.1, true)).collect())]);
    }
    s
}

/// `results.md`: per mode, a table of the loss (mean and interval over seeds, see
/// [`summary`]) and, with ≥ 2 variants, a table of each variant's paired difference from
/// the first one (see [`paired`]).
pub fn to_markdown(a: &Ablation, rows: &[Row]) -> String {
    let lengths = a.eval_tokens();
    let (what, measured) = match a.base.data.task {
        Some(_) => ("operand length", "Answer loss (nats/token) and exact match on fresh examples"),
        None => ("context", "Validation loss (nats/token)"),
    };
    let mut s = format!(
        "# Ablation results\n\n{measured}: {}; seeds {:?}; trained at {what} {} for {} steps. \
         `n/a` = cannot be evaluated there (reasons in results.csv).\n",
        interval_note(a.config.seeds.len()),
        a.config.seeds,
        a.train_len(),
        a.base.train.steps
    );
    let baseline = &a.config.variants[0].label;
    for (mode, accuracy) in tables(a) {
        summary_table(&mut s, a, &title(mode, accuracy), summary(a, rows, mode, accuracy));
        let others = a.config.variants.iter().skip(1).map(|v| {
            (format!("{} − {baseline}", v.label), paired(a, rows, mode, accuracy, &v.label, baseline).iter().map(|c| cell(&c.1, true)).collect())
        });
        if a.config.variants.len() > 1 {
            md_table(&mut s, &format!("{}: paired difference from {baseline} (`*`: the interval leaves out 0)", title(mode, accuracy)), &lengths, others);
        }
    }
    if a.base.data.task.is_some() {
        greedy_tables(&mut s, a, rows);
    }
    if rows.iter().any(|r| r.attention.is_some()) {
        let heading = "mean attention distance (tokens back, over layers and heads; per head and entropy in results.json)";
        summary_table(&mut s, a, heading, attention_summary(a, rows));
    }
    s
}

/// A row's mean attention distance (tokens back), averaged over its layers and heads.
pub fn mean_attention_distance(r: &Row) -> Option<f64> {
    let all: Vec<f64> = r.attention.as_ref()?.iter().flatten().map(|h| h.distance).collect();
    (!all.is_empty()).then(|| all.iter().sum::<f64>() / all.len() as f64)
}

/// Per variant, the mean attention distance ([`mean_attention_distance`]) at each evaluation
/// length, mean and interval over seeds, for `attention.png` and `results.md`.
pub fn attention_summary(a: &Ablation, rows: &[Row]) -> Vec<(String, Vec<LengthStat>)> {
    summary_by(a, rows, modes(a)[0], mean_attention_distance)
}

/// Task ablations: greedy decoding's exact match and correct-prefix fraction (see
/// [`crate::tasks::score`]), mean and interval over seeds, a row per variant.
fn greedy_tables(s: &mut String, a: &Ablation, rows: &[Row]) {
    let columns: [(&str, fn(&Row) -> Option<f64>); 2] =
        [("exact-match accuracy (greedy decoding)", |r| r.greedy), ("answer fraction decoded right before the first mistake (greedy)", |r| r.greedy_prefix)];
    for (heading, pick) in columns {
        summary_table(s, a, heading, summary_by(a, rows, TASK_MODE, pick));
    }
}

/// A table of a [`summary`]: a row per variant, a column per length.
fn summary_table(s: &mut String, a: &Ablation, heading: &str, summary: Vec<(String, Vec<LengthStat>)>) {
    md_table(s, heading, &a.eval_tokens(), summary.into_iter().map(|(label, cols)| (label, cols.iter().map(|c| cell(&c.1, false)).collect())));
}

/// Validation loss over steps per trained variant (mean over seeds at each evaluation step),
/// read from each run's `metrics.jsonl`, for `loss_curves.png`.
pub fn loss_curves(a: &Ablation) -> Result<Vec<Curve>, TrainError> {
    let mut out = Vec::new();
    for v in a.config.variants.iter().filter(|v| v.trains()) {
        let mut sum: Vec<(f64, f64, usize)> = Vec::new();
        for &seed in &a.config.seeds {
            let path = crate::run::RunDir::new(a.run_dir(&v.label, seed)).metrics();
            let (_, evals) = crate::metrics::read_metrics(&path)?;
            for (i, (step, _, val)) in evals.into_iter().enumerate() {
                match sum.get_mut(i) {
                    Some(e) if e.0 == step => { e.1 += val; e.2 += 1; }
                    Some(_) => {}
                    None => sum.push((step, val, 1)),
                }
            }
        }
        out.push((v.label.clone(), sum.into_iter().map(|(s, v, n)| (s, v / n as f64)).collect()));
    }
    Ok(out)
}

/// The ablation's output directory files (for messages).
pub fn output_files(dir: &Path) -> [PathBuf; 6] {
    ["results.csv", "results.json", "results.md", "loss_curves.png", "extrapolation.png", "attention.png"].map(|f| dir.join(f))
}
