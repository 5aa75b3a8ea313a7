//! The public functions' checks: inputs that do not fit (shapes, widths, dtypes, devices)
//! are a `KernelError` naming the op and the offending input, never a panic or a kernel run
//! on them; each case sits next to a control that fits and returns `Ok`. And `linear` on
//! empty inputs (no rows, `d_in = 0`, `d_out = 0`): the empty or all-zero product and
//! gradients, forward and backward, on every test device.

use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use ember_device::BackendName;
use ember_kernels::{attention, attention_qkv, layer_norm, linear, target_log_probs, KernelError};
use ember_testing::test_devices;

fn flex() -> Device {
    Device::flex()
}

fn ndarray() -> Device {
    BackendName::Ndarray.device().unwrap()
}

/// Normal(0, 1) values of `dims` on `device` (f32).
fn t<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
}

/// The same on flex, cast to f64.
fn wide<const D: usize>(dims: [usize; D]) -> Tensor<D> {
    t(dims, &flex()).cast(FloatDType::F64)
}

/// `r` is an error of `op` of the kind `mixed` says (a dtype/device error, else a shape error)
/// whose message mentions every one of `mentions`.
#[track_caller]
fn kernel_err<T: std::fmt::Debug>(r: Result<T, KernelError>, op: &str, mentions: &[&str], mixed: bool) {
    let kind = if mixed { "dtype/device" } else { "shape" };
    let (o, detail) = match r {
        Err(KernelError::Shape { op, detail }) if !mixed => (op, detail),
        Err(KernelError::Mixed { op, detail }) if mixed => (op, detail),
        other => panic!("{op}: expected a {kind} error mentioning {mentions:?}, got {other:?}"),
    };
    assert_eq!(o, op, "{detail}");
    for m in mentions {
        assert!(detail.contains(m), "`{m}` missing from `{detail}`");
    }
}

/// `r` is a shape error of `op` whose message mentions every one of `mentions`.
#[track_caller]
fn shape_err<T: std::fmt::Debug>(r: Result<T, KernelError>, op: &str, mentions: &[&str]) {
    kernel_err(r, op, mentions, false);
}

/// `r` is a dtype/device error of `op` whose message mentions every one of `mentions`.
#[track_caller]
fn mixed_err<T: std::fmt::Debug>(r: Result<T, KernelError>, op: &str, mentions: &[&str]) {
    kernel_err(r, op, mentions, true);
}

#[test]
fn linear_rejects_wrong_widths_dtypes_and_devices() {
    let d = flex();
    let (x, w, b) = (t([2, 3, 4], &d), t([4, 6], &d), t([6], &d));
    let dims = |r: Result<Tensor<3>, KernelError>| r.map(|y| y.dims());
    assert_eq!(dims(linear(x.clone(), w.clone(), Some(b.clone()))), Ok([2, 3, 6]), "the control fits");
    // The weight's rows are not x's last dimension (either way round, and the transpose).
    shape_err(dims(linear(x.clone(), t([5, 6], &d), None)), "linear", &["x [2, 3, 4]", "weight [5, 6]"]);
    shape_err(dims(linear(x.clone(), t([3, 6], &d), None)), "linear", &["weight [3, 6]"]);
    shape_err(dims(linear(x.clone(), t([6, 4], &d), None)), "linear", &["weight [6, 4]"]);
    // A bias that is not [d_out].
    shape_err(dims(linear(x.clone(), w.clone(), Some(t([4], &d)))), "linear", &["bias Some([4])", "[6]"]);
    shape_err(dims(linear(x.clone(), w.clone(), Some(t([7], &d)))), "linear", &["bias Some([7])"]);
    // Dtypes and devices.
    mixed_err(dims(linear(x.clone(), wide([4, 6]), None)), "linear", &["weight is F64", "x is F32"]);
    mixed_err(dims(linear(x.clone(), w.clone(), Some(wide([6])))), "linear", &["bias is F64"]);
    mixed_err(dims(linear(x.clone().cast(FloatDType::F64), w.clone(), None)), "linear", &["weight is F32", "x is F64"]);
    mixed_err(dims(linear(x.clone(), t([4, 6], &ndarray()), None)), "linear", &["weight is on"]);
    mixed_err(dims(linear(x, w, Some(t([6], &ndarray())))), "linear", &["bias is on"]);
}

#[test]
fn layer_norm_rejects_gains_of_the_wrong_length_dtype_or_device() {
    let d = flex();
    let (x, g, b) = (t([2, 3, 4], &d), t([4], &d), t([4], &d));
    let dims = |r: Result<Tensor<3>, KernelError>| r.map(|y| y.dims());
    assert_eq!(dims(layer_norm(x.clone(), g.clone(), Some(b.clone()), 1e-5)), Ok([2, 3, 4]), "the control fits");
    shape_err(dims(layer_norm(x.clone(), t([5], &d), None, 1e-5)), "layer_norm", &["gamma [5]", "expected [4]"]);
    shape_err(dims(layer_norm(x.clone(), t([3], &d), None, 1e-5)), "layer_norm", &["gamma [3]"]);
    shape_err(dims(layer_norm(x.clone(), g.clone(), Some(t([2], &d)), 1e-5)), "layer_norm", &["beta [2]"]);
    // A last dimension of 0 has nothing to normalise.
    let empty = layer_norm(Tensor::<2>::zeros([2, 0], &d), Tensor::<1>::zeros([0], &d), None, 1e-5);
    shape_err(empty.map(|y| y.dims()), "layer_norm", &["gamma [0]", "at least 1"]);
    mixed_err(dims(layer_norm(x.clone(), wide([4]), None, 1e-5)), "layer_norm", &["gamma is F64"]);
    mixed_err(dims(layer_norm(x.clone(), g.clone(), Some(wide([4])), 1e-5)), "layer_norm", &["beta is F64"]);
    mixed_err(dims(layer_norm(x.clone(), t([4], &ndarray()), None, 1e-5)), "layer_norm", &["gamma is on"]);
    mixed_err(dims(layer_norm(x, g, Some(t([4], &ndarray())), 1e-5)), "layer_norm", &["beta is on"]);
}

#[test]
fn target_log_probs_rejects_targets_of_the_wrong_length_or_device() {
    use burn::tensor::Int;
    let d = flex();
    let ids = |n: usize, device: &Device| Tensor::<1, Int>::zeros([n], device);
    let dims = |r: Result<Tensor<1>, KernelError>| r.map(|y| y.dims());
    assert_eq!(dims(target_log_probs(t([6, 5], &d), ids(6, &d))), Ok([6]), "the control fits");
    shape_err(dims(target_log_probs(t([6, 5], &d), ids(4, &d))), "target_log_probs", &["targets [4]", "[N] = [6]"]);
    shape_err(dims(target_log_probs(Tensor::<2>::zeros([6, 0], &d), ids(6, &d))), "target_log_probs", &["logits [6, 0]", "at least 1"]);
    mixed_err(dims(target_log_probs(t([6, 5], &d), ids(6, &ndarray()))), "target_log_probs", &["targets are on"]);
}

#[test]
fn attention_rejects_mismatched_heads_biases_dtypes_and_devices() {
    let d = flex();
    let q = || t([2, 3, 5, 4], &d); // [B, H, T, dh]
    let dims = |r: Result<Tensor<3>, KernelError>| r.map(|y| y.dims());
    for bias in [None, Some([1, 3, 5, 5]), Some([2, 3, 5, 5])] {
        assert_eq!(dims(attention(q(), q(), q(), bias.map(|s| t(s, &d)))), Ok([2, 5, 12]), "the control fits, bias {bias:?}");
    }
    // k and v not shaped like q: head width, positions, heads, batch.
    shape_err(dims(attention(q(), t([2, 3, 5, 3], &d), q(), None)), "attention", &["k [2, 3, 5, 3]", "q [2, 3, 5, 4]"]);
    shape_err(dims(attention(q(), q(), t([2, 3, 6, 4], &d), None)), "attention", &["v [2, 3, 6, 4]"]);
    shape_err(dims(attention(q(), t([2, 2, 5, 4], &d), t([2, 2, 5, 4], &d), None)), "attention", &["k [2, 2, 5, 4]"]);
    shape_err(dims(attention(t([1, 3, 5, 4], &d), q(), q(), None)), "attention", &["k [2, 3, 5, 4]", "q [1, 3, 5, 4]"]);
    // Empty inputs.
    let e = || Tensor::<4>::zeros([2, 3, 0, 4], &d);
    shape_err(dims(attention(e(), e(), e(), None)), "attention", &["q [2, 3, 0, 4]", "empty"]);
    let e = || Tensor::<4>::zeros([2, 3, 5, 0], &d);
    shape_err(dims(attention(e(), e(), e(), None)), "attention", &["empty"]);
    // Biases that are not [1 or B, H, T, T].
    for s in [[1, 2, 5, 5], [3, 3, 5, 5], [1, 3, 5, 4], [1, 3, 4, 5], [2, 3, 5, 6]] {
        let detail = format!("score bias {s:?}");
        shape_err(dims(attention(q(), q(), q(), Some(t(s, &d)))), "attention", &[&detail, "expected [1 or 2, 3, 5, 5]"]);
    }
    // Dtypes (each of k, v, bias; and q against the others) and devices.
    mixed_err(dims(attention(q(), wide([2, 3, 5, 4]), q(), None)), "attention", &["k is F64", "q is F32"]);
    mixed_err(dims(attention(q(), q(), wide([2, 3, 5, 4]), None)), "attention", &["v is F64"]);
    mixed_err(dims(attention(wide([2, 3, 5, 4]), q(), q(), None)), "attention", &["k is F32", "q is F64"]);
    mixed_err(dims(attention(q(), q(), q(), Some(wide([1, 3, 5, 5])))), "attention", &["bias is F64"]);
    mixed_err(dims(attention(q(), t([2, 3, 5, 4], &ndarray()), q(), None)), "attention", &["k is on"]);
    mixed_err(dims(attention(q(), q(), q(), Some(t([1, 3, 5, 5], &ndarray())))), "attention", &["bias is on"]);
}

#[test]
fn attention_qkv_rejects_widths_that_do_not_split_into_heads() {
    let d = flex();
    let qkv = || t([2, 5, 24], &d); // [B, T, 3·H·dh], H = 2, dh = 4
    let dims = |r: Result<Tensor<3>, KernelError>| r.map(|y| y.dims());
    assert_eq!(dims(attention_qkv(qkv(), 2, None)), Ok([2, 5, 8]), "the control fits");
    assert_eq!(dims(attention_qkv(qkv(), 4, Some(t([2, 4, 5, 5], &d)))), Ok([2, 5, 8]), "4 heads of 2, bias [B, ..]");
    for (width, heads) in [(24, 0), (24, 5), (24, 3 * 24), (25, 1), (26, 2)] {
        let detail = format!("of {heads} heads");
        shape_err(dims(attention_qkv(t([2, 5, width], &d), heads, None)), "attention_qkv", &[&detail, "multiple of 3·heads"]);
    }
    shape_err(dims(attention_qkv(Tensor::<3>::zeros([0, 5, 24], &d), 2, None)), "attention_qkv", &["qkv [0, 5, 24]", "empty"]);
    shape_err(dims(attention_qkv(Tensor::<3>::zeros([2, 5, 0], &d), 2, None)), "attention_qkv", &["empty"]);
    for s in [[1, 3, 5, 5], [3, 2, 5, 5], [1, 2, 5, 4]] {
        let detail = format!("score bias {s:?}");
        shape_err(dims(attention_qkv(qkv(), 2, Some(t(s, &d)))), "attention_qkv", &[&detail]);
    }
    mixed_err(dims(attention_qkv(qkv(), 2, Some(wide([1, 2, 5, 5])))), "attention_qkv", &["bias is F64", "qkv is F32"]);
    mixed_err(dims(attention_qkv(qkv(), 2, Some(t([1, 2, 5, 5], &ndarray())))), "attention_qkv", &["bias is on"]);
}

/// Values of `t` on the host as f64.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// `linear(x [.., d_in], w [d_in, d_out], bias)` with `x` of `x_dims` and the gradients of
/// `Σ y ⊙ c` (`c` random, so every output element's gradient is non-zero): returns
/// `(y − bias, dx, dw, dbias)` after checking their shapes.
fn empty_case(device: &Device, dtype: FloatDType, x_dims: [usize; 3], [d_in, d_out]: [usize; 2]) -> [Vec<f64>; 4] {
    let ad = device.clone().autodiff();
    let x = Tensor::<3>::zeros(x_dims, &ad).cast(dtype).require_grad();
    let w = t([d_in, d_out], &ad).cast(dtype).require_grad();
    let b = t([d_out], &ad).cast(dtype).require_grad();
    let y = linear(x.clone(), w.clone(), Some(b.clone())).expect("empty inputs fit");
    let y_dims = [x_dims[0], x_dims[1], d_out];
    assert_eq!(y.dims(), y_dims);
    let c = t(y_dims, &ad).cast(dtype);
    let grads = (y.clone() * c).sum().backward();
    let dx = x.grad(&grads).expect("dx");
    let dw = w.grad(&grads).expect("dw");
    let db = b.grad(&grads).expect("dbias");
    assert_eq!((dx.dims(), dw.dims(), db.dims()), (x_dims, [d_in, d_out], [d_out]));
    // y − bias, row by row (no `unsqueeze`: Burn's reshape reads a 0 as "keep this dimension").
    let (y, b) = (values(y), values(b));
    let y = y.iter().enumerate().map(|(i, v)| v - b[i % d_out]).collect();
    [y, values(dx), values(dw), values(db)]
}

#[test]
fn linear_on_empty_inputs_gives_empty_or_zero_results_and_gradients() {
    for td in test_devices() {
        let dtypes = if td.name == BackendName::Wgpu { vec![FloatDType::F32] } else { vec![FloatDType::F32, FloatDType::F64] };
        for dtype in dtypes {
            let what = format!("{} {dtype:?}", td.name);
            // No rows (B·T = 0): y, dx empty; dW = Xᵀ dY over no rows = 0; dbias = 0.
            for x_dims in [[2, 0, 4], [0, 3, 4]] {
                let [y, dx, dw, db] = empty_case(&td.device, dtype, x_dims, [4, 6]);
                assert!(y.is_empty() && dx.is_empty(), "{what} {x_dims:?}");
                assert_eq!((dw, db), (vec![0.0; 24], vec![0.0; 6]), "{what} {x_dims:?}: no rows, zero gradients");
            }
            // d_out = 0: y, dW, dbias empty; dx = dY Wᵀ over no columns = 0.
            let [y, dx, dw, db] = empty_case(&td.device, dtype, [2, 3, 4], [4, 0]);
            assert!(y.is_empty() && dw.is_empty() && db.is_empty(), "{what} d_out 0");
            assert_eq!(dx, vec![0.0; 24], "{what} d_out 0: dx");
            // d_in = 0: x W is all zeros (y = bias), dx, dW empty, dbias = Σ_rows c ≠ 0.
            let [y, dx, dw, db] = empty_case(&td.device, dtype, [2, 3, 0], [0, 6]);
            assert!(dx.is_empty() && dw.is_empty(), "{what} d_in 0");
            assert_eq!(y, vec![0.0; 36], "{what} d_in 0: y − bias");
            assert!(db.iter().all(|g| *g != 0.0), "{what} d_in 0: the bias still learns: {db:?}");
        }
    }
}
