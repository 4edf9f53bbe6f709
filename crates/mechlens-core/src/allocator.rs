//! Keeping freed tensor memory for reuse instead of handing it back to the OS.
//!
//! glibc serves each allocation over its mmap threshold (128 KiB, rising to at most 32 MiB)
//! with a fresh `mmap` and unmaps it on free. A forward pass allocates and frees the same
//! activation-sized buffers layer after layer, so with the defaults every pass page-faults its
//! activations in anew: about 130k faults (0.5 GB zeroed) per GPT-2-small pass at 8×128, and
//! twice that when `run_with_cache` keeps everything — 10–20 % of the pass. Raising the mmap
//! and trim thresholds lets freed blocks return to malloc's free lists and be reused, and
//! brings the faults to zero after the first pass.
//!
//! The price is that the process keeps its peak memory instead of returning it, as PyTorch's
//! own caching allocators do on GPUs. Models call [`keep_freed_memory`] on load; set
//! `MECHLENS_KEEP_FREED_MEMORY=0` to keep glibc's defaults.

use std::sync::OnceLock;

/// Blocks below this come from malloc's heap (and are reused) rather than their own mmap.
const MMAP_THRESHOLD: i32 = 1 << 30;

/// Applies the settings once per process unless `MECHLENS_KEEP_FREED_MEMORY` is `0`/`false`.
/// Returns whether they are in effect (never on a non-glibc target).
pub fn keep_freed_memory() -> bool {
    static APPLIED: OnceLock<bool> = OnceLock::new();
    *APPLIED.get_or_init(|| {
        !opts_out(std::env::var("MECHLENS_KEEP_FREED_MEMORY").ok().as_deref()) && apply()
    })
}

/// Whether a value of `MECHLENS_KEEP_FREED_MEMORY` turns the settings off.
fn opts_out(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "no"))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes malloc's tuning parameters; it is safe to call at any time
    // and reports failure by returning 0.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    let _ = MMAP_THRESHOLD;
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::apply());
    }

    #[test]
    fn only_an_off_value_opts_out() {
        for off in ["0", "false", "No", " FALSE "] {
            assert!(super::opts_out(Some(off)), "{off:?}");
        }
        for on in [None, Some("1"), Some("yes"), Some("")] {
            assert!(!super::opts_out(on), "{on:?}");
        }
    }
}
