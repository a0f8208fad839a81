"""The campaign directory: everything a search needs to be inspected and resumed.

```
DIR/config.yaml        the frozen experiment (a resume rebuilds everything from it)
DIR/campaign.json      config hash, lookup table path + sha256, storage URL, study name
DIR/trials.db          Optuna RDB storage (default; any URL Optuna accepts via search.storage):
                       one trial per evaluated candidate, values [quality, latency_ms,
                       memory_bytes], the rest as user attributes; failures as FAIL trials
DIR/checkpoints/       one file per finished candidate of the running round (its result
                       and, where a strategy may start from it, its temporal weights);
                       after a round only the weights the strategy still needs remain
                       (the current model's)
DIR/strategy.json      the strategy's state_dict after the last finished round
DIR/events.jsonl       what happened, one JSON object a line
```

Crash safety: a candidate's checkpoint is written (temp file + ``os.replace``) as soon
as it finishes; its trial is added when its round is decided, with the strategy's deltas
and scores; the strategy state is saved last. A campaign killed at any moment resumes by
loading the strategy state, which proposes the same round again: finished candidates come
from their checkpoints (not trained again), trials already stored are not added twice.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import optuna
import torch
import yaml

from core.budgets import Budgets
from core.errors import HwnasError, one_line
from core.io import atomic_json, atomic_text, atomic_torch, sha256_file
from evaluators.runner import CandidateResult
from nas.pareto import Front, Point, compute_front, reference_point, verified_scores
from nas.strategies import Candidate, Outcome
from nas.trials import DIRECTIONS, OBJECTIVE_NAMES, distributions, encode

STUDY = "hwnas"


class CampaignError(HwnasError):
    """A campaign directory that cannot be used: another config, a corrupt database, ..."""


def _table_inputs(config: dict) -> tuple:
    """What the campaign's own lookup table depends on."""
    return json.dumps(config.get("space"), sort_keys=True), json.dumps(config.get("lut"), sort_keys=True)


# Sections that do not change what the brief-training search does: editing them keeps the
# campaign (a rescore stage added to a finished campaign's config runs on `search run`).
NOT_SEARCH = ("verify", "rescore")
RESCORE = "rescore"  # the role of the final stage's trials (nas.rescore)
STAGES = ("final", "search", "rescore")


def config_hash(config: dict) -> str:
    search = {k: v for k, v in config.items() if k not in NOT_SEARCH}
    return hashlib.sha256(json.dumps(search, sort_keys=True).encode()).hexdigest()


class Campaign:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.ckpt_dir = self.root / "checkpoints"
        self._storage = None
        self._stored_ids: set[str] | None = None

    # the directory ------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        path = self.root / "campaign.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise CampaignError(f"{self.root} is not a campaign directory (no campaign.json)") from None
        except json.JSONDecodeError as exc:
            raise CampaignError(f"{path} is corrupt: {exc}") from None

    def config(self) -> dict:
        path = self.root / "config.yaml"
        try:
            return yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise CampaignError(f"{self.root} is not a campaign directory (no config.yaml)") from None

    @classmethod
    def open(cls, root: str | Path) -> "Campaign":
        """An existing campaign directory (for resume, status and the Pareto commands)."""
        camp = cls(root)
        if not camp.root.is_dir():
            raise CampaignError(f"{camp.root}: no such campaign directory")
        camp.meta  # noqa: B018 - raises if campaign.json is missing or corrupt
        return camp

    @classmethod
    def create(cls, root: str | Path, config: dict, restart: bool = False) -> "Campaign":
        """Create the directory for ``config``, or reopen it if it holds the same config. A
        campaign of another config that never finished a candidate (e.g. its budgets could not
        be met) is replaced, so an edited config just runs; one with finished candidates only
        with ``restart`` (their trials are discarded)."""
        camp = cls(root)
        digest = config_hash(config)
        if (camp.root / "campaign.json").exists():
            if camp.meta.get("config_sha256") == digest and not restart:
                frozen = camp.config()
                if any(frozen.get(k) != config.get(k) for k in NOT_SEARCH):  # e.g. a new verify protocol
                    atomic_text(camp.root / "config.yaml", yaml.safe_dump(config, sort_keys=False))
                return camp
            finished = camp.finished_candidates()
            if finished and not restart:
                raise CampaignError(
                    f"{camp.root} holds a campaign of another config ({camp.meta.get('name')!r}) with {finished} "
                    f"finished candidate(s); give another --out, `hwnas search resume {camp.root}` to continue "
                    "that one, or --restart to discard it")
            camp._clear(keep_table=_table_inputs(camp.config()) == _table_inputs(config))
        elif camp.root.exists() and any(camp.root.iterdir()):
            raise CampaignError(f"{camp.root} exists and is not a campaign directory; give another --out")
        camp.ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_text(camp.root / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        # None: the default SQLite file DIR/trials.db, wherever the directory is moved or copied
        storage = config.get("search", {}).get("storage")
        atomic_json(camp.root / "campaign.json", {"name": config.get("name"), "config_sha256": digest,
                                                  "storage": storage, "study": STUDY, "created": time.time()})
        camp.event("created", storage=camp.storage_url())
        return camp

    def finished_candidates(self) -> int:
        """Candidates this campaign finished (checkpointed or stored as trials)."""
        stored = len(self.trials()) if (self.root / "strategy.json").exists() else 0
        return max(stored, sum(1 for _ in self.ckpt_dir.glob("*.pt")))

    def _clear(self, keep_table: bool) -> None:
        """Forget this campaign's search (trials, checkpoints, state, its table unless the new
        config measures the same); the work directory's caches are keyed by content and stay."""
        meta = self.meta
        try:
            optuna.delete_study(study_name=meta["study"], storage=self.storage_url(meta))
        except KeyError:  # no such study yet
            pass
        names = ["strategy.json", "events.jsonl", "campaign.json", "config.yaml", "front.html"]
        if not keep_table:
            names += ["lut.parquet", "lut.parquet.json"]
        for name in names:
            (self.root / name).unlink(missing_ok=True)
        for path in self.ckpt_dir.glob("*.pt"):
            path.unlink()
        self._storage, self._stored_ids = None, None

    def set_lut(self, path: Path, replace: bool = False) -> None:
        """Record the lookup table the campaign prices with; a resume refuses a changed table
        (``replace``: the campaign itself changed it, e.g. measured an entry during search)."""
        meta, digest = self.meta, sha256_file(path)
        if "lut" in meta and meta["lut"]["sha256"] != digest and not replace:
            raise CampaignError(f"the lookup table {path} changed since this campaign started "
                                f"(sha256 {meta['lut']['sha256'][:12]} -> {digest[:12]})")
        meta["lut"] = {"path": str(Path(path).resolve()), "sha256": digest}
        atomic_json(self.root / "campaign.json", meta)

    def set_budgets(self, budgets) -> None:
        """The budgets the campaign judges feasibility with, resolved against its table."""
        meta = self.meta
        meta["budgets"] = {"latency_ms": budgets.latency_ms_per_step, "memory_mib": budgets.memory_mib}
        atomic_json(self.root / "campaign.json", meta)

    def budgets(self) -> Budgets:
        """What ``set_budgets`` recorded; before that, the config's (relative ones: none yet)."""
        if "budgets" in self.meta:
            return Budgets(**self.meta["budgets"])
        stated = self.experiment().budgets
        return Budgets() if stated.relative else stated

    def event(self, kind: str, **fields) -> None:
        with open(self.root / "events.jsonl", "a") as f:
            f.write(json.dumps({"time": time.time(), "event": kind, **fields}, default=str) + "\n")

    def events(self) -> list[dict]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a killed write
                continue
        return out

    def experiment(self):
        """The frozen experiment everything of this campaign is rebuilt from."""
        from nas.config import Experiment

        return Experiment.from_dict(self.config())

    def workdir(self) -> Path:
        """Where the campaign's runners keep the data and the pre-trained backbone."""
        workdir = self.experiment().search.workdir
        return Path(workdir) if workdir else self.root / "work"

    # the Optuna storage ------------------------------------------------------------------
    def storage_url(self, meta: dict | None = None) -> str:
        """The trials' Optuna storage: the configured URL, else this directory's trials.db (also
        for a campaign created before that rule, whose absolute path to its own trials.db went
        stale when the directory was moved or copied). ``meta``: campaign.json, if already read."""
        url, local = (self.meta if meta is None else meta).get("storage"), self.root / "trials.db"
        if url is None:
            return f"sqlite:///{local.resolve()}"
        if url.startswith("sqlite:///"):
            old = Path(url[len("sqlite:///"):])
            if old.name == "trials.db" and old.parent.resolve() != self.root.resolve() and not old.exists() \
                    and local.exists():
                return f"sqlite:///{local.resolve()}"
        return url

    def study(self) -> optuna.Study:
        meta = self.meta
        url = self.storage_url(meta)
        if self._storage is None:
            if url.startswith("sqlite:///"):
                db = Path(url[len("sqlite:///"):])
                if db.exists() and db.stat().st_size and db.read_bytes()[:16] != b"SQLite format 3\x00":
                    raise CampaignError(f"{db} is not an SQLite database (corrupt trials database); "
                                        "left untouched: move it away to start the trials afresh")
            try:
                self._storage = optuna.storages.RDBStorage(url, skip_compatibility_check=False)
            except Exception as exc:  # sqlalchemy's many errors: one line naming the URL
                raise CampaignError(f"cannot open the trials storage {url}: {one_line(exc)}") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(storage=self._storage, study_name=meta["study"], directions=DIRECTIONS,
                                        load_if_exists=True)
            if study.metric_names is None:  # optuna-dashboard labels the objectives with these
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(OBJECTIVE_NAMES)
            return study
        except Exception as exc:
            raise CampaignError(f"the trials storage {url} is unreadable (corrupt?): "
                                f"{one_line(exc)}") from None

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        try:
            return self.study().get_trials(deepcopy=False)
        except CampaignError:
            raise
        except Exception as exc:
            raise CampaignError(f"the trials storage {self.storage_url()} is unreadable (corrupt?): "
                                f"{one_line(exc)}") from None

    def annotate(self, arch: str, attrs: dict) -> int:
        """Set user attributes on every finished trial of ``arch`` (e.g. its verified quality),
        all in one transaction: a kill leaves all of them or none. Optuna's public API writes
        attributes of running trials only, so this writes its RDB tables directly. Returns the
        number of trials annotated."""
        from optuna.storages._rdb import models
        from sqlalchemy.orm import Session

        self.study()  # opens the storage, with its errors
        storage, study_id = self._storage, self._storage.get_study_id_from_name(self.meta["study"])
        ids = [storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in self.trials()
               if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("arch") == arch]
        with Session(storage.engine) as session, session.begin():
            for trial_id in ids:
                for key, value in attrs.items():
                    row = session.query(models.TrialUserAttributeModel).filter_by(trial_id=trial_id, key=key).first()
                    if row is None:
                        session.add(models.TrialUserAttributeModel(trial_id=trial_id, key=key,
                                                                   value_json=json.dumps(value)))
                    else:
                        row.value_json = json.dumps(value)
        return len(ids)

    def stored_ids(self) -> set[str]:
        if self._stored_ids is None:
            self._stored_ids = {t.user_attrs.get("candidate_id") for t in self.trials()}
        return self._stored_ids

    def record(self, space, outcome: Outcome, note: dict, round_index: int, budgets) -> None:
        """Add one finished candidate as a trial (once: a resumed round skips stored ones)."""
        c = outcome.candidate
        if c.id in self.stored_ids():
            return
        dists, params = distributions(space), encode(space, c.arch)
        attrs = {"candidate_id": c.id, "round": round_index, "arch": str(c.arch), "role": c.role,
                 "parent": None if c.parent is None else str(c.parent), "action": c.action, "steps": c.steps,
                 "seed": c.seed, "latency_ms": outcome.latency_ms, "memory_bytes": outcome.memory_bytes,
                 "feasible": not budgets.violations(outcome.latency_ms, outcome.memory_bytes),
                 "breakdown": outcome.breakdown, "seconds": outcome.seconds, **note}
        if outcome.ok:
            trial = optuna.trial.create_trial(params=params, distributions=dists, user_attrs=attrs,
                                              values=[outcome.quality, outcome.latency_ms, outcome.memory_bytes])
        else:
            trial = optuna.trial.create_trial(params=params, distributions=dists, state=optuna.trial.TrialState.FAIL,
                                              user_attrs={**attrs, "reason": outcome.reason})
        self.study().add_trial(trial)
        self.stored_ids().add(c.id)

    # checkpoints -------------------------------------------------------------------------
    def _ckpt(self, cid: str) -> Path:
        return self.ckpt_dir / f"{cid}.pt"

    def save_result(self, candidate: Candidate, result: CandidateResult) -> None:
        fields = result.to_dict()
        state = result.state if candidate.keep_weights else None
        atomic_torch(self._ckpt(candidate.id), {"result": fields, "state": state})

    def load_result(self, cid: str) -> CandidateResult | None:
        path = self._ckpt(cid)
        if not path.exists():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a torn file cannot exist (os.replace), but a foreign one may
            return None
        return CandidateResult(**data["result"], state=data["state"])

    def weights(self, cid: str) -> dict | None:
        result = self.load_result(cid)
        if result is None or result.state is None:
            raise CampaignError(f"{self._ckpt(cid)}: the checkpoint of weights {cid!r} is missing")
        return result.state

    def keep_only(self, keys: set[str]) -> None:
        for path in self.ckpt_dir.glob("*.pt"):
            if path.stem not in keys:
                path.unlink()

    # strategy state ------------------------------------------------------------------
    def save_state(self, state: dict) -> None:
        atomic_json(self.root / "strategy.json", state)

    def load_state(self) -> dict | None:
        path = self.root / "strategy.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CampaignError(f"{path} is corrupt: {exc}") from None

    # reading the campaign ------------------------------------------------------------
    def rescored(self) -> bool:
        """Whether the final stage, as the ``rescore`` section now states it, has run with at least
        one architecture finished (``strategy.json`` records the stage's key when it has)."""
        key = self.experiment().rescore.key()
        return key is not None and (self.load_state() or {}).get("rescored") == key

    def points(self, stage: str = "final") -> list[Point]:
        """Finished candidates as points of the objective space: ``search`` the brief-training
        ones, ``rescore`` the final stage's, ``final`` the final stage's once it is complete,
        else the search's."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r}: allowed: {', '.join(STAGES)}")
        if stage == "final":
            stage = RESCORE if self.rescored() else "search"
        if stage == RESCORE:  # the current shortlist's, at the stated steps (an edited section)
            from nas.rescore import shortlist

            rescore = self.experiment().rescore
            archs = {c.arch for c in shortlist(self, rescore)} if rescore.enabled else set()

        def wanted(attrs: dict) -> bool:
            if stage == RESCORE:
                return attrs.get("role") == RESCORE and attrs.get("steps") == rescore.steps and attrs["arch"] in archs
            return attrs.get("role") != RESCORE

        return [Point(t.user_attrs["arch"], t.values[0], t.values[1], t.values[2], t.user_attrs.get("breakdown"),
                      verified_scores(t.user_attrs))
                for t in self.trials() if t.state == optuna.trial.TrialState.COMPLETE and wanted(t.user_attrs)]

    def front(self, stage: str = "final") -> Front:
        """The Pareto front of the ``stage``'s finished candidates (:meth:`points`), against the
        configured reference."""
        exp, budgets = self.experiment(), self.budgets()
        points = self.points(stage)
        r = exp.search.reference_point
        ref = reference_point(points, budgets, r.quality, r.latency_ms, r.memory_bytes)
        return compute_front(points, ref, budgets)

    def status(self) -> dict:
        exp, trials = self.experiment(), self.trials()
        saved = self.load_state() or {}
        strategy = saved.get("strategy", {})
        events = self.events()
        stopped = [e for e in events if e["event"] == "stopped"]
        kinds = [e["event"] for e in events]
        started = max((i for i, k in enumerate(kinds) if k == "round_started"), default=-1)
        decided = max((i for i, k in enumerate(kinds) if k == "round_finished"), default=-1)
        running = None  # trials are stored when a round is decided; its candidates finish before
        if started > decided:
            r = events[started]
            running = {"round": r.get("round"), "candidates": len(r.get("candidates") or []),
                       "finished": sum(k == "candidate" for k in kinds[started + 1:])}
        return {"campaign": str(self.root), "name": exp.name, "strategy": exp.search.strategy,
                "storage": self.storage_url(), "lut": self.meta.get("lut"),
                "rounds": saved.get("rounds", 0), "steps_used": saved.get("steps_used", 0),
                "max_train_steps": exp.search.max_train_steps,
                "trials": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
                "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
                "current": strategy.get("current"), "done": strategy.get("done", False),
                "rescored": len(self.points(RESCORE)) if exp.rescore.enabled else None,
                "stage": "rescore" if self.rescored() else "search",
                "stop_reason": stopped[-1]["reason"] if stopped else strategy.get("stop_reason") or None,
                "round_in_progress": running, "budget": self.budget_spent()}

    def budget_spent(self) -> dict:
        """What the search has cost, comparable across strategies: training steps actually run
        (candidates reloaded from checkpoints after a resume not counted twice), the candidates'
        own seconds (training + scoring, summed over workers), the final stage's steps and
        seconds apart (``rescore``: not part of the search's budget), the wall time of every run
        and resume, and GPU-hours of both when the candidates trained on a GPU."""
        events = self.events()
        cands = [e for e in events if e["event"] == "candidate"]
        final = [e for e in events if e["event"] == "rescored"]
        seconds = sum(e.get("seconds") or 0.0 for e in cands)
        final_seconds = sum(e.get("seconds") or 0.0 for e in final)
        wall, start = 0.0, None
        for e in events:  # a run lasts from its started/resumed event to its last event
            if e["event"] in ("started", "resumed"):
                start = e["time"]
            elif start is not None:
                last = e["time"]
                if e["event"] == "stopped" or e is events[-1]:
                    wall += last - start
                    start = None
        device = str(self.experiment().train.device)
        return {"training_steps": sum(e.get("steps") or 0 for e in cands), "candidates_trained": len(cands),
                "candidate_seconds": seconds, "rescore_steps": sum(e.get("steps") or 0 for e in final),
                "rescore_seconds": final_seconds, "wall_s": wall,
                "gpu_hours": (seconds + final_seconds) / 3600 if device.startswith("cuda") else None}
