//! Ablations on a tiny budget: eval-time RoPE scaling, the learned-table refusal, outputs,
//! resume, n/a cells, identical budgets and data order, shard + collect.

mod common;

use std::path::Path;

use burn::tensor::Device;
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_position::PositionConfig;
use ember_train::ablate::results::{collect, paired, paired_markdown, to_csv, to_markdown, write_outputs};
use ember_train::ablate::{grid, run_shard, AblateOptions, Ablation, AblationConfig, Row, Shard};
use ember_train::dataset::{Batches, Dataset, Split, Stream};
use ember_train::eval::{evaluate_run, with_rope_scaling, EvalScaling, ScalingKind};
use ember_train::run::RunDir;
use ember_train::trainer::{train, TrainOptions};

fn quiet() -> AblateOptions {
    AblateOptions { quiet: true, ..Default::default() }
}

/// none, learned (table 32 > context 8), rope, rope+yarn (eval-only); lengths 8 and 16.
fn ablation(dir: &Path, out: &str) -> Ablation {
    ablation_seeds(dir, out, "[3]")
}

/// [`ablation`] with other `seeds` (TOML).
fn ablation_seeds(dir: &Path, out: &str, seeds: &str) -> Ablation {
    let corpus = small_corpus(dir, 6_000);
    let base = tiny_config(&corpus, &dir.join("unused"), "scheme = \"none\"", 6);
    let text = format!(
        r#"
        base = "unused.toml"
        out_dir = "{out}"
        seeds = {seeds}
        eval_lengths = [1, 2]
        steps = 4
        [eval]
        max_tokens = 120
        [[variant]]
        label = "none"
        position = {{ scheme = "none" }}
        [[variant]]
        label = "learned"
        position = {{ scheme = "learned", max_len = 32 }}
        [[variant]]
        label = "rope"
        position = {{ scheme = "rope" }}
        [[variant]]
        label = "rope+yarn"
        eval_of = "rope"
        rope_scaling = {{ kind = "yarn", factor = 2.0 }}
        "#,
        out = dir.join(out).display()
    );
    Ablation::new(toml::from_str::<AblationConfig>(&text).unwrap(), base).unwrap()
}

/// The modification time of `path`.
fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows without the wall-clock column (which differs between runs).
fn numbers(rows: &[Row]) -> Vec<Row> {
    rows.iter().cloned().map(|r| Row { train_time_s: 0.0, ..r }).collect()
}

#[test]
fn eval_time_rope_scaling_and_learned_refusal() {
    let _lock = rng_lock();
    let dir = temp_dir("abl-eval");
    let corpus = small_corpus(&dir, 6_000);
    let dev = Device::flex();
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    train(&tiny_config(&corpus, &dir.join("rope"), "scheme = \"rope\"", 3), &dev, &quiet).unwrap();
    train(&tiny_config(&corpus, &dir.join("learned"), "scheme = \"learned\"\nmax_len = 32", 3), &dev, &quiet).unwrap();
    let config_before = std::fs::read_to_string(dir.join("rope/config.toml")).unwrap();

    let run = RunDir::new(dir.join("rope")).load(&dev).unwrap();
    let data = Dataset::load(&run.config.data, Some(run.tokenizer.clone())).unwrap();
    let plain = evaluate_run(&run, &data, Split::Val, 16, 16, Some(100), &dev).unwrap().loss;
    let plain_run = run;
    for kind in [ScalingKind::Linear, ScalingKind::Dynamic, ScalingKind::Yarn, ScalingKind::Llama3] {
        let run = RunDir::new(dir.join("rope")).load(&dev).unwrap();
        let scaled = with_rope_scaling(run, &EvalScaling { kind, factor: 2.0 }, &dev).unwrap();
        match &scaled.config.position {
            PositionConfig::Rope { scaling, .. } => assert_eq!(*scaling, EvalScaling { kind, factor: 2.0 }.rope_scaling(8)),
            other => panic!("{other:?}"),
        }
        let freqs = |p: &ember_position::PositionEncoding| match p {
            ember_position::PositionEncoding::Rope(r) => r.frequencies(16),
            _ => unreachable!(),
        };
        assert_ne!(freqs(&scaled.model.pos), freqs(&plain_run.model.pos), "{kind:?}: the model rotates with the scaled frequencies");
        let loss = evaluate_run(&scaled, &data, Split::Val, 16, 16, Some(100), &dev).unwrap().loss;
        assert!(loss.is_finite(), "{kind:?}");
        if kind != ScalingKind::Dynamic {
            // (dynamic NTK keeps the fastest frequency; on a 3-step model the change is below f32 resolution)
            assert_ne!(loss, plain, "{kind:?}: scaling changes the scores");
        }
    }
    assert_eq!(std::fs::read_to_string(dir.join("rope/config.toml")).unwrap(), config_before, "files untouched");
    assert!("ntk".parse::<ScalingKind>().is_err() && "llama3".parse::<ScalingKind>() == Ok(ScalingKind::Llama3));

    // A learned table is refused past the context it was trained on (8), even below max_len (32).
    let learned = RunDir::new(dir.join("learned")).load(&dev).unwrap();
    assert!(evaluate_run(&learned, &data, Split::Val, 8, 8, Some(100), &dev).is_ok());
    let err = evaluate_run(&learned, &data, Split::Val, 16, 16, Some(100), &dev).unwrap_err().to_string();
    assert!(err.contains("trained on 8 positions") && err.contains("16"), "{err}");
    let err = with_rope_scaling(learned, &EvalScaling { kind: ScalingKind::Yarn, factor: 2.0 }, &dev).err().unwrap().to_string();
    assert!(err.contains("learned") && err.contains("rope"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ablation_outputs_resume_shards_and_na_cells() {
    let _lock = rng_lock();
    let dir = temp_dir("abl-grid");
    let dev = Device::flex();

    // One full run.
    let a = ablation(&dir, "full");
    let out = run_shard(&a, &dev, &quiet()).unwrap();
    assert_eq!((out.evaluated, out.skipped, out.trained.len(), out.interrupted), (4, 0, 3, false));
    let rows = collect(&a).unwrap();
    assert_eq!(rows.len(), 4 * 2 * 2, "variants × lengths × modes");
    for r in &rows {
        let na = r.variant == "learned" && r.eval_len == 16;
        assert_eq!(r.loss.is_none(), na, "{r:?}");
        if na {
            assert!(r.reason.as_deref().unwrap().contains("trained on 8"), "{r:?}");
        } else {
            assert!(r.loss.unwrap().is_finite() && r.tokens == Some(120) && r.reason.is_none(), "{r:?}");
        }
    }
    let yarn: Vec<_> = rows.iter().filter(|r| r.variant == "rope+yarn").map(|r| r.loss).collect();
    let rope: Vec<_> = rows.iter().filter(|r| r.variant == "rope").map(|r| r.loss).collect();
    assert_ne!(yarn, rope, "eval-only variant evaluates with scaling on");
    write_outputs(&a, &rows).unwrap();
    let csv = std::fs::read_to_string(a.config.out_dir.join("results.csv")).unwrap();
    assert!(csv.starts_with("variant,seed,eval_len,mode,loss,perplexity,accuracy,greedy,greedy_prefix,tokens,train_time_s,reason\n") && csv.lines().count() == 17);
    let json: Vec<Row> = serde_json::from_str(&std::fs::read_to_string(a.config.out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json, rows);
    let md = to_markdown(&a, &rows);
    assert!(md.contains("| learned |") && md.contains("n/a") && md.contains("| 8 | 16 |"), "{md}");

    // Resume: everything finished is skipped; a deleted cell is re-evaluated without training.
    let again = run_shard(&a, &dev, &quiet()).unwrap();
    assert_eq!((again.evaluated, again.skipped, again.trained.len()), (0, 4, 0));
    std::fs::remove_file(a.config.out_dir.join("cells/rope+yarn/seed-3.json")).unwrap();
    let again = run_shard(&a, &dev, &quiet()).unwrap();
    assert_eq!((again.evaluated, again.skipped, again.trained.len()), (1, 3, 0));
    assert_eq!(numbers(&collect(&a).unwrap()), numbers(&rows), "re-evaluation gives the same numbers");

    // Other settings into the same out_dir are refused, not mixed.
    let mut other = a.clone();
    other.config.eval_lengths = vec![1, 3];
    assert!(run_shard(&other, &dev, &quiet()).unwrap_err().to_string().contains("other settings"));

    // An interrupted training resumes from its checkpoint and ends with the same numbers.
    let b = ablation(&dir, "interrupted");
    let cut = run_shard(&b, &dev, &AblateOptions { stop_at: Some(2), ..quiet() }).unwrap();
    assert!(cut.interrupted && cut.evaluated == 0);
    assert!(collect(&b).unwrap_err().to_string().contains("not finished"));
    let rest = run_shard(&b, &dev, &quiet()).unwrap();
    assert_eq!((rest.evaluated, rest.interrupted), (4, false));
    assert_eq!(numbers(&collect(&b).unwrap()), numbers(&rows), "resumed = uninterrupted");

    // Two shards + collect = one full run.
    let c = ablation(&dir, "sharded");
    let s0 = run_shard(&c, &dev, &AblateOptions { shard: "0/2".parse().unwrap(), ..quiet() }).unwrap();
    assert!(collect(&c).is_err(), "half the cells are missing");
    let s1 = run_shard(&c, &dev, &AblateOptions { shard: "1/2".parse().unwrap(), ..quiet() }).unwrap();
    assert_eq!((s0.trained.len() + s1.trained.len(), s0.evaluated + s1.evaluated), (3, 4));
    assert_eq!(numbers(&collect(&c).unwrap()), numbers(&rows), "shards + collect = full run");
    assert_eq!(to_csv(&numbers(&collect(&c).unwrap())), to_csv(&numbers(&rows)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn variants_share_budget_data_order_and_initialization() {
    let _lock = rng_lock();
    let dir = temp_dir("abl-same");
    let a = ablation(&dir, "same");
    let dev = Device::flex();
    let trained: Vec<_> = a.config.variants.iter().filter(|v| v.trains()).collect();
    let configs: Vec<_> = trained.iter().map(|v| a.run_config(v, 3)).collect();
    let data = Dataset::load(&configs[0].data, None).unwrap();
    let first_batch = |c: &ember_train::Config| data.batch(&Batches::of(c, Stream::Train), 0, &dev).0.into_data();
    let token_table = |c: &ember_train::Config| {
        dev.seed(c.train.seed);
        let m = c.tiny_lm(data.tokenizer.vocab_size()).init(&dev).unwrap();
        let x = m.tok.forward(m.tok.ids_tensor(&[0, 1, 2], 1, 3).unwrap());
        let nope = PositionConfig::None {}.init(16, 2, &dev).unwrap();
        (x.clone().into_data(), m.blocks[0].forward(x, &nope, None, 0).unwrap().into_data())
    };
    let (tok0, block0) = token_table(&configs[0]);
    for c in &configs {
        let mut same = c.clone();
        same.position = configs[0].position.clone();
        same.run.out_dir = configs[0].run.out_dir.clone();
        assert_eq!(same, configs[0], "only the position scheme and the run directory differ");
        assert_eq!(c.train.steps, 4, "the ablation's step budget");
        assert_eq!(first_batch(c), first_batch(&configs[0]), "same data order");
        let (tok, block) = token_table(c);
        assert_eq!(tok, tok0, "{}: same token table", c.position.scheme());
        // The learned table is drawn between the token table and the blocks (nanoGPT's
        // order, kept so the main job reproduces its loss): only the schemes without
        // parameters share the block weights.
        if c.position.scheme() != "learned" {
            assert_eq!(block, block0, "{}: same block weights", c.position.scheme());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ablation_config_is_checked() {
    let dir = temp_dir("abl-config");
    let corpus = small_corpus(&dir, 3_000);
    let base = tiny_config(&corpus, &dir.join("unused"), "scheme = \"none\"", 4);
    let parse = |extra: &str| -> Result<Ablation, String> {
        let text = format!("base = \"b.toml\"\nout_dir = \"x\"\neval_lengths = [1, 2]\n{extra}");
        let c: AblationConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        Ablation::new(c, base.clone()).map_err(|e| e.to_string())
    };
    let ok = parse("[[variant]]\nlabel = \"rope\"\nposition = { scheme = \"rope\" }\n").unwrap();
    assert_eq!(ok.config.seeds, vec![0]);
    assert_eq!(ok.eval_tokens(), vec![8, 16]);
    for (bad, says) in [
        ("colour = 1\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "colour"),
        ("[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\", base = 3 }\n", "base"),
        ("[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"alibi\" }\n", "twice"),
        ("[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n[[variant]]\nlabel = \"b\"\neval_of = \"a\"\nrope_scaling = { kind = \"yarn\", factor = 2.0 }\n", "rope"),
        ("[[variant]]\nlabel = \"a/b\"\nposition = { scheme = \"none\" }\n", "directory"),
        ("[[variant]]\nlabel = \"a\"\n", "either"),
        ("[[variant]]\nlabel = \"a\"\nposition = { scheme = \"learned\", max_len = 4 }\n", "max_len"),
        ("seeds = []\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "`seeds`: the list is empty"),
        ("seeds = [1, 2, 1]\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "seed 1 is listed twice"),
        ("seeds = [-1]\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "seeds"),
        ("[[variant]]\nlabel = \"a\"\nposition = { scheme = \"rotary\" }\n", "unknown variant `rotary`"),
        ("[[variant]]\nlabel = \"a\"\npositon = { scheme = \"none\" }\n", "unknown field `positon`"),
        ("[eval]\nstride = 0.5\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "unknown field `stride`"),
        ("[eval]\nsliding_stride = 1.5\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "`eval.sliding_stride`: 1.5 is not in (0, 1]"),
        ("[eval]\nmax_tokens = 10\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "`eval.max_tokens`: 10 is shorter than the longest evaluation length (16 tokens)"),
        ("[[variant]]\nlabel = \"r\"\nposition = { scheme = \"rope\" }\n[[variant]]\nlabel = \"y\"\neval_of = \"r\"\nrope_scaling = { kind = \"ntk\", factor = 2.0 }\n", "unknown variant `ntk`"),
        ("[[variant]]\nlabel = \"r\"\nposition = { scheme = \"rope\" }\n[[variant]]\nlabel = \"y\"\neval_of = \"r\"\nrope_scaling = { kind = \"yarn\", factor = -2.0 }\n", "`variant.rope_scaling`: variant `y`"),
        ("[[variant]]\nlabel = \"r\"\nposition = { scheme = \"rope\" }\n[[variant]]\nlabel = \"y\"\neval_of = \"y\"\nrope_scaling = { kind = \"yarn\", factor = 2.0 }\n", "`variant.eval_of`: variant `y`"),
    ] {
        let err = parse(bad).err().unwrap_or_else(|| panic!("accepted: {bad}"));
        assert!(err.contains(says), "{bad}: {err}");
    }
    let mut c: AblationConfig = toml::from_str("base = \"b.toml\"\nout_dir = \"x\"\neval_lengths = []\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n").unwrap();
    assert!(Ablation::new(c.clone(), base.clone()).unwrap_err().to_string().contains("`eval_lengths`: []"));
    c.eval_lengths = vec![1];
    c.eval.task_examples = 0;
    assert!(Ablation::new(c, base.clone()).unwrap_err().to_string().contains("`eval.task_examples`"));
    // --compare names two different variants of the ablation.
    assert!(ok.check_compare("rope", "rope").unwrap_err().to_string().contains("two different variants"));
    let err = ok.check_compare("rope", "alibi").unwrap_err().to_string();
    assert!(err.contains("--compare") && err.contains("`alibi` is not a variant") && err.contains("variants are rope"), "{err}");
    assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
    assert!("4/4".parse::<Shard>().is_err() && "1".parse::<Shard>().is_err() && "0/0".parse::<Shard>().is_err());
    let jobs = grid::jobs(&ok);
    assert_eq!(jobs.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn task_ablation_scores_exact_match_and_marks_learned_na() {
    let _lock = rng_lock();
    let dir = temp_dir("abl-task");
    let base = ember_train::Config::from_toml(
        r#"
        [model]
        d_model = 16
        n_layers = 1
        n_heads = 2
        [data]
        task = { kind = "reverse", min_len = 1, max_len = 4, alphabet = 4, examples = 200, seed = 1 }
        context = 10
        [train]
        batch_size = 4
        steps = 3
        lr = 3e-3
        eval_interval = 3
        eval_batches = 2
        "#,
    )
    .unwrap();
    let data = Dataset::load(&base.data, None).unwrap();
    assert_eq!(data.tokenizer.vocab_size(), 4 + 10 + 4, "newline, pad, =, +, digits, 4 letters");
    assert_eq!(Dataset::load(&base.data, None).unwrap().train, data.train, "seeded text");
    let text = format!(
        "base = \"b.toml\"\nout_dir = \"{}\"\neval_lengths = [1, 2]\n[eval]\ntask_examples = 5\n\
         [[variant]]\nlabel = \"rope\"\nposition = {{ scheme = \"rope\" }}\n\
         [[variant]]\nlabel = \"learned\"\nposition = {{ scheme = \"learned\", max_len = 10 }}\n",
        dir.join("out").display()
    );
    let a = Ablation::new(toml::from_str::<AblationConfig>(&text).unwrap(), base).unwrap();
    assert_eq!(a.eval_tokens(), vec![4, 8], "multiples of the task's max_len");
    run_shard(&a, &Device::flex(), &quiet()).unwrap();
    let rows = collect(&a).unwrap();
    assert_eq!(rows.len(), 2 * 2);
    for r in &rows {
        assert_eq!(r.mode, "exact_match");
        // reverse at n = 8 takes 1 + 9 + 8 = 18 positions, past the 10-token training window
        // (n = 4 fills it exactly: the table must not be asked for an 11th position)
        let na = r.variant == "learned" && r.eval_len == 8;
        assert_eq!(r.accuracy.is_none(), na, "{r:?}");
        // attention diagnostics: one layer of two heads wherever the cell was evaluated
        match &r.attention {
            None => assert!(na, "{r:?}"),
            Some(layers) => {
                assert!(!na && layers.len() == 1 && layers[0].len() == 2, "{r:?}");
                // inputs are n + n + 1 tokens long (start, prompt, `=`, answer without its end)
                let t = 2 * r.eval_len + 1;
                assert!(layers[0].iter().all(|h| (0.0..=(t - 1) as f64).contains(&h.distance) && (0.0..=(t as f64).ln() + 1e-9).contains(&h.entropy)), "{r:?}");
            }
        }
        if !na {
            let acc = r.accuracy.unwrap();
            let greedy = r.greedy.expect("greedy exact match beside the teacher-forced one");
            // scored: each example's answer and its end `\n`
            assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&greedy) && r.loss.unwrap().is_finite() && r.tokens == Some(5 * (r.eval_len + 1)), "{r:?}");
        }
    }
    let md = to_markdown(&a, &rows);
    assert!(md.contains("exact-match accuracy (teacher-forced)") && md.contains("exact-match accuracy (greedy decoding)") && md.contains("n/a"), "{md}");
    assert!(md.contains("mean attention distance"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn results_report_t_intervals_and_paired_differences() {
    let dir = temp_dir("abl-stats");
    let mut a = ablation(&dir, "stats");
    a.config.seeds = vec![1, 2, 3];
    // Non-overlapping at 8: none 2.0, 2.2, 2.4; rope = none − (0.10, 0.11, 0.09); every other
    // value 3.0; learned n/a at 16.
    let none = [2.0, 2.2, 2.4];
    let rope = [1.90, 2.09, 2.31];
    let mut rows = Vec::new();
    for v in ["none", "learned", "rope", "rope+yarn"] {
        for (i, seed) in [1, 2, 3].into_iter().enumerate() {
            for len in [8, 16] {
                for mode in ["non_overlapping", "sliding"] {
                    let at8 = len == 8 && mode == "non_overlapping";
                    let loss = match v {
                        "learned" if len == 16 => None,
                        "none" if at8 => Some(none[i]),
                        "rope" if at8 => Some(rope[i]),
                        _ => Some(3.0),
                    };
                    // (through JSON: the fields not named here, all optional, are absent)
                    let row = serde_json::json!({ "variant": v, "seed": seed, "eval_len": len, "mode": mode, "loss": loss, "tokens": 120, "train_time_s": 1.0 });
                    rows.push(serde_json::from_value::<Row>(row).unwrap());
                }
            }
        }
    }
    // none: ± 4.3026527 · 0.2 / √3 = 0.4968; rope − none per seed −0.10, −0.11, −0.09:
    // ± 4.3026527 · 0.01 / √3 = 0.0248, an interval that leaves out 0, though rope's own
    // interval (± 0.5097) overlaps none's.
    let md = to_markdown(&a, &rows);
    assert!(md.contains("95 % confidence interval over the 3 seeds (Student t, 2 degrees of freedom)"), "{md}");
    assert!(md.contains("| none | 2.2000 ± 0.4968 | 3.0000 ± 0.0000 |"), "{md}");
    assert!(md.contains("| rope | 2.1000 ± 0.5097 |"), "{md}");
    assert!(md.contains("| learned | 3.0000 ± 0.0000 | n/a |"), "{md}");
    assert!(md.contains("paired difference from none") && md.contains("| rope − none | -0.1000 ± 0.0248 * | +0.0000 ± 0.0000 |"), "{md}");
    assert!(md.contains("| learned − none | +0.8000 ± 0.4968 * | n/a |"), "{md}");
    let d = &paired(&a, &rows, "non_overlapping", false, "rope", "none")[0];
    assert_eq!(d.0, 8);
    let d = d.1.unwrap();
    assert!((d.mean + 0.1).abs() < 1e-12 && (d.half_width.unwrap() - 0.024_841).abs() < 1e-6, "{d:?}");
    let cmp = paired_markdown(&a, &rows, "rope", "none");
    assert!(cmp.contains("# Paired difference: rope − none") && cmp.contains("| rope − none | -0.1000 ± 0.0248 * |"), "{cmp}");
    assert_eq!(cmp.matches("## ").count(), 2, "one table per mode: {cmp}");

    // One seed: means only, and the text says why there is no interval.
    a.config.seeds = vec![1];
    let one: Vec<Row> = rows.iter().filter(|r| r.seed == 1).cloned().collect();
    let md = to_markdown(&a, &one);
    assert!(md.contains("one seed, so no confidence interval") && md.contains("| none | 2.0000 | 3.0000 |") && md.contains("| rope − none | -0.1000 | +0.0000 |"), "{md}");
    assert!(!md.contains('±'), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn interrupted_multi_seed_ablation_resumes_without_redoing_finished_cells() {
    let _lock = rng_lock();
    let dir = temp_dir("abl-seeds");
    let dev = Device::flex();
    // Jobs: none/1, none/2, learned/1, learned/2, rope/1, rope/2; shard 0/2 = every seed-1 job.
    let a = ablation_seeds(&dir, "resumed", "[1, 2]");
    let first = run_shard(&a, &dev, &AblateOptions { shard: "0/2".parse().unwrap(), ..quiet() }).unwrap();
    assert_eq!((first.evaluated, first.trained.len()), (4, 3));
    let cell = |v: &str, s: u64| a.config.out_dir.join(format!("cells/{v}/seed-{s}.json"));
    let checkpoint = |v: &str, s: u64| a.run_dir(v, s).join("checkpoint.bin");
    let finished: Vec<_> = ["none", "learned", "rope", "rope+yarn"].iter().map(|v| (cell(v, 1), mtime(&cell(v, 1)))).collect();
    let trained: Vec<_> = ["none", "learned", "rope"].iter().map(|v| (checkpoint(v, 1), mtime(&checkpoint(v, 1)))).collect();
    // Ctrl-C already pressed: nothing more is trained or evaluated.
    let stop = Some(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)));
    let none = run_shard(&a, &dev, &AblateOptions { stop, ..quiet() }).unwrap();
    assert_eq!((none.evaluated, none.trained.len(), none.interrupted), (0, 0, true));
    // The whole grid, interrupted in its first unfinished training (none, seed 2).
    let cut = run_shard(&a, &dev, &AblateOptions { stop_at: Some(2), ..quiet() }).unwrap();
    assert_eq!((cut.skipped, cut.evaluated, cut.interrupted), (1, 0, true), "none/1 skipped, then none/2 stopped");
    assert_eq!(cut.trained, vec!["none/seed-2"]);
    // Resume: the seed-1 cells and runs are reused as they are; only seed 2 is trained.
    let rest = run_shard(&a, &dev, &quiet()).unwrap();
    assert_eq!((rest.skipped, rest.evaluated, rest.interrupted), (4, 4, false));
    assert_eq!(rest.trained, vec!["none/seed-2", "learned/seed-2", "rope/seed-2"]);
    for (path, before) in finished.iter().chain(&trained) {
        assert_eq!(mtime(path), *before, "{} was rewritten", path.display());
    }
    // Same numbers as one uninterrupted run.
    let fresh = ablation_seeds(&dir, "fresh", "[1, 2]");
    run_shard(&fresh, &dev, &quiet()).unwrap();
    assert_eq!(numbers(&collect(&a).unwrap()), numbers(&collect(&fresh).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}
