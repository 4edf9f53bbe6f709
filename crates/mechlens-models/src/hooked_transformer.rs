//! [`HookedTransformer`]: a decoder whose every activation can be read or changed by its
//! TransformerLens name. Raw weights by default, so logits equal Hugging Face's.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use mechlens_core::{
    ActivationCache, CacheFilter, Error, Hook, HookPoint, HookSession, Hooks, IntoHookPoint,
    Result, SaeSite,
};
use tch::{Device, Kind, Tensor};

use crate::architectures::{self, DecoderWeights};
use crate::components::{Attention, AttnContext, Block, Embed, LayerKv, Norm, Rotary, affine};
use crate::config::{ModelConfig, Positional};
use crate::input::{ModelInput, Tokens, check_tokens};
use crate::processing::Processing;
use crate::resolve::Hub;
use crate::tokenizer::Tokenizer;
use crate::weights::WeightStore;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Weight dtype: `Kind::Float` (default), `Kind::BFloat16`, `Kind::Half`.
    pub kind: Kind,
    /// Where the weights live.
    pub device: Device,
    /// Weight processing; none by default (logits equal Hugging Face's).
    pub processing: Processing,
    /// Where to look for and download models; from the environment by default.
    pub hub: Hub,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            kind: Kind::Float,
            device: Device::Cpu,
            processing: Processing::none(),
            hub: Hub::from_env(),
        }
    }
}

impl LoadOptions {
    /// Defaults with TransformerLens' `from_pretrained` processing.
    pub fn transformer_lens() -> Self {
        Self {
            processing: Processing::transformer_lens(),
            ..Self::default()
        }
    }
}

/// The modules of a decoder (kept apart from the hooks so a forward can borrow both).
pub(crate) struct Modules {
    pub(crate) cfg: ModelConfig,
    pub(crate) embed: Embed,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_final: Norm,
    pub(crate) w_u: Tensor,
    pub(crate) b_u: Option<Tensor>,
}

/// Per-layer key/value cache for generation.
#[derive(Default)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    /// Attention mask over every position seen so far, `[batch, len]`.
    pub(crate) mask: Option<Tensor>,
    pub(crate) len: i64,
}

/// A transformer decoder with TransformerLens hook points.
///
/// ```no_run
/// use mechlens_models::{HookedTransformer, LoadOptions};
/// use mechlens_core::CacheFilter;
/// let model = HookedTransformer::from_pretrained("gpt2", LoadOptions::default())?;
/// let (logits, cache) = model.run_with_cache("Hello world", CacheFilter::All)?;
/// let pattern = cache.get("blocks.0.attn.hook_pattern")?; // [batch, head, query, key]
/// # Ok::<(), mechlens_core::Error>(())
/// ```
pub struct HookedTransformer {
    pub(crate) m: Modules,
    tokenizer: Option<Tokenizer>,
    hooks: RefCell<Hooks<'static>>,
    device: Device,
}

impl HookedTransformer {
    /// Loads a Hugging Face model: a local folder, else the hub cache, else a download
    /// (see [`Hub`]).
    ///
    /// # Errors
    /// Missing or malformed files, unsupported architectures, weights of the wrong shape.
    pub fn from_pretrained(name_or_path: &str, opts: LoadOptions) -> Result<Self> {
        let dir = opts.hub.resolve(name_or_path)?;
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            action: "reading",
            path: config_path.clone(),
            source,
        })?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: config_path.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        if !config.is_object() {
            return Err(Error::Config {
                path: config_path.display().to_string(),
                reason: "expected a JSON object".into(),
            });
        }
        let store = WeightStore::from_folder(&dir, opts.kind, opts.device)?;
        let (cfg, weights) = architectures::load_decoder(&config, &config_path, &store)?;
        let tokenizer = load_tokenizer(&dir)?;
        let mut model = Self::from_parts(cfg, weights, tokenizer, opts.device)?;
        model.process_weights(&opts.processing)?;
        Ok(model)
    }

    /// Loads a llama2.c checkpoint, with its SentencePiece tokenizer when given.
    ///
    /// # Errors
    /// See [`architectures::llama2c::load`] and [`Tokenizer::from_sentencepiece`].
    pub fn from_llama2c(
        model_bin: &Path,
        tokenizer_model: Option<&Path>,
        opts: LoadOptions,
    ) -> Result<Self> {
        let (cfg, weights) = architectures::llama2c::load(model_bin, opts.kind, opts.device)?;
        let tokenizer = tokenizer_model
            .map(Tokenizer::from_sentencepiece)
            .transpose()?;
        let mut model = Self::from_parts(cfg, weights, tokenizer, opts.device)?;
        model.process_weights(&opts.processing)?;
        Ok(model)
    }

    /// Builds a model from a config and weights already in the shared layout.
    ///
    /// # Errors
    /// [`Error::Config`] for an inconsistent config.
    pub fn from_parts(
        cfg: ModelConfig,
        w: DecoderWeights,
        tokenizer: Option<Tokenizer>,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        // Without this every pass page-faults its activations in anew (see the module).
        mechlens_core::allocator::keep_freed_memory();
        let rotary = match &cfg.positional {
            Positional::Rotary(r) => Some(Rc::new(Rotary::new(r, cfg.n_ctx, device)?)),
            Positional::Learned => None,
        };
        let blocks = w
            .layers
            .into_iter()
            .enumerate()
            .map(|(layer, lw)| Block {
                layer,
                ln1: lw.ln1,
                attn: Attention {
                    w_q: lw.attn.w_q,
                    b_q: lw.attn.b_q,
                    w_k: lw.attn.w_k,
                    b_k: lw.attn.b_k,
                    w_v: lw.attn.w_v,
                    b_v: lw.attn.b_v,
                    w_o: lw.attn.w_o,
                    b_o: lw.attn.b_o,
                    n_heads: cfg.n_heads as i64,
                    n_kv_heads: cfg.n_kv_heads as i64,
                    d_head: cfg.d_head as i64,
                    attn_scale: cfg.attn_scale,
                    window: cfg.windows[layer].map(|w| w as i64),
                    rotary: rotary.clone(),
                    use_result: false,
                },
                ln2: lw.ln2,
                mlp: lw.mlp,
                parallel: cfg.parallel_residual,
                split_qkv_input: false,
                attn_in: false,
                mlp_in: false,
            })
            .collect();
        let mut tokenizer = tokenizer;
        if let Some(t) = tokenizer.as_mut() {
            t.bos_token_id = t.bos_token_id.or(cfg.bos_token_id);
            t.eos_token_id = t.eos_token_id.or(cfg.eos_token_id);
            t.pad_token_id = t.pad_token_id.or(cfg.pad_token_id);
        }
        Ok(Self {
            m: Modules {
                cfg,
                embed: w.embed,
                blocks,
                ln_final: w.ln_final,
                w_u: w.w_u,
                b_u: w.b_u,
            },
            tokenizer,
            hooks: RefCell::new(Hooks::new()),
            device,
        })
    }

    /// The model's configuration.
    pub fn cfg(&self) -> &ModelConfig {
        &self.m.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The tokenizer, if the model has one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// The tokenizer, or an error saying the model has none.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the model was loaded without one.
    pub fn require_tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| Error::invalid("tokenizer", "this model was loaded without a tokenizer"))
    }

    /// Computes per-head attention results (`attn.hook_result`) in every run.
    pub fn set_use_attn_result(&mut self, on: bool) {
        self.m
            .blocks
            .iter_mut()
            .for_each(|b| b.attn.use_result = on);
    }

    /// Computes per-head query/key/value inputs (`hook_q_input`...) in every run.
    pub fn set_use_split_qkv_input(&mut self, on: bool) {
        self.m
            .blocks
            .iter_mut()
            .for_each(|b| b.split_qkv_input = on);
    }

    /// Computes `hook_attn_in` in every run.
    pub fn set_use_attn_in(&mut self, on: bool) {
        self.m.blocks.iter_mut().for_each(|b| b.attn_in = on);
    }

    /// Computes `hook_mlp_in` in every run.
    pub fn set_use_hook_mlp_in(&mut self, on: bool) {
        self.m.blocks.iter_mut().for_each(|b| b.mlp_in = on);
    }

    /// Every hook point this model fires, in forward order. Opt-in points appear once enabled
    /// (they also fire whenever a hook or cache filter names them).
    pub fn hook_points(&self) -> Vec<HookPoint> {
        use HookPoint::*;
        let cfg = &self.m.cfg;
        let mut points = vec![Embed];
        if self.m.embed.w_pos.is_some() {
            points.push(PosEmbed);
        }
        let rotary = matches!(cfg.positional, Positional::Rotary(_));
        for b in &self.m.blocks {
            let l = b.layer;
            points.push(ResidPre(l));
            if b.attn_in {
                points.push(AttnIn(l));
            } else if b.split_qkv_input {
                points.extend([QInput(l), KInput(l), VInput(l)]);
            }
            points.extend([Ln1Scale(l), Ln1Normalized(l), Q(l), K(l), V(l)]);
            if rotary {
                points.extend([RotQ(l), RotK(l)]);
            }
            points.extend([AttnScores(l), Pattern(l), Z(l)]);
            if b.attn.use_result {
                points.push(Result(l));
            }
            points.push(AttnOut(l));
            if !b.parallel {
                points.push(ResidMid(l));
            }
            if b.mlp_in {
                points.push(MlpIn(l));
            }
            points.extend([Ln2Scale(l), Ln2Normalized(l), MlpPre(l)]);
            if b.mlp.w_gate.is_some() {
                points.push(MlpPreLinear(l));
            }
            points.extend([MlpPost(l), MlpOut(l), ResidPost(l)]);
        }
        points.extend([LnFinalScale, LnFinalNormalized, UnembedIn, UnembedOut]);
        // A spliced SAE's hooks follow the point it is spliced in at.
        let anchors = self
            .hooks
            .try_borrow()
            .map(|h| h.splice_points())
            .unwrap_or_default();
        if !anchors.is_empty() {
            for anchor in anchors {
                points.extend(SaeSite::ALL.iter().filter_map(|s| anchor.sae(*s).ok()));
            }
            points.sort_by_key(HookPoint::forward_order);
            points.dedup();
        }
        points
    }

    /// Every hook point this model could fire, opt-in ones included.
    fn possible_hook_points(&self) -> Vec<HookPoint> {
        let mut points = self.hook_points();
        for l in 0..self.m.cfg.n_layers {
            points.extend([
                HookPoint::AttnIn(l),
                HookPoint::QInput(l),
                HookPoint::KInput(l),
                HookPoint::VInput(l),
                HookPoint::Result(l),
                HookPoint::MlpIn(l),
            ]);
        }
        points
    }

    /// Parses a hook name and checks the model has it.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] with the closest names this model has.
    pub fn hook_point(&self, name: impl IntoHookPoint) -> Result<HookPoint> {
        let valid = self.possible_hook_points();
        match name.into_hook_point() {
            Ok(p) if valid.contains(&p) => Ok(p),
            Ok(p) => HookPoint::parse_for(&p.to_string(), &valid),
            Err(Error::UnknownHook { name, .. }) => HookPoint::parse_for(&name, &valid),
            Err(e) => Err(e),
        }
    }

    fn check_hooks(&self, points: &[HookPoint]) -> Result<()> {
        points
            .iter()
            .try_for_each(|p| self.hook_point(*p).map(|_| ()))
    }

    /// Adds a hook that stays for every later run until [`HookedTransformer::reset_hooks`].
    ///
    /// # Errors
    /// [`Error::UnknownHook`].
    pub fn add_hook(&self, point: impl IntoHookPoint, hook: Hook<'static>) -> Result<()> {
        let point = self.hook_point(point)?;
        self.persistent()?.push(point, hook);
        Ok(())
    }

    /// Removes every persistent hook.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    pub fn reset_hooks(&self) -> Result<()> {
        self.persistent()?.clear();
        Ok(())
    }

    /// Removes the spliced modules (SAEs), keeping the other persistent hooks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    pub fn reset_splices(&self) -> Result<()> {
        self.persistent()?.clear_splices();
        Ok(())
    }

    /// The width of the last dim(s) of the activation at `point` as an SAE reads it
    /// (`d_model` on the residual stream, `d_mlp` in the MLP, `n_heads·d_head` for per-head
    /// hooks), or `None` for points without one (patterns, LayerNorm scales).
    pub fn hook_width(&self, point: HookPoint) -> Option<i64> {
        use HookPoint::*;
        let cfg = &self.m.cfg;
        let width = match point {
            Embed | PosEmbed | TokenTypeEmbed | FullEmbed | ResidPre(_) | AttnIn(_) | QInput(_)
            | KInput(_) | VInput(_) | Ln1Normalized(_) | AttnOut(_) | ResidMid(_) | MlpIn(_)
            | Ln2Normalized(_) | MlpOut(_) | ResidPost(_) | LnFinalNormalized | UnembedIn => {
                cfg.d_model
            }
            MlpPre(_) | MlpPreLinear(_) | MlpPost(_) => cfg.d_mlp,
            Q(_) | RotQ(_) | Z(_) => cfg.n_heads * cfg.d_head,
            K(_) | V(_) | RotK(_) => cfg.n_kv_heads * cfg.d_head,
            _ => return None,
        };
        i64::try_from(width).ok()
    }

    pub(crate) fn persistent(&self) -> Result<std::cell::RefMut<'_, Hooks<'static>>> {
        self.hooks.try_borrow_mut().map_err(|_| {
            Error::invalid(
                "hooks",
                "a hook cannot run or change the model it is hooked into",
            )
        })
    }

    /// Checks and moves tokens to the model's device, as `[batch, pos]` int64.
    pub(crate) fn check_tokens(&self, tokens: &Tensor, past_len: i64) -> Result<Tensor> {
        let cfg = &self.m.cfg;
        let tokens = check_tokens(tokens, cfg.d_vocab, cfg.n_ctx, past_len)?;
        Ok(tokens.f_to_device(self.device)?)
    }

    /// One forward with only the persistent hooks, without gradients.
    fn run_plain(
        &self,
        start: Start,
        mask: Option<&Tensor>,
        stop: Option<usize>,
    ) -> Result<Tensor> {
        let mut hooks = self.persistent()?;
        let mut s = HookSession::none().with_persistent(&mut hooks);
        let _guard = tch::no_grad_guard();
        self.m.run(start, mask, stop, None, &mut s)
    }

    pub(crate) fn input(
        &self,
        input: &(impl ModelInput + ?Sized),
        past_len: i64,
    ) -> Result<Tokens> {
        let Tokens {
            tokens,
            attention_mask,
        } = input.to_tokens(self.tokenizer.as_ref())?;
        let tokens = self.check_tokens(&tokens, past_len)?;
        let attention_mask = match attention_mask {
            Some(mask) if mask.size() != tokens.size() => {
                return Err(Error::ShapeMismatch {
                    what: "attention_mask".into(),
                    expected: format!("{:?} (the tokens' shape)", tokens.size()),
                    got: mask.size(),
                });
            }
            Some(mask) => Some(mask.f_to_device(self.device)?),
            None => None,
        };
        Ok(Tokens {
            tokens,
            attention_mask,
        })
    }

    /// Logits of `input`.
    ///
    /// # Shapes
    /// - `input`: tokens `[batch, pos]` (or `[pos]`, or text) → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// Bad tokens (empty, out of vocabulary, too long), or a persistent hook's error.
    pub fn forward(&self, input: impl ModelInput) -> Result<Tensor> {
        let t = self.input(&input, 0)?;
        self.run_plain(Start::Tokens(&t.tokens), t.attention_mask.as_ref(), None)
    }

    /// Runs with `hooks` active for this run only; returns the logits.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a hook point the model lacks; a hook's own error;
    /// [`Error::ShapeMismatch`] for a replacement of the wrong shape.
    pub fn run_with_hooks(&self, input: impl ModelInput, mut hooks: Hooks<'_>) -> Result<Tensor> {
        self.check_hooks(&hooks.points())?;
        let t = self.input(&input, 0)?;
        let mut persistent = self.persistent()?;
        let mut s = HookSession::none()
            .with_persistent(&mut persistent)
            .with_hooks(&mut hooks);
        let _guard = tch::no_grad_guard();
        self.m.run(
            Start::Tokens(&t.tokens),
            t.attention_mask.as_ref(),
            None,
            None,
            &mut s,
        )
    }

    /// Runs and records the activations `filter` keeps. Returns `(logits, cache)`.
    ///
    /// # Errors
    /// As [`HookedTransformer::forward`]; [`Error::UnknownHook`] for a filter name the model lacks.
    pub fn run_with_cache(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
    ) -> Result<(Tensor, ActivationCache)> {
        self.run_with_hooks_and_cache(input, Hooks::new(), filter, None)
    }

    /// Runs with `hooks` and records what `filter` keeps, moving cached tensors to
    /// `cache_device` when given (e.g. `Some(Device::Cpu)` to spare GPU memory).
    ///
    /// # Errors
    /// See [`HookedTransformer::run_with_hooks`].
    pub fn run_with_hooks_and_cache(
        &self,
        input: impl ModelInput,
        mut hooks: Hooks<'_>,
        filter: CacheFilter,
        cache_device: Option<Device>,
    ) -> Result<(Tensor, ActivationCache)> {
        self.check_hooks(&hooks.points())?;
        if let CacheFilter::Names(points) = &filter {
            self.check_hooks(points)?;
        }
        let t = self.input(&input, 0)?;
        let mut persistent = self.persistent()?;
        let mut s = HookSession::none()
            .with_persistent(&mut persistent)
            .with_hooks(&mut hooks)
            .with_cache(&filter, cache_device);
        let _guard = tch::no_grad_guard();
        let logits = self.m.run(
            Start::Tokens(&t.tokens),
            t.attention_mask.as_ref(),
            None,
            None,
            &mut s,
        )?;
        Ok((logits, s.into_cache()))
    }

    /// Gradients of a scalar `metric(logits)` with respect to the activations `filter` keeps
    /// (TransformerLens' backward hooks). Returns `(metric value, gradients by hook point)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the metric is not a scalar; the forward's errors.
    pub fn gradients(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
        metric: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<(f64, ActivationCache)> {
        let (value, _, grads) = self.gradients_with_activations(input, filter, metric)?;
        Ok((value, grads))
    }

    /// [`HookedTransformer::gradients`] that also returns the activations themselves (detached),
    /// from the same forward pass: `(metric value, activations, gradients)`. Attribution
    /// patching needs both.
    ///
    /// # Errors
    /// As [`HookedTransformer::gradients`].
    pub fn gradients_with_activations(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
        metric: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<(f64, ActivationCache, ActivationCache)> {
        if let CacheFilter::Names(points) = &filter {
            self.check_hooks(points)?;
        }
        let t = self.input(&input, 0)?;
        let mut persistent = self.persistent()?;
        let mut s = HookSession::none()
            .with_persistent(&mut persistent)
            .with_cache(&filter, None)
            .tracking_gradients();
        let logits = self.m.run(
            Start::Tokens(&t.tokens),
            t.attention_mask.as_ref(),
            None,
            None,
            &mut s,
        )?;
        // Release the hooks before user code runs: the metric may run the model again.
        let acts = s.into_cache();
        drop(persistent);
        let value = metric(&logits)?;
        if value.numel() != 1 {
            return Err(Error::ShapeMismatch {
                what: "metric".into(),
                expected: "a scalar (one element)".into(),
                got: value.size(),
            });
        }
        let (points, tensors): (Vec<HookPoint>, Vec<Tensor>) =
            acts.iter().map(|(p, t)| (*p, t.shallow_clone())).unzip();
        let grads = Tensor::f_run_backward(&[&value], &tensors, false, false)?;
        let (mut out_acts, mut out_grads) = (ActivationCache::new(), ActivationCache::new());
        for ((point, act), grad) in points.into_iter().zip(&tensors).zip(grads) {
            let grad = if grad.defined() {
                grad
            } else {
                act.zeros_like()
            };
            out_grads.insert(point, grad.detach());
            out_acts.insert(point, act.detach());
        }
        Ok((value.f_double_value(&[])?, out_acts, out_grads))
    }

    /// Mean next-token cross-entropy loss (a scalar).
    ///
    /// # Errors
    /// As [`HookedTransformer::forward`]; [`Error::InvalidInput`] for a single-token input.
    pub fn loss(&self, input: impl ModelInput) -> Result<Tensor> {
        let t = self.input(&input, 0)?;
        let per_token = self.per_token_loss_of(&t)?;
        match &t.attention_mask {
            Some(mask) => {
                let m = mask
                    .f_narrow(1, 1, per_token.size()[1])?
                    .f_to_kind(Kind::Float)?;
                Ok(per_token
                    .f_mul(&m)?
                    .f_sum(Kind::Float)?
                    .f_div(&m.f_sum(Kind::Float)?)?)
            }
            None => Ok(per_token.f_mean(Kind::Float)?),
        }
    }

    /// Next-token loss at each position: `[batch, pos - 1]`.
    ///
    /// # Errors
    /// As [`HookedTransformer::loss`].
    pub fn per_token_loss(&self, input: impl ModelInput) -> Result<Tensor> {
        let t = self.input(&input, 0)?;
        self.per_token_loss_of(&t)
    }

    fn per_token_loss_of(&self, t: &Tokens) -> Result<Tensor> {
        let p = t.tokens.size()[1];
        if p < 2 {
            return Err(Error::invalid("input", "a loss needs at least two tokens"));
        }
        let logits = self.run_plain(Start::Tokens(&t.tokens), t.attention_mask.as_ref(), None)?;
        let logp = logits
            .f_narrow(1, 0, p - 1)?
            .f_log_softmax(-1, Kind::Float)?;
        let next = t.tokens.f_narrow(1, 1, p - 1)?.f_unsqueeze(-1)?;
        Ok(logp
            .f_gather(-1, &next, false)?
            .f_squeeze_dim(-1)?
            .f_neg()?)
    }

    /// The residual stream entering block `stop_at_layer` (TransformerLens' `stop_at_layer`).
    ///
    /// # Shapes
    /// → `[batch, pos, d_model]`
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a layer past `n_layers`.
    pub fn forward_to_layer(&self, input: impl ModelInput, stop_at_layer: usize) -> Result<Tensor> {
        self.check_layer("stop_at_layer", stop_at_layer)?;
        let t = self.input(&input, 0)?;
        self.run_plain(
            Start::Tokens(&t.tokens),
            t.attention_mask.as_ref(),
            Some(stop_at_layer),
        )
    }

    /// The activation at `point` alone, running only as far as it needs: blocks after the
    /// hook's layer are skipped (TransformerLens' `run_with_cache(names_filter=…,
    /// stop_at_layer=layer + 1)`). Persistent hooks and spliced SAEs apply as in a full run.
    ///
    /// # Shapes
    /// → the hook's shape, e.g. `[batch, pos, d_model]` on the residual stream.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a point the model lacks; the forward's errors.
    pub fn run_to_hook(&self, input: impl ModelInput, point: HookPoint) -> Result<Tensor> {
        self.check_hooks(&[point])?;
        let t = self.input(&input, 0)?;
        let filter = CacheFilter::Names(vec![point]);
        let mut persistent = self.persistent()?;
        let mut s = HookSession::none()
            .with_persistent(&mut persistent)
            .with_cache(&filter, None);
        let _guard = tch::no_grad_guard();
        // After the last block this still skips the final norm and the unembedding.
        let stop = point
            .layer()
            .map(|l| l + 1)
            .filter(|&l| l <= self.m.blocks.len());
        let _ = self.m.run(
            Start::Tokens(&t.tokens),
            t.attention_mask.as_ref(),
            stop,
            None,
            &mut s,
        )?;
        s.into_cache().get(point).map(|t| t.shallow_clone())
    }

    /// Logits from a residual stream entering block `start_at_layer` (TransformerLens'
    /// `start_at_layer`).
    ///
    /// # Shapes
    /// - `residual`: `[batch, pos, d_model]` → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a residual of the wrong shape; [`Error::InvalidInput`] for a
    /// layer past `n_layers`.
    pub fn forward_from_layer(&self, residual: &Tensor, start_at_layer: usize) -> Result<Tensor> {
        self.forward_from_layer_with_hooks(residual, start_at_layer, Hooks::new())
    }

    /// [`HookedTransformer::forward_from_layer`] with `hooks` active in the blocks it runs
    /// (hooks on earlier layers or the embeddings never fire). Activation patching uses it to
    /// rerun only what a patch can change.
    ///
    /// # Shapes
    /// - `residual`: `[batch, pos, d_model]` → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// As [`HookedTransformer::forward_from_layer`] and [`HookedTransformer::run_with_hooks`].
    pub fn forward_from_layer_with_hooks(
        &self,
        residual: &Tensor,
        start_at_layer: usize,
        mut hooks: Hooks<'_>,
    ) -> Result<Tensor> {
        self.check_hooks(&hooks.points())?;
        self.check_layer("start_at_layer", start_at_layer)?;
        let d = self.m.cfg.d_model as i64;
        mechlens_core::shape::expect_shape(residual, "residual", &[None, None, Some(d)])?;
        let residual = residual.f_to_device(self.device)?;
        let mut persistent = self.persistent()?;
        let mut s = HookSession::none()
            .with_persistent(&mut persistent)
            .with_hooks(&mut hooks);
        let _guard = tch::no_grad_guard();
        self.m.run(
            Start::Residual(&residual, start_at_layer),
            None,
            None,
            None,
            &mut s,
        )
    }

    fn check_layer(&self, what: &str, layer: usize) -> Result<()> {
        let n = self.m.cfg.n_layers;
        if layer > n {
            return Err(Error::invalid(
                what,
                format!("layer {layer} is past the model's {n} layers (0..={n})"),
            ));
        }
        Ok(())
    }

    /// Tokens of `text` as `[1, pos]`.
    ///
    /// # Errors
    /// No tokenizer, or text that yields no tokens.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<Tensor> {
        self.require_tokenizer()?.to_tokens(text, prepend_bos)
    }

    /// Each token of `text` as a string.
    ///
    /// # Errors
    /// No tokenizer.
    pub fn to_str_tokens(&self, text: &str, prepend_bos: bool) -> Result<Vec<String>> {
        self.require_tokenizer()?.to_str_tokens(text, prepend_bos)
    }

    /// Text of a `[pos]` or `[1, pos]` token tensor.
    ///
    /// # Errors
    /// No tokenizer, another shape, ids out of range.
    pub fn to_string(&self, tokens: &Tensor) -> Result<String> {
        self.require_tokenizer()?.tokens_to_string(tokens)
    }

    /// The id of a one-token string.
    ///
    /// # Errors
    /// No tokenizer, or the string is not exactly one token.
    pub fn to_single_token(&self, text: &str) -> Result<i64> {
        self.require_tokenizer()?.to_single_token(text)
    }
}

/// Where a forward pass starts.
pub(crate) enum Start<'t> {
    /// From token ids.
    Tokens(&'t Tensor),
    /// From a residual stream entering a block.
    Residual(&'t Tensor, usize),
}

impl Modules {
    /// The forward pass. Returns logits, or the residual entering `stop` when given.
    pub(crate) fn run(
        &self,
        start: Start,
        mask: Option<&Tensor>,
        stop: Option<usize>,
        mut kv: Option<&mut KvCache>,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        let past_len = kv.as_ref().map_or(0, |c| c.len);
        let (mut x, first, b, p, device) = match start {
            Start::Tokens(tokens) => {
                let size = tokens.size();
                (None, 0, size[0], size[1], tokens.device())
            }
            Start::Residual(r, layer) => {
                let size = r.size();
                (Some(r.shallow_clone()), layer, size[0], size[1], r.device())
            }
        };
        // Positions: counted over real tokens when there is padding, so a left-padded
        // sequence sees the positions it would see alone.
        let full_mask = match (&mut kv, mask) {
            (Some(cache), Some(m)) => {
                let all = match &cache.mask {
                    Some(prev) => Tensor::f_cat(&[prev, m], 1)?,
                    None => m.shallow_clone(),
                };
                cache.mask = Some(all.shallow_clone());
                Some(all)
            }
            (Some(cache), None) => cache
                .mask
                .as_ref()
                .map(|prev| -> Result<Tensor> {
                    let ones = Tensor::f_ones([b, p], (Kind::Int64, device))?;
                    Ok(Tensor::f_cat(&[prev, &ones], 1)?)
                })
                .transpose()?
                .inspect(|all| cache.mask = Some(all.shallow_clone())),
            (None, m) => m.map(Tensor::shallow_clone),
        };
        let positions = match &full_mask {
            Some(m) => m
                .f_cumsum(1, Kind::Int64)?
                .f_sub_scalar(1)?
                .f_clamp_min(0)?
                .f_narrow(1, past_len, p)?,
            None => Tensor::f_arange_start(past_len, past_len + p, (Kind::Int64, device))?
                .f_unsqueeze(0)?
                .f_expand([b, p], false)?,
        };
        if let Start::Tokens(tokens) = start {
            x = Some(self.embed.forward(tokens, &positions, s)?);
        }
        let mut x = x.unwrap_or_else(Tensor::new);
        let key_mask = full_mask.as_ref().map(|m| m.f_ne(0)).transpose()?;
        let ctx = AttnContext {
            positions: &positions,
            key_mask: key_mask.as_ref(),
            past_len,
            causal: true,
        };
        let last = stop.unwrap_or(self.blocks.len());
        for block in &self.blocks[first.min(last)..last] {
            let layer_kv = kv.as_mut().map(|c| {
                if c.layers.len() < self.blocks.len() {
                    c.layers.resize_with(self.blocks.len(), LayerKv::default);
                }
                &mut c.layers[block.layer]
            });
            x = block.forward(x, &ctx, layer_kv, s)?;
        }
        if let Some(cache) = kv {
            cache.len += p;
        }
        if stop.is_some() {
            return Ok(x);
        }
        let x =
            self.ln_final
                .forward(&x, HookPoint::LnFinalScale, HookPoint::LnFinalNormalized, s)?;
        let x = s.hook(HookPoint::UnembedIn, x)?;
        let logits = affine(&x, &self.w_u, self.b_u.as_ref())?;
        s.hook(HookPoint::UnembedOut, logits)
    }
}

fn load_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Tokenizer::from_hf_file(&json).map(Some);
    }
    let sp = dir.join("tokenizer.model");
    if sp.is_file() {
        return Tokenizer::from_sentencepiece(&sp).map(Some);
    }
    Ok(None)
}
