//! Weight analyses against TransformerLens (its FactoredMatrix, QK/OV, composition scores and
//! an OV copying score built from its algebra, on the processed GPT-2 fixture), closed forms
//! (SVD from the factors = SVD of the product; a hand-built copying head scores ~1), the f64
//! LAPACK path against the tch path, and the bad inputs.

use std::collections::HashMap;

use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_tests::{assert_close, fixture, load};
use mechlens_weights::{
    Circuit, Circuits, Composition, FactoredMatrix, SvdComponent, SvdOptions, lapack,
    svd_interpretation,
};
use polars::prelude::{IntoLazy, col, lit};
use tch::{Kind, Tensor};

fn tl() -> HashMap<String, Tensor> {
    load(&format!(
        "{}/weights.safetensors",
        fixture("tl_gpt2", "dir")
    ))
}

fn processed_gpt2() -> HookedTransformer {
    HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::transformer_lens())
        .unwrap()
}

/// Eigenvalues as `[..., k, 2]` (real, imag) in the fixture's order: by real, then imaginary.
fn sorted_eigenvalues(eig: &Tensor) -> Tensor {
    let pairs = Tensor::stack(&[eig.real(), eig.imag()], -1).to_kind(Kind::Double);
    let key = pairs.select(-1, 0) * 1e6 + pairs.select(-1, 1);
    let order = key.argsort(-1, false).unsqueeze(-1).expand_as(&pairs);
    pairs.gather(-2, &order, false)
}

#[test]
fn qk_ov_svd_and_eigenvalues_equal_transformer_lens() {
    let model = processed_gpt2();
    let r = tl();
    let (qk, ov) = (model.qk().unwrap(), model.ov().unwrap());
    assert_eq!(qk.shape(), [2, 5, 30, 30]);
    assert_close("QK singular values", &qk.s().unwrap(), &r["qk_s"], 1e-4);
    assert_close("OV singular values", &ov.s().unwrap(), &r["ov_s"], 1e-4);
    assert_close("QK norm", &qk.norm().unwrap(), &r["qk_norm"], 1e-4);
    assert_close("OV norm", &ov.norm().unwrap(), &r["ov_norm"], 1e-4);
    let ov_eig = sorted_eigenvalues(&ov.eigenvalues().unwrap());
    assert_close("OV eigenvalues", &ov_eig, &r["ov_eig"], 1e-4);
    let qk_eig = sorted_eigenvalues(&qk.eigenvalues().unwrap());
    assert_close("QK eigenvalues", &qk_eig, &r["qk_eig"], 1e-4);
}

#[test]
fn composition_scores_equal_transformer_lens() {
    let model = processed_gpt2();
    let r = tl();
    for (kind, key) in [
        (Composition::Q, "comp_q"),
        (Composition::K, "comp_k"),
        (Composition::V, "comp_v"),
    ] {
        let ours = model.composition_scores(kind).unwrap();
        assert_close(&format!("{kind:?}-composition"), &ours, &r[key], 1e-4);
        // The table holds exactly the pairs with left_layer < right_layer: 5 × 5 here.
        let frame = model.composition_frame(kind).unwrap();
        assert_eq!(frame.height(), 25, "{kind:?}");
        let scores = frame.column("score").unwrap().f64().unwrap();
        let total: f64 = (0..scores.len()).filter_map(|i| scores.get(i)).sum();
        let expected = r[key].sum(Kind::Double).double_value(&[]);
        assert!((total - expected).abs() < 1e-4, "{total} vs {expected}");
    }
}

#[test]
fn copying_scores_equal_transformer_lens_algebra() {
    let model = processed_gpt2();
    let r = tl();
    let tokens: Vec<i64> = Vec::try_from(&r["copying_tokens"]).unwrap();
    let ours = model.copying_scores(&tokens).unwrap();
    assert_close("copying scores", &ours, &r["copying"], 1e-4);
}

#[test]
fn factored_matrix_operations_equal_transformer_lens() {
    let r = tl();
    let fm = FactoredMatrix::new(r["fm_a"].shallow_clone(), r["fm_b"].shallow_clone()).unwrap();
    assert_eq!(fm.shape(), [2, 3, 7, 7]);
    assert_close("S", &fm.s().unwrap(), &r["fm_s"], 1e-4);
    assert_close("norm", &fm.norm().unwrap(), &r["fm_norm"], 1e-4);
    let eig = sorted_eigenvalues(&fm.eigenvalues().unwrap());
    assert_close("eigenvalues", &eig, &r["fm_eig"], 1e-4);
    assert_close(
        "get_corner",
        &fm.get_corner(3).unwrap(),
        &r["fm_corner"],
        1e-5,
    );
    let even = fm.make_even().unwrap();
    assert_close("make_even AB", &even.ab().unwrap(), &r["fm_even_ab"], 1e-4);
    assert_close(
        "T AB",
        &fm.transpose().unwrap().ab().unwrap(),
        &r["fm_t_ab"],
        1e-5,
    );
    assert_close(
        "[1, 2] AB",
        &fm.index(&[1, 2]).unwrap().ab().unwrap(),
        &r["fm_index_ab"],
        1e-5,
    );
}

#[test]
fn svd_from_factors_equals_svd_of_the_product() {
    tch::manual_seed(11);
    let a = Tensor::randn([4, 9, 5], (Kind::Double, tch::Device::Cpu));
    let b = Tensor::randn([4, 5, 8], (Kind::Double, tch::Device::Cpu));
    let fm = FactoredMatrix::new(a, b).unwrap();
    let product = fm.ab().unwrap();
    let (_, s_full, _) = product.svd(true, true);
    assert_close("S", &fm.s().unwrap(), &s_full.narrow(-1, 0, 5), 1e-10);
    let (u, s, v) = fm.svd().unwrap();
    let rebuilt = (u * s.unsqueeze(-2)).matmul(&v.transpose(-2, -1));
    assert_close("U S Vᵀ", &rebuilt, &product, 1e-10);
    // Composition with a tensor and with another factored matrix keeps the product.
    let c = Tensor::randn([8, 3], (Kind::Double, tch::Device::Cpu));
    assert_close(
        "matmul",
        &fm.matmul(&c).unwrap().ab().unwrap(),
        &product.matmul(&c),
        1e-10,
    );
    let other = FactoredMatrix::new(
        Tensor::randn([8, 2], (Kind::Double, tch::Device::Cpu)),
        Tensor::randn([2, 6], (Kind::Double, tch::Device::Cpu)),
    )
    .unwrap();
    assert_close(
        "compose",
        &fm.compose(&other).unwrap().ab().unwrap(),
        &product.matmul(&other.ab().unwrap()),
        1e-10,
    );
    // collapse_l / collapse_r drop an orthogonal factor: same Frobenius norm.
    let norm = |t: &Tensor| {
        t.square()
            .sum_dim_intlist([-2i64, -1].as_slice(), false, None)
            .sqrt()
    };
    assert_close(
        "collapse_l",
        &norm(&fm.collapse_l().unwrap()),
        &fm.norm().unwrap(),
        1e-10,
    );
    assert_close(
        "collapse_r",
        &norm(&fm.collapse_r().unwrap()),
        &fm.norm().unwrap(),
        1e-10,
    );
}

#[test]
fn f64_lapack_path_equals_the_tch_path() {
    let model = processed_gpt2();
    for circuit in [Circuit::Qk, Circuit::Ov] {
        for (layer, head) in [(0, 0), (1, 4)] {
            let fm = model.head_circuit(circuit, layer, head).unwrap();
            let (_, s, _) = fm.svd_f64().unwrap();
            let tch_s: Vec<f64> = Vec::try_from(fm.s().unwrap().to_kind(Kind::Double)).unwrap();
            let scale = tch_s[0];
            for (x, y) in s.iter().zip(&tch_s) {
                assert!(
                    (x - y).abs() <= 1e-6 * scale,
                    "{circuit:?} {layer}.{head}: {x} vs {y}"
                );
            }
            let ours = lapack::eigenvalues(&lapack::to_array2(&fm.ba().unwrap()).unwrap()).unwrap();
            let f64_eig = Tensor::complex(
                &Tensor::from_slice(&ours.iter().map(|c| c.re).collect::<Vec<_>>()),
                &Tensor::from_slice(&ours.iter().map(|c| c.im).collect::<Vec<_>>()),
            );
            let d = (sorted_eigenvalues(&f64_eig) - sorted_eigenvalues(&fm.eigenvalues().unwrap()))
                .abs()
                .max()
                .double_value(&[]);
            assert!(d <= 1e-6 * scale, "{circuit:?} eigenvalues differ by {d}");
        }
    }
    // On an f64 matrix the two agree to rounding.
    tch::manual_seed(2);
    let m = Tensor::randn([20, 13], (Kind::Double, tch::Device::Cpu));
    let (_, s_tch, _) = m.svd(true, true);
    let s = lapack::singular_values(&lapack::to_array2(&m).unwrap()).unwrap();
    let s_tch: Vec<f64> = Vec::try_from(s_tch).unwrap();
    for (x, y) in s.iter().zip(&s_tch) {
        assert!((x - y).abs() <= 1e-12 * s_tch[0], "{x} vs {y}");
    }
}

#[test]
fn a_hand_built_copying_head_scores_one() {
    let model =
        HookedTransformer::from_pretrained(&fixture("copying", "model"), LoadOptions::default())
            .unwrap();
    let tokens = [0i64, 1, 2, 3];
    let scores = model.copying_scores(&tokens).unwrap();
    let copying = scores.double_value(&[1, 0]);
    assert!(
        copying > 0.9,
        "head 1.0 copies by construction, scored {copying}"
    );
    assert!((copying - 1.0).abs() < 1e-5, "{copying}");
    let others = scores.abs().sum(Kind::Double).double_value(&[]) - copying;
    assert!(
        others / 5.0 < 0.9,
        "random heads should not all copy: {scores}"
    );
}

#[test]
fn svd_interpretation_table_reads_directions_through_the_unembedding() {
    // Hand-built: W_U is the identity, so a direction's top token is its largest coordinate.
    let model =
        HookedTransformer::from_pretrained(&fixture("copying", "model"), LoadOptions::default())
            .unwrap();
    let opts = SvdOptions {
        directions: 2,
        k: 3,
        layers: Some(vec![1]),
        components: vec![SvdComponent::Ov],
    };
    let table = svd_interpretation(&model, &opts).unwrap();
    // 3 heads × 2 directions × (3 top + 3 bottom).
    assert_eq!(table.height(), 36);
    let (_, s, v) = model
        .head_circuit(Circuit::Ov, 1, 2)
        .unwrap()
        .svd()
        .unwrap();
    let direction = v.select(1, 0); // first right singular vector, [d_model] = logits here
    let top = direction.argmax(0, false).int64_value(&[]);
    let row = table
        .clone()
        .lazy()
        .filter(
            col("head")
                .eq(lit(2u32))
                .and(col("sv_index").eq(lit(0u32)))
                .and(col("rank").eq(lit(1i32))),
        )
        .collect()
        .unwrap();
    assert_eq!(row.height(), 1);
    assert_eq!(
        row.column("token_id").unwrap().i64().unwrap().get(0),
        Some(top)
    );
    let sv = row
        .column("singular_value")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert!((sv - s.double_value(&[0])).abs() < 1e-5);
}

fn err<T>(r: mechlens_core::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_are_refused() {
    let model = processed_gpt2();
    let e = err(model.head_circuit(Circuit::Ov, 2, 0));
    assert!(e.contains("layer") && e.contains("2 layers"), "{e}");
    let e = err(model.head_circuit(Circuit::Qk, 0, 5));
    assert!(e.contains("head") && e.contains("5 heads"), "{e}");
    let e = err(model.copying_scores(&[3, 97]));
    assert!(e.contains("97") && e.contains("0..97"), "{e}");
    let e = err(model.full_ov_circuit(&[]));
    assert!(e.contains("empty"), "{e}");
    let opts = SvdOptions {
        layers: Some(vec![7]),
        ..SvdOptions::default()
    };
    let e = err(svd_interpretation(&model, &opts));
    assert!(e.contains('7') && e.contains("2 layers"), "{e}");

    let a = Tensor::zeros([4, 3], (Kind::Float, tch::Device::Cpu));
    let e = err(FactoredMatrix::new(
        a.shallow_clone(),
        Tensor::zeros([2, 5], (Kind::Float, tch::Device::Cpu)),
    ));
    assert!(e.contains("inner dims"), "{e}");
    let e = err(FactoredMatrix::new(
        Tensor::zeros([2, 4, 3], (Kind::Float, tch::Device::Cpu)),
        Tensor::zeros([5, 3, 4], (Kind::Float, tch::Device::Cpu)),
    ));
    assert!(e.contains("broadcast"), "{e}");
    let fm =
        FactoredMatrix::new(a, Tensor::zeros([3, 6], (Kind::Float, tch::Device::Cpu))).unwrap();
    let e = err(fm.eigenvalues());
    assert!(e.contains("square"), "{e}");
    let e = err(fm.matmul(&Tensor::zeros([5, 2], (Kind::Float, tch::Device::Cpu))));
    assert!(e.contains("[..., 6, n]"), "{e}");
    let e = err(fm.index(&[0]));
    assert!(e.contains("leading dims"), "{e}");
    let batched = model.qk().unwrap();
    let e = err(batched.svd_f64());
    assert!(e.contains("index it first"), "{e}");
    let e = err(batched.index(&[0, 9]));
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn svd_interpretation_equals_transformer_lens_svd_interpreter() {
    // TL's SVDInterpreter gives each direction's projection on the whole vocabulary; our table
    // keeps the top and bottom k. A singular vector's sign is arbitrary, so a direction may
    // come out negated: its top k are then TL's bottom k, negated.
    let model =
        HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::default())
            .unwrap();
    let r = load(&format!(
        "{}/analyses.safetensors",
        fixture("tl_gpt2", "dir")
    ));
    let k = 5usize;
    for (component, layer, head, key) in [
        (SvdComponent::Ov, 1usize, Some(2u32), "svd_ov_1_2"),
        (SvdComponent::MlpIn, 1, None, "svd_w_in_1"),
        (SvdComponent::MlpOut, 0, None, "svd_w_out_0"),
    ] {
        let opts = SvdOptions {
            directions: 4,
            k,
            layers: Some(vec![layer]),
            components: vec![component],
        };
        let table = svd_interpretation(&model, &opts).unwrap();
        let reference = r[key].squeeze_dim(1); // [vocab, directions]
        for direction in 0..4u32 {
            let mut filter = col("sv_index")
                .eq(lit(direction))
                .and(col("rank").gt(lit(0i32)));
            if let Some(h) = head {
                filter = filter.and(col("head").eq(lit(h)));
            }
            let rows = table.clone().lazy().filter(filter).collect().unwrap();
            let ours: Vec<f64> = rows
                .column("score")
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect();
            let tl = reference
                .select(1, i64::from(direction))
                .to_kind(Kind::Double);
            let top: Vec<f64> = Vec::try_from(tl.topk(k as i64, 0, true, true).0).unwrap();
            let flipped: Vec<f64> = Vec::try_from(-tl.topk(k as i64, 0, false, true).0).unwrap();
            let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
            assert_eq!(ours.len(), k);
            assert!(
                close(&ours, &top) || close(&ours, &flipped),
                "{key} direction {direction}: ours {ours:?}, TL top {top:?} / negated bottom {flipped:?}"
            );
        }
    }
}
