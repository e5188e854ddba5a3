//! Many problems of one ODE, each over one span, on every thread of a team: lanes fed from one
//! shared queue, costliest problems first. For models whose right-hand side is cheap and whose
//! problems' costs vary widely (the reactor: a calm step takes a handful of trial steps, one in
//! runaway a few hundred).
//!
//! Why a shared queue: fixed shares per thread leave threads idle behind the one that drew the
//! expensive problems, and a thread's lanes idle behind its last long problem. Every thread's lanes
//! take problems from one queue, costliest first (the step size each problem last needed predicts
//! its cost), so long problems start early and the short ones fill in around them. The results are
//! those of [`dopri5_lanes`] one problem at a time, whatever the team.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{dopri5_lanes, dopri5_queue, InPlace, Job, JobQueue, LaneRhs, Tolerance};
use crate::envs::Team;

/// Problems integrated side by side with SSE2: eight fill a core's pipelines for a cheap
/// right-hand side (measured on the reactor: 3.5x the throughput of one at a time).
pub const LANES: usize = 8;
/// With AVX2: sixteen (the reactor: 4-5x).
pub const AVX2_LANES: usize = 16;

/// An ODE whose problems differ only in their state, parameter and step-size memory.
pub trait LaneModel<const N: usize> {
    /// A problem's parameters (the input held over the span, and any others per problem).
    type Param: Copy + Send + Sync;
    /// The span every problem is integrated over.
    const SPAN: f64;
    /// The integrator's tolerances.
    const TOL: Tolerance;
    /// Right-hand sides of `L` problems at once (lane `l`: state `x[.][l]`, parameters `p[l]`).
    fn rhs<const L: usize>(x: &LaneRhs<N, L>, p: &[Self::Param; L]) -> LaneRhs<N, L>;
}

/// Integrates many problems over one span each on this thread. Few problems take fewer lanes
/// (idle lanes cost as much as busy ones).
pub fn advance_many<const N: usize, M: LaneModel<N>>(jobs: &mut [Job<N, M::Param>]) {
    match jobs.len() {
        0 => {}
        1 => dopri5_lanes::<N, 1, _, _>(M::rhs::<1>, jobs, M::SPAN, M::TOL),
        2..LANES => dopri5_lanes::<N, 2, _, _>(M::rhs::<2>, jobs, M::SPAN, M::TOL),
        _ => advance_queue::<N, M, _>(&mut InPlace::new(jobs)),
    }
}

/// Integrates many problems over one span each on every thread of `team`, from one shared queue.
pub fn advance_shared<const N: usize, M: LaneModel<N>>(
    jobs: &mut [Job<N, M::Param>],
    team: &dyn Team,
) {
    if jobs.len() < LANES {
        return advance_many::<N, M>(jobs);
    }
    let order = costliest_first(jobs, M::SPAN);
    let cursor = AtomicUsize::new(0);
    let solved: Mutex<Vec<(usize, Job<N, M::Param>)>> = Mutex::new(Vec::with_capacity(jobs.len()));
    let input: &[Job<N, M::Param>] = jobs;
    team.run(&|| {
        let mut queue = SharedQueue {
            jobs: input,
            order: &order,
            cursor: &cursor,
            solved: Vec::new(),
        };
        advance_queue::<N, M, _>(&mut queue);
        solved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&mut queue.solved);
    });
    for (i, job) in solved.into_inner().unwrap_or_else(|p| p.into_inner()) {
        jobs[i] = job;
    }
}

/// Job indices by expected cost, costliest first: bucketed by `log2(span / h)` (trial steps grow
/// with `1 / h`), in index order within a bucket. A counting sort: linear time.
fn costliest_first<const N: usize, P: Copy>(jobs: &[Job<N, P>], span: f64) -> Vec<u32> {
    const BUCKETS: usize = 16;
    let bucket = |j: &Job<N, P>| -> usize {
        let r = span / j.h;
        if !(r.is_finite() && r > 1.0) {
            return BUCKETS - 1; // a full-span first try: the cheapest
        }
        let log2 = ((r.to_bits() >> 52) & 0x7ff) as usize - 1023;
        BUCKETS - 1 - log2.min(BUCKETS - 1)
    };
    let mut starts = [0usize; BUCKETS + 1];
    for j in jobs {
        starts[bucket(j) + 1] += 1;
    }
    for b in 0..BUCKETS {
        starts[b + 1] += starts[b];
    }
    let mut order = vec![0u32; jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        let b = bucket(j);
        order[starts[b]] = i as u32;
        starts[b] += 1;
    }
    order
}

/// The problems of a batch handed out in `order` to every thread that asks, one at a time.
struct SharedQueue<'a, const N: usize, P: Copy> {
    jobs: &'a [Job<N, P>],
    order: &'a [u32],
    cursor: &'a AtomicUsize,
    solved: Vec<(usize, Job<N, P>)>,
}

impl<const N: usize, P: Copy> JobQueue<N, P> for SharedQueue<'_, N, P> {
    fn take(&mut self) -> Option<(usize, Job<N, P>)> {
        let k = self.cursor.fetch_add(1, Ordering::Relaxed);
        let i = *self.order.get(k)? as usize;
        Some((i, self.jobs[i]))
    }

    fn put(&mut self, id: usize, job: Job<N, P>) {
        self.solved.push((id, job));
    }
}

/// The full-width lanes over a queue, with AVX2 where the CPU has it (twice the lanes per
/// instruction of the SSE2 baseline; the same IEEE operations, so the same results).
fn advance_queue<const N: usize, M: LaneModel<N>, Q: JobQueue<N, M::Param>>(queue: &mut Q) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { advance_queue_avx2::<N, M, Q>(queue) };
        return;
    }
    dopri5_queue::<N, LANES, _, _, _>(M::rhs::<LANES>, queue, M::SPAN, M::TOL);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn advance_queue_avx2<const N: usize, M: LaneModel<N>, Q: JobQueue<N, M::Param>>(
    queue: &mut Q,
) {
    dopri5_queue::<N, AVX2_LANES, _, _, _>(M::rhs::<AVX2_LANES>, queue, M::SPAN, M::TOL);
}
