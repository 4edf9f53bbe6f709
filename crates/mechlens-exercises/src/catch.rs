//! Calling a learner's function so that nothing it does ends the kernel: a panic is caught,
//! its message kept, and a `todo!()` recognised as work not started.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

/// How a call ended.
pub(crate) enum Caught<T> {
    /// It returned.
    Returned(T),
    /// It reached `todo!()` or `unimplemented!()`.
    NotDone,
    /// It panicked otherwise; the panic's message.
    Panicked(String),
}

/// Panic hooks are process-wide: checks that run at once (tests in parallel) take turns.
static HOOK: Mutex<()> = Mutex::new(());

/// Runs `f`, catching a panic without printing it (the report says what happened; the
/// default hook would print a backtrace under the check's output).
pub(crate) fn call<T>(f: impl FnOnce() -> T) -> Caught<T> {
    let _turn = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    match result {
        Ok(value) => Caught::Returned(value),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            // The messages of `todo!()` and `unimplemented!()`, with or without a note.
            if message.starts_with("not yet implemented") || message.starts_with("not implemented")
            {
                Caught::NotDone
            } else {
                Caught::Panicked(message)
            }
        }
    }
}
