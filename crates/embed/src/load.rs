//! [`load_table`]: open any table file ember reads — a quantized table, a safetensors
//! tensor with its vocabulary, or a GloVe/word2vec text file — by looking at it.
//!
//! Kept apart from [`crate::io`] (plain formats) and [`crate::quantize`] (the quantized
//! format, which builds on `io`'s types) so that neither module needs the other both ways.

use std::path::Path;

use crate::io::{io_err, load_text, safetensors_from_bytes, LoadError, LoadedTable};

/// Load any supported table: `.safetensors` goes to [`crate::io::load_safetensors`] (with `tensor` and
/// `vocab`; when `vocab` is `None`, a `tokenizer.json` or `vocab.txt` next to the file is used)
/// unless it is a quantized table ([`crate::quantize::save`]: dequantized, names from the file;
/// `tensor` = `table` or `head`), everything else to [`crate::io::load_text`].
pub fn load_table(path: &Path, tensor: Option<&str>, vocab: Option<&Path>) -> Result<LoadedTable, LoadError> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        if crate::quantize::quantized_metadata(&bytes).is_some() {
            // Written by `ember embed quantize --out`: names stored inside, dequantized here.
            return crate::quantize::load_table(path, &bytes, tensor, vocab);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let vocab = match vocab {
            Some(v) => v.to_path_buf(),
            None => ["tokenizer.json", "vocab.txt"].iter().map(|n| dir.join(n)).find(|p| p.is_file()).ok_or_else(|| LoadError::Format {
                path: path.to_path_buf(),
                message: "a safetensors table needs a vocabulary: pass --vocab (tokenizer.json or one token per line)".into(),
            })?,
        };
        safetensors_from_bytes(path, &bytes, tensor, &vocab)
    } else {
        load_text(path)
    }
}

