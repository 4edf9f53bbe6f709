//! [`HookedEncoder`]: BERT (Devlin et al. 2019) with TransformerLens' `HookedEncoder` hook
//! points. Reference: Hugging Face `transformers/models/bert/modeling_bert.py`. Post-norm
//! blocks: `resid_mid = ln1(resid_pre + attn)`, `out = ln2(resid_mid + mlp)`.

use std::path::Path;

use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, HookSession, Hooks, Result};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::architectures::{norm, parse};
use crate::components::{Attention, AttnContext, AttnWeights, Mlp, Norm, affine};
use crate::config::{Activation, Normalization};
use crate::hooked_transformer::LoadOptions;
use crate::input::{ModelInput, check_tokens};
use crate::tokenizer::Tokenizer;
use crate::weights::{WeightPath, WeightStore};

/// `config.json` of a BERT model (Hugging Face field names).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
}

fn gelu() -> String {
    "gelu".into()
}
fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}

struct EncoderBlock {
    attn: Attention,
    ln1: Norm,
    mlp: Mlp,
    ln2: Norm,
}

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
    w_e: Tensor,
    w_pos: Tensor,
    w_token_type: Tensor,
    embed_ln: Norm,
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
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            action: "reading",
            path: config_path.clone(),
            source,
        })?;
        let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: config_path.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if model_type != "bert" {
            return Err(Error::Unsupported {
                what: "encoder architecture",
                name: model_type.to_string(),
                supported: vec!["bert".into()],
            });
        }
        let cfg: BertConfig = parse(&raw, &config_path)?;
        let store = WeightStore::from_folder(&dir, opts.kind, opts.device)?;
        let mut tokenizer = match dir.join("tokenizer.json") {
            p if p.is_file() => Some(Tokenizer::from_hf_file(&p)?),
            _ => None,
        };
        if let Some(t) = tokenizer.as_mut() {
            t.add_special_tokens = true;
            t.pad_token_id = t.pad_token_id.or(Some(0));
        }
        Self::load(cfg, &store, tokenizer, opts.device, &dir)
    }

    fn load(
        cfg: BertConfig,
        store: &WeightStore,
        tokenizer: Option<Tokenizer>,
        device: Device,
        dir: &Path,
    ) -> Result<Self> {
        mechlens_core::allocator::keep_freed_memory();
        let (d, v) = (cfg.hidden_size as i64, cfg.vocab_size as i64);
        let h = cfg.num_attention_heads as i64;
        if h == 0 || d % h != 0 {
            return Err(Error::Config {
                path: dir.join("config.json").display().to_string(),
                reason: format!("hidden_size {d} is not a multiple of {h} heads"),
            });
        }
        let dh = d / h;
        let d_mlp = cfg.intermediate_size as i64;
        let act = Activation::from_hf(&cfg.hidden_act)?;
        let root = if store.contains("bert.embeddings.word_embeddings.weight") {
            store.root().pp("bert")
        } else {
            store.root()
        };
        let emb = root.pp("embeddings");
        let ln = |vb: WeightPath| norm(&vb, Normalization::LayerNorm, d, cfg.layer_norm_eps);
        let mut blocks = Vec::new();
        for l in 0..cfg.num_hidden_layers {
            let vb = root.pp("encoder").pp("layer").pp(l);
            let at = vb.pp("attention").pp("self");
            let out = vb.pp("attention").pp("output");
            blocks.push(EncoderBlock {
                attn: Attention {
                    w: AttnWeights {
                        w_q: at.linear_t("query.weight", d, d)?,
                        b_q: Some(at.get("query.bias", &[d])?),
                        w_k: at.linear_t("key.weight", d, d)?,
                        b_k: Some(at.get("key.bias", &[d])?),
                        w_v: at.linear_t("value.weight", d, d)?,
                        b_v: Some(at.get("value.bias", &[d])?),
                        w_o: out.linear_t("dense.weight", d, d)?,
                        b_o: Some(out.get("dense.bias", &[d])?),
                    },
                    n_heads: h,
                    n_kv_heads: h,
                    d_head: dh,
                    attn_scale: (dh as f64).sqrt(),
                    window: None,
                    rotary: None,
                    use_result: false,
                },
                ln1: ln(out.pp("LayerNorm"))?,
                mlp: Mlp {
                    w_in: vb.linear_t("intermediate.dense.weight", d, d_mlp)?,
                    b_in: Some(vb.get("intermediate.dense.bias", &[d_mlp])?),
                    w_gate: None,
                    w_out: vb.linear_t("output.dense.weight", d_mlp, d)?,
                    b_out: Some(vb.get("output.dense.bias", &[d])?),
                    act,
                },
                ln2: ln(vb.pp("output").pp("LayerNorm"))?,
            });
        }
        let pooler = if root.contains("pooler.dense.weight") {
            Some((
                root.linear_t("pooler.dense.weight", d, d)?,
                root.get("pooler.dense.bias", &[d])?,
            ))
        } else {
            None
        };
        Ok(Self {
            w_e: emb.get("word_embeddings.weight", &[v, d])?,
            w_pos: emb.get(
                "position_embeddings.weight",
                &[cfg.max_position_embeddings as i64, d],
            )?,
            w_token_type: emb.get(
                "token_type_embeddings.weight",
                &[cfg.type_vocab_size as i64, d],
            )?,
            embed_ln: ln(emb.pp("LayerNorm"))?,
            blocks,
            pooler,
            tokenizer,
            device,
            cfg,
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

    /// Runs the encoder. Padded text batches carry their own attention mask.
    ///
    /// # Shapes
    /// - `input`: `[batch, pos]` tokens (or text); `token_type_ids`: `[batch, pos]`
    ///
    /// # Errors
    /// Bad tokens (empty, out of range, too long), a mismatched `token_type_ids`.
    pub fn forward(
        &self,
        input: impl ModelInput,
        token_type_ids: Option<&Tensor>,
    ) -> Result<EncoderOutput> {
        let mut s = HookSession::none();
        self.run(&input, token_type_ids, &mut s)
    }

    /// Runs with hooks for this run only.
    ///
    /// # Errors
    /// As [`HookedEncoder::forward`]; [`Error::UnknownHook`]; hook errors.
    pub fn run_with_hooks(
        &self,
        input: impl ModelInput,
        token_type_ids: Option<&Tensor>,
        mut hooks: Hooks<'_>,
    ) -> Result<EncoderOutput> {
        let valid = self.hook_points();
        for p in hooks.points() {
            HookPoint::parse_for(&p.to_string(), &valid)?;
        }
        let mut s = HookSession::none().with_hooks(&mut hooks);
        self.run(&input, token_type_ids, &mut s)
    }

    /// Runs and records what `filter` keeps.
    ///
    /// # Errors
    /// As [`HookedEncoder::forward`].
    pub fn run_with_cache(
        &self,
        input: impl ModelInput,
        token_type_ids: Option<&Tensor>,
        filter: CacheFilter,
    ) -> Result<(EncoderOutput, ActivationCache)> {
        if let CacheFilter::Names(points) = &filter {
            let valid = self.hook_points();
            for p in points {
                HookPoint::parse_for(&p.to_string(), &valid)?;
            }
        }
        let mut s = HookSession::none().with_cache(&filter, None);
        let out = self.run(&input, token_type_ids, &mut s)?;
        Ok((out, s.into_cache()))
    }

    fn run(
        &self,
        input: &(impl ModelInput + ?Sized),
        token_type_ids: Option<&Tensor>,
        s: &mut HookSession,
    ) -> Result<EncoderOutput> {
        let _guard = tch::no_grad_guard();
        let t = input.to_tokens(self.tokenizer.as_ref())?;
        let tokens = check_tokens(
            &t.tokens,
            self.cfg.vocab_size,
            self.cfg.max_position_embeddings,
            0,
        )?
        .f_to_device(self.device)?;
        let (b, p) = (tokens.size()[0], tokens.size()[1]);
        let types = match token_type_ids {
            Some(tt) => {
                let tt = if tt.dim() == 1 {
                    tt.f_unsqueeze(0)?
                } else {
                    tt.shallow_clone()
                };
                if tt.size() != tokens.size() {
                    return Err(Error::ShapeMismatch {
                        what: "token_type_ids".into(),
                        expected: format!("{:?} (the tokens' shape)", tokens.size()),
                        got: tt.size(),
                    });
                }
                check_tokens(&tt, self.cfg.type_vocab_size, usize::MAX, 0)
                    .map_err(|_| {
                        Error::invalid(
                            "token_type_ids",
                            format!("ids must be in 0..{}", self.cfg.type_vocab_size),
                        )
                    })?
                    .f_to_device(self.device)?
            }
            None => tokens.f_zeros_like()?,
        };
        let mask = match &t.attention_mask {
            Some(m) if m.size() != tokens.size() => {
                return Err(Error::ShapeMismatch {
                    what: "attention_mask".into(),
                    expected: format!("{:?}", tokens.size()),
                    got: m.size(),
                });
            }
            Some(m) => Some(m.f_to_device(self.device)?.f_ne(0)?),
            None => None,
        };
        let positions = Tensor::f_arange(p, (Kind::Int64, self.device))?
            .f_unsqueeze(0)?
            .f_expand([b, p], false)?;
        let embed = s.hook(
            HookPoint::Embed,
            Tensor::f_embedding(&self.w_e, &tokens, -1, false, false)?,
        )?;
        let pos = s.hook(
            HookPoint::PosEmbed,
            Tensor::f_embedding(&self.w_pos, &positions, -1, false, false)?,
        )?;
        let tt = s.hook(
            HookPoint::TokenTypeEmbed,
            Tensor::f_embedding(&self.w_token_type, &types, -1, false, false)?,
        )?;
        let sum = embed.f_add(&pos)?.f_add(&tt)?;
        let x = self.embed_ln.forward(
            &sum,
            HookPoint::EmbedLnScale,
            HookPoint::EmbedLnNormalized,
            s,
        )?;
        let mut x = s.hook(HookPoint::FullEmbed, x)?;
        let ctx = AttnContext {
            positions: &positions,
            key_mask: mask.as_ref(),
            past_len: 0,
            causal: false,
        };
        for (l, block) in self.blocks.iter().enumerate() {
            let resid_pre = s.hook(HookPoint::ResidPre(l), x)?;
            let attn_out = block
                .attn
                .forward(l, &resid_pre, &resid_pre, &resid_pre, &ctx, None, s)?;
            let attn_out = s.hook(HookPoint::AttnOut(l), attn_out)?;
            let resid_mid = s.hook(HookPoint::ResidMid(l), resid_pre.f_add(&attn_out)?)?;
            let normalized_mid = block.ln1.forward(
                &resid_mid,
                HookPoint::Ln1Scale(l),
                HookPoint::Ln1Normalized(l),
                s,
            )?;
            let mlp_out = block.mlp.forward(l, &normalized_mid, s)?;
            let mlp_out = s.hook(HookPoint::MlpOut(l), mlp_out)?;
            let resid_post = s.hook(HookPoint::ResidPost(l), normalized_mid.f_add(&mlp_out)?)?;
            let normalized = block.ln2.forward(
                &resid_post,
                HookPoint::Ln2Scale(l),
                HookPoint::Ln2Normalized(l),
                s,
            )?;
            x = s.hook(HookPoint::NormalizedResidPost(l), normalized)?;
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
