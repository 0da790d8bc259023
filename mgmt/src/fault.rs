//! Containment of faults in management threads.
//!
//! rvsd's management side (control requests, health probes, the periodic
//! loop, metrics scrapes) runs beside the forwarding cores in one process.
//! A bug met by one request or one server's answer must cost that request
//! or that check, never forwarding: each task runs under [`contain`],
//! which catches a panic, counts it per [`Task`], logs it, and returns an
//! error the caller turns into a failed check or an `internal` reply.
//! The release profile keeps `panic = "unwind"` for exactly this reason.
//!
//! The management state behind its mutex stays usable after such a fault:
//! [`lock`] recovers a poisoned lock (every change to it is validated and
//! applied whole, so a panic cannot leave it half-changed).
//!
//! # Fault injection (debug builds only)
//!
//! The end-to-end tests prove the containment on a running rvsd: in a
//! build with debug assertions, the control command `debug.fault {"task":
//! "probe"}` arms [`inject`], and the next run of that task panics at its
//! [`injection_point`]. A release build has no such command (it answers
//! `unknown_command`) and every injection point compiles to nothing.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Where a fault happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// A control-socket request.
    Control,
    /// A health-check or feedback probe.
    Probe,
    /// The periodic management loop (health results, ticks, reloads).
    Management,
    /// A metrics scrape.
    Metrics,
}

impl Task {
    /// Every task, in report order.
    pub const ALL: [Task; 4] = [Task::Control, Task::Probe, Task::Management, Task::Metrics];

    /// Stable name (reports, metrics).
    pub fn name(self) -> &'static str {
        match self {
            Task::Control => "control",
            Task::Probe => "probe",
            Task::Management => "management",
            Task::Metrics => "metrics",
        }
    }
}

static COUNTS: [AtomicU64; 4] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Armed injections, per task (debug builds).
#[cfg(debug_assertions)]
static ARMED: [std::sync::atomic::AtomicBool; 4] = [
    std::sync::atomic::AtomicBool::new(false),
    std::sync::atomic::AtomicBool::new(false),
    std::sync::atomic::AtomicBool::new(false),
    std::sync::atomic::AtomicBool::new(false),
];

impl Task {
    /// The task of a stable name.
    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Arms a fault for the next run of `task` (debug builds; false in a
/// release build, which cannot inject).
pub fn inject(task: Task) -> bool {
    #[cfg(debug_assertions)]
    {
        ARMED[task as usize].store(true, Ordering::Relaxed);
        true
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = task;
        false
    }
}

/// Where `task` panics when a fault was injected into it (debug builds;
/// nothing at all in a release build).
#[inline]
pub fn injection_point(task: Task) {
    #[cfg(debug_assertions)]
    if ARMED[task as usize].swap(false, Ordering::Relaxed) {
        #[expect(clippy::panic, reason = "the injected fault the tests contain")]
        {
            panic!("fault injected into the {} task", task.name());
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = task;
}

/// Faults caught so far in `task` (process-wide).
pub fn count(task: Task) -> u64 {
    COUNTS[task as usize].load(Ordering::Relaxed)
}

/// Records a fault caught elsewhere (the health checker catches its own).
pub fn record(task: Task) {
    COUNTS[task as usize].fetch_add(1, Ordering::Relaxed);
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p.downcast_ref::<&str>().map(|s| (*s).to_string()).or_else(|| p.downcast_ref::<String>().cloned());
    msg.unwrap_or_else(|| "unknown panic".to_string())
}

/// A panic caught by [`contain`], with its message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Contained(pub String);

/// Runs `f`; a panic inside is caught, counted under `task`, logged, and
/// returned as `Err(Contained(message))`.
pub fn contain<T>(task: Task, f: impl FnOnce() -> T) -> Result<T, Contained> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(p) => {
            record(task);
            let msg = panic_message(p.as_ref());
            log::error!("fault contained in {} task (counted; forwarding continues): {msg}", task.name());
            Err(Contained(msg))
        }
    }
}

/// Locks `m`, recovering it if a contained fault poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_contained_counted_and_the_lock_stays_usable() {
        let m = Mutex::new(1);
        let before = count(Task::Metrics);
        let r = contain(Task::Metrics, || {
            let mut g = lock(&m);
            *g = 2;
            panic!("injected");
        });
        assert_eq!(r.unwrap_err().0, "injected");
        assert_eq!(count(Task::Metrics), before + 1);
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2, "a poisoned lock is recovered");
        assert_eq!(contain(Task::Metrics, || 5), Ok(5));
    }

    #[test]
    fn an_injected_fault_fires_once() {
        assert!(inject(Task::Management));
        let before = count(Task::Management);
        assert!(contain(Task::Management, || injection_point(Task::Management)).unwrap_err().0.contains("fault injected"));
        assert_eq!(contain(Task::Management, || injection_point(Task::Management)), Ok(()));
        assert_eq!(count(Task::Management), before + 1);
        assert_eq!(Task::from_name("probe"), Some(Task::Probe));
    }
}
