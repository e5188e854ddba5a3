//! `faults_active{env,fault}`: how many envs of the live batches have each injected fault active.

use super::types::GaugeF;

/// One batch's contribution to its `faults_active` series: a series may be shared by batches of
/// the same env and fault name (the gauge is the sum over live batches); the contribution is
/// withdrawn when the batch goes.
#[derive(Debug)]
pub struct FaultGauges {
    series: Vec<GaugeF>,
    contribution: Vec<f64>,
}

impl FaultGauges {
    /// A batch's handle on `series` (one per fault, in the batch's fault order), contributing 0.
    pub fn new(series: Vec<GaugeF>) -> Self {
        let contribution = vec![0.0; series.len()];
        Self {
            series,
            contribution,
        }
    }

    /// Sets the batch's counts of envs with each fault active (once per batch step).
    pub fn set(&mut self, counts: &[u64]) {
        for ((g, c), &n) in self.series.iter().zip(&mut self.contribution).zip(counts) {
            let n = n as f64;
            if n != *c {
                g.inc_by(n - *c);
                *c = n;
            }
        }
    }
}

impl Drop for FaultGauges {
    fn drop(&mut self) {
        for (g, c) in self.series.iter().zip(&self.contribution) {
            g.dec_by(*c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_add_up_and_a_dropped_batch_withdraws_its_share() {
        let g = GaugeF::default();
        let mut a = FaultGauges::new(vec![g.clone()]);
        let mut b = FaultGauges::new(vec![g.clone()]);
        a.set(&[3]);
        b.set(&[4]);
        assert_eq!(g.get(), 7.0);
        a.set(&[1]);
        assert_eq!(g.get(), 5.0);
        drop(b);
        assert_eq!(g.get(), 1.0);
        drop(a);
        assert_eq!(g.get(), 0.0);
    }
}
