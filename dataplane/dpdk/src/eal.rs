//! EAL start-up, lcore launching, and thread registration.
//!
//! [`Eal`] is the proof that EAL is running: everything that needs EAL
//! (pools, ports, rings, launching lcores) takes `&Eal`, so none of it can
//! be called before [`Eal::init`] succeeded. `Eal` is neither `Send` nor
//! `Sync`: it stays on the thread that initialised it, which EAL made the
//! main lcore, and the calls that must run there (`rte_eal_wait_lcore`)
//! go through it. Other threads get an [`EalHandle`] (`Send`, `Sync`,
//! `Copy`) to register themselves.
//!
//! EAL is never torn down: `rte_eal_cleanup` would unmap the memory that
//! the pools (which live for the whole process, see
//! [`Mempool`](crate::Mempool)) and every mbuf point into. The process
//! exit releases it; rvsd runs EAL `--in-memory` (or `--no-huge`), so no
//! hugepage file outlives it.
use dpdk_sys as sys;
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_uint};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why EAL would not start or a launch failed.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// `rte_eal_init` was already called in this process.
    #[error("EAL is already initialised in this process (rte_eal_init works once)")]
    AlreadyInitialised,
    /// An argument contained a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    /// `rte_eal_init` failed.
    #[error("rte_eal_init failed: {0} (see the EAL messages above)")]
    Init(String),
    /// `rte_eal_remote_launch` failed.
    #[error("cannot launch on lcore {lcore}: {reason}")]
    Launch {
        /// The lcore.
        lcore: u32,
        /// The errno description.
        reason: String,
    },
    /// `rte_thread_register` failed.
    #[error("cannot register this thread with EAL: {0}")]
    Register(String),
}

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Describes a negative DPDK return code or errno value.
pub(crate) fn errno_str(code: c_int) -> String {
    std::io::Error::from_raw_os_error(code.abs()).to_string()
}

/// The current thread's `rte_errno` as text.
pub(crate) fn rte_errno() -> String {
    // SAFETY: reads a thread-local integer through the compiled getter.
    let e = unsafe { sys::rvs_rte_errno() };
    errno_str(e)
}

/// A running Environment Abstraction Layer, held by its main lcore.
///
/// It cannot leave that thread:
///
/// ```compile_fail,E0277
/// fn needs_send<T: Send>(_: T) {}
/// let eal = rvs_dpdk::Eal::init(&["rvs"]).unwrap();
/// needs_send(eal); // Eal is not Send: it stays on the main lcore
/// ```
#[derive(Debug)]
pub struct Eal {
    tsc_hz: u64,
    main_lcore: u32,
    /// Pins the value to the main lcore's thread (not Send, not Sync).
    _main_thread: PhantomData<*const ()>,
}

/// Proof, usable on any thread, that EAL is running (and, EAL never being
/// torn down, will be for the rest of the process).
#[derive(Clone, Copy, Debug)]
pub struct EalHandle {
    _private: (),
}

impl EalHandle {
    /// Registers the calling non-EAL thread with EAL, so it gets an lcore
    /// id and a mempool cache (unregistered threads bypass the cache and ran
    /// about 2x slower on mbuf alloc/free). Returns its lcore id.
    pub fn register_thread(self) -> Result<u32, EalError> {
        // SAFETY: EAL is initialised (an EalHandle exists only once init
        // succeeded, and EAL is never torn down); registering the current
        // thread has no other precondition.
        let rc = unsafe { sys::rte_thread_register() };
        if rc < 0 {
            return Err(EalError::Register(rte_errno()));
        }
        Ok(lcore_id())
    }
}

impl Eal {
    /// Starts EAL with `args` (the first is the program name); the calling
    /// thread becomes the main lcore. Fails if EAL already ran in this
    /// process.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, EalError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(EalError::AlreadyInitialised);
        }
        let cargs = args
            .iter()
            .map(|a| CString::new(a.as_ref()).map_err(|_| EalError::BadArgument(a.as_ref().to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr().cast_mut()).collect();
        let argc = c_int::try_from(argv.len()).map_err(|_| EalError::BadArgument("too many arguments".into()))?;
        // SAFETY: argv holds `argc` pointers to NUL-terminated strings that
        // outlive the call (EAL may permute the pointer array, which we own,
        // but keeps no reference to it); this is the first and only
        // rte_eal_init of the process (checked above).
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(EalError::Init(rte_errno()));
        }
        // SAFETY: EAL is initialised.
        let tsc_hz = unsafe { sys::rte_get_tsc_hz() };
        // SAFETY: EAL is initialised.
        let main_lcore = unsafe { sys::rte_get_main_lcore() };
        Ok(Eal { tsc_hz, main_lcore, _main_thread: PhantomData })
    }

    /// A handle other threads can hold.
    pub fn handle(&self) -> EalHandle {
        EalHandle { _private: () }
    }

    /// TSC ticks per second, as EAL measured them.
    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// The worker lcores EAL enabled, in order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i: c_uint = c_uint::MAX;
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore only reads its
            // configuration. Arguments: skip the main lcore, no wrap.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                break;
            }
            out.push(i);
        }
        out
    }

    /// The DPDK version string (e.g. "DPDK 22.11.11"); needs no EAL.
    pub fn version() -> String {
        // SAFETY: returns a pointer to a static NUL-terminated string.
        let p = unsafe { sys::rte_version() };
        if p.is_null() {
            return String::from("DPDK");
        }
        // SAFETY: non-null static C string from DPDK.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Runs `f` on worker lcore `lcore`; join it with [`Lcore::wait`]. A
    /// panic inside `f` is caught on the lcore and reported by `wait`.
    pub fn launch(&self, lcore: u32, f: impl FnOnce() + Send + 'static) -> Result<Lcore, EalError> {
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: EAL is initialised and we are on the main lcore (Eal is
        // not Send); the trampoline has the lcore_function_t signature and
        // takes ownership of `arg`; EAL runs it once on `lcore`.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so nobody else owns `arg`: reclaim it.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(EalError::Launch { lcore, reason: errno_str(rc) });
        }
        Ok(Lcore { id: lcore, _main_thread: PhantomData })
    }
}

/// The calling thread's lcore id (`u32::MAX` for unregistered threads).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { sys::rte_lcore_id() }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, handed to exactly
    // one lcore, so reclaiming it here happens once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// A job launched on a worker lcore. It stays on the main lcore's thread
/// (not `Send`), where EAL requires the join to happen.
#[derive(Debug)]
#[must_use = "a launched lcore should be joined with wait()"]
pub struct Lcore {
    id: u32,
    _main_thread: PhantomData<*const ()>,
}

impl Lcore {
    /// The lcore id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits for the job to return; true when it returned normally (false
    /// when it panicked).
    pub fn wait(self) -> bool {
        // SAFETY: called on the main lcore (Lcore is created there by
        // Eal::launch and is not Send), for an lcore this value launched.
        unsafe { sys::rte_eal_wait_lcore(self.id) == 0 }
    }
}
