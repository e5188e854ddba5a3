//! The service's own health signals: `errors_total{component,kind}` and the depth of its internal
//! queues (`queue_depth{queue}`, `queue_capacity{queue}`).
//!
//! Every known `(component, kind)` pair and every queue is exported at 0 from the registry's start,
//! so `rate()` sees the first error. Components count their own errors: the batch its refused
//! calls, the exporter its failed connections, the audit trail its lost writes, the Pushgateway
//! client its failed pushes, the serving loop (Python) its policy errors and failed reloads.

use std::sync::Arc;

use super::dynamic::{AnyChild, MetricFamily};
use super::types::{CounterF, GaugeF};

/// The known `(component, kind)` pairs of `errors_total`, created at 0 with the registry.
pub const ERROR_KINDS: [(&str, &str); 15] = [
    ("env", "refused_input"),
    ("env", "refused_call"),
    ("policy", "exception"),
    ("policy", "invalid_action"),
    ("serving", "reload"),
    ("exporter", "accept"),
    ("exporter", "connection"),
    ("exporter", "bad_request"),
    ("exporter", "tls"),
    ("exporter", "auth"),
    ("exporter", "overload"),
    ("audit", "write"),
    ("audit", "dropped"),
    ("push", "connect"),
    ("push", "http"),
];

/// An internal queue whose depth is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Audit-trail batches queued and not yet written.
    Audit,
    /// Exporter events waiting for a Python thread to log them.
    Log,
    /// HTTP connections the exporter is serving.
    ExporterConnections,
    /// Fleet tasks submitted and not yet finished.
    FleetTasks,
}

impl Queue {
    /// Every queue, in label order.
    pub const ALL: [Queue; 4] = [
        Queue::Audit,
        Queue::Log,
        Queue::ExporterConnections,
        Queue::FleetTasks,
    ];

    /// The `queue` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Audit => "audit",
            Queue::Log => "log",
            Queue::ExporterConnections => "exporter_connections",
            Queue::FleetTasks => "fleet_tasks",
        }
    }

    /// Parses a label value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == s)
    }
}

/// Handles on `errors_total` and the queue gauges of one registry.
#[derive(Debug)]
pub struct Ops {
    errors: Arc<MetricFamily>,
    depth: [GaugeF; 4],
    capacity: [GaugeF; 4],
}

fn gauge(f: &MetricFamily, q: Queue) -> GaugeF {
    match f.child(&[q.as_str()]) {
        Ok((AnyChild::Gauge(g), _)) => g,
        _ => GaugeF::default(),
    }
}

impl Ops {
    /// The handles, with every known series created at 0.
    pub fn new(errors: Arc<MetricFamily>, depth: &MetricFamily, capacity: &MetricFamily) -> Self {
        for (c, k) in ERROR_KINDS {
            let _ = errors.child(&[c, k]);
        }
        Self {
            errors,
            depth: Queue::ALL.map(|q| gauge(depth, q)),
            capacity: Queue::ALL.map(|q| gauge(capacity, q)),
        }
    }

    /// The `errors_total` series of `component` and `kind` (label sets beyond the family's bound
    /// fold into `other`, as every family's do).
    pub fn error_counter(&self, component: &str, kind: &str) -> CounterF {
        match self.errors.child(&[component, kind]) {
            Ok((AnyChild::Counter(c), _)) => c,
            _ => CounterF::default(),
        }
    }

    /// Counts `n` errors of `component` and `kind`.
    pub fn error(&self, component: &str, kind: &str, n: u64) {
        if n > 0 {
            self.error_counter(component, kind).inc_by(n as f64);
        }
    }

    /// Sets a queue's depth and capacity (0: unbounded).
    pub fn set_queue(&self, q: Queue, depth: usize, capacity: usize) {
        let i = q as usize;
        self.depth[i].set(depth as f64);
        self.capacity[i].set(capacity as f64);
    }

    /// Changes a queue's depth by `delta` (a connection opened or closed).
    pub fn add_to_queue(&self, q: Queue, delta: i64) {
        let g = &self.depth[q as usize];
        if delta >= 0 {
            g.inc_by(delta as f64);
        } else {
            g.dec_by(-delta as f64);
        }
    }

    /// A queue's depth and capacity gauges.
    pub fn queue(&self, q: Queue) -> (GaugeF, GaugeF) {
        let i = q as usize;
        (self.depth[i].clone(), self.capacity[i].clone())
    }

    /// Sets a queue's capacity only.
    pub fn set_capacity(&self, q: Queue, capacity: usize) {
        self.capacity[q as usize].set(capacity as f64);
    }
}
