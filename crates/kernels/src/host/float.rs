//! [`HostFloat`]: the element types the host kernels run on (`f32`, `f64`).

/// A float element the host kernels run on (`gemm` dispatches on the type).
pub(crate) trait HostFloat: burn::tensor::Element + bytemuck::Pod + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    /// `e^x` for `x ≤ 0` (softmax numerators): f32 by a branch-free polynomial that
    /// vectorises (relative error ≈ 2·10⁻⁷, [`super::math::exp_neg`]), f64 by `exp`.
    fn exp_nonpositive(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn div(self, other: Self) -> Self;
    fn sqrt(self) -> Self;
}

macro_rules! host_float {
    (@exp f32, $x:expr) => {
        super::math::exp_neg(-$x)
    };
    (@exp f64, $x:expr) => {
        f64::exp($x)
    };
    ($t:tt) => {
        impl HostFloat for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn exp_nonpositive(self) -> Self {
                host_float!(@exp $t, self)
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn add(self, other: Self) -> Self {
                self + other
            }
            fn sub(self, other: Self) -> Self {
                self - other
            }
            fn mul(self, other: Self) -> Self {
                self * other
            }
            fn div(self, other: Self) -> Self {
                self / other
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}
host_float!(f32);
host_float!(f64);
