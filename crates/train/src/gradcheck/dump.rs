//! What `ember gradcheck --dump` writes: the tensors behind checks 1–3, as safetensors.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{DType, TensorData};

use crate::TrainError;

/// The tensors behind checks 1–3 (what `--dump` writes).
pub struct Dump {
    /// name → (data, shape)
    pub tensors: Vec<(String, TensorData)>,
}

/// Write the dump as safetensors (f32 or f64 as computed, ids as i64).
pub fn write_safetensors(dump: &Dump, path: &Path) -> Result<(), TrainError> {
    use safetensors::tensor::{Dtype, TensorView};
    let mut views = HashMap::new();
    for (name, data) in &dump.tensors {
        let dtype = match data.dtype() {
            DType::F64 => Dtype::F64,
            DType::F32 => Dtype::F32,
            DType::I64 => Dtype::I64,
            DType::I32 => Dtype::I32,
            other => return Err(TrainError::Encode { path: path.into(), reason: format!("cannot dump {name} of dtype {other:?}") }),
        };
        let view = TensorView::new(dtype, data.shape().to_vec(), data.as_bytes())
            .map_err(|e| TrainError::Encode { path: path.into(), reason: format!("cannot dump {name}: {e}") })?;
        views.insert(name.clone(), view);
    }
    let bytes = safetensors::serialize(views, None).map_err(|e| TrainError::Encode { path: path.into(), reason: e.to_string() })?;
    crate::fs::write_atomic(path, &bytes)
}
