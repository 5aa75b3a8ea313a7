//! Ablations on a tiny budget: eval-time RoPE scaling, the learned-table refusal, outputs,
//! resume, n/a cells, identical budgets and data order, shard + collect.

mod common;

use std::path::Path;

use burn::tensor::Device;
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_position::PositionConfig;
use ember_train::ablate::results::{collect, to_csv, to_markdown, write_outputs};
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
    let corpus = small_corpus(dir, 6_000);
    let base = tiny_config(&corpus, &dir.join("unused"), "scheme = \"none\"", 6);
    let text = format!(
        r#"
        base = "unused.toml"
        out_dir = "{out}"
        seeds = [3]
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
    assert!(csv.starts_with("variant,seed,eval_len,mode,loss,perplexity,accuracy,tokens,train_time_s,reason\n") && csv.lines().count() == 17);
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
        (x.clone().into_data(), m.blocks[0].forward(x, &nope, None, 0).into_data())
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
        ("seeds = []\n[[variant]]\nlabel = \"a\"\nposition = { scheme = \"none\" }\n", "seed"),
    ] {
        let err = parse(bad).err().unwrap_or_else(|| panic!("accepted: {bad}"));
        assert!(err.contains(says), "{bad}: {err}");
    }
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
        context = 12
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
    assert_eq!(data.tokenizer.vocab_size(), 3 + 10 + 4, "newline, =, +, digits, 4 letters");
    assert_eq!(Dataset::load(&base.data, None).unwrap().train, data.train, "seeded text");
    let text = format!(
        "base = \"b.toml\"\nout_dir = \"{}\"\neval_lengths = [1, 2]\n[eval]\ntask_examples = 5\n\
         [[variant]]\nlabel = \"rope\"\nposition = {{ scheme = \"rope\" }}\n\
         [[variant]]\nlabel = \"learned\"\nposition = {{ scheme = \"learned\", max_len = 12 }}\n",
        dir.join("out").display()
    );
    let a = Ablation::new(toml::from_str::<AblationConfig>(&text).unwrap(), base).unwrap();
    assert_eq!(a.eval_tokens(), vec![4, 8], "multiples of the task's max_len");
    run_shard(&a, &Device::flex(), &quiet()).unwrap();
    let rows = collect(&a).unwrap();
    assert_eq!(rows.len(), 2 * 2);
    for r in &rows {
        assert_eq!(r.mode, "exact_match");
        // reverse at n = 8 is 1 + 9 + 8 = 18 tokens, past the 12-token training window
        let na = r.variant == "learned" && r.eval_len == 8;
        assert_eq!(r.accuracy.is_none(), na, "{r:?}");
        if !na {
            let acc = r.accuracy.unwrap();
            assert!((0.0..=1.0).contains(&acc) && r.loss.unwrap().is_finite() && r.tokens == Some(5 * r.eval_len), "{r:?}");
        }
    }
    let md = to_markdown(&a, &rows);
    assert!(md.contains("exact-match accuracy") && md.contains("n/a"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}
