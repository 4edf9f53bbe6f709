//! Shape checks that fail with an [`Error`] naming both shapes.

use crate::{Error, Result};
use tch::Tensor;

/// Checks that `tensor` has exactly the dims in `expected`; `None` in `expected` accepts any
/// size in that position.
///
/// # Shapes
/// - `tensor`: any; must have `expected.len()` dims.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming `what`, the expected dims (`_` for a free dim) and the
/// actual shape.
pub fn expect_shape(tensor: &Tensor, what: &str, expected: &[Option<i64>]) -> Result<()> {
    let got = tensor.size();
    let matches = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| e.is_none_or(|e| e == *g));
    if matches {
        return Ok(());
    }
    let dims: Vec<String> = expected
        .iter()
        .map(|e| e.map_or_else(|| "_".to_string(), |e| e.to_string()))
        .collect();
    Err(Error::ShapeMismatch {
        what: what.to_string(),
        expected: format!("[{}]", dims.join(", ")),
        got,
    })
}

/// Checks `index < count` for a layer, head, neuron, ...: `owner` says whose (`"the model"`,
/// `"layer 3"`).
///
/// # Errors
/// [`Error::InvalidInput`] naming `what`, the index and the valid range.
pub fn check_index(what: &str, index: i64, count: usize, owner: &str) -> Result<()> {
    if (0..count as i64).contains(&index) {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!("{index} is out of range: {owner} has {count} {what}s (0..{count})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_matching_and_free_dims() {
        let t = Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
        assert!(expect_shape(&t, "x", &[Some(2), None]).is_ok());
        assert!(expect_shape(&t, "x", &[Some(2), Some(3)]).is_ok());
    }

    #[test]
    fn mismatch_names_both_shapes() {
        let t = Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
        let err = expect_shape(&t, "resid", &[Some(2), None, Some(4)])
            .expect_err("rank 2 is not rank 3")
            .to_string();
        assert_eq!(
            err,
            "shape mismatch for resid: expected [2, _, 4], got [2, 3]"
        );
    }
}
