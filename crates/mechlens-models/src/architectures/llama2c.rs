//! llama2.c checkpoints (Karpathy's `run.c` format) loaded into the Llama architecture.
//! Format: seven little-endian i32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//! vocab_size, seq_len; a negative vocab means an untied classifier at the end), then f32
//! arrays stored `[out, in]`. RoPE rotates adjacent pairs `(2i, 2i+1)`, which we apply as is
//! (no permutation of the query/key weights).

use std::path::Path;

use mechlens_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use super::{AttnWeights, DecoderWeights, LayerWeights};
use crate::components::{Embed, Mlp, Norm};
use crate::config::{
    Activation, ModelConfig, Normalization, Positional, RopeScaling, RotaryConfig,
};

/// Reads a llama2.c `model.bin`.
///
/// # Errors
/// [`Error::Io`] if unreadable; [`Error::WeightFile`] for a bad header or a truncated file
/// (the message gives both byte counts).
pub fn load(path: &Path, kind: Kind, device: Device) -> Result<(ModelConfig, DecoderWeights)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| Error::WeightFile {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 28 {
        return Err(bad(format!(
            "{} bytes is shorter than the 28-byte llama2.c header",
            bytes.len()
        )));
    }
    let header: Vec<i64> = bytes[..28]
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
        .collect();
    let (dim, hidden, n_layers, n_heads, n_kv, vocab_signed, seq_len) = (
        header[0], header[1], header[2], header[3], header[4], header[5], header[6],
    );
    let vocab = vocab_signed.abs();
    let tied = vocab_signed > 0;
    if [dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len]
        .iter()
        .any(|&x| x <= 0)
        || dim % n_heads != 0
        || n_heads % n_kv != 0
    {
        return Err(bad(format!(
            "header {header:?} is not a valid llama2.c config"
        )));
    }
    let hs = dim / n_heads;
    let sizes: Vec<(&str, Vec<i64>)> = vec![
        ("token_embedding", vec![vocab, dim]),
        ("rms_att", vec![n_layers, dim]),
        ("wq", vec![n_layers, dim, dim]),
        ("wk", vec![n_layers, n_kv * hs, dim]),
        ("wv", vec![n_layers, n_kv * hs, dim]),
        ("wo", vec![n_layers, dim, dim]),
        ("rms_ffn", vec![n_layers, dim]),
        ("w1", vec![n_layers, hidden, dim]),
        ("w2", vec![n_layers, dim, hidden]),
        ("w3", vec![n_layers, hidden, dim]),
        ("rms_final", vec![dim]),
        ("freq_cis", vec![2, seq_len, hs / 2]),
    ];
    let mut sizes = sizes;
    if !tied {
        sizes.push(("wcls", vec![vocab, dim]));
    }
    let floats: i64 = sizes.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
    let expected = 28 + 4 * floats as usize;
    if bytes.len() < expected {
        return Err(bad(format!(
            "truncated: the header implies {expected} bytes, the file has {}",
            bytes.len()
        )));
    }
    let mut offset = 28usize;
    let mut t = std::collections::HashMap::new();
    for (name, shape) in &sizes {
        let n = 4 * shape.iter().product::<i64>() as usize;
        let tensor = Tensor::f_from_data_size(&bytes[offset..offset + n], shape, Kind::Float)?
            .f_to_kind(kind)?
            .f_to_device(device)?;
        t.insert(*name, tensor);
        offset += n;
    }
    let get = |name: &str| {
        t.get(name)
            .map(Tensor::shallow_clone)
            .unwrap_or_else(Tensor::new)
    };
    let cfg = ModelConfig {
        architecture: "llama2.c".into(),
        n_layers: n_layers as usize,
        d_model: dim as usize,
        n_heads: n_heads as usize,
        n_kv_heads: n_kv as usize,
        d_head: hs as usize,
        d_mlp: hidden as usize,
        d_vocab: vocab as usize,
        n_ctx: seq_len as usize,
        act_fn: Activation::Silu,
        normalization: Normalization::Rms,
        eps: 1e-5,
        positional: Positional::Rotary(RotaryConfig {
            dim: hs as usize,
            base: 10000.0,
            interleaved: true,
            scaling: RopeScaling::None,
        }),
        parallel_residual: false,
        gated_mlp: true,
        attn_only: false,
        attn_scale: (hs as f64).sqrt(),
        windows: vec![None; n_layers as usize],
        tied_embeddings: tied,
        bos_token_id: Some(1),
        eos_token_id: Some(2),
        pad_token_id: None,
    };
    let layer_t = |name: &str, l: i64| get(name).get(l).tr().contiguous();
    let rms = |w: Tensor| Norm {
        kind: Normalization::Rms,
        w: Some(w),
        b: None,
        eps: 1e-5,
    };
    let layers = (0..n_layers)
        .map(|l| LayerWeights {
            ln1: rms(get("rms_att").get(l)),
            attn: AttnWeights {
                w_q: layer_t("wq", l),
                b_q: None,
                w_k: layer_t("wk", l),
                b_k: None,
                w_v: layer_t("wv", l),
                b_v: None,
                w_o: layer_t("wo", l),
                b_o: None,
            },
            ln2: rms(get("rms_ffn").get(l)),
            mlp: Some(Mlp {
                w_in: layer_t("w3", l),
                b_in: None,
                w_gate: Some(layer_t("w1", l)),
                w_out: layer_t("w2", l),
                b_out: None,
                act: Activation::Silu,
            }),
        })
        .collect();
    let w_e = get("token_embedding");
    let w_u = if tied {
        w_e.tr()
    } else {
        get("wcls").tr().contiguous()
    };
    Ok((
        cfg,
        DecoderWeights {
            embed: Embed { w_e, w_pos: None },
            layers,
            ln_final: rms(get("rms_final")),
            w_u,
            b_u: None,
        },
    ))
}
