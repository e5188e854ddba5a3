//! `CoreVecEnv`: the Python face of [`crate::vector::VecCore`].

use std::sync::{Arc, Mutex};

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::envs;
use crate::envs::success::Criterion;
use crate::errors::CoreError;
use crate::py::drift::CoreDrift;
use crate::py::events::events_columns;
use crate::py::info::{Dims, InfoKeys};
use crate::py::safety::PyAuditTrail;
use crate::py::telemetry::MetricsRegistry;
use crate::py::{convert, faults};
use crate::safety::config;
use crate::safety::{Kind, SafetyEvent, Shield};
use crate::spec::Variable;
use crate::telemetry::quality::Quality;
use crate::vector::{
    Autoreset, Readings, Snapshot, StepOut, Totals, VecCore, MAX_ENVS, MAX_THREADS,
};

/// A batch of environments in Rust.
///
/// Args:
///     env_id: Registered id, e.g. ``"ChemicalReactor-v0"``.
///     num_envs: Batch size (>= 1).
///     autoreset_mode: ``"next_step"``, ``"same_step"`` or ``"disabled"``.
///     num_threads: Threads for this batch (``None``: the shared pool, one per core).
///     config: Environment options (see each environment's documentation).
///     constraints: Constraint configuration (see ``neorl_industrial.safety``); ``None``: defaults.
///     shield: ``None``, ``"clip"`` or ``"predictive"``.
///     audit: An ``AuditTrail`` receiving this batch's safety events.
///     faults: Faults to inject (a list of mappings, see ``docs/faults.md``); ``None``: none.
#[pyclass(module = "neorl_industrial._core")]
pub struct CoreVecEnv {
    core: VecCore,
    /// Gymnasium's info keys and the constraint names.
    info: InfoKeys,
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

/// A success criterion as the spec shows it: ``description``, ``parameters`` (name to value) and
/// ``units`` (name to unit).
fn success_entry<'py>(py: Python<'py>, c: &Criterion) -> PyResult<Bound<'py, PyDict>> {
    let (e, values, units) = (PyDict::new(py), PyDict::new(py), PyDict::new(py));
    for &(name, value, unit) in c.parameters {
        values.set_item(name, value)?;
        units.set_item(name, unit)?;
    }
    e.set_item("description", c.description)?;
    e.set_item("parameters", values)?;
    e.set_item("units", units)?;
    Ok(e)
}

#[pymethods]
impl CoreVecEnv {
    #[new]
    #[pyo3(signature = (env_id, num_envs, autoreset_mode, num_threads=None, config=None, constraints=None, shield=None, audit=None, registry=None, faults=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        env_id: &str,
        num_envs: &Bound<'_, PyAny>,
        autoreset_mode: &Bound<'_, PyAny>,
        num_threads: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyDict>>,
        constraints: Option<&Bound<'_, PyAny>>,
        shield: Option<&str>,
        audit: Option<PyRef<'_, PyAuditTrail>>,
        registry: Option<PyRef<'_, MetricsRegistry>>,
        faults: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cfg = convert::config(config)?;
        let model = envs::make(env_id, cfg)?;
        let shield = Shield::parse(shield)?;
        let num_envs = convert::count(num_envs, "num_envs", "a positive integer", MAX_ENVS)?;
        let num_threads = num_threads
            .map(|t| convert::count(t, "num_threads", "a positive integer or None", MAX_THREADS))
            .transpose()?;
        let mode = match autoreset_mode.cast::<PyString>() {
            Ok(s) => Autoreset::parse(s.to_str()?)?,
            Err(_) => return Err(Autoreset::refuse(&autoreset_mode.repr()?.to_string()).into()),
        };
        let mut core = VecCore::new(model, num_envs, mode, num_threads)?;
        let set = match constraints {
            None => core.checker().set.clone(),
            Some(obj) => {
                let tree = convert::value_tree(obj, "constraints")?;
                let signals: Vec<&str> =
                    core.model().spec().signals.iter().map(|s| s.name).collect();
                config::build(&tree, &signals, &core.checker().set)?
            }
        };
        core.set_safety(set, shield)?;
        if let Some(obj) = faults {
            let tree = convert::value_tree(obj, "faults")?;
            core.set_faults(crate::faults::config::build(&tree, core.model().spec())?)?;
        }
        core.set_audit(audit.map(|a| Arc::clone(a.inner())));
        if let Some(reg) = registry {
            let set = &core.checker().set;
            let types: Vec<String> = set
                .constraints
                .iter()
                .map(|c| c.constraint_type.clone())
                .collect();
            let severities: Vec<&'static str> = set
                .constraints
                .iter()
                .map(|c| c.severity.as_str())
                .collect();
            let names: Vec<String> = set.constraints.iter().map(|c| c.name.clone()).collect();
            let id = core.model().spec().id;
            let m = reg.inner().env_metrics(id, &types, &severities, &names);
            let spec = core.model().spec();
            let obs: Vec<&str> = spec.observations.iter().map(|v| v.name).collect();
            let acts: Vec<&str> = spec.actions.iter().map(|v| v.name).collect();
            let quality = Quality::new(reg.inner().builtins(), id, &obs, &acts);
            core.set_metrics(Some(m));
            core.set_quality(Some(quality));
            if !core.faults().is_empty() {
                let names: Vec<String> = core
                    .faults()
                    .faults()
                    .iter()
                    .map(|f| f.name.clone())
                    .collect();
                core.set_fault_gauges(reg.inner().fault_gauges(id, &names));
            }
        }
        let names: Vec<String> = core
            .checker()
            .set
            .constraints
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let info = InfoKeys::new(py, &names);
        Ok(Self { core, info })
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

    /// Shield name (``off``, ``clip`` or ``predictive``).
    #[getter]
    fn shield(&self) -> &'static str {
        self.core.shield().as_str()
    }

    /// Names of the constraints evaluated each step, in info order.
    #[getter]
    fn constraint_names(&self) -> Vec<String> {
        self.core
            .checker()
            .set
            .constraints
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The environment's spec as a dict (id, name and version, variables with units and bounds,
    /// dt, horizon, the constraints in force, and the episode's success criterion).
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.model().spec();
        let d = PyDict::new(py);
        d.set_item("id", s.id)?;
        d.set_item("name", s.name())?;
        d.set_item("version", s.version())?;
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
        for c in &self.core.checker().set.constraints {
            let e = PyDict::new(py);
            e.set_item("name", &c.name)?;
            e.set_item("constraint_type", &c.constraint_type)?;
            e.set_item("kind", c.kind.as_str())?;
            e.set_item("severity", c.severity.as_str())?;
            e.set_item("weight", c.weight)?;
            e.set_item("scale", c.scale)?;
            e.set_item("penalty", c.penalty)?;
            e.set_item("deadband", c.deadband)?;
            e.set_item("on_delay", c.on_delay)?;
            match &c.kind {
                Kind::Band { low, high, .. } => {
                    e.set_item("low", low)?;
                    e.set_item("high", high)?;
                }
                Kind::Linear { terms, b } => {
                    let t = PyDict::new(py);
                    for (i, a) in terms {
                        t.set_item(s.signals[*i].name, a)?;
                    }
                    e.set_item("terms", t)?;
                    e.set_item("b", b)?;
                }
                _ => {}
            }
            e.set_item("limit", c.limit())?;
            if let Some(i) = c.kind.signal() {
                let unit = s.signals[i].unit;
                e.set_item("signal", s.signals[i].name)?;
                e.set_item(
                    "unit",
                    if matches!(c.kind, Kind::Rate { .. }) {
                        format!("{unit}/step")
                    } else {
                        unit.to_string()
                    },
                )?;
            } else {
                e.set_item("unit", "")?;
            }
            cons.append(e)?;
        }
        d.set_item("constraints", cons)?;
        if let Some(c) = self.core.model().success() {
            d.set_item("success", success_entry(py, c)?)?;
        }
        faults::spec_entries(py, &d, s, self.core.faults())?;
        Ok(d)
    }

    /// How many envs of the batch have each injected fault active now (after the last step or
    /// reset), by fault name.
    fn faults_active<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (f, n) in self
            .core
            .faults()
            .faults()
            .iter()
            .zip(self.core.faults_active())
        {
            d.set_item(&f.name, n)?;
        }
        Ok(d)
    }

    /// Resets the envs in ``mask`` (all if None), reseeding env i with ``seeds[i]`` when given.
    ///
    /// Returns:
    ///     ``(obs[n, obs_dim] float32, values[k, n], margins[k, n], active[k, n], events)`` with the
    ///     events as columns (see ``events_columns``).
    #[pyo3(signature = (seeds=None, mask=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seeds: Option<Vec<Option<u64>>>,
        mask: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let n = self.core.num_envs();
        let mask = mask.map(|m| convert::reset_mask(m, n)).transpose()?;
        let core = &mut self.core;
        let out = py.detach(|| core.reset(seeds.as_deref(), mask.as_deref()))?;
        let (n, od) = (self.core.num_envs(), self.obs_dim());
        let [v, m, a] = self.readings(py, out.readings)?;
        PyTuple::new(
            py,
            [
                convert::array2(py, out.obs, n, od)?.into_any(),
                v,
                m,
                a,
                events_columns(py, &out.events)?.into_any(),
            ],
        )
    }

    /// Steps every env with normalised actions of shape ``(num_envs, act_dim)``.
    ///
    /// Returns a dict of arrays: ``obs``, ``reward``, ``terminated``, ``truncated``, ``stepped``,
    /// ``clipped``, ``cost``, ``shield``, ``action``, ``values``, ``margins``, ``active`` (each
    /// ``(k, num_envs)``: row ``c`` is constraint ``c``), ``shutdown`` (index of the critical
    /// constraint, -1: none), ``episode_return``, ``events`` (a dict of columns), and with
    /// same_step autoreset ``final_mask``, ``final_obs``, ``final_values``, ``final_margins``,
    /// ``final_active``.
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        actions: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = self.step_core(py, actions)?;
        let (n, od, ad) = (self.core.num_envs(), self.obs_dim(), self.act_dim());
        let c = out.cols;
        let d = PyDict::new(py);
        d.set_item("obs", convert::array2(py, out.obs, n, od)?)?;
        d.set_item("reward", convert::array1(py, c.reward))?;
        d.set_item("terminated", convert::array1(py, c.terminated))?;
        d.set_item("truncated", convert::array1(py, c.truncated))?;
        d.set_item("stepped", convert::array1(py, c.stepped))?;
        d.set_item("clipped", convert::array1(py, c.clipped))?;
        d.set_item("cost", convert::array1(py, c.cost))?;
        d.set_item("shield", convert::array1(py, c.shielded))?;
        d.set_item("shutdown", convert::array1(py, c.shutdown))?;
        d.set_item("episode_return", convert::array1(py, c.episode_return))?;
        d.set_item("action", convert::array2(py, out.action, n, ad)?)?;
        let [v, m, a] = self.readings(py, out.readings)?;
        d.set_item("values", v)?;
        d.set_item("margins", m)?;
        d.set_item("active", a)?;
        if self.core.autoreset() == Autoreset::SameStep {
            d.set_item("final_mask", convert::array1(py, c.reset_in_step))?;
            d.set_item("final_obs", convert::array2(py, out.final_obs, n, od)?)?;
            let [v, m, a] = self.readings(py, out.final_readings)?;
            d.set_item("final_values", v)?;
            d.set_item("final_margins", m)?;
            d.set_item("final_active", a)?;
        }
        d.set_item("events", events_columns(py, &out.events)?)?;
        Ok(d)
    }

    /// Steps every env as :meth:`step` does and returns Gymnasium's ``(obs, reward, terminated,
    /// truncated, info)`` in the batch's autoreset mode: the vector env's own call (Gymnasium's
    /// info layout, with ``final_obs`` / ``final_info`` where envs ended and reset within the step).
    fn step_info<'py>(
        &mut self,
        py: Python<'py>,
        actions: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let out = self.step_core(py, actions)?;
        let dims = Dims {
            n: self.core.num_envs(),
            od: self.obs_dim(),
            ad: self.act_dim(),
        };
        self.info.step(py, out, dims)
    }

    /// Resets as :meth:`reset` does and returns Gymnasium's ``(obs, info)``: the readings of the
    /// envs reset (``options["reset_mask"]``; every env without one).
    #[pyo3(signature = (seeds=None, options=None))]
    fn reset_info<'py>(
        &mut self,
        py: Python<'py>,
        seeds: Option<&Bound<'py, PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let n = self.core.num_envs();
        let seeds = match seeds {
            Some(s) => convert::seeds(s, n)?,
            None => None,
        };
        let mask = match options
            .map(|o| o.get_item("reset_mask"))
            .transpose()?
            .flatten()
        {
            Some(m) => Some(convert::reset_mask(&m, n)?),
            None => None,
        };
        let core = &mut self.core;
        let out = py.detach(|| core.reset(seeds.as_deref(), mask.as_deref()))?;
        let (n, od) = (self.core.num_envs(), self.obs_dim());
        let info = self.info.reset(py, &out.readings, mask.as_deref(), n)?;
        PyTuple::new(
            py,
            [
                convert::array2(py, out.obs, n, od)?.into_any(),
                info.into_any(),
            ],
        )
    }

    /// Turns the data-quality counters (``observation_saturation_total``,
    /// ``action_clipped_total``) on or off; they are on with metrics (off measures their cost).
    fn set_quality(&mut self, on: bool) {
        self.core.set_quality_on(on);
    }

    /// Feeds a sample of every batch step to ``drift`` from now on (None: stops).
    #[pyo3(signature = (drift))]
    fn set_drift(&mut self, drift: Option<PyRef<'_, CoreDrift>>) {
        self.core.set_drift(drift.map(|d| d.shared()));
    }

    /// The batch's running safety counts (see :class:`SafetyTotals`).
    fn totals(&self) -> SafetyTotals {
        SafetyTotals {
            inner: self.core.totals(),
        }
    }

    /// The single-env face of this batch (of one env): see :class:`SingleEnv`.
    fn single(slf: &Bound<'_, Self>) -> PyResult<SingleEnv> {
        let label = {
            let this = slf.try_borrow()?;
            if this.core.num_envs() != 1 {
                return Err(CoreError::config(
                    "num_envs",
                    format!(
                        "a single env is a batch of 1, this one has {}",
                        this.core.num_envs()
                    ),
                )
                .into());
            }
            this.core.model().spec().id.to_string()
        };
        Ok(SingleEnv {
            env: slf.clone().unbind(),
            label,
        })
    }

    /// The full state: ``(rows float64, rng uint64[n*4], elapsed uint32, done bool, started bool,
    /// returns float64, episodes uint64, alarm_ints uint64[n*k*5], alarm_reals float64[n*k*5])``.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let s = self.core.snapshot();
        PyTuple::new(
            py,
            [
                s.states.into_pyarray(py).into_any(),
                s.rngs.into_pyarray(py).into_any(),
                s.elapsed.into_pyarray(py).into_any(),
                s.done.into_pyarray(py).into_any(),
                s.started.into_pyarray(py).into_any(),
                s.returns.into_pyarray(py).into_any(),
                s.episodes.into_pyarray(py).into_any(),
                s.alarm_ints.into_pyarray(py).into_any(),
                s.alarm_reals.into_pyarray(py).into_any(),
            ],
        )
    }

    /// Restores a state taken by :meth:`snapshot` on a batch of the same kind, size and
    /// constraints (refused as a whole, nothing changed, if any part does not fit).
    #[allow(clippy::too_many_arguments)]
    fn restore(
        &mut self,
        rows: PyReadonlyArray1<'_, f64>,
        rngs: PyReadonlyArray1<'_, u64>,
        elapsed: PyReadonlyArray1<'_, u32>,
        done: PyReadonlyArray1<'_, bool>,
        started: PyReadonlyArray1<'_, bool>,
        returns: PyReadonlyArray1<'_, f64>,
        episodes: PyReadonlyArray1<'_, u64>,
        alarm_ints: PyReadonlyArray1<'_, u64>,
        alarm_reals: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        let snap = Snapshot {
            states: rows.as_array().to_vec(),
            rngs: rngs.as_array().to_vec(),
            elapsed: elapsed.as_array().to_vec(),
            done: done.as_array().to_vec(),
            started: started.as_array().to_vec(),
            returns: returns.as_array().to_vec(),
            episodes: episodes.as_array().to_vec(),
            alarm_ints: alarm_ints.as_array().to_vec(),
            alarm_reals: alarm_reals.as_array().to_vec(),
        };
        Ok(self.core.restore(&snap)?)
    }
}

impl CoreVecEnv {
    /// Counts a refused call in the data-quality counters; the exception to raise.
    fn refused(&self, r: convert::Refused) -> PyErr {
        self.core.refused(r.why);
        r.err
    }

    /// Converts `actions` and steps the batch with the GIL released.
    fn step_core(&mut self, py: Python<'_>, actions: &Bound<'_, PyAny>) -> PyResult<StepOut> {
        let (n, ad) = (self.core.num_envs(), self.act_dim());
        let alt = [n];
        let acts = convert::actions(actions, &[n, ad], if ad == 1 { Some(&alt) } else { None })
            .map_err(|r| self.refused(r))?;
        let core = &mut self.core;
        Ok(py.detach(|| core.step(&acts))?)
    }

    /// Resets env 0; returns ``(obs[obs_dim], info)``.
    fn reset_single<'py>(
        &mut self,
        py: Python<'py>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let seeds = seed.map(|s| vec![Some(s); self.core.num_envs()]);
        let core = &mut self.core;
        let out = py.detach(|| core.reset(seeds.as_deref(), None))?;
        let info = PyDict::new(py);
        self.info.single_readings(py, &info, &out.readings)?;
        PyTuple::new(
            py,
            [convert::array1(py, out.obs).into_any(), info.into_any()],
        )
    }

    /// Steps env 0; returns Gymnasium's 5-tuple.
    fn step_single<'py>(
        &mut self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let ad = self.act_dim();
        let acts = convert::actions(action, &[ad], None).map_err(|r| self.refused(r))?;
        // One env runs inline on this thread (no worker threads), so recording may log through
        // Python's logging without releasing the GIL: no other Rust thread waits for it.
        let out = self.core.step_one(&acts)?;
        let r = out.row;
        let info = PyDict::new(py);
        let action = PyArray1::from_slice(py, &out.action).into_any();
        self.info
            .single_step(py, &info, (action, r.clipped, r.cost, r.shielded))?;
        self.info.single_readings(py, &info, &out.readings)?;
        self.info.single_end(py, &info, &r)?;
        (
            PyArray1::from_slice(py, &out.obs),
            r.reward,
            r.terminated,
            r.truncated,
            info,
        )
            .into_pyobject(py)
    }

    /// A batch's readings as three ``(k, num_envs)`` arrays: row ``c`` is constraint ``c``.
    fn readings<'py>(&self, py: Python<'py>, r: Readings) -> PyResult<[Bound<'py, PyAny>; 3]> {
        let (n, k) = (self.core.num_envs(), self.core.checker().len());
        Ok([
            convert::array2(py, r.values, k, n)?.into_any(),
            convert::array2(py, r.margins, k, n)?.into_any(),
            convert::array2(py, r.active, k, n)?.into_any(),
        ])
    }
}

/// A batch's running safety counts since it was made, and its most recent closed incidents
/// (``CoreVecEnv.totals()``): readable from any thread, also while the batch steps.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct SafetyTotals {
    inner: Arc<Mutex<Totals>>,
}

impl SafetyTotals {
    fn get(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl SafetyTotals {
    /// Env steps taken (autoreset steps not counted).
    #[getter]
    fn steps(&self) -> u64 {
        self.get().steps
    }

    /// Sum of the cost signal.
    #[getter]
    fn cost(&self) -> f64 {
        self.get().cost
    }

    /// Safety events (what the audit trail receives).
    #[getter]
    fn events(&self) -> u64 {
        self.get().events
    }

    /// Shield interventions.
    #[getter]
    fn shield_interventions(&self) -> u64 {
        self.get().shield
    }

    /// Incidents opened, per constraint (in the batch's constraint order).
    #[getter]
    fn opened(&self) -> Vec<u64> {
        self.get().opened.clone()
    }

    /// Emergency shutdowns, per constraint.
    #[getter]
    fn shutdowns(&self) -> Vec<u64> {
        self.get().shutdowns.clone()
    }

    /// Env steps ending with the constraint's alarm active, per constraint.
    #[getter]
    fn in_violation(&self) -> Vec<u64> {
        self.get().in_violation.clone()
    }

    /// Env steps ending with no alarm active.
    #[getter]
    fn alarm_free(&self) -> u64 {
        self.get().alarm_free
    }

    /// How many closed incidents are kept (the most recent ones).
    #[getter]
    fn keep(&self) -> usize {
        self.get().keep
    }

    #[setter]
    fn set_keep(&self, keep: usize) {
        self.get().set_keep(keep);
    }

    /// The closing events of the kept incidents, oldest first, as columns (see
    /// ``events_columns``).
    fn closed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let closed: Vec<SafetyEvent> = self.get().closed.iter().copied().collect();
        events_columns(py, &closed)
    }
}

/// The single-env face of a batch of one: Gymnasium's ``reset`` and ``step`` return values, built
/// in one native call each (no Python frame on the way: a single env's ``step`` is bound straight
/// to :meth:`step`).
///
/// A second thread entering while a first is inside (the first may be running Python logging
/// handlers, which can hand the GIL over) is refused with ``ConcurrentUseError`` naming the
/// environment, not a borrow error.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct SingleEnv {
    env: Py<CoreVecEnv>,
    label: String,
}

impl SingleEnv {
    fn enter<'py>(&self, py: Python<'py>) -> PyResult<PyRefMut<'py, CoreVecEnv>> {
        self.env
            .bind(py)
            .try_borrow_mut()
            .map_err(|_| CoreError::ConcurrentUse(self.label.clone()).into())
    }
}

#[pymethods]
impl SingleEnv {
    /// Resets the env (``seed``: its stream; ``None`` continues it); returns ``(obs, info)``.
    #[pyo3(signature = (seed=None))]
    fn reset<'py>(&self, py: Python<'py>, seed: Option<u64>) -> PyResult<Bound<'py, PyTuple>> {
        self.enter(py)?.reset_single(py, seed)
    }

    /// Steps the env with ``action`` (see ``ChemicalReactorEnv.step`` for what is accepted);
    /// returns ``(obs, reward, terminated, truncated, info)``.
    fn step<'py>(
        &self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.enter(py)?.step_single(py, action)
    }
}

/// Ids of every environment in the catalogue.
#[pyfunction]
pub fn env_ids() -> Vec<&'static str> {
    envs::IDS.to_vec()
}
