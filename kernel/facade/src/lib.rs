//! mechlens for the kernel's cells: the whole library re-exported from one dylib (see
//! Cargo.toml for why).

pub use mechlens_lib::*;

mod lapack_stubs;
