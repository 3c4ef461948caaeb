//! Reproducible random numbers inside the backend: weight initialisation and dropout masks.
//!
//! burn's CPU backend keeps one random number generator for the whole process: `B::seed` sets
//! it, and every random tensor (an initialiser, a dropout mask) draws from it. Two things made
//! training runs with the same seed differ:
//! - two trainings in one process (the test harness runs tests on parallel threads; a program
//!   may train several models at once) drew from the same generator in an interleaved,
//!   timing-dependent order, so each got other initial weights and other dropout masks;
//! - the generator was seeded once per run, so the dropout masks of step k depended on every
//!   random draw before it: a resumed run (whose initialisation draws differ) saw other masks
//!   than an uninterrupted one.
//!
//! [`seeded`] fixes both: it takes the generator for the calling thread alone (a process-wide
//! lock, held until the returned guard drops) and seeds it; training loops take it once for the
//! initialisation (run seed) and once per update (seed [`step_seed`] of the run seed and the
//! step), so the masks of step k are a function of (seed, k) only. Every other draw must take
//! it too, or it could land inside another thread's seeded section: the project's model
//! constructors draw their initial weights at once, holding it ([`initialised`]; burn would
//! draw each lazily, at its first use). Everything else in a CPU
//! update is deterministic on one machine (fixed reduction orders, batches drawn from a
//! (seed, step) generator), so the same seed and data give the same weights bit for bit.

use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::ThreadId;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::{Backend, Tensor};

/// Which thread holds the backend's generator, and how many of its guards are alive.
struct Holder {
    thread: Option<ThreadId>,
    guards: usize,
}

static HOLDER: Mutex<Holder> = Mutex::new(Holder { thread: None, guards: 0 });
static RELEASED: Condvar = Condvar::new();

/// The backend's generator reserved for this thread; released when the last guard of the thread
/// drops. A thread may take it again while holding it (a model constructor inside a training's
/// seeded section).
#[must_use = "the generator is only reserved while the guard lives"]
pub struct SeededBackend {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for SeededBackend {
    fn drop(&mut self) {
        let mut h = HOLDER.lock().unwrap_or_else(PoisonError::into_inner);
        h.guards -= 1;
        if h.guards == 0 {
            h.thread = None;
            RELEASED.notify_all();
        }
    }
}

/// Reserves the backend's generator for this thread (waiting while another thread holds it),
/// without seeding it: for random draws whose values do not matter to reproducibility but must
/// not disturb a seeded section of another thread, such as the initial weights of a model
/// about to load a checkpoint ([`initialised`] takes it).
pub fn exclusive() -> SeededBackend {
    let me = std::thread::current().id();
    // The lock only orders users: a panic while holding it leaves nothing half-written.
    let mut h = HOLDER.lock().unwrap_or_else(PoisonError::into_inner);
    while h.thread.is_some_and(|t| t != me) {
        h = RELEASED.wait(h).unwrap_or_else(PoisonError::into_inner);
    }
    h.thread = Some(me);
    h.guards += 1;
    SeededBackend { _not_send: std::marker::PhantomData }
}

/// Touches every parameter: burn draws a parameter's initial value when it is first used.
struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// `module` with every initial weight drawn now, holding the backend's generator ([`exclusive`]).
/// burn draws a parameter's initial value lazily, when it is first used, which would put the
/// draws wherever that happens (in another thread's seeded section, in a timing-dependent
/// order); every model constructor of the project ends with this instead.
pub fn initialised<B: Backend, M: Module<B>>(module: M) -> M {
    let _rng = exclusive();
    module.visit(&mut Materialize);
    module
}

/// Reserves the backend's generator for this thread, as [`exclusive`], and seeds it with `seed`.
pub fn seeded<B: Backend>(device: &B::Device, seed: u64) -> SeededBackend {
    let guard = exclusive();
    B::seed(device, seed);
    guard
}

/// The backend seed of update `step` of a run with `seed` (a SplitMix64 mix of the two, so
/// neighbouring steps and seeds get unrelated generators).
pub fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed.wrapping_add(step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;
    use burn::tensor::{Distribution, Tensor};

    fn draw(seed: u64) -> Vec<f32> {
        let device = Default::default();
        let _rng = seeded::<Cpu>(&device, seed);
        Tensor::<Cpu, 1>::random([64], Distribution::Default, &device).into_data().to_vec::<f32>().unwrap_or_default()
    }

    #[test]
    fn a_seeded_section_draws_the_same_numbers_whatever_other_threads_do() {
        let expected = draw(7);
        // Other threads drawing at the same time (as parallel tests do: seeded, or building
        // models) change nothing.
        let noise = std::thread::spawn(|| {
            for k in 0..200 {
                draw(k);
                let _rng = exclusive();
                let _ = Tensor::<Cpu, 1>::random([8], Distribution::Default, &Default::default());
            }
        });
        for _ in 0..200 {
            assert_eq!(draw(7), expected);
        }
        noise.join().expect("noise thread");
        assert_ne!(draw(8), expected, "another seed, other numbers");
        // Re-entrant: a constructor's guard inside a seeded section neither waits nor reseeds.
        let device = Default::default();
        let _outer = seeded::<Cpu>(&device, 7);
        let first = {
            let _inner = exclusive();
            Tensor::<Cpu, 1>::random([64], Distribution::Default, &device)
                .into_data()
                .to_vec::<f32>()
                .unwrap_or_default()
        };
        assert_eq!(first, expected);
        assert_ne!(step_seed(1, 0), step_seed(1, 1));
        assert_ne!(step_seed(1, 0), step_seed(2, 0));
    }
}
