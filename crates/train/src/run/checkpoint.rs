//! The checkpoint file of a run directory, and atomic writes.
//!
//! A checkpoint is ONE file so it is replaced atomically (written to a temp file `checkpoint.bin.PID-N.tmp` beside it, synced, renamed): a crash or a NaN
//! never leaves a half-written or mixed checkpoint. Layout (little endian):
//! `b"EMBERCK1" | u64 len | state JSON | u64 len | model burnpack | u64 len | optimizer burnpack`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fs::write_atomic;
use crate::TrainError;

const MAGIC: &[u8; 8] = b"EMBERCK1";

/// Training progress saved with the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Seconds of training so far.
    pub elapsed_s: f64,
    /// Tokens consumed so far.
    pub tokens: u64,
}

/// The parts of a checkpoint file.
pub struct Checkpoint {
    /// Progress.
    pub state: TrainState,
    /// Model record (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimizer record (burnpack bytes).
    pub optim: Vec<u8>,
}

impl Checkpoint {
    /// Serialize and write atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let state = serde_json::to_vec(&self.state).expect("state serializes");
        let mut out = Vec::with_capacity(8 + 24 + state.len() + self.model.len() + self.optim.len());
        out.extend_from_slice(MAGIC);
        for part in [&state, &self.model, &self.optim] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        write_atomic(path, &out)
    }

    /// Read a checkpoint; a truncated or foreign file is a clear error.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::read(path, e))?;
        let corrupt = |why: &str| TrainError::checkpoint(path, format!("not a valid ember checkpoint ({why}); delete it or point to another run"));
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(corrupt("bad header"));
        }
        let mut rest = &bytes[8..];
        let mut parts = Vec::with_capacity(3);
        for _ in 0..3 {
            if rest.len() < 8 {
                return Err(corrupt("truncated"));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            rest = &rest[8..];
            if rest.len() < len {
                return Err(corrupt("truncated"));
            }
            parts.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
        let optim = parts.pop().unwrap();
        let model = parts.pop().unwrap();
        let state = serde_json::from_slice(&parts[0]).map_err(|_| corrupt("unreadable state"))?;
        Ok(Self { state, model, optim })
    }
}

/// Model and optimizer records as burnpack bytes.
pub fn to_bytes(model: &crate::model::TinyLm, optim: &burn::optim::ModuleOptimizer) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
    use burn::module::Module;
    let m = model.clone().into_record().into_bytes().map_err(|e| TrainError::checkpoint("", format!("cannot serialize the model: {e:?}")))?;
    let o = optim.into_bytes().map_err(|e| TrainError::checkpoint("", format!("cannot serialize the optimizer: {e:?}")))?;
    Ok((m.to_vec(), o.to_vec()))
}

/// Load model weights from burnpack bytes into `model` (same architecture).
pub fn load_model(model: crate::model::TinyLm, bytes: Vec<u8>, path: &Path) -> Result<crate::model::TinyLm, TrainError> {
    use burn::module::Module;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::checkpoint(path, format!("unreadable model record: {e:?}")))?;
    model
        .try_load_record(record)
        .map_err(|e| TrainError::checkpoint(path, format!("the weights do not fit this config's model ({e:?}); was config.toml edited?")))
}

/// Load optimizer state from burnpack bytes.
pub fn load_optim(optim: burn::optim::ModuleOptimizer, bytes: Vec<u8>, path: &Path) -> Result<burn::optim::ModuleOptimizer, TrainError> {
    optim
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::checkpoint(path, format!("unreadable optimizer state: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = std::env::temp_dir().join(format!("ember-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.bin");
        let ck = Checkpoint { state: TrainState { step: 7, elapsed_s: 1.5, tokens: 99 }, model: vec![1, 2, 3], optim: vec![9; 10] };
        ck.save(&path).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
        assert!(leftovers.is_empty(), "temp file renamed away: {leftovers:?}");
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!((back.state, back.model, back.optim), (ck.state.clone(), ck.model.clone(), ck.optim.clone()));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = Checkpoint::load(&path).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, b"garbage!garbage").unwrap();
        assert!(Checkpoint::load(&path).err().unwrap().to_string().contains("bad header"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
