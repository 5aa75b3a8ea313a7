//! Training loop: resume determinism, NaN handling, checkpoints, config and data errors.

mod common;

use burn::tensor::Device;
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_train::config::TokenizerConfig;
use ember_train::dataset::Dataset;
use ember_train::run::Checkpoint;
use ember_train::trainer::{lr_at, train, TrainOptions};
use ember_train::{Config, TrainError};

fn quiet() -> TrainOptions {
    TrainOptions { quiet: true, ..Default::default() }
}

#[test]
fn resumed_run_reproduces_uninterrupted_losses_on_cpu() {
    let _lock = rng_lock();
    for (name, position) in [("learned", "scheme = \"learned\"\nmax_len = 8"), ("rope", "scheme = \"rope\"")] {
        let dir = temp_dir(&format!("resume-{name}"));
        let corpus = small_corpus(&dir, 20_000);
        let full = tiny_config(&corpus, &dir.join("full"), position, 7);
        let a = train(&full, &Device::flex(), &quiet()).unwrap();
        assert_eq!(a.losses.len(), 7);

        let split = tiny_config(&corpus, &dir.join("split"), position, 7);
        let first = train(&split, &Device::flex(), &TrainOptions { stop_at: Some(4), ..quiet() }).unwrap();
        assert!(first.interrupted);
        assert_eq!(Checkpoint::load(&dir.join("split/checkpoint.bin")).unwrap().state.step, 4);
        let second = train(&split, &Device::flex(), &TrainOptions { resume: true, ..quiet() }).unwrap();
        let resumed: Vec<_> = first.losses.iter().chain(&second.losses).cloned().collect();
        assert_eq!(resumed, a.losses, "{name}: resumed losses must be bit-identical");
        assert_eq!(second.final_val_loss, a.final_val_loss);
        // The loss went down, and the run directory has what it promises.
        assert!(a.losses[6].1 < a.losses[0].1, "{name}: {:?}", a.losses);
        for f in ["config.toml", "tokenizer.json", "metrics.jsonl", "checkpoint.bin"] {
            assert!(dir.join("full").join(f).exists(), "{f}");
        }
        let metrics = std::fs::read_to_string(dir.join("split/metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().filter(|l| l.contains("\"loss\"")).count(), 7, "resume appends metrics");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn seeded_runs_repeat_exactly() {
    let _lock = rng_lock();
    let dir = temp_dir("repeat");
    let corpus = small_corpus(&dir, 10_000);
    let c1 = tiny_config(&corpus, &dir.join("a"), "scheme = \"alibi\"", 3);
    let c2 = tiny_config(&corpus, &dir.join("b"), "scheme = \"alibi\"", 3);
    let (a, b) = (train(&c1, &Device::flex(), &quiet()).unwrap(), train(&c2, &Device::flex(), &quiet()).unwrap());
    assert_eq!(a.losses, b.losses);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint() {
    let _lock = rng_lock();
    let dir = temp_dir("nan");
    let corpus = small_corpus(&dir, 10_000);
    let mut config = tiny_config(&corpus, &dir.join("run"), "scheme = \"none\"", 50);
    config.train.lr = 1e30; // AdamW moves every weight by ~lr: the next forward overflows
    config.train.min_lr = 0.0;
    config.train.grad_clip = 0.0;
    config.train.checkpoint_interval = 1;
    let err = train(&config, &Device::flex(), &quiet()).unwrap_err();
    let TrainError::NonFiniteLoss { step, value, .. } = &err else { panic!("expected NonFiniteLoss, got {err}") };
    assert!(!value.is_finite());
    assert!(err.to_string().contains(&format!("step {step}")), "{err}");
    let ck = Checkpoint::load(&dir.join("run/checkpoint.bin")).unwrap();
    assert_eq!(ck.state.step, *step, "last good checkpoint is the step before the NaN");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn schedule_warms_up_then_decays_to_min_lr() {
    let dir = temp_dir("lr");
    let c = tiny_config(&dir.join("x"), &dir, "scheme = \"none\"", 100);
    let t = &c.train; // lr 3e-3, warmup 2, min 3e-4
    assert!((lr_at(0, t) - 3e-3 / 3.0).abs() < 1e-15);
    assert!((lr_at(1, t) - 2.0 * 3e-3 / 3.0).abs() < 1e-15);
    assert!((lr_at(2, t) - 3e-3).abs() < 1e-15);
    assert!((lr_at(51, t) - (3e-4 + 0.5 * (3e-3 - 3e-4))).abs() < 1e-12);
    assert!((lr_at(100, t) - 3e-4).abs() < 1e-15);
    assert!((2..100).all(|s| lr_at(s + 1, t) <= lr_at(s, t)));
}

#[test]
fn config_errors_name_the_field() {
    let dir = temp_dir("config");
    let base = tiny_config(&dir.join("c.txt"), &dir, "scheme = \"learned\"\nmax_len = 8", 1).to_toml();
    let cases = [
        (base.replace("d_model = 16", "d_model = 16\ndmodel = 3"), "dmodel"),
        (base.replace("n_heads = 2", "n_heads = 3"), "n_heads"),
        (base.replace("max_len = 8", "max_len = 4"), "max_len"),
        (base.replace("backend = \"flex\"", "backend = \"tpu\""), "tpu"),
        (base.replace("lr = 0.003", "lr = -1.0"), "train.lr"),
        (base.replace("[train]", "[training]"), "training"),
        (base.replace("[data.tokenizer]\nkind = \"char\"", "[data.tokenizer]\nkind = \"char\"\ntypo = 1"), "typo"),
        (base.replace("[model]", "[model]\nembed_scale = \"sqrt\""), "sqrt_d"),
        (base.replace("[model]", "[model]\nembed_scale = -2.0"), "embed_scale"),
        (base.replace("fused_head = false", "fused_head = false\nfused_heads = true"), "fused_heads"),
    ];
    for (text, needle) in cases {
        assert_ne!(text, base, "case {needle} must change the config");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "error should name {needle}: {err}");
    }
    // Every shipped config parses and validates (ablations with their base config).
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("ablation-") {
            ember_train::ablate::Ablation::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn data_errors_are_clear() {
    let dir = temp_dir("data");
    let mut c = tiny_config(&dir.join("missing.txt"), &dir, "scheme = \"none\"", 1).data;
    let err = Dataset::load(&c, None).unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("missing.txt"), "{err}");
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    c.corpus = dir.join("empty.txt");
    assert!(Dataset::load(&c, None).unwrap_err().to_string().contains("empty"));
    std::fs::write(dir.join("short.txt"), "to be or not to be, that is").unwrap();
    c.corpus = dir.join("short.txt");
    let err = Dataset::load(&c, None).unwrap_err().to_string();
    assert!(err.contains("fewer than one window"), "{err}");
    c.corpus = small_corpus(&dir, 5_000);
    std::fs::write(dir.join("tok.json"), "{ not json").unwrap();
    c.tokenizer = TokenizerConfig::File { path: dir.join("tok.json") };
    let err = Dataset::load(&c, None).unwrap_err().to_string();
    assert!(err.contains("tok.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn char_split_and_bpe_round_trip() {
    let dir = temp_dir("tok");
    let corpus = small_corpus(&dir, 30_000);
    let mut c = tiny_config(&corpus, &dir, "scheme = \"none\"", 1).data;
    let data = Dataset::load(&c, None).unwrap();
    let text = std::fs::read_to_string(&corpus).unwrap();
    assert_eq!(data.train.len() + data.val.len(), text.chars().count());
    assert_eq!(data.train.len(), (text.chars().count() as f64 * 0.9) as usize, "nanoGPT's 90 % split");
    assert_eq!(data.tokenizer.decode(&data.val).unwrap(), text.chars().skip(data.train.len()).collect::<String>());
    c.tokenizer = TokenizerConfig::Bpe { vocab_size: 300 };
    let bpe = Dataset::load(&c, None).unwrap();
    assert!(bpe.tokenizer.vocab_size() <= 300 && bpe.tokenizer.vocab_size() > 256);
    assert!(bpe.train.len() < data.train.len(), "BPE compresses");
    let path = dir.join("tokenizer.json");
    bpe.tokenizer.save(&path).unwrap();
    let back = ember_train::tokenizer::Tokenizer::load(&path).unwrap();
    assert_eq!(back.decode(&bpe.val).unwrap(), bpe.tokenizer.decode(&bpe.val).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn matrix_decay_equals_adamw_decay_and_spares_vectors() {

    use burn::nn::LinearConfig;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::{Tensor, TensorData};
    use ember_train::trainer::decay_matrices;
    let dev = Device::flex().autodiff();
    let lin = LinearConfig::new(3, 2).init(&dev);
    let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75], [2, 3]), &dev);
    let (lr, wd) = (0.1, 0.5);
    let grads = |m: &burn::nn::Linear| GradientsParams::from_grads(m.forward(x.clone()).square().sum().backward(), m);
    // Burn's AdamW with decay on everything …
    let g = grads(&lin);
    let burn_step = AdamWConfig::new().with_weight_decay(wd as f32).init().step(lr, lin.clone(), g);
    // … vs decay of the matrices only, then AdamW without decay.
    let g = grads(&lin);
    let ours = AdamWConfig::new().with_weight_decay(0.0).init().step(lr, decay_matrices(lin.clone(), 1.0 - lr * wd), g);
    let host = |t: Tensor<2>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    let (a, b) = (host(burn_step.weight.val()), host(ours.weight.val()));
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} vs {b:?}");
    // The bias (1-D) is not decayed by ours, but is by Burn's.
    let g = grads(&lin);
    let no_decay = AdamWConfig::new().with_weight_decay(0.0).init().step(lr, lin.clone(), g);
    let bias = |m: &burn::nn::Linear| m.bias.as_ref().unwrap().val().into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    assert_eq!(bias(&ours), bias(&no_decay));
    assert_ne!(bias(&burn_step), bias(&no_decay));
}

#[test]
fn eval_scores_every_target_once_and_learned_refuses_longer_context() {
    use ember_train::dataset::Split;
    use ember_train::eval::evaluate_split;
    use ember_train::run::RunDir;
    use ember_train::sample::{sample, SampleOptions};
    let _lock = rng_lock();
    let dir = temp_dir("eval");
    let corpus = small_corpus(&dir, 20_000);
    let config = tiny_config(&corpus, &dir.join("run"), "scheme = \"learned\"\nmax_len = 8", 4);
    train(&config, &Device::flex(), &quiet()).unwrap();
    let run = RunDir::new(dir.join("run")).load(&Device::flex()).unwrap();
    assert_eq!(run.step, 4);
    let data = Dataset::load(&run.config.data, Some(run.tokenizer.clone())).unwrap();
    let val = data.ids(Split::Val);
    let ids = &val[..101];
    let non_overlapping = evaluate_split(&run.model, ids, Split::Val, 8, 8, None, &Device::flex()).unwrap();
    let sliding = evaluate_split(&run.model, ids, Split::Val, 8, 2, None, &Device::flex()).unwrap();
    assert_eq!(non_overlapping.tokens, 100, "every target once");
    assert_eq!(sliding.tokens, 100, "every target once");
    assert!(non_overlapping.loss.is_finite() && (non_overlapping.perplexity - non_overlapping.loss.exp()).abs() < 1e-9);
    assert_ne!(non_overlapping.loss, sliding.loss, "more history changes the scores");
    // Reference: non-overlapping windows computed directly from the model's logits.
    let mut total = 0.0;
    for w in 0..(100usize).div_ceil(8) {
        let (s, len) = (w * 8, 8.min(100 - w * 8));
        let x = run.model.tok.ids_tensor(&ids[s..s + len], 1, len).unwrap();
        let y = run.model.tok.ids_tensor(&ids[s + 1..s + len + 1], 1, len).unwrap();
        let logits = run.model.forward(x, 0).unwrap();
        total += ember_embed::loss::cross_entropy(logits, y, None).into_scalar::<f64>() * len as f64;
    }
    assert!((total / 100.0 - non_overlapping.loss).abs() < 1e-5, "{} vs {}", total / 100.0, non_overlapping.loss);
    let err = evaluate_split(&run.model, ids, Split::Val, 16, 16, None, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("learned") && err.contains("16"), "{err}");
    // Sampling is seeded: same seed, same text; it starts with the prompt.
    let opts = SampleOptions { prompt: "First".into(), tokens: 20, temperature: 1.0, top_k: Some(5), seed: 3, window: 8, cache: true };
    let a = sample(&run.model, &run.tokenizer, &opts).unwrap();
    assert_eq!(a, sample(&run.model, &run.tokenizer, &opts).unwrap());
    assert!(a.starts_with("First") && a.chars().count() == 25, "{a:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_after_a_crash_does_not_log_steps_twice() {
    let _lock = rng_lock();
    let dir = temp_dir("crash-metrics");
    let corpus = small_corpus(&dir, 10_000);
    let config = tiny_config(&corpus, &dir.join("run"), "scheme = \"none\"", 6);
    train(&config, &Device::flex(), &TrainOptions { stop_at: Some(3), ..quiet() }).unwrap();
    // A crash after the checkpoint at step 3: the dead run had logged steps 3 and 4 and an
    // evaluation after 5 steps that the checkpoint does not hold.
    let path = dir.join("run/metrics.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"step\":3,\"loss\":9.0,\"lr\":0.1,\"tokens_per_s\":1.0}\n{\"step\":4,\"loss\":9.0,\"lr\":0.1,\"tokens_per_s\":1.0}\n");
    text.push_str("{\"step\":5,\"train_loss\":9.0,\"val_loss\":9.0}\n");
    std::fs::write(&path, text).unwrap();
    train(&config, &Device::flex(), &TrainOptions { resume: true, ..quiet() }).unwrap();
    let (steps, evals) = ember_train::metrics::read_metrics(&path).unwrap();
    let logged: Vec<usize> = steps.iter().map(|s| s.0 as usize).collect();
    assert_eq!(logged, (0..6).collect::<Vec<_>>(), "each step once, in order");
    assert!(steps.iter().all(|s| s.1 != 9.0) && evals.iter().all(|e| e.1 != 9.0), "the dead run's lines are gone");
    let eval_steps: Vec<usize> = evals.iter().map(|e| e.0 as usize).collect();
    assert_eq!(eval_steps, vec![3, 6]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_directory_is_evaluable_from_another_working_directory() {
    let _lock = rng_lock();
    let dir = temp_dir("cwd");
    let corpus = small_corpus(&dir, 10_000);
    let config = tiny_config(&corpus, &dir.join("run"), "scheme = \"none\"", 2);
    train(&config, &Device::flex(), &quiet()).unwrap();
    let saved = Config::load(&dir.join("run/config.toml")).unwrap();
    assert!(saved.data.corpus.is_absolute(), "{}", saved.data.corpus.display());
    let listed = ember_train::run::RunDir::list(&dir).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].path.clone(), listed[0].step), (dir.join("run"), 2));
    assert!(listed[0].val_loss.is_some_and(|v| v.is_finite()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn global_norm_clipping_matches_the_formula() {

    use burn::nn::LinearConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Tensor, TensorData};
    use ember_train::trainer::clip_global_norm;
    let dev = Device::flex().autodiff();
    let lin = LinearConfig::new(3, 2).init(&dev);
    let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75], [2, 3]), &dev);
    let grads = || GradientsParams::from_grads(lin.forward(x.clone()).square().sum().backward(), &lin);
    let host = |g: &GradientsParams| -> Vec<f64> {
        let w = g.get::<2>(lin.weight.id).unwrap().into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        let b = g.get::<1>(lin.bias.as_ref().unwrap().id).unwrap().into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        w.into_iter().chain(b).collect()
    };
    let raw = host(&grads());
    let norm = raw.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(norm > 0.1, "a non-trivial gradient: {norm}");
    // Below the norm: every entry scaled by max_norm / ‖g‖ (bias included: one global norm).
    let clipped = host(&clip_global_norm(grads(), &lin, norm / 4.0));
    for (c, r) in clipped.iter().zip(&raw) {
        assert!((c - r / 4.0).abs() <= 1e-6 * r.abs().max(1e-3), "{c} vs {}", r / 4.0);
    }
    // Above the norm: unchanged (factor max_norm / max(‖g‖, max_norm) = 1 up to rounding).
    let kept = host(&clip_global_norm(grads(), &lin, norm * 2.0));
    for (c, r) in kept.iter().zip(&raw) {
        assert!((c - r).abs() <= 1e-6 * r.abs().max(1e-3), "{c} vs {r}");
    }
}
