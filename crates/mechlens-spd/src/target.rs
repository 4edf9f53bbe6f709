//! What SPD needs of a model: the linear maps it may decompose, by name, and a forward pass
//! that lets the decomposition compute those maps.
//!
//! The model keeps everything else (biases, nonlinearities, tied weights); SPD only swaps
//! how `input · W` is computed. So one trait serves toys and transformers alike: the target
//! runs with its own weights, with rank-one subcomponents under masks, or with one layer
//! decomposed and the rest as they were.

use mechlens_core::{Error, Result};
use tch::Tensor;

/// How a model's decomposable linear map is computed during one forward pass: given the
/// map's name and its input `[batch, d_in]`, return the output `[batch, d_out]`.
pub type LinearFn<'a> = dyn FnMut(&str, &Tensor) -> Result<Tensor> + 'a;

/// A model SPD can decompose.
pub trait Decomposable {
    /// The linear maps that may be decomposed: each name and its weight `[d_in, d_out]` (the
    /// map is `input · W`), in the order the forward pass uses them.
    fn linears(&self) -> Vec<(String, Tensor)>;

    /// The model's output on `x`, computing every map named by [`Decomposable::linears`]
    /// through `linear` (biases and everything else are the model's own).
    ///
    /// # Errors
    /// Whatever `linear` returns, and the model's own shape errors.
    fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor>;

    /// [`Decomposable::run`] where only the maps named in `routed` need go through
    /// `linear`: the others may be computed the model's own way, which a target that has
    /// to intercept each map (a transformer, through hooks) can skip. SPD and APD call this
    /// with the maps they decompose. By default, every map goes through `linear`.
    ///
    /// # Errors
    /// As [`Decomposable::run`].
    fn run_routed(
        &self,
        x: &Tensor,
        routed: &[String],
        linear: &mut LinearFn<'_>,
    ) -> Result<Tensor> {
        let _ = routed;
        self.run(x, linear)
    }

    /// The model's own output on `x`: every map with its own weight.
    ///
    /// # Errors
    /// As [`Decomposable::run`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let weights = self.linears();
        self.run(x, &mut |name, input| {
            Ok(input.f_matmul(weight_named(&weights, name)?)?)
        })
    }
}

/// The weight of map `name` among a model's [`Decomposable::linears`].
///
/// # Errors
/// [`Error::InvalidInput`] when the model ran a map it does not list.
pub(crate) fn weight_named<'a>(linears: &'a [(String, Tensor)], name: &str) -> Result<&'a Tensor> {
    linears
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, w)| w)
        .ok_or_else(|| {
            Error::invalid(
                "linear map",
                format!("the model ran a map {name:?} it does not list"),
            )
        })
}
