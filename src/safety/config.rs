//! Constraint sets from configuration: keep, drop, override by name, add, or replace the defaults.
//!
//! The input is a plain value tree (what a Python dict, a YAML or a TOML file holds). Two forms:
//!
//! * a mapping `{name: entry}` merged over the defaults: an entry of `None`/`false` drops that
//!   constraint, a mapping overrides the named fields of an existing constraint or, for a new name,
//!   declares one; the key `defaults: false` starts from an empty set instead;
//! * a list of full entries (each with a `name`) that replaces the defaults.
//!
//! Entry fields: `signal`, `kind` (`upper`, `lower`, `band`, `abs`, `rate`, `linear`), `limit`
//! (`low`/`high` for a band, `terms` + `b` for linear), `type`, `severity`, `weight`, `scale`,
//! `penalty`, `deadband`, `on_delay`. Every error names the field at fault.

use super::constraints::{Constraint, ConstraintSet, Kind};
use crate::errors::CoreError;
use crate::spec::Severity;

/// A configuration value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None` / `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// A mapping, in order.
    Map(Vec<(String, Value)>),
}

impl Value {
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Null => "None".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(x) => x.to_string(),
            Value::Str(s) => format!("{s:?}"),
            Value::List(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

const FIELDS: &[&str] = &[
    "name", "signal", "kind", "limit", "low", "high", "terms", "b", "type", "severity", "weight",
    "scale", "penalty", "deadband", "on_delay",
];

/// Builds the constraint set for an env with `signals`, starting from `defaults`.
pub fn build(
    cfg: &Value,
    signals: &[&str],
    defaults: &ConstraintSet,
) -> Result<ConstraintSet, CoreError> {
    let mut set = match cfg {
        Value::Null => return Ok(defaults.clone()),
        Value::List(items) => {
            let mut set = ConstraintSet::default();
            for (i, item) in items.iter().enumerate() {
                let path = format!("constraints[{i}]");
                let Value::Map(fields) = item else {
                    return Err(CoreError::config(
                        &path,
                        format!("must be a mapping, got {}", item.describe()),
                    ));
                };
                let name = match get(fields, "name") {
                    Some(Value::Str(s)) => s.clone(),
                    other => {
                        return Err(CoreError::config(
                            &format!("{path}.name"),
                            format!(
                                "must be a string, got {}",
                                other.map_or("nothing".into(), Value::describe)
                            ),
                        ))
                    }
                };
                push_unique(&mut set, declare(&name, fields, signals, &path)?, &path)?;
            }
            set
        }
        Value::Map(entries) => {
            let keep = match get(entries, "defaults") {
                None | Some(Value::Bool(true)) => true,
                Some(Value::Bool(false)) => false,
                Some(v) => {
                    return Err(CoreError::config(
                        "constraints.defaults",
                        format!("must be true or false, got {}", v.describe()),
                    ))
                }
            };
            let mut set = if keep {
                defaults.clone()
            } else {
                ConstraintSet::default()
            };
            for (name, entry) in entries.iter().filter(|(k, _)| k != "defaults") {
                let path = format!("constraints.{name}");
                let pos = set.constraints.iter().position(|c| &c.name == name);
                match (entry, pos) {
                    (Value::Null | Value::Bool(false), Some(i)) => {
                        set.constraints.remove(i);
                    }
                    (Value::Null | Value::Bool(false), None) => {
                        return Err(CoreError::config(
                            &path,
                            format!("no such constraint to drop; known: {}", names(&set)),
                        ))
                    }
                    (Value::Map(fields), Some(i)) => {
                        override_fields(&mut set.constraints[i], fields, signals, &path)?
                    }
                    (Value::Map(fields), None) => {
                        set.constraints.push(declare(name, fields, signals, &path)?)
                    }
                    (v, _) => {
                        return Err(CoreError::config(
                            &path,
                            format!("must be a mapping or None, got {}", v.describe()),
                        ))
                    }
                }
            }
            set
        }
        v => {
            return Err(CoreError::config(
                "constraints",
                format!("must be a mapping or a list, got {}", v.describe()),
            ))
        }
    };
    set.constraints.shrink_to_fit();
    Ok(set)
}

fn names(set: &ConstraintSet) -> String {
    set.constraints
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn push_unique(set: &mut ConstraintSet, c: Constraint, path: &str) -> Result<(), CoreError> {
    if set.constraints.iter().any(|d| d.name == c.name) {
        return Err(CoreError::config(
            &format!("{path}.name"),
            format!("duplicate constraint name {:?}", c.name),
        ));
    }
    set.constraints.push(c);
    Ok(())
}

fn get<'a>(fields: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn check_known(fields: &[(String, Value)], path: &str) -> Result<(), CoreError> {
    match fields.iter().find(|(k, _)| !FIELDS.contains(&k.as_str())) {
        Some((k, _)) => Err(CoreError::config(
            &format!("{path}.{k}"),
            format!(
                "is not a constraint field; fields are: {}",
                FIELDS.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn number(v: &Value, path: &str) -> Result<f64, CoreError> {
    match v {
        Value::Num(x) if x.is_finite() => Ok(*x),
        other => Err(CoreError::config(
            path,
            format!("must be a finite number, got {}", other.describe()),
        )),
    }
}

fn non_negative(v: &Value, path: &str) -> Result<f64, CoreError> {
    let x = number(v, path)?;
    if x < 0.0 {
        return Err(CoreError::config(path, format!("must be >= 0, got {x}")));
    }
    Ok(x)
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, CoreError> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(CoreError::config(
            path,
            format!("must be a string, got {}", other.describe()),
        )),
    }
}

fn signal(v: &Value, signals: &[&str], path: &str) -> Result<usize, CoreError> {
    let s = string(v, path)?;
    signals.iter().position(|x| *x == s).ok_or_else(|| {
        CoreError::config(
            path,
            format!("unknown signal {s:?}; signals are: {}", signals.join(", ")),
        )
    })
}

/// A new constraint from a full entry.
fn declare(
    name: &str,
    fields: &[(String, Value)],
    signals: &[&str],
    path: &str,
) -> Result<Constraint, CoreError> {
    check_known(fields, path)?;
    let kind_name = match get(fields, "kind") {
        Some(v) => string(v, &format!("{path}.kind"))?,
        None => {
            return Err(CoreError::config(
                &format!("{path}.kind"),
                "is required for a new constraint",
            ))
        }
    };
    let need = |key: &str| -> Result<&Value, CoreError> {
        get(fields, key).ok_or_else(|| {
            CoreError::config(
                &format!("{path}.{key}"),
                format!("is required for kind {kind_name:?}"),
            )
        })
    };
    let sig = || signal(need("signal")?, signals, &format!("{path}.signal"));
    let limit = || number(need("limit")?, &format!("{path}.limit"));
    let kind = match kind_name {
        "upper" => Kind::Upper {
            signal: sig()?,
            limit: limit()?,
        },
        "lower" => Kind::Lower {
            signal: sig()?,
            limit: limit()?,
        },
        "abs" => Kind::Abs {
            signal: sig()?,
            limit: non_negative(need("limit")?, &format!("{path}.limit"))?,
        },
        "rate" => Kind::Rate {
            signal: sig()?,
            limit: non_negative(need("limit")?, &format!("{path}.limit"))?,
        },
        "band" => {
            let low = number(need("low")?, &format!("{path}.low"))?;
            let high = number(need("high")?, &format!("{path}.high"))?;
            if low > high {
                return Err(CoreError::config(
                    &format!("{path}.low"),
                    format!("must not exceed high ({low} > {high})"),
                ));
            }
            Kind::Band {
                signal: sig()?,
                low,
                high,
            }
        }
        "linear" => {
            let Value::Map(terms) = need("terms")? else {
                return Err(CoreError::config(
                    &format!("{path}.terms"),
                    "must be a mapping {signal: coefficient}",
                ));
            };
            if terms.is_empty() {
                return Err(CoreError::config(
                    &format!("{path}.terms"),
                    "must name at least one signal",
                ));
            }
            let mut out = Vec::with_capacity(terms.len());
            for (s, a) in terms {
                let p = format!("{path}.terms.{s}");
                let i = signal(&Value::Str(s.clone()), signals, &p)?;
                out.push((i, number(a, &p)?));
            }
            Kind::Linear {
                terms: out,
                b: number(need("b")?, &format!("{path}.b"))?,
            }
        }
        other => {
            return Err(CoreError::config(
                &format!("{path}.kind"),
                format!("must be one of upper, lower, band, abs, rate, linear, got {other:?}"),
            ))
        }
    };
    let constraint_type = match get(fields, "type") {
        Some(v) => string(v, &format!("{path}.type"))?.to_string(),
        None => name.to_string(),
    };
    let mut c = Constraint::new(name, &constraint_type, kind, Severity::Warning);
    apply_common(&mut c, fields, path)?;
    Ok(c)
}

/// Overrides fields of an existing constraint.
fn override_fields(
    c: &mut Constraint,
    fields: &[(String, Value)],
    signals: &[&str],
    path: &str,
) -> Result<(), CoreError> {
    check_known(fields, path)?;
    if let Some(v) = get(fields, "kind") {
        if string(v, &format!("{path}.kind"))? != c.kind.as_str() {
            // A different kind is a different constraint: declare it whole.
            let mut merged = fields.to_vec();
            if get(fields, "signal").is_none() {
                if let Some(s) = c.kind.signal() {
                    merged.push(("signal".into(), Value::Str(signals[s].to_string())));
                }
            }
            *c = declare(&c.name, &merged, signals, path)?;
            return Ok(());
        }
    }
    let old_scale_default = c.scale == c.default_scale();
    if let Some(v) = get(fields, "signal") {
        let s = signal(v, signals, &format!("{path}.signal"))?;
        match &mut c.kind {
            Kind::Upper { signal, .. }
            | Kind::Lower { signal, .. }
            | Kind::Band { signal, .. }
            | Kind::Abs { signal, .. }
            | Kind::Rate { signal, .. } => *signal = s,
            Kind::Linear { .. } => {
                return Err(CoreError::config(
                    &format!("{path}.signal"),
                    "a linear constraint uses terms",
                ))
            }
        }
    }
    for key in ["limit", "low", "high", "b"] {
        let Some(v) = get(fields, key) else { continue };
        let x = number(v, &format!("{path}.{key}"))?;
        match (&mut c.kind, key) {
            (Kind::Upper { limit, .. } | Kind::Lower { limit, .. }, "limit") => *limit = x,
            (Kind::Abs { limit, .. } | Kind::Rate { limit, .. }, "limit") => {
                *limit = non_negative(v, &format!("{path}.limit"))?
            }
            (Kind::Band { low, .. }, "low") => *low = x,
            (Kind::Band { high, .. }, "high") => *high = x,
            (Kind::Linear { b, .. }, "b") => *b = x,
            _ => {
                return Err(CoreError::config(
                    &format!("{path}.{key}"),
                    format!("does not apply to a {} constraint", c.kind.as_str()),
                ))
            }
        }
    }
    if let Kind::Band { low, high, .. } = c.kind {
        if low > high {
            return Err(CoreError::config(
                &format!("{path}.low"),
                format!("must not exceed high ({low} > {high})"),
            ));
        }
    }
    if let Some(v) = get(fields, "type") {
        c.constraint_type = string(v, &format!("{path}.type"))?.to_string();
    }
    if old_scale_default {
        c.scale = c.default_scale();
    }
    apply_common(c, fields, path)
}

fn apply_common(
    c: &mut Constraint,
    fields: &[(String, Value)],
    path: &str,
) -> Result<(), CoreError> {
    if let Some(v) = get(fields, "severity") {
        let s = string(v, &format!("{path}.severity"))?;
        c.severity = Severity::parse(s).ok_or_else(|| {
            CoreError::config(
                &format!("{path}.severity"),
                format!("must be info, warning or critical, got {s:?}"),
            )
        })?;
    }
    if let Some(v) = get(fields, "weight") {
        c.weight = non_negative(v, &format!("{path}.weight"))?;
    }
    if let Some(v) = get(fields, "scale") {
        let s = number(v, &format!("{path}.scale"))?;
        if s <= 0.0 {
            return Err(CoreError::config(
                &format!("{path}.scale"),
                format!("must be > 0, got {s}"),
            ));
        }
        c.scale = s;
    }
    if let Some(v) = get(fields, "penalty") {
        c.penalty = non_negative(v, &format!("{path}.penalty"))?;
    }
    if let Some(v) = get(fields, "deadband") {
        c.deadband = non_negative(v, &format!("{path}.deadband"))?;
    }
    if let Some(v) = get(fields, "on_delay") {
        let d = non_negative(v, &format!("{path}.on_delay"))?;
        if d.fract() != 0.0 || d > f64::from(u32::MAX) {
            return Err(CoreError::config(
                &format!("{path}.on_delay"),
                format!("must be a whole number of steps, got {d}"),
            ));
        }
        c.on_delay = d as u32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNALS: &[&str] = &["T", "Tc", "P"];

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn defaults() -> ConstraintSet {
        ConstraintSet {
            constraints: vec![
                Constraint::new(
                    "temperature_high",
                    "temperature",
                    Kind::Upper {
                        signal: 0,
                        limit: 331.0,
                    },
                    Severity::Warning,
                ),
                Constraint::new(
                    "coolant_ramp",
                    "actuator_rate",
                    Kind::Rate {
                        signal: 1,
                        limit: 5.0,
                    },
                    Severity::Warning,
                ),
            ],
        }
    }

    #[test]
    fn override_drop_and_add_by_name() {
        let cfg = map(&[
            (
                "temperature_high",
                map(&[("limit", Value::Num(325.0)), ("on_delay", Value::Num(2.0))]),
            ),
            ("coolant_ramp", Value::Null),
            (
                "pressure_band",
                map(&[
                    ("kind", Value::Str("band".into())),
                    ("signal", Value::Str("P".into())),
                    ("low", Value::Num(1.0)),
                    ("high", Value::Num(3.0)),
                    ("severity", Value::Str("critical".into())),
                    ("type", Value::Str("pressure".into())),
                ]),
            ),
        ]);
        let set = build(&cfg, SIGNALS, &defaults()).expect("valid");
        assert_eq!(set.len(), 2);
        assert_eq!(set.constraints[0].limit(), 325.0);
        assert_eq!(set.constraints[0].scale, 325.0);
        assert_eq!(set.constraints[0].on_delay, 2);
        assert_eq!(set.constraints[1].severity, Severity::Critical);
        assert_eq!(set.constraints[1].constraint_type, "pressure");
    }

    #[test]
    fn a_list_replaces_and_defaults_false_empties() {
        let item = map(&[
            ("name", Value::Str("lin".into())),
            ("kind", Value::Str("linear".into())),
            (
                "terms",
                map(&[("T", Value::Num(1.0)), ("P", Value::Num(-2.0))]),
            ),
            ("b", Value::Num(10.0)),
        ]);
        let set = build(&Value::List(vec![item]), SIGNALS, &defaults()).expect("valid");
        assert_eq!(set.len(), 1);
        let empty = build(
            &map(&[("defaults", Value::Bool(false))]),
            SIGNALS,
            &defaults(),
        )
        .expect("valid");
        assert!(empty.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (
                map(&[(
                    "temperature_high",
                    map(&[("limit", Value::Str("hot".into()))]),
                )]),
                "constraints.temperature_high.limit: must be a finite number",
            ),
            (
                map(&[("temperature_high", map(&[("limt", Value::Num(1.0))]))]),
                "constraints.temperature_high.limt: is not a constraint field",
            ),
            (
                map(&[("nope", Value::Null)]),
                "constraints.nope: no such constraint to drop",
            ),
            (
                map(&[(
                    "x",
                    map(&[
                        ("kind", Value::Str("upper".into())),
                        ("signal", Value::Str("Q".into())),
                        ("limit", Value::Num(1.0)),
                    ]),
                )]),
                "constraints.x.signal: unknown signal \"Q\"",
            ),
            (
                map(&[("x", map(&[("kind", Value::Str("upper".into()))]))]),
                "constraints.x.signal: is required",
            ),
            (
                map(&[("x", map(&[("kind", Value::Str("wobbly".into()))]))]),
                "constraints.x.kind: must be one of",
            ),
            (
                map(&[(
                    "temperature_high",
                    map(&[("severity", Value::Str("fatal".into()))]),
                )]),
                "constraints.temperature_high.severity: must be info, warning or critical",
            ),
            (
                map(&[("temperature_high", map(&[("on_delay", Value::Num(1.5))]))]),
                "constraints.temperature_high.on_delay: must be a whole number",
            ),
            (
                map(&[("coolant_ramp", map(&[("limit", Value::Num(-1.0))]))]),
                "constraints.coolant_ramp.limit: must be >= 0",
            ),
            (Value::Num(3.0), "constraints: must be a mapping or a list"),
            (
                Value::List(vec![map(&[("kind", Value::Str("upper".into()))])]),
                "constraints[0].name: must be a string",
            ),
        ];
        for (cfg, want) in cases {
            let err = build(&cfg, SIGNALS, &defaults()).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    fn ok(cfg: &Value) -> ConstraintSet {
        build(cfg, SIGNALS, &defaults()).expect("valid")
    }

    fn err(cfg: &Value) -> String {
        build(cfg, SIGNALS, &defaults()).unwrap_err().to_string()
    }

    fn band(low: f64, high: f64) -> Value {
        map(&[(
            "b",
            map(&[
                ("kind", Value::Str("band".into())),
                ("signal", Value::Str("P".into())),
                ("low", Value::Num(low)),
                ("high", Value::Num(high)),
            ]),
        )])
    }

    #[test]
    fn messages_describe_the_value_and_list_the_names() {
        let e = err(&map(&[("nope", Value::Null)]));
        assert!(
            e.ends_with("no such constraint to drop; known: temperature_high, coolant_ramp"),
            "{e}"
        );
        for (v, shown) in [
            (Value::Null, "None"),
            (Value::Bool(true), "true"),
            (Value::Num(2.5), "2.5"),
            (Value::List(vec![]), "a list"),
            (map(&[]), "a mapping"),
        ] {
            let e = err(&map(&[("temperature_high", map(&[("severity", v)]))]));
            assert!(
                e.ends_with(&format!("must be a string, got {shown}")),
                "{e}"
            );
        }
        let e = err(&map(&[(
            "temperature_high",
            map(&[("weight", Value::Str("x".into()))]),
        )]));
        assert!(e.ends_with("must be a finite number, got \"x\""), "{e}");
        let e = err(&map(&[("temperature_high", Value::Num(1.0))]));
        assert!(e.ends_with("must be a mapping or None, got 1"), "{e}");
    }

    #[test]
    fn list_entries_need_unique_names() {
        let item = |name: &str| {
            map(&[
                ("name", Value::Str(name.into())),
                ("kind", Value::Str("upper".into())),
                ("signal", Value::Str("T".into())),
                ("limit", Value::Num(1.0)),
            ])
        };
        let set = ok(&Value::List(vec![item("a"), item("b")]));
        assert_eq!(set.len(), 2);
        let e = err(&Value::List(vec![item("a"), item("b"), item("a")]));
        assert!(
            e.starts_with("constraints[2].name: duplicate constraint name \"a\""),
            "{e}"
        );
    }

    #[test]
    fn numbers_must_be_finite_and_some_non_negative() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = err(&map(&[(
                "temperature_high",
                map(&[("limit", Value::Num(bad))]),
            )]));
            assert!(e.contains("must be a finite number"), "{e}");
        }
        // Zero is allowed where negatives are not; a scale must be positive.
        let set = ok(&map(&[(
            "temperature_high",
            map(&[
                ("weight", Value::Num(0.0)),
                ("penalty", Value::Num(0.0)),
                ("deadband", Value::Num(0.0)),
                ("scale", Value::Num(2.0)),
            ]),
        )]));
        assert_eq!(set.constraints[0].weight, 0.0);
        assert_eq!(set.constraints[0].scale, 2.0);
        for scale in [0.0, -1.0] {
            let e = err(&map(&[(
                "temperature_high",
                map(&[("scale", Value::Num(scale))]),
            )]));
            assert!(e.contains(".scale: must be > 0"), "{e}");
        }
        let e = err(&map(&[(
            "temperature_high",
            map(&[("penalty", Value::Num(-0.5))]),
        )]));
        assert!(e.contains(".penalty: must be >= 0"), "{e}");
    }

    #[test]
    fn on_delay_is_any_whole_u32() {
        let top = f64::from(u32::MAX);
        let set = ok(&map(&[(
            "temperature_high",
            map(&[("on_delay", Value::Num(top))]),
        )]));
        assert_eq!(set.constraints[0].on_delay, u32::MAX);
        let e = err(&map(&[(
            "temperature_high",
            map(&[("on_delay", Value::Num(top + 1.0))]),
        )]));
        assert!(e.contains("must be a whole number of steps"), "{e}");
    }

    #[test]
    fn a_band_needs_low_not_above_high() {
        let set = ok(&band(2.0, 2.0));
        assert_eq!(set.constraints[2].limit_near(1.0), 2.0);
        assert!(ok(&band(1.0, 3.0)).len() == 3);
        let e = err(&band(3.0, 1.0));
        assert!(
            e.starts_with("constraints.b.low: must not exceed high"),
            "{e}"
        );
    }

    #[test]
    fn overrides_move_each_bound_of_a_band_and_a_linear_b() {
        let mut base = defaults();
        base.constraints.push(Constraint::new(
            "p_band",
            "pressure",
            Kind::Band {
                signal: 2,
                low: 1.0,
                high: 3.0,
            },
            Severity::Warning,
        ));
        base.constraints.push(Constraint::new(
            "lin",
            "mix",
            Kind::Linear {
                terms: vec![(0, 1.0)],
                b: 4.0,
            },
            Severity::Warning,
        ));
        let set = build(
            &map(&[
                (
                    "p_band",
                    map(&[("low", Value::Num(0.5)), ("high", Value::Num(2.5))]),
                ),
                ("lin", map(&[("b", Value::Num(6.0))])),
            ]),
            SIGNALS,
            &base,
        )
        .expect("valid");
        assert_eq!(
            set.constraints[2].kind,
            Kind::Band {
                signal: 2,
                low: 0.5,
                high: 2.5
            }
        );
        // The default scale follows the new bounds; the linear b moves too.
        assert_eq!(set.constraints[2].scale, 2.0);
        assert_eq!(set.constraints[3].limit(), 6.0);
        // Equal bounds are a band of width 0; crossing bounds are refused.
        let same = build(
            &map(&[("p_band", map(&[("low", Value::Num(3.0))]))]),
            SIGNALS,
            &base,
        )
        .expect("valid");
        assert_eq!(same.constraints[2].limit_near(0.0), 3.0);
        for (key, x) in [("low", 3.5), ("high", 0.5)] {
            let e = build(
                &map(&[("p_band", map(&[(key, Value::Num(x))]))]),
                SIGNALS,
                &base,
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("constraints.p_band.low: must not exceed high"),
                "{e}"
            );
        }
    }

    #[test]
    fn same_kind_overrides_fields_and_another_kind_redeclares() {
        let mut base = defaults();
        base.constraints[0].penalty = 5.0;
        let set = build(
            &map(&[(
                "temperature_high",
                map(&[
                    ("kind", Value::Str("upper".into())),
                    ("limit", Value::Num(300.0)),
                ]),
            )]),
            SIGNALS,
            &base,
        )
        .expect("valid");
        let c = &set.constraints[0];
        assert_eq!((c.limit(), c.penalty), (300.0, 5.0));
        assert_eq!(c.constraint_type, "temperature");
        // Another kind: declared whole, on the same signal unless one is named.
        let set = ok(&map(&[(
            "coolant_ramp",
            map(&[
                ("kind", Value::Str("abs".into())),
                ("limit", Value::Num(2.0)),
            ]),
        )]));
        assert_eq!(
            set.constraints[1].kind,
            Kind::Abs {
                signal: 1,
                limit: 2.0
            }
        );
        assert_eq!(set.constraints[1].constraint_type, "coolant_ramp");
    }
}
