//! Feature absorption (Chanin et al. 2024, "A is for Absorption"): an SAE latent that
//! tracks a general feature (the parent) stays silent on inputs where a more specific
//! feature (the child) is present, because the child's latent has absorbed the parent's
//! direction. Sparsity rewards it: one latent fires instead of two.
//!
//! The score here is the toy form, for when the ground truth is known: among samples where
//! the parent is present *with* the child, the share where the parent's latent does not
//! fire. It is read together with how often the latent fires on the parent *without* the
//! child: a latent that is silent everywhere is dead, not absorbed.

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

/// The absorption of one parent latent by one child feature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Absorption {
    /// Among samples with the parent and the child: the share where the parent's latent is
    /// silent (0: no absorption, 1: fully absorbed).
    pub absorption: f64,
    /// Among samples with the parent and not the child: the share where the latent fires.
    pub fires_without_child: f64,
    /// Samples with the parent and the child.
    pub with_child: i64,
    /// Samples with the parent and not the child.
    pub without_child: i64,
}

/// Absorption of a parent's latent: `latent` holds its activations on `n` samples, and
/// `parent_present` / `child_present` say which features each sample had. A latent fires
/// when its activation is above 0.
///
/// # Shapes
/// `latent`, `parent_present`, `child_present`: `[n]` (the last two boolean).
///
/// # Errors
/// [`Error::ShapeMismatch`] when the three are not one-dimensional and equally long;
/// [`Error::InvalidInput`] when the presence masks are not boolean, the activations are not
/// finite, or there is no sample with the parent and the child, or none with the parent
/// alone (either share would be 0/0).
pub fn absorption(
    latent: &Tensor,
    parent_present: &Tensor,
    child_present: &Tensor,
) -> Result<Absorption> {
    let n = latent.size();
    for (what, t) in [
        ("parent_present", parent_present),
        ("child_present", child_present),
    ] {
        if n.len() != 1 || t.size() != n {
            return Err(Error::ShapeMismatch {
                what: format!("{what} against the latent's activations"),
                expected: format!("one value per sample, [n] with n = {:?}", n.first()),
                got: t.size(),
            });
        }
        if t.kind() != Kind::Bool {
            return Err(Error::invalid(
                what,
                format!("must be a boolean mask, got {:?}", t.kind()),
            ));
        }
    }
    let finite = latent.f_isfinite()?.f_all()?.int64_value(&[]) != 0;
    if !finite {
        return Err(Error::invalid(
            "latent activations",
            "contain NaN or infinite values",
        ));
    }
    let fires = latent.f_gt(0.0)?;
    let count = |t: &Tensor| -> Result<i64> { Ok(t.f_sum(Kind::Int64)?.int64_value(&[])) };
    let with_child = parent_present.f_logical_and(child_present)?;
    let without_child = parent_present.f_logical_and(&child_present.f_logical_not()?)?;
    let (n_with, n_without) = (count(&with_child)?, count(&without_child)?);
    if n_with == 0 || n_without == 0 {
        return Err(Error::invalid(
            "samples",
            format!(
                "need the parent both with the child and without it; got {n_with} with and {n_without} without"
            ),
        ));
    }
    let silent_with = count(&with_child.f_logical_and(&fires.f_logical_not()?)?)?;
    let firing_without = count(&without_child.f_logical_and(&fires)?)?;
    Ok(Absorption {
        absorption: silent_with as f64 / n_with as f64,
        fires_without_child: firing_without as f64 / n_without as f64,
        with_child: n_with,
        without_child: n_without,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(v: &[bool]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn counts_silence_with_the_child_and_firing_without_it() {
        // Samples: parent+child ×4 (latent silent on 3), parent alone ×2 (fires on 1),
        // child alone and nothing (ignored).
        let latent = Tensor::from_slice(&[0.0f32, 0.0, -1.0, 2.0, 1.0, 0.0, 5.0, 5.0]);
        let parent = mask(&[true, true, true, true, true, true, false, false]);
        let child = mask(&[true, true, true, true, false, false, true, false]);
        let a = absorption(&latent, &parent, &child).unwrap();
        assert_eq!(a.absorption, 0.75);
        assert_eq!(a.fires_without_child, 0.5);
        assert_eq!((a.with_child, a.without_child), (4, 2));
    }

    #[test]
    fn bad_inputs_name_what_is_wrong() {
        let latent = Tensor::from_slice(&[1.0f32, 0.0]);
        let both = mask(&[true, true]);
        let e = absorption(&latent, &mask(&[true]), &both).unwrap_err();
        assert!(e.to_string().contains("parent_present"), "{e}");
        let e = absorption(&latent, &Tensor::from_slice(&[1i64, 1]), &both).unwrap_err();
        assert!(e.to_string().contains("boolean"), "{e}");
        let e = absorption(&latent, &both, &both).unwrap_err();
        assert!(e.to_string().contains("0 without"), "{e}");
        let nan = Tensor::from_slice(&[f32::NAN, 0.0]);
        let e = absorption(&nan, &both, &mask(&[true, false])).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }
}
