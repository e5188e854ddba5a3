//! `CoreVecEnv`: the Python face of [`crate::vector::VecCore`].

use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::envs;
use crate::errors::CoreError;
use crate::py::convert;
use crate::spec::{ConstraintKind, Variable};
use crate::vector::{Autoreset, Snapshot, VecCore};

/// A batch of environments in Rust.
///
/// Args:
///     env_id: Registered id, e.g. ``"ChemicalReactor-v0"``.
///     num_envs: Batch size (>= 1).
///     autoreset_mode: ``"next_step"``, ``"same_step"`` or ``"disabled"``.
///     num_threads: Threads for this batch (``None``: the shared pool, one per core).
///     config: Environment options (see each environment's documentation).
#[pyclass(module = "neorl_industrial._core")]
pub struct CoreVecEnv {
    core: VecCore,
    constraint_names: Vec<Py<PyString>>,
    k_action: Py<PyString>,
    k_constraints: Py<PyString>,
    k_clipped: Py<PyString>,
    k_shutdown: Py<PyString>,
}

fn to2<T: numpy::Element>(
    py: Python<'_>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<T>>> {
    let a = Array2::from_shape_vec((rows, cols), v).map_err(|e| CoreError::State(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

fn variables<'py>(py: Python<'py>, vars: &[Variable]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for v in vars {
        let d = PyDict::new(py);
        d.set_item("name", v.name)?;
        d.set_item("description", v.description)?;
        d.set_item("unit", v.unit)?;
        d.set_item("low", v.low)?;
        d.set_item("high", v.high)?;
        list.append(d)?;
    }
    Ok(list)
}

#[pymethods]
impl CoreVecEnv {
    #[new]
    #[pyo3(signature = (env_id, num_envs=1, autoreset_mode="next_step", num_threads=None, config=None))]
    fn new(
        py: Python<'_>,
        env_id: &str,
        num_envs: usize,
        autoreset_mode: &str,
        num_threads: Option<usize>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let cfg = convert::config(config)?;
        let model = envs::make(env_id, cfg)?;
        let core = VecCore::new(
            model,
            num_envs,
            Autoreset::parse(autoreset_mode)?,
            num_threads,
        )?;
        let constraint_names = core
            .constraints()
            .constraints
            .iter()
            .map(|c| PyString::intern(py, &c.name).unbind())
            .collect();
        Ok(Self {
            core,
            constraint_names,
            k_action: PyString::intern(py, "action").unbind(),
            k_constraints: PyString::intern(py, "constraints").unbind(),
            k_clipped: PyString::intern(py, "clipped").unbind(),
            k_shutdown: PyString::intern(py, "shutdown_reason").unbind(),
        })
    }

    /// Batch size.
    #[getter]
    fn num_envs(&self) -> usize {
        self.core.num_envs()
    }

    /// Observation length.
    #[getter]
    fn obs_dim(&self) -> usize {
        self.core.model().spec().obs_dim()
    }

    /// Action length.
    #[getter]
    fn act_dim(&self) -> usize {
        self.core.model().spec().act_dim()
    }

    /// Autoreset mode name.
    #[getter]
    fn autoreset_mode(&self) -> &'static str {
        match self.core.autoreset() {
            Autoreset::NextStep => "next_step",
            Autoreset::SameStep => "same_step",
            Autoreset::Disabled => "disabled",
        }
    }

    /// Names of the constraints evaluated each step, in info order.
    #[getter]
    fn constraint_names(&self) -> Vec<String> {
        self.core
            .constraints()
            .constraints
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The environment's spec as a dict (id, variables with units and bounds, dt, horizon, constraints).
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.model().spec();
        let d = PyDict::new(py);
        d.set_item("id", s.id)?;
        d.set_item("description", s.description)?;
        d.set_item("observations", variables(py, &s.observations)?)?;
        d.set_item("actions", variables(py, &s.actions)?)?;
        d.set_item("signals", variables(py, &s.signals)?)?;
        d.set_item("dt", s.dt)?;
        d.set_item("dt_unit", s.dt_unit)?;
        d.set_item("horizon", s.horizon)?;
        d.set_item("safe_action", s.safe_action.clone())?;
        d.set_item("source", s.source)?;
        let cons = PyList::empty(py);
        for c in &self.core.constraints().constraints {
            let e = PyDict::new(py);
            e.set_item("name", &c.name)?;
            e.set_item("constraint_type", &c.constraint_type)?;
            e.set_item("signal", s.signals[c.signal].name)?;
            e.set_item("kind", c.kind.as_str())?;
            e.set_item("limit", c.limit)?;
            e.set_item("severity", c.severity.as_str())?;
            e.set_item(
                "unit",
                if c.kind == ConstraintKind::Rate {
                    format!("{}/step", s.signals[c.signal].unit)
                } else {
                    s.signals[c.signal].unit.to_string()
                },
            )?;
            cons.append(e)?;
        }
        d.set_item("constraints", cons)?;
        Ok(d)
    }

    /// Resets the envs in ``mask`` (all if None), reseeding env i with ``seeds[i]`` when given.
    ///
    /// Returns:
    ///     ``(obs[n, obs_dim] float32, constraint_values[n, k] float64)``.
    #[pyo3(signature = (seeds=None, mask=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seeds: Option<Vec<Option<u64>>>,
        mask: Option<PyReadonlyArray1<'py, bool>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mask: Option<Vec<bool>> = match mask {
            Some(m) => Some(m.as_array().to_vec()),
            None => None,
        };
        let core = &mut self.core;
        let out = py.detach(|| core.reset(seeds.as_deref(), mask.as_deref()))?;
        let (n, od, nc) = (
            self.core.num_envs(),
            self.obs_dim(),
            self.core.constraints().len(),
        );
        PyTuple::new(
            py,
            [
                to2(py, out.obs, n, od)?.into_any(),
                to2(py, out.constraint_values, n, nc)?.into_any(),
            ],
        )
    }

    /// Steps every env with normalised actions of shape ``(num_envs, act_dim)``.
    ///
    /// Returns:
    ///     ``(obs, reward, terminated, truncated, stepped, clipped, action, constraint_values,
    ///     shutdown, final_mask, final_obs, final_constraint_values)``; ``shutdown`` holds the index
    ///     of the critical constraint that ended an env (-1: none); the ``final_*`` entries are
    ///     None unless the autoreset mode is same_step.
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        actions: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (n, ad) = (self.core.num_envs(), self.act_dim());
        let alt = [n];
        let acts = convert::actions(actions, &[n, ad], if ad == 1 { Some(&alt) } else { None })?;
        let core = &mut self.core;
        let out = py.detach(|| core.step(&acts))?;
        let (od, nc) = (self.obs_dim(), self.core.constraints().len());
        let rows = &out.rows;
        let reward: Vec<f64> = rows.iter().map(|r| r.reward).collect();
        let term: Vec<bool> = rows.iter().map(|r| r.terminated).collect();
        let trunc: Vec<bool> = rows.iter().map(|r| r.truncated).collect();
        let stepped: Vec<bool> = rows.iter().map(|r| r.stepped).collect();
        let clipped: Vec<i64> = rows.iter().map(|r| i64::from(r.clipped)).collect();
        let shutdown: Vec<i64> = rows
            .iter()
            .map(|r| r.shutdown.map_or(-1, i64::from))
            .collect();
        let same_step = self.core.autoreset() == Autoreset::SameStep;
        let none = py.None().into_bound(py);
        let (fm, fo, fc) = if same_step {
            let fm: Vec<bool> = rows.iter().map(|r| r.reset_in_step).collect();
            (
                fm.into_pyarray(py).into_any(),
                to2(py, out.final_obs, n, od)?.into_any(),
                to2(py, out.final_constraint_values, n, nc)?.into_any(),
            )
        } else {
            (none.clone(), none.clone(), none)
        };
        PyTuple::new(
            py,
            [
                to2(py, out.obs, n, od)?.into_any(),
                reward.into_pyarray(py).into_any(),
                term.into_pyarray(py).into_any(),
                trunc.into_pyarray(py).into_any(),
                stepped.into_pyarray(py).into_any(),
                clipped.into_pyarray(py).into_any(),
                to2(py, out.action, n, ad)?.into_any(),
                to2(py, out.constraint_values, n, nc)?.into_any(),
                shutdown.into_pyarray(py).into_any(),
                fm,
                fo,
                fc,
            ],
        )
    }

    /// Single-env fast path: resets env 0 and returns ``(obs[obs_dim], info)``.
    #[pyo3(signature = (seed=None))]
    fn reset_single<'py>(
        &mut self,
        py: Python<'py>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let seeds = seed.map(|s| vec![Some(s); self.core.num_envs()]);
        let out = self.core.reset(seeds.as_deref(), None)?;
        let info = PyDict::new(py);
        info.set_item(
            self.k_constraints.bind(py),
            self.constraints_dict(py, &out.constraint_values)?,
        )?;
        PyTuple::new(
            py,
            [PyArray1::from_vec(py, out.obs).into_any(), info.into_any()],
        )
    }

    /// Single-env fast path: steps env 0 and returns Gymnasium's 5-tuple.
    fn step_single<'py>(
        &mut self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let ad = self.act_dim();
        let acts = convert::actions(action, &[ad], None)?;
        let out = self.core.step(&acts)?;
        let r = out.rows[0];
        let info = PyDict::new(py);
        info.set_item(self.k_action.bind(py), PyArray1::from_vec(py, out.action))?;
        info.set_item(
            self.k_constraints.bind(py),
            self.constraints_dict(py, &out.constraint_values)?,
        )?;
        info.set_item(self.k_clipped.bind(py), r.clipped)?;
        if let Some(i) = r.shutdown {
            info.set_item(
                self.k_shutdown.bind(py),
                self.constraint_names[i as usize].bind(py),
            )?;
        }
        (
            PyArray1::from_vec(py, out.obs),
            r.reward,
            r.terminated,
            r.truncated,
            info,
        )
            .into_pyobject(py)
    }

    /// The full state: ``(rows float64, rng uint64[n*4], elapsed uint32, done bool, started bool)``.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let s = self.core.snapshot();
        PyTuple::new(
            py,
            [
                s.rows.into_pyarray(py).into_any(),
                s.rngs.into_pyarray(py).into_any(),
                s.elapsed.into_pyarray(py).into_any(),
                s.done.into_pyarray(py).into_any(),
                s.started.into_pyarray(py).into_any(),
            ],
        )
    }

    /// Restores a state taken by :meth:`snapshot` on a batch of the same kind and size.
    fn restore(
        &mut self,
        rows: PyReadonlyArray1<'_, f64>,
        rngs: PyReadonlyArray1<'_, u64>,
        elapsed: PyReadonlyArray1<'_, u32>,
        done: PyReadonlyArray1<'_, bool>,
        started: PyReadonlyArray1<'_, bool>,
    ) -> PyResult<()> {
        let snap = Snapshot {
            rows: rows.as_array().to_vec(),
            rngs: rngs.as_array().to_vec(),
            elapsed: elapsed.as_array().to_vec(),
            done: done.as_array().to_vec(),
            started: started.as_array().to_vec(),
        };
        Ok(self.core.restore(&snap)?)
    }
}

impl CoreVecEnv {
    fn constraints_dict<'py>(
        &self,
        py: Python<'py>,
        values: &[f64],
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, v) in self.constraint_names.iter().zip(values) {
            d.set_item(name.bind(py), *v)?;
        }
        Ok(d)
    }
}

/// Ids of every environment in the catalogue.
#[pyfunction]
pub fn env_ids() -> Vec<&'static str> {
    envs::IDS.to_vec()
}

#[allow(unused_imports)]
use PyArrayMethods as _;
