//! The CUDA path, on a machine with a GPU: `cargo test -p mechlens-models --test gpu -- --ignored`.
//!
//! Ignored by default because CI and most development machines have no GPU; run them where
//! one is (the project's device machine). Each compares the GPU against the CPU, which the
//! parity tests compare against Hugging Face.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failed step is the test's report

use mechlens_core::device::best_device;
use mechlens_core::{ActivationCache, CacheFilter};
use mechlens_models::datasets::babyllama;
use mechlens_models::{HookedTransformer, LoadOptions};
use tch::{Device, Kind, Tensor};

const PROMPT: &str = "Once upon a time, there was a little girl named Lily.";
/// float32 matmuls on a GPU (TF32 off by default in libtorch) and on a CPU round apart by
/// ~1e-6 relative; 1e-4 absolute on logits of size ~10 leaves room for the reductions' order.
const TOLERANCE: f64 = 1e-4;

fn model_on(device: Device) -> HookedTransformer {
    babyllama(LoadOptions {
        device,
        ..LoadOptions::default()
    })
    .expect("BabyLlama loads from datasets/")
}

/// BabyLlama on the CPU and on the first GPU, and PROMPT's tokens on each.
fn cpu_and_gpu() -> ((HookedTransformer, Tensor), (HookedTransformer, Tensor)) {
    let cpu = model_on(Device::Cpu);
    let tokens = cpu.to_tokens(PROMPT, true).unwrap();
    let on_gpu = tokens.to_device(Device::Cuda(0));
    ((cpu, tokens), (model_on(Device::Cuda(0)), on_gpu))
}

/// The largest difference between `a` and `b`, where both are finite; infinite entries (the
/// causal mask in attention scores) must be the same infinity in both.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Double);
    let finite = a.isfinite();
    assert!(
        finite.equal(&b.isfinite()),
        "finite in one, not in the other"
    );
    assert!(
        a.masked_select(&finite.logical_not())
            .equal(&b.masked_select(&finite.logical_not()))
    );
    (a.masked_select(&finite) - b.masked_select(&finite))
        .abs()
        .max()
        .double_value(&[])
}

#[test]
#[ignore = "needs a GPU"]
fn best_device_is_the_first_gpu() {
    assert!(
        tch::Cuda::is_available(),
        "no CUDA: run this on a GPU machine"
    );
    assert_eq!(best_device(), Device::Cuda(0));
}

#[test]
#[ignore = "needs a GPU"]
fn forward_on_cuda_equals_the_cpu() {
    let ((cpu, tokens), (gpu, gpu_tokens)) = cpu_and_gpu();
    let on_cpu = cpu.forward(&tokens).unwrap();
    let on_gpu = gpu.forward(&gpu_tokens).unwrap();
    assert_eq!(on_gpu.device(), Device::Cuda(0));
    let diff = max_abs_diff(&on_cpu, &on_gpu);
    assert!(diff <= TOLERANCE, "logits differ by {diff}");
}

#[test]
#[ignore = "needs a GPU"]
fn a_cache_moves_between_devices() {
    let ((cpu, tokens), (gpu, gpu_tokens)) = cpu_and_gpu();
    let (_, cpu_cache) = cpu.run_with_cache(&tokens, CacheFilter::All).unwrap();
    let (_, gpu_cache) = gpu.run_with_cache(&gpu_tokens, CacheFilter::All).unwrap();
    let moved: ActivationCache = gpu_cache.to_device(Device::Cpu).unwrap();
    assert_eq!(moved.len(), cpu_cache.len());
    for (point, on_cpu) in cpu_cache.iter() {
        let from_gpu = moved.get(*point).unwrap();
        assert_eq!(from_gpu.device(), Device::Cpu, "{point:?}");
        let diff = max_abs_diff(on_cpu, from_gpu);
        assert!(diff <= TOLERANCE, "{point:?} differs by {diff}");
    }
    let back = moved.to_device(Device::Cuda(0)).unwrap();
    assert!(back.iter().all(|(_, t)| t.device() == Device::Cuda(0)));
}
