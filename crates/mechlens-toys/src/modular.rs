//! Modular addition (Nanda et al. 2023, "Progress measures for grokking via mechanistic
//! interpretability"): the task `a b = → (a + b) mod p`, the paper's one-layer model, and the
//! Fourier analyses that read its algorithm: the Fourier basis over `0..p`, the embedding's
//! power per frequency and its key frequencies, how much of each MLP neuron's variance one
//! frequency explains, and the logits restricted to (or with excluded) key frequencies.

use mechlens_core::{Error, Result, SplitMix64};
use mechlens_models::{Activation, HookedTransformerConfig};
use mechlens_train::Batch;
use tch::{Device, Kind, Tensor};

use crate::python_random::PythonRandom;

/// Whether `p` is prime.
pub fn is_prime(p: usize) -> bool {
    p >= 2
        && (2..)
            .take_while(|d| d * d <= p)
            .all(|d| !p.is_multiple_of(d))
}

fn need_prime(p: usize, what: &str) -> Result<()> {
    if is_prime(p) {
        Ok(())
    } else {
        Err(Error::invalid(
            "modulus p",
            format!("{p} is not prime; {what} needs a prime p (the paper's is 113)"),
        ))
    }
}

/// Every pair `(a, b)` of `0..p`, split into train and test by a seeded shuffle.
///
/// # Shapes
/// - `tokens`: `[pairs, 3]` (`a`, `b`, and `p` as the `=` token); `labels`: `[pairs]`
pub struct ModularData {
    /// The modulus.
    pub p: usize,
    /// Training pairs as [`Batch::last_position`] (only the `=` position is scored).
    pub train: Batch,
    /// Held-out pairs, the same way.
    pub test: Batch,
    /// Labels of the training pairs.
    pub train_labels: Tensor,
    /// Labels of the held-out pairs.
    pub test_labels: Tensor,
    /// Every pair in `a`-major order (`a·p + b`): `[p², 3]`.
    pub all_tokens: Tensor,
    /// Their labels, `[p²]`.
    pub all_labels: Tensor,
}

impl ModularData {
    /// `train_fraction` of the `p²` pairs for training (the paper: 0.3), shuffled by `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `p` that is not prime, or a fraction that leaves either
    /// split empty.
    pub fn new(p: usize, train_fraction: f64, seed: u64) -> Result<Self> {
        need_prime(p, "modular addition's Fourier analysis")?;
        let n = p * p;
        let n_train = Self::train_count(n, (train_fraction * n as f64).round(), train_fraction)?;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = SplitMix64::new(seed);
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        Self::from_order(p, &order, n_train)
    }

    /// The paper's own split: its list of pairs in `a`-major order shuffled by Python's
    /// `random.seed(seed); random.shuffle(pairs)`, and the first `int(train_fraction · p²)`
    /// for training. At seed 0 and 0.3 these are the very 3,830 pairs the paper trained on.
    ///
    /// # Errors
    /// As [`ModularData::new`].
    pub fn paper_split(p: usize, train_fraction: f64, seed: u64) -> Result<Self> {
        need_prime(p, "modular addition's Fourier analysis")?;
        let n = p * p;
        let n_train = Self::train_count(n, (train_fraction * n as f64).floor(), train_fraction)?;
        let mut order: Vec<usize> = (0..n).collect();
        PythonRandom::new(seed).shuffle(&mut order);
        Self::from_order(p, &order, n_train)
    }

    /// `count` (the train fraction of `n`, rounded as the caller's split rounds it) as a
    /// number of pairs that leaves both splits non-empty.
    fn train_count(n: usize, count: f64, train_fraction: f64) -> Result<usize> {
        if !(count >= 1.0 && count < n as f64) {
            return Err(Error::invalid(
                "train_fraction",
                format!(
                    "must leave both splits non-empty: {train_fraction} of {n} pairs gives {count} for training"
                ),
            ));
        }
        Ok(count as usize)
    }

    /// The first `n_train` pairs of `order` (indices `a·p + b`) for training, the rest held out.
    fn from_order(p: usize, order: &[usize], n_train: usize) -> Result<Self> {
        let n = p * p;
        let pair = |i: usize| [(i / p) as i64, (i % p) as i64, p as i64];
        let tokens = |ids: &[usize]| -> Result<Tensor> {
            let flat: Vec<i64> = ids.iter().flat_map(|&i| pair(i)).collect();
            Ok(Tensor::from_slice(&flat).f_view([ids.len() as i64, 3])?)
        };
        let labels = |ids: &[usize]| {
            let v: Vec<i64> = ids.iter().map(|&i| ((i / p + i % p) % p) as i64).collect();
            Tensor::from_slice(&v)
        };
        let (train_ids, test_ids) = order.split_at(n_train);
        let all: Vec<usize> = (0..n).collect();
        let (train_tokens, test_tokens) = (tokens(train_ids)?, tokens(test_ids)?);
        let (train_labels, test_labels) = (labels(train_ids), labels(test_ids));
        Ok(Self {
            p,
            train: Batch::last_position(&train_tokens, &train_labels)?,
            test: Batch::last_position(&test_tokens, &test_labels)?,
            train_labels,
            test_labels,
            all_tokens: tokens(&all)?,
            all_labels: labels(&all),
        })
    }
}

/// The paper's model for modulus `p`: one layer, d_model 128, 4 heads of 32, d_mlp 512,
/// ReLU, no LayerNorm, learned positions, context 3; vocabulary `p + 1` (the `=` token).
/// (The paper's unembedding has `p` outputs; here it has `p + 1`, and `=` is never a label.)
pub fn grokking_config(p: usize) -> HookedTransformerConfig {
    HookedTransformerConfig {
        n_layers: 1,
        d_model: 128,
        n_heads: 4,
        d_head: 32,
        d_mlp: Some(512),
        d_vocab: p + 1,
        n_ctx: 3,
        act_fn: Activation::Relu,
        normalization_type: None,
        ..Default::default()
    }
}

/// The Fourier basis over `0..p`, one unit-norm row per function: the constant, then
/// `cos(2πkx/p)` and `sin(2πkx/p)` for `k = 1..=(p−1)/2`.
///
/// # Shapes
/// → `[p, p]` (rows orthonormal)
///
/// # Errors
/// [`Error::InvalidInput`] for a `p` that is not prime.
pub fn fourier_basis(p: usize) -> Result<Tensor> {
    need_prime(p, "the Fourier basis")?;
    let mut rows = vec![vec![1.0f64; p]];
    for k in 1..=(p - 1) / 2 {
        let angle = |x: usize| 2.0 * std::f64::consts::PI * (k * x) as f64 / p as f64;
        rows.push((0..p).map(|x| angle(x).cos()).collect());
        rows.push((0..p).map(|x| angle(x).sin()).collect());
    }
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(move |v| v / norm)
        })
        .collect();
    Ok(Tensor::from_slice(&flat)
        .f_view([p as i64, p as i64])?
        .f_to_kind(Kind::Float)?)
}

/// The embedding's power in each frequency `k = 1..=(p−1)/2`: the squared norm of the
/// `cos k` and `sin k` rows of `B · W_E[:p]`.
///
/// # Shapes
/// - `w_e`: `[≥ p, d_model]` → `[(p−1)/2]` (index `k − 1`)
///
/// # Errors
/// [`Error::InvalidInput`] for a `p` that is not prime; [`Error::ShapeMismatch`] when `w_e`
/// has fewer than `p` rows.
pub fn embedding_frequency_power(w_e: &Tensor, p: usize) -> Result<Tensor> {
    let basis = fourier_basis(p)?;
    if w_e.dim() != 2 || w_e.size()[0] < p as i64 {
        return Err(Error::ShapeMismatch {
            what: "embedding W_E".into(),
            expected: format!("[at least {p}, d_model]"),
            got: w_e.size(),
        });
    }
    let w = w_e
        .f_narrow(0, 0, p as i64)?
        .f_to_kind(Kind::Float)?
        .f_detach()?;
    let power = basis
        .f_matmul(&w)?
        .f_square()?
        .f_sum_dim_intlist(-1, false, Kind::Float)?; // [p]
    let per_row = power.f_narrow(0, 1, p as i64 - 1)?.f_view([-1, 2])?;
    Ok(per_row.f_sum_dim_intlist(-1, false, Kind::Float)?)
}

/// The fewest frequencies (1-based, strongest first) that hold at least `share` of the
/// non-constant power, with the share they hold.
///
/// # Errors
/// Only libtorch's.
pub fn key_frequencies(power: &Tensor, share: f64) -> Result<(Vec<usize>, f64)> {
    let power: Vec<f64> = Vec::try_from(power.f_to_kind(Kind::Double)?)?;
    let total: f64 = power.iter().sum();
    let mut order: Vec<usize> = (0..power.len()).collect();
    order.sort_by(|&a, &b| power[b].total_cmp(&power[a]));
    let (mut kept, mut held) = (Vec::new(), 0.0);
    for i in order {
        if total <= 0.0 || held / total >= share {
            break;
        }
        held += power[i];
        kept.push(i + 1);
    }
    Ok((kept, if total > 0.0 { held / total } else { 0.0 }))
}

/// The paper's clustering threshold: a neuron belongs to the cluster of a frequency when that
/// frequency explains at least this share of its variance ([`neuron_frequency_share`]).
pub const NEURON_CLUSTER_THRESHOLD: f64 = 0.85;

/// For each neuron, the frequency that explains the most of its activation's variance over
/// the `(a, b)` grid, and the share it explains: the 2-D Fourier components that involve
/// only frequency `k` (in `a`, in `b`, or both), over all non-constant components.
///
/// # Shapes
/// - `acts`: `[p, p, n_neurons]` (`a`, `b`, neuron) → (`[n_neurons]` frequency, 1-based;
///   `[n_neurons]` share)
///
/// # Errors
/// [`Error::InvalidInput`] for a `p` that is not prime; [`Error::ShapeMismatch`] for `acts`
/// of another shape.
pub fn neuron_frequency_share(acts: &Tensor, p: usize) -> Result<(Tensor, Tensor)> {
    let basis = fourier_basis(p)?;
    let size = acts.size();
    if size.len() != 3 || size[0] != p as i64 || size[1] != p as i64 {
        return Err(Error::ShapeMismatch {
            what: "neuron activations".into(),
            expected: format!("[{p}, {p}, neurons]"),
            got: size,
        });
    }
    let x = acts.f_to_kind(Kind::Float)?.f_detach()?;
    // c[i, j, n] = Σ_ab B[i, a] B[j, b] acts[a, b, n]
    let c = Tensor::f_einsum("ia,jb,abn->ijn", &[&basis, &basis, &x], None::<&[i64]>)?;
    let sq = c.f_square()?;
    let total = sq
        .f_sum_dim_intlist(&[0i64, 1][..], false, Kind::Float)?
        .f_sub(&sq.f_get(0)?.f_get(0)?)?;
    // Basis index of frequency k: 2k−1 (cos) and 2k (sin); 0 is the constant.
    let n_freq = (p - 1) / 2;
    let mut shares = Vec::with_capacity(n_freq);
    for k in 1..=n_freq {
        let idx = Tensor::from_slice(&[0i64, 2 * k as i64 - 1, 2 * k as i64]);
        let block = sq.f_index_select(0, &idx)?.f_index_select(1, &idx)?;
        let held = block
            .f_sum_dim_intlist(&[0i64, 1][..], false, Kind::Float)?
            .f_sub(&sq.f_get(0)?.f_get(0)?)?;
        shares.push(held.f_div(&total.f_clamp_min(1e-12)?)?);
    }
    let shares = Tensor::f_stack(&shares, 0)?; // [n_freq, neurons]
    let (best, arg) = shares.f_max_dim(0, false)?;
    Ok((arg.f_add_scalar(1)?, best))
}

/// Logits over the `(a, b)` grid kept to (`keep = true`: restricted) or stripped of
/// (`keep = false`: excluded) the components `cos(w_k(a+b−c))` and `sin(w_k(a+b−c))` of the
/// key frequencies, the directions the paper's algorithm uses. The paper's restricted loss is
/// the loss of the restricted logits; the excluded loss, of the excluded ones.
///
/// # Shapes
/// - `logits`: `[p, p, ≥ p]` (`a`, `b`, output; outputs past `p` are dropped) → `[p, p, p]`
///
/// # Errors
/// [`Error::InvalidInput`] for a `p` that is not prime or a frequency outside
/// `1..=(p−1)/2`; [`Error::ShapeMismatch`] for logits of another shape.
pub fn key_frequency_logits(
    logits: &Tensor,
    p: usize,
    frequencies: &[usize],
    keep: bool,
) -> Result<Tensor> {
    need_prime(p, "restricting logits to key frequencies")?;
    let size = logits.size();
    if size.len() != 3 || size[0] != p as i64 || size[1] != p as i64 || size[2] < p as i64 {
        return Err(Error::ShapeMismatch {
            what: "logits over the (a, b) grid".into(),
            expected: format!("[{p}, {p}, at least {p}]"),
            got: size,
        });
    }
    if let Some(&k) = frequencies.iter().find(|&&k| k == 0 || k > (p - 1) / 2) {
        return Err(Error::invalid(
            "key frequencies",
            format!("each must be in 1..={}, got {k}", (p - 1) / 2),
        ));
    }
    let logits = logits
        .f_narrow(2, 0, p as i64)?
        .f_to_kind(Kind::Double)?
        .f_detach()?;
    let device = Device::Cpu;
    let idx = Tensor::f_arange(p as i64, (Kind::Double, device))?;
    // phase[a, b, c] = a + b − c
    let phase = idx
        .f_view([-1, 1, 1])?
        .f_add(&idx.f_view([1, -1, 1])?)?
        .f_sub(&idx.f_view([1, 1, -1])?)?;
    let mut part = logits.f_zeros_like()?;
    for &k in frequencies {
        let angle = phase.f_mul_scalar(2.0 * std::f64::consts::PI * k as f64 / p as f64)?;
        for dir in [angle.f_cos()?, angle.f_sin()?] {
            let unit = dir.f_div_scalar(dir.f_norm()?.f_double_value(&[])?)?;
            let coef = logits.f_mul(&unit)?.f_sum(Kind::Double)?;
            part = part.f_add(&unit.f_mul(&coef)?)?;
        }
    }
    let out = if keep { part } else { logits.f_sub(&part)? };
    Ok(out.f_to_kind(Kind::Float)?)
}

/// Mean cross-entropy of logits `[p, p, p]` over the grid's pairs `index` (`a·p + b`), with
/// the labels `(a + b) mod p`.
///
/// # Errors
/// Only libtorch's.
pub fn grid_loss(logits: &Tensor, p: usize, index: &Tensor) -> Result<f64> {
    let flat = logits
        .f_reshape([(p * p) as i64, -1])?
        .f_to_kind(Kind::Double)?;
    let idx = index.f_to_kind(Kind::Int64)?;
    let labels = grid_labels(&idx, p)?;
    let rows = flat.f_index_select(0, &idx)?;
    Ok(rows
        .f_cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0)?
        .f_double_value(&[])?)
}

/// The answers `(a + b) mod p` of the grid's pairs `index` (`a·p + b`, int64).
pub(crate) fn grid_labels(index: &Tensor, p: usize) -> Result<Tensor> {
    let p = p as i64;
    Ok(index
        .f_div_scalar_mode(p, "floor")?
        .f_add(&index.f_remainder(p)?)?
        .f_remainder(p)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = 13;

    fn grid(f: impl Fn(f64, f64) -> f64) -> Tensor {
        let v: Vec<f32> = (0..P * P)
            .map(|i| f((i / P) as f64, (i % P) as f64) as f32)
            .collect();
        Tensor::from_slice(&v).view([P as i64, P as i64, 1])
    }

    #[test]
    fn the_basis_is_orthonormal_and_non_primes_are_refused() {
        let b = fourier_basis(P).unwrap();
        let eye = Tensor::eye(P as i64, (Kind::Float, Device::Cpu));
        assert!(b.matmul(&b.tr()).allclose(&eye, 1e-5, 1e-5, false));
        let err = fourier_basis(12).unwrap_err().to_string();
        assert!(err.contains("12 is not prime"), "{err}");
        assert!(ModularData::new(15, 0.3, 0).is_err());
    }

    #[test]
    fn data_covers_every_pair_once_with_the_right_labels() {
        let d = ModularData::new(P, 0.3, 1).unwrap();
        let (n_train, n_test) = (d.train.len(), d.test.len());
        assert_eq!((n_train + n_test) as usize, P * P);
        assert_eq!(n_train, (0.3 * (P * P) as f64).round() as i64);
        let t: Vec<Vec<i64>> = Vec::try_from(&d.train.tokens).unwrap();
        let l: Vec<i64> = Vec::try_from(&d.train_labels).unwrap();
        for (row, label) in t.iter().zip(&l) {
            assert_eq!(((row[0] + row[1]) % P as i64, row[2]), (*label, P as i64));
        }
    }

    #[test]
    fn the_paper_split_is_pythons_shuffle() {
        // Python 3.11: `pairs = [(a, b, 113) for a in range(113) for b in range(113)];
        // random.seed(0); random.shuffle(pairs)`; the paper trains on `pairs[:3830]`.
        let d = ModularData::paper_split(113, 0.3, 0).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (3830, 12769 - 3830));
        let train: Vec<Vec<i64>> = Vec::try_from(&d.train.tokens).unwrap();
        let test: Vec<Vec<i64>> = Vec::try_from(&d.test.tokens).unwrap();
        assert_eq!(train[..3], [[18, 34, 113], [10, 83, 113], [55, 28, 113]]);
        assert_eq!(train[3829], [65, 24, 113]);
        assert_eq!(test[test.len() - 1], [55, 96, 113]);
        let err = ModularData::paper_split(113, 0.00001, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("non-empty"), "{err}");
    }

    #[test]
    fn an_embedding_of_two_frequencies_has_those_two_keys() {
        let w = |k: f64, a: f64, sin: bool| {
            let x = 2.0 * std::f64::consts::PI * k * a / P as f64;
            if sin { x.sin() } else { x.cos() }
        };
        let rows: Vec<f32> = (0..P)
            .flat_map(|a| {
                [
                    w(3.0, a as f64, false),
                    w(5.0, a as f64, true),
                    0.5 * w(5.0, a as f64, false),
                ]
            })
            .map(|v| v as f32)
            .collect();
        let w_e = Tensor::from_slice(&rows).view([P as i64, 3]);
        let power = embedding_frequency_power(&w_e, P).unwrap();
        let (keys, share) = key_frequencies(&power, 0.99).unwrap();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, [3, 5]);
        assert!((share - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_neuron_of_one_frequency_is_explained_by_it() {
        let two_pi = 2.0 * std::f64::consts::PI / P as f64;
        let one = grid(|a, b| (two_pi * 4.0 * (a + b)).cos() + 2.0);
        let mixed = grid(|a, b| (two_pi * 4.0 * a).cos() + (two_pi * 2.0 * b).sin());
        let (freq, share) = neuron_frequency_share(&Tensor::cat(&[one, mixed], 2), P).unwrap();
        assert_eq!(freq.int64_value(&[0]), 4);
        assert!((share.double_value(&[0]) - 1.0).abs() < 1e-4);
        assert!((share.double_value(&[1]) - 0.5).abs() < 1e-4, "{share}");
    }

    #[test]
    fn restricting_and_excluding_key_frequencies_split_the_logits() {
        let two_pi = 2.0 * std::f64::consts::PI / P as f64;
        let v: Vec<f32> = (0..P * P * P)
            .map(|i| {
                let (a, b, c) = ((i / (P * P)) as f64, ((i / P) % P) as f64, (i % P) as f64);
                (3.0 * (two_pi * 2.0 * (a + b - c)).cos() + (two_pi * 5.0 * (a - c)).sin()) as f32
            })
            .collect();
        let logits = Tensor::from_slice(&v).view([P as i64, P as i64, P as i64]);
        let kept = key_frequency_logits(&logits, P, &[2], true).unwrap();
        let gone = key_frequency_logits(&logits, P, &[2], false).unwrap();
        assert!((&kept + &gone).allclose(&logits, 1e-4, 1e-4, false));
        let expected: Vec<f32> = (0..P * P * P)
            .map(|i| {
                let (a, b, c) = ((i / (P * P)) as f64, ((i / P) % P) as f64, (i % P) as f64);
                (3.0 * (two_pi * 2.0 * (a + b - c)).cos()) as f32
            })
            .collect();
        let expected = Tensor::from_slice(&expected).view([P as i64, P as i64, P as i64]);
        assert!(kept.allclose(&expected, 1e-4, 1e-4, false));
        assert!(key_frequency_logits(&logits, P, &[7], true).is_err());
        let all = Tensor::arange((P * P) as i64, (Kind::Int64, Device::Cpu));
        // Logits that are +10 at the right answer, 0 elsewhere: a closed-form loss.
        let right = Tensor::from_slice(
            &(0..P * P * P)
                .map(|i| {
                    if ((i / (P * P)) + (i / P) % P) % P == i % P {
                        10.0f32
                    } else {
                        0.0
                    }
                })
                .collect::<Vec<_>>(),
        )
        .view([P as i64, P as i64, P as i64]);
        let expected_loss = -(10f64.exp() / (10f64.exp() + (P - 1) as f64)).ln();
        assert!((grid_loss(&right, P, &all).unwrap() - expected_loss).abs() < 1e-9);
    }
}
