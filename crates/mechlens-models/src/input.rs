//! What a model accepts as input: token tensors, token lists, text, batches of text.

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::tokenizer::{TokenBatch, Tokenizer};

/// Token ids and an optional attention mask (`[batch, pos]`, 1 = real token), and for BERT
/// encoders optional token type (segment) ids.
pub struct Tokens {
    /// `[batch, pos]` int64.
    pub tokens: Tensor,
    /// `[batch, pos]`, present for padded batches.
    pub attention_mask: Option<Tensor>,
    /// `[batch, pos]` segment ids (BERT's `token_type_ids`); only encoders take them.
    pub token_type_ids: Option<Tensor>,
}

impl Tokens {
    /// Token ids alone.
    pub fn new(tokens: &Tensor) -> Self {
        Self {
            tokens: tokens.shallow_clone(),
            attention_mask: None,
            token_type_ids: None,
        }
    }

    /// The same with BERT's token type (segment) ids, `[batch, pos]` or `[pos]`.
    pub fn with_token_types(mut self, token_type_ids: &Tensor) -> Self {
        self.token_type_ids = Some(token_type_ids.shallow_clone());
        self
    }
}

impl ModelInput for Tokens {
    fn to_tokens(&self, _: Option<&Tokenizer>) -> Result<Tokens> {
        Ok(Tokens {
            tokens: self.tokens.shallow_clone(),
            attention_mask: self.attention_mask.as_ref().map(Tensor::shallow_clone),
            token_type_ids: self.token_type_ids.as_ref().map(Tensor::shallow_clone),
        })
    }
}

/// Anything a model can run on. Text is tokenized with the model's tokenizer, BOS first.
pub trait ModelInput {
    /// The tokens (not yet checked against the model).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if text is given and the model has no tokenizer.
    fn to_tokens(&self, tokenizer: Option<&Tokenizer>) -> Result<Tokens>;
}

impl<T: ModelInput + ?Sized> ModelInput for &T {
    fn to_tokens(&self, tokenizer: Option<&Tokenizer>) -> Result<Tokens> {
        (**self).to_tokens(tokenizer)
    }
}

impl ModelInput for Tensor {
    fn to_tokens(&self, _: Option<&Tokenizer>) -> Result<Tokens> {
        Ok(Tokens {
            tokens: self.shallow_clone(),
            attention_mask: None,
            token_type_ids: None,
        })
    }
}

impl ModelInput for [i64] {
    fn to_tokens(&self, _: Option<&Tokenizer>) -> Result<Tokens> {
        Ok(Tokens {
            tokens: Tensor::from_slice(self).unsqueeze(0),
            attention_mask: None,
            token_type_ids: None,
        })
    }
}

impl ModelInput for Vec<i64> {
    fn to_tokens(&self, t: Option<&Tokenizer>) -> Result<Tokens> {
        self.as_slice().to_tokens(t)
    }
}

fn need(tokenizer: Option<&Tokenizer>) -> Result<&Tokenizer> {
    tokenizer.ok_or_else(|| {
        Error::invalid(
            "input",
            "this model has no tokenizer, so it cannot take text; pass token ids (a Tensor)",
        )
    })
}

impl ModelInput for str {
    fn to_tokens(&self, tokenizer: Option<&Tokenizer>) -> Result<Tokens> {
        let t = need(tokenizer)?;
        Ok(Tokens {
            tokens: t.to_tokens(self, true)?,
            attention_mask: None,
            token_type_ids: None,
        })
    }
}

impl ModelInput for String {
    fn to_tokens(&self, t: Option<&Tokenizer>) -> Result<Tokens> {
        self.as_str().to_tokens(t)
    }
}

impl ModelInput for [&str] {
    fn to_tokens(&self, tokenizer: Option<&Tokenizer>) -> Result<Tokens> {
        let batch = need(tokenizer)?.to_tokens_batch(self, true)?;
        Ok(Tokens {
            tokens: batch.tokens,
            attention_mask: Some(batch.attention_mask),
            token_type_ids: None,
        })
    }
}

impl ModelInput for Vec<&str> {
    fn to_tokens(&self, t: Option<&Tokenizer>) -> Result<Tokens> {
        self.as_slice().to_tokens(t)
    }
}

impl ModelInput for TokenBatch {
    fn to_tokens(&self, _: Option<&Tokenizer>) -> Result<Tokens> {
        Ok(Tokens {
            tokens: self.tokens.shallow_clone(),
            attention_mask: Some(self.attention_mask.shallow_clone()),
            token_type_ids: None,
        })
    }
}

impl TokenBatch {
    /// The batch with BERT's token type (segment) ids, `[batch, pos]`.
    pub fn with_token_types(&self, token_type_ids: &Tensor) -> Tokens {
        Tokens {
            tokens: self.tokens.shallow_clone(),
            attention_mask: Some(self.attention_mask.shallow_clone()),
            token_type_ids: Some(token_type_ids.shallow_clone()),
        }
    }
}

/// What a model accepts: ids below `vocab`, at most `n_ctx` positions after `past_len`
/// cached ones, token types below `type_vocab` (`None`: the model takes none), and it runs
/// on `device`.
pub(crate) struct InputLimits {
    pub(crate) vocab: usize,
    pub(crate) n_ctx: usize,
    pub(crate) past_len: i64,
    pub(crate) type_vocab: Option<usize>,
    pub(crate) device: tch::Device,
}

/// Reads `input` (text through `tokenizer`, or ids) as checked tokens on the model's device,
/// with its attention mask when it has one. Every model reads its input through this.
///
/// # Errors
/// As [`check_tokens`]; [`Error::ShapeMismatch`] for a mask of another shape than the tokens.
pub(crate) fn read_input(
    input: &(impl ModelInput + ?Sized),
    tokenizer: Option<&Tokenizer>,
    limits: &InputLimits,
) -> Result<Tokens> {
    let Tokens {
        tokens,
        attention_mask,
        token_type_ids,
    } = input.to_tokens(tokenizer)?;
    let tokens = check_tokens(&tokens, limits.vocab, limits.n_ctx, limits.past_len)?
        .f_to_device(limits.device)?;
    let attention_mask = match attention_mask {
        Some(mask) if mask.size() != tokens.size() => {
            return Err(Error::ShapeMismatch {
                what: "attention_mask".into(),
                expected: format!("{:?} (the tokens' shape)", tokens.size()),
                got: mask.size(),
            });
        }
        Some(mask) => Some(mask.f_to_device(limits.device)?),
        None => None,
    };
    let token_type_ids = match (token_type_ids, limits.type_vocab) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(Error::invalid(
                "token_type_ids",
                "this model takes no token types (only BERT encoders do); pass the tokens alone",
            ));
        }
        (Some(types), Some(type_vocab)) => {
            let types = if types.dim() == 1 {
                types.f_unsqueeze(0)?
            } else {
                types
            };
            if types.size() != tokens.size() {
                return Err(Error::ShapeMismatch {
                    what: "token_type_ids".into(),
                    expected: format!("{:?} (the tokens' shape)", tokens.size()),
                    got: types.size(),
                });
            }
            let types = check_tokens(&types, type_vocab, usize::MAX, 0).map_err(|_| {
                Error::invalid("token_type_ids", format!("ids must be in 0..{type_vocab}"))
            })?;
            Some(types.f_to_device(limits.device)?)
        }
    };
    Ok(Tokens {
        tokens,
        attention_mask,
        token_type_ids,
    })
}

/// Checks token ids for a model with `vocab` tokens and a context of `n_ctx` (with
/// `past_len` positions already cached); returns them as `[batch, pos]` int64.
///
/// # Errors
/// [`Error::InvalidInput`] for non-integer, empty, out-of-vocabulary or too-long input;
/// [`Error::ShapeMismatch`] for more than two dims.
pub(crate) fn check_tokens(
    tokens: &Tensor,
    vocab: usize,
    n_ctx: usize,
    past_len: i64,
) -> Result<Tensor> {
    if tokens.is_floating_point() || tokens.kind() == Kind::Bool {
        return Err(Error::invalid(
            "tokens",
            format!(
                "expected integer token ids, got a {:?} tensor",
                tokens.kind()
            ),
        ));
    }
    let tokens = match tokens.dim() {
        1 => tokens.f_unsqueeze(0)?,
        2 => tokens.shallow_clone(),
        _ => {
            return Err(Error::ShapeMismatch {
                what: "tokens".into(),
                expected: "[batch, pos] or [pos]".into(),
                got: tokens.size(),
            });
        }
    };
    if tokens.numel() == 0 {
        return Err(Error::invalid(
            "input",
            "it is empty; give at least one token",
        ));
    }
    let tokens = tokens.f_to_kind(Kind::Int64)?;
    let (min, max) = (
        tokens.f_min()?.int64_value(&[]),
        tokens.f_max()?.int64_value(&[]),
    );
    if min < 0 || max >= vocab as i64 {
        let bad = if min < 0 { min } else { max };
        return Err(Error::invalid(
            "token id",
            format!("{bad} is outside the vocabulary 0..{vocab}"),
        ));
    }
    let len = tokens.size()[1] + past_len;
    if n_ctx != usize::MAX && len > n_ctx as i64 {
        return Err(Error::invalid(
            "sequence length",
            format!("{len} tokens exceed the model's context of n_ctx = {n_ctx} tokens"),
        ));
    }
    Ok(tokens)
}
