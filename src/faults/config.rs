//! Faults from configuration: a list of mappings, each one fault (what a Python list of dicts,
//! a JSON, YAML or TOML file holds).
//!
//! Fields: `kind` (one of [`KINDS`]); the target: `variable` (an observation, for `sensor_*`),
//! `parameter` (for `parameter_drift`) or `action` (for `actuator_*`); the kind's own fields
//! (`value` for `sensor_bias`, `std` for `sensor_noise`, `p` for `sensor_dropout`, `factor` for
//! `parameter_drift`, optional `value` for `actuator_stuck`, `rate` for `actuator_rate_limit`);
//! the schedule: `start` (default 0), `end` (optional, after `start`), `ramp` (bias, noise and
//! drift; default 0) and `clock` (`episode`, the default, or `lifetime`); and `name` (default
//! `kind:target`). Every error names the fault and the field at fault.

use super::{Clock, Effect, Fault, FaultSet, Schedule, KINDS};
use crate::errors::CoreError;
use crate::safety::config::Value;
use crate::spec::EnvSpec;

/// The most faults one batch takes.
pub const MAX_FAULTS: usize = 64;

/// Builds the faults of an env of `spec` from `cfg` (`None` or an empty list: no faults).
pub fn build(cfg: &Value, spec: &EnvSpec) -> Result<FaultSet, CoreError> {
    let items = match cfg {
        Value::Null => return Ok(FaultSet::none()),
        Value::List(items) => items,
        v => {
            return Err(CoreError::config(
                "faults",
                format!("must be a list of mappings, got {}", v.describe()),
            ))
        }
    };
    if items.len() > MAX_FAULTS {
        return Err(CoreError::config(
            "faults",
            format!("at most {MAX_FAULTS} faults, got {}", items.len()),
        ));
    }
    let mut faults: Vec<Fault> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fault = parse(item, spec, &format!("faults[{i}]"))?;
        if faults.iter().any(|f| f.name == fault.name) {
            return Err(CoreError::config(
                &format!("faults[{i}].name"),
                format!(
                    "{:?} names two faults; give each its own `name`",
                    fault.name
                ),
            ));
        }
        faults.push(fault);
    }
    Ok(FaultSet::new(faults, spec))
}

/// The fields a fault of `kind` takes besides [`COMMON`], its target's field first.
pub fn own_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "sensor_bias" => &["variable", "value", "ramp"],
        "sensor_noise" => &["variable", "std", "ramp"],
        "sensor_freeze" => &["variable"],
        "sensor_dropout" => &["variable", "p"],
        "parameter_drift" => &["parameter", "factor", "ramp"],
        "actuator_stuck" => &["action", "value"],
        _ => &["action", "rate"],
    }
}

/// The fields every fault takes.
pub const COMMON: [&str; 5] = ["kind", "name", "start", "end", "clock"];

/// One fault from its mapping; `path` names it in errors (`faults[2]`).
fn parse(item: &Value, spec: &EnvSpec, path: &str) -> Result<Fault, CoreError> {
    let Value::Map(fields) = item else {
        return Err(CoreError::config(
            path,
            format!("must be a mapping, got {}", item.describe()),
        ));
    };
    let f = Fields { fields, path };
    let kind = match f.get("kind") {
        Some(Value::Str(k)) if KINDS.contains(&k.as_str()) => k.as_str(),
        Some(v) => {
            return Err(f.err(
                "kind",
                format!("must be one of {}, got {}", KINDS.join(", "), v.describe()),
            ))
        }
        None => return Err(f.err("kind", format!("is missing; one of {}", KINDS.join(", ")))),
    };
    let own = own_fields(kind);
    if let Some((k, _)) = fields
        .iter()
        .find(|(k, _)| !COMMON.contains(&k.as_str()) && !own.contains(&k.as_str()))
    {
        let mut known: Vec<&str> = COMMON.to_vec();
        known.extend_from_slice(own);
        return Err(f.err(
            k,
            format!(
                "is not a field of a {kind} fault; its fields are {}",
                known.join(", ")
            ),
        ));
    }
    let (effect, target) = effect(kind, &f, spec)?;
    let schedule = schedule(&f, own.contains(&"ramp"), spec.horizon)?;
    let name = match f.get("name") {
        None => format!("{kind}:{target}"),
        Some(Value::Str(s))
            if !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) =>
        {
            s.clone()
        }
        Some(v) => {
            return Err(f.err(
                "name",
                format!(
                    "must be 1 to 128 printable characters, got {}",
                    v.describe()
                ),
            ))
        }
    };
    Ok(Fault {
        name,
        target,
        effect,
        schedule,
    })
}

/// A fault's fields, for lookups that name the field in errors.
struct Fields<'a> {
    fields: &'a [(String, Value)],
    path: &'a str,
}

impl Fields<'_> {
    /// The value of `key`; `None` (null) counts as absent.
    fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(k, v)| k == key && *v != Value::Null)
            .map(|(_, v)| v)
    }

    fn err(&self, key: &str, message: impl Into<String>) -> CoreError {
        CoreError::config(&format!("{}.{key}", self.path), message)
    }

    /// A finite number, `None` if absent.
    fn number(&self, key: &str) -> Result<Option<f64>, CoreError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Num(x)) if x.is_finite() => Ok(Some(*x)),
            Some(v) => Err(self.err(
                key,
                format!("must be a finite number, got {}", v.describe()),
            )),
        }
    }

    /// A finite number that must be there.
    fn required(&self, key: &str, what: &str) -> Result<f64, CoreError> {
        self.number(key)?
            .ok_or_else(|| self.err(key, format!("is missing: {what}")))
    }

    /// A whole number of steps >= 0, `None` if absent.
    fn steps(&self, key: &str) -> Result<Option<u64>, CoreError> {
        match self.get(key) {
            None => Ok(None),
            // 2^53: every step count below it is exact in the state buffer's f64.
            Some(Value::Num(x)) if x.fract() == 0.0 && (0.0..=9.0e15).contains(x) => {
                Ok(Some(*x as u64))
            }
            Some(v) => Err(self.err(
                key,
                format!("must be a whole number of steps >= 0, got {}", v.describe()),
            )),
        }
    }

    /// The index of the name under `key` in `names`.
    fn target(&self, key: &str, names: &[&'static str], what: &str) -> Result<usize, CoreError> {
        let listed = || names.join(", ");
        match self.get(key) {
            Some(Value::Str(s)) => names.iter().position(|n| n == s).ok_or_else(|| {
                let known = if names.is_empty() {
                    "none".to_string()
                } else {
                    listed()
                };
                self.err(key, format!("unknown {what} {s:?}; known: {known}"))
            }),
            Some(v) => Err(self.err(
                key,
                format!("must be the name of {what}, got {}", v.describe()),
            )),
            None => Err(self.err(
                key,
                format!("is missing: the {what} it acts on; one of {}", listed()),
            )),
        }
    }
}

/// The effect of a `kind` fault and its target's name.
fn effect(kind: &str, f: &Fields<'_>, spec: &EnvSpec) -> Result<(Effect, &'static str), CoreError> {
    let obs: Vec<&'static str> = spec.observations.iter().map(|v| v.name).collect();
    let acts: Vec<&'static str> = spec.actions.iter().map(|v| v.name).collect();
    let params: Vec<&'static str> = spec.parameters.iter().map(|p| p.name).collect();
    Ok(match kind {
        "sensor_bias" | "sensor_noise" | "sensor_freeze" | "sensor_dropout" => {
            let j = f.target("variable", &obs, "observation variable")?;
            let effect = match kind {
                "sensor_bias" => Effect::SensorBias {
                    obs: j,
                    value: f.required("value", "the bias, in the variable's unit")?,
                },
                "sensor_noise" => {
                    let std = f.required("std", "the noise's standard deviation")?;
                    if std < 0.0 {
                        return Err(f.err("std", format!("must be >= 0, got {std}")));
                    }
                    Effect::SensorNoise { obs: j, std }
                }
                "sensor_freeze" => Effect::SensorFreeze { obs: j },
                _ => {
                    let p = f.required("p", "the probability of a dropped reading per step")?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(f.err("p", format!("must be a probability in [0, 1], got {p}")));
                    }
                    Effect::SensorDropout { obs: j, p }
                }
            };
            (effect, obs[j])
        }
        "parameter_drift" => {
            let j = f.target("parameter", &params, "parameter")?;
            let factor = f.required("factor", "the parameter's final multiple")?;
            let p = &spec.parameters[j];
            let value = p.nominal * factor;
            if factor <= 0.0 || !(p.low..=p.high).contains(&value) {
                return Err(f.err(
                    "factor",
                    format!(
                        "must be > 0 and keep {} within its admissible range [{}, {}] {} \
                         (nominal {}), got {factor} ({value} {})",
                        p.name, p.low, p.high, p.unit, p.nominal, p.unit
                    ),
                ));
            }
            (Effect::ParameterDrift { param: j, factor }, params[j])
        }
        _ => {
            let j = f.target("action", &acts, "action")?;
            let var = &spec.actions[j];
            let effect = if kind == "actuator_stuck" {
                let value = f.number("value")?;
                if let Some(v) = value {
                    if !(var.low..=var.high).contains(&v) {
                        return Err(f.err(
                            "value",
                            format!(
                                "must be within the range of {} [{}, {}] {}, got {v}",
                                var.name, var.low, var.high, var.unit
                            ),
                        ));
                    }
                }
                Effect::ActuatorStuck { action: j, value }
            } else {
                let rate =
                    f.required("rate", "the largest change per step, in the action's unit")?;
                if rate <= 0.0 {
                    return Err(f.err("rate", format!("must be > 0, got {rate}")));
                }
                Effect::ActuatorRateLimit { action: j, rate }
            };
            (effect, acts[j])
        }
    })
}

/// The schedule; `ramps`: whether the kind takes a ramp; `horizon`: the episode's steps.
fn schedule(f: &Fields<'_>, ramps: bool, horizon: u32) -> Result<Schedule, CoreError> {
    let start = f.steps("start")?.unwrap_or(0);
    let end = f.steps("end")?;
    if let Some(e) = end {
        if e <= start {
            return Err(f.err("end", format!("must be after start ({start}), got {e}")));
        }
    }
    let ramp = if ramps {
        f.steps("ramp")?.unwrap_or(0)
    } else {
        0
    };
    let clock = match f.get("clock") {
        None => Clock::Episode,
        Some(Value::Str(s)) if s == "episode" => Clock::Episode,
        Some(Value::Str(s)) if s == "lifetime" => Clock::Lifetime,
        Some(v) => {
            return Err(f.err(
                "clock",
                format!("must be \"episode\" or \"lifetime\", got {}", v.describe()),
            ))
        }
    };
    if clock == Clock::Episode && start >= u64::from(horizon) {
        return Err(f.err(
            "start",
            format!(
                "is never reached: episodes end after {horizon} steps (use clock \"lifetime\" \
                 to count steps across episodes), got {start}"
            ),
        ));
    }
    Ok(Schedule {
        start,
        end,
        ramp,
        clock,
    })
}
