//! Stand-ins for the LAPACK routines that `lax` (under ndarray-linalg) declares but libtorch's
//! MKL does not export.
//!
//! mechlens finds LAPACK in libtorch_cpu.so (see the workspace Cargo.toml). A statically linked
//! program only references the routines it calls, and those are all there. A Rust dylib keeps
//! every public function of every crate inside it, lax's wrappers for these routines
//! included, and the loader refuses a library with an unresolved symbol. Nothing in mechlens
//! calls them; if something ever did, it stops with the routine's name instead of computing
//! garbage. A routine missing from this list shows at kernel start as
//! `undefined symbol: <name>`: add it here.

macro_rules! missing_lapack {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        extern "C" fn $name() {
            eprintln!(
                "mechlens: the LAPACK routine {} is not in libtorch's MKL; the kernel cannot run it",
                stringify!($name)
            );
            std::process::abort();
        }
    )*};
}

missing_lapack!(
    cgecon_, cgelqf_, cgesvd_, cgetri_, cggev_, cgtcon_, cgttrf_, cgttrs_, cheev_, chegv_,
    chetri_, clange_, ctrtrs_, cunglq_, dgecon_, dgelqf_, dgesvd_, dgetri_, dggev_, dgtcon_,
    dgttrf_, dgttrs_, dlange_, dorglq_, dsyev_, dsygv_, dsytri_, dtrtrs_, sgecon_, sgelqf_,
    sgesvd_, sgetri_, sggev_, sgtcon_, sgttrf_, sgttrs_, slange_, sorglq_, ssyev_, ssygv_,
    ssytri_, strtrs_, zgecon_, zgelqf_, zgesvd_, zgetri_, zggev_, zgtcon_, zgttrf_, zgttrs_,
    zheev_, zhegv_, zhetri_, zlange_, ztrtrs_, zunglq_,
);
