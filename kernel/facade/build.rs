//! Exports torch-sys's C functions from the kernel's dylib.
//!
//! tch's generic and inline methods are compiled into each cell that calls them, and they
//! call torch-sys's C shim (`atg_ones`, `at_shallow_clone`...) directly. The shim is a static
//! library inside this dylib, and rustc's own version script keeps C symbols of static
//! libraries local; this second script makes them global, so a cell finds them here.
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let script = out.join("export-torch-shim.map");
    let text = "{\n  global:\n    at_*;\n    atg_*;\n    ati_*;\n    atm_*;\n    ato_*;\n    ats_*;\n    atc_*;\n    get_and_reset_last_err;\n};\n";
    if std::fs::write(&script, text).is_ok() {
        println!("cargo:rustc-link-arg=-Wl,--version-script={}", script.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
