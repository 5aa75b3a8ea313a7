//! `[train] fused_head = true`: the same training run as the plain head, within rounding.

mod common;

use burn::tensor::Device;
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_train::trainer::{train, TrainOptions};
use ember_train::Config;

#[test]
fn fused_head_trains_like_the_plain_head_from_the_same_seed() {
    let _lock = rng_lock();
    let dir = temp_dir("fused-head");
    let corpus = small_corpus(&dir, 20_000);
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let steps = 6;
    let plain = tiny_config(&corpus, &dir.join("plain"), "scheme = \"rope\"", steps);
    let a = train(&plain, &Device::flex(), &quiet).unwrap();
    // Default chunk (all 32 positions in one chunk) and chunks of 5 (not dividing B·T = 32).
    for chunk in [0, 5] {
        let text = plain.to_toml().replace("fused_head = false", "fused_head = true").replace("fused_head_chunk = 0", &format!("fused_head_chunk = {chunk}"));
        let fused = Config::from_toml(&text.replace("/plain", &format!("/fused-{chunk}"))).unwrap();
        assert!(fused.train.fused_head && fused.run.out_dir.ends_with(format!("fused-{chunk}")));
        let b = train(&fused, &Device::flex(), &quiet).unwrap();
        assert_eq!(a.losses.len(), b.losses.len());
        // Same weights and batch: step 0's loss agrees to f32 rounding; later steps follow
        // from gradients that agree to rounding, so the runs stay within a small tolerance.
        let (l0, f0) = (a.losses[0].1, b.losses[0].1);
        assert!((l0 - f0).abs() <= 1e-5 * l0, "chunk {chunk}: first loss {f0} vs {l0}");
        for ((s, l), (_, f)) in a.losses.iter().zip(&b.losses) {
            assert!((l - f).abs() <= 1e-3 * l, "chunk {chunk}: step {s}: fused {f} vs plain {l}");
        }
        assert!((a.final_val_loss - b.final_val_loss).abs() <= 1e-3 * a.final_val_loss, "chunk {chunk}: val {} vs {}", b.final_val_loss, a.final_val_loss);
        // With one chunk (the default here: B·T = 32 rows) the fused pass does the plain
        // path's sums in the same order and the runs are bit-identical; chunks of 5 split
        // the sums over the rows, so a run that really used the fused head cannot be.
        if chunk == 5 {
            assert_ne!(a.losses, b.losses, "chunks of 5: the fused run must not be the plain one");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn head_chunk_follows_the_config() {
    let dir = temp_dir("fused-head-chunk");
    let mut c = tiny_config(&dir.join("c.txt"), &dir, "scheme = \"none\"", 1).train;
    assert_eq!(c.head_chunk(65), None, "plain by default");
    c.fused_head = true;
    assert_eq!(c.head_chunk(65), Some(ember_embed::fused::default_chunk(65)));
    c.fused_head_chunk = 7;
    assert_eq!(c.head_chunk(65), Some(7));
    std::fs::remove_dir_all(&dir).ok();
}
