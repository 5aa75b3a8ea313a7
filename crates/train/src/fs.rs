//! [`write_atomic`]: every file ember writes that a reader may open at any moment
//! (checkpoints, configs, tokenizers, metrics, results) goes through here.

use std::io::Write;
use std::path::Path;

use crate::TrainError;

/// Write `bytes` to `path` atomically: a temp file beside it, fsync, rename.
///
/// The temp file's name is unique to this process and call (`NAME.PID-N.tmp`), so processes
/// writing the same file at once (ablation jobs sharing a directory) never rename each
/// other's temp file away: the last rename wins and every reader sees a whole file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.{}-{n}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| TrainError::write(&tmp, e))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(|e| TrainError::write(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::write(path, e))
}
