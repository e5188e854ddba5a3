//! ODE integrators shared by the process models.
//!
//! Dormand–Prince 5(4) with adaptive steps (Dormand & Prince 1980; step-size control after
//! Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4). Why adaptive rather than fixed-step RK4:
//! the reactor's thermal runaway is locally stiff, and a fixed step small enough for it (about 400
//! RK4 substeps per 26 s step to stay within 1e-6) wastes ~25x the work on the calm cases, while the
//! error-controlled method spends small steps only where the solution moves fast, per env.

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
