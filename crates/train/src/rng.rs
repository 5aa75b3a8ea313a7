//! The counter-based generator behind every seeded draw of data (batch windows, task
//! examples, task batches): a stateless function of its keys, so a draw never depends on
//! what was drawn before (a resumed run draws what the uninterrupted one would).

/// SplitMix64 over a combination of the keys: a stateless, well-mixed 64-bit draw.
pub(crate) fn mix(seed: u64, stream: u64, index: u64, item: u64) -> u64 {
    let mut z = seed
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ item.wrapping_mul(0x94D0_49BB_1331_11EB);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
