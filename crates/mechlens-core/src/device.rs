//! Devices, and making libtorch's CUDA backend visible to `tch`.
//!
//! The PyPI torch wheel splits libtorch into `libtorch_cpu.so` and `libtorch_cuda.so`. torch-sys
//! asks the linker for both, but Rust links with `--as-needed` and nothing references a symbol
//! of `libtorch_cuda.so` directly, so the linker drops it: the CUDA backend never registers
//! and `tch::Cuda::is_available()` is false even on a GPU machine. A build script cannot pass
//! `--no-as-needed` to the binaries downstream of it, and a notebook cell (an evcxr crate) has
//! no build script of ours at all. So this module loads the library at run time: an ELF
//! constructor `dlopen`s it as soon as a binary, test or notebook cell linking mechlens starts,
//! when an NVIDIA driver is present (or `MECHLENS_CUDA=1` asks for it; `MECHLENS_CUDA=0`
//! turns it off). Loading an already loaded library only bumps a count, so each new notebook
//! cell pays nothing.

use crate::{Error, Result};
use std::ffi::CString;
use std::path::PathBuf;
use tch::Device;

/// The file name of the CUDA half of libtorch.
const CUDA_LIBRARY: &str = "libtorch_cuda.so";

/// The device a notebook should use: the first GPU when CUDA works, else the CPU.
pub fn best_device() -> Device {
    if tch::Cuda::is_available() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// Where `libtorch_cuda.so` should be: beside the libtorch this crate was built against
/// (`LIBTORCH` at build time, which `make setup` sets), else wherever the loader's search path
/// finds it.
fn cuda_library_path() -> PathBuf {
    if let Some(root) = option_env!("LIBTORCH") {
        let candidate = PathBuf::from(root).join("lib").join(CUDA_LIBRARY);
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from(CUDA_LIBRARY)
}

/// Loads libtorch's CUDA backend into this process so that `tch` sees the GPUs.
///
/// Called automatically at start-up on machines with an NVIDIA driver; call it yourself only
/// if you set `MECHLENS_CUDA=0` and changed your mind.
///
/// # Errors
/// [`Error::CudaUnavailable`] with the loader's message when the library cannot be loaded
/// (a CPU-only libtorch, or a path problem).
pub fn load_cuda_backend() -> Result<()> {
    let path = cuda_library_path();
    let c_path = CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| Error::CudaUnavailable(format!("bad library path {}", path.display())))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; the handle is
    // deliberately leaked because the backend must stay loaded for the life of the process.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated string owned by the loader.
        let message = unsafe {
            let msg = libc::dlerror();
            if msg.is_null() {
                "unknown loader error".to_string()
            } else {
                std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
            }
        };
        return Err(Error::CudaUnavailable(format!(
            "could not load {}: {message}",
            path.display()
        )));
    }
    Ok(())
}

/// Whether libtorch's CUDA backend is loaded in this process (read from `/proc/self/maps`).
/// True does not mean a GPU is usable: see [`best_device`] for that.
pub fn cuda_backend_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains(CUDA_LIBRARY))
}

/// Whether to load the CUDA backend at start-up: `MECHLENS_CUDA` decides when set, otherwise
/// the presence of the NVIDIA driver (so CPU-only machines skip a large, useless load).
fn wants_cuda_at_start() -> bool {
    match std::env::var("MECHLENS_CUDA").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => std::path::Path::new("/proc/driver/nvidia/version").exists(),
    }
}

#[cfg(target_os = "linux")]
extern "C" fn load_cuda_at_start() {
    if wants_cuda_at_start() {
        // No GPU backend is not an error at start-up: the CPU still works, and
        // `load_cuda_backend` gives the reason to whoever asks.
        let _ = load_cuda_backend();
    }
}

// An ELF constructor: runs when the binary or the notebook cell's library is loaded, before
// any user code can call into tch. `#[used]` keeps it through rustc's and the linker's pruning.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static LOAD_CUDA_AT_START: extern "C" fn() = load_cuda_at_start;

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine's own answer: a GPU is usable exactly when the NVIDIA driver is present
    /// (the start-up loader then maps libtorch's CUDA backend).
    #[test]
    fn best_device_is_the_gpu_exactly_when_a_driver_is_present() {
        let has_driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
        let expected = if has_driver && std::env::var("MECHLENS_CUDA").as_deref() != Ok("0") {
            Device::Cuda(0)
        } else {
            Device::Cpu
        };
        assert_eq!(best_device(), expected);
    }
}
