//! Process models and the registry that maps ids to them.
//!
//! A model is a spec plus reset and step on a flat `f64` state slice that it lays out itself
//! (observable and hidden variables alike), so a batch of envs is one contiguous buffer and an
//! env's full state can be copied, compared and pickled as plain numbers.

pub mod chemical_reactor;
pub mod four_tank;
pub mod hvac;
pub mod industrial_benchmark;
pub mod pipeline;
pub mod power_grid;
pub mod success;

use crate::errors::CoreError;
use crate::rng::Rng;
use crate::spec::EnvSpec;

/// Configuration value given from Python (`make(id, **kwargs)`), already typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A boolean flag.
    Bool(bool),
    /// A number (ints arrive as floats).
    Number(f64),
    /// A list of numbers.
    List(Vec<f64>),
}

impl std::fmt::Display for ConfigValue {
    /// As the user wrote it (`true`, `2.5`, `[1, 2]`), for error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Number(x) => write!(f, "{x}"),
            ConfigValue::List(v) => write!(f, "{v:?}"),
        }
    }
}

/// Constructor options as `(name, value)` pairs.
pub type Config = Vec<(String, ConfigValue)>;

/// One env's share of a batch step (see [`ProcessModel::step_batch`]).
pub struct StepItem<'a> {
    /// The env's model state.
    pub state: &'a mut [f64],
    /// The physical action.
    pub action: &'a [f64],
    /// Index of the step within the episode.
    pub t: u32,
    /// The env's RNG stream.
    pub rng: &'a mut Rng,
    /// The env's own parameter values (see [`ProcessModel::step_with`]); empty: the nominal ones.
    pub params: &'a [f64],
    /// Out: the reward.
    pub reward: f64,
}

/// The threads of one batch step, for a model that shares the step's work among them
/// (see [`ProcessModel::step_batch`]).
pub trait Team: Sync {
    /// Threads taking part, the calling thread included.
    fn size(&self) -> usize;

    /// Runs `work` once on every thread of the team, the calling thread included, and returns
    /// when every run has returned.
    fn run(&self, work: &(dyn Fn() + Sync));
}

/// How a batch steps a model's envs; every way gives the same results, bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Each env start to finish (action, [`ProcessModel::step`], observation, safety) before the
    /// next, a lane of envs per thread: one pass over each env's memory and no per-lane
    /// bookkeeping, for models whose step gains nothing from company.
    EnvByEnv,
    /// All the batch's stepping envs handed to [`ProcessModel::step_batch`] at once. Worth it
    /// when the cost of a step varies widely between envs (adaptive integration), so that
    /// threads pulling envs one by one from a shared queue balance better than fixed lanes.
    WholeBatch,
}

/// A process model: the physics of one environment.
pub trait ProcessModel: Send + Sync {
    /// The spec (variables, actions, constraints).
    fn spec(&self) -> &EnvSpec;

    /// Number of `f64` slots one env's state needs.
    fn state_len(&self) -> usize;

    /// Writes an initial state.
    fn reset(&self, state: &mut [f64], rng: &mut Rng);

    /// Advances one step under the physical action `action` and returns the reward.
    /// `t` is the index of this step within the episode (0 for the first step after reset).
    fn step(&self, state: &mut [f64], action: &[f64], t: u32, rng: &mut Rng) -> f64;

    /// [`ProcessModel::step`] with the env's own values of the spec's
    /// [`parameters`](EnvSpec::parameters) (`params`, in spec order and units) instead of the
    /// nominal ones: the same results, bit for bit, when `params` holds the nominal values. A
    /// model that declares parameters overrides it (and honours [`StepItem::params`] in its
    /// [`ProcessModel::step_batch`]); a batch calls it only for batches whose envs carry
    /// parameters (parameter drift faults).
    fn step_with(
        &self,
        state: &mut [f64],
        action: &[f64],
        t: u32,
        rng: &mut Rng,
        params: &[f64],
    ) -> f64 {
        let _ = params;
        self.step(state, action, t, rng)
    }

    /// How a batch hands this model its stepping envs (see [`Batching`]).
    fn batching(&self) -> Batching {
        Batching::EnvByEnv
    }

    /// Steps every stepping env of a batch, sharing the work among `team`; the same results as
    /// [`ProcessModel::step`] on each in turn. Called for [`Batching::WholeBatch`] models only.
    fn step_batch(&self, items: &mut [StepItem<'_>], team: &dyn Team) {
        let _ = team;
        for it in items {
            it.reward = if it.params.is_empty() {
                self.step(it.state, it.action, it.t, it.rng)
            } else {
                self.step_with(it.state, it.action, it.t, it.rng, it.params)
            };
        }
    }

    /// Writes the observation of `state` at episode step `t` (the number of steps taken so far).
    fn observe(&self, state: &[f64], t: u32, obs: &mut [f32]);

    /// Writes the current values of the spec's signals (states, the last physical action, derived
    /// quantities); the model keeps in `state` whatever it needs for them.
    fn signals(&self, state: &[f64], out: &mut [f64]);

    /// The episode's success criterion (see [`success`]); every registered model declares one.
    fn success(&self) -> Option<&success::Criterion> {
        None
    }

    /// Whether the episode that has just reached its horizon after `t` steps, ending in `state`,
    /// met the criterion of [`ProcessModel::success`]. Asked once per episode, never after an
    /// emergency shutdown; reads `state` only.
    fn succeeded(&self, state: &[f64], t: u32) -> bool {
        let _ = (state, t);
        false
    }
}

/// Looks a key up in a config, removing it so unknown keys can be reported afterwards.
pub(crate) fn take(config: &mut Config, key: &str) -> Option<ConfigValue> {
    let i = config.iter().position(|(k, _)| k == key)?;
    Some(config.remove(i).1)
}

/// A number option, checked finite and within `[lo, hi]`.
pub(crate) fn take_number(
    config: &mut Config,
    key: &str,
    default: f64,
    lo: f64,
    hi: f64,
) -> Result<f64, CoreError> {
    match take(config, key) {
        None => Ok(default),
        Some(ConfigValue::Number(x)) if x.is_finite() && (lo..=hi).contains(&x) => Ok(x),
        Some(ConfigValue::Number(x)) => Err(CoreError::config(
            key,
            format!("must be a finite number in [{lo}, {hi}], got {x}"),
        )),
        Some(other) => Err(CoreError::config(
            key,
            format!("must be a number, got {other}"),
        )),
    }
}

/// A boolean option.
pub(crate) fn take_bool(config: &mut Config, key: &str, default: bool) -> Result<bool, CoreError> {
    match take(config, key) {
        None => Ok(default),
        Some(ConfigValue::Bool(b)) => Ok(b),
        Some(other) => Err(CoreError::config(
            key,
            format!("must be true or false, got {other}"),
        )),
    }
}

/// Fails on any option the model did not consume.
pub(crate) fn reject_unknown(config: &Config, id: &str, known: &[&str]) -> Result<(), CoreError> {
    match config.first() {
        None => Ok(()),
        Some((k, _)) => Err(CoreError::config(
            k,
            format!(
                "is not an option of {id}; options are: {}",
                known.join(", ")
            ),
        )),
    }
}

/// Builds a boxed model of type `M` from options.
fn build<M: ProcessModel + 'static>(
    new: fn(&mut Config) -> Result<M, CoreError>,
    config: &mut Config,
) -> Result<Box<dyn ProcessModel>, CoreError> {
    Ok(Box::new(new(config)?))
}

/// One registered environment: its id and its constructor.
struct Entry {
    id: &'static str,
    make: fn(&mut Config) -> Result<Box<dyn ProcessModel>, CoreError>,
}

/// The registry, in catalogue order: one row per environment. Every other list of environments
/// (ids, the Python classes, the catalogue) is derived from it.
const REGISTRY: [Entry; 6] = [
    Entry {
        id: chemical_reactor::ID,
        make: |c| build(chemical_reactor::ChemicalReactor::new, c),
    },
    Entry {
        id: industrial_benchmark::ID,
        make: |c| build(industrial_benchmark::IndustrialBenchmark::new, c),
    },
    Entry {
        id: four_tank::ID,
        make: |c| build(four_tank::FourTank::new, c),
    },
    Entry {
        id: pipeline::ID,
        make: |c| build(pipeline::Pipeline::new, c),
    },
    Entry {
        id: power_grid::ID,
        make: |c| build(power_grid::PowerGrid::new, c),
    },
    Entry {
        id: hvac::ID,
        make: |c| build(hvac::Hvac::new, c),
    },
];

/// Ids of every registered environment, in catalogue order.
pub const IDS: [&str; REGISTRY.len()] = {
    let mut ids = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        ids[i] = REGISTRY[i].id;
        i += 1;
    }
    ids
};

/// Builds a model from its id and options.
pub fn make(id: &str, mut config: Config) -> Result<Box<dyn ProcessModel>, CoreError> {
    let id = id.strip_prefix("neorl_industrial/").unwrap_or(id);
    match REGISTRY.iter().find(|e| e.id == id) {
        Some(e) => (e.make)(&mut config),
        None => Err(CoreError::UnknownEnv {
            id: id.to_string(),
            known: IDS.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_registry_row_builds_the_model_its_id_names() {
        for (i, id) in IDS.iter().enumerate() {
            assert!(!IDS[..i].contains(id), "{id} registered twice");
            let model = make(id, Vec::new()).expect("default options are valid");
            assert_eq!(model.spec().id, *id);
            let prefixed =
                make(&format!("neorl_industrial/{id}"), Vec::new()).expect("prefixed id");
            assert_eq!(prefixed.spec().id, *id);
        }
        for id in IDS {
            let model = make(id, Vec::new()).expect("default options are valid");
            let c = model
                .success()
                .expect("every env declares its success criterion");
            assert!(!c.description.is_empty() && !c.description.contains('\n'));
            assert!(c.parameters.iter().all(|p| p.1.is_finite()), "{id}");
        }
        let err = make("Nope-v0", Vec::new())
            .err()
            .expect("unknown id refused");
        assert!(err.to_string().contains("Nope-v0") && err.to_string().contains(IDS[0]));
    }

    /// An episode's states and rewards under fixed actions, stepped with `params` (`None`: the
    /// plain step).
    fn episode(model: &dyn ProcessModel, params: Option<&[f64]>) -> Vec<u64> {
        let spec = model.spec();
        let (mut state, mut rng) = (vec![0.0; model.state_len()], Rng::from_seed(11));
        model.reset(&mut state, &mut rng);
        let mut phys = vec![0.0; spec.act_dim()];
        let mut out = Vec::new();
        for t in 0..spec.horizon.min(40) {
            let a: Vec<f64> = (0..spec.act_dim())
                .map(|i| -0.5 + 0.3 * ((t as f64) * 0.4 + i as f64).sin())
                .collect();
            spec.to_physical(&a, &mut phys);
            let r = match params {
                None => model.step(&mut state, &phys, t, &mut rng),
                Some(p) => model.step_with(&mut state, &phys, t, &mut rng, p),
            };
            out.extend(state.iter().map(|x| x.to_bits()));
            out.push(r.to_bits());
        }
        out
    }

    #[test]
    fn every_declared_parameter_is_honoured_and_its_nominal_value_changes_nothing() {
        let mut declared = 0;
        for id in IDS {
            let model = make(id, Vec::new()).expect("default options are valid");
            let params = &model.spec().parameters;
            let nominal: Vec<f64> = params.iter().map(|p| p.nominal).collect();
            let plain = episode(model.as_ref(), None);
            assert_eq!(episode(model.as_ref(), Some(&nominal)), plain, "{id}");
            for (i, p) in params.iter().enumerate() {
                assert!(
                    p.low > 0.0 && p.low < p.nominal && p.nominal < p.high,
                    "{id} {}",
                    p.name
                );
                let mut moved = nominal.clone();
                moved[i] = 0.5 * p.nominal;
                assert_ne!(
                    episode(model.as_ref(), Some(&moved)),
                    plain,
                    "{id} {}",
                    p.name
                );
                declared += 1;
            }
        }
        assert!(declared >= 4);
    }
}
