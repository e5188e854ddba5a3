//! Gymnasium's infos, built once, here, for every autoreset mode.
//!
//! Vector infos follow Gymnasium's layout: per key a value array over the envs and a `_key` bool
//! mask saying which envs it holds; per-constraint entries are dicts of such pairs keyed by
//! constraint name. A step's own entries (`action`, `clipped`, `cost`, `shield`,
//! `shutdown_reason`) cover the envs that stepped; the readings (`constraints`, `margins`,
//! `violations`) cover every env. With same-step autoreset, the envs that ended and reset within
//! the step report their reset readings, and what they ended with goes to `final_obs` and
//! `final_info` (masked by `_final_obs` / `_final_info`). `is_success` (masked by `_is_success`)
//! covers the envs whose episode ended in the step, and is absent when none did: Stable-Baselines3
//! reads it from the ending step's info (with same-step autoreset, from `final_info`). The single
//! env's info is the same keys with plain values, `is_success` on the ending step only.

use numpy::{Element, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::py::convert;
use crate::vector::{Columns, Readings, Row, StepOut};

/// Interned info keys and the batch's constraint names.
pub struct InfoKeys {
    /// Constraint names, in the batch's order.
    pub names: Vec<Py<PyString>>,
    /// `_<name>`: the mask keys of the per-constraint entries.
    mask_names: Vec<Py<PyString>>,
    action: Py<PyString>,
    constraints: Py<PyString>,
    margins: Py<PyString>,
    violations: Py<PyString>,
    clipped: Py<PyString>,
    cost: Py<PyString>,
    shield: Py<PyString>,
    /// `shutdown_reason`.
    pub shutdown: Py<PyString>,
    final_obs: Py<PyString>,
    final_info: Py<PyString>,
    /// `is_success` and its mask `_is_success`.
    success: [Py<PyString>; 2],
    /// `_<key>` of the keys above, in the same order.
    masks: [Py<PyString>; 10],
}

/// Dimensions of a batch: envs, observation and action sizes.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Envs.
    pub n: usize,
    /// Observation size.
    pub od: usize,
    /// Action size.
    pub ad: usize,
}

/// `values` where `mask` holds, `zero` elsewhere; `width` values per env.
fn masked<T: Element + Copy>(values: &[T], mask: &[bool], width: usize, zero: T) -> Vec<T> {
    values
        .chunks_exact(width.max(1))
        .zip(mask)
        .flat_map(|(row, &m)| row.iter().map(move |&v| if m { v } else { zero }))
        .collect()
}

impl InfoKeys {
    /// The keys of a batch whose constraints are `names`.
    pub fn new(py: Python<'_>, names: &[String]) -> Self {
        let k = |s: &str| PyString::intern(py, s).unbind();
        Self {
            names: names
                .iter()
                .map(|s| PyString::intern(py, s).unbind())
                .collect(),
            mask_names: names
                .iter()
                .map(|s| PyString::intern(py, &format!("_{s}")).unbind())
                .collect(),
            action: k("action"),
            constraints: k("constraints"),
            margins: k("margins"),
            violations: k("violations"),
            clipped: k("clipped"),
            cost: k("cost"),
            shield: k("shield"),
            shutdown: k("shutdown_reason"),
            final_obs: k("final_obs"),
            final_info: k("final_info"),
            success: ["is_success", "_is_success"].map(k),
            masks: [
                "_action",
                "_constraints",
                "_margins",
                "_violations",
                "_clipped",
                "_cost",
                "_shield",
                "_shutdown_reason",
                "_final_obs",
                "_final_info",
            ]
            .map(k),
        }
    }

    /// Gymnasium's `(obs, reward, terminated, truncated, info)` of a batch step, in any
    /// autoreset mode.
    pub fn step<'py>(
        &self,
        py: Python<'py>,
        out: StepOut,
        d: Dims,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let info = PyDict::new(py);
        let StepOut {
            obs,
            mut cols,
            action,
            readings,
            final_obs,
            final_readings,
            ..
        } = out;
        if cols.reset_in_step.iter().any(|&r| r) {
            let fmask = &cols.reset_in_step;
            let rows: Vec<Py<PyAny>> = (0..d.n)
                .map(|i| {
                    if fmask[i] {
                        let row = &final_obs[i * d.od..(i + 1) * d.od];
                        PyArray1::from_slice(py, row).into_any().unbind()
                    } else {
                        py.None()
                    }
                })
                .collect();
            let [.., m_final_obs, m_final_info] = &self.masks;
            info.set_item(self.final_obs.bind(py), PyArray1::from_vec(py, rows))?;
            info.set_item(m_final_obs.bind(py), PyArray1::from_slice(py, fmask))?;
            let ended = PyDict::new(py);
            self.put_step(py, &ended, (&cols, &action), fmask, d)?;
            self.put_readings(py, &ended, &final_readings, fmask, d.n)?;
            info.set_item(self.final_info.bind(py), ended)?;
            info.set_item(m_final_info.bind(py), PyArray1::from_slice(py, fmask))?;
            // The ended envs report their reset info; the others their step's.
            let stepped: Vec<bool> = cols
                .stepped
                .iter()
                .zip(fmask)
                .map(|(&s, &f)| s && !f)
                .collect();
            self.put_step(py, &info, (&cols, &action), &stepped, d)?;
        } else if cols.stepped.iter().any(|&s| s) {
            // Envs that did not step hold zeros in every step column: hand the columns over whole.
            self.put_whole_step(py, &info, &mut cols, action, d)?;
        }
        let everyone = vec![true; d.n];
        self.put_readings(py, &info, &readings, &everyone, d.n)?;
        let Columns {
            reward,
            terminated,
            truncated,
            ..
        } = cols;
        (
            convert::array2(py, obs, d.n, d.od)?,
            convert::array1(py, reward),
            convert::array1(py, terminated),
            convert::array1(py, truncated),
            info,
        )
            .into_pyobject(py)
    }

    /// The info of a reset of the envs in `mask` (every env if `None`): their readings.
    pub fn reset<'py>(
        &self,
        py: Python<'py>,
        readings: &Readings,
        mask: Option<&[bool]>,
        n: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let info = PyDict::new(py);
        let everyone;
        let mask = match mask {
            Some(m) => m,
            None => {
                everyone = vec![true; n];
                &everyone
            }
        };
        self.put_readings(py, &info, readings, mask, n)?;
        Ok(info)
    }

    /// The step entries of the envs in `mask` (zeros elsewhere), with their masks.
    fn put_step(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        (c, action): (&Columns, &[f64]),
        mask: &[bool],
        d: Dims,
    ) -> PyResult<()> {
        if !mask.iter().any(|&m| m) {
            return Ok(());
        }
        let [m_action, _, _, _, m_clipped, m_cost, m_shield, ..] = &self.masks;
        let action = masked(action, mask, d.ad, 0.0);
        info.set_item(
            self.action.bind(py),
            convert::array2(py, action, d.n, d.ad)?,
        )?;
        info.set_item(
            self.clipped.bind(py),
            PyArray1::from_vec(py, masked(&c.clipped, mask, 1, 0)),
        )?;
        info.set_item(
            self.cost.bind(py),
            PyArray1::from_vec(py, masked(&c.cost, mask, 1, 0.0)),
        )?;
        info.set_item(
            self.shield.bind(py),
            PyArray1::from_vec(py, masked(&c.shielded, mask, 1, false)),
        )?;
        for m in [m_action, m_clipped, m_cost, m_shield] {
            info.set_item(m.bind(py), PyArray1::from_slice(py, mask))?;
        }
        self.put_success(py, info, c, mask)?;
        self.put_shutdown(py, info, &c.shutdown, mask)
    }

    /// The step entries when every env that did not step holds zeros already (no env ended and
    /// reset within the step): the columns themselves (moved, not copied), masked by the envs that
    /// stepped.
    fn put_whole_step(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        c: &mut Columns,
        action: Vec<f64>,
        d: Dims,
    ) -> PyResult<()> {
        let [m_action, _, _, _, m_clipped, m_cost, m_shield, ..] = &self.masks;
        use std::mem::take;
        info.set_item(
            self.action.bind(py),
            convert::array2(py, action, d.n, d.ad)?,
        )?;
        info.set_item(
            self.clipped.bind(py),
            convert::array1(py, take(&mut c.clipped)),
        )?;
        info.set_item(self.cost.bind(py), convert::array1(py, take(&mut c.cost)))?;
        info.set_item(
            self.shield.bind(py),
            convert::array1(py, take(&mut c.shielded)),
        )?;
        for m in [m_action, m_clipped, m_cost, m_shield] {
            info.set_item(m.bind(py), PyArray1::from_slice(py, &c.stepped))?;
        }
        self.put_success(py, info, c, &c.stepped)?;
        self.put_shutdown(py, info, &c.shutdown, &c.stepped)
    }

    /// `is_success` of the envs in `mask` whose episode ended in the step, masked by
    /// `_is_success`; nothing when none ended.
    fn put_success(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        c: &Columns,
        mask: &[bool],
    ) -> PyResult<()> {
        let ended = |i: usize| mask[i] && (c.terminated[i] || c.truncated[i]);
        let n = mask.len();
        if !(0..n).any(ended) {
            return Ok(());
        }
        let values: Vec<bool> = (0..n).map(|i| ended(i) && c.success[i]).collect();
        let [key, key_mask] = &self.success;
        info.set_item(key.bind(py), PyArray1::from_vec(py, values))?;
        let ended: Vec<bool> = (0..n).map(ended).collect();
        info.set_item(key_mask.bind(py), PyArray1::from_vec(py, ended))?;
        Ok(())
    }

    /// `shutdown_reason`: the critical constraint's name where an env in `mask` shut down.
    fn put_shutdown(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        shutdown: &[i64],
        mask: &[bool],
    ) -> PyResult<()> {
        let k = self.names.len();
        if !shutdown.iter().zip(mask).any(|(&s, &m)| m && s >= 0) {
            return Ok(());
        }
        let down: Vec<bool> = shutdown
            .iter()
            .zip(mask)
            .map(|(&s, &m)| m && s >= 0)
            .collect();
        let reasons: Vec<Py<PyAny>> = shutdown
            .iter()
            .zip(&down)
            .map(|(&s, &d)| match usize::try_from(s) {
                Ok(c) if d && c < k => self.names[c].clone_ref(py).into_any(),
                _ => py.None(),
            })
            .collect();
        info.set_item(self.shutdown.bind(py), PyArray1::from_vec(py, reasons))?;
        info.set_item(self.masks[7].bind(py), PyArray1::from_vec(py, down))?;
        Ok(())
    }

    /// `constraints`, `margins` and `violations` of the envs in `mask` (zeros elsewhere): a
    /// dict per key, one array and one mask per constraint name.
    fn put_readings(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        r: &Readings,
        mask: &[bool],
        n: usize,
    ) -> PyResult<()> {
        if !mask.iter().any(|&m| m) {
            return Ok(());
        }
        let every = mask.iter().all(|&m| m);
        let [_, m_constraints, m_margins, m_violations, ..] = &self.masks;
        macro_rules! table {
            ($key:expr, $mask:expr, $table:expr, $zero:expr) => {{
                let sub = PyDict::new(py);
                for (j, col) in $table.chunks_exact(n.max(1)).enumerate() {
                    let values = if every {
                        PyArray1::from_slice(py, col)
                    } else {
                        PyArray1::from_vec(py, masked(col, mask, 1, $zero))
                    };
                    sub.set_item(self.names[j].bind(py), values)?;
                    sub.set_item(self.mask_names[j].bind(py), PyArray1::from_slice(py, mask))?;
                }
                info.set_item($key.bind(py), sub)?;
                info.set_item($mask.bind(py), PyArray1::from_slice(py, mask))?;
            }};
        }
        table!(self.constraints, m_constraints, r.values, 0.0);
        table!(self.margins, m_margins, r.margins, 0.0);
        table!(self.violations, m_violations, r.active, false);
        Ok(())
    }

    /// A single env's readings: ``constraints``, ``margins`` and ``violations`` dicts keyed by
    /// constraint name, plain values.
    pub fn single_readings(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        r: &Readings,
    ) -> PyResult<()> {
        let (values, margins, active) = (PyDict::new(py), PyDict::new(py), PyDict::new(py));
        for (j, name) in self.names.iter().enumerate() {
            let name = name.bind(py);
            values.set_item(name, r.values[j])?;
            margins.set_item(name, r.margins[j])?;
            active.set_item(name, r.active[j])?;
        }
        info.set_item(self.constraints.bind(py), values)?;
        info.set_item(self.margins.bind(py), margins)?;
        info.set_item(self.violations.bind(py), active)?;
        Ok(())
    }

    /// A single env's end-of-step entries: `shutdown_reason` after an emergency shutdown, and
    /// `is_success` when the step ended the episode.
    pub fn single_end(&self, py: Python<'_>, info: &Bound<'_, PyDict>, r: &Row) -> PyResult<()> {
        if let Some(i) = r.shutdown {
            if let Some(name) = self.names.get(usize::from(i)) {
                info.set_item(self.shutdown.bind(py), name.bind(py))?;
            }
        }
        if r.terminated || r.truncated {
            info.set_item(self.success[0].bind(py), r.success)?;
        }
        Ok(())
    }

    /// A single env's step entries: plain values under the same keys as the vector info's.
    pub fn single_step(
        &self,
        py: Python<'_>,
        info: &Bound<'_, PyDict>,
        (action, clipped, cost, shielded): (Bound<'_, PyAny>, u32, f64, bool),
    ) -> PyResult<()> {
        info.set_item(self.action.bind(py), action)?;
        info.set_item(self.clipped.bind(py), clipped)?;
        info.set_item(self.cost.bind(py), cost)?;
        info.set_item(self.shield.bind(py), shielded)?;
        Ok(())
    }
}
