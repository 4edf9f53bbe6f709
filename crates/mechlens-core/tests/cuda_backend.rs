//! The start-up loader of libtorch's CUDA backend (see `mechlens_core::device`).
//!
//! Each check re-runs this test binary with `MECHLENS_CUDA` set, because the loader runs
//! before `main`, and reads `/proc/self/maps` in that child.

#![allow(clippy::expect_used, clippy::panic)] // helpers of tests: a failure is the report

use std::process::Command;

/// In a child (`MECHLENS_CUDA_REPORT` set): report whether libtorch_cuda.so is mapped, and
/// what tch says about CUDA. Run directly: check the loader's own decision for this process,
/// which `MECHLENS_CUDA` makes when set and the driver's presence otherwise.
#[test]
fn report_cuda_state() {
    let loaded = mechlens_core::device::cuda_backend_loaded();
    if std::env::var_os("MECHLENS_CUDA_REPORT").is_some() {
        println!("loaded={loaded} available={}", tch::Cuda::is_available());
        return;
    }
    let has_driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
    let expected = match std::env::var("MECHLENS_CUDA").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => has_driver,
    };
    assert_eq!(loaded, expected, "driver present: {has_driver}");
}

fn child_report(mechlens_cuda: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = Command::new(exe)
        .args([
            "--exact",
            "report_cuda_state",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MECHLENS_CUDA", mechlens_cuda)
        .env("MECHLENS_CUDA_REPORT", "1")
        .output()
        .expect("the test binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // The line is the test harness's "test report_cuda_state ... " followed by our report.
    stdout
        .lines()
        .find_map(|l| l.find("loaded=").map(|at| l[at..].trim().to_string()))
        .unwrap_or_else(|| panic!("no report in {stdout}"))
}

/// Without the loader, the linker's `--as-needed` leaves libtorch_cuda.so out: this is the
/// problem the loader exists for, so the check that the loader fixes it means something.
#[test]
fn without_the_loader_the_cuda_backend_is_missing() {
    assert_eq!(child_report("0"), "loaded=false available=false");
}

#[test]
fn the_loader_maps_the_cuda_backend_at_start() {
    let report = child_report("1");
    assert!(report.starts_with("loaded=true"), "{report}");
    // CUDA is usable exactly when the machine has a driver (and so a GPU).
    let has_driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
    assert_eq!(report, format!("loaded=true available={has_driver}"));
}
