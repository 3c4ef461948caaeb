"""The networks of `bench/pytorch/train_reference.py`: Armstack's models rebuilt in PyTorch at
Armstack's sizes (each class names the Rust file it mirrors)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Sizes:
    """Armstack's default sizes (policy/src/config.rs, the training commands' defaults)."""

    horizon = 10  # H
    state_dim = 7  # 6 joints + gripper
    env_state_dim = 5  # pick_cube: one object, x y z sin(yaw) cos(yaw)
    action_dim = 7  # end-effector delta + gripper
    vocab = 8
    # Adam as burn's AdamConfig::new(): betas (0.9, 0.999), eps 1e-5, no weight decay.
    adam_eps = 1e-5


def chunk_mse(pred, target, mask, weights=None):
    """Masked chunk regression (policy/src/train/bc.rs `chunk_mse`)."""
    d = pred.shape[2]
    sq = ((pred - target) ** 2).sum(2) * mask
    if weights is not None:
        sq = sq * weights
    return sq.sum() / (mask.sum().clamp_min(1.0) * d)


class Mlp(nn.Module):
    """layers x (Linear -> [LayerNorm] -> ReLU) -> Linear (policy/src/model/mlp.rs)."""

    def __init__(self, d_in, hidden, layers, d_out, layer_norm=False):
        super().__init__()
        mods = []
        for _ in range(layers):
            mods.append(nn.Linear(d_in, hidden))
            if layer_norm:
                mods.append(nn.LayerNorm(hidden))
            mods.append(nn.ReLU())
            d_in = hidden
        mods.append(nn.Linear(d_in, d_out))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


def conv3(c_in, c_out, stride):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


def group_norm(c):
    return nn.GroupNorm(min(8, c), c)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.norm1 = conv3(c, c, 1), group_norm(c)
        self.conv2, self.norm2 = conv3(c, c, 1), group_norm(c)

    def forward(self, x):
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + x)


class ImageEncoder(nn.Module):
    """Three stride-2 stages (conv, GroupNorm, ReLU, residual block), pooled to grid x grid
    tokens (policy/src/model/image.rs)."""

    def __init__(self, channels=(16, 32, 64), grid=4):
        super().__init__()
        stages, c_in = [], 3
        for c in channels:
            stages.append(nn.ModuleDict({"down": conv3(c_in, c, 2), "norm": group_norm(c), "block": ResBlock(c)}))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.channels = c_in

    def forward(self, x):  # [N, 3, S, S] -> [N, grid^2, C]
        for s in self.stages:
            x = s["block"](F.relu(s["norm"](s["down"](x))))
        x = self.pool(x)
        return x.flatten(2).transpose(1, 2)


class ChunkPolicy(nn.Module):
    """The chunked-action transformer (policy/src/model/policy.rs)."""

    def __init__(self, vision, image_size=64, cameras=2):
        super().__init__()
        s = Sizes
        if vision:
            d, d_ff, heads, layers, dropout, self.max_words = 256, 1024, 8, 4, 0.1, 12
        else:
            d, d_ff, heads, layers, dropout, self.max_words = 64, 128, 2, 2, 0.0, 8
        self.vision, self.cameras, self.image_size, self.d = vision, cameras, image_size, d
        self.state_proj = nn.Linear(s.state_dim, d)
        self.env_proj = None if vision else nn.Linear(s.env_state_dim, d)
        self.words = nn.Embedding(s.vocab, d)
        if vision:
            self.image = ImageEncoder()
            self.image_proj = nn.Linear(self.image.channels, d)
            self.camera_embed = nn.Parameter(torch.randn(cameras, d) * 0.02)
        image_tokens = cameras * 16 if vision else 0
        self.obs_tokens = 1 + (0 if vision else 1) + self.max_words + image_tokens
        self.positions = nn.Parameter(torch.randn(self.obs_tokens + s.horizon, d) * 0.02)
        self.queries = nn.Parameter(torch.randn(s.horizon, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, heads, d_ff, dropout, activation="gelu", batch_first=True, norm_first=True, layer_norm_eps=1e-5
        )
        self.trunk = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, s.action_dim)

    def image_features(self, obs):
        """Pooled image features [B, cameras * C] (the critic's input); None without cameras."""
        if not self.vision:
            return None
        t = self.image(obs["images"])
        b = obs["state"].shape[0]
        return t.mean(1).reshape(b, -1)

    def query_features(self, obs):
        b = obs["state"].shape[0]
        tokens = [self.state_proj(obs["state"]).unsqueeze(1)]
        if self.env_proj is not None:
            tokens.append(self.env_proj(obs["env_state"]).unsqueeze(1))
        tokens.append(self.words(obs["words"]))
        if self.vision:
            t = self.image_proj(self.image(obs["images"]))  # [B*C, 16, d]
            t = t.reshape(b, self.cameras, -1, self.d) + self.camera_embed.reshape(1, self.cameras, 1, self.d)
            tokens.append(t.reshape(b, -1, self.d))
        tokens.append(self.queries.unsqueeze(0).expand(b, -1, -1))
        x = torch.cat(tokens, 1) + self.positions.unsqueeze(0)
        y = self.trunk(x, src_key_padding_mask=obs["pad_mask"])
        return self.norm(y[:, self.obs_tokens :])

    def forward(self, obs):
        return self.head(self.query_features(obs))


class ObsFeatures(nn.Module):
    """[state, object state, mean word embedding, pooled image features] (model/critic.rs)."""

    def __init__(self, word_dim=16):
        super().__init__()
        self.words = nn.Embedding(Sizes.vocab, word_dim)

    def forward(self, obs, image_features=None):
        present = (obs["words"] != 0).float().unsqueeze(2)
        bag = (self.words(obs["words"]) * present).sum(1) / present.sum(1).clamp_min(1.0)
        parts = [obs["state"]]
        if "env_state" in obs:
            parts.append(obs["env_state"])
        parts.append(bag)
        if image_features is not None:
            parts.append(image_features)
        return torch.cat(parts, 1)


def obs_feature_dim(word_dim=16):
    return Sizes.state_dim + Sizes.env_state_dim + word_dim


class ChunkCritic(nn.Module):
    """K members of 3x256 with LayerNorm over (features, flattened chunk), as K small MLPs like
    Armstack's (model/critic.rs)."""

    def __init__(self, k=10, hidden=256, layers=3):
        super().__init__()
        s = Sizes
        self.features = ObsFeatures()
        chunk = s.horizon * s.action_dim
        self.members = nn.ModuleList(
            [Mlp(obs_feature_dim() + chunk, hidden, layers, 1, layer_norm=True) for _ in range(k)]
        )

    def forward(self, feat, chunks, members=None):  # -> [B, |members|]
        x = torch.cat([feat, chunks.flatten(1)], 1)
        ms = self.members if members is None else [self.members[m] for m in members]
        return torch.cat([m(x) for m in ms], 1)


class FlowHead(nn.Module):
    """EXPO's residual flow head (policy/src/model/flow.rs): 3 x 256, 10 Euler steps."""

    def __init__(self, d_model, hidden=256, layers=3, steps=10, time_features=16):
        super().__init__()
        s = Sizes
        chunk = s.horizon * s.action_dim
        self.cond = nn.Linear(s.horizon * d_model + chunk, hidden)
        self.input = nn.Linear(chunk + time_features, hidden, bias=False)
        self.body = Mlp(hidden, hidden, layers - 1, chunk)
        self.steps, self.time_features = steps, time_features
        freqs = torch.tensor([math.pi * 2.0**k for k in range(time_features // 2)])
        self.register_buffer("freqs", freqs.unsqueeze(0))

    def condition(self, query, mu):
        return self.cond(torch.cat([query.flatten(1), mu.flatten(1)], 1))

    def endpoint(self, cond, mu, x, t):
        angles = t * self.freqs
        inp = torch.cat([x.flatten(1), angles.sin(), angles.cos()], 1)
        r = self.body(F.relu(cond + self.input(inp)))
        return mu + r.reshape(mu.shape)


class FlowPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = ChunkPolicy(False)
        self.head = FlowHead(self.trunk.d)

    def loss(self, obs, target, mask):
        b = target.shape[0]
        query = self.trunk.query_features(obs)
        mu = self.trunk.head(query)
        cond = self.head.condition(query, mu)
        x0 = torch.randn_like(target)
        t = torch.rand(b, 1)
        tt = t.unsqueeze(2)
        xt = x0 * (1 - tt) + target * tt
        return chunk_mse(self.head.endpoint(cond, mu, xt, t), target, mask)

    def sample(self, obs, n):
        query = self.trunk.query_features(obs)
        mu = self.trunk.head(query)
        cond = self.head.condition(query, mu)
        b, h, d = mu.shape
        cond = cond.repeat_interleave(n, 0)
        mu = mu.repeat_interleave(n, 0)
        x = torch.randn(b * n, h, d)
        steps = self.head.steps
        for k in range(steps):
            t = k / steps
            x1 = self.head.endpoint(cond, mu, x, torch.full((b * n, 1), t))
            x = x + (x1 - x) * ((1.0 / steps) / (1.0 - t))
        return x.clamp(-1, 1)


class EditPolicy(nn.Module):
    """Tanh-Gaussian edits over (features, chunk), 3 x 256 (policy/src/model/edit.rs)."""

    def __init__(self, hidden=256, layers=3):
        super().__init__()
        chunk = Sizes.horizon * Sizes.action_dim
        self.features = ObsFeatures()
        self.net = Mlp(obs_feature_dim() + chunk, hidden, layers, 2 * chunk)
        self.chunk = chunk

    def sample(self, feat, chunks, eps):
        out = self.net(torch.cat([feat, chunks.flatten(1)], 1))
        mean, log_std = out[:, : self.chunk], out[:, self.chunk :].clamp(-5.0, 2.0)
        z = mean + log_std.exp() * eps
        u = torch.tanh(z)
        log_p = (-0.5 * eps**2 - log_std).sum(1, keepdim=True) - self.chunk * 0.5 * math.log(2 * math.pi)
        log_p = log_p - torch.log(1.0 + 1e-6 - u**2).sum(1, keepdim=True)
        return u, log_p


class IcvfHead(nn.Module):
    def __init__(self, f, hidden):
        super().__init__()

        def mlp(i, o):
            return nn.Sequential(nn.Linear(i, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, o))

        self.phi, self.psi, self.t = mlp(f, hidden), mlp(f, hidden), mlp(hidden, hidden)
        self.a, self.b = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, fs, fg, fz):
        tz = self.t(self.psi(fz))
        return (self.a(tz * self.phi(fs)) * self.b(tz * self.psi(fg))).sum(1)


class Icvf(nn.Module):
    """video-pretrain/src/icvf/model.rs: the policy's encoder + 2 multilinear heads."""

    def __init__(self, hidden=256, ensemble=2):
        super().__init__()
        self.encoder = ImageEncoder()
        self.heads = nn.ModuleList([IcvfHead(16 * 64, hidden) for _ in range(ensemble)])

    def features(self, x):
        return self.encoder(x).flatten(1)

    def values(self, fs, fg, fz):
        return torch.stack([hd(fs, fg, fz) for hd in self.heads], 1)
