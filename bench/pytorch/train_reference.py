#!/usr/bin/env python3
"""PyTorch reference for `armstack bench train`: the same models, sizes, losses and optimisers,
timed the same way (warm-up, then timed optimiser updates), printing the same rows as a table
and JSON.

Armstack does not use PyTorch's Python API (its build links the LibTorch inside the wheel); this
script is optional. The usual way to run it is through Armstack, which runs it after each of its
own rounds of each row, with the same threads, steps and warm-up, and reports the median ratio:

    armstack bench train --threads 2 --steps 50 --rounds 3 --reference

It also runs alone, and `armstack bench train --compare` computes the ratio against its JSON:

    python3 bench/pytorch/train_reference.py --threads 2 --json torch.json
    armstack bench train --threads 2 --compare torch.json

`--inference N` times one-chunk inference instead (batch 1, eval mode, no autograd; the state-only
policy and the vision policy with two cameras at `--image-size` px), the reference for
`armstack bench inference --iterations N`.

Rows (Armstack's defaults; the networks and `Sizes` are in reference_models.py):
  bc_state        state-only chunk policy (d 64, 2 layers, 2 heads, ff 128, 20 tokens), BC, batch 128
  bc_vision_64    vision chunk policy (ResNet 16/32/64 per camera, 2 cameras, d 256, 4 layers,
                  8 heads, ff 1024, dropout 0.1, 55 tokens), BC, batch 16, 64 px
  bc_vision_128   the same at 128 px
  co_rft_critic   CO-RFT critic update: 10 critics 3x256 LayerNorm, 1 + 3x10 chunks per state
                  (data + Cal-QL), TD + conservative loss, target EMA, batch 256
  expo_update     EXPO: one critic update (target from the on-the-fly policy: 8 flow samples x
                  10 Euler steps + edits, scored by 2 target critics) then one actor update
                  (flow imitation of the base policy, edit policy, temperature), batch 256
  icvf            ICVF: ResNet encoder at 64 px + 2 multilinear heads of 256, 3 frames per sample
                  (s, g, z) through the online network and 4 (s, s', g, z) through the EMA target,
                  expectile TD loss, batch 64
  idm             inverse dynamics MLP 36 -> 2 x 1024 (dropout 0.1) -> tanh-Gaussian, NLL, batch 1024

Differences from Armstack, none of which changes the amount of work:
- batches are random tensors of the recorded data's shapes (Armstack samples real recorded
  batches; the values do not change the cost);
- the transformer is torch's `nn.TransformerEncoderLayer` (pre-norm, GELU, dropout), which drops
  out attention weights after the softmax where burn drops out the scores before it;
- initialisation is torch's default (burn's differs; the cost is the same).

Peak memory is measured as in Armstack: Linux's resident high-water mark (VmHWM), reset per row
through /proc/self/clear_refs.
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn

from reference_models import (
    ChunkCritic,
    ChunkPolicy,
    EditPolicy,
    FlowPolicy,
    Icvf,
    Sizes,
    chunk_mse,
)

ROWS = ["bc_state", "bc_vision_64", "bc_vision_128", "co_rft_critic", "expo_update", "icvf", "idm"]


# ---------------------------------------------------------------- shared pieces


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=Sizes.adam_eps)


def descend(opt, loss):
    """One optimiser step on `loss`."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@torch.no_grad()
def soft_update(target, online, tau):
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(1.0 - tau).add_(o, alpha=tau)


def policy_batch(policy, n):
    """A random batch shaped like Armstack's: observations, chunk targets, mask, TD quantities."""
    s = Sizes
    words = torch.randint(2, s.vocab, (n, policy.max_words))
    words[:, 5:] = 0  # "pick up the red cube": five words, the rest padding
    tokens = policy.obs_tokens + s.horizon
    pad = torch.zeros(n, tokens, dtype=torch.bool)
    word_start = 1 + (0 if policy.vision else 1)
    pad[:, word_start : word_start + policy.max_words] = words == 0

    def obs():
        o = {"state": torch.randn(n, s.state_dim), "words": words, "pad_mask": pad}
        if policy.vision:
            o["images"] = torch.randn(n * policy.cameras, 3, policy.image_size, policy.image_size)
        else:
            o["env_state"] = torch.randn(n, s.env_state_dim)
        return o

    return {
        "obs": obs(),
        "next_obs": obs(),
        "actions": torch.rand(n, s.horizon, s.action_dim) * 2 - 1,
        "mask": torch.ones(n, s.horizon),
        "reward": torch.rand(n, 1),
        "bootstrap": torch.full((n, 1), 0.99**s.horizon),
        "mc_return": torch.rand(n, 1),
    }


# ---------------------------------------------------------------- rows


def bc_row(vision, image_size, batch):
    policy = ChunkPolicy(vision, image_size)
    opt = adam(policy.parameters(), 3e-4)
    data = policy_batch(policy, batch)

    def step():
        loss = chunk_mse(policy(data["obs"]), data["actions"], data["mask"])
        descend(opt, loss)
        return loss.item()

    return step, sum(p.numel() for p in policy.parameters())


def co_rft_row(batch, ensemble=10, cql_samples=10, alpha=0.2, gamma_h=0.99**10, tau=0.005):
    s = Sizes
    policy = ChunkPolicy(False)
    policy.eval()  # the actor does not move in a critic-only update
    critic = ChunkCritic(ensemble)
    target = ChunkCritic(ensemble)
    target.load_state_dict(critic.state_dict())
    for p in list(target.parameters()) + list(policy.parameters()):
        p.requires_grad_(False)
    opt = adam(critic.parameters(), 3e-4)
    data = policy_batch(policy, batch)
    n, h, d, ns = batch, s.horizon, s.action_dim, cql_samples

    def step():
        with torch.no_grad():
            next_pi = policy(data["next_obs"]).clamp(-1, 1)
            target_q = target(target.features(data["next_obs"]), next_pi)
            subset = torch.randperm(ensemble)[:2]
            y = data["reward"] + data["bootstrap"] * target_q[:, subset].min(1, keepdim=True).values
            pi = policy(data["obs"]).clamp(-1, 1)
            uniform = torch.rand(n, ns, h, d) * 2 - 1
            noisy = [(base.unsqueeze(1) + 0.1 * torch.randn(n, ns, h, d)).clamp(-1, 1) for base in (pi, next_pi)]
        feat = critic.features(data["obs"])
        m = 1 + 3 * ns
        chunks = torch.cat([data["actions"].unsqueeze(1), uniform] + noisy, 1)  # [n, m, h, d]
        feat_rep = feat.unsqueeze(1).expand(n, m, feat.shape[1]).reshape(n * m, -1)
        q = critic(feat_rep, chunks.reshape(n * m, h, d)).reshape(n, m, ensemble).transpose(1, 2)  # [n, K, m]
        q_data = q[:, :, 0]
        td = ((q_data - y) ** 2).mean()
        q_uniform = q[:, :, 1 : 1 + ns]
        q_policy = torch.maximum(q[:, :, 1 + ns :], data["mc_return"].unsqueeze(2))
        q_samples = torch.cat([q_uniform, q_policy], 2) - math.log(3 * ns)
        cql = (torch.logsumexp(q_samples, 2) - q_data).mean()
        loss = td + alpha * cql
        descend(opt, loss)
        soft_update(target, critic, tau)
        return loss.item()

    return step, sum(p.numel() for p in critic.parameters())


def expo_row(batch, ensemble=10, samples=8, beta=0.05, tau=0.005, base_ema=0.001):
    s = Sizes
    h, d = s.horizon, s.action_dim
    base = FlowPolicy()
    ema = FlowPolicy()
    ema.load_state_dict(base.state_dict())
    edit = EditPolicy()
    critic = ChunkCritic(ensemble)
    target = ChunkCritic(ensemble)
    target.load_state_dict(critic.state_dict())
    for p in list(target.parameters()) + list(ema.parameters()):
        p.requires_grad_(False)
    log_alpha = torch.tensor([math.log(0.1)], requires_grad=True)
    opts = {
        "base": adam(base.parameters(), 3e-4),
        "edit": adam(edit.parameters(), 3e-4),
        "critic": adam(critic.parameters(), 3e-4),
        "alpha": adam([log_alpha], 3e-4),
    }
    data = policy_batch(base.trunk, batch)
    target_entropy = -(h * d) / 2.0
    n = batch

    def step():
        # Critic update: y = R + g · min_S Q̄(s′, π_otf(s′)).
        with torch.no_grad():
            nxt = data["next_obs"]
            a = ema.sample(nxt, samples)  # [n·N, h, d]
            feats = edit.features(nxt).repeat_interleave(samples, 0)
            u, _ = edit.sample(feats, a, torch.randn(n * samples, h * d))
            edited = (a + beta * u.reshape(a.shape)).clamp(-1, 1)
            cand = torch.cat([a.reshape(n, samples, h, d), edited.reshape(n, samples, h, d)], 1)
            cand = cand.reshape(n * 2 * samples, h, d)
            members = torch.randperm(ensemble)[:2].tolist()
            tfeat = target.features(nxt).repeat_interleave(2 * samples, 0)
            score = target(tfeat, cand, members).min(1).values.reshape(n, 2 * samples)
            value = score.max(1, keepdim=True).values
            y = data["reward"] + data["bootstrap"] * value
        q = critic(critic.features(data["obs"]), data["actions"])
        td = ((q - y) ** 2).mean()
        descend(opts["critic"], td)
        soft_update(target, critic, tau)
        # Actor update: base (flow imitation), edit, temperature.
        base_loss = base.loss(data["obs"], data["actions"], data["mask"])
        descend(opts["base"], base_loss)
        soft_update(ema, base, base_ema)
        eps = torch.randn(n, h * d)
        u, log_p = edit.sample(edit.features(data["obs"]), data["actions"], eps)
        edited = (data["actions"] + beta * u.reshape(n, h, d)).clamp(-1, 1)
        feat = critic.features(data["obs"]).detach()
        q = critic(feat, edited).mean(1, keepdim=True)
        alpha = log_alpha.exp().item()
        edit_loss = (alpha * log_p - q).mean()
        descend(opts["edit"], edit_loss)
        alpha_loss = -(log_alpha * (log_p.detach() + target_entropy).mean())
        descend(opts["alpha"], alpha_loss.sum())
        return td.item()

    params = sum(p.numel() for m in (base, edit, critic) for p in m.parameters())
    return step, params


def icvf_row(batch, size=64, gamma=0.99, expectile=0.9, ema=0.005):
    model, target = Icvf(), Icvf()
    target.load_state_dict(model.state_dict())
    for p in target.parameters():
        p.requires_grad_(False)
    opt = adam(model.parameters(), 5e-5)
    n = batch
    frames = torch.randn(4 * n, 3, size, size)  # s, s′, g, z
    same_g = (torch.rand(n) < 0.1).float()
    same_z = (torch.rand(n) < 0.1).float()
    r, m, r_z, m_z = same_g - 1, 1 - same_g, same_z - 1, 1 - same_z

    def step():
        f = model.features(torch.cat([frames[:n], frames[2 * n :]]))  # s, g, z: what V(s, g, z) reads
        v = model.values(f[:n], f[n : 2 * n], f[2 * n :])
        with torch.no_grad():
            tf = target.features(frames)
            s_, nx, g, z = tf[:n], tf[n : 2 * n], tf[2 * n : 3 * n], tf[3 * n :]
            next_g = target.values(nx, g, z)
            next_z = target.values(nx, z, z)
            now_z = target.values(s_, z, z)
            q = r.unsqueeze(1) + gamma * m.unsqueeze(1) * next_g
            adv = r_z + gamma * m_z * next_z.min(1).values - now_z.mean(1)
            positive = (adv >= 0).float()
            w = expectile * positive + (1 - expectile) * (1 - positive)
        loss = (((q - v) ** 2) * w.unsqueeze(1)).sum() / n
        descend(opt, loss)
        soft_update(target, model, ema)
        return loss.item()

    return step, sum(p.numel() for p in model.parameters())


def idm_row(batch, hidden=1024, dropout=0.1, clip=0.999):
    s = Sizes
    obs = s.state_dim + s.env_state_dim
    net = nn.Sequential(
        nn.Linear(3 * obs, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, 2 * s.action_dim),
    )
    opt = adam(net.parameters(), 1e-4)
    x = torch.randn(batch, 3 * obs)
    a = (torch.rand(batch, s.action_dim) * 2 - 1) * 0.9
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def step():
        y = net(x)
        mean, log_std = y[:, : s.action_dim], y[:, s.action_dim :].clamp(-5.0, 2.0)
        ac = a.clamp(-clip, clip)
        u = 0.5 * torch.log((ac + 1) / (1 - ac))
        zz = (u - mean) / log_std.exp()
        nll = (0.5 * zz * zz + log_std + half_log_2pi + torch.log(1 - ac * ac)).sum(1).mean()
        descend(opt, nll)
        return nll.item()

    return step, sum(p.numel() for p in net.parameters())


def build(name, quick):
    full = {
        "bc_state": 128,
        "bc_vision_64": 16,
        "bc_vision_128": 16,
        "co_rft_critic": 256,
        "expo_update": 256,
        "icvf": 64,
        "idm": 1024,
    }[name]
    batch = min(full, 4) if quick else full
    if name == "bc_state":
        return bc_row(False, 64, batch) + (batch,)
    if name.startswith("bc_vision"):
        return bc_row(True, int(name.rsplit("_", 1)[1]), batch) + (batch,)
    if name == "co_rft_critic":
        return co_rft_row(batch) + (batch,)
    if name == "expo_update":
        return expo_row(batch) + (batch,)
    if name == "icvf":
        return icvf_row(batch) + (batch,)
    return idm_row(batch) + (batch,)


def inference_rows(iterations, image_size):
    """One-chunk latency (batch 1, eval mode, no autograd) of the state-only and the vision policy,
    as `armstack bench inference` times it: p50 / p99 / max in ms over `iterations` calls after
    10 untimed ones."""
    rows = []
    for name, policy in [("state-only", ChunkPolicy(False)), (f"vision {image_size}px x2", ChunkPolicy(True, image_size))]:
        policy.eval()
        obs = policy_batch(policy, 1)["obs"]
        times = []
        with torch.no_grad():
            for i in range(10 + iterations):
                t0 = time.perf_counter()
                policy(obs)
                if i >= 10:
                    times.append(1e3 * (time.perf_counter() - t0))
        times.sort()
        pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
        rows.append({"model": name, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": times[-1]})
    return rows


def status_mib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return status_mib("VmRSS")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=20, help="timed updates per row")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up updates per row")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows")
    ap.add_argument("--quick", action="store_true", help="batches of at most 4, 1 warm-up, 2 timed updates")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument(
        "--inference",
        type=int,
        metavar="ITERATIONS",
        default=None,
        help="instead of the training rows: one-chunk inference latency over ITERATIONS calls "
        "(the reference for `armstack bench inference`)",
    )
    ap.add_argument("--image-size", type=int, default=128, help="camera side in px of the --inference vision row")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    if args.inference is not None:
        rows = inference_rows(args.inference, args.image_size)
        print("| model | threads | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['model']} | {threads} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
        return
    warmup, steps = (1, 2) if args.quick else (args.warmup, args.steps)
    rows = []
    for name in [r for r in args.rows.split(",") if r]:
        if name not in ROWS:
            raise SystemExit(f"unknown row {name!r}; rows: {', '.join(ROWS)}")
        start = reset_peak()
        step, params, batch = build(name, args.quick)
        for _ in range(warmup):
            step()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        seconds = max(time.perf_counter() - t0, 1e-9)
        if not math.isfinite(loss):
            raise SystemExit(f"{name}: loss {loss}")
        peak = status_mib("VmHWM") if start is not None else None
        rows.append(
            {
                "name": name,
                "samples_per_s": batch * steps / seconds,
                "ms_per_step": 1e3 * seconds / steps,
                "backend": f"pytorch-{torch.__version__}-cpu",
                "threads": threads,
                "batch": batch,
                "steps": steps,
                "params": params,
                "peak_rss_mib": peak,
                "peak_rss_delta_mib": None if peak is None else max(peak - start, 0.0),
            }
        )
        del step
    print("| row | batch | samples/s | ms/step | peak RSS MiB | params |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        peak = "n/a" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}"
        print(f"| {r['name']} | {r['batch']} | {r['samples_per_s']:.1f} | {r['ms_per_step']:.1f} | {peak} | {r['params']} |")
    print(f"backend pytorch {torch.__version__} cpu, {threads} threads")
    text = json.dumps(rows, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
