//! [`Tokenizer`]: Hugging Face `tokenizer.json` (through the `tokenizers` crate) or a
//! SentencePiece model, behind TransformerLens' methods: `to_tokens`, `to_str_tokens`,
//! `to_string`, `to_single_token`, and batches padded left or right with an attention mask.

use std::path::Path;

use mechlens_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use crate::sentencepiece::SentencePiece;

/// Which side of a shorter sequence gets the padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingSide {
    /// Pad after the tokens (TransformerLens' default).
    Right,
    /// Pad before the tokens (what batched generation wants).
    Left,
}

enum Backend {
    Hf(Box<tokenizers::Tokenizer>),
    SentencePiece(Box<SentencePiece>),
}

/// A tokenizer with the model's special tokens.
pub struct Tokenizer {
    backend: Backend,
    /// Beginning of sequence.
    pub bos_token_id: Option<i64>,
    /// End of sequence.
    pub eos_token_id: Option<i64>,
    /// Padding (falls back to EOS, then 0).
    pub pad_token_id: Option<i64>,
    /// Where batches are padded.
    pub padding_side: PaddingSide,
    /// Let the tokenizer add its own special tokens (BERT's `[CLS]`/`[SEP]`) instead of BOS.
    pub add_special_tokens: bool,
}

/// A padded batch of token ids.
pub struct TokenBatch {
    /// `[batch, pos]` int64.
    pub tokens: Tensor,
    /// `[batch, pos]` int64, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
}

impl Tokenizer {
    /// Reads a Hugging Face `tokenizer.json`; special tokens come from
    /// `tokenizer_config.json` beside it when present.
    ///
    /// # Errors
    /// [`Error::WeightFile`] if the file cannot be parsed.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::WeightFile {
            path: path.to_path_buf(),
            reason: format!("not a tokenizer.json: {e}"),
        })?;
        // Padding and truncation are ours to do (batches, n_ctx checks), not the file's.
        inner.with_padding(None);
        let _ = inner.with_truncation(None);
        let special = |key: &str| -> Option<i64> {
            let cfg = path.parent()?.join("tokenizer_config.json");
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(cfg).ok()?).ok()?;
            let token = json.get(key)?;
            let text = token.as_str().or_else(|| token.get("content")?.as_str())?;
            inner.token_to_id(text).map(i64::from)
        };
        let endoftext = inner.token_to_id("<|endoftext|>").map(i64::from);
        let bos = special("bos_token").or(endoftext);
        let eos = special("eos_token").or(endoftext);
        let pad = special("pad_token");
        Ok(Self {
            backend: Backend::Hf(Box::new(inner)),
            bos_token_id: bos,
            eos_token_id: eos,
            pad_token_id: pad,
            padding_side: PaddingSide::Right,
            add_special_tokens: false,
        })
    }

    /// Reads a SentencePiece `tokenizer.model` (BOS 1, EOS 2 as in Llama and llama2.c).
    ///
    /// # Errors
    /// See [`SentencePiece::from_file`].
    pub fn from_sentencepiece(path: &Path) -> Result<Self> {
        let sp = SentencePiece::from_file(path)?;
        let id = |p: &str| sp.id(p).map(|i| i as i64);
        Ok(Self {
            bos_token_id: id("<s>").or(Some(1)),
            eos_token_id: id("</s>").or(Some(2)),
            pad_token_id: None,
            backend: Backend::SentencePiece(Box::new(sp)),
            padding_side: PaddingSide::Right,
            add_special_tokens: false,
        })
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::Hf(t) => t.get_vocab_size(true),
            Backend::SentencePiece(sp) => sp.vocab_size(),
        }
    }

    /// Token ids of `text`, with BOS first when `prepend_bos` (encoders: with their own
    /// special tokens).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the tokenizer fails on the text, or BOS is asked for and the
    /// tokenizer has none.
    pub fn encode(&self, text: &str, prepend_bos: bool) -> Result<Vec<i64>> {
        let mut ids: Vec<i64> = match &self.backend {
            Backend::Hf(t) => t
                .encode(text, self.add_special_tokens)
                .map_err(|e| Error::invalid("text", format!("the tokenizer failed: {e}")))?
                .get_ids()
                .iter()
                .map(|&i| i64::from(i))
                .collect(),
            Backend::SentencePiece(sp) => sp.encode(text).into_iter().map(|i| i as i64).collect(),
        };
        if prepend_bos && !self.add_special_tokens {
            let bos = self.bos_token_id.ok_or_else(|| {
                Error::invalid(
                    "prepend_bos",
                    "this tokenizer has no BOS token; pass prepend_bos = false",
                )
            })?;
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Text of token ids (special tokens kept, as TransformerLens' `to_string`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let vocab = self.vocab_size() as i64;
        if let Some(bad) = ids.iter().find(|&&i| i < 0 || i >= vocab) {
            return Err(Error::invalid(
                "token id",
                format!("{bad} is outside the vocabulary 0..{vocab}"),
            ));
        }
        Ok(match &self.backend {
            Backend::Hf(t) => {
                let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
                t.decode(&ids, false).map_err(|e| {
                    Error::invalid("token ids", format!("the tokenizer failed: {e}"))
                })?
            }
            Backend::SentencePiece(sp) => {
                let ids: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
                sp.decode(&ids)
            }
        })
    }

    /// `[1, pos]` token tensor of `text`.
    ///
    /// # Errors
    /// See [`Tokenizer::encode`]; [`Error::InvalidInput`] for text that yields no tokens.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<Tensor> {
        let ids = self.encode(text, prepend_bos)?;
        if ids.is_empty() {
            return Err(Error::invalid(
                "text",
                "it tokenizes to no tokens; give some text or prepend_bos = true",
            ));
        }
        Ok(Tensor::from_slice(&ids).unsqueeze(0))
    }

    /// A padded batch (padding on [`Tokenizer::padding_side`]) with its attention mask.
    ///
    /// # Errors
    /// See [`Tokenizer::to_tokens`]; [`Error::InvalidInput`] for an empty list.
    pub fn to_tokens_batch(&self, texts: &[&str], prepend_bos: bool) -> Result<TokenBatch> {
        if texts.is_empty() {
            return Err(Error::invalid(
                "texts",
                "the batch is empty; give at least one text",
            ));
        }
        let encoded = texts
            .iter()
            .map(|t| self.encode(t, prepend_bos))
            .collect::<Result<Vec<_>>>()?;
        let len = encoded.iter().map(Vec::len).max().unwrap_or(0);
        if len == 0 {
            return Err(Error::invalid("texts", "they tokenize to no tokens"));
        }
        let pad = self.pad_token_id.or(self.eos_token_id).unwrap_or(0);
        let (mut tokens, mut mask) = (Vec::new(), Vec::new());
        for ids in &encoded {
            let fill = len - ids.len();
            let (row, m): (Vec<i64>, Vec<i64>) = match self.padding_side {
                PaddingSide::Right => (
                    ids.iter()
                        .copied()
                        .chain(std::iter::repeat_n(pad, fill))
                        .collect(),
                    std::iter::repeat_n(1, ids.len())
                        .chain(std::iter::repeat_n(0, fill))
                        .collect(),
                ),
                PaddingSide::Left => (
                    std::iter::repeat_n(pad, fill)
                        .chain(ids.iter().copied())
                        .collect(),
                    std::iter::repeat_n(0, fill)
                        .chain(std::iter::repeat_n(1, ids.len()))
                        .collect(),
                ),
            };
            tokens.extend(row);
            mask.extend(m);
        }
        let shape = [texts.len() as i64, len as i64];
        Ok(TokenBatch {
            tokens: Tensor::from_slice(&tokens).view(shape),
            attention_mask: Tensor::from_slice(&mask).view(shape),
        })
    }

    /// Each token of `text` as its own string (`["<|endoftext|>", "Hello", " world"]`).
    ///
    /// # Errors
    /// See [`Tokenizer::encode`].
    pub fn to_str_tokens(&self, text: &str, prepend_bos: bool) -> Result<Vec<String>> {
        self.encode(text, prepend_bos)?
            .iter()
            .map(|&id| self.token_to_str(id))
            .collect()
    }

    /// One token's string. SentencePiece pieces show `▁` as a space.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an id outside the vocabulary.
    pub fn token_to_str(&self, id: i64) -> Result<String> {
        match &self.backend {
            Backend::SentencePiece(sp) => sp
                .piece(id.max(0) as usize)
                .filter(|_| id >= 0)
                .map(|p| p.replace('\u{2581}', " "))
                .ok_or_else(|| {
                    Error::invalid(
                        "token id",
                        format!("{id} is outside the vocabulary 0..{}", sp.vocab_size()),
                    )
                }),
            Backend::Hf(_) => self.decode(&[id]),
        }
    }

    /// The id of a string that is exactly one token.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming how many tokens it is instead.
    pub fn to_single_token(&self, text: &str) -> Result<i64> {
        let ids = self.encode(text, false)?;
        // SentencePiece adds a `▁` prefix to encoded text; a bare piece ("y") is looked up.
        let piece = match &self.backend {
            Backend::SentencePiece(sp) => sp.id(&text.replace(' ', "\u{2581}")).map(|i| i as i64),
            Backend::Hf(_) => None,
        };
        match (ids.as_slice(), piece) {
            ([id], _) => Ok(*id),
            (_, Some(id)) => Ok(id),
            _ => Err(Error::invalid(
                "single token",
                format!(
                    "`{text}` is {} tokens ({:?}), not one",
                    ids.len(),
                    self.to_str_tokens(text, false)?
                ),
            )),
        }
    }

    /// Text of a token tensor (`[pos]` or `[1, pos]`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another shape or an id outside the vocabulary.
    pub fn tokens_to_string(&self, tokens: &Tensor) -> Result<String> {
        let flat = tokens.f_to_device(Device::Cpu)?.f_to_kind(Kind::Int64)?;
        if flat.dim() > 2 || (flat.dim() == 2 && flat.size()[0] != 1) {
            return Err(Error::ShapeMismatch {
                what: "tokens".into(),
                expected: "[pos] or [1, pos]".into(),
                got: flat.size(),
            });
        }
        let ids: Vec<i64> = Vec::<i64>::try_from(flat.f_reshape([-1])?)?;
        self.decode(&ids)
    }
}
