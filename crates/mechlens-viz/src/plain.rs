//! [`NotebookDisplay`] for the standard library's types: numbers, strings, `Vec`, `Option`,
//! `Result`, tuples, maps, paths.
//!
//! evcxr shows a cell's last expression by compiling `(expr).evcxr_display()` first; when that
//! does not compile it compiles the cell a second time with `format!("{:?}", expr)` instead.
//! Without these impls every cell ending in `i + 1`, `v.len()` or `name` pays for a failed
//! build before the one that runs (about 0.3 s on 2 cores). Each impl writes what evcxr's
//! fallback would have written: the `Debug` text as `text/plain`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;

use crate::display::{NotebookDisplay, emit};

/// What evcxr's own fallback shows: the value's `Debug` text.
fn debug_text<T: Debug + ?Sized>(value: &T) {
    emit("text/plain", &format!("{value:?}"));
}

macro_rules! display_as_debug {
    ($($t:ty),* $(,)?) => {$(
        impl NotebookDisplay for $t {
            fn evcxr_display(&self) {
                debug_text(self);
            }
        }
    )*};
}

display_as_debug!(
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    f32,
    f64,
    bool,
    char,
    (),
    str,
    String,
    std::path::Path,
    std::path::PathBuf,
    std::time::Duration,
    std::ffi::OsStr,
    std::ffi::OsString,
);

macro_rules! display_generic_as_debug {
    ($(impl<$($p:ident),+> for $t:ty;)*) => {$(
        impl<$($p: Debug),+> NotebookDisplay for $t {
            fn evcxr_display(&self) {
                debug_text(self);
            }
        }
    )*};
}

display_generic_as_debug!(
    impl<T> for [T];
    impl<T> for Vec<T>;
    impl<T> for VecDeque<T>;
    impl<T> for Option<T>;
    impl<T, E> for Result<T, E>;
    impl<K, V, S> for HashMap<K, V, S>;
    impl<T, S> for HashSet<T, S>;
    impl<K, V> for BTreeMap<K, V>;
    impl<T> for BTreeSet<T>;
    impl<T> for Box<T>;
    impl<A> for (A,);
    impl<A, B> for (A, B);
    impl<A, B, C> for (A, B, C);
    impl<A, B, C, D> for (A, B, C, D);
    impl<A, B, C, D, E> for (A, B, C, D, E);
    impl<A, B, C, D, E, F> for (A, B, C, D, E, F);
);

impl<T: Debug, const N: usize> NotebookDisplay for [T; N] {
    fn evcxr_display(&self) {
        debug_text(self);
    }
}
