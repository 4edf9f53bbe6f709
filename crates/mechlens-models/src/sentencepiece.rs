//! A SentencePiece BPE tokenizer read straight from its `tokenizer.model` protobuf — the
//! format llama2.c and Llama 1/2 ship. Encoding follows SentencePiece's BPE: normalise
//! whitespace, add the `▁` dummy prefix, start from characters (unknown ones fall back to
//! `<0xXX>` byte pieces), then repeatedly merge the adjacent pair whose merged piece has the
//! highest score.

use std::collections::HashMap;
use std::path::Path;

use mechlens_core::{Error, Result};

const SPACE: char = '\u{2581}';

/// A piece's role (SentencePiece's `Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

/// A SentencePiece BPE model.
pub struct SentencePiece {
    pieces: Vec<(String, f32, PieceType)>,
    ids: HashMap<String, usize>,
    bytes: [Option<usize>; 256],
    unk: Option<usize>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    /// What an unknown piece decodes to (`TrainerSpec.unk_surface`).
    unk_surface: String,
}

/// Reads protobuf varints and length-delimited fields (all `tokenizer.model` needs).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next `(field, wire type, payload)`; payload is the bytes of length-delimited and
    /// fixed fields, empty for varints (whose value is returned in `.3`).
    fn field(&mut self) -> Option<(u64, u64, &'a [u8], u64)> {
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        let take = |r: &mut Self, n: usize| {
            let s = r.buf.get(r.pos..r.pos + n)?;
            r.pos += n;
            Some(s)
        };
        match wire {
            0 => {
                let v = self.varint()?;
                Some((field, wire, &[][..], v))
            }
            1 => Some((field, wire, take(self, 8)?, 0)),
            2 => {
                let n = self.varint()? as usize;
                Some((field, wire, take(self, n)?, 0))
            }
            5 => Some((field, wire, take(self, 4)?, 0)),
            _ => None,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

impl SentencePiece {
    /// Reads a `tokenizer.model`.
    ///
    /// # Errors
    /// [`Error::Io`] if unreadable; [`Error::Unsupported`] for a non-BPE model;
    /// [`Error::WeightFile`] if it is not a SentencePiece protobuf.
    pub fn from_file(path: &Path) -> Result<Self> {
        let buf = std::fs::read(path).map_err(|source| Error::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        let bad = || Error::WeightFile {
            path: path.to_path_buf(),
            reason: "not a SentencePiece model protobuf".into(),
        };
        let mut pieces = Vec::new();
        let mut model_type = 1u64; // UNIGRAM is the protobuf default
        let mut unk_surface = " \u{2047} ".to_string();
        let (mut add_dummy_prefix, mut remove_extra_whitespaces) = (true, true);
        let mut reader = Reader { buf: &buf, pos: 0 };
        while !reader.done() {
            let (field, wire, payload, _) = reader.field().ok_or_else(bad)?;
            match (field, wire) {
                (1, 2) => pieces.push(parse_piece(payload).ok_or_else(bad)?),
                (2, 2) => {
                    let mut spec = Reader {
                        buf: payload,
                        pos: 0,
                    };
                    while !spec.done() {
                        let (f, _, payload, v) = spec.field().ok_or_else(bad)?;
                        match f {
                            3 => model_type = v,
                            44 => unk_surface = String::from_utf8_lossy(payload).into_owned(),
                            _ => {}
                        }
                    }
                }
                (3, 2) => {
                    let mut spec = Reader {
                        buf: payload,
                        pos: 0,
                    };
                    while !spec.done() {
                        let (f, _, _, v) = spec.field().ok_or_else(bad)?;
                        match f {
                            3 => add_dummy_prefix = v != 0,
                            4 => remove_extra_whitespaces = v != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if model_type != 2 {
            let name = ["?", "unigram", "bpe", "word", "char"]
                .get(model_type as usize)
                .unwrap_or(&"?");
            return Err(Error::Unsupported {
                what: "SentencePiece model type",
                name: name.to_string(),
                supported: vec!["bpe".into()],
            });
        }
        if pieces.is_empty() {
            return Err(bad());
        }
        let ids = pieces
            .iter()
            .enumerate()
            .map(|(i, (p, _, _))| (p.clone(), i))
            .collect();
        let mut bytes = [None; 256];
        for (i, (piece, _, kind)) in pieces.iter().enumerate() {
            if *kind == PieceType::Byte
                && let Some(hex) = piece.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'))
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                bytes[b as usize] = Some(i);
            }
        }
        let unk = pieces.iter().position(|(_, _, k)| *k == PieceType::Unknown);
        Ok(Self {
            pieces,
            ids,
            bytes,
            unk,
            add_dummy_prefix,
            remove_extra_whitespaces,
            unk_surface,
        })
    }

    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The piece string of `id`.
    pub fn piece(&self, id: usize) -> Option<&str> {
        self.pieces.get(id).map(|(p, _, _)| p.as_str())
    }

    /// The id of a piece string.
    pub fn id(&self, piece: &str) -> Option<usize> {
        self.ids.get(piece).copied()
    }

    /// Token ids of `text` (no BOS).
    pub fn encode(&self, text: &str) -> Vec<usize> {
        let mut text = if self.remove_extra_whitespaces {
            text.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            text.to_string()
        };
        if text.is_empty() {
            return Vec::new();
        }
        if self.add_dummy_prefix {
            text.insert(0, ' ');
        }
        let text = text.replace(' ', &SPACE.to_string());
        // Symbols start as single characters; a character with no piece becomes its bytes.
        let mut symbols: Vec<(String, Vec<usize>)> = Vec::new();
        for c in text.chars() {
            let s = c.to_string();
            match self.ids.get(&s) {
                Some(&id) if self.mergeable(id) => symbols.push((s, vec![id])),
                _ => {
                    // Byte fallback when the model has byte pieces; else one unknown piece.
                    let mut buf = [0u8; 4];
                    let bytes: Option<Vec<usize>> = c
                        .encode_utf8(&mut buf)
                        .bytes()
                        .map(|b| self.bytes[b as usize])
                        .collect();
                    let ids = bytes.unwrap_or_else(|| self.unk.into_iter().collect());
                    symbols.push((s, ids));
                }
            }
        }
        loop {
            let mut best: Option<(f32, usize, usize)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                let merged = format!("{}{}", symbols[i].0, symbols[i + 1].0);
                if let Some(&id) = self.ids.get(&merged)
                    && self.mergeable(id)
                {
                    let score = self.pieces[id].1;
                    if best.is_none_or(|(s, _, _)| score > s) {
                        best = Some((score, i, id));
                    }
                }
            }
            let Some((_, i, id)) = best else { break };
            let right = symbols.remove(i + 1);
            symbols[i] = (format!("{}{}", symbols[i].0, right.0), vec![id]);
        }
        symbols.into_iter().flat_map(|(_, ids)| ids).collect()
    }

    fn mergeable(&self, id: usize) -> bool {
        matches!(
            self.pieces[id].2,
            PieceType::Normal | PieceType::UserDefined
        )
    }

    /// Text of `ids`: byte pieces become bytes, `▁` a space; control tokens are dropped and the
    /// dummy-prefix space is removed.
    pub fn decode(&self, ids: &[usize]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some((piece, _, kind)) = self.pieces.get(id) else {
                continue;
            };
            match kind {
                PieceType::Byte => {
                    if let Some(b) = piece
                        .strip_prefix("<0x")
                        .and_then(|h| h.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        bytes.push(b);
                    }
                }
                PieceType::Control | PieceType::Unused => {}
                PieceType::Unknown => bytes.extend(self.unk_surface.bytes()),
                _ => bytes.extend(piece.replace(SPACE, " ").bytes()),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match text.strip_prefix(' ') {
            Some(rest) if self.add_dummy_prefix => rest.to_string(),
            _ => text,
        }
    }
}

fn parse_piece(buf: &[u8]) -> Option<(String, f32, PieceType)> {
    let mut r = Reader { buf, pos: 0 };
    let (mut piece, mut score, mut kind) = (String::new(), 0.0f32, PieceType::Normal);
    while !r.done() {
        let (field, _, payload, v) = r.field()?;
        match field {
            1 => piece = String::from_utf8(payload.to_vec()).ok()?,
            2 => score = f32::from_le_bytes(payload.try_into().ok()?),
            3 => {
                kind = match v {
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    _ => PieceType::Normal,
                }
            }
            _ => {}
        }
    }
    Some((piece, score, kind))
}
