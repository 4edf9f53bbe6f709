//! Checks for mechlens' teaching exercises (`notebooks/exercises/`), in the manner of ARENA's
//! `tests.test_xxx(student_fn)`, made to diagnose rather than only to judge.
//!
//! A learner writes a plain function (tensors in, `mechlens::Result<Tensor>` out, shapes in
//! TransformerLens' layout) and hands it to its check, e.g.
//! `check::layer_norm(layer_norm)?`. The check:
//!
//! - runs the function on seeded random cases (random shapes, weights and biases), against
//!   the library's own implementation, which its tests prove equal to TransformerLens,
//!   transformers and SAELens; never against the notebook's solution;
//! - reports one line per case, and either a clear pass or the first failing case: its
//!   shapes, the largest difference and where it is;
//! - says "not done yet" for a body that is still `todo!()`, and turns any other panic into
//!   a message: nothing the learner writes can kill the kernel or lose their variables;
//! - notices a function that changed its inputs, returned another shape, dtype or device,
//!   NaN, or an error;
//! - names the likely mistake, by running known-wrong versions of the exercise (mutants: a
//!   causal mask off by one, the softmax over the wrong axis, a missing 1/√d_head, ...) and
//!   saying which one the learner's output matches.
//!
//! A check returns its [`Report`], which renders in the notebook. In a learner's notebook a
//! failed check is not an error, so that "Run All" reaches every exercise; a solution
//! notebook calls [`check::strict`] first, after which anything but a pass is
//! [`mechlens_core::Error::Exercise`].
//!
//! The sets: [`transformer`] (E1, a GPT-2-style transformer from scratch), [`induction`] (E2,
//! finding and reading the induction heads of a two-layer attention-only model), [`patching`] (E3,
//! logit differences, activation patching and path patching on that model), [`superposition`]
//! (E4, toy models of superposition and sparse autoencoders) and [`grokking`] (E5, the Fourier
//! analysis of a model that grokked modular addition).

mod catch;
pub mod check;
pub mod grokking;
mod harness;
pub mod induction;
pub mod patching;
mod random;
mod report;
pub mod superposition;
pub mod transformer;

pub use report::{Outcome, Report};
