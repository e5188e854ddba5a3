//! Environment specifications as data: variables, actions, time step, horizon and declared constraints.
//!
//! A spec is everything a user (or the safety layer, the CLI, the docs) needs to know about an
//! environment without running it.

/// A named physical quantity with its unit and bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// Short identifier, e.g. `"T"`.
    pub name: &'static str,
    /// Human description, e.g. `"reactor temperature"`.
    pub description: &'static str,
    /// Unit, e.g. `"K"`.
    pub unit: &'static str,
    /// Lowest value the observation space admits.
    pub low: f64,
    /// Highest value the observation space admits.
    pub high: f64,
}

impl Variable {
    /// Builds a variable (const-friendly shorthand).
    pub const fn new(
        name: &'static str,
        description: &'static str,
        unit: &'static str,
        low: f64,
        high: f64,
    ) -> Self {
        Self {
            name,
            description,
            unit,
            low,
            high,
        }
    }
}

/// A physical parameter of a model that a batch can set per env (see
/// [`ProcessModel::step_with`](crate::envs::ProcessModel::step_with)): what parameter drift faults
/// act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// Short identifier, e.g. `"UA"`.
    pub name: &'static str,
    /// Human description, e.g. `"heat transfer coefficient times area"`.
    pub description: &'static str,
    /// Unit, e.g. `"J/(min K)"`.
    pub unit: &'static str,
    /// The model's own value.
    pub nominal: f64,
    /// Lowest admissible value.
    pub low: f64,
    /// Highest admissible value.
    pub high: f64,
}

impl Parameter {
    /// Builds a parameter (const-friendly shorthand).
    pub const fn new(
        name: &'static str,
        description: &'static str,
        unit: &'static str,
        nominal: f64,
        (low, high): (f64, f64),
    ) -> Self {
        Self {
            name,
            description,
            unit,
            nominal,
            low,
            high,
        }
    }
}

/// Alarm severity, ordered from least to most severe (ISA-18.2 priorities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational: recorded, no action expected.
    Info,
    /// Warning: operator attention; counted in the cost signal.
    Warning,
    /// Critical: the process must be shut down.
    Critical,
}

impl Severity {
    /// Lower-case label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses a label as written in configuration files.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// What a constraint bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintKind {
    /// `signal <= limit`.
    Upper,
    /// `signal >= limit`.
    Lower,
    /// `|signal| <= limit`: a symmetric band around zero (e.g. frequency deviation).
    Abs,
    /// `|signal_t - signal_{t-1}| <= limit`: rate of change per step.
    Rate,
}

impl ConstraintKind {
    /// Lower-case label used in configuration files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConstraintKind::Upper => "upper",
            ConstraintKind::Lower => "lower",
            ConstraintKind::Abs => "abs",
            ConstraintKind::Rate => "rate",
        }
    }
}

/// A constraint an environment declares by default.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstraintSpec {
    /// Unique name within the environment, e.g. `"temperature_high"`.
    pub name: &'static str,
    /// Metric label grouping similar constraints, e.g. `"temperature"`.
    pub constraint_type: &'static str,
    /// The signal (see [`EnvSpec::signals`]) the constraint watches.
    pub signal: &'static str,
    /// Which side of the limit is safe.
    pub kind: ConstraintKind,
    /// The limit, in the signal's unit.
    pub limit: f64,
    /// Alarm severity; `Critical` means emergency shutdown.
    pub severity: Severity,
    /// Steps the value must stay beyond the limit before the alarm activates (0: at once).
    pub on_delay: u32,
    /// Subtracted from the reward on every step the alarm is active (for a critical constraint:
    /// once, on the shutdown step).
    pub penalty: f64,
}

/// `(name, constraint_type, signal, kind, limit, severity)`: a declared constraint as a table row.
pub type ConstraintRow = (
    &'static str,
    &'static str,
    &'static str,
    ConstraintKind,
    f64,
    Severity,
);

impl ConstraintSpec {
    /// A constraint from a table row, alarming at once; critical ones charge `shutdown_penalty`.
    pub fn from_row(row: ConstraintRow, shutdown_penalty: f64) -> Self {
        let (name, constraint_type, signal, kind, limit, severity) = row;
        Self {
            name,
            constraint_type,
            signal,
            kind,
            limit,
            severity,
            on_delay: 0,
            penalty: if severity == Severity::Critical {
                shutdown_penalty
            } else {
                0.0
            },
        }
    }
}

/// Everything known about an environment before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    /// Gymnasium id without namespace, e.g. `"ChemicalReactor-v0"`.
    pub id: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Observation variables, in observation order.
    pub observations: Vec<Variable>,
    /// Action variables with their physical ranges; the agent acts in `[-1, 1]` per variable.
    pub actions: Vec<Variable>,
    /// Named signals the constraints refer to (states, actions, derived quantities).
    pub signals: Vec<Variable>,
    /// Time step length, in `dt_unit`.
    pub dt: f64,
    /// Unit of `dt`, e.g. `"min"`.
    pub dt_unit: &'static str,
    /// Steps per episode before truncation.
    pub horizon: u32,
    /// Constraints declared by default.
    pub constraints: Vec<ConstraintSpec>,
    /// The safe fallback action, normalised to `[-1, 1]`.
    pub safe_action: Vec<f64>,
    /// Physical parameters that can differ per env (and drift), with their nominal values.
    pub parameters: Vec<Parameter>,
    /// Where the model comes from.
    pub source: &'static str,
}

impl EnvSpec {
    /// The id without its version suffix, e.g. `"ChemicalReactor"` (Gymnasium's `name`).
    pub fn name(&self) -> &'static str {
        self.id.rsplit_once("-v").map_or(self.id, |(name, _)| name)
    }

    /// The environment's version, the `N` of its id's `-vN` suffix (Gymnasium's `version`): a
    /// change to the dynamics, reward, spaces or default constraints gets a new one.
    pub fn version(&self) -> u32 {
        self.id
            .rsplit_once("-v")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.observations.len()
    }

    /// Action length.
    pub fn act_dim(&self) -> usize {
        self.actions.len()
    }

    /// Index of a signal by name.
    pub fn signal_index(&self, name: &str) -> Option<usize> {
        self.signals.iter().position(|s| s.name == name)
    }

    /// Maps a normalised action in `[-1, 1]` to its physical value, element by element.
    pub fn to_physical(&self, normalised: &[f64], out: &mut [f64]) {
        for ((o, &a), var) in out.iter_mut().zip(normalised).zip(&self.actions) {
            *o = denormalise(a, var.low, var.high - var.low);
        }
    }
}

/// The physical value of normalised action `a` in `[-1, 1]` for a range from `low` spanning
/// `span`: the one formula behind [`EnvSpec::to_physical`] and the batch's precomputed map.
#[inline]
pub fn denormalise(a: f64, low: f64, span: f64) -> f64 {
    low + (a + 1.0) * 0.5 * span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_mapping_is_linear_over_the_box() {
        let spec = EnvSpec {
            id: "T-v0",
            description: "",
            observations: vec![],
            actions: vec![Variable::new("u", "", "K", 290.0, 310.0)],
            signals: vec![],
            dt: 1.0,
            dt_unit: "s",
            horizon: 1,
            constraints: vec![],
            safe_action: vec![-1.0],
            parameters: vec![],
            source: "",
        };
        let mut out = [0.0];
        for (a, want) in [(-1.0, 290.0), (0.0, 300.0), (1.0, 310.0)] {
            spec.to_physical(&[a], &mut out);
            assert_eq!(out[0], want);
        }
    }

    #[test]
    fn name_and_version_come_from_the_id() {
        for (id, name, version) in [
            ("ChemicalReactor-v0", "ChemicalReactor", 0),
            ("Some-Env-v12", "Some-Env", 12),
        ] {
            let spec = EnvSpec {
                id,
                description: "",
                observations: vec![],
                actions: vec![],
                signals: vec![],
                dt: 1.0,
                dt_unit: "s",
                horizon: 1,
                constraints: vec![],
                safe_action: vec![],
                parameters: vec![],
                source: "",
            };
            assert_eq!((spec.name(), spec.version()), (name, version));
        }
        for id in crate::envs::IDS {
            let model = crate::envs::make(id, Vec::new()).expect("model");
            let spec = model.spec();
            assert_eq!(format!("{}-v{}", spec.name(), spec.version()), spec.id);
        }
    }

    #[test]
    fn severity_round_trips_through_its_label() {
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse("fatal"), None);
    }
}
