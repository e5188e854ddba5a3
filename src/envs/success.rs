//! What success means for an episode: each model's criterion as data (a one-line description and
//! its parameters, shown by the spec and the docs) and the bookkeeping the criteria share.
//!
//! A criterion is judged once, on the step that ends an episode at its horizon: an episode ended
//! by an emergency shutdown is never a success (the batch does not ask the model). A criterion
//! that looks back over the episode keeps what it needs in the model's own state, so snapshots,
//! pickling and determinism cover it like any other state variable; that memory never feeds back
//! into the dynamics, the reward or the observation.

/// One parameter of a success criterion: name, value and unit (`"1"`: dimensionless).
pub type Parameter = (&'static str, f64, &'static str);

/// A model's success criterion, as the spec shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    /// One line: what an episode must achieve.
    pub description: &'static str,
    /// The thresholds and windows the description names.
    pub parameters: &'static [Parameter],
}

impl Criterion {
    /// The value of the parameter `name` (NaN if there is none: a test catches the typo).
    pub fn parameter(&self, name: &str) -> f64 {
        self.parameters
            .iter()
            .find(|p| p.0 == name)
            .map_or(f64::NAN, |p| p.1)
    }
}

/// The first step index of the window of the last `window` steps of an episode of `horizon`
/// steps (0 when the episode is no longer than the window).
#[inline]
pub fn window_start(horizon: u32, window: u32) -> u32 {
    horizon.saturating_sub(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_last_steps_of_the_episode() {
        assert_eq!(window_start(60, 10), 50);
        assert_eq!(window_start(5, 10), 0);
        let c = Criterion {
            description: "",
            parameters: &[("band", 0.1, "m")],
        };
        assert_eq!(c.parameter("band"), 0.1);
        assert!(c.parameter("bnad").is_nan());
    }
}
