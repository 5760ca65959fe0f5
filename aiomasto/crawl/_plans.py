"""A crawl's stored plan: how both sinks write it, read it back and say what differs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._model import RELATIONS, CrawlPlan

__all__ = ["decode_plan", "encode_plan", "plan_differences"]

_PLAN_FIELDS = ("seeds", "relations", "depth", "max_accounts", "max_per_instance", "max_per_list")


def encode_plan(plan: CrawlPlan) -> str:
    return json.dumps(
        {
            "seeds": list(plan.seeds),
            "relations": list(plan.relations),
            "depth": plan.depth,
            "max_accounts": plan.max_accounts,
            "max_per_instance": plan.max_per_instance,
            "max_per_list": plan.max_per_list,
        },
        ensure_ascii=False,
    )


def decode_plan(text: str) -> CrawlPlan:
    """The plan :func:`encode_plan` wrote; ``ValueError``, ``TypeError`` or ``KeyError`` for
    anything else (the sink says the file is corrupt)."""
    data: Any = json.loads(text)
    relations = tuple(data["relations"])
    if not set(relations) <= set(RELATIONS):
        raise ValueError(relations)
    return CrawlPlan(
        seeds=tuple(str(seed) for seed in data["seeds"]),
        relations=relations,
        depth=int(data["depth"]),
        max_accounts=_optional_int(data["max_accounts"]),
        max_per_instance=_optional_int(data["max_per_instance"]),
        max_per_list=_optional_int(data["max_per_list"]),
    )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def plan_differences(stored: CrawlPlan, given: CrawlPlan) -> str:
    """What differs between two plans, in words: ``depth is 1, not 2; seeds ...``."""
    parts = []
    for name in _PLAN_FIELDS:
        old, new = getattr(stored, name), getattr(given, name)
        if old == new:
            continue
        if name == "seeds":
            only_old = [seed for seed in old if seed not in set(new)]
            only_new = [seed for seed in new if seed not in set(old)]
            detail = ", ".join(
                part
                for part in (
                    f"{len(only_new)} new ({_short(only_new)})" if only_new else "",
                    f"{len(only_old)} missing ({_short(only_old)})" if only_old else "",
                )
                if part
            )
            parts.append(f"seeds differ: {detail or 'same seeds in another order'}")
        else:
            parts.append(f"{name} is {old!r} there, not {new!r}")
    return "; ".join(parts)


def _short(seeds: Sequence[str]) -> str:
    shown = ", ".join(seeds[:3])
    return f"{shown}, ..." if len(seeds) > 3 else shown
