//! Each check of E1 passes the library's answer and rejects each of its mutants with that
//! mutant's diagnosis; every kind of bad learner function gets its own message.

// A learner's unfinished body is `todo!()`: these tests are about what such a body gets.
#![allow(clippy::todo)]

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use super::{attention, embed, forward, loss, mlp, norm, rotary, sampling};
use crate::harness::{Case, Spec};
use crate::report::Outcome;

/// The reference passes; each mutant fails at some case with its own mistake named.
pub(crate) fn proves<C: Case>(spec: Spec<C>) {
    assert!(!spec.mutants.is_empty(), "{} has no mutants", spec.exercise);
    let report = spec.report(&*spec.reference).unwrap();
    assert!(
        report.passed(),
        "{}: the reference fails:\n{report}",
        spec.exercise
    );
    for mutant in &spec.mutants {
        let report = spec.report(&*mutant.run).unwrap();
        match &report.outcome {
            Outcome::Failed {
                likely_mistake: Some(named),
                ..
            } => assert_eq!(named, mutant.mistake, "{}:\n{report}", spec.exercise),
            _ => panic!(
                "{}: the mutant \"{}\" was not diagnosed:\n{report}",
                spec.exercise, mutant.mistake
            ),
        }
    }
}

#[test]
fn layer_norm_and_rms_norm() {
    proves(norm::layer_norm_spec());
    proves(norm::rms_norm_spec());
}

#[test]
fn rotary_in_llama2cs_convention() {
    let spec = rotary::rotary_spec();
    // The written-out rotation the mutants vary is the library's when nothing is varied.
    for case in &spec.cases {
        let diff = (rotary::pairs_rotated(case, 1.0, 2.0).unwrap()
            - (spec.reference)(case).unwrap())
        .abs()
        .max()
        .double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }
    proves(spec);
}

#[test]
fn embeddings_and_unembedding() {
    proves(embed::embed_spec());
    proves(embed::pos_embed_spec());
    proves(embed::unembed_spec());
}

#[test]
fn causal_mask_pattern_and_attention() {
    proves(attention::causal_mask_spec());
    proves(attention::attention_pattern_spec().unwrap());
    proves(attention::attention_spec().unwrap());
}

#[test]
fn mlp() {
    proves(mlp::mlp_spec());
}

#[test]
fn whole_transformer() {
    proves(forward::transformer_spec().unwrap());
}

#[test]
fn losses() {
    proves(loss::cross_entropy_spec().unwrap());
    proves(loss::unigram_spec());
}

#[test]
fn sampling_filters() {
    proves(sampling::temperature_spec());
    proves(sampling::top_k_spec());
    proves(sampling::top_p_spec());
}

/// The verdict of `learner` as a layer norm.
fn verdict(learner: impl Fn(&norm::NormCase) -> Result<Tensor>) -> String {
    norm::layer_norm_spec().report(&learner).unwrap().verdict()
}

fn right(c: &norm::NormCase) -> Result<Tensor> {
    let d = c.x.size()[2];
    Ok(c.x.f_layer_norm([d], Some(&c.w), Some(&c.b), c.eps, false)?)
}

#[test]
fn todo_is_not_done_yet() {
    let v = verdict(|_| todo!());
    assert!(v.starts_with("NOT DONE YET layer_norm"), "{v}");
    let v = verdict(|_| unimplemented!("later"));
    assert!(v.starts_with("NOT DONE YET"), "{v}");
}

#[test]
fn a_panic_is_a_message() {
    let v = verdict(|c| Ok(c.x.narrow(2, 0, 100)));
    assert!(
        v.starts_with("FAIL layer_norm at case 1: your function panicked:"),
        "{v}"
    );
    let v = verdict(|_| panic!("my own message"));
    assert!(v.contains("your function panicked: my own message"), "{v}");
}

#[test]
fn an_error_is_named() {
    let v = verdict(|_| Err(Error::invalid("x", "I gave up")));
    assert!(
        v.contains("your function returned an error: invalid x: I gave up"),
        "{v}"
    );
}

#[test]
fn wrong_shape_dtype_nan_undefined() {
    let v = verdict(|c| Ok(right(c)?.f_sum_dim_intlist(-1, false, Kind::Float)?));
    assert!(
        v.contains("the result has shape [") && v.contains("expected ["),
        "{v}"
    );
    let v = verdict(|c| Ok(right(c)?.f_to_kind(Kind::Double)?));
    assert!(
        v.contains("the result has dtype Double, expected Float"),
        "{v}"
    );
    let v = verdict(|c| Ok(right(c)?.f_div_scalar(0.0)?.f_mul_scalar(0.0)?));
    assert!(v.contains("the result has NaN at [0, 0, 0]"), "{v}");
    let v = verdict(|_| Ok(Tensor::new()));
    assert!(v.contains("undefined tensor"), "{v}");
}

/// A result left on the GPU (a learner who moved their tensors there) is named, not a crash
/// inside the comparison. Run where a GPU is: `cargo test -p mechlens-exercises -- --ignored`.
#[test]
#[ignore = "needs a GPU"]
fn a_result_on_another_device_is_named() {
    assert!(tch::Cuda::is_available(), "this test needs a CUDA device");
    let v = verdict(|c| Ok(right(c)?.f_to_device(tch::Device::Cuda(0))?));
    assert!(v.contains("the result is on Cuda(0), expected Cpu"), "{v}");
}

#[test]
fn changing_an_input_is_caught() {
    let v = verdict(|c| {
        let out = right(c)?;
        let mut w = c.w.shallow_clone();
        let _ = w.f_add_scalar_(1.0)?;
        Ok(out)
    });
    assert!(v.contains("changed its input `w` in place"), "{v}");
}

#[test]
fn an_unknown_mistake_shows_where() {
    let v = verdict(|c| Ok(right(c)?.f_add_scalar(0.01)?));
    assert!(
        v.contains("differs from the library's by up to 1.000e-2"),
        "{v}"
    );
    assert!(!v.contains("likely mistake"), "{v}");
}

#[test]
fn strict_mode_turns_a_failure_into_an_error() {
    // The only test that calls a public check (the mode is process-wide).
    crate::check::strict(true);
    let err = crate::check::layer_norm(|_, _, _, _| todo!()).unwrap_err();
    let passed = crate::check::layer_norm(|x, w, b, eps| {
        Ok(x.f_layer_norm([x.size()[2]], Some(w), Some(b), eps, false)?)
    });
    crate::check::strict(false);
    assert!(matches!(err, Error::Exercise { .. }), "{err}");
    assert!(err.to_string().contains("NOT DONE YET"), "{err}");
    assert!(passed.unwrap().passed());
    let not_strict = crate::check::layer_norm(|_, _, _, _| todo!()).unwrap();
    assert_eq!(not_strict.outcome, Outcome::NotDone);
}
