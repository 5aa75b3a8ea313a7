//! Strided matrices inside host buffers, checked when they are made.
//!
//! - [`Mat`]: a read-only `rows × cols` matrix with element strides, borrowed from a slice
//!   (`&'a [T]`): Send/Sync exactly when `&'a [T]` is.
//! - [`View`]: a 4-D `[d0, d1, d2, d3]` strided view of a tensor's storage whose
//!   [`View::matrix`] is the `[i, j, ·, ·]` matrix.
//! - [`MatMut`]: a matrix to write, borrowed uniquely from uninitialised slots: from a slice
//!   (safe, [`MatMut::of`]) or from an [`OutPtr`] shared by tasks that write disjoint,
//!   interleaved parts of one buffer (unsafe, [`OutPtr::mat`]).
//!
//! Invariant (what makes [`super::mm`] safe): every element a `Mat`, `View` or `MatMut`
//! addresses lies inside the buffer it borrows. The constructors check it (a panic
//! otherwise), so no input shape can make a kernel read or write out of bounds.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use burn::backend::flex::FlexTensor;

use super::HostFloat;

/// Whether every element of the strided region `dims`/`strides` at `offset` lies in
/// `0..len` (an empty region always does).
fn inside(len: usize, offset: isize, dims: &[usize], strides: &[isize]) -> bool {
    if dims.contains(&0) {
        return offset >= 0 && offset as usize <= len;
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128);
    for (&d, &s) in dims.iter().zip(strides) {
        let reach = (d as i128 - 1) * s as i128;
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    lo >= 0 && hi < len as i128
}

/// A read-only strided matrix in a borrowed slice (module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a, T> {
    data: &'a [T],
    offset: isize,
    rows: usize,
    cols: usize,
    strides: [isize; 2],
}

impl<'a, T> Mat<'a, T> {
    /// The `rows × cols` matrix at element `offset` of `data` with element strides
    /// `(row, column)`.
    ///
    /// # Panics
    /// If any of its elements lies outside `data`.
    pub(crate) fn new(data: &'a [T], offset: isize, [rows, cols]: [usize; 2], strides: [isize; 2]) -> Self {
        assert!(inside(data.len(), offset, &[rows, cols], &strides), "host kernel: a {rows}×{cols} matrix at {offset} with strides {strides:?} leaves its {}-element buffer", data.len());
        Self { data, offset, rows, cols, strides }
    }

    /// A row-major `rows × cols` matrix filling the front of `data`.
    pub(crate) fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, 0, [rows, cols], [cols as isize, 1])
    }

    /// The transpose (a view: strides swapped).
    pub(crate) fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, strides: [self.strides[1], self.strides[0]], ..self }
    }

    /// `[rows, cols]`.
    pub(crate) fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Element `[i, j]` (indices checked).
    #[inline(always)]
    pub(crate) fn at(&self, i: usize, j: usize) -> T
    where
        T: Copy,
    {
        assert!(i < self.rows && j < self.cols, "host kernel: [{i}, {j}] of a {}×{} matrix", self.rows, self.cols);
        self.data[(self.offset + i as isize * self.strides[0] + j as isize * self.strides[1]) as usize]
    }

    /// `(pointer to [0, 0], row stride, column stride)` for `gemm`; every element the
    /// strides reach from the pointer is inside the borrowed slice (checked in `new`).
    pub(crate) fn raw(&self) -> (*const T, isize, isize) {
        (self.data.as_ptr().wrapping_offset(self.offset), self.strides[0], self.strides[1])
    }
}

/// A strided 4-D view `[d0, d1, d2, d3]` of a tensor's storage (element strides).
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a, T> {
    data: &'a [T],
    offset: isize,
    dims: [usize; 4],
    strides: [isize; 4],
}

impl<'a, T: HostFloat> View<'a, T> {
    /// `dims`/`strides` at `offset` of `data`.
    ///
    /// # Panics
    /// If any element lies outside `data`.
    fn new(data: &'a [T], offset: isize, dims: [usize; 4], strides: [isize; 4]) -> Self {
        assert!(inside(data.len(), offset, &dims, &strides), "host kernel: view {dims:?} with strides {strides:?} at {offset} leaves its {}-element buffer", data.len());
        Self { data, offset, dims, strides }
    }

    /// The view of `tensor` as 4-D `[B, H, T, dh]`: a 4-D tensor as it is, or `[B, T, H·dh]`
    /// (heads merged, `heads` = `H`) with its axes read in that order. Size-1 dimensions of a
    /// 4-D tensor broadcast (stride 0).
    ///
    /// # Panics
    /// If the tensor is not 4-D (without `heads`) or 3-D with a last dimension divisible by
    /// `heads`, or its dtype is not `T`.
    pub(crate) fn of(tensor: &'a FlexTensor, heads: Option<usize>) -> Self {
        let layout = tensor.layout();
        let dims = layout.shape().clone();
        let s = layout.strides();
        let (dims, strides) = match heads {
            None => {
                assert!(dims.num_dims() == 4, "host kernel: a 4-D tensor expected, got {dims:?}");
                let d = [dims[0], dims[1], dims[2], dims[3]];
                (d, [0, 1, 2, 3].map(|i| if d[i] == 1 { 0 } else { s[i] }))
            }
            Some(h) => {
                assert!(dims.num_dims() == 3 && h > 0 && dims[2] % h == 0, "host kernel: [B, T, H·dh] with {h} heads expected, got {dims:?}");
                let dh = dims[2] / h;
                ([dims[0], h, dims[1], dh], [s[0], s[2] * dh as isize, s[1], s[2]])
            }
        };
        Self::new(tensor.storage::<T>(), layout.start_offset() as isize, dims, strides)
    }

    /// Column block `part` (0, 1, 2 for q, k, v) of a fused projection `qkv [B, T, 3·H·dh]`,
    /// viewed as `[B, H, T, dh]`.
    ///
    /// # Panics
    /// If `qkv` is not 3-D with a last dimension divisible by `3·heads`, or `part > 2`.
    pub(crate) fn part(qkv: &'a FlexTensor, heads: usize, part: usize) -> Self {
        let layout = qkv.layout();
        let dims = layout.shape();
        assert!(dims.num_dims() == 3 && heads > 0 && dims[2] % (3 * heads) == 0 && part < 3, "host kernel: qkv [B, T, 3·H·dh] with {heads} heads expected, got {dims:?}");
        let s = layout.strides();
        let d = dims[2] / 3;
        let dh = d / heads;
        let offset = layout.start_offset() as isize + (part * d) as isize * s[2];
        Self::new(qkv.storage::<T>(), offset, [dims[0], heads, dims[1], dh], [s[0], s[2] * dh as isize, s[1], s[2]])
    }

    /// `[d0, d1, d2, d3]`.
    pub(crate) fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// The `[d2, d3]` matrix at `[i, j, ·, ·]`.
    ///
    /// # Panics
    /// If `i ≥ d0` or `j ≥ d1`.
    pub(crate) fn matrix(&self, i: usize, j: usize) -> Mat<'a, T> {
        assert!(i < self.dims[0] && j < self.dims[1], "host kernel: matrix [{i}, {j}] of a view {:?}", self.dims);
        let offset = self.offset + i as isize * self.strides[0] + j as isize * self.strides[1];
        Mat::new(self.data, offset, [self.dims[2], self.dims[3]], [self.strides[2], self.strides[3]])
    }
}

/// A strided matrix to write, borrowed uniquely from uninitialised (or initialised) slots.
/// Invariant: its elements lie inside the borrowed buffer, and nothing else reads or
/// writes them while it lives.
#[derive(Debug)]
pub(crate) struct MatMut<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    strides: [isize; 2],
    _borrow: PhantomData<&'a mut [MaybeUninit<T>]>,
}

impl<'a, T> MatMut<'a, T> {
    /// The row-major `rows × cols` matrix filling `slots` (a unique borrow: safe).
    ///
    /// # Panics
    /// If `slots` does not have `rows·cols` elements.
    pub(crate) fn of(slots: &'a mut [MaybeUninit<T>], rows: usize, cols: usize) -> Self {
        assert!(slots.len() == rows * cols, "host kernel: {} slots for a {rows}×{cols} matrix", slots.len());
        Self { ptr: slots.as_mut_ptr().cast(), rows, cols, strides: [cols as isize, 1], _borrow: PhantomData }
    }

    /// The same over initialised values, which the writer overwrites (only with valid `T`s).
    pub(crate) fn of_init(values: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert!(values.len() == rows * cols, "host kernel: {} values for a {rows}×{cols} matrix", values.len());
        Self { ptr: values.as_mut_ptr(), rows, cols, strides: [cols as isize, 1], _borrow: PhantomData }
    }

    /// `[rows, cols]`.
    pub(crate) fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Row `i` as slots to write.
    ///
    /// # Panics
    /// If `i ≥ rows` or the columns are not contiguous.
    pub(crate) fn row(&mut self, i: usize) -> &mut [MaybeUninit<T>] {
        assert!(i < self.rows && self.strides[1] == 1, "host kernel: row {i} of a {}×{} matrix with strides {:?}", self.rows, self.cols, self.strides);
        // SAFETY: the row's `cols` contiguous elements lie inside the borrowed buffer (the
        // `MatMut` invariant) and nothing else accesses them while `self` is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.wrapping_offset(i as isize * self.strides[0]).cast(), self.cols) }
    }

    /// `(pointer to [0, 0], row stride, column stride)` for `gemm`.
    pub(crate) fn raw(&mut self) -> (*mut T, isize, isize) {
        (self.ptr, self.strides[0], self.strides[1])
    }
}

/// Uninitialised output slots shared by parallel tasks that each write a disjoint part
/// (e.g. one head's columns of every row of `ctx [B, T, H·dh]`). Holds the unique borrow of
/// the slots for `'a`; it gives no access by itself, only through the unsafe [`OutPtr::mat`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutPtr<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [MaybeUninit<T>]>,
}

// SAFETY: an `OutPtr` stands for `&'a mut [MaybeUninit<T>]` split among tasks; it reads
// nothing and writes only through `MatMut`s made by `OutPtr::mat`, whose contract keeps the
// tasks' parts disjoint. Moving or sharing it between threads is sound when `T: Send`, as
// for the `&mut [T]` it stands for.
unsafe impl<T: Send> Send for OutPtr<'_, T> {}
// SAFETY: as above; `&OutPtr` only allows `mat`, which is unsafe with that contract.
unsafe impl<T: Send> Sync for OutPtr<'_, T> {}

impl<'a, T> OutPtr<'a, T> {
    /// Borrow `slots` for parallel writes.
    pub(crate) fn new(slots: &'a mut [MaybeUninit<T>]) -> Self {
        Self { ptr: slots.as_mut_ptr().cast(), len: slots.len(), _borrow: PhantomData }
    }

    /// The `rows × cols` matrix at element `offset` with strides `(row, column)`.
    ///
    /// # Panics
    /// If any of its elements lies outside the slots.
    ///
    /// # Safety
    /// While the returned matrix lives, no other `MatMut` from this `OutPtr` may address any
    /// of its elements (the tasks' parts are disjoint).
    pub(crate) unsafe fn mat(&self, offset: usize, [rows, cols]: [usize; 2], strides: [isize; 2]) -> MatMut<'a, T> {
        assert!(inside(self.len, offset as isize, &[rows, cols], &strides), "host kernel: a {rows}×{cols} output at {offset} with strides {strides:?} leaves its {}-element buffer", self.len);
        MatMut { ptr: self.ptr.wrapping_add(offset), rows, cols, strides, _borrow: PhantomData }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_checked_against_their_buffer() {
        assert!(inside(12, 0, &[3, 4], &[4, 1]));
        assert!(!inside(11, 0, &[3, 4], &[4, 1]));
        assert!(inside(12, 11, &[3, 4], &[-4, -1])); // a flipped view ends at 0
        assert!(!inside(12, 10, &[3, 4], &[-4, -1]));
        assert!(inside(0, 0, &[0, 4], &[4, 1])); // empty
        assert!(inside(5, 4, &[1, 9], &[0, 0])); // broadcast
        assert!(!inside(5, -1, &[1, 1], &[1, 1]));
    }

    #[test]
    #[should_panic(expected = "leaves its")]
    fn a_matrix_past_the_end_panics_instead_of_reading() {
        let data = [0.0f32; 6];
        let _ = Mat::new(&data, 0, [2, 4], [4, 1]);
    }

    #[test]
    #[should_panic(expected = "matrix [2, 0]")]
    fn a_view_index_past_its_shape_panics() {
        let t = FlexTensor::from_data(burn::tensor::TensorData::new(vec![0.0f32; 24], [2, 3, 2, 2]));
        let _ = View::<f32>::of(&t, None).matrix(2, 0);
    }

    #[test]
    #[should_panic(expected = "dtype mismatch")]
    fn a_view_of_the_wrong_dtype_panics() {
        let t = FlexTensor::from_data(burn::tensor::TensorData::new(vec![0.0f64; 16], [1, 1, 4, 4]));
        let _ = View::<f32>::of(&t, None);
    }
}
