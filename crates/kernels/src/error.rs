//! [`KernelError`]: why inputs do not fit an op, and the checks that produce it.

use burn::tensor::Tensor;

/// Inputs that do not fit a fused op. The message names the op and the inputs' shapes,
/// dtypes or devices.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// Shapes that do not fit together.
    #[error("{op}: {detail}")]
    Shape {
        /// The public function.
        op: &'static str,
        /// What did not fit, with the shapes.
        detail: String,
    },
    /// Inputs of different dtypes or on different devices.
    #[error("{op}: {detail}; convert them first (`Tensor::cast`, `Tensor::to_device`)")]
    Mixed {
        /// The public function.
        op: &'static str,
        /// Which inputs differ, and how.
        detail: String,
    },
}

impl KernelError {
    pub(crate) fn shape(op: &'static str, detail: String) -> Self {
        Self::Shape { op, detail }
    }
}

/// Every dimension of `name`'s `dims` is at least 1.
pub(crate) fn nonempty(op: &'static str, name: &str, dims: &[usize]) -> Result<(), KernelError> {
    if dims.contains(&0) {
        return Err(KernelError::shape(op, format!("{name} {dims:?} is empty: every dimension must be at least 1")));
    }
    Ok(())
}

/// The named inputs all have the first one's shape.
pub(crate) fn same_shape<const N: usize>(op: &'static str, inputs: [(&str, &[usize]); N]) -> Result<(), KernelError> {
    let (first, dims) = inputs[0];
    match inputs.iter().find(|(_, d)| *d != dims) {
        Some((name, d)) => Err(KernelError::shape(op, format!("{name} {d:?} is not shaped like {first} {dims:?}"))),
        None => Ok(()),
    }
}

/// The inputs (and `extra`) share the first input's dtype and device.
pub(crate) fn same_kind<const D: usize, const E: usize>(op: &'static str, inputs: &[(&str, &Tensor<D>)], extra: Option<(&str, &Tensor<E>)>) -> Result<(), KernelError> {
    let (first, t0) = inputs[0];
    let (dtype, device) = (t0.dtype(), t0.device());
    let others = inputs[1..].iter().map(|(n, t)| (*n, t.dtype(), t.device())).chain(extra.map(|(n, t)| (n, t.dtype(), t.device())));
    for (name, dt, dev) in others {
        if dt != dtype {
            return Err(KernelError::Mixed { op, detail: format!("{name} is {dt:?} but {first} is {dtype:?}") });
        }
        if dev != device {
            return Err(KernelError::Mixed { op, detail: format!("{name} is on {dev:?} but {first} is on {device:?}") });
        }
    }
    Ok(())
}
