//! E4's sparse autoencoder, in SAELens' layout: encoder and decoder (against mechlens-sae's
//! `Sae`, itself tested against SAELens), the loss, decoder normalisation, dead latents and
//! their resampling (the formulas ARENA uses, written out).

use mechlens_core::Result;
use mechlens_sae::{Architecture, Sae, SaeConfig};
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

/// An SAE's weights, a batch, latents and a reconstruction.
///
/// # Shapes
/// - `x`, `recon`: `[batch, d_in]`; `acts`: `[batch, d_sae]`
/// - `w_enc`: `[d_in, d_sae]`; `b_enc`: `[d_sae]`; `w_dec`, `directions`: `[d_sae, d_in]`;
///   `b_dec`: `[d_in]`; `dead`: `[d_sae]` bool
pub(crate) struct SaeCase {
    pub x: Tensor,
    pub recon: Tensor,
    pub acts: Tensor,
    pub w_enc: Tensor,
    pub b_enc: Tensor,
    pub w_dec: Tensor,
    pub b_dec: Tensor,
    pub l1: f64,
    pub dead: Tensor,
    pub directions: Tensor,
}

impl Case for SaeCase {
    fn label(&self) -> String {
        format!("x {:?}, w_enc {:?}", self.x.size(), self.w_enc.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("x", &self.x),
            ("recon", &self.recon),
            ("acts", &self.acts),
            ("w_enc", &self.w_enc),
            ("b_enc", &self.b_enc),
            ("w_dec", &self.w_dec),
            ("b_dec", &self.b_dec),
            ("dead", &self.dead),
            ("directions", &self.directions),
        ]
    }
}

fn cases(seed: u64) -> Vec<SaeCase> {
    let mut draw = Draw::new(seed);
    (0..5)
        .map(|_| {
            let (batch, d_in, d_sae) = (draw.int(2, 10), draw.int(2, 8), draw.int(3, 16));
            // Sparse latents with a few always-silent ones (dead), as after training.
            let acts = draw.normal(&[batch, d_sae], -0.5, 1.0).relu();
            let silent = draw.normal(&[d_sae], 0.0, 1.0).gt(0.7);
            let acts = acts.masked_fill(&silent, 0.0);
            let dead = acts.gt(0.0).any_dim(0, false).logical_not();
            SaeCase {
                x: draw.normal(&[batch, d_in], 0.0, 1.0),
                recon: draw.normal(&[batch, d_in], 0.0, 1.0),
                acts,
                w_enc: draw.normal(&[d_in, d_sae], 0.0, 0.7),
                b_enc: draw.normal(&[d_sae], 0.0, 0.3),
                w_dec: draw.normal(&[d_sae, d_in], 0.0, 0.7),
                b_dec: draw.normal(&[d_in], 0.0, 0.5),
                l1: draw.uniform(0.01, 1.0),
                dead,
                directions: draw.normal(&[d_sae, d_in], 0.0, 2.0),
            }
        })
        .collect()
}

/// mechlens-sae's standard (ReLU) SAE with the case's weights; `b_dec` is subtracted from the
/// input before encoding, as SAELens' `apply_b_dec_to_input` does.
fn library_sae(c: &SaeCase) -> Result<Sae> {
    let (d_in, d_sae) = (c.w_enc.size()[0], c.w_enc.size()[1]);
    let mut sae = Sae::init(SaeConfig::new(Architecture::Standard, d_in, d_sae), None, 0)?;
    sae.w_enc = c.w_enc.shallow_clone();
    sae.b_enc = Some(c.b_enc.shallow_clone());
    sae.w_dec = c.w_dec.shallow_clone();
    sae.b_dec = c.b_dec.shallow_clone();
    Ok(sae)
}

const CLOSE: Compare = Compare::Values {
    atol: 1e-5,
    rtol: 1e-4,
};

fn encode(c: &SaeCase, subtract_b_dec: bool, relu: bool) -> Result<Tensor> {
    let input = if subtract_b_dec {
        c.x.f_sub(&c.b_dec)?
    } else {
        c.x.shallow_clone()
    };
    let pre = input.f_matmul(&c.w_enc)?.f_add(&c.b_enc)?;
    Ok(if relu { pre.f_relu()? } else { pre })
}

pub(crate) fn encode_spec() -> Spec<SaeCase> {
    Spec {
        exercise: "sae_encode",
        cases: cases(111),
        reference: Box::new(|c: &SaeCase| library_sae(c)?.encode(&c.x)),
        mutants: vec![
            Mutant::new(
                "b_dec is not subtracted from the input first (SAELens' apply_b_dec_to_input: the encoder reads x - b_dec)",
                |c: &SaeCase| encode(c, false, true),
            ),
            Mutant::new(
                "no ReLU: latent activations are never negative",
                |c: &SaeCase| encode(c, true, false),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `sae_encode(x, w_enc, b_enc, b_dec)`: the latents `ReLU((x − b_dec) W_enc + b_enc)`.
///
/// # Shapes
/// - `x`: `[batch, d_in]`; `w_enc`: `[d_in, d_sae]`; `b_enc`: `[d_sae]`; `b_dec`: `[d_in]` →
///   `[batch, d_sae]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn sae_encode(
    f: impl Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Report> {
    encode_spec().check(&|c| f(&c.x, &c.w_enc, &c.b_enc, &c.b_dec))
}

pub(crate) fn decode_spec() -> Spec<SaeCase> {
    Spec {
        exercise: "sae_decode",
        cases: cases(112),
        reference: Box::new(|c: &SaeCase| library_sae(c)?.decode(&c.acts)),
        mutants: vec![Mutant::new("b_dec is not added back", |c: &SaeCase| {
            Ok(c.acts.f_matmul(&c.w_dec)?)
        })],
        compare: CLOSE,
    }
}

/// Checks `sae_decode(acts, w_dec, b_dec)`: the reconstruction `acts · W_dec + b_dec`.
///
/// # Shapes
/// - `acts`: `[batch, d_sae]`; `w_dec`: `[d_sae, d_in]`; `b_dec`: `[d_in]` → `[batch, d_in]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn sae_decode(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    decode_spec().check(&|c| f(&c.acts, &c.w_dec, &c.b_dec))
}

/// Mean over the batch of the squared error (summed over `d_in`, or averaged) plus
/// `l1_weight` times the latents' L1 norm.
fn loss(c: &SaeCase, sum_d_in: bool, l1_weight: f64) -> Result<Tensor> {
    let sq = c.recon.f_sub(&c.x)?.f_square()?;
    let mse = if sum_d_in {
        sq.f_sum_dim_intlist(-1, false, Kind::Float)?
    } else {
        sq.f_mean_dim(-1, false, Kind::Float)?
    };
    let l1 = c.acts.f_abs()?.f_sum_dim_intlist(-1, false, Kind::Float)?;
    Ok(mse
        .f_add(&l1.f_mul_scalar(l1_weight)?)?
        .f_mean(Kind::Float)?)
}

pub(crate) fn loss_spec() -> Spec<SaeCase> {
    Spec {
        exercise: "sae_loss",
        cases: cases(113),
        reference: Box::new(|c: &SaeCase| loss(c, true, c.l1)),
        mutants: vec![
            Mutant::new(
                "the squared error is averaged over d_in; it is summed over d_in (the squared distance), then averaged over the batch",
                |c: &SaeCase| loss(c, false, c.l1),
            ),
            Mutant::new(
                "the L1 penalty is missing: add l1_coefficient · Σ|acts|",
                |c: &SaeCase| loss(c, true, 0.0),
            ),
            Mutant::new(
                "the L1 term is not multiplied by the coefficient",
                |c: &SaeCase| loss(c, true, 1.0),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `sae_loss(x, recon, acts, l1_coefficient)`: per sample, the squared distance
/// `‖x − recon‖²` plus `l1_coefficient · Σ|acts|`, averaged over the batch (a scalar).
///
/// # Shapes
/// - `x`, `recon`: `[batch, d_in]`; `acts`: `[batch, d_sae]` → `[]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn sae_loss(f: impl Fn(&Tensor, &Tensor, &Tensor, f64) -> Result<Tensor>) -> Result<Report> {
    loss_spec().check(&|c| f(&c.x, &c.recon, &c.acts, c.l1))
}

pub(crate) fn normalize_spec() -> Spec<SaeCase> {
    Spec {
        exercise: "normalize_decoder",
        cases: cases(114),
        reference: Box::new(|c: &SaeCase| {
            let norms = library_sae(c)?.decoder_norms()?;
            Ok(c.w_dec.f_div(&norms.f_unsqueeze(1)?)?)
        }),
        mutants: vec![
            Mutant::new(
                "the columns are normalised; each latent's direction is a row of W_dec ([d_sae, d_in])",
                |c: &SaeCase| {
                    Ok(c.w_dec
                        .f_div(&c.w_dec.f_norm_scalaropt_dim(2, [0], true)?)?)
                },
            ),
            Mutant::new(
                "each row is divided by its squared norm; divide by the norm",
                |c: &SaeCase| {
                    Ok(c.w_dec.f_div(&c.w_dec.f_square()?.f_sum_dim_intlist(
                        1,
                        true,
                        Kind::Float,
                    )?)?)
                },
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `normalize_decoder(w_dec)`: `W_dec` with each row (a latent's direction) scaled to
/// unit norm.
///
/// # Shapes
/// - `w_dec`: `[d_sae, d_in]` → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn normalize_decoder(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    normalize_spec().check(&|c| f(&c.w_dec))
}

pub(crate) fn dead_spec() -> Spec<SaeCase> {
    Spec {
        exercise: "dead_latents",
        cases: cases(115),
        reference: Box::new(|c: &SaeCase| {
            Ok(c.acts.f_gt(0.0)?.f_any_dim(0, false)?.f_logical_not()?)
        }),
        mutants: vec![
            Mutant::new(
                "these are the latents that fired; dead ones never fire",
                |c: &SaeCase| Ok(c.acts.f_gt(0.0)?.f_any_dim(0, false)?),
            ),
            Mutant::new(
                "a latent is marked dead when it is silent on some input; dead means silent on every input",
                |c: &SaeCase| Ok(c.acts.f_gt(0.0)?.f_all_dim(0, false)?.f_logical_not()?),
            ),
        ],
        compare: Compare::Values {
            atol: 0.0,
            rtol: 0.0,
        },
    }
}

/// Checks `dead_latents(acts)`: which latents never fired (activation > 0) on any input.
///
/// # Shapes
/// - `acts`: `[n_inputs, d_sae]` → `[d_sae]` bool
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn dead_latents(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    dead_spec().check(&|c| f(&c.acts))
}

fn resample(c: &SaeCase, normalise: bool, only_dead: bool) -> Result<Tensor> {
    let new = if normalise {
        c.directions
            .f_div(&c.directions.f_norm_scalaropt_dim(2, [1], true)?)?
    } else {
        c.directions.shallow_clone()
    };
    if !only_dead {
        return Ok(new);
    }
    Ok(new.f_where_self(&c.dead.f_unsqueeze(1)?, &c.w_dec)?)
}

pub(crate) fn resample_spec() -> Spec<SaeCase> {
    Spec {
        exercise: "resample_decoder",
        cases: cases(116),
        reference: Box::new(|c: &SaeCase| resample(c, true, true)),
        mutants: vec![
            Mutant::new(
                "the new directions are not normalised to unit norm",
                |c: &SaeCase| resample(c, false, true),
            ),
            Mutant::new(
                "every row is replaced; only the dead latents' rows are",
                |c: &SaeCase| resample(c, true, false),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `resample_decoder(w_dec, dead, directions)`: `W_dec` with the row of each dead
/// latent replaced by that latent's new direction (its row of `directions`) scaled to unit
/// norm; the other rows unchanged.
///
/// # Shapes
/// - `w_dec`, `directions`: `[d_sae, d_in]`; `dead`: `[d_sae]` bool → `[d_sae, d_in]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn resample_decoder(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    resample_spec().check(&|c| f(&c.w_dec, &c.dead, &c.directions))
}
