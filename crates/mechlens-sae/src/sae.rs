//! [`Sae`]: a sparse autoencoder's parameters and its encode / decode / forward, following
//! SAELens' inference classes (`StandardSAE`, `TopKSAE`, `JumpReLUSAE`, `GatedSAE`) step for
//! step, so that the same weights give the same latents.
//!
//! Forward order (each step a hook site when the SAE is spliced into a model):
//! input → `hook_sae_input` → normalise → − b_dec → pre-activations → `hook_sae_acts_pre` →
//! activation → `hook_sae_acts_post` → · W_dec + b_dec → `hook_sae_recons` → de-normalise →
//! (+ error term) → `hook_sae_output`.

use mechlens_core::{Error, HookPoint, HookSession, Result, SaeSite};
use tch::{Device, Kind, Tensor};

use crate::config::{ActivationNorm, Architecture, SaeConfig};

/// A sparse autoencoder.
///
/// # Shapes
/// - `w_enc`: `[d_in, d_sae]`, `w_dec`: `[d_sae, d_in]` (SAELens' layout)
/// - `b_enc`, `threshold`, `b_gate`, `b_mag`, `r_mag`: `[d_sae]`; `b_dec`: `[d_in]`
#[derive(Debug)]
pub struct Sae {
    /// Architecture, sizes and metadata.
    pub cfg: SaeConfig,
    /// Encoder.
    pub w_enc: Tensor,
    /// Decoder: row `i` is latent `i`'s direction.
    pub w_dec: Tensor,
    /// Encoder bias (every architecture but Gated).
    pub b_enc: Option<Tensor>,
    /// Decoder bias.
    pub b_dec: Tensor,
    /// JumpReLU thresholds.
    pub threshold: Option<Tensor>,
    /// Gated: gate-path bias.
    pub b_gate: Option<Tensor>,
    /// Gated: magnitude-path bias.
    pub b_mag: Option<Tensor>,
    /// Gated: log of the magnitude path's per-latent rescaling of `w_enc`.
    pub r_mag: Option<Tensor>,
}

/// Latents of a batch, and what decoding needs to undo the input normalisation.
#[derive(Debug)]
pub struct Encoded {
    /// Latent activations, `[..., d_sae]`.
    pub acts: Tensor,
    /// Pre-activations, `[..., d_sae]` (the magnitude path's, for Gated).
    pub pre: Tensor,
    /// ConstantNormRescale's per-token factor `[..., 1]`, else `None`.
    pub norm_coeff: Option<Tensor>,
    /// `hook_z` SAEs: the head count of the input, to unflatten the output.
    pub heads: Option<i64>,
    /// TopK: the `k` values and latent indices per input, for a sparse decode.
    active: Option<(Tensor, Tensor)>,
}

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
    /// An SAE with SAELens' training initialisation: Kaiming-uniform decoder rows scaled to
    /// norm `decoder_init_norm` (0.1 in SAELens), encoder = decoderᵀ, zero biases, JumpReLU
    /// thresholds at 0.01 (SAELens' `jumprelu_init_threshold`). Seeded from `seed` with our
    /// own generator, so the same seed gives the same SAE on every machine and thread.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for non-positive sizes or a TopK config without `k`.
    pub fn init(cfg: SaeConfig, decoder_init_norm: Option<f64>, seed: u64) -> Result<Self> {
        if cfg.d_in <= 0 || cfg.d_sae <= 0 {
            return Err(Error::invalid(
                "SAE size",
                format!(
                    "d_in and d_sae must be positive, got {} and {}",
                    cfg.d_in, cfg.d_sae
                ),
            ));
        }
        if cfg.architecture == Architecture::TopK && cfg.k.is_none_or(|k| k < 1 || k > cfg.d_sae) {
            return Err(Error::invalid(
                "k",
                format!(
                    "a TopK SAE needs 1 <= k <= d_sae ({}), got {:?}",
                    cfg.d_sae, cfg.k
                ),
            ));
        }
        let opts = (Kind::Float, Device::Cpu);
        // kaiming_uniform_ on [d_sae, d_in]: bound = sqrt(6 / fan_in), fan_in = d_in.
        let bound = (6.0 / cfg.d_in as f64).sqrt();
        let mut w_dec = uniform(&[cfg.d_sae, cfg.d_in], -bound, bound, seed)?;
        if let Some(norm) = decoder_init_norm {
            w_dec = &w_dec / w_dec.f_norm_scalaropt_dim(2, [1], true)? * norm;
        }
        let w_enc = w_dec.f_t_copy()?.f_contiguous()?;
        let zeros = |n: i64| Tensor::zeros([n], opts);
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let arch = cfg.architecture;
        Ok(Self {
            w_enc,
            w_dec,
            b_enc: (arch != Architecture::Gated).then(|| zeros(d_sae)),
            b_dec: zeros(d_in),
            threshold: (arch == Architecture::JumpRelu).then(|| zeros(d_sae) + 0.01),
            b_gate: (arch == Architecture::Gated).then(|| zeros(d_sae)),
            b_mag: (arch == Architecture::Gated).then(|| zeros(d_sae)),
            r_mag: (arch == Architecture::Gated).then(|| zeros(d_sae)),
            cfg,
        })
    }

    /// The names of [`Sae::named_parameters`], in its order (that of [`Sae::parameters_mut`]).
    pub fn parameter_names(&self) -> Vec<&'static str> {
        self.named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// The parameters by SAELens' state-dict names, in a fixed order.
    pub fn named_parameters(&self) -> Vec<(&'static str, &Tensor)> {
        let mut out = vec![("W_enc", &self.w_enc), ("W_dec", &self.w_dec)];
        let optional = [
            ("b_enc", &self.b_enc),
            ("threshold", &self.threshold),
            ("b_gate", &self.b_gate),
            ("b_mag", &self.b_mag),
            ("r_mag", &self.r_mag),
        ];
        out.extend(
            optional
                .into_iter()
                .filter_map(|(n, t)| t.as_ref().map(|t| (n, t))),
        );
        out.push(("b_dec", &self.b_dec));
        out
    }

    /// Mutable parameters, in the order of [`Sae::named_parameters`].
    pub fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut out = vec![&mut self.w_enc, &mut self.w_dec];
        for t in [
            &mut self.b_enc,
            &mut self.threshold,
            &mut self.b_gate,
            &mut self.b_mag,
            &mut self.r_mag,
        ]
        .into_iter()
        .flatten()
        {
            out.push(t);
        }
        out.push(&mut self.b_dec);
        out
    }

    /// The parameters' device.
    pub fn device(&self) -> Device {
        self.w_enc.device()
    }

    /// Moves the parameters to `device`.
    ///
    /// # Errors
    /// [`Error::Torch`] when the device cannot be used.
    pub fn to_device(mut self, device: Device) -> Result<Self> {
        for t in self.parameters_mut() {
            *t = t.f_to_device(device)?;
        }
        Ok(self)
    }

    /// Latent activations of `x`.
    ///
    /// # Shapes
    /// `x`: `[..., d_in]` (`[..., n_heads, d_head]` for a `hook_z` SAE) → `[..., d_sae]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the last dim is not `d_in`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.encode_with(x, &mut Sites::none())?.acts)
    }

    /// Reconstruction from latent activations: `acts · W_dec + b_dec`.
    ///
    /// Stateless, unlike SAELens' `decode`: a `constant_norm_rescale` reconstruction stays in
    /// the normalised scale and a `hook_z` one stays flat (`[..., n_heads·d_head]`);
    /// [`Sae::forward`] undoes both.
    ///
    /// # Shapes
    /// `acts`: `[..., d_sae]` → `[..., d_in]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the last dim is not `d_sae`.
    pub fn decode(&self, acts: &Tensor) -> Result<Tensor> {
        self.check_last_dim("SAE latents", acts, self.cfg.d_sae, "d_sae")?;
        self.decode_dense(acts)
    }

    /// Encode then decode (the reconstruction, de-normalised; no error term).
    ///
    /// # Shapes
    /// `x`: `[..., d_in]` → `[..., d_in]`.
    ///
    /// # Errors
    /// As [`Sae::encode`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, false, &mut Sites::none())
    }

    /// Latents and reconstruction from one encode (what [`Sae::encode`] and
    /// [`Sae::forward`] give, without running the encoder twice).
    ///
    /// # Shapes
    /// `x`: `[..., d_in]` → (`[..., d_sae]`, `[..., d_in]`).
    ///
    /// # Errors
    /// As [`Sae::encode`].
    pub fn encode_decode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let encoded = self.encode_with(x, &mut Sites::none())?;
        let recon = self.decode_with(&encoded, &mut Sites::none())?;
        Ok((encoded.acts, recon))
    }

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

    fn decode_dense(&self, acts: &Tensor) -> Result<Tensor> {
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

    /// Norms of the decoder rows, `[d_sae]`, clamped away from 0 as SAELens does.
    ///
    /// # Errors
    /// [`Error::Torch`] only on a libtorch failure.
    pub fn decoder_norms(&self) -> Result<Tensor> {
        Ok(self
            .w_dec
            .f_norm_scalaropt_dim(2, [1], false)?
            .f_clamp_min(1e-8)?)
    }

    fn check_last_dim(&self, what: &str, t: &Tensor, want: i64, name: &str) -> Result<()> {
        let shape = t.size();
        if shape.last() != Some(&want) {
            return Err(Error::ShapeMismatch {
                what: what.to_string(),
                expected: format!("[..., {name}={want}]"),
                got: shape,
            });
        }
        Ok(())
    }
}

/// A `[shape]` float tensor uniform in `[low, high)` from a SplitMix64 stream.
/// `Σ_j values[n, j] · W_dec[indices[n, j]]` (no bias) for `values`, `indices` `[n, k]`,
/// without the dense `[n, d_sae]` product; with `norms`, each value is first divided by its
/// latent's decoder norm (`rescale_acts_by_decoder_norm`).
pub(crate) fn decode_rows(
    w_dec: &Tensor,
    values: &Tensor,
    indices: &Tensor,
    norms: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, k) = (values.size()[0], values.size()[1]);
    let flat = indices.f_flatten(0, -1)?;
    let mut weights = values.f_flatten(0, -1)?;
    if let Some(norms) = norms {
        weights = weights.f_div(&norms.f_index_select(0, &flat)?)?;
    }
    let offsets = Tensor::f_arange_start_step(0, n * k, k, (Kind::Int64, values.device()))?;
    bag_sums(w_dec, &flat, &offsets, &weights)
}

/// `Σ weights[i] · table[indices[i]]` over each bag of `indices` starting at `offsets`:
/// libtorch's embedding bag in sum mode (an empty bag gives zeros). `[n_bags, d]`.
pub(crate) fn bag_sums(
    table: &Tensor,
    indices: &Tensor,
    offsets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let (out, _, _, _) = Tensor::f_embedding_bag(
        table,
        indices,
        offsets,
        false,
        0,
        false,
        Some(weights),
        false,
    )?;
    Ok(out)
}

pub(crate) fn uniform(shape: &[i64], low: f64, high: f64, seed: u64) -> Result<Tensor> {
    let n: i64 = shape.iter().product();
    let mut rng = mechlens_core::SplitMix64::new(seed);
    let values: Vec<f32> = (0..n)
        .map(|_| (low + (high - low) * rng.uniform()) as f32)
        .collect();
    Ok(Tensor::from_slice(&values).f_reshape(shape)?)
}
