//! Running a loop's blocks on libtorch's own OpenMP threads.
//!
//! After each parallel op, libgomp's worker threads spin for a while before they sleep
//! (300k `pause`s by default: several milliseconds on recent Intel CPUs). Threads of our own
//! started in that window share the cores with the spinning workers, and on a 2-core machine
//! that made the fused loops twice as slow. So the blocks run as an OpenMP parallel region on
//! libtorch's team, through libgomp's `GOMP_parallel` entry point (the call GCC emits for
//! `#pragma omp parallel`), found in the already-loaded `libgomp.so.1`. Where there is none
//! (another OpenMP runtime, another platform) the blocks run on scoped threads.

use std::ffi::{c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use mechlens_core::{Error, Result};

type ParallelFn = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type ThreadQuery = unsafe extern "C" fn() -> c_int;

/// libgomp's entry points, when libtorch loaded it.
struct Gomp {
    parallel: ParallelFn,
    thread_num: ThreadQuery,
    num_threads: ThreadQuery,
}

/// Runs `body(block)` for every block in `0..blocks`, spread over `threads` threads, and
/// returns when all are done. Which thread runs which block varies; callers make each
/// block's result depend on the block only.
pub(crate) fn for_each_block(
    blocks: usize,
    threads: usize,
    body: &(dyn Fn(usize) + Sync),
) -> Result<()> {
    let panicked = AtomicBool::new(false);
    let run = |block: usize| {
        if catch_unwind(AssertUnwindSafe(|| body(block))).is_err() {
            panicked.store(true, Ordering::Relaxed);
        }
    };
    match gomp() {
        Some(gomp) if threads > 1 && blocks > 1 => {
            let job = Job {
                blocks,
                run: &run,
                gomp,
            };
            let team = c_uint::try_from(threads.min(blocks)).unwrap_or(1);
            // SAFETY: `GOMP_parallel(fn, data, n, 0)` calls `fn(data)` on each thread of a
            // team of `n` and returns after all have returned. `data` points at `job`,
            // which outlives the call, and `run_job` only reads it.
            unsafe {
                (gomp.parallel)(run_job, std::ptr::from_ref(&job).cast_mut().cast(), team, 0)
            };
        }
        _ => std::thread::scope(|s| {
            for t in 0..threads.min(blocks).max(1) {
                let run = &run;
                let step = threads.min(blocks).max(1);
                s.spawn(move || (t..blocks).step_by(step).for_each(run));
            }
        }),
    }
    if panicked.load(Ordering::Relaxed) {
        return Err(Error::invalid("fused loop", "a block of the loop panicked"));
    }
    Ok(())
}

struct Job<'a> {
    blocks: usize,
    run: &'a (dyn Fn(usize) + Sync),
    gomp: &'static Gomp,
}

extern "C" fn run_job(data: *mut c_void) {
    // SAFETY: `for_each_block` passes a pointer to a live `Job` and waits for the team.
    let job = unsafe { &*(data as *const Job<'_>) };
    // SAFETY: both queries are plain libgomp getters, valid inside a parallel region.
    let (me, team) = unsafe { ((job.gomp.thread_num)(), (job.gomp.num_threads)()) };
    let (me, team) = (
        usize::try_from(me).unwrap_or(0),
        usize::try_from(team).unwrap_or(1).max(1),
    );
    (me..job.blocks).step_by(team).for_each(job.run);
}

fn gomp() -> Option<&'static Gomp> {
    static GOMP: OnceLock<Option<Gomp>> = OnceLock::new();
    GOMP.get_or_init(find_gomp).as_ref()
}

#[cfg(target_os = "linux")]
fn find_gomp() -> Option<Gomp> {
    if std::env::var_os("MECHLENS_NO_OPENMP_TEAM").is_some() {
        return None;
    }
    loaded_gomp()
}

/// libgomp's entry points if the process has it loaded (libtorch brings it), whatever
/// `MECHLENS_NO_OPENMP_TEAM` says.
#[cfg(target_os = "linux")]
fn loaded_gomp() -> Option<Gomp> {
    // SAFETY: RTLD_NOLOAD only returns a handle to a library that is already loaded (it never
    // loads one), and dlsym looks up names in it; the handle is never closed, so the symbols
    // stay valid for the process's life. The signatures are libgomp's documented ABI.
    unsafe {
        let handle = libc::dlopen(c"libgomp.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return None;
        }
        let symbol = |name: &std::ffi::CStr| {
            let ptr = libc::dlsym(handle, name.as_ptr());
            (!ptr.is_null()).then_some(ptr)
        };
        let parallel = symbol(c"GOMP_parallel")?;
        let thread_num = symbol(c"omp_get_thread_num")?;
        let num_threads = symbol(c"omp_get_num_threads")?;
        Some(Gomp {
            parallel: std::mem::transmute::<*mut c_void, ParallelFn>(parallel),
            thread_num: std::mem::transmute::<*mut c_void, ThreadQuery>(thread_num),
            num_threads: std::mem::transmute::<*mut c_void, ThreadQuery>(num_threads),
        })
    }
}

#[cfg(not(target_os = "linux"))]
fn find_gomp() -> Option<Gomp> {
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn every_block_runs_once() {
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu)); // libtorch loaded
        let seen = Mutex::new(vec![0; 7]);
        for_each_block(7, 2, &|b| seen.lock().unwrap()[b] += 1).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1; 7]);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn libtorch_brings_libgomp_here() {
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        assert!(
            loaded_gomp().is_some(),
            "libgomp.so.1 is not loaded; the loops fall back to threads"
        );
        // The team is used exactly when the opt-out is unset.
        let opted_out = std::env::var_os("MECHLENS_NO_OPENMP_TEAM").is_some();
        assert_eq!(gomp().is_some(), !opted_out);
    }

    #[test]
    fn a_panicking_block_is_an_error() {
        let err = for_each_block(4, 2, &|b| assert!(b != 2, "block 2")).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }
}
