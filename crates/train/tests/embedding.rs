//! Contextual hidden states and quantized tables on a (randomly initialised) tiny model.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{rng_lock, small_corpus, temp_dir, tiny_config};
use ember_embed::quantize::Scheme;
use ember_testing::{assert_close, flex_and_wgpu, max_abs_diff};
use ember_train::dataset::{Dataset, Split};
use ember_train::embedding::context::{context_spread, contextual_state, corpus_states};
use ember_train::embedding::probe::{compare_contexts, contextual_neighbors, ProbeRequest};
use ember_train::embedding::quantized::quantize_run;
use ember_train::run::{LoadedRun, RunDir};
use ember_train::tokenizer::Tokenizer;
use ember_embed::neighbors::Metric;

/// A 2-layer model (learned positions, 16 rows; `untied` head optional) on a small corpus.
fn run(name: &str, device: &Device, untied: bool) -> (LoadedRun, Dataset) {
    let dir = temp_dir(name);
    let corpus = small_corpus(&dir, 4000);
    let mut config = tiny_config(&corpus, &dir.join("run"), "scheme = \"learned\"\nmax_len = 16", 1);
    config.model.n_layers = 2;
    config.model.tie_embeddings = !untied;
    let tokenizer = Tokenizer::char_level(&std::fs::read_to_string(&corpus).unwrap());
    let data = Dataset::load(&config.data, Some(tokenizer.clone())).unwrap();
    let model = {
        let _g = rng_lock();
        device.seed(3);
        config.tiny_lm(tokenizer.vocab_size()).init(device).unwrap()
    };
    (LoadedRun { dir: RunDir::new(dir.join("run")), config, tokenizer, model, step: 0 }, data)
}

fn ids(tok: &Tokenizer, text: &str, device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = tok.encode(text).unwrap().iter().map(|&i| i as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), device)
}

fn at(h: Tensor<3>, p: usize) -> Tensor<1> {
    let d = h.dims()[2];
    h.slice([0..1, p..p + 1, 0..d]).reshape([d])
}

#[test]
fn contextual_state_is_the_models_forward_at_that_layer() {
    let text = "First Citizen:\nB"; // 16 tokens: the learned table's length
    for td in flex_and_wgpu() {
        let (r, _) = run("ctx-forward", &td.device, false);
        let m = &r.model;
        let x = ids(&r.tokenizer, text, &td.device);
        // layer 0: s·E[id] + P[pos], built by hand from the table and the position module
        let l0 = m.pos.add_to_embeddings(m.lookup(x.clone()), 0).unwrap();
        // layer 1: block 0 applied by hand
        let l1 = m.blocks[0].forward(l0.clone(), &m.pos, None, 0).unwrap();
        // last: logits through the head equal the model's own forward
        let logits = m.forward(x.clone(), 0).unwrap();
        for p in [0usize, 5, 13] {
            let s0 = contextual_state(m, &r.tokenizer, text, p as i64, 0, &td.device).unwrap();
            assert_eq!(s0.token, text.chars().nth(p).unwrap().to_string());
            assert_close(&s0.state, &at(l0.clone(), p), 1e-5, 1e-5, &format!("{} layer 0 pos {p}", td.name));
            let s1 = contextual_state(m, &r.tokenizer, text, p as i64, 1, &td.device).unwrap();
            assert_close(&s1.state, &at(l1.clone(), p), 1e-4, 1e-4, &format!("{} layer 1 pos {p}", td.name));
            let s2 = contextual_state(m, &r.tokenizer, text, p as i64, 2, &td.device).unwrap();
            let d = s2.state.dims()[0];
            let head = m.head.logits(s2.state.clone().reshape([1, 1, d]), &m.tok);
            assert_close(&at(head, 0), &at(logits.clone(), p), 1e-4, 1e-4, &format!("{} last layer pos {p}", td.name));
            assert_close(&s2.state, &at(m.hidden_at_layer(x.clone(), 2, 0).unwrap(), p), 1e-5, 1e-5, "hidden_at_layer");
        }
    }
}

#[test]
fn a_tokens_contextual_states_differ_across_contexts_its_static_row_does_not() {
    let device = Device::flex();
    let (r, data) = run("ctx-differ", &device, false);
    let m = &r.model;
    // `e` at position 4 of two texts with different histories
    let (a, b) = ("The e", "all e");
    let e = r.tokenizer.encode("e").unwrap()[0];
    let (sa0, sb0) = (contextual_state(m, &r.tokenizer, a, 4, 0, &device).unwrap(), contextual_state(m, &r.tokenizer, b, 4, 0, &device).unwrap());
    assert_eq!((sa0.token_id, sb0.token_id), (e, e));
    assert!(max_abs_diff(&sa0.state, &sb0.state) < 1e-7, "layer 0 has no context: same row, same position");
    let (sa, sb) = (contextual_state(m, &r.tokenizer, a, 4, 2, &device).unwrap(), contextual_state(m, &r.tokenizer, b, 4, 2, &device).unwrap());
    assert!(max_abs_diff(&sa.state, &sb.state) > 1e-3, "after the blocks the histories differ");
    // the static row is read from the table whatever the text
    let row = |text: &str| at(m.lookup(ids(&r.tokenizer, text, &device)), 4);
    assert_eq!(row(a).into_data(), row(b).into_data());
    // across corpus contexts: all states at layer 0 coincide (cosine 1), later ones spread
    let ids = data.ids(Split::Train);
    let l0 = context_spread(m, ids, e, 0, 8, 8, 1, &device).unwrap();
    let l2 = context_spread(m, ids, e, 2, 8, 8, 1, &device).unwrap();
    assert_eq!(l0.positions, l2.positions, "same seed, same occurrences");
    assert_eq!(l0.states.dims(), [8, 16]);
    assert!((l0.mean_pairwise_cosine.unwrap() - 1.0).abs() < 1e-5, "{:?}", l0.mean_pairwise_cosine);
    assert!(l2.mean_pairwise_cosine.unwrap() < 0.9999, "{:?}", l2.mean_pairwise_cosine);
    assert!(l0.positions.iter().all(|&p| ids[p] == e && p >= 7));
    let report = compare_contexts(&r, &data, e, None, 8, 1, &device).unwrap();
    assert_eq!(report.layers.len(), 3);
    assert_eq!(report.contexts.len(), 8);
    assert!(report.contexts.iter().all(|c| c.contains("[e]")), "{:?}", report.contexts);
}

#[test]
fn corpus_sample_and_neighbours() {
    let device = Device::flex();
    let (r, data) = run("ctx-sample", &device, false);
    let s = corpus_states(&r.model, data.ids(Split::Train), 1, 20, 8, 9, &device).unwrap();
    assert_eq!((s.states.dims(), s.positions.len()), ([20, 16], 20));
    assert_eq!(s.positions, corpus_states(&r.model, data.ids(Split::Train), 1, 20, 8, 9, &device).unwrap().positions, "seeded");
    // The query text is the first sampled window (positions[0] is its offset 0): the state at
    // its offset 5 is in the sample, at distance 0.
    let p = s.positions[0];
    let text = r.tokenizer.decode(&data.ids(Split::Train)[p..p + 8]).unwrap();
    let req = ProbeRequest { text, at: 5, layer: Some(1), metric: Metric::Euclidean, k: 3, sample: 20, seed: 9 };
    let rep = contextual_neighbors(&r, &data, &req, &device).unwrap();
    assert_eq!((rep.layer, rep.position, rep.sample), (1, 5, 20));
    assert_eq!(rep.table.neighbors.len(), 3);
    assert_eq!(rep.corpus_neighbors[0].position, p + 5);
    assert!(rep.corpus_neighbors[0].score < 1e-3, "{:?}", rep.corpus_neighbors[0]);
    assert!(rep.corpus_neighbors[1].score > rep.corpus_neighbors[0].score);
    let json = serde_json::to_value(&rep).unwrap();
    for k in ["query", "metric", "neighbors", "layer", "position", "context", "corpus_neighbors"] {
        assert!(json.get(k).is_some(), "{k} in {json}");
    }
}

#[test]
fn bad_probe_input_is_a_clear_error() {
    let device = Device::flex();
    let (r, data) = run("ctx-bad", &device, false);
    let (m, t) = (&r.model, &r.tokenizer);
    let err = |e: ember_train::TrainError| e.to_string();
    let e = err(contextual_state(m, t, "hello", 5, 0, &device).unwrap_err());
    assert!(e.contains("position 5 is past the text: it has 5 tokens, so use 0..=4"), "{e}");
    assert!(err(contextual_state(m, t, "hello", -1, 0, &device).unwrap_err()).contains("position -1"));
    let e = err(contextual_state(m, t, "hello", 0, 3, &device).unwrap_err());
    assert!(e.contains("3 is out of range: the model has 2 layers; use 0..=2"), "{e}");
    assert!(err(contextual_state(m, t, "hello", 0, -1, &device).unwrap_err()).contains("out of range"));
    assert!(err(contextual_state(m, t, "", 0, 0, &device).unwrap_err()).contains("empty"));
    let e = err(contextual_state(m, t, &"a".repeat(17), 0, 0, &device).unwrap_err());
    assert!(e.contains("17 tokens") && e.contains("covers only 16"), "{e}");
    let req = ProbeRequest { text: "hi".into(), at: 0, layer: None, metric: Metric::Cosine, k: 3, sample: 0, seed: 0 };
    assert!(err(contextual_neighbors(&r, &data, &req, &device).unwrap_err()).contains("--sample"));
    assert!(err(compare_contexts(&r, &data, 0, None, 1, 0, &device).unwrap_err()).contains("at least 2"));
}

#[test]
fn quantized_table_swapped_into_the_model() {
    let device = Device::flex();
    for untied in [false, true] {
        let (mut r, data) = run("quant", &device, untied);
        // Make the table exactly representable at 8 bits rowwise: codes in [−127, 127] times a
        // power of two, each row holding ±127.
        let [v, d] = r.model.tok.weight.val().dims();
        let vals: Vec<f32> = (0..v * d).map(|j| if j % d == 0 { 127.0 / 512.0 } else { ((j * 37 % 255) as f32 - 127.0) / 512.0 }).collect();
        r.model.tok.weight = Param::from_tensor(Tensor::from_data(TensorData::new(vals, [v, d]), &device));
        let (rep, w) = quantize_run(&r, &data, 8, Scheme::Rowwise, Some(200), &device).unwrap();
        assert_eq!(w.head.is_some(), untied);
        assert_eq!(rep.recall_at_10, 1.0);
        if !untied {
            assert_eq!(rep.max_abs_err, 0.0);
            assert_eq!(rep.val_loss_quantized, rep.val_loss_fp32, "an exact table changes nothing");
            assert_eq!(rep.bytes_before, 4 * v * d);
            assert_eq!(rep.bytes_after, v * d + 4 * v);
        } else {
            assert!(rep.max_abs_err > 0.0, "the random head is not exactly representable");
            assert!(rep.val_loss_quantized != rep.val_loss_fp32, "the quantized head is used");
            assert_eq!(rep.bytes_before, 2 * 4 * v * d);
        }
        let fp32 = ember_train::eval::evaluate_split(&r.model, data.ids(Split::Val), Split::Val, 8, 8, Some(200), &device).unwrap().loss;
        assert_eq!(rep.val_loss_fp32, Some(fp32));
        let (rep4, _) = quantize_run(&r, &data, 4, Scheme::Groupwise(4), Some(200), &device).unwrap();
        assert_eq!((rep4.bits, rep4.scheme.as_str()), (4, "groupwise-4"));
        assert!(rep4.max_abs_err > 0.0 && rep4.val_loss_quantized != rep4.val_loss_fp32);
        assert!(quantize_run(&r, &data, 8, Scheme::Groupwise(5), Some(10), &device).unwrap_err().to_string().contains("5 does not divide d = 16"));
    }
}
