//! A small per-device cache of computed position tables (sin/cos rows, ALiBi biases), so a
//! table is built once and sliced afterwards instead of being rebuilt on every call.
//!
//! Tables are computed on the host in f64, rounded once to f32, and uploaded (one upload per
//! table per rebuild). The cache lives in a skipped module field behind an `Arc<Mutex<…>>`:
//! clones of a module share it, it is never saved, and it is keyed by the device *and* by
//! whether the device tracks gradients (tensors of a plain device cannot enter an autodiff
//! graph and vice versa).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};

/// Entries kept at once (devices × keys); the oldest is dropped first.
const MAX_ENTRIES: usize = 8;
/// Below this many rows a cached window always keeps its start (growth by doubling).
const MIN_WINDOW: usize = 1024;

struct RowEntry {
    device: Device,
    autodiff: bool,
    key: u64,
    rows: Range<usize>,
    tables: Vec<Tensor<2>>,
}

/// Row tables `[rows, width]` for a window of positions, grown on demand.
#[derive(Clone, Default)]
pub(crate) struct RowCache {
    inner: Arc<Mutex<Vec<RowEntry>>>,
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowCache")
    }
}

/// Upload a host row-major `[rows, width]` f64 table as f32.
pub(crate) fn upload(values: Vec<f64>, rows: usize, width: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, [rows, width]), device)
}

impl RowCache {
    /// Rows `want` of the tables identified by `key` on `device`. `build(range)` computes the
    /// tables (each `[range.len(), width]`) for a range of positions; it is called only on a miss.
    ///
    /// Growth policy: a request past the cached window rebuilds it from the same start with at
    /// least twice the rows (amortized O(1) rebuilds while decoding one token at a time), unless
    /// the request is far from the cached start, in which case the window restarts at the request.
    pub(crate) fn rows(
        &self,
        device: &Device,
        key: u64,
        want: Range<usize>,
        build: impl FnOnce(Range<usize>) -> Vec<Tensor<2>>,
    ) -> Vec<Tensor<2>> {
        let autodiff = device.is_autodiff();
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let found = entries.iter().position(|e| e.key == key && e.autodiff == autodiff && &e.device == device);
        if let Some(i) = found {
            let e = &entries[i];
            if e.rows.start <= want.start && want.end <= e.rows.end {
                let local = want.start - e.rows.start..want.end - e.rows.start;
                return e.tables.iter().map(|t| t.clone().slice([local.clone()])).collect();
            }
        }
        let len = want.len();
        let rows = match found.map(|i| entries[i].rows.clone()) {
            Some(old) if want.start >= old.start && want.end - old.start <= 4 * len.max(MIN_WINDOW) => {
                old.start..want.end.max(old.start + 2 * old.len())
            }
            _ => want.clone(),
        };
        if let Some(i) = found {
            entries.remove(i);
        }
        let tables = build(rows.clone());
        let local = want.start - rows.start..want.end - rows.start;
        let out = tables.iter().map(|t| t.clone().slice([local.clone()])).collect();
        if entries.len() >= MAX_ENTRIES {
            entries.remove(0);
        }
        entries.push(RowEntry { device: device.clone(), autodiff, key, rows, tables });
        out
    }

    /// Number of entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|e| e.len()).unwrap_or(0)
    }
}

struct BiasEntry {
    device: Device,
    autodiff: bool,
    key: (usize, usize),
    bias: Tensor<4>,
}

/// Whole-tensor cache for the ALiBi bias, keyed by `(Tq, Tk)` and device.
#[derive(Clone, Default)]
pub(crate) struct BiasCache {
    inner: Arc<Mutex<Vec<BiasEntry>>>,
}

impl std::fmt::Debug for BiasCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BiasCache")
    }
}

impl BiasCache {
    /// The cached bias for `key` on `device`, or `build()` stored and returned.
    pub(crate) fn get(&self, device: &Device, key: (usize, usize), build: impl FnOnce() -> Tensor<4>) -> Tensor<4> {
        let autodiff = device.is_autodiff();
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.iter().find(|e| e.key == key && e.autodiff == autodiff && &e.device == device) {
            return e.bias.clone();
        }
        let bias = build();
        // Biases can be large ([1, H, T, T]); keep only a few.
        if entries.len() >= 4 {
            entries.remove(0);
        }
        entries.push(BiasEntry { device: device.clone(), autodiff, key, bias: bias.clone() });
        bias
    }

    /// Number of biases built and held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|e| e.len()).unwrap_or(0)
    }
}
