//! Tensor names: ember's module paths ↔ nanoGPT's state-dict keys, and the shapes nanoGPT
//! gives each tensor.
//!
//! | ember (Burn path, layout)             | nanoGPT (PyTorch key, layout)                  |
//! | ------------------------------------- | ---------------------------------------------- |
//! | `tok.weight [V, d]`                   | `transformer.wte.weight [V, d]`                |
//! | `pos.weight [T, d]` (learned)         | `transformer.wpe.weight [T, d]`                |
//! | `blocks.i.norm1.{gamma,beta} [d]`     | `transformer.h.i.ln_1.{weight,bias} [d]`       |
//! | `blocks.i.attn.qkv.weight [d, 3d]`    | `transformer.h.i.attn.c_attn.weight [3d, d]`   |
//! | `blocks.i.attn.proj.weight [d, d]`    | `transformer.h.i.attn.c_proj.weight [d, d]`    |
//! | `blocks.i.norm2.{gamma,beta} [d]`     | `transformer.h.i.ln_2.{weight,bias} [d]`       |
//! | `blocks.i.mlp.fc.weight [d, 4d]`      | `transformer.h.i.mlp.c_fc.weight [4d, d]`      |
//! | `blocks.i.mlp.proj.weight [4d, d]`    | `transformer.h.i.mlp.c_proj.weight [d, 4d]`    |
//! | `norm_f.{gamma,beta} [d]`             | `transformer.ln_f.{weight,bias} [d]`           |
//! | tied: `tok.weight`; untied: `head.untied.weight [d, V]` | `lm_head.weight [V, d]`          |
//!
//! Linear biases (`.bias`, `[d_out]`) map like their weights. Burn stores a linear weight
//! as `[in, out]`, PyTorch as `[out, in]`: burn-store's PyTorch adapters transpose them and
//! rename the norms' `gamma`/`beta` to `weight`/`bias`; this file only renames.

use std::collections::BTreeMap;

use burn_store::KeyRemapper;

/// nanoGPT's key for the output head (tied: a copy of `transformer.wte.weight`).
pub const LM_HEAD: &str = "lm_head.weight";

/// The prefix `torch.compile` puts before every key of a compiled model's state dict.
pub const COMPILED_PREFIX: &str = "_orig_mod.";

/// ember path prefix ↔ nanoGPT key prefix; `{i}` is a block index.
const RULES: &[(&str, &str)] = &[
    ("tok.weight", "transformer.wte.weight"),
    ("pos.weight", "transformer.wpe.weight"),
    ("blocks.{i}.norm1.", "transformer.h.{i}.ln_1."),
    ("blocks.{i}.attn.qkv.", "transformer.h.{i}.attn.c_attn."),
    ("blocks.{i}.attn.proj.", "transformer.h.{i}.attn.c_proj."),
    ("blocks.{i}.norm2.", "transformer.h.{i}.ln_2."),
    ("blocks.{i}.mlp.fc.", "transformer.h.{i}.mlp.c_fc."),
    ("blocks.{i}.mlp.proj.", "transformer.h.{i}.mlp.c_proj."),
    ("norm_f.", "transformer.ln_f."),
];

/// `(regex matching the prefix `from`, replacement with `to`)`, `{i}` captured as digits.
fn rule(from_prefix: &str, from: &str, to: &str) -> (String, String) {
    let pattern = format!("^{}", regex_escape(&format!("{from_prefix}{from}")).replace(r"\{i\}", r"(\d+)"));
    (pattern, to.replace("{i}", "${1}"))
}

fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

fn remapper(pairs: impl IntoIterator<Item = (String, String)>) -> KeyRemapper {
    pairs.into_iter().fold(KeyRemapper::new(), |r, (from, to)| r.add_pattern(&from, &to).expect("the name rules are valid regexes"))
}

/// Renames ember paths (under `prefix`, e.g. `"model."` for a wrapping module) to nanoGPT
/// keys; a top-level parameter `lm_head` (the export's head rows) becomes `lm_head.weight`.
pub fn ember_to_nanogpt(prefix: &str) -> KeyRemapper {
    let head = ("^lm_head$".to_string(), LM_HEAD.to_string());
    remapper(RULES.iter().map(|(e, n)| rule(prefix, e, n)).chain(std::iter::once(head)))
}

/// Renames nanoGPT keys (with or without the `_orig_mod.` prefix) to ember paths.
pub fn nanogpt_to_ember() -> KeyRemapper {
    let strip = (format!("^{}", regex_escape(COMPILED_PREFIX)), String::new());
    remapper(std::iter::once(strip).chain(RULES.iter().map(|(e, n)| rule("", n, e))))
}

/// A key without the `_orig_mod.` prefix.
pub fn strip_compiled(key: &str) -> &str {
    key.strip_prefix(COMPILED_PREFIX).unwrap_or(key)
}

/// nanoGPT's architecture hyper-parameters (`model_args` of its checkpoints).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NanoGptArgs {
    /// Blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Width `d`.
    pub n_embd: usize,
    /// Positions `T` (rows of `wpe`).
    pub block_size: usize,
    /// Biases in linears and LayerNorms.
    pub bias: bool,
    /// Vocabulary `V` (rows of `wte`).
    pub vocab_size: usize,
    /// Dropout probability (training only).
    #[serde(default)]
    pub dropout: f64,
}

/// Every state-dict key of a nanoGPT model with `args`, with its shape (PyTorch layout:
/// linear weights `[out, in]`).
pub fn nanogpt_shapes(args: &NanoGptArgs) -> BTreeMap<String, Vec<usize>> {
    let (d, v, t) = (args.n_embd, args.vocab_size, args.block_size);
    let mut shapes = BTreeMap::new();
    shapes.insert("transformer.wte.weight".to_string(), vec![v, d]);
    shapes.insert("transformer.wpe.weight".to_string(), vec![t, d]);
    shapes.insert(LM_HEAD.to_string(), vec![v, d]);
    // A linear `d_in → d_out` or (d_in = 0) a norm of width d_out.
    let mut layer = |prefix: String, d_in: usize, d_out: usize| {
        let weight = if d_in == 0 { vec![d_out] } else { vec![d_out, d_in] };
        shapes.insert(format!("{prefix}.weight"), weight);
        if args.bias {
            shapes.insert(format!("{prefix}.bias"), vec![d_out]);
        }
    };
    for i in 0..args.n_layer {
        let h = format!("transformer.h.{i}");
        layer(format!("{h}.ln_1"), 0, d);
        layer(format!("{h}.attn.c_attn"), d, 3 * d);
        layer(format!("{h}.attn.c_proj"), d, d);
        layer(format!("{h}.ln_2"), 0, d);
        layer(format!("{h}.mlp.c_fc"), d, 4 * d);
        layer(format!("{h}.mlp.c_proj"), 4 * d, d);
    }
    layer("transformer.ln_f".to_string(), 0, d);
    shapes
}

/// Whether `key` is a buffer some nanoGPT versions keep in the state dict that holds no
/// weights: the causal mask `transformer.h.i.attn.bias` (`[1, 1, T, T]`, saved when
/// PyTorch lacked flash attention) or GPT-2's `attn.masked_bias`.
pub fn is_mask_buffer(key: &str, shape: &[usize]) -> bool {
    let attn_buffer = key.starts_with("transformer.h.") && (key.ends_with(".attn.bias") || key.ends_with(".attn.masked_bias"));
    attn_buffer && shape.len() != 1
}
