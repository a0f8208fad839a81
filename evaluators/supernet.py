"""MobileVD's learned temporal-block pruning (METHOD.md §6): the supernet, the projection of
importances to inclusion probabilities, and one training segment as a worker task.

* **Blocks**: every (slot, operator, layer index) of the space -- each slot holds, in the
  space's operator order, up to ``max_layers`` layers of *every* allowed operator (a
  superset no single architecture is: a kept set takes one operator per slot).
* **Gate**: a sampled block adds its residual scaled by ``z_i``: ``x + z_i·(op(x) − x)``
  (our operators are residual with no α-mixing of their own, so ``(1 − α_i)`` is 1).
  ``z_i = 1 + p_i − sg(p_i)`` (straight-through: 1 forward, ∂/∂p_i backward); unsampled
  blocks are not run at all, so their parameters get no gradient and AdamW leaves their
  moments untouched ("momentum frozen for pruned blocks").
* **Importances**: ``q_i = sigmoid(logit_i / temperature)``, temperature 0.1; the logits
  have their own learning rate (``gate_lr``, 1e-3 by default, well above ``weight_lr``).
* **Projection** (:func:`project`): ``p = argmin Σ(p_i − c·q_i)²`` s.t. ``Σp = n``,
  ``0 ≤ p ≤ 1`` -- the Euclidean projection of ``c·q`` onto the capped simplex, with ``c``
  ``n/Σq`` by default so ``c·q`` already sums to n and only the excess over 1 moves. Closed form
  per candidate split (t blocks clamped at 1, z at 0, the rest shifted by one τ); the
  feasible split of least objective is the optimum (KKT). In torch the clamped blocks
  pass gradient straight through.
* **Sampling**: n blocks without replacement with inclusion probabilities exactly ``p``
  (systematic sampling over a seeded permutation).

A segment (:func:`run_supernet`) trains ``steps`` steps from the previous segment's state
(weights, logits, AdamW moments, step count: everything travels in the result's
``state``), then scores the supernet pruned to the candidate's architecture (hard gates:
its blocks on, the rest off) -- that snapshot is the trial. Its breakdown carries each
block's importance as ``importance/<block>``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.errors import one_line
from evaluators.flow import flow_loss, logit_normal_t
from search_spaces.architecture import Architecture, Layer
from search_spaces.backbones import TemporalStack, slot_modules
from search_spaces.ops import create_op


@dataclass(frozen=True)
class Block:
    slot: str
    op: str
    index: int

    @property
    def key(self) -> str:  # VideoUNet's state-dict prefix, so a kept architecture inherits
        return f"{self.slot}_{self.op}.{self.index}"

    @classmethod
    def parse(cls, key: str) -> Block:
        head, index = key.rsplit(".", 1)
        slot, op = head.split("_", 1)
        return cls(slot, op, int(index))


def supernet_blocks(space) -> list[Block]:
    return [Block(s.name, op, i) for s in space.slots for op in s.ops for i in range(s.max_layers)]


# The projection -----------------------------------------------------------------------------

def _splits(v: np.ndarray, n: float):
    """Every (ones, zeros, τ) split of the sorted-descending v with its closed-form τ."""
    m = len(v)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    for t in range(m + 1):
        for z in range(m - t + 1):
            mid = m - t - z
            if mid == 0:
                if abs(t - n) < 1e-9:
                    yield t, z, 0.0
                continue
            tau = (n - t - (csum[m - z] - csum[t])) / mid
            yield t, z, tau


def project(q, n: float, c: float | None = None) -> np.ndarray:
    """Inclusion probabilities: ``argmin Σ(p − c·q)²`` s.t. ``Σp = n``, ``0 ≤ p ≤ 1``."""
    q = np.asarray(q, dtype=float)
    m = len(q)
    if not 0 <= n <= m:
        raise ValueError(f"n = {n} must lie in [0, {m}]")
    c = n / q.sum() if c is None else c
    v = c * q
    order = np.argsort(-v, kind="stable")
    vs = v[order]
    best, best_obj = None, math.inf
    for t, z, tau in _splits(vs, n):
        p = np.empty(m)
        p[:t], p[m - z:] = 1.0, 0.0
        p[t:m - z] = vs[t:m - z] + tau
        tol = 1e-9
        if (p[t:m - z] < -tol).any() or (p[t:m - z] > 1 + tol).any():
            continue
        if t and vs[t - 1] + tau < 1 - tol:  # KKT: a clamped-at-1 block wants to be ≥ 1
            continue
        if z and vs[m - z] + tau > tol:  # and a clamped-at-0 block ≤ 0
            continue
        obj = float(((p - vs) ** 2).sum())
        if obj < best_obj - 1e-12:
            best, best_obj = p, obj
    if best is None:  # numerically degenerate: fall back on bisection over τ
        lo, hi = -vs.max() - 1, 1 - vs.min() + 1
        for _ in range(200):
            tau = (lo + hi) / 2
            lo, hi = (tau, hi) if np.clip(vs + tau, 0, 1).sum() < n else (lo, tau)
        best = np.clip(vs + (lo + hi) / 2, 0, 1)
    out = np.empty(m)
    out[order] = np.clip(best, 0.0, 1.0)
    return out


def project_torch(q: torch.Tensor, n: float, c: float | None = None) -> torch.Tensor:
    """:func:`project` with gradients: the middle blocks are ``c·q + τ(c·q)`` (τ differentiable),
    the clamped ones pass the gradient of ``c·q`` straight through."""
    p_np = project(q.detach().cpu().numpy(), n, c)
    c_t = (n / q.sum()) if c is None else c
    v = c_t * q
    p = torch.as_tensor(p_np, dtype=q.dtype)
    mid = torch.as_tensor((p_np > 1e-9) & (p_np < 1 - 1e-9))
    if mid.any():
        tau = (n - p[~mid].sum() - v[mid].sum()) / mid.sum()
        inner = v + tau
    else:
        inner = v
    straight = p + (v - v.detach())
    return torch.where(mid, inner, straight)


def systematic_sample(p: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Indices of exactly round(Σp) blocks, block i included with probability p_i."""
    perm = rng.permutation(len(p))
    cum = np.cumsum(p[perm])
    u = rng.random()
    picks, k = [], 0
    n = int(round(cum[-1]))
    for j in range(n):
        target = u + j
        while k < len(cum) - 1 and cum[k] <= target:
            k += 1
        picks.append(int(perm[k]))
    return sorted(set(picks))


# The supernet ------------------------------------------------------------------------------

class Supernet(nn.Module):
    """The backbone with every block; ``active`` (block index -> gate tensor) decides which
    run on the next forward. ``temporal`` keys match ``VideoUNet`` so a kept architecture
    inherits its blocks' weights."""

    def __init__(self, space, unet, op_options: dict | None = None):
        super().__init__()
        self.unet = unet.requires_grad_(False)
        self.blocks = supernet_blocks(space)
        self.temporal = nn.ModuleDict()
        shapes = space.slot_shapes()
        first = next(unet.parameters())
        for s in space.slots:
            for op in s.ops:
                with torch.device(first.device):
                    stack = TemporalStack([create_op(op, shapes[s.name].replace(op=op), **(op_options or {}))
                                           for _ in range(s.max_layers)])
                self.temporal[f"{s.name}_{op}"] = stack.to(first.dtype)
        self.logits = nn.Parameter(torch.zeros(len(self.blocks)))
        self._modules_by_slot = slot_modules(unet)
        self.slots = [s.name for s in space.slots]
        self.active: dict[int, torch.Tensor] = {}
        self._frames, self._context = 1, None

    def layer(self, b: Block) -> nn.Module:
        return self.temporal[f"{b.slot}_{b.op}"][b.index]

    def _hook(self, slot: str):
        idx = [i for i, b in enumerate(self.blocks) if b.slot == slot and i in self.active]
        is_down = slot.startswith("down")

        def hook(module, args, output):
            hidden = output[0] if is_down else output
            bt, c, h, w = hidden.shape
            x = hidden.reshape(bt // self._frames, self._frames, c, h, w)
            for i in idx:
                x = x + self.active[i] * (self.layer(self.blocks[i])(x, self._context) - x)
            hidden = x.reshape(bt, c, h, w)
            if is_down:
                return hidden, tuple(output[1][:-1]) + (hidden,)
            return hidden

        return hook

    def forward(self, sample, timestep, encoder_hidden_states):
        b, t, c, h, w = sample.shape
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        self._frames, self._context = t, encoder_hidden_states
        slots = {self.blocks[i].slot for i in self.active}
        hooks = [self._modules_by_slot[s].register_forward_hook(self._hook(s)) for s in self.slots if s in slots]
        try:
            out = self.unet(sample.reshape(b * t, c, h, w), timestep.repeat_interleave(t),
                            encoder_hidden_states=encoder_hidden_states.repeat_interleave(t, dim=0)).sample
        finally:
            self._context = None
            for hk in hooks:
                hk.remove()
        return out.reshape(b, t, *out.shape[1:])

    def importances(self, temperature: float) -> torch.Tensor:
        return torch.sigmoid(self.logits / temperature)

    def keep(self, arch: Architecture) -> None:
        """Hard gates: the blocks of ``arch`` on (the first ``count`` layers of its operator), the rest off."""
        self.active = {i: torch.ones(()) for i, b in enumerate(self.blocks)
                       if b.slot in arch and arch[b.slot].op == b.op and b.index < arch[b.slot].count}


def kept_architecture(blocks: list[Block], importance: list[float], n: int, fits=lambda arch: True) -> Architecture:
    """Greedy top-n by importance under the space's rules: one operator per slot, layers of an
    operator kept as a prefix (layer j only after j − 1), and every step within ``fits``."""
    layers: dict[str, Layer] = {}
    kept = 0
    remaining = sorted(range(len(blocks)), key=lambda i: (-importance[i], i))
    progress = True
    while kept < n and progress:
        progress = False
        for i in remaining:
            b = blocks[i]
            cur = layers.get(b.slot)
            if (cur is None and b.index != 0) or (cur is not None and (cur.op != b.op or cur.count != b.index)):
                continue
            trial = dict(layers)
            trial[b.slot] = Layer(b.op, b.index + 1)
            if not fits(Architecture(trial)):
                continue
            layers, kept, progress = trial, kept + 1, True
            remaining.remove(i)
            break
    return Architecture(layers)


# One training segment, run by a worker ----------------------------------------------------

def run_supernet(runner, arch: Architecture, parent_state: dict | None, steps: int, seed: int, options: dict):
    """Train the supernet ``steps`` steps from ``parent_state`` (a previous segment's state)
    and score it pruned to ``arch``. Options: n, temperature, gate_lr, weight_lr, c."""
    from evaluators.runner import CandidateResult

    start = time.perf_counter()
    try:
        runner.prepare()
        with runner._threads():
            torch.manual_seed(seed)
            opts = runner.space_config.op_options
            net = Supernet(runner.space, runner.unet, {"qk_norm": opts.qk_norm, "rope": opts.rope})
            state = train_segment(net, runner.dataset, steps, runner.train_config, seed, parent_state, options)
            net.keep(arch)
            score = runner.evaluator.score(net)
        q = net.importances(options.get("temperature", 0.1)).tolist()
        breakdown = dict(score.breakdown) | {f"importance/{b.key}": v for b, v in zip(net.blocks, q)}
        return CandidateResult(str(arch), "ok", None, float(score.quality), breakdown, state, None, steps,
                               time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001
        return CandidateResult(str(arch), "failed", one_line(exc, with_type=True)[:200], None, {}, {}, None, 0,
                               time.perf_counter() - start)


def train_segment(net: Supernet, data, steps: int, config, seed: int, parent_state: dict | None,
                  options: dict) -> dict[str, torch.Tensor]:
    """The segment's training; returns the state to resume from (weights, logits, AdamW state, step)."""
    n = int(options["n"])
    temperature = float(options.get("temperature", 0.1))
    c = options.get("c")
    weights = [p for p in net.temporal.parameters()]
    opt = torch.optim.AdamW([{"params": weights, "lr": float(options.get("weight_lr", 1e-4)),
                              "weight_decay": config.weight_decay},
                             {"params": [net.logits], "lr": float(options.get("gate_lr", 1e-3)), "weight_decay": 0.0}])
    done = 0
    if parent_state:
        net.temporal.load_state_dict({k: v for k, v in parent_state.items() if not k.startswith("_")}, strict=False)
        if "_logits" in parent_state:
            with torch.no_grad():
                net.logits.copy_(parent_state["_logits"])
            done = int(parent_state["_step"].item())
            _load_opt(opt, parent_state)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    stream = data.batches("train", config.batch, gen)
    net.eval()
    net.temporal.train()
    for step in range(steps):
        q = net.importances(temperature)
        p = project_torch(q, n, c)
        picks = systematic_sample(p.detach().numpy().astype(float), rng)
        net.active = {i: 1.0 + p[i] - p[i].detach() for i in picks}
        batch = next(stream)
        x0, text = batch.latents, batch.text
        t = logit_normal_t(len(x0), config.logit_mean, config.logit_std, gen)
        noise = torch.randn(x0.shape, generator=gen)
        loss = flow_loss(net, x0, text, t, noise)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"supernet loss became {loss.item()} at step {done + step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.active = {}
    net.eval()
    state = {k: v.detach().clone() for k, v in net.temporal.state_dict().items()}
    state["_logits"] = net.logits.detach().clone()
    state["_step"] = torch.tensor(done + steps)
    state.update(_save_opt(opt))
    return state


def _save_opt(opt) -> dict[str, torch.Tensor]:
    out = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = opt.state.get(p)
            if st:
                for k, v in st.items():
                    out[f"_opt.{gi}.{pi}.{k}"] = torch.as_tensor(v).detach().clone()
    return out


def _load_opt(opt, state: dict) -> None:
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            prefix = f"_opt.{gi}.{pi}."
            st = {k[len(prefix):]: v.clone() for k, v in state.items() if k.startswith(prefix)}
            if st:
                if "step" in st:
                    st["step"] = st["step"].float()
                opt.state[p] = st


TASKS = {"supernet": run_supernet}
