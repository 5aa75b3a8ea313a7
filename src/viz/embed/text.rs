//! The terminal tables of `ember embed stats`, `neighbors` (static, contextual, `--compare`)
//! and `quantize`.

use ember_embed::neighbors::Metric;
use ember_embed::report::{NeighborsReport, StatsReport};
use ember_train::embedding::probe::{ContextNeighborsReport, SpreadReport};
use ember_train::embedding::quantized::QuantizeReport;

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into())
}

/// A token as printed in a table: whitespace made visible (`⏎`, `␠`, `⇥`).
pub fn visible(token: &str) -> String {
    token.replace('\n', "⏎").replace(' ', "␠").replace('\t', "⇥")
}

/// The text `ember embed stats` prints; `counts_source` says where the token counts behind
/// `norm_frequency` came from.
pub fn stats_text(r: &StatsReport, counts_source: Option<&str>) -> String {
    let mut s = format!("rows               {}\ndim                {}\n", r.rows, r.dim);
    s += &format!("norm mean ± std    {:.4} ± {:.4}\n", r.norm.mean, r.norm.std);
    s += &format!("norm min … max     {:.4} … {:.4}\n", r.norm.min, r.norm.max);
    s += &format!("mean vector norm   {:.4}\n", r.mean_vector_norm);
    let c = &r.centered_norm;
    s += &format!("centered norm      {:.4} ± {:.4}  (‖x − μ‖; min … max {:.4} … {:.4})\n", c.mean, c.std, c.min, c.max);
    s += &match r.anisotropy {
        Some(a) => format!("anisotropy         {a:.4}  (mean cosine between distinct rows)\n"),
        None => "anisotropy         n/a (fewer than 2 rows)\n".to_string(),
    };
    if let Some(f) = &r.norm_frequency {
        s += &format!("norm vs log freq   spearman {}  pearson {}  over {} tokens", opt(f.spearman), opt(f.pearson), f.tokens_counted);
        if f.tokens_excluded > 0 {
            s += &format!(" ({} with count 0 excluded)", f.tokens_excluded);
        }
        s += "\n";
        if let Some(src) = counts_source {
            s += &format!("                   ({src})\n");
        }
    }
    s += &format!("explained variance (top {} components):\n", r.explained_variance.len());
    let mut cumulative = 0.0;
    for (i, v) in r.explained_variance.iter().enumerate() {
        cumulative += v;
        s += &format!("  PC{:<3} {:>7.2}%   cumulative {:>7.2}%\n", i + 1, 100.0 * v, 100.0 * cumulative);
    }
    s
}

fn score_name(m: Metric) -> &'static str {
    match m {
        Metric::Euclidean => "distance",
        Metric::Cosine => "cosine",
        Metric::Dot => "dot",
    }
}

/// The rank/token/id/score rows of a neighbours list.
fn neighbor_rows(r: &NeighborsReport) -> String {
    let score = score_name(r.metric);
    let width = r.neighbors.iter().map(|n| n.token.chars().count()).max().unwrap_or(5).max(5);
    let mut s = format!("{:>4}  {:<width$}  {:>8}  {:>10}\n", "rank", "token", "id", score);
    for (i, n) in r.neighbors.iter().enumerate() {
        s += &format!("{:>4}  {:<width$}  {:>8}  {:>10.4}\n", i + 1, n.token, n.id, n.score);
    }
    s
}

/// The text `ember embed neighbors` prints.
pub fn neighbors_text(r: &NeighborsReport) -> String {
    format!("nearest to `{}` by {}:\n{}", r.query, r.metric, neighbor_rows(r))
}

/// The text `ember embed neighbors RUN --context … --at …` prints.
pub fn context_neighbors_text(r: &ContextNeighborsReport) -> String {
    let t = &r.table;
    let mut s = format!("state of `{}` at position {} after layer {} of \"{}\"\n", visible(&t.query), r.position, r.layer, r.context.replace('\n', "⏎"));
    let shown = NeighborsReport { neighbors: t.neighbors.iter().map(|n| ember_embed::report::NeighborEntry { token: visible(&n.token), ..n.clone() }).collect(), ..t.clone() };
    s += &format!("nearest rows of the token table by {}:\n{}", t.metric, neighbor_rows(&shown));
    s += &format!("nearest states among {} sampled corpus positions (training split) by {}:\n", r.sample, t.metric);
    s += &format!("{:>4}  {:>10}  {:>9}  context\n", "rank", score_name(t.metric), "position");
    for (i, n) in r.corpus_neighbors.iter().enumerate() {
        s += &format!("{:>4}  {:>10.4}  {:>9}  {}\n", i + 1, n.score, n.position, n.context);
    }
    s
}

/// The text `ember embed neighbors RUN --compare` prints.
pub fn spread_text(r: &SpreadReport) -> String {
    let mut s = format!(
        "`{}` in {} corpus contexts (of {} occurrences in the training split), each read after a full window:\n",
        visible(&r.token),
        r.contexts.len(),
        r.occurrences
    );
    for c in &r.contexts {
        s += &format!("  {c}\n");
    }
    s += "the static row s·E[token] is the same vector in every context (pairwise cosine 1.0000)\n";
    s += &format!("{:>5}  {:>22}  {:>20}\n", "layer", "contextual: mean cos", "cos to static row");
    for l in &r.layers {
        s += &format!("{:>5}  {:>22}  {:>20.4}\n", l.layer, opt(l.mean_pairwise_cosine), l.mean_cosine_to_static);
    }
    s
}

/// The text `ember embed quantize` prints; `what` names what was quantized.
pub fn quantize_text(r: &QuantizeReport, what: &str) -> String {
    let mut s = format!("{}-bit {} quantization of the {what}\n", r.bits, r.scheme);
    s += &format!("bytes              {} → {}  ({:.2}×; codes + f32 scales)\n", r.bytes_before, r.bytes_after, r.bytes_before as f64 / r.bytes_after as f64);
    s += &format!("max |x − x̂|        {:.6}\n", r.max_abs_err);
    s += &format!("recall@10 (cosine) {:.4}\n", r.recall_at_10);
    match (r.val_loss_fp32, r.val_loss_quantized) {
        (Some(fp), Some(q)) => {
            s += &format!("val loss fp32      {fp:.4}\n");
            s += &format!("val loss quantized {q:.4}  ({:+.4})\n", q - fp);
        }
        _ => s += "val loss           n/a (a table file has no model; quantize a run directory for it)\n",
    }
    s
}
