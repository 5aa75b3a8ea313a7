//! `Σ x²` over a whole tensor as one op (clipping's global norm, one gradient at a time):
//! the composition (default body) and the flex host kernel (lane sums per fixed chunk).

use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::Backend;
use burn::tensor::DType;
use rayon::prelude::*;

use crate::host::{contiguous, fold_lanes, simd, tensor, HostFloat, CHUNK};

/// `Σ x²` by Burn's ops, `[1]`.
pub(crate) fn compose<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_sum(B::float_mul(x.clone(), x))
}

/// Flex `Σ x²`: lane sums per fixed chunk, the chunks' sums added in order (the same bits
/// for any number of threads).
pub(crate) fn flex(x: FlexTensor) -> FlexTensor {
    fn run<T: HostFloat>(x: &FlexTensor) -> FlexTensor {
        let x = contiguous::<T>(x);
        let parts: Vec<T> = x
            .par_chunks(CHUNK)
            .map(|c| {
                simd(#[inline(always)] || fold_lanes(c, T::ZERO, |acc, x| acc.add(x.mul(x)), T::add))
            })
            .collect();
        tensor(vec![parts.iter().fold(T::ZERO, |s, &p| s.add(p))], [1])
    }
    match x.dtype() {
        DType::F32 => run::<f32>(&x),
        DType::F64 => run::<f64>(&x),
        _ => compose::<Flex>(x),
    }
}

