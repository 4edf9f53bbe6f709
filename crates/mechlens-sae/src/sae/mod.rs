//! [`Sae`]: a sparse autoencoder's parameters and its encode / decode / forward, following
//! SAELens' inference classes (`StandardSAE`, `TopKSAE`, `JumpReLUSAE`, `GatedSAE`) step for
//! step, so that the same weights give the same latents.
//!
//! Forward order (each step a hook site when the SAE is spliced into a model):
//! input → `hook_sae_input` → normalise → − b_dec → pre-activations → `hook_sae_acts_pre` →
//! activation → `hook_sae_acts_post` → · W_dec + b_dec → `hook_sae_recons` → de-normalise →
//! (+ error term) → `hook_sae_output` (in `forward`; sparse decoding in `rows`).

use mechlens_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, SaeConfig};

mod forward;
mod rows;

pub(crate) use forward::Sites;
pub(crate) use rows::{bag_sums, decode_rows};

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
pub(crate) fn uniform(shape: &[i64], low: f64, high: f64, seed: u64) -> Result<Tensor> {
    let n: i64 = shape.iter().product();
    let mut rng = mechlens_core::SplitMix64::new(seed);
    let values: Vec<f32> = (0..n)
        .map(|_| (low + (high - low) * rng.uniform()) as f32)
        .collect();
    Ok(Tensor::from_slice(&values).f_reshape(shape)?)
}
