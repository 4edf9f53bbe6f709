//! mechlens: mechanistic interpretability in Rust notebooks.
//!
//! This is the facade a notebook loads (the "Rust · mechlens" kernel does it for you). It
//! re-exports the hooked transformers of `mechlens-models` (as [`models`] and through the
//! prelude), the weight analyses of `mechlens-weights`, the run analyses of
//! `mechlens-analysis`, the sparse autoencoders of `mechlens-sae`, the parameter
//! decompositions of `mechlens-spd` (as [`spd`]) and the charts and views
//! of `mechlens-viz` (as [`weights`], [`analysis`], [`sae`] and [`viz`], and through the
//! prelude), the tensor ↔ table conversions of `mechlens-tables` (as [`tables`]), and the crates a notebook needs —
//! `tch` for tensors, `polars` for tables,
//! `plotters` for charts — and, through [`prelude`], the display trait that makes
//! DataFrames, tensors and charts render inline in JupyterLab. [`datasets`] finds the
//! repository's committed data (BabyLlama, Shakespeare) wherever the checkout is.
//!
//! ```no_run
//! use mechlens::prelude::*;
//!
//! let t = Tensor::randn([2, 3], (Kind::Float, best_device()));
//! t.evcxr_display(); // what a notebook does with a cell's last expression
//! ```

pub mod prelude;

pub use mechlens_analysis as analysis;
pub use mechlens_checkpoint as checkpoint;
pub use mechlens_core::{
    ActivationCache, CacheFilter, Error, Hook, HookPoint, Hooks, Intervention, Result, device,
    shape,
};
pub use mechlens_exercises as exercises;
pub use mechlens_models as models;
pub use mechlens_models::datasets;
pub use mechlens_sae as sae;
pub use mechlens_spd as spd;
pub use mechlens_tables as tables;
pub use mechlens_toys as toys;
pub use mechlens_train as train;
pub use mechlens_viz as viz;
pub use mechlens_viz::{chart, display};
pub use mechlens_weights as weights;
pub use {ndarray, plotters, polars, tch};
