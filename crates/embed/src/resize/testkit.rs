//! Test helpers: small byte-level BPE tokenizers trained offline on a slice of the corpus.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// The first `bytes` bytes of tinyshakespeare (cut at a line end), as lines.
pub(crate) fn corpus_lines(bytes: usize) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tinyshakespeare.txt");
    let text = std::fs::read_to_string(path).expect("data/tinyshakespeare.txt is part of the repository");
    let cut = text[..bytes.min(text.len())].rfind('\n').unwrap_or(0);
    text[..cut].lines().map(|l| format!("{l}\n")).collect()
}

/// A GPT-2-style byte-level BPE tokenizer (no prefix space) with `vocab` tokens, trained on
/// the first 100 kB. `full_alphabet`: start from all 256 byte symbols (else only those seen).
pub(crate) fn bpe(vocab: usize, full_alphabet: bool) -> Tokenizer {
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
    let mut builder = BpeTrainerBuilder::new().vocab_size(vocab).min_frequency(0).show_progress(false);
    if full_alphabet {
        builder = builder.initial_alphabet(ByteLevel::alphabet().into_iter().collect());
    }
    let mut trainer: TrainerWrapper = builder.build().into();
    tok.train(&mut trainer, corpus_lines(100_000).into_iter()).expect("BPE training");
    tok
}
