//! An SAE's forward pass with its hook sites (SAELens' order: input, normalise, pre-activations,
//! activation, reconstruction, de-normalise, error term, output), used alone or spliced into a
//! model's hook session; the activation of each architecture; dense and sparse decoding.

use mechlens_core::{Error, HookPoint, HookSession, Result, SaeSite};
use tch::Tensor;

use super::{Encoded, Sae, rows::decode_rows};
use crate::config::{ActivationNorm, Architecture};

/// Where an SAE's hook sites go: nowhere (used on its own) or into a model's session.
pub(crate) struct Sites<'x, 's, 'a> {
    session: Option<&'x mut HookSession<'s, 'a>>,
    anchor: Option<HookPoint>,
}

impl<'x, 's, 'a> Sites<'x, 's, 'a> {
    pub(crate) fn none() -> Self {
        Self {
            session: None,
            anchor: None,
        }
    }

    pub(crate) fn of(session: &'x mut HookSession<'s, 'a>, anchor: HookPoint) -> Self {
        Self {
            session: Some(session),
            anchor: Some(anchor),
        }
    }

    fn hook(&mut self, site: SaeSite, t: Tensor) -> Result<Tensor> {
        match (self.session.as_deref_mut(), self.anchor) {
            (Some(session), Some(anchor)) => session.hook(anchor.sae(site)?, t),
            _ => Ok(t),
        }
    }

    fn where_(&self) -> String {
        self.anchor
            .map_or_else(|| "SAE input".into(), |a| format!("SAE input at {a}"))
    }
}

impl Sae {
    pub(crate) fn forward_with(
        &self,
        x: &Tensor,
        use_error_term: bool,
        sites: &mut Sites<'_, '_, '_>,
    ) -> Result<Tensor> {
        let encoded = self.encode_with(x, sites)?;
        let mut out = self.decode_with(&encoded, sites)?;
        if use_error_term {
            // The error is taken against a clean pass, so that patching a latent changes the
            // output by exactly that latent's contribution (SAELens does the same).
            let clean = {
                let _guard = tch::no_grad_guard();
                let encoded = self.encode_with(x, &mut Sites::none())?;
                self.decode_with(&encoded, &mut Sites::none())?
            };
            let error = sites.hook(SaeSite::Error, x.f_to_kind(clean.kind())?.f_sub(&clean)?)?;
            out = out.f_add(&error)?;
        }
        sites.hook(SaeSite::Output, out)
    }

    pub(crate) fn encode_with(&self, x: &Tensor, sites: &mut Sites<'_, '_, '_>) -> Result<Encoded> {
        let kind = self.w_enc.kind();
        let mut x = x.f_to_kind(kind)?;
        let mut heads = None;
        if self.cfg.reshape_hook_z {
            let shape = x.size();
            if shape.len() < 2 || shape[shape.len() - 1] * shape[shape.len() - 2] != self.cfg.d_in {
                return Err(Error::ShapeMismatch {
                    what: sites.where_(),
                    expected: format!(
                        "[..., n_heads, d_head] with n_heads·d_head = d_in = {}",
                        self.cfg.d_in
                    ),
                    got: shape,
                });
            }
            heads = Some(shape[shape.len() - 2]);
            x = x.f_flatten(-2, -1)?;
        } else {
            self.check_last_dim(&sites.where_(), &x, self.cfg.d_in, "d_in")?;
        }
        let x = sites.hook(SaeSite::Input, x)?;
        let (x, norm_coeff) = match self.cfg.normalize_activations {
            ActivationNorm::ConstantNormRescale => {
                let coeff = x
                    .f_norm_scalaropt_dim(2, [-1], true)?
                    .f_reciprocal()?
                    .f_mul_scalar((self.cfg.d_in as f64).sqrt())?;
                (x.f_mul(&coeff)?, Some(coeff))
            }
            ActivationNorm::None | ActivationNorm::ExpectedAverageOnlyIn => (x, None),
        };
        let sae_in = if self.cfg.apply_b_dec_to_input {
            x.f_sub(&self.b_dec)?
        } else {
            x
        };
        let (pre, acts, active) = self.activate(&sae_in, sites)?;
        let acts = sites.hook(SaeSite::ActsPost, acts)?;
        Ok(Encoded {
            acts,
            pre,
            norm_coeff,
            heads,
            active,
        })
    }

    /// Pre-activations (hooked) and activations, by architecture; for TopK also the active
    /// values and indices.
    #[allow(clippy::type_complexity)]
    fn activate(
        &self,
        sae_in: &Tensor,
        sites: &mut Sites<'_, '_, '_>,
    ) -> Result<(Tensor, Tensor, Option<(Tensor, Tensor)>)> {
        let arch = self.cfg.architecture;
        fn need<'t>(t: &'t Option<Tensor>, name: &str, arch: Architecture) -> Result<&'t Tensor> {
            t.as_ref()
                .ok_or_else(|| Error::invalid("SAE", format!("a {arch} SAE needs `{name}`")))
        }
        match self.cfg.architecture {
            Architecture::Gated => {
                let gate =
                    sae_in
                        .f_matmul(&self.w_enc)?
                        .f_add(need(&self.b_gate, "b_gate", arch)?)?;
                let w_mag = self
                    .w_enc
                    .f_mul(&need(&self.r_mag, "r_mag", arch)?.f_exp()?)?;
                let pre = sae_in
                    .f_matmul(&w_mag)?
                    .f_add(need(&self.b_mag, "b_mag", arch)?)?;
                let pre = sites.hook(SaeSite::ActsPre, pre)?;
                let open = gate.f_gt(0.0)?.f_to_kind(pre.kind())?;
                let acts = pre.f_relu()?.f_mul(&open)?;
                Ok((pre, acts, None))
            }
            arch => {
                let pre = sae_in
                    .f_matmul(&self.w_enc)?
                    .f_add(need(&self.b_enc, "b_enc", arch)?)?;
                let pre = sites.hook(SaeSite::ActsPre, pre)?;
                let mut active = None;
                let acts = match arch {
                    Architecture::Standard => pre.f_relu()?,
                    Architecture::JumpRelu => {
                        let open = pre.f_gt_tensor(need(&self.threshold, "threshold", arch)?)?;
                        pre.f_relu()?.f_mul(&open.f_to_kind(pre.kind())?)?
                    }
                    _ => {
                        let ranked = if self.cfg.rescale_acts_by_decoder_norm {
                            pre.f_mul(&self.decoder_norms()?)?
                        } else {
                            pre.shallow_clone()
                        };
                        let k = self.cfg.k.unwrap_or(1);
                        let (values, indices) = ranked.f_topk(k, -1, true, false)?;
                        let values = values.f_relu()?;
                        let acts = ranked.f_zeros_like()?.f_scatter(-1, &indices, &values)?;
                        active = Some((values, indices));
                        acts
                    }
                };
                Ok((pre, acts, active))
            }
        }
    }

    pub(crate) fn decode_with(
        &self,
        encoded: &Encoded,
        sites: &mut Sites<'_, '_, '_>,
    ) -> Result<Tensor> {
        // TopK on its own (no hook could have changed the latents): decode from the k active
        // rows of W_dec instead of a dense [.., d_sae] × [d_sae, d_in] product.
        let decoded = match (&encoded.active, sites.session.is_none()) {
            (Some((values, indices)), true) => self.decode_sparse(values, indices)?,
            _ => self.decode_dense(&encoded.acts)?,
        };
        let recons = sites.hook(SaeSite::Recons, decoded)?;
        let mut out = match &encoded.norm_coeff {
            Some(coeff) => recons.f_div(coeff)?,
            None => recons,
        };
        if let Some(heads) = encoded.heads {
            let mut shape = out.size();
            let d = shape.pop().unwrap_or(0);
            shape.extend([heads, d / heads]);
            out = out.f_reshape(&shape)?;
        }
        Ok(out)
    }

    /// `Σ_j values[.., j] · W_dec[indices[.., j]] + b_dec` through an embedding bag.
    fn decode_sparse(&self, values: &Tensor, indices: &Tensor) -> Result<Tensor> {
        let mut shape = values.size();
        let k = shape.pop().unwrap_or(1);
        let norms = if self.cfg.rescale_acts_by_decoder_norm {
            Some(self.decoder_norms()?)
        } else {
            None
        };
        let out = decode_rows(
            &self.w_dec,
            &values.f_reshape([-1, k])?.f_to_kind(self.w_dec.kind())?,
            &indices.f_reshape([-1, k])?,
            norms.as_ref(),
        )?;
        shape.push(self.cfg.d_in);
        Ok(out.f_reshape(&shape)?.f_add(&self.b_dec)?)
    }

    pub(super) fn decode_dense(&self, acts: &Tensor) -> Result<Tensor> {
        let acts = if self.cfg.architecture == Architecture::TopK
            && self.cfg.rescale_acts_by_decoder_norm
        {
            acts.f_div(&self.decoder_norms()?)?
        } else {
            acts.shallow_clone()
        };
        Ok(acts
            .f_to_kind(self.w_dec.kind())?
            .f_matmul(&self.w_dec)?
            .f_add(&self.b_dec)?)
    }
}
