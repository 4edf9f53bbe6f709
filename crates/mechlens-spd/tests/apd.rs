//! APD's attributions and top-k against closed forms, its training on a matrix that is a sum
//! of rank-one pieces, tied layers, saving, and its refusals of bad settings, names and
//! losses, each with the reason.

use mechlens_core::{Error, Result};
use mechlens_spd::{Apd, ApdConfig, Decomposable, LinearFn};
use tch::{Device, Kind, Tensor};

mod common;
use common::{five_pieces, sparse_batch};

/// `y = ReLU(x · W · Wᵀ)`: a tied pair, as the toy model of superposition without its bias.
struct TiedPair {
    w: Tensor,
}

impl Decomposable for TiedPair {
    fn linears(&self) -> Vec<(String, Tensor)> {
        vec![
            ("up".into(), self.w.shallow_clone()),
            ("down".into(), self.w.tr()),
        ]
    }
    fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor> {
        let h = linear("up", x)?;
        Ok(linear("down", &h)?.f_relu()?)
    }
}

fn small(steps: usize) -> ApdConfig {
    ApdConfig {
        batch_size: 512,
        steps,
        log_every: 50,
        ..ApdConfig::default()
    }
}

#[test]
fn attributions_are_the_squared_effects_of_each_component_on_each_output() {
    let _rng = common::rng_lock();
    // One linear map: ∂y_o/∂h = e_o, so component c's attribution is ‖x · P_c‖².
    let (model, _) = five_pieces();
    let apd = Apd::new(&model, &["map"], small(1)).unwrap();
    let x = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
    let p = apd.component_weights("map").unwrap(); // [C, 5, 4]
    let want = x
        .unsqueeze(0)
        .matmul(&p)
        .square()
        .sum_dim_intlist(2, false, Kind::Float)
        .tr(); // [7, C]
    let got = apd.attributions(&model, &x).unwrap();
    assert!(got.allclose(&want, 1e-4, 1e-5, false), "{got} vs {want}");

    // Two maps and a ReLU: y = ReLU(x P₁ W₂ + x W₁ P₂ ...) to first order, with the
    // target's own weights everywhere else: for output o with a positive pre-activation,
    // the effect of c is (x P_c,up Wᵀ)_o + (x W P_c,down)_o.
    tch::manual_seed(3);
    let pair = TiedPair {
        w: Tensor::randn([5, 3], (Kind::Float, Device::Cpu)),
    };
    let apd = Apd::new(&pair, &["up", "down"], small(1)).unwrap();
    let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
    let (up, down) = (
        apd.component_weights("up").unwrap(),
        apd.component_weights("down").unwrap(),
    );
    let h = x.matmul(&pair.w);
    let pre = h.matmul(&pair.w.tr());
    let through_up = x.unsqueeze(0).matmul(&up).matmul(&pair.w.tr()); // [C, 6, 5]
    let through_down = h.unsqueeze(0).matmul(&down);
    let open = pre.gt(0.0).to_kind(Kind::Float).unsqueeze(0);
    let want = ((through_up + through_down) * open)
        .square()
        .sum_dim_intlist(2, false, Kind::Float)
        .tr();
    let got = apd.attributions(&pair, &x).unwrap();
    assert!(got.allclose(&want, 1e-4, 1e-5, false), "{got} vs {want}");
}

#[test]
fn batch_top_k_keeps_the_largest_attributions_of_the_whole_batch() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let apd = Apd::new(
        &model,
        &["map"],
        ApdConfig {
            top_k: 0.5,
            ..small(1)
        },
    )
    .unwrap();
    let x = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
    let mask = apd.top_k_mask(&model, &x).unwrap();
    assert_eq!(mask.size(), [8, 5]);
    // floor(0.5 · 8) = 4 kept over the whole batch, and they are the 4 largest.
    assert_eq!(mask.sum(Kind::Float).double_value(&[]), 4.0);
    let attr = apd.attributions(&model, &x).unwrap();
    let kept_min = attr.masked_select(&mask.gt(0.5)).min().double_value(&[]);
    let dropped_max = attr.masked_select(&mask.lt(0.5)).max().double_value(&[]);
    assert!(kept_min >= dropped_max, "{kept_min} < {dropped_max}");
    // All components kept: the decomposed map; none: zero.
    let ones = Tensor::ones([8, 5], (Kind::Float, Device::Cpu));
    let all = apd.run_masked(&model, &x, &ones).unwrap();
    let sum = x.matmul(&apd.component_weights("map").unwrap().sum_dim_intlist(
        0,
        false,
        Kind::Float,
    ));
    assert!(all.allclose(&sum, 1e-5, 1e-5, false));
    let none = apd.run_masked(&model, &x, &ones.zeros_like()).unwrap();
    assert_eq!(none.abs().max().double_value(&[]), 0.0);
}

#[test]
fn training_recovers_a_matrix_made_of_five_rank_one_pieces() {
    let _rng = common::rng_lock();
    // One feature per component: the paper's TMS settings on a single 5 → 4 map, rank 1,
    // one component kept per active feature. APD does not align them perfectly: its top-k
    // and Schatten penalty leave each component a little of the others' rows (measured MMCS
    // 0.979 at 1,500 steps and the same at 4,000).
    let (model, pieces) = five_pieces();
    let cfg = ApdConfig {
        rank: Some(1),
        top_k: 0.25,
        batch_size: 1024,
        steps: 1500,
        log_every: 100,
        ..ApdConfig::default()
    };
    let mut apd = Apd::new(&model, &["map"], cfg).unwrap();
    tch::manual_seed(5);
    apd.train(&model, &mut |_| Ok(sparse_batch(1024))).unwrap();
    let scores = apd.scores_against("map", &pieces).unwrap();
    assert!(scores.mmcs > 0.95, "MMCS {}", scores.mmcs);
    let log = apd.log_frame().unwrap();
    assert_eq!(log.height(), 1500 / 100 + 1);
    let param_match = log.column("param_match").unwrap().f64().unwrap();
    let last = param_match.get(param_match.len() - 1).unwrap();
    assert!(last < 1e-3, "faithfulness {last}");
    // Training again past the end is a no-op.
    apd.train(&model, &mut |_| panic!("no batch should be drawn"))
        .unwrap();
}

#[test]
fn a_tied_layer_is_its_source_transposed_and_trains_through_it() {
    let _rng = common::rng_lock();
    tch::manual_seed(3);
    let pair = TiedPair {
        w: Tensor::randn([5, 3], (Kind::Float, Device::Cpu)),
    };
    let cfg = ApdConfig {
        tied_transposed: vec![("down".into(), "up".into())],
        ..small(5)
    };
    let mut apd = Apd::new(&pair, &["up", "down"], cfg.clone()).unwrap();
    // One layer's factors only.
    assert_eq!(apd.parameters().len(), 2);
    let check = |apd: &Apd| {
        let up = apd.component_weights("up").unwrap();
        let down = apd.component_weights("down").unwrap();
        assert!(down.allclose(&up.transpose(1, 2), 1e-6, 1e-6, false));
    };
    check(&apd);
    apd.train(&pair, &mut |_| Ok(sparse_batch(128))).unwrap();
    check(&apd);

    let err = |c: ApdConfig| {
        Apd::new(&pair, &["up", "down"], c)
            .err()
            .unwrap()
            .to_string()
    };
    let tie = |a: &str, b: &str| ApdConfig {
        tied_transposed: vec![(a.into(), b.into())],
        ..small(1)
    };
    let e = err(tie("down", "mlp"));
    assert!(
        e.contains("\"mlp\"") && e.contains("decomposed layers"),
        "{e}"
    );
    let e = err(tie("up", "up"));
    assert!(e.contains("tied once"), "{e}");
    // A map tied to one that is not its transpose in shape.
    let (model, _) = five_pieces();
    struct Two(Tensor, Tensor);
    impl Decomposable for Two {
        fn linears(&self) -> Vec<(String, Tensor)> {
            vec![
                ("a".into(), self.0.shallow_clone()),
                ("b".into(), self.1.shallow_clone()),
            ]
        }
        fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor> {
            let h = linear("a", x)?;
            linear("b", &h)
        }
    }
    let two = Two(
        model.w.shallow_clone(),
        Tensor::zeros([4, 4], (Kind::Float, Device::Cpu)),
    );
    let e = Apd::new(
        &two,
        &["a", "b"],
        ApdConfig {
            tied_transposed: vec![("b".into(), "a".into())],
            ..small(1)
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("[4, 4]") && e.contains("transposed is [4, 5]"),
        "{e}"
    );
}

#[test]
fn unknown_layers_and_bad_settings_are_refused_with_the_reason() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let err = |r: Result<Apd>| r.err().expect("should be refused").to_string();
    let e = err(Apd::new(&model, &["mlp"], small(1)));
    assert!(e.contains("\"mlp\"") && e.contains("[\"map\"]"), "{e}");
    let e = err(Apd::new(&model, &["map"], ApdConfig { c: 0, ..small(1) }));
    assert!(e.contains("C") && e.contains("got 0"), "{e}");
    let e = err(Apd::new(
        &model,
        &["map"],
        ApdConfig {
            schatten_p: 0.0,
            ..small(1)
        },
    ));
    assert!(e.contains("p must be positive"), "{e}");
    let e = err(Apd::new(
        &model,
        &["map"],
        ApdConfig {
            top_k: 6.0,
            ..small(1)
        },
    ));
    assert!(e.contains("top_k") && e.contains("C = 5"), "{e}");
    let e = err(Apd::new(
        &model,
        &["map"],
        ApdConfig {
            rank: Some(0),
            ..small(1)
        },
    ));
    assert!(e.contains("rank"), "{e}");
    let apd = Apd::new(&model, &["map"], small(1)).unwrap();
    let e = apd.scores_against(
        "other",
        &Tensor::zeros([1, 5, 4], (Kind::Float, Device::Cpu)),
    );
    assert!(e.unwrap_err().to_string().contains("not decomposed"));
    let x = sparse_batch(4);
    let e = apd
        .run_masked(
            &model,
            &x,
            &Tensor::ones([4, 3], (Kind::Float, Device::Cpu)),
        )
        .unwrap_err();
    assert!(e.to_string().contains("[batch, C] = [4, 5]"), "{e}");
}

#[test]
fn a_loss_that_stops_being_finite_names_the_step_and_keeps_the_weights() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let mut apd = Apd::new(&model, &["map"], small(20)).unwrap();
    let e = apd
        .train(&model, &mut |step| {
            let x = sparse_batch(64);
            Ok(if step == 3 { x * f64::NAN } else { x })
        })
        .unwrap_err();
    assert!(matches!(e, Error::Training { step: 3, .. }), "{e}");
    assert_eq!(apd.step(), 3);
    let after_three: Vec<Tensor> = apd.parameters().iter().map(Tensor::copy).collect();
    assert!(
        apd.train(&model, &mut |_| Ok(sparse_batch(64) * f64::NAN))
            .is_err()
    );
    for (a, b) in apd.parameters().iter().zip(&after_three) {
        assert!(a.equal(b));
    }
}

#[test]
fn a_saved_decomposition_loads_into_a_fresh_one_and_a_mismatched_one_is_refused() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let mut apd = Apd::new(&model, &["map"], small(10)).unwrap();
    apd.train(&model, &mut |_| Ok(sparse_batch(256))).unwrap();
    let dir = std::env::temp_dir().join(format!("mechlens-apd-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("apd.safetensors");
    apd.save(&path).unwrap();
    let mut fresh = Apd::new(
        &model,
        &["map"],
        ApdConfig {
            seed: 4,
            ..small(10)
        },
    )
    .unwrap();
    fresh.load_parameters(&path).unwrap();
    assert_eq!(fresh.step(), 10);
    for (a, b) in fresh.parameters().iter().zip(apd.parameters()) {
        assert!(a.equal(&b));
    }
    let mut other = Apd::new(
        &model,
        &["map"],
        ApdConfig {
            rank: Some(2),
            ..small(10)
        },
    )
    .unwrap();
    let before = other.parameters()[0].copy();
    let e = other.load_parameters(&path).unwrap_err().to_string();
    assert!(
        e.contains("`map.A` is [5, 5, 5]") && e.contains("[5, 5, 2] here"),
        "{e}"
    );
    assert!(other.parameters()[0].equal(&before));
    assert_eq!(other.step(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
