//! Cutting a batch into lanes of consecutive envs, and the lanes' views of the outputs.

use super::outputs::{ColumnsMut, Readings, Row};
use super::slices::{take, Slices};
use crate::rng::Rng;
use crate::safety::{AlarmState, Outputs, SafetyEvent};

/// Per-env bookkeeping besides the model state.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) rng: Rng,
    /// Steps taken in the current episode.
    pub(super) elapsed: u32,
    /// The episode ended at the last step.
    pub(super) done: bool,
    /// The env has been reset at least once.
    pub(super) started: bool,
    /// Episodes started so far.
    pub(super) episode: u64,
    /// Return of the current episode so far.
    pub(super) ret: f64,
}

impl crate::step::Episodes for Vec<Slot> {
    fn started(&self, i: usize) -> u64 {
        self.get(i).map_or(0, |s| s.episode)
    }
}

/// A lane's part of a [`Readings`] (constraint-major): per constraint, the lane's envs.
#[derive(Default)]
pub(super) struct ReadingColumns<'a> {
    pub(super) values: Slices<'a, f64>,
    pub(super) margins: Slices<'a, f64>,
    pub(super) active: Slices<'a, bool>,
}

impl<'a> ReadingColumns<'a> {
    /// No columns (a single env's readings are written in place: one env's row is its column).
    pub(super) fn none() -> Self {
        Self::default()
    }

    /// The columns of `r`: `k` constraints of `n` envs each.
    pub(super) fn of(r: &'a mut Readings, n: usize, k: usize) -> Self {
        fn columns<T>(mut all: &mut [T], n: usize, k: usize) -> Slices<'_, T> {
            Slices::collect((0..k).map(|_| take(&mut all, n)))
        }
        Self {
            values: columns(&mut r.values, n, k),
            margins: columns(&mut r.margins, n, k),
            active: columns(&mut r.active, n, k),
        }
    }

    /// Splits off the next `len` envs.
    pub(super) fn take(&mut self, len: usize) -> ReadingColumns<'a> {
        fn part<'a, T>(cols: &mut Slices<'a, T>, len: usize) -> Slices<'a, T> {
            Slices::collect(cols.as_mut().iter_mut().map(|c| take(c, len)))
        }
        ReadingColumns {
            values: part(&mut self.values, len),
            margins: part(&mut self.margins, len),
            active: part(&mut self.active, len),
        }
    }

    /// Copies a lane's readings, env-major (`k` per env), into the columns.
    pub(super) fn fill(&mut self, rows: &ReadingsMut<'_>) {
        fn transpose<T: Copy>(cols: &mut [&mut [T]], rows: &[T]) {
            let k = cols.len();
            if k == 0 {
                return;
            }
            for (c, col) in cols.iter_mut().enumerate() {
                for (x, row) in col.iter_mut().zip(rows.chunks_exact(k)) {
                    *x = row[c];
                }
            }
        }
        transpose(self.values.as_mut(), rows.values);
        transpose(self.margins.as_mut(), rows.margins);
        transpose(self.active.as_mut(), rows.active);
    }

    /// Writes env `j`'s readings (one env's [`Outputs`]).
    pub(super) fn store(&mut self, j: usize, row: Outputs<'_>) {
        for (col, &x) in self.values.as_mut().iter_mut().zip(row.values.iter()) {
            col[j] = x;
        }
        for (col, &x) in self.margins.as_mut().iter_mut().zip(row.margins.iter()) {
            col[j] = x;
        }
        for (col, &x) in self.active.as_mut().iter_mut().zip(row.active.iter()) {
            col[j] = x;
        }
    }
}

/// Env-major readings (`k` per env) of a lane, as the checker writes them: a lane's working
/// copy, turned into [`ReadingColumns`] when the lane is done.
pub(super) struct ReadingsMut<'a> {
    pub(super) values: &'a mut [f64],
    pub(super) margins: &'a mut [f64],
    pub(super) active: &'a mut [bool],
}

impl<'a> ReadingsMut<'a> {
    pub(super) fn of(r: &'a mut Readings) -> Self {
        Self {
            values: &mut r.values,
            margins: &mut r.margins,
            active: &mut r.active,
        }
    }

    pub(super) fn take(&mut self, len: usize) -> ReadingsMut<'a> {
        ReadingsMut {
            values: take(&mut self.values, len),
            margins: take(&mut self.margins, len),
            active: take(&mut self.active, len),
        }
    }

    pub(super) fn outputs(&mut self, j: usize, k: usize) -> Outputs<'_> {
        Outputs {
            values: &mut self.values[j * k..(j + 1) * k],
            margins: &mut self.margins[j * k..(j + 1) * k],
            active: &mut self.active[j * k..(j + 1) * k],
        }
    }
}

/// What a batch reuses from step to step: the lanes' working per-env results and readings.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub(super) results: Vec<Row>,
    pub(super) readings: Readings,
}

impl Scratch {
    /// Sized for `n` envs and `k` constraints (every entry is written before it is read).
    pub(super) fn fit(&mut self, n: usize, k: usize) -> &mut Self {
        self.results.resize(n, Row::default());
        self.readings.values.resize(n * k, 0.0);
        self.readings.margins.resize(n * k, 0.0);
        self.readings.active.resize(n * k, false);
        self
    }
}

/// The envs `first..first + slots.len()` and their state and common outputs.
pub(super) struct Lane<'a> {
    pub(super) first: usize,
    pub(super) od: usize,
    pub(super) states: &'a mut [f64],
    pub(super) slots: &'a mut [Slot],
    pub(super) alarms: &'a mut [AlarmState],
    pub(super) obs: &'a mut [f32],
    /// Working readings, env-major.
    pub(super) readings: ReadingsMut<'a>,
    /// Where the readings go when the lane is done.
    pub(super) out: ReadingColumns<'a>,
}

impl Lane<'_> {
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Hands the lane's readings over to the output columns.
    pub(super) fn commit(&mut self) {
        self.out.fill(&self.readings);
    }
}

/// Step-only inputs and outputs of a lane.
pub(super) struct StepLane<'a> {
    pub(super) actions: &'a [f64],
    /// Working per-env results.
    pub(super) results: &'a mut [Row],
    /// Where the results go when the lane is done.
    pub(super) cols: ColumnsMut<'a>,
    pub(super) phys: &'a mut [f64],
    pub(super) final_obs: &'a mut [f32],
    pub(super) final_readings: ReadingColumns<'a>,
}

impl StepLane<'_> {
    /// Hands the lane's results over to the output columns.
    pub(super) fn commit(&mut self) {
        self.cols.fill(self.results);
    }
}

pub(super) struct Lanes;

impl Lanes {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn split<'a>(
        lane: usize,
        mut states: &'a mut [f64],
        mut slots: &'a mut [Slot],
        mut alarms: &'a mut [AlarmState],
        mut obs: &'a mut [f32],
        (work, out): (&'a mut Readings, &'a mut Readings),
        (stride, od, k): (usize, usize, usize),
    ) -> Vec<Lane<'a>> {
        let n = slots.len();
        let mut w = ReadingsMut::of(work);
        let mut r = ReadingColumns::of(out, n, k);
        let mut lanes = Vec::with_capacity(n.div_ceil(lane));
        let mut first = 0;
        while first < n {
            let m = lane.min(n - first);
            lanes.push(Lane {
                first,
                od,
                states: take(&mut states, m * stride),
                slots: take(&mut slots, m),
                alarms: take(&mut alarms, m * k),
                obs: take(&mut obs, m * od),
                readings: w.take(m * k),
                out: r.take(m),
            });
            first += m;
        }
        lanes
    }
}

/// What the first pass over a lane leaves for the last: per env, `None` (reset by NEXT_STEP
/// autoreset) or its clipped-element count and whether the shield acted, and the events raised,
/// `counts[j]` of them by env `j`.
pub(super) struct Prepared {
    pub(super) pre: Vec<Option<(u32, bool)>>,
    pub(super) counts: Vec<usize>,
    pub(super) events: Vec<SafetyEvent>,
}

/// Per env of a lane, the reward of its step (taken in order from `stepped`), 0 where it did
/// not step.
pub(super) fn spread(
    pre: &[Option<(u32, bool)>],
    stepped: &mut impl Iterator<Item = f64>,
) -> Vec<f64> {
    pre.iter()
        .map(|p| p.and_then(|_| stepped.next()).unwrap_or(0.0))
        .collect()
}
