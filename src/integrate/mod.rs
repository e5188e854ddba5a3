//! ODE integrators shared by the process models.
//!
//! Dormand–Prince 5(4) with adaptive steps (Dormand & Prince 1980; step-size control after
//! Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4). Why adaptive rather than fixed-step RK4:
//! the reactor's thermal runaway is locally stiff, and a fixed step small enough for it (about 400
//! RK4 substeps per 26 s step to stay within 1e-6) wastes ~25x the work on the calm cases, while the
//! error-controlled method spends small steps only where the solution moves fast, per env.
//!
//! [`dopri5_lanes`] runs the same method over a batch of independent problems, several side by
//! side in lanes, for models whose right-hand side is cheap enough that a single problem's
//! serial stage chain would leave the core idle (the reactor); [`shared`] feeds those lanes from
//! one queue shared by a team of threads.

pub mod shared;

/// Fixed-size ODE state.
pub type Vector<const N: usize> = [f64; N];

// Dormand–Prince 5(4) tableau (the nodes c2..c5 drop out: the right-hand sides are autonomous).
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const B1: f64 = 35.0 / 384.0;
const B3: f64 = 500.0 / 1113.0;
const B4: f64 = 125.0 / 192.0;
const B5: f64 = -2187.0 / 6784.0;
const B6: f64 = 11.0 / 84.0;
// Error coefficients: b - b_hat (fifth minus fourth order weights).
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;

/// Tolerances and limits of the adaptive integrator.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Relative tolerance per step.
    pub rtol: f64,
    /// Absolute tolerance per step.
    pub atol: f64,
    /// Most accepted + rejected steps before falling back to fixed steps (guarantees termination).
    pub max_steps: u32,
}

#[inline]
fn axpy<const N: usize>(x: &Vector<N>, h: f64, terms: &[(f64, &Vector<N>)]) -> Vector<N> {
    let mut out = *x;
    for (c, k) in terms {
        for i in 0..N {
            out[i] += h * c * k[i];
        }
    }
    out
}

/// Integrates `dx/dt = f(x)` (autonomous) over `span`, starting from step size `*h` and leaving in
/// `*h` the step size to try next time. Returns the state at the end of the span.
///
/// Non-finite trial states are rejected like any other failed step, so a finite start gives a
/// finite end whenever the true solution stays finite.
pub fn dopri5<const N: usize, F>(
    f: F,
    x0: Vector<N>,
    span: f64,
    h: &mut f64,
    tol: Tolerance,
) -> Vector<N>
where
    F: Fn(&Vector<N>) -> Vector<N>,
{
    let mut x = x0;
    let mut t = 0.0;
    let mut step = if h.is_finite() && *h > 0.0 {
        h.min(span)
    } else {
        span
    };
    let mut k1 = f(&x);
    let mut tries = 0u32;
    while t < span {
        if tries >= tol.max_steps {
            // Pathological input: finish with fixed RK4 steps so the call always returns.
            return rk4_fixed(&f, x, span - t, 1000);
        }
        tries += 1;
        let last = t + step >= span;
        if last {
            step = span - t;
        }
        let k2 = f(&axpy(&x, step, &[(A21, &k1)]));
        let k3 = f(&axpy(&x, step, &[(A31, &k1), (A32, &k2)]));
        let k4 = f(&axpy(&x, step, &[(A41, &k1), (A42, &k2), (A43, &k3)]));
        let k5 = f(&axpy(
            &x,
            step,
            &[(A51, &k1), (A52, &k2), (A53, &k3), (A54, &k4)],
        ));
        let k6 = f(&axpy(
            &x,
            step,
            &[(A61, &k1), (A62, &k2), (A63, &k3), (A64, &k4), (A65, &k5)],
        ));
        let xn = axpy(
            &x,
            step,
            &[(B1, &k1), (B3, &k3), (B4, &k4), (B5, &k5), (B6, &k6)],
        );
        let k7 = f(&xn);
        let mut err = 0.0f64;
        for i in 0..N {
            let e = step
                * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]);
            let sc = tol.atol + tol.rtol * x[i].abs().max(xn[i].abs());
            err += (e / sc) * (e / sc);
        }
        let err = (err / N as f64).sqrt();
        if err.is_finite() && err <= 1.0 && xn.iter().all(|v| v.is_finite()) {
            t = if last { span } else { t + step };
            x = xn;
            k1 = k7; // first-same-as-last
            let fac = if err == 0.0 {
                5.0
            } else {
                (0.9 * err.powf(-0.2)).clamp(0.2, 5.0)
            };
            if !last {
                step *= fac;
            } else {
                *h = (step * fac).min(span);
            }
        } else {
            let fac = if err.is_finite() {
                (0.9 * err.powf(-0.2)).clamp(0.1, 0.9)
            } else {
                0.1
            };
            step *= fac;
        }
    }
    x
}

/// One ODE problem of a batch: its state (in: start, out: end), its constant parameters (the
/// input held over the span, and whatever else the right-hand side takes per problem: `P`) and
/// its step-size memory (in: first try, out: next call's first try).
#[derive(Debug, Clone, Copy)]
pub struct Job<const N: usize, P: Copy = f64> {
    /// State at the start of the span; at the end after the call.
    pub x: Vector<N>,
    /// Parameters held constant over the span (e.g. the input).
    pub p: P,
    /// Step size to try first; the one to try next time after the call.
    pub h: f64,
}

/// Right-hand sides of `L` independent problems at once, structure of arrays:
/// `x[i][l]` is component `i` of lane `l`, `p[l]` that lane's parameter.
pub type LaneRhs<const N: usize, const L: usize> = [[f64; L]; N];

/// `x^(-1/5)` for finite `x > 0`, to about 1e-9 relative: the step-size controller's factor
/// without a call to `pow` (a quarter of the reactor's cost). An exponent-bits first guess
/// (within ~10%) then three Newton steps on `y^-5 = x`. Plain arithmetic, so results are the same
/// on every machine.
#[inline(always)]
fn inv_fifth_root(x: f64) -> f64 {
    // log2(x) ~ bits / 2^52 - 1023, so bits(x^(-1/5)) ~ 1023 * 1.2 * 2^52 - bits(x) / 5.
    const K: f64 = 1.2 * 1023.0 * 4_503_599_627_370_496.0;
    let guess = K - x.to_bits() as f64 / 5.0;
    let mut y = f64::from_bits(guess.max(0.0) as u64);
    for _ in 0..3 {
        let y2 = y * y;
        y *= (6.0 - x * y2 * y2 * y) / 5.0;
    }
    y
}

/// The step-size factor after an error estimate `err` (Hairer et al.: `0.9 err^(-1/5)`).
#[inline(always)]
fn step_factor(err: f64, lo: f64, hi: f64) -> f64 {
    if err == 0.0 {
        return hi;
    }
    if !(1e-300..=1e300).contains(&err) {
        return if err < 1.0 { hi } else { lo };
    }
    (0.9 * inv_fifth_root(err)).clamp(lo, hi)
}

/// Per-lane bookkeeping of [`dopri5_lanes`].
struct LaneState<const N: usize, const L: usize, P: Copy> {
    job: [usize; L],
    x: LaneRhs<N, L>,
    k1: LaneRhs<N, L>,
    p: [P; L],
    t: [f64; L],
    step: [f64; L],
    tries: [u32; L],
}

const IDLE: usize = usize::MAX;

#[inline(always)]
fn lane_axpy<const N: usize, const L: usize>(
    x: &LaneRhs<N, L>,
    h: &[f64; L],
    terms: &[(f64, &LaneRhs<N, L>)],
) -> LaneRhs<N, L> {
    let mut out = *x;
    for (c, k) in terms {
        for i in 0..N {
            for l in 0..L {
                out[i][l] += h[l] * c * k[i][l];
            }
        }
    }
    out
}

/// Dormand–Prince 5(4), as [`dopri5`], over many independent problems sharing a span: `L` of
/// them advance together in lanes (structure of arrays), and a lane whose problem ends takes
/// the next one. Why: one problem's stages form a serial chain whose latency (a division and an
/// exponential per stage for the reactor) leaves most of the core idle; `L` independent chains
/// fill it, and the lane loops vectorise.
///
/// Every lane does exactly the arithmetic a lane of `dopri5_lanes::<N, 1>` does, so a problem's
/// result does not depend on `L`, on its neighbours or on the order of `jobs`.
#[inline(always)] // into the callers' target features (see shared::advance_queue)
pub fn dopri5_lanes<const N: usize, const L: usize, P: Copy, F>(
    f: F,
    jobs: &mut [Job<N, P>],
    span: f64,
    tol: Tolerance,
) where
    F: Fn(&LaneRhs<N, L>, &[P; L]) -> LaneRhs<N, L>,
{
    dopri5_queue::<N, L, P, F, _>(f, &mut InPlace::new(jobs), span, tol);
}

/// Where [`dopri5_queue`] takes its problems from and gives them back: problems are handed out
/// with an id and come back, solved, under the same id (in any order).
pub trait JobQueue<const N: usize, P: Copy = f64> {
    /// The next problem and its id, or `None` when there are no more.
    fn take(&mut self) -> Option<(usize, Job<N, P>)>;
    /// Problem `id`, solved.
    fn put(&mut self, id: usize, job: Job<N, P>);
}

/// The problems of a slice, solved in place.
pub struct InPlace<'a, const N: usize, P: Copy = f64> {
    jobs: &'a mut [Job<N, P>],
    next: usize,
}

impl<'a, const N: usize, P: Copy> InPlace<'a, N, P> {
    /// A queue over `jobs`, handed out in order.
    pub fn new(jobs: &'a mut [Job<N, P>]) -> Self {
        Self { jobs, next: 0 }
    }
}

impl<const N: usize, P: Copy> JobQueue<N, P> for InPlace<'_, N, P> {
    fn take(&mut self) -> Option<(usize, Job<N, P>)> {
        let job = *self.jobs.get(self.next)?;
        self.next += 1;
        Some((self.next - 1, job))
    }

    fn put(&mut self, id: usize, job: Job<N, P>) {
        self.jobs[id] = job;
    }
}

/// [`dopri5_lanes`] over the problems of a queue, which may be shared with other threads each
/// running their own lanes: a lane whose problem ends takes the next one from the queue.
#[allow(clippy::needless_range_loop)] // lanes are indexed in step across several arrays
#[inline(always)] // into the callers' target features (see shared::advance_queue)
pub fn dopri5_queue<const N: usize, const L: usize, P: Copy, F, Q>(
    f: F,
    jobs: &mut Q,
    span: f64,
    tol: Tolerance,
) where
    F: Fn(&LaneRhs<N, L>, &[P; L]) -> LaneRhs<N, L>,
    Q: JobQueue<N, P>,
{
    let Some((id, first)) = jobs.take() else {
        return;
    };
    // Idle lanes compute on a copy of a real problem, so they never meet NaN or overflow.
    let mut s = LaneState::<N, L, P> {
        job: [IDLE; L],
        x: std::array::from_fn(|i| [first.x[i]; L]),
        k1: [[0.0; L]; N],
        p: [first.p; L],
        t: [0.0; L],
        step: [span; L],
        tries: [0; L],
    };
    let mut pending = Some((id, first));
    let mut drained = false;
    loop {
        // Refill idle lanes; their first stage needs one evaluation.
        let mut loaded = [false; L];
        for l in 0..L {
            if s.job[l] == IDLE && !drained {
                let Some((id, j)) = pending.take().or_else(|| jobs.take()) else {
                    drained = true;
                    continue;
                };
                for i in 0..N {
                    s.x[i][l] = j.x[i];
                }
                s.p[l] = j.p;
                s.t[l] = 0.0;
                s.step[l] = if j.h.is_finite() && j.h > 0.0 {
                    j.h.min(span)
                } else {
                    span
                };
                s.tries[l] = 0;
                s.job[l] = id;
                loaded[l] = true;
            }
        }
        if loaded.iter().any(|&b| b) {
            let k = f(&s.x, &s.p);
            for l in (0..L).filter(|&l| loaded[l]) {
                for i in 0..N {
                    s.k1[i][l] = k[i][l];
                }
            }
        }
        if s.job.iter().all(|&j| j == IDLE) {
            return;
        }
        lanes_try_step(&f, &mut s, jobs, span, tol);
    }
}

/// One Dormand–Prince trial step in every lane, then each busy lane's accept/reject decision.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn lanes_try_step<const N: usize, const L: usize, P: Copy, F, Q>(
    f: &F,
    s: &mut LaneState<N, L, P>,
    jobs: &mut Q,
    span: f64,
    tol: Tolerance,
) where
    F: Fn(&LaneRhs<N, L>, &[P; L]) -> LaneRhs<N, L>,
    Q: JobQueue<N, P>,
{
    let mut h = [0.0; L];
    let mut last = [false; L];
    for l in 0..L {
        last[l] = s.t[l] + s.step[l] >= span;
        h[l] = if last[l] { span - s.t[l] } else { s.step[l] };
    }
    let (x, k1, p) = (&s.x.clone(), &s.k1.clone(), &s.p);
    let k2 = f(&lane_axpy(x, &h, &[(A21, k1)]), p);
    let k3 = f(&lane_axpy(x, &h, &[(A31, k1), (A32, &k2)]), p);
    let k4 = f(&lane_axpy(x, &h, &[(A41, k1), (A42, &k2), (A43, &k3)]), p);
    let k5 = f(
        &lane_axpy(x, &h, &[(A51, k1), (A52, &k2), (A53, &k3), (A54, &k4)]),
        p,
    );
    let k6 = f(
        &lane_axpy(
            x,
            &h,
            &[(A61, k1), (A62, &k2), (A63, &k3), (A64, &k4), (A65, &k5)],
        ),
        p,
    );
    let xn = lane_axpy(
        x,
        &h,
        &[(B1, k1), (B3, &k3), (B4, &k4), (B5, &k5), (B6, &k6)],
    );
    let k7 = f(&xn, p);
    for l in 0..L {
        if s.job[l] == IDLE {
            continue;
        }
        let mut err = 0.0f64;
        let mut finite = true;
        for i in 0..N {
            let e = h[l]
                * (E1 * k1[i][l]
                    + E3 * k3[i][l]
                    + E4 * k4[i][l]
                    + E5 * k5[i][l]
                    + E6 * k6[i][l]
                    + E7 * k7[i][l]);
            let sc = tol.atol + tol.rtol * s.x[i][l].abs().max(xn[i][l].abs());
            err += (e / sc) * (e / sc);
            finite &= xn[i][l].is_finite();
        }
        let err = (err / N as f64).sqrt();
        s.tries[l] += 1;
        if err.is_finite() && err <= 1.0 && finite {
            for i in 0..N {
                s.x[i][l] = xn[i][l];
                s.k1[i][l] = k7[i][l]; // first-same-as-last
            }
            let fac = step_factor(err, 0.2, 5.0);
            if last[l] {
                let job = Job {
                    x: std::array::from_fn(|i| s.x[i][l]),
                    p: s.p[l],
                    h: (h[l] * fac).max(s.step[l]).min(span),
                };
                jobs.put(s.job[l], job);
                s.job[l] = IDLE;
            } else {
                s.t[l] += h[l];
                s.step[l] = h[l] * fac;
            }
        } else {
            s.step[l] = h[l]
                * if err.is_finite() {
                    step_factor(err, 0.1, 0.9)
                } else {
                    0.1
                };
        }
        if s.job[l] != IDLE && s.tries[l] >= tol.max_steps {
            // Pathological input: finish with fixed RK4 steps so the call always returns.
            finish_rk4(f, s, l, jobs, span);
        }
    }
}

/// Finishes lane `l`'s problem with 1000 fixed RK4 steps over what is left of the span.
fn finish_rk4<const N: usize, const L: usize, P: Copy, F, Q>(
    f: &F,
    s: &mut LaneState<N, L, P>,
    l: usize,
    jobs: &mut Q,
    span: f64,
) where
    F: Fn(&LaneRhs<N, L>, &[P; L]) -> LaneRhs<N, L>,
    Q: JobQueue<N, P>,
{
    let p = [s.p[l]; L];
    let g = |x: &Vector<N>| -> Vector<N> {
        let k = f(&std::array::from_fn(|i| [x[i]; L]), &p);
        std::array::from_fn(|i| k[i][0])
    };
    let x0: Vector<N> = std::array::from_fn(|i| s.x[i][l]);
    let job = Job {
        x: rk4_fixed(&g, x0, span - s.t[l], 1000),
        p: s.p[l],
        h: span,
    };
    jobs.put(s.job[l], job);
    s.job[l] = IDLE;
}

/// Classic fixed-step RK4 with `n` substeps over `span`.
pub fn rk4_fixed<const N: usize, F>(f: &F, x0: Vector<N>, span: f64, n: u32) -> Vector<N>
where
    F: Fn(&Vector<N>) -> Vector<N>,
{
    let h = span / n as f64;
    let mut x = x0;
    for _ in 0..n {
        let k1 = f(&x);
        let k2 = f(&axpy(&x, h, &[(0.5, &k1)]));
        let k3 = f(&axpy(&x, h, &[(0.5, &k2)]));
        let k4 = f(&axpy(&x, h, &[(1.0, &k3)]));
        x = axpy(
            &x,
            h,
            &[
                (1.0 / 6.0, &k1),
                (2.0 / 6.0, &k2),
                (2.0 / 6.0, &k3),
                (1.0 / 6.0, &k4),
            ],
        );
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance {
        rtol: 1e-10,
        atol: 1e-10,
        max_steps: 10_000,
    };

    #[test]
    fn exponential_decay_is_exact_to_tolerance() {
        let mut h = 0.1;
        let x = dopri5(|x: &[f64; 1]| [-2.0 * x[0]], [1.0], 3.0, &mut h, TOL);
        assert!((x[0] - (-6.0f64).exp()).abs() < 1e-10);
        assert!(h > 0.0);
    }

    #[test]
    fn harmonic_oscillator_keeps_phase() {
        let mut h = 0.01;
        let x = dopri5(|x: &[f64; 2]| [x[1], -x[0]], [1.0, 0.0], 10.0, &mut h, TOL);
        assert!((x[0] - 10.0f64.cos()).abs() < 1e-8);
        assert!((x[1] + 10.0f64.sin()).abs() < 1e-8);
    }

    #[test]
    fn rk4_converges_at_fourth_order() {
        let f = |x: &[f64; 1]| [x[0]];
        let e1 = (rk4_fixed(&f, [1.0], 1.0, 10)[0] - 1f64.exp()).abs();
        let e2 = (rk4_fixed(&f, [1.0], 1.0, 20)[0] - 1f64.exp()).abs();
        assert!(e1 / e2 > 14.0 && e1 / e2 < 18.0);
    }

    #[test]
    fn blow_up_terminates() {
        let mut h = 0.1;
        let tol = Tolerance {
            max_steps: 50,
            ..TOL
        };
        // x' = x^2 from 1 blows up at t = 1; the call must still return.
        let _ = dopri5(|x: &[f64; 1]| [x[0] * x[0]], [1.0], 2.0, &mut h, tol);
    }
}
