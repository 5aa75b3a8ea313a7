//! NoPE: no position information at all. A causal decoder can still infer positions from
//! the mask (Kazemnejad et al. 2023); every hook returns its input unchanged / `None`.

use burn::module::Module;

/// The `none` scheme (no parameters, nothing computed).
#[derive(Module, Debug, Default)]
pub struct NoPosition {
    #[module(skip)]
    _nothing: (),
}

impl NoPosition {
    /// The (stateless) `none` scheme.
    pub fn new() -> Self {
        Self::default()
    }
}
