//! A model's attention circuits as factored matrices (Elhage et al. 2021, "A Mathematical
//! Framework for Transformer Circuits"), and the scores read off them: composition between
//! heads, OV copying, spectra and effective rank.
//!
//! Conventions are TransformerLens': a row vector `x` (the residual) maps to `x · OV`, so
//! `OV = W_V · W_O` and `QK = W_Q · W_Kᵀ`, both `[n_layers, n_heads, d_model, d_model]`.

use mechlens_core::shape::check_index;
use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use polars::prelude::*;
use tch::{Kind, Tensor};

use crate::FactoredMatrix;
use mechlens_tables::tensor_to_df;

/// Which of a later head's inputs an earlier head's output feeds (the Framework paper's
/// three kinds of composition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Composition {
    /// Into the later head's queries: `OV₁ · QK₂`.
    Q,
    /// Into its keys: `OV₁ · QK₂ᵀ`.
    K,
    /// Into its values: `OV₁ · OV₂`.
    V,
}

/// Which per-head circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    /// `W_Q · W_Kᵀ`: where a head attends.
    Qk,
    /// `W_V · W_O`: what it moves.
    Ov,
}

/// How strongly `left` composes into `right`: `‖L·R‖_F / (‖L‖_F ‖R‖_F)` (TransformerLens'
/// `utils.composition_scores`), computed from the collapsed factors. Leading dims of the two
/// are kept apart: the result is `[*left_leading, *right_leading]`.
///
/// # Errors
/// `left.rdim() != right.ldim()`.
pub fn composition_scores(left: &FactoredMatrix, right: &FactoredMatrix) -> Result<Tensor> {
    if left.rdim() != right.ldim() {
        return Err(Error::invalid(
            "composition operands",
            format!(
                "left is {:?} and right is {:?}: left's columns must equal right's rows",
                left.shape(),
                right.shape()
            ),
        ));
    }
    let (l_lead, r_lead) = (left.ndim() - 2, right.ndim() - 2);
    // [*l, 1.., mdim, rdim] and [1.., *r, ldim, mdim]: broadcasting pairs every left with
    // every right.
    let mut new_left = left.collapse_l()?;
    for i in 0..r_lead {
        new_left = new_left.f_unsqueeze((l_lead + i) as i64)?;
    }
    let mut new_right = right.collapse_r()?;
    for i in 0..l_lead {
        new_right = new_right.f_unsqueeze(i as i64)?;
    }
    let frob = |t: &Tensor| -> Result<Tensor> {
        Ok(t.f_square()?
            .f_sum_dim_intlist([-2i64, -1].as_slice(), false, None)?
            .f_sqrt()?)
    };
    let both = frob(&new_left.f_matmul(&new_right)?)?;
    Ok(both.f_div(&frob(&new_left)?)?.f_div(&frob(&new_right)?)?)
}

/// Effective rank (Roy & Vetterli 2007) over the last dim of singular values `s`:
/// `exp(H(p))` with `p = s / Σs`. Equals the rank for equal singular values, less when a few
/// dominate.
///
/// # Shapes
/// - `s`: `[..., k]` → `[...]`
pub fn effective_rank(s: &Tensor) -> Result<Tensor> {
    let p = s.f_div(&s.f_sum_dim_intlist(-1, true, None)?)?;
    // 0 · log 0 = 0.
    let plogp = p.f_xlogy(&p)?;
    Ok(plogp.f_sum_dim_intlist(-1, false, None)?.f_neg()?.f_exp()?)
}

/// Σλ / Σ|λ| over the last dim of complex eigenvalues: 1 when all are positive reals (the
/// circuit copies), -1 when all negative.
///
/// # Shapes
/// - `eigenvalues`: `[..., k]` complex → `[...]`
pub fn positive_eigenvalue_fraction(eigenvalues: &Tensor) -> Result<Tensor> {
    let real = eigenvalues.f_real()?.f_sum_dim_intlist(-1, false, None)?;
    let abs = eigenvalues.f_abs()?.f_sum_dim_intlist(-1, false, None)?;
    Ok(real.f_div(&abs)?)
}

/// Weight analyses of a [`HookedTransformer`], as TransformerLens' `model.QK`, `model.OV`,
/// `all_composition_scores` and the ARENA exercises use them. Bring into scope with
/// `use mechlens_weights::Circuits;` (the prelude does).
pub trait Circuits {
    /// Every head's QK circuit, `[n_layers, n_heads, d_model, d_model]` (factored).
    fn qk(&self) -> Result<FactoredMatrix>;

    /// Every head's OV circuit, `[n_layers, n_heads, d_model, d_model]` (factored).
    fn ov(&self) -> Result<FactoredMatrix>;

    /// One head's circuit, `[d_model, d_model]`.
    ///
    /// # Errors
    /// Layer or head out of range (the error gives the valid range).
    fn head_circuit(&self, circuit: Circuit, layer: usize, head: usize) -> Result<FactoredMatrix>;

    /// The full OV circuit `W_E[tokens] · W_V · W_O · W_U[:, tokens]`, `[n_layers, n_heads, T,
    /// T]` (factored): how attending to token `i` moves the logit of token `j`. Restricted to
    /// `tokens` so that the `d_vocab²` matrix is never formed.
    ///
    /// # Errors
    /// An empty token list, or a token outside the vocabulary.
    fn full_ov_circuit(&self, tokens: &[i64]) -> Result<FactoredMatrix>;

    /// The full QK circuit `W_E[tokens] · W_Q · W_Kᵀ · W_E[tokens]ᵀ`, `[n_layers, n_heads, T, T]`
    /// (factored; query token rows, key token columns; position embeddings left out).
    ///
    /// # Errors
    /// As [`Circuits::full_ov_circuit`].
    fn full_qk_circuit(&self, tokens: &[i64]) -> Result<FactoredMatrix>;

    /// Composition scores of every (earlier head, later head) pair, `[L1, H1, L2, H2]`, zero
    /// unless `L1 < L2` (TransformerLens' `all_composition_scores`).
    fn composition_scores(&self, kind: Composition) -> Result<Tensor>;

    /// [`Circuits::composition_scores`] as a table: `left_layer, left_head, right_layer,
    /// right_head, score`, one row per pair with `left_layer < right_layer`.
    fn composition_frame(&self, kind: Composition) -> Result<DataFrame>;

    /// Each head's OV copying score on `tokens`: the positive-eigenvalue fraction of its full
    /// OV circuit, `[n_layers, n_heads]`, in [-1, 1]; near 1 for a head that copies the token
    /// it attends to.
    ///
    /// # Errors
    /// As [`Circuits::full_ov_circuit`].
    fn copying_scores(&self, tokens: &[i64]) -> Result<Tensor>;

    /// Singular values of every head's circuit, `[n_layers, n_heads, d_head]`, descending.
    fn spectra(&self, circuit: Circuit) -> Result<Tensor>;

    /// [`Circuits::spectra`] as a table (`layer, head, index, singular_value`) with each head's
    /// effective rank (`effective_rank`, repeated on its rows).
    fn spectra_frame(&self, circuit: Circuit) -> Result<DataFrame>;
}

fn check_tokens(model: &HookedTransformer, tokens: &[i64]) -> Result<Tensor> {
    let vocab = model.cfg().d_vocab as i64;
    if tokens.is_empty() {
        return Err(Error::invalid(
            "tokens",
            "the token list is empty; pass at least one token id",
        ));
    }
    if let Some(bad) = tokens.iter().find(|&&t| t < 0 || t >= vocab) {
        return Err(Error::invalid(
            "tokens",
            format!("token id {bad} is outside the vocabulary 0..{vocab}"),
        ));
    }
    Ok(Tensor::from_slice(tokens).to_device(model.w_e().device()))
}

impl Circuits for HookedTransformer {
    fn qk(&self) -> Result<FactoredMatrix> {
        FactoredMatrix::new(self.w_q()?, self.w_k()?.f_transpose(-2, -1)?)
    }

    fn ov(&self) -> Result<FactoredMatrix> {
        FactoredMatrix::new(self.w_v()?, self.w_o()?)
    }

    fn head_circuit(&self, circuit: Circuit, layer: usize, head: usize) -> Result<FactoredMatrix> {
        check_index("layer", layer as i64, self.cfg().n_layers, "the model")?;
        check_index("head", head as i64, self.cfg().n_heads, "the model")?;
        let all = match circuit {
            Circuit::Qk => self.qk()?,
            Circuit::Ov => self.ov()?,
        };
        all.index(&[layer as i64, head as i64])
    }

    fn full_ov_circuit(&self, tokens: &[i64]) -> Result<FactoredMatrix> {
        let ids = check_tokens(self, tokens)?;
        let w_e = self.w_e().f_index_select(0, &ids)?; // [T, d_model]
        let w_u = self.w_u().f_index_select(1, &ids)?; // [d_model, T]
        FactoredMatrix::new(w_e.f_matmul(&self.w_v()?)?, self.w_o()?.f_matmul(&w_u)?)
    }

    fn full_qk_circuit(&self, tokens: &[i64]) -> Result<FactoredMatrix> {
        let ids = check_tokens(self, tokens)?;
        let w_e = self.w_e().f_index_select(0, &ids)?;
        let q = w_e.f_matmul(&self.w_q()?)?; // [L, H, T, d_head]
        let k = w_e.f_matmul(&self.w_k()?)?;
        FactoredMatrix::new(q, k.f_transpose(-2, -1)?)
    }

    fn composition_scores(&self, kind: Composition) -> Result<Tensor> {
        let left = self.ov()?;
        let right = match kind {
            Composition::Q => self.qk()?,
            Composition::K => self.qk()?.transpose()?,
            Composition::V => self.ov()?,
        };
        let scores = composition_scores(&left, &right)?;
        let n = self.cfg().n_layers as i64;
        let layers = Tensor::arange(n, (Kind::Int64, scores.device()));
        let later = layers
            .f_view([n, 1, 1, 1])?
            .f_lt_tensor(&layers.f_view([1, 1, n, 1])?)?;
        Ok(scores.f_mul(&later.f_to_kind(scores.kind())?)?)
    }

    fn composition_frame(&self, kind: Composition) -> Result<DataFrame> {
        let scores = self.composition_scores(kind)?;
        tensor_to_df(
            &scores,
            &["left_layer", "left_head", "right_layer", "right_head"],
            "score",
        )?
        .lazy()
        .filter(col("left_layer").lt(col("right_layer")))
        .collect()
        .map_err(Error::from)
    }

    fn copying_scores(&self, tokens: &[i64]) -> Result<Tensor> {
        positive_eigenvalue_fraction(&self.full_ov_circuit(tokens)?.eigenvalues()?)
    }

    fn spectra(&self, circuit: Circuit) -> Result<Tensor> {
        match circuit {
            Circuit::Qk => self.qk()?.s(),
            Circuit::Ov => self.ov()?.s(),
        }
    }

    fn spectra_frame(&self, circuit: Circuit) -> Result<DataFrame> {
        let s = self.spectra(circuit)?;
        let ranks = effective_rank(&s)?;
        let k = s.size()[2];
        let frame = tensor_to_df(&s, &["layer", "head", "index"], "singular_value")?;
        let ranks = ranks.f_unsqueeze(-1)?.f_expand([-1, -1, k], false)?;
        let ranks = tensor_to_df(&ranks, &["layer", "head", "index"], "effective_rank")?;
        frame
            .hstack(&[ranks.column("effective_rank")?.clone()])
            .map_err(Error::from)
    }
}
