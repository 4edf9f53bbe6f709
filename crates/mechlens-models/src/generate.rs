//! Sampling text from a [`HookedTransformer`]: greedy, temperature, top-k, top-p, with a
//! key/value cache, optionally with hooks active (steering).

use mechlens_core::{Error, HookSession, Hooks, Result, SplitMix64};
use tch::{Kind, Tensor};

use crate::hooked_transformer::{HookedTransformer, KvCache, Start};
use crate::input::ModelInput;

/// How to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Tokens to add at most.
    pub max_new_tokens: usize,
    /// 0 = greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Sample only among the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities sum to `p` (nucleus).
    pub top_p: Option<f64>,
    /// Stop a sequence at the end-of-sequence token.
    pub stop_at_eos: bool,
    /// Seed for sampling, for reproducible samples (our own generator: other threads drawing
    /// random numbers do not disturb it).
    pub seed: Option<i64>,
    /// Reuse keys and values of earlier positions (much faster; same tokens).
    pub use_kv_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            stop_at_eos: true,
            seed: None,
            use_kv_cache: true,
        }
    }
}

/// The sampling stream: seeded, or from the clock.
fn rng(seed: Option<i64>) -> SplitMix64 {
    SplitMix64::new(seed.map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        },
        |s| s as u64,
    ))
}

/// Top-k filtering: every logit below the row's `k`-th largest becomes -inf (ties at the
/// threshold stay). `k` is at least 1 and at most the vocabulary.
///
/// # Shapes
/// - `logits`: `[batch, d_vocab]` → the same
///
/// # Errors
/// libtorch's errors only.
pub fn top_k_logits(logits: &Tensor, k: usize) -> Result<Tensor> {
    let k = (k.max(1) as i64).min(logits.size()[1]);
    let (top, _) = logits.f_topk(k, -1, true, true)?;
    let threshold = top.f_narrow(1, k - 1, 1)?;
    Ok(logits.f_masked_fill(&logits.f_lt_tensor(&threshold)?, f64::NEG_INFINITY)?)
}

/// Top-p (nucleus) filtering: keeps, per row, the most likely tokens until their probability
/// reaches `p` (the token that reaches it included, the most likely always); the rest
/// become -inf.
///
/// # Shapes
/// - `logits`: `[batch, d_vocab]` → the same
///
/// # Errors
/// libtorch's errors only.
pub fn top_p_logits(logits: &Tensor, p: f64) -> Result<Tensor> {
    let (sorted, order) = logits.f_sort(-1, true)?;
    let probs = sorted.f_softmax(-1, Kind::Float)?;
    let cumulative = probs.f_cumsum(-1, Kind::Float)?;
    // Drop a token when the tokens before it already reach p (the first always stays).
    let before = cumulative.f_sub(&probs)?;
    let drop_sorted = before.f_ge(p)?;
    let drop = drop_sorted.f_scatter(-1, &order, &drop_sorted)?;
    Ok(logits.f_masked_fill(&drop, f64::NEG_INFINITY)?)
}

/// Picks the next token of each row of `logits` (`[batch, d_vocab]`).
fn sample(logits: &Tensor, o: &GenerateOptions, rng: &mut SplitMix64) -> Result<Tensor> {
    if o.temperature <= 0.0 {
        return Ok(logits.f_argmax(-1, false)?);
    }
    let mut logits = logits.f_to_kind(Kind::Float)?.f_div_scalar(o.temperature)?;
    if let Some(k) = o.top_k {
        logits = top_k_logits(&logits, k)?;
    }
    if let Some(p) = o.top_p {
        logits = top_p_logits(&logits, p)?;
    }
    // Inverse-CDF sampling: the first token whose cumulative probability exceeds u.
    let cdf = logits
        .f_softmax(-1, Kind::Double)?
        .f_cumsum(-1, Kind::Double)?;
    let (batch, vocab) = (cdf.size()[0], cdf.size()[1]);
    let u: Vec<f64> = (0..batch).map(|_| rng.uniform()).collect();
    let u = Tensor::from_slice(&u)
        .f_to_device(cdf.device())?
        .f_unsqueeze(1)?;
    let below = cdf
        .f_lt_tensor(&u)?
        .f_sum_dim_intlist(-1, false, Kind::Int64)?;
    Ok(below.f_clamp_max(vocab - 1)?)
}

impl HookedTransformer {
    /// Continues `input` by up to `max_new_tokens` tokens; returns prompt and continuation,
    /// `[batch, pos + new]`.
    ///
    /// # Errors
    /// Bad input; [`Error::InvalidInput`] when the result would exceed the context.
    pub fn generate(&self, input: impl ModelInput, opts: &GenerateOptions) -> Result<Tensor> {
        self.generate_with_hooks(input, opts, Hooks::new())
    }

    /// [`HookedTransformer::generate`] with `hooks` active at every step (e.g. adding a
    /// steering vector to `blocks.L.hook_resid_pre`).
    ///
    /// # Errors
    /// As [`HookedTransformer::generate`], and hook errors.
    pub fn generate_with_hooks(
        &self,
        input: impl ModelInput,
        opts: &GenerateOptions,
        mut hooks: Hooks<'_>,
    ) -> Result<Tensor> {
        for p in hooks.points() {
            self.hook_point(p)?;
        }
        let t = self.input(&input, 0)?;
        let n_ctx = self.cfg().n_ctx as i64;
        let prompt_len = t.tokens.size()[1];
        if prompt_len + opts.max_new_tokens as i64 > n_ctx {
            return Err(Error::invalid(
                "max_new_tokens",
                format!(
                    "{prompt_len} prompt tokens + {} new exceed the context of {n_ctx}",
                    opts.max_new_tokens
                ),
            ));
        }
        let mut rng = rng(opts.seed);
        let eos = self
            .tokenizer()
            .and_then(|t| t.eos_token_id)
            .or(self.cfg().eos_token_id);
        let _guard = tch::no_grad_guard();
        let mut tokens = t.tokens.shallow_clone();
        let mut mask = t.attention_mask.as_ref().map(Tensor::shallow_clone);
        let batch = tokens.size()[0];
        let mut finished = Tensor::f_zeros([batch], (Kind::Bool, tokens.device()))?;
        let mut cache = KvCache::default();
        let mut step_input = tokens.shallow_clone();
        let mut step_mask = mask.as_ref().map(Tensor::shallow_clone);
        for _ in 0..opts.max_new_tokens {
            let mut persistent = self.persistent()?;
            let mut s = HookSession::none()
                .with_persistent(&mut persistent)
                .with_hooks(&mut hooks);
            let logits = if opts.use_kv_cache {
                self.m.run(
                    Start::Tokens(&step_input),
                    step_mask.as_ref(),
                    None,
                    Some(&mut cache),
                    None,
                    &mut s,
                )?
            } else {
                self.m.run(
                    Start::Tokens(&tokens),
                    mask.as_ref(),
                    None,
                    None,
                    None,
                    &mut s,
                )?
            };
            drop(s);
            drop(persistent);
            let last = logits.f_select(1, logits.size()[1] - 1)?;
            let mut next = sample(&last, opts, &mut rng)?;
            if let (true, Some(eos)) = (opts.stop_at_eos, eos) {
                // Finished rows keep emitting EOS.
                next = next.f_masked_fill(&finished, eos)?;
                finished = finished.f_logical_or(&next.f_eq(eos)?)?;
            }
            let next = next.f_unsqueeze(1)?;
            tokens = Tensor::f_cat(&[&tokens, &next], 1)?;
            if let Some(m) = &mask {
                mask = Some(Tensor::f_cat(
                    &[m, &m.f_ones_like()?.f_narrow(1, 0, 1)?],
                    1,
                )?);
            }
            step_input = next;
            step_mask = mask
                .as_ref()
                .map(|m| m.f_narrow(1, m.size()[1] - 1, 1))
                .transpose()?;
            if opts.stop_at_eos && eos.is_some() && finished.f_all()?.int64_value(&[]) != 0 {
                break;
            }
        }
        Ok(tokens)
    }

    /// Generates from a text prompt (BOS prepended) and returns the whole text.
    ///
    /// # Errors
    /// No tokenizer, or as [`HookedTransformer::generate`].
    pub fn generate_text(&self, prompt: &str, opts: &GenerateOptions) -> Result<String> {
        let tokens = self.generate(prompt, opts)?;
        let ids: Vec<i64> = Vec::<i64>::try_from(tokens.f_get(0)?.f_to_device(tch::Device::Cpu)?)?;
        let tokenizer = self.require_tokenizer()?;
        // Leave BOS out of the text, as a reader expects.
        let start = usize::from(ids.first().copied() == tokenizer.bos_token_id);
        tokenizer.decode(&ids[start..])
    }
}
