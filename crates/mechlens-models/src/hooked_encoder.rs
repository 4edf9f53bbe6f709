//! [`HookedEncoder`]: BERT (Devlin et al. 2019) with TransformerLens' `HookedEncoder` hook
//! points. The checkpoint is read by `architectures/bert.rs`; the embedding and the post-norm
//! blocks are components (`EncoderEmbed`, `EncoderBlock`); input is read and checked as the
//! decoder reads it.

use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, HookSession, Hooks, Result};
use tch::{Device, Kind, Tensor};

use crate::architectures::{self, bert, bert::BertConfig};
use crate::components::{AttnContext, EncoderBlock, EncoderEmbed, affine};
use crate::hooked_transformer::LoadOptions;
use crate::input::{InputLimits, ModelInput, read_input};
use crate::tokenizer::Tokenizer;
use mechlens_checkpoint::Checkpoint;

/// What an encoder returns.
pub struct EncoderOutput {
    /// Final hidden states, `[batch, pos, d_model]`.
    pub last_hidden_state: Tensor,
    /// `tanh(W · h[CLS] + b)`, `[batch, d_model]`, when the checkpoint has a pooler.
    pub pooler_output: Option<Tensor>,
}

/// A BERT encoder with hook points.
pub struct HookedEncoder {
    /// The checkpoint's config.
    pub cfg: BertConfig,
    embed: EncoderEmbed,
    blocks: Vec<EncoderBlock>,
    pooler: Option<(Tensor, Tensor)>,
    tokenizer: Option<Tokenizer>,
    device: Device,
}

impl HookedEncoder {
    /// Loads a BERT folder (`config.json`, weights, `tokenizer.json`).
    ///
    /// # Errors
    /// Missing or malformed files, weights of the wrong shape, another architecture.
    pub fn from_pretrained(name_or_path: &str, opts: LoadOptions) -> Result<Self> {
        let dir = opts.hub.resolve(name_or_path)?;
        let (raw, config_path) = architectures::read_config(&dir)?;
        let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if model_type != "bert" {
            return Err(Error::Unsupported {
                what: "encoder architecture",
                name: model_type.to_string(),
                supported: vec!["bert".into()],
            });
        }
        let cfg: BertConfig = architectures::parse(&raw, &config_path)?;
        let store = Checkpoint::from_folder(&dir, opts.kind, opts.device)?;
        let mut tokenizer = match dir.join("tokenizer.json") {
            p if p.is_file() => Some(Tokenizer::from_hf_file(&p)?),
            _ => None,
        };
        if let Some(t) = tokenizer.as_mut() {
            t.add_special_tokens = true;
            t.pad_token_id = t.pad_token_id.or(Some(0));
        }
        // Without this every pass page-faults its activations in anew (see the allocator).
        mechlens_core::allocator::keep_freed_memory();
        let w = bert::load(&cfg, &store, &config_path)?;
        Ok(Self {
            cfg,
            embed: w.embed,
            blocks: w.blocks,
            pooler: w.pooler,
            tokenizer,
            device: opts.device,
        })
    }

    /// The tokenizer, if the folder had one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Every hook point, in forward order (TransformerLens' `HookedEncoder` names).
    pub fn hook_points(&self) -> Vec<HookPoint> {
        mechlens_core::encoder_points(self.blocks.len())
    }

    /// Runs the encoder. Padded text batches carry their own attention mask; token types
    /// (segment ids) come with the input: `batch.with_token_types(&types)` or
    /// `Tokens::new(&ids).with_token_types(&types)` (all zeros when absent).
    ///
    /// # Shapes
    /// - `input`: `[batch, pos]` tokens (or text), token types `[batch, pos]`
    ///
    /// # Errors
    /// Bad tokens (empty, out of range, too long), token types of another shape or out of
    /// range.
    pub fn forward(&self, input: impl ModelInput) -> Result<EncoderOutput> {
        let (out, _) = self.session(&input, None, None)?;
        Ok(out)
    }

    /// Runs with hooks for this run only.
    ///
    /// # Errors
    /// As [`HookedEncoder::forward`]; [`Error::UnknownHook`]; hook errors.
    pub fn run_with_hooks(
        &self,
        input: impl ModelInput,
        mut hooks: Hooks<'_>,
    ) -> Result<EncoderOutput> {
        let (out, _) = self.session(&input, Some(&mut hooks), None)?;
        Ok(out)
    }

    /// Runs and records what `filter` keeps.
    ///
    /// # Errors
    /// As [`HookedEncoder::forward`].
    pub fn run_with_cache(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
    ) -> Result<(EncoderOutput, ActivationCache)> {
        self.session(&input, None, Some(&filter))
    }

    /// The one runner: checks hook and filter names against [`HookedEncoder::hook_points`],
    /// reads the input, and runs with the hooks and cache asked for, without gradients.
    fn session(
        &self,
        input: &(impl ModelInput + ?Sized),
        hooks: Option<&mut Hooks<'_>>,
        filter: Option<&CacheFilter>,
    ) -> Result<(EncoderOutput, ActivationCache)> {
        let valid = self.hook_points();
        let named = hooks.as_ref().map(|h| h.points()).unwrap_or_default();
        let filtered = match filter {
            Some(CacheFilter::Names(points)) => points.as_slice(),
            _ => &[],
        };
        for p in named.iter().chain(filtered) {
            HookPoint::parse_for(&p.to_string(), &valid)?;
        }
        let mut s = HookSession::none();
        if let Some(hooks) = hooks {
            s = s.with_hooks(hooks);
        }
        if let Some(filter) = filter {
            s = s.with_cache(filter, None);
        }
        let _guard = tch::no_grad_guard();
        let out = self.run(input, &mut s)?;
        Ok((out, s.into_cache()))
    }

    fn run(
        &self,
        input: &(impl ModelInput + ?Sized),
        s: &mut HookSession,
    ) -> Result<EncoderOutput> {
        let limits = InputLimits {
            vocab: self.cfg.vocab_size,
            n_ctx: self.cfg.max_position_embeddings,
            past_len: 0,
            type_vocab: Some(self.cfg.type_vocab_size),
            device: self.device,
        };
        let t = read_input(input, self.tokenizer.as_ref(), &limits)?;
        let types = match &t.token_type_ids {
            Some(types) => types.shallow_clone(),
            None => t.tokens.f_zeros_like()?,
        };
        let mask = t.attention_mask.as_ref().map(|m| m.f_ne(0)).transpose()?;
        let (b, p) = (t.tokens.size()[0], t.tokens.size()[1]);
        let positions = Tensor::f_arange(p, (Kind::Int64, self.device))?
            .f_unsqueeze(0)?
            .f_expand([b, p], false)?;
        let mut x = self.embed.forward(&t.tokens, &types, &positions, s)?;
        let ctx = AttnContext {
            positions: &positions,
            key_mask: mask.as_ref(),
            past_len: 0,
            causal: false,
        };
        for block in &self.blocks {
            x = block.forward(x, &ctx, s)?;
        }
        let pooler_output = match &self.pooler {
            Some((w, bias)) => Some(affine(&x.f_select(1, 0)?, w, Some(bias))?.f_tanh()?),
            None => None,
        };
        Ok(EncoderOutput {
            last_hidden_state: x,
            pooler_output,
        })
    }
}
