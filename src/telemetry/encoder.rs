//! Scrapes encoded off the exporter's runtime thread, and shared when they coincide.
//!
//! Encoding the registry is the one costly thing a request does. Run on the runtime thread, a
//! flood of scrapes would queue health probes behind it; so each (format, scope) is encoded on the
//! blocking pool, one encoding at a time, and every request that arrived while one was running
//! shares the next one. That next encoding starts after they arrived: no request gets a snapshot
//! older than itself, and N concurrent scrapes cost one encoding, not N.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use tokio::sync::oneshot;

use super::registry::{Format, Registry, Scope};

type Reply = oneshot::Sender<Result<Bytes, String>>;

#[derive(Debug, Default)]
struct Queue {
    running: bool,
    waiting: Vec<Reply>,
}

/// The encodings in flight, by format and scope.
#[derive(Debug, Default)]
pub struct Encoder {
    queues: Mutex<HashMap<(Format, Scope), Queue>>,
}

impl Encoder {
    /// The exposition of `registry`, encoded after this call began.
    pub async fn encode(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        format: Format,
        scope: Scope,
    ) -> Result<Bytes, String> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let q = queues.entry((format, scope)).or_default();
            q.waiting.push(tx);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let (me, reg) = (self.clone(), registry.clone());
            drop(tokio::task::spawn_blocking(move || {
                me.drain(&reg, format, scope)
            }));
        }
        rx.await
            .unwrap_or_else(|_| Err("the encoder stopped".to_string()))
    }

    /// Encodes for everyone waiting, again while anyone is.
    fn drain(&self, registry: &Registry, format: Format, scope: Scope) {
        loop {
            let waiting = {
                let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
                let q = queues.entry((format, scope)).or_default();
                if q.waiting.is_empty() {
                    q.running = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let out = registry
                .encode(format, scope)
                .map(Bytes::from)
                .map_err(|e| e.to_string());
            for w in waiting {
                let _ = w.send(out.clone());
            }
        }
    }
}
