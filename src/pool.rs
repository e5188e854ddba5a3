//! The threads that step a batch: the calling thread plus a crew of helpers.
//!
//! A batch of `k` threads is the thread that calls `step` plus `k - 1` helpers. The caller works
//! too (it would otherwise sit blocked), and work is cut into pieces that the participants take
//! from the two ends of one list (the caller from the front, the helpers from the back), so a
//! slow piece or a helper the operating system delays leaves no one waiting, and each thread
//! steps mostly the same envs from one step to the next (their state stays in its core's cache).
//!
//! Why not a rayon pool: a batch step is a few hundred microseconds of work handed out in up to
//! three rounds, and waking a sleeping pool thread costs tens of microseconds on a virtual
//! machine; a scope also waits for every spawned task to start, so a helper that wakes late
//! holds the caller up even when the work is already done. On a 2-vCPU VM, 8 pieces of 25 us
//! over two threads take 104 us per round here against 136 us in a rayon pool back to back, and
//! 107 us against 172 us with 50 us of the caller's own work between rounds, as between two env
//! steps (ideal: 100 us; `map_overhead` below times both). Here helpers spin for a short while
//! ([`spin`], 200 us by default) after each round before they sleep, as OpenMP runtimes do, so
//! back-to-back rounds and steps find them awake,
//! and a helper joins a round only while it is open: the caller closes the round when no piece
//! is left and waits only for helpers that joined, which are already finishing their last
//! piece.
//!
//! A child process starts with only the thread that called `fork`: helpers started before the
//! fork do not exist there. Each pool remembers the process its crew was started in and starts a
//! new crew in any other.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::envs::Team;
use crate::errors::CoreError;

/// How long an idle helper spins before it sleeps: `NEORL_INDUSTRIAL_SPIN_US` microseconds
/// (0: sleep at once, for processes whose other work wants every core between steps), else 200.
/// Read once per process.
fn spin() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var("NEORL_INDUSTRIAL_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(200);
        Duration::from_micros(us.min(1_000_000))
    })
}

/// A batch's threads: the caller plus a crew of helpers, started lazily per process.
#[derive(Debug)]
pub struct Pool {
    /// Threads in all, the caller included (`None`: `RAYON_NUM_THREADS`, else one per core).
    threads: Option<usize>,
    built: Mutex<Option<(u32, Arc<Crew>)>>,
}

/// Threads when none were asked for: `RAYON_NUM_THREADS` if set to a positive number (the
/// variable Rust's thread pools read), else one per core. Read once per process (counting cores
/// reads cgroup files).
fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&k| k > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |k| k.get()))
    })
}

impl Pool {
    /// A batch of `threads` threads in all (at least 1), or the default count.
    pub fn new(threads: Option<usize>) -> Result<Self, CoreError> {
        if threads == Some(0) {
            return Err(CoreError::config("num_threads", "must be at least 1"));
        }
        let pool = Self {
            threads,
            built: Mutex::new(None),
        };
        pool.crew()
            .map_err(|e| CoreError::config("num_threads", e.to_string()))?;
        Ok(pool)
    }

    /// The pool shared by every batch that did not ask for threads of its own.
    pub fn shared() -> &'static Pool {
        static SHARED: OnceLock<Pool> = OnceLock::new();
        SHARED.get_or_init(|| Pool {
            threads: None,
            built: Mutex::new(None),
        })
    }

    /// Threads stepping a batch, the caller included.
    pub fn num_threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads)
    }

    /// This process's crew (started on first use here); `None` for a batch of one thread.
    fn crew(&self) -> std::io::Result<Option<Arc<Crew>>> {
        let k = self.num_threads();
        if k <= 1 {
            return Ok(None);
        }
        let pid = std::process::id();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((owner, crew)) = built.as_ref() {
            if *owner == pid {
                return Ok(Some(crew.clone()));
            }
        }
        if let Some(stale) = built.take() {
            // Started before a fork: its threads do not exist here, so it is never dropped
            // (dropping would wait for them).
            std::mem::forget(stale);
        }
        let crew = Arc::new(Crew::start(k - 1)?);
        *built = Some((pid, crew.clone()));
        Ok(Some(crew))
    }

    /// Runs `f` on every item and returns the results in item order. The caller takes items from
    /// the front of the list and the helpers from the back, until they meet: each thread finds
    /// mostly the same envs as in the previous step, whose state is still in its core's cache,
    /// and a slow piece or a late helper leaves no one idle. With one item or one thread (or no
    /// helpers: none could be started) everything runs in the calling thread.
    pub fn map<T: Send, R: Send>(&self, items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
        let n = items.len();
        if n <= 1 || self.num_threads() <= 1 || u32::try_from(n).is_err() {
            return items.into_iter().map(f).collect();
        }
        // Each item and each result in a slot only its claimer touches (never contended).
        let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
        let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let ends = Ends::new(n);
        self.run(&|| {
            let from_back = IS_HELPER.with(|h| h.get());
            while let Some(i) = ends.claim(from_back) {
                let item = slots[i].lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(item) = item {
                    let r = f(item);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            }
        });
        // Only a panic (a bug: the library's code does not panic on any input) loses a piece;
        // a helper's panic is caught there, so it is raised again here rather than returning
        // fewer results than items.
        let done: Vec<R> = results
            .into_iter()
            .filter_map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect();
        assert_eq!(done.len(), n, "a piece of a parallel round panicked");
        done
    }
}

thread_local! {
    /// Set in the crew's helper threads: they take pieces from the back.
    static IS_HELPER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The unclaimed items `front..back` of a round, packed into one word (front high, back low)
/// so that a claim from either end is one compare-and-swap.
struct Ends(AtomicU64);

impl Ends {
    fn new(n: usize) -> Self {
        Self(AtomicU64::new(n as u64))
    }

    /// The next item from the back or the front, `None` once the ends have met.
    fn claim(&self, from_back: bool) -> Option<usize> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (front, back) = (cur >> 32, cur & 0xffff_ffff);
            if front >= back {
                return None;
            }
            let (next, item) = if from_back {
                ((front << 32) | (back - 1), back - 1)
            } else {
                (((front + 1) << 32) | back, front)
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(item as usize),
                Err(seen) => cur = seen,
            }
        }
    }
}

impl Team for Pool {
    fn size(&self) -> usize {
        match self.crew() {
            Ok(Some(c)) => c.helpers + 1,
            _ => 1,
        }
    }

    fn run(&self, work: &(dyn Fn() + Sync)) {
        match self.crew() {
            Ok(Some(c)) => c.run(work),
            _ => work(),
        }
    }
}

/// A round of work as the helpers see it: a type-erased pointer to the caller's closure.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the closure is `Sync`, and a helper calls it only while its round is open or joined
// (see `Crew::run`), while the caller keeps it alive.
unsafe impl Send for Job {}

/// Round state, under the crew's lock.
struct Round {
    /// Bumped whenever a round opens.
    seq: u64,
    /// The open round's work, `None` when no round is open.
    job: Option<Job>,
    /// Helpers asleep on the condition variable.
    sleepers: usize,
}

/// Helper threads that take part in one round at a time.
struct Crew {
    helpers: usize,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The process that started the helpers (after a fork they exist only there).
    pid: u32,
}

impl std::fmt::Debug for Crew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crew")
            .field("helpers", &self.helpers)
            .finish()
    }
}

struct Shared {
    round: Mutex<Round>,
    wake: Condvar,
    /// `Round::seq`, readable without the lock (helpers spin on it).
    seq: AtomicU64,
    /// Helpers inside the current round's work.
    active: AtomicUsize,
    /// A caller holds the crew (one round at a time; others work alone meanwhile).
    busy: AtomicBool,
    stop: AtomicBool,
}

impl Crew {
    fn start(helpers: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            round: Mutex::new(Round {
                seq: 0,
                job: None,
                sleepers: 0,
            }),
            wake: Condvar::new(),
            seq: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::with_capacity(helpers);
        for i in 0..helpers {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("neorl-worker-{i}"))
                .spawn(move || s.serve());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) if threads.is_empty() => return Err(e),
                Err(_) => break, // fewer helpers than asked: still correct
            }
        }
        Ok(Self {
            helpers: threads.len(),
            shared,
            threads,
            pid: std::process::id(),
        })
    }

    /// Runs `work` on the calling thread and on every helper that joins while it runs.
    fn run(&self, work: &(dyn Fn() + Sync)) {
        let s = &self.shared;
        if s.busy.swap(true, Ordering::Acquire) {
            // Another thread's batch holds the crew: step this one alone.
            return work();
        }
        // SAFETY: erases the closure's lifetime; `Close` below ends the round and waits for
        // every helper that joined before this frame (and `work`) can go away, unwinding or not.
        let job = Job(unsafe {
            std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync + 'static)>(
                work,
            )
        });
        let sleepers = {
            let mut r = s.round.lock().unwrap_or_else(|p| p.into_inner());
            r.seq += 1;
            r.job = Some(job);
            s.seq.store(r.seq, Ordering::Release);
            r.sleepers
        };
        if sleepers > 0 {
            s.wake.notify_all();
        }
        let _close = Close(s);
        work();
    }
}

/// Ends a round when the caller's share of it returns: no helper joins after this, and those
/// that joined have finished.
struct Close<'a>(&'a Shared);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.round.lock().unwrap_or_else(|p| p.into_inner()).job = None;
        while s.active.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
        s.busy.store(false, Ordering::Release);
    }
}

impl Shared {
    /// A helper's life: wait for a round (spinning, then asleep), join it if still open, work.
    fn serve(&self) {
        IS_HELPER.with(|h| h.set(true));
        let mut seen = 0;
        let spin = spin();
        loop {
            let idle = Instant::now();
            let mut spins = 0u32;
            while self.seq.load(Ordering::Acquire) == seen {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                spins += 1;
                if spins % 64 == 0 && idle.elapsed() >= spin {
                    let mut r = self.round.lock().unwrap_or_else(|p| p.into_inner());
                    r.sleepers += 1;
                    while r.seq == seen && !self.stop.load(Ordering::Relaxed) {
                        r = self.wake.wait(r).unwrap_or_else(|p| p.into_inner());
                    }
                    r.sleepers -= 1;
                    break;
                }
                std::hint::spin_loop();
            }
            let job = {
                let r = self.round.lock().unwrap_or_else(|p| p.into_inner());
                seen = r.seq;
                if r.job.is_some() {
                    self.active.fetch_add(1, Ordering::AcqRel);
                }
                r.job
            };
            if let Some(Job(work)) = job {
                // SAFETY: joined under the lock while the round was open, so the caller's
                // `Close` waits for `active` to drop back before the closure goes away.
                let work = unsafe { &*work };
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                self.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // Dropped in a forked child (a batch inherited from the parent): the helpers do not
            // exist here, so there is nothing to stop or join, and a lock one of them held at
            // the fork would stay held.
            for t in self.threads.drain(..) {
                std::mem::forget(t);
            }
            return;
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _r = self.shared.round.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_hand_out_every_item_once_front_up_and_back_down() {
        let ends = Ends::new(5);
        let order: Vec<usize> = [false, true, false, true, false, true]
            .iter()
            .filter_map(|&back| ends.claim(back))
            .collect();
        assert_eq!(order, vec![0, 4, 1, 3, 2]);
        assert_eq!(ends.claim(false), None);
        assert_eq!(Ends::new(0).claim(true), None);
        // Claimed from both ends at once: disjoint, together every item, each end in order.
        let ends = Ends::new(100_000);
        let (front, back) = std::thread::scope(|s| {
            let f = s.spawn(|| std::iter::from_fn(|| ends.claim(false)).collect::<Vec<_>>());
            let b = s.spawn(|| std::iter::from_fn(|| ends.claim(true)).collect::<Vec<_>>());
            (f.join().expect("front"), b.join().expect("back"))
        });
        assert!(front.windows(2).all(|w| w[0] < w[1]) && back.windows(2).all(|w| w[0] > w[1]));
        let mut all: Vec<usize> = front.into_iter().chain(back).collect();
        all.sort_unstable();
        assert_eq!(all, (0..100_000).collect::<Vec<_>>());
    }

    #[test]
    fn map_keeps_item_order_for_any_thread_count() {
        for k in 1..=4 {
            let pool = Pool::new(Some(k)).expect("pool");
            assert_eq!(pool.num_threads(), k);
            for n in [0, 1, 2, 37] {
                let out = pool.map((0..n).collect(), |i: u64| i * i);
                assert_eq!(out, (0..n).map(|i| i * i).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn helpers_take_part_and_every_piece_runs_once() {
        let pool = Pool::new(Some(3)).expect("pool");
        assert_eq!(pool.size(), 3);
        let mut helped = false;
        for _ in 0..200 {
            let out = pool.map((0..64).collect(), |i: usize| {
                std::thread::sleep(Duration::from_micros(50));
                (i, std::thread::current().id())
            });
            assert_eq!(
                out.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                (0..64).collect::<Vec<_>>()
            );
            let me = std::thread::current().id();
            helped |= out.iter().any(|(_, t)| *t != me);
            if helped {
                break;
            }
        }
        assert!(helped, "no helper ever took a piece");
    }

    #[test]
    fn callers_on_several_threads_share_one_crew() {
        let pool = Arc::new(Pool::new(Some(2)).expect("pool"));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for r in 0..200u64 {
                        let out = pool.map((0..16).collect(), |i: u64| i + r + t);
                        assert_eq!(out, (0..16).map(|i| i + r + t).collect::<Vec<_>>());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("caller thread");
        }
    }

    #[test]
    fn a_panicking_piece_does_not_leave_the_crew_stuck() {
        let pool = Pool::new(Some(2)).expect("pool");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.map((0..8).collect(), |i: u32| assert!(i != 3, "piece 3"))
        }));
        assert!(
            r.is_err(),
            "the panic reached the caller, whichever thread drew piece 3"
        );
        let out = pool.map((0..8).collect(), |i: u32| i * 2);
        assert_eq!(out, (0..8).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn zero_threads_is_a_config_error() {
        assert!(Pool::new(Some(0)).is_err());
    }

    /// Overhead of a round against a rayon pool of the same size running the same pieces, both
    /// timed in turns, back to back and with the caller busy between rounds as between two env
    /// steps (`cargo test --release --lib map_overhead -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing, not a check"]
    fn map_overhead() {
        use rayon::prelude::*;
        let spin = |us: u64| {
            let t = Instant::now();
            while t.elapsed().as_micros() < u128::from(us) {
                std::hint::spin_loop();
            }
        };
        let rounds = 1000;
        for k in [1usize, 2] {
            let pool = Pool::new(Some(k)).expect("pool");
            let rp = rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .expect("rayon pool");
            for (us, gap) in [(5u64, 0u64), (25, 0), (100, 0), (25, 50), (25, 500)] {
                let ideal = 8.0 * us as f64 / k as f64;
                let (mut ours, mut theirs) = (f64::INFINITY, f64::INFINITY);
                for _ in 0..5 {
                    let t = Instant::now();
                    for _ in 0..rounds {
                        pool.map((0..8).collect(), |_: u32| spin(us));
                        spin(gap);
                    }
                    ours = ours.min(t.elapsed().as_secs_f64() / rounds as f64 * 1e6);
                    let t = Instant::now();
                    for _ in 0..rounds {
                        rp.install(|| (0..8u32).into_par_iter().for_each(|_| spin(us)));
                        spin(gap);
                    }
                    theirs = theirs.min(t.elapsed().as_secs_f64() / rounds as f64 * 1e6);
                }
                let (ours, theirs) = (ours - gap as f64, theirs - gap as f64);
                println!(
                    "threads {k}, 8 pieces of {us} us, {gap} us between rounds: \
                     {ours:.1} us per round here, {theirs:.1} us with rayon (ideal {ideal:.1})"
                );
            }
        }
    }
}
