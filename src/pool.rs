//! Thread pools that survive `fork`.
//!
//! A child process starts with only the thread that called `fork`: a pool built before the fork
//! has no workers there, and work handed to it would wait forever (Gymnasium's `AsyncVectorEnv`
//! forks by default on Linux). Each pool remembers the process it was built in and is built anew
//! in any other.

use std::sync::{Arc, Mutex, OnceLock};

use rayon::ThreadPool;

use crate::errors::CoreError;

/// A rayon pool of a fixed size (`None`: rayon's default, one thread per core), built lazily per
/// process.
#[derive(Debug)]
pub struct Pool {
    threads: Option<usize>,
    built: Mutex<Option<(u32, Arc<ThreadPool>)>>,
}

impl Pool {
    /// A pool of `threads` threads (at least 1), or rayon's default size.
    pub fn new(threads: Option<usize>) -> Result<Self, CoreError> {
        if threads == Some(0) {
            return Err(CoreError::config("num_threads", "must be at least 1"));
        }
        let pool = Self {
            threads,
            built: Mutex::new(None),
        };
        pool.get()
            .map_err(|e| CoreError::config("num_threads", e.to_string()))?;
        Ok(pool)
    }

    /// The pool shared by every batch that did not ask for threads of its own.
    pub fn shared() -> &'static Pool {
        static SHARED: OnceLock<Pool> = OnceLock::new();
        SHARED.get_or_init(|| Pool {
            threads: None,
            built: Mutex::new(None),
        })
    }

    /// The pool of this process (built on first use here).
    pub fn get(&self) -> Result<Arc<ThreadPool>, rayon::ThreadPoolBuildError> {
        let pid = std::process::id();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((owner, pool)) = built.as_ref() {
            if *owner == pid {
                return Ok(pool.clone());
            }
        }
        if let Some(stale) = built.take() {
            // Built before a fork: never dropped here, since a lock its (absent) workers held
            // at the fork stays held, and dropping could wait on it.
            std::mem::forget(stale);
        }
        let mut b = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("neorl-worker-{i}"));
        if let Some(k) = self.threads {
            b = b.num_threads(k);
        }
        let pool = Arc::new(b.build()?);
        *built = Some((pid, pool.clone()));
        Ok(pool)
    }

    /// Threads of this process's pool (1 if it cannot be built: the work then runs inline).
    pub fn num_threads(&self) -> usize {
        self.get().map_or(1, |p| p.current_num_threads())
    }
}
