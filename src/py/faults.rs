//! The fault parts of an env's spec dict: parameters, fault kinds with their targets, and the
//! faults a batch was made with.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::faults::config::{own_fields, COMMON};
use crate::faults::{Effect, FaultSet, KINDS};
use crate::spec::EnvSpec;

/// Adds ``parameters``, ``fault_kinds`` and ``faults`` to the spec dict `d`.
pub fn spec_entries(
    py: Python<'_>,
    d: &Bound<'_, PyDict>,
    s: &EnvSpec,
    faults: &FaultSet,
) -> PyResult<()> {
    let params = PyList::empty(py);
    for p in &s.parameters {
        let e = PyDict::new(py);
        e.set_item("name", p.name)?;
        e.set_item("description", p.description)?;
        e.set_item("unit", p.unit)?;
        e.set_item("nominal", p.nominal)?;
        e.set_item("low", p.low)?;
        e.set_item("high", p.high)?;
        params.append(e)?;
    }
    d.set_item("parameters", params)?;
    let kinds = PyDict::new(py);
    for kind in KINDS {
        let own = own_fields(kind);
        let targets: Vec<&str> = match own[0] {
            "variable" => s.observations.iter().map(|v| v.name).collect(),
            "parameter" => s.parameters.iter().map(|p| p.name).collect(),
            _ => s.actions.iter().map(|v| v.name).collect(),
        };
        let e = PyDict::new(py);
        e.set_item("target_field", own[0])?;
        e.set_item("targets", targets)?;
        let mut fields = COMMON.to_vec();
        fields.extend_from_slice(own);
        e.set_item("fields", fields)?;
        kinds.set_item(kind, e)?;
    }
    d.set_item("fault_kinds", kinds)?;
    let list = PyList::empty(py);
    for f in faults.faults() {
        let e = PyDict::new(py);
        e.set_item("name", &f.name)?;
        e.set_item("kind", f.effect.kind())?;
        let own = own_fields(f.effect.kind());
        e.set_item(own[0], f.target)?;
        match f.effect {
            Effect::SensorBias { value, .. } => e.set_item("value", value)?,
            Effect::SensorNoise { std, .. } => e.set_item("std", std)?,
            Effect::SensorDropout { p, .. } => e.set_item("p", p)?,
            Effect::ParameterDrift { factor, .. } => e.set_item("factor", factor)?,
            Effect::ActuatorStuck { value, .. } => e.set_item("value", value)?,
            Effect::ActuatorRateLimit { rate, .. } => e.set_item("rate", rate)?,
            Effect::SensorFreeze { .. } => {}
        }
        let sch = &f.schedule;
        e.set_item("start", sch.start)?;
        e.set_item("end", sch.end)?;
        if own.contains(&"ramp") {
            e.set_item("ramp", sch.ramp)?;
        }
        e.set_item("clock", sch.clock.as_str())?;
        list.append(e)?;
    }
    d.set_item("faults", list)?;
    Ok(())
}
