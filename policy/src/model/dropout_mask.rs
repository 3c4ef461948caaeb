//! Dropout for the fused LibTorch layers (`model::fused_libtorch`) with a mask drawn in parallel
//! from a counter-based generator.
//!
//! Dropout (Srivastava et al. 2014, eq. 2 with the "inverted" scaling every framework uses) keeps
//! each element with probability `1 − p` and scales survivors by `1/(1 − p)`, so the expected
//! output equals the input. On CPUs where LibTorch does not use MKL's generator (this project's
//! AMD reference machine among them), its dropout draws the Bernoulli mask element by element on
//! one thread through its Mersenne-Twister generator (`bernoulli_` is then a serial kernel):
//! `perf` put 9.6% of a vision BC update there (8.7% in PyTorch's process, which does the same),
//! with the other core waiting. Here element `i`'s coin is a SplitMix64 output (Steele, Lea &
//! Flood 2014, "Fast splittable pseudorandom number generators", the `mix64` finaliser of a Weyl
//! sequence) of `seed + (i + 1)·γ`: independent of every other element, so the mask is filled by
//! every compute thread at once and is the same whatever the thread count. The call's 63-bit
//! `seed` is drawn from LibTorch's generator, which burn seeds per training step: training stays
//! reproducible bit for bit.
//!
//! An element survives when the low 32 bits of its output are at least `round(p · 2³²)`, so the
//! drop probability is `p` to within 2⁻³³.

use tch::{Device, Kind, Tensor};

/// The Weyl increment of SplitMix64 (2⁶⁴ / φ, odd).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
/// Elements per thread below which fewer threads fill the mask (a thread's start costs about as
/// much as filling this many).
const PER_THREAD_MIN: usize = 1 << 15;

/// SplitMix64's output for counter `i` of the stream `seed`.
fn mix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `mask` (elements `offset..offset + mask.len()` of the whole mask) with `0` (dropped)
/// or `scale` (kept).
fn fill(mask: &mut [f32], seed: u64, offset: usize, threshold: u64, scale: f32) {
    for (k, m) in mask.iter_mut().enumerate() {
        let bits = mix64(seed, (offset + k) as u64) & 0xffff_ffff;
        *m = if bits >= threshold { scale } else { 0.0 };
    }
}

/// Fills `out` with the mask for drop probability `p` (`0 < p < 1`) and stream `seed`: `0` or
/// `1/(1 − p)` per element, by `threads` threads.
pub fn fill_mask(out: &mut [f32], p: f64, seed: u64, threads: usize) {
    let threshold = (p * 4_294_967_296.0).round() as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let threads = threads.min(out.len() / PER_THREAD_MIN).max(1);
    if threads == 1 {
        fill(out, seed, 0, threshold, scale);
        return;
    }
    let chunk = out.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (c, part) in out.chunks_mut(chunk).enumerate() {
            scope.spawn(move || fill(part, seed, c * chunk, threshold, scale));
        }
    });
}

/// [`fill_mask`] into a new vector of `numel` elements.
pub fn mask(numel: usize, p: f64, seed: u64, threads: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; numel];
    fill_mask(&mut out, p, seed, threads);
    out
}

/// Dropout of `x` (a CPU float tensor) with probability `p` in training: `x ⊙ mask`, the mask
/// from [`fill_mask`] with a seed drawn from LibTorch's generator; differentiable by LibTorch's
/// autograd (the gradient is `g ⊙ mask`). `p ≤ 0` returns `x`; `p ≥ 1` zeros (where burn's
/// `Dropout` would give NaN, 0 · ∞). A tensor off the CPU, or not `f32`, takes LibTorch's own
/// dropout.
pub fn dropout(x: &Tensor, p: f64) -> Tensor {
    if p <= 0.0 || x.numel() == 0 {
        return x.shallow_clone();
    }
    if p >= 1.0 {
        return x.zeros_like() * x;
    }
    if x.device() != Device::Cpu || x.kind() != Kind::Float {
        return x.dropout(p, true);
    }
    let seed = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1);
    let m = Tensor::empty(x.size(), (Kind::Float, Device::Cpu));
    let numel = m.numel();
    // SAFETY: `m` is a new contiguous CPU float tensor of `numel` > 0 elements (empty tensors
    // returned above), so its data pointer is valid and aligned; nothing else references it, and
    // the slice lives only while it is filled.
    let values = unsafe { std::slice::from_raw_parts_mut(m.data_ptr().cast::<f32>(), numel) };
    fill_mask(values, p, seed, threads);
    x * m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_drops_p_scales_survivors_and_is_the_same_on_any_thread_count() {
        let n = 1 << 20;
        let one = mask(n, 0.1, 42, 1);
        let two = mask(n, 0.1, 42, 2);
        let five = mask(n, 0.1, 42, 5);
        assert!(one == two && one == five, "the mask depends on the thread count");
        let dropped = one.iter().filter(|v| **v == 0.0).count() as f64 / n as f64;
        // Binomial(2²⁰, 0.1): standard deviation 0.0003; 5σ.
        assert!((dropped - 0.1).abs() < 0.0015, "dropped fraction {dropped}");
        assert!(one.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.9).abs() < 1e-6), "survivors are scaled by 1/(1 − p)");
        let other = mask(n, 0.1, 43, 2);
        let same = one.iter().zip(&other).filter(|(a, b)| a == b).count() as f64 / n as f64;
        // Two independent masks agree where both keep or both drop: 0.9² + 0.1² = 0.82.
        assert!((same - 0.82).abs() < 0.003, "masks of two seeds agree on {same}");
        // Neighbouring elements are independent: P(both dropped) = p².
        let pairs = one.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64 / (n - 1) as f64;
        assert!((pairs - 0.01).abs() < 0.0006, "adjacent drops {pairs}");
        let half = mask(n, 0.5, 7, 2).iter().filter(|v| **v == 0.0).count() as f64 / n as f64;
        assert!((half - 0.5).abs() < 0.0025, "p = 0.5 drops {half}");
    }

    #[test]
    fn dropout_is_reproducible_from_libtorchs_generator_and_its_gradient_is_the_mask() {
        tch::manual_seed(3);
        let x = Tensor::randn([64, 300], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        tch::manual_seed(11);
        let y = dropout(&x, 0.25);
        tch::manual_seed(11);
        let again = dropout(&x, 0.25);
        assert!(y.equal(&again), "same generator state, same mask");
        let other = dropout(&x, 0.25);
        assert!(!y.equal(&other), "the generator moved on, another mask");
        y.sum(Kind::Float).backward();
        let kept = y.ne(0.0).to_kind(Kind::Float) / 0.75;
        let grad = x.grad();
        assert!(grad.allclose(&kept, 1e-6, 1e-6, false), "the gradient is the mask");
        assert!(dropout(&x, 0.0).equal(&x));
        assert!(dropout(&x, 1.0).equal(&x.zeros_like()), "p = 1 drops everything");
        let empty = Tensor::zeros([0, 4], (Kind::Float, Device::Cpu));
        assert_eq!(dropout(&empty, 0.5).size(), vec![0, 4]);
    }
}
