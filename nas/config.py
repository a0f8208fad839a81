"""An experiment: the sections each package owns, composed and validated in one place.

``space`` and ``budgets`` belong to ``search_spaces``, ``lut`` to ``lookup_tables``,
``data``/``train``/``evaluator`` to ``evaluators``, ``search``, ``rescore`` and ``verify`` to ``nas``. Every error
names the dotted key and the allowed keys or values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from core.budgets import Budgets
from core.config import PluginSection, load_yaml, parse, to_dict
from evaluators.config import DataConfig, EvaluatorConfig, TrainConfig
from lookup_tables.config import LutConfig
from search_spaces.space import SpaceConfig


@dataclass(frozen=True)
class ReferencePoint:
    """Hypervolume reference point: the worst quality and the largest latency and memory
    that still count. Unset fields follow from the budgets (or the evaluated candidates)."""

    quality: float | None = None
    latency_ms: float | None = None
    memory_bytes: float | None = None


@dataclass(frozen=True)
class SearchConfig(PluginSection):
    """The ``search`` section: which strategy (``options``: that strategy's ``Options``),
    how much training, where it runs.

    ``steps`` is K, the brief training per candidate (default: ``train.steps``); ``max_train_steps`` the whole
    campaign's training budget (the same for every strategy, so they compare fairly).
    ``workers: 0`` evaluates in-process (``InlinePool``); otherwise Ray actors, on a local
    cluster or the one at ``ray_address``. ``storage`` is any Optuna storage URL (default
    ``sqlite:///CAMPAIGN/trials.db``). ``gpus_per_worker`` (fractional allowed, default 0)
    is each Ray actor's share of a GPU: it trains on the GPU Ray assigns (``train.device: cuda``).
    """

    registry: ClassVar[str] = "nas.strategies:STRATEGIES"
    plugin_key: ClassVar[str] = "strategy"
    section: ClassVar[str] = "search"

    strategy: str = "snapgen"
    options: Any = None  # parsed by the strategy's Options
    steps: int | None = None  # K; None: the train section's steps
    max_train_steps: int | None = None
    max_rounds: int = 50
    workers: int = 2
    gpus_per_worker: float = 0.0
    ray_address: str | None = None
    timeout_s: float = 1800.0
    retries: int = 2
    max_restarts: int = 2
    storage: str | None = None
    out: str | None = None  # campaign directory (default runs/NAME)
    workdir: str | None = None  # the runners' data and pre-trained backbone cache (default CAMPAIGN/work)
    gpu_hours_per_candidate: float | None = None  # --dry-run's cost (default: the paper's 8 on cuda)
    reference_point: ReferencePoint = field(default_factory=ReferencePoint)

    def __post_init__(self):
        super().__post_init__()
        for name in ("steps", "max_rounds", "max_train_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("workers", "retries", "max_restarts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be 0 or more (fractions share a GPU), got {self.gpus_per_worker}")


@dataclass(frozen=True)
class VerifyConfig:
    """The ``verify`` section: the ground-truth protocol ``hwnas pareto verify`` checks a
    campaign's search quality against (``nas.verify``).

    Each chosen architecture is trained once from the frozen backbone with identity temporal
    layers (not from the search's weights): ``steps`` steps of AdamW on ``batch`` clips at
    ``lr``, t ~ logit-normal(``logit_mean``, ``logit_std``); the rest of the ``train``
    section (``lr_scale``, ``noise_correlation``, ``max_grad_norm``, device) is the search's.
    Then the ``evaluator`` (a name of the evaluator registry; its other settings from the
    ``evaluator`` section, with ``prompts`` captions sampled in ``sample_steps`` Euler steps
    at ``guidance_scale``) scores it. The *verified quality* is the breakdown entry
    ``quality_key`` of that score (``quality``: the evaluator's own quality); unset, the
    evaluator's default (``prompt_suite``: ``motion``, the motion accuracy; else ``quality``).
    Every architecture trains with the same ``seed`` (unset: the experiment's), so they see
    the same batches, t and noise; with ``seeds`` = n it trains n times, under seeds
    ``seed`` ... ``seed + n - 1``, and the verified quality is the mean (one run is a noisy
    ground truth: its training seed moves it as much as a weak architecture differs).

    Which architectures: the front's ``top`` best by search quality, and at least
    ``contrast`` dominated ones spread over the quality range, more when needed to reach
    ``min_architectures`` in all. ``timeout_s`` bounds one architecture on a worker.
    The defaults are those of ``experiments/benchmarks/motion_ground_truth.py``.
    """

    steps: int = 3000
    batch: int = 8
    lr: float = 1e-3
    logit_mean: float = 1.0
    logit_std: float = 1.0
    evaluator: str = "prompt_suite"
    # that evaluator's options (its Options dataclass, as under evaluator.options)
    options: dict[str, Any] = field(default_factory=lambda: {"prompts": 256, "sample_steps": 8})
    quality_key: str | None = None
    seed: int | None = None
    seeds: int = 1
    top: int = 8
    contrast: int = 3
    min_architectures: int = 8
    timeout_s: float = 7200.0

    def __post_init__(self):
        for name in ("steps", "batch", "top", "seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("contrast", "min_architectures"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.lr <= 0 or self.logit_std <= 0 or self.timeout_s <= 0:
            raise ValueError("lr, logit_std and timeout_s must be positive")
        from evaluators.scores import EVALUATORS

        if self.evaluator not in EVALUATORS:
            raise ValueError(f"evaluator: unknown evaluator {self.evaluator!r}; allowed: "
                             f"{', '.join(EVALUATORS.names())}")
        parse(EvaluatorConfig.options_class(self.evaluator), dict(self.options), "verify.options")


@dataclass(frozen=True)
class RescoreConfig:
    """The ``rescore`` section: the search's final stage (``nas.rescore``), off unless ``steps`` is set.

    A candidate's quality after K brief steps from the current model ranks what K steps
    show; what tens of times more training shows can differ (the temporal cross-attention
    layers learn the caption's motion only after several hundred steps:
    ``experiments/benchmarks/results/proxy_horizon_tiny_main2.md``). When the strategy has
    stopped, the front's ``top`` best by search quality and at least ``contrast`` dominated
    architectures spread over the quality range (``min_architectures`` in all, as
    ``pareto verify`` chooses) each train ``steps`` steps from the frozen backbone, every
    one under the experiment's seed (the same batches, t and noise), with the search's own
    training and evaluator. The campaign's final front is the front of those, by that
    quality; the brief-training trials stay as they are (``pareto show --stage search``).
    ``timeout_s`` bounds one architecture on a worker. Its steps are on top of
    ``search.max_train_steps``; ``status`` and the dry run count them apart.
    """

    steps: int | None = None
    top: int = 8
    contrast: int = 3
    min_architectures: int = 8
    timeout_s: float = 7200.0

    def __post_init__(self):
        for name in ("steps", "top"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("contrast", "min_architectures"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")

    @property
    def enabled(self) -> bool:
        return self.steps is not None

    def key(self) -> dict | None:
        """What the stage's result depends on besides the search (None: off): a campaign whose
        recorded stage has another key runs it again (``rescore`` can be edited on a finished
        campaign; ``timeout_s`` is not part of it)."""
        if not self.enabled:
            return None
        return {"steps": self.steps, "top": self.top, "contrast": self.contrast,
                "min_architectures": self.min_architectures}

    @property
    def max_architectures(self) -> int:
        """The most architectures the stage trains (the front's top, the contrast, the minimum)."""
        return max(self.top + self.contrast, self.min_architectures)


@dataclass(frozen=True)
class Experiment:
    space: SpaceConfig
    name: str = "experiment"
    seed: int = 0
    budgets: Budgets = field(default_factory=Budgets)
    lut: LutConfig = field(default_factory=LutConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    rescore: RescoreConfig = field(default_factory=RescoreConfig)

    def __post_init__(self):
        from core.errors import ConfigError

        if self.search.gpus_per_worker > 0 and self.search.workers and self.train.device != "cuda":
            raise ConfigError(f"search.gpus_per_worker {self.search.gpus_per_worker:g}: set train.device to cuda "
                              f"(the GPU Ray assigns each worker), not {self.train.device!r}")

    @classmethod
    def from_dict(cls, data: Mapping) -> "Experiment":
        return parse(cls, data, "")

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        return cls.from_dict(load_yaml(path))

    def to_dict(self) -> dict:
        return to_dict(self)

    @property
    def candidate_steps(self) -> int:
        """K: brief-training steps per candidate."""
        return self.search.steps or self.train.steps
