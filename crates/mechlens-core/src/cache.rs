//! [`ActivationCache`]: the activations a run recorded, by hook point; [`CacheFilter`]: which
//! ones to record.

use std::collections::BTreeMap;
use std::fmt;

use tch::{Device, Tensor};

use crate::{Error, ForwardOrder, HookPoint, IntoHookPoint, Result};

/// Which hook points `run_with_cache` records. Only those are kept: a filtered cache never
/// holds more than it names.
pub enum CacheFilter {
    /// Every hook point the model has.
    All,
    /// These hook points only.
    Names(Vec<HookPoint>),
    /// Hook points for which the predicate is true.
    Predicate(Box<dyn Fn(&HookPoint) -> bool>),
}

impl CacheFilter {
    /// A filter from names (`HookPoint`s or TransformerLens strings).
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a name that is not a hook point.
    pub fn names<I, N>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = N>,
        N: IntoHookPoint,
    {
        let points = names
            .into_iter()
            .map(IntoHookPoint::into_hook_point)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::Names(points))
    }

    /// A filter keeping hook points whose TransformerLens name satisfies `keep`
    /// (for example `|name| name.ends_with("hook_pattern")`).
    pub fn by_name(keep: impl Fn(&str) -> bool + 'static) -> Self {
        Self::Predicate(Box::new(move |p| keep(&p.to_string())))
    }

    /// Whether `point` is to be recorded.
    pub fn keeps(&self, point: &HookPoint) -> bool {
        match self {
            Self::All => true,
            Self::Names(points) => points.contains(point),
            Self::Predicate(keep) => keep(point),
        }
    }
}

impl fmt::Debug for CacheFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("All"),
            Self::Names(points) => f.debug_tuple("Names").field(points).finish(),
            Self::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// Activations recorded during a run, keyed by hook point, in forward order.
#[derive(Default)]
pub struct ActivationCache {
    acts: BTreeMap<ForwardOrder, (HookPoint, Tensor)>,
}

impl ActivationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `act` under `point`, replacing an earlier value.
    pub fn insert(&mut self, point: HookPoint, act: Tensor) {
        self.acts.insert(point.forward_order(), (point, act));
    }

    /// The activation at `point`.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a bad name, [`Error::NotCached`] when the run did not record
    /// it (the message says how to).
    pub fn get(&self, point: impl IntoHookPoint) -> Result<&Tensor> {
        let point = point.into_hook_point()?;
        self.acts
            .get(&point.forward_order())
            .map(|(_, t)| t)
            .ok_or_else(|| Error::NotCached {
                hook: point.to_string(),
            })
    }

    /// Whether the cache holds `point`.
    pub fn contains(&self, point: impl IntoHookPoint) -> bool {
        point
            .into_hook_point()
            .is_ok_and(|p| self.acts.contains_key(&p.forward_order()))
    }

    /// The hook points held, in forward order.
    pub fn hook_points(&self) -> Vec<HookPoint> {
        self.acts.values().map(|(p, _)| *p).collect()
    }

    /// `(hook point, activation)` pairs in forward order.
    pub fn iter(&self) -> impl Iterator<Item = (&HookPoint, &Tensor)> {
        self.acts.values().map(|(p, t)| (p, t))
    }

    /// Number of activations held.
    pub fn len(&self) -> usize {
        self.acts.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.acts.is_empty()
    }

    /// Bytes held by the cached tensors.
    pub fn size_bytes(&self) -> usize {
        self.acts
            .values()
            .map(|(_, t)| t.numel() * t.kind().elt_size_in_bytes())
            .sum()
    }

    /// The cache with every activation moved to `device` (for example to free GPU memory).
    ///
    /// # Errors
    /// libtorch's error if a copy fails.
    pub fn to_device(self, device: Device) -> Result<Self> {
        let mut acts = BTreeMap::new();
        for (key, (point, t)) in self.acts {
            acts.insert(key, (point, t.f_to_device(device)?));
        }
        Ok(Self { acts })
    }

    /// Removes and returns the activation at `point`.
    pub fn remove(&mut self, point: HookPoint) -> Option<Tensor> {
        self.acts.remove(&point.forward_order()).map(|(_, t)| t)
    }
}

impl fmt::Debug for ActivationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (point, t) in self.iter() {
            map.entry(&point.to_string(), &t.size());
        }
        map.finish()
    }
}

impl fmt::Display for ActivationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ActivationCache with {} activations", self.len())?;
        for (point, t) in self.iter() {
            writeln!(f, "  {point}: {:?}", t.size())?;
        }
        Ok(())
    }
}
