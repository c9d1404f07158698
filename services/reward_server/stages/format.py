"""Format adherence: the profile's pattern over the whole response (``rewards/format.py``)."""
from __future__ import annotations

from ..rewards.format import first_deviation, format_reward
from .base import Item, Stage


class FormatStage(Stage):
    name = "format"
    components = ("format",)

    def run(self, items: list[Item]) -> None:
        for it in items:
            if "format" in it.profile.components:
                cfg = it.profile.format
                it.components["format"] = format_reward(it.item.response, pattern=cfg.pattern, mode=cfg.mode,
                                                        tags=cfg.tags)
                if it.explain:
                    it.why["format"] = {"value": it.components["format"], "mode": cfg.mode,
                                        "deviation": first_deviation(it.item.response, cfg.pattern, cfg.tags)}
