//! A vectorised environment: N envs stepped in parallel on a fixed pool of worker threads.
//!
//! Each worker owns a contiguous slice of the envs for its whole life (no env moves between
//! threads), and receives its slice of the actions over a crossbeam channel, so a step costs two
//! channel messages per worker. Results come back in env order.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::env::{Action, Env, EnvConfig, Observation, Step};
use crate::world::SimError;

enum Request {
    Reset(Vec<(usize, u64)>),
    Step(Vec<Action>),
}

enum Reply {
    Reset(Result<Vec<(usize, Observation)>, SimError>),
    Step(Result<Vec<Step>, SimError>),
}

struct Worker {
    first: usize,
    count: usize,
    tx: Sender<Request>,
    rx: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
}

/// N environments on a thread pool.
pub struct VecEnv {
    workers: Vec<Worker>,
    num_envs: usize,
}

fn worker_loop(mut envs: Vec<Env>, first: usize, rx: Receiver<Request>, tx: Sender<Reply>) {
    while let Ok(request) = rx.recv() {
        let reply = match request {
            Request::Reset(items) => {
                Reply::Reset(items.into_iter().map(|(i, seed)| envs[i - first].reset(seed).map(|o| (i, o))).collect())
            }
            Request::Step(actions) => {
                Reply::Step(envs.iter_mut().zip(actions.iter()).map(|(env, a)| env.step(a)).collect())
            }
        };
        if tx.send(reply).is_err() {
            return;
        }
    }
}

impl VecEnv {
    /// Creates `num_envs` envs with the same config on `threads` worker threads (0 = all cores).
    pub fn new(config: &EnvConfig, num_envs: usize, threads: usize) -> Result<VecEnv, SimError> {
        if num_envs == 0 {
            return Err(SimError::Config("a VecEnv needs at least one env".into()));
        }
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads }
            .min(num_envs);
        let mut workers = Vec::with_capacity(threads);
        let mut first = 0;
        for w in 0..threads {
            let count = num_envs / threads + usize::from(w < num_envs % threads);
            let envs = (0..count).map(|_| Env::new(config.clone())).collect::<Result<Vec<_>, _>>()?;
            let (req_tx, req_rx) = bounded(1);
            let (rep_tx, rep_rx) = bounded(1);
            let thread = std::thread::Builder::new()
                .name(format!("vec-env-{w}"))
                .spawn(move || worker_loop(envs, first, req_rx, rep_tx))
                .map_err(|e| SimError::Config(format!("cannot spawn env worker: {e}")))?;
            workers.push(Worker { first, count, tx: req_tx, rx: rep_rx, thread: Some(thread) });
            first += count;
        }
        Ok(VecEnv { workers, num_envs })
    }

    /// Number of envs.
    pub fn len(&self) -> usize {
        self.num_envs
    }

    /// Always false (a VecEnv has at least one env).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Resets env `i` with `seeds[i]` for all envs.
    pub fn reset_all(&mut self, seeds: &[u64]) -> Result<Vec<Observation>, SimError> {
        if seeds.len() != self.num_envs {
            return Err(SimError::Config(format!("{} seeds for {} envs", seeds.len(), self.num_envs)));
        }
        let items: Vec<(usize, u64)> = seeds.iter().copied().enumerate().collect();
        let mut out = self.reset_some(&items)?;
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, o)| o).collect())
    }

    /// Resets the listed envs, (index, seed); returns (index, observation) pairs.
    pub fn reset_some(&mut self, items: &[(usize, u64)]) -> Result<Vec<(usize, Observation)>, SimError> {
        if let Some((i, _)) = items.iter().find(|(i, _)| *i >= self.num_envs) {
            return Err(SimError::Config(format!("env index {i} out of range ({} envs)", self.num_envs)));
        }
        let mut asked = Vec::new();
        for (w, worker) in self.workers.iter().enumerate() {
            let mine: Vec<(usize, u64)> =
                items.iter().copied().filter(|(i, _)| *i >= worker.first && *i < worker.first + worker.count).collect();
            if !mine.is_empty() {
                worker.tx.send(Request::Reset(mine)).map_err(|_| dead_worker())?;
                asked.push(w);
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for w in asked {
            match self.workers[w].rx.recv().map_err(|_| dead_worker())? {
                Reply::Reset(r) => out.extend(r?),
                Reply::Step(_) => return Err(dead_worker()),
            }
        }
        Ok(out)
    }

    /// Steps every env with its action (`actions[i]` for env i); results in env order.
    pub fn step(&mut self, actions: &[Action]) -> Result<Vec<Step>, SimError> {
        if actions.len() != self.num_envs {
            return Err(SimError::Config(format!("{} actions for {} envs", actions.len(), self.num_envs)));
        }
        for worker in &self.workers {
            let slice = actions[worker.first..worker.first + worker.count].to_vec();
            worker.tx.send(Request::Step(slice)).map_err(|_| dead_worker())?;
        }
        let mut out = Vec::with_capacity(self.num_envs);
        for worker in &self.workers {
            match worker.rx.recv().map_err(|_| dead_worker())? {
                Reply::Step(r) => out.extend(r?),
                Reply::Reset(_) => return Err(dead_worker()),
            }
        }
        Ok(out)
    }
}

fn dead_worker() -> SimError {
    SimError::Config("an env worker thread stopped (it panicked; see the log)".into())
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Closing the request channel ends the worker loop.
            let (dummy, _) = bounded(0);
            drop(std::mem::replace(&mut worker.tx, dummy));
            if let Some(t) = worker.thread.take() {
                let _ = t.join();
            }
        }
    }
}
