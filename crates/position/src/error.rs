//! [`PositionError`]: every way a position configuration or request can be wrong. Each
//! message names the field or number at fault and says how to fix it.

/// Errors from configuring or using a position scheme.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PositionError {
    /// `n_heads` is 0.
    #[error("n_heads is 0: attention needs at least one head; set n_heads >= 1")]
    ZeroHeads,
    /// `d_model` is 0.
    #[error("d_model is 0: the embedding width must be at least 2; set d_model >= 2")]
    ZeroWidth,
    /// `d_model` is not a multiple of `n_heads` (RoPE needs `head_dim = d_model / n_heads`).
    #[error("d_model = {d_model} is not divisible by n_heads = {n_heads}; pick n_heads dividing d_model so head_dim is a whole number")]
    HeadsDontDivide {
        /// Embedding width.
        d_model: usize,
        /// Number of heads.
        n_heads: usize,
    },
    /// Sinusoidal positions pair features, so the width must be even.
    #[error("sinusoidal positions need an even d_model (sin/cos pairs), got d_model = {d_model}; use an even width")]
    OddWidth {
        /// Embedding width.
        d_model: usize,
    },
    /// The rotated part of a head, `⌊partial_rotary_factor · head_dim⌋`, must be even and > 0.
    #[error("RoPE rotates feature pairs, but the rotated dimension ⌊partial_rotary_factor · head_dim⌋ = ⌊{partial_rotary_factor} · {head_dim}⌋ = {rot_dim} is {}; change partial_rotary_factor or head_dim (= d_model / n_heads) so it is even and at least 2", if *rot_dim == 0 { "zero" } else { "odd" })]
    BadRotaryDim {
        /// `d_model / n_heads`.
        head_dim: usize,
        /// The configured fraction.
        partial_rotary_factor: f64,
        /// The resulting rotated dimension.
        rot_dim: usize,
    },
    /// A number outside its valid range (factor ≤ 0, base ≤ 1, …).
    #[error("{field} = {value} is invalid: {expected}")]
    InvalidValue {
        /// Dotted config path, e.g. `rope.scaling.factor`.
        field: &'static str,
        /// The value given.
        value: f64,
        /// What is expected / how to fix it.
        expected: &'static str,
    },
    /// A learned table was asked for positions past its end.
    #[error("learned positions cover 0..{max_len}, but positions {offset}..{end} were requested (offset {offset} + T {len} = {end} > max_len = {max_len}); raise position.max_len to at least {end}, or use a shorter sequence / sliding window")]
    PastMaxLen {
        /// First requested position.
        offset: usize,
        /// Sequence length T.
        len: usize,
        /// `offset + len`.
        end: usize,
        /// Table size.
        max_len: usize,
    },
    /// The input's last axis does not match the width the encoding was built for.
    #[error("input width {got} does not match the position encoding's d_model = {expected}; build the encoding with the model's d_model")]
    WidthMismatch {
        /// Width the encoding was built for.
        expected: usize,
        /// Width of the input.
        got: usize,
    },
    /// A probe vector was given to a scheme that does not rotate vectors.
    #[error("only rope rotates a vector (the scheme is {scheme}); drop the vector or use rope")]
    VectorWithoutRope {
        /// The scheme's name.
        scheme: &'static str,
    },
    /// A probe vector whose length is not the width.
    #[error("the vector has {got} values but the width (head_dim) is {dim}; give exactly {dim} numbers")]
    VectorLength {
        /// Values given.
        got: usize,
        /// The width.
        dim: usize,
    },
}
