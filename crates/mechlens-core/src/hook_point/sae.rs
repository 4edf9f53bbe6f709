//! The hook points of a sparse autoencoder spliced into a model: [`SaeSite`] (which hook of
//! the SAE) and [`SaeAnchor`] (the model hook point it is spliced in at).

use super::HookPoint;
use super::sites::SITES;

/// The hook points of a spliced sparse autoencoder, in forward order (SAELens' names).
///
/// Shapes: input, recons, error and output have the anchor's shape (`[..., d_in]`); acts
/// have `[..., d_sae]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaeSite {
    /// `hook_sae_input`: the activation the SAE reads (before normalisation).
    Input,
    /// `hook_sae_acts_pre`: latent pre-activations.
    ActsPre,
    /// `hook_sae_acts_post`: latent activations (after ReLU / TopK / threshold).
    ActsPost,
    /// `hook_sae_recons`: the reconstruction (before de-normalisation).
    Recons,
    /// `hook_sae_error`: input − reconstruction (only when the error term is kept).
    Error,
    /// `hook_sae_output`: what replaces the activation in the model.
    Output,
}

impl SaeSite {
    /// Every site, in forward order.
    pub const ALL: [SaeSite; 6] = [
        SaeSite::Input,
        SaeSite::ActsPre,
        SaeSite::ActsPost,
        SaeSite::Recons,
        SaeSite::Error,
        SaeSite::Output,
    ];

    /// The name after the anchor: `hook_sae_acts_post`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "hook_sae_input",
            Self::ActsPre => "hook_sae_acts_pre",
            Self::ActsPost => "hook_sae_acts_post",
            Self::Recons => "hook_sae_recons",
            Self::Error => "hook_sae_error",
            Self::Output => "hook_sae_output",
        }
    }
}

/// The model hook point an SAE is spliced into, stored compactly so that [`HookPoint`] stays
/// `Copy`. Built by [`HookPoint::sae`]; read back by [`SaeAnchor::point`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaeAnchor {
    /// Index of the anchor's site in the site table.
    pub(super) site: u8,
    pub(super) layer: u32,
}

impl SaeAnchor {
    /// The model hook point.
    pub fn point(self) -> HookPoint {
        (SITES[usize::from(self.site)].make)(self.layer as usize)
    }
}
