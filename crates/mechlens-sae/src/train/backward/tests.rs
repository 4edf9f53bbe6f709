//! Tests of `backward`: the hand-written gradients against autograd.

use super::*;
use crate::train::TrainConfig;
use crate::train::loss;

/// One step both ways on random data; losses and every gradient must agree.
/// `b_enc_shift` moves every encoder bias: a negative one leaves few latents active.
fn compare(
    arch: TrainArchitecture,
    apply_b_dec: bool,
    n_dead: i64,
    rescale: bool,
    b_enc_shift: f64,
) -> f64 {
    let (d_in, d_sae, batch) = (24, 96, 64);
    let mut cfg = TrainConfig::new(arch.clone(), d_in, d_sae)
        .batch_size(batch)
        .total_steps(1);
    cfg.apply_b_dec_to_input = apply_b_dec;
    let mut sae = Sae::init(cfg.sae_config(), Some(0.1), 3).unwrap();
    tch::manual_seed(5);
    sae.b_dec = Tensor::randn([d_in], (Kind::Float, tch::Device::Cpu))
        .f_mul_scalar(0.3)
        .unwrap();
    sae.b_enc = Some(
        Tensor::randn([d_sae], (Kind::Float, tch::Device::Cpu))
            .f_mul_scalar(0.1)
            .unwrap()
            .f_add_scalar(b_enc_shift)
            .unwrap(),
    );
    for p in sae.parameters_mut() {
        *p = p.detach().set_requires_grad(true);
    }
    let x = Tensor::randn([batch, d_in], (Kind::Float, tch::Device::Cpu));
    let dead = Tensor::arange(d_sae, (Kind::Int64, tch::Device::Cpu)).lt(n_dead);
    let st = StepState {
        dead: &dead,
        n_dead,
        sparsity_coefficient: 0.7,
        rescale,
    };
    let reference = loss::forward(&sae, &arch, &x, &st).unwrap();
    reference.loss.backward();
    let (ours, grads) = step(&sae, &arch, &x, &st)
        .expect("Standard and TopK have a hand-written backward")
        .unwrap();
    for (name, a, b) in [
        ("loss", &ours.loss, &reference.loss),
        ("mse", &ours.mse, &reference.mse),
        ("sparsity", &ours.sparsity, &reference.sparsity),
        ("aux", &ours.aux, &reference.aux),
    ] {
        let (a, b) = (a.double_value(&[]), b.double_value(&[]));
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{name}: {a} vs {b}"
        );
    }
    if n_dead > 0 {
        assert!(
            reference.aux.double_value(&[]) > 0.0,
            "the AuxK branch did not run"
        );
    }
    let names = ["W_enc", "W_dec", "b_enc", "b_dec"];
    for ((name, p), g) in names.iter().zip(sae.parameters_mut()).zip(&grads) {
        let expected = p.grad();
        assert_eq!(g.size(), expected.size(), "{name}");
        let scale = expected.abs().max().double_value(&[]).max(1e-12);
        let err = g.f_sub(&expected).unwrap().abs().max().double_value(&[]);
        assert!(
            err <= 1e-5 * scale,
            "{name}: max error {err} vs max grad {scale}"
        );
    }
    assert_eq!(
        ours.active.fired(d_sae).unwrap(),
        reference.active.fired(d_sae).unwrap()
    );
    let l0 = reference.active.l0().unwrap();
    assert!((ours.active.l0().unwrap() - l0).abs() < 1e-9);
    l0 / d_sae as f64
}

#[test]
fn standard_gradients_equal_autograd() {
    for apply_b_dec in [true, false] {
        let density = compare(TrainArchitecture::standard(0.7), apply_b_dec, 0, false, 0.0);
        assert!(density > SPARSE_BELOW, "dense path: {density}");
        // Few latents active (some rows none at all): the sparse path.
        let density = compare(
            TrainArchitecture::standard(0.7),
            apply_b_dec,
            0,
            false,
            -0.3,
        );
        assert!(
            density > 0.0 && density < SPARSE_BELOW,
            "sparse path: {density}"
        );
    }
}

#[test]
fn topk_gradients_equal_autograd() {
    for rescale in [false, true] {
        compare(TrainArchitecture::topk(6), true, 0, rescale, 0.0);
        compare(TrainArchitecture::topk(6), false, 0, rescale, 0.0);
        // 40 dead latents: AuxK with k_aux = d_in / 2 = 12.
        compare(TrainArchitecture::topk(6), true, 40, rescale, 0.0);
        // Fewer dead latents than k_aux.
        compare(TrainArchitecture::topk(6), true, 5, rescale, 0.0);
    }
}
