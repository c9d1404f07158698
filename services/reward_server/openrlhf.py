"""OpenRLHF's remote reward contract (``POST /get_reward``, ``--remote_rm_url``) over the
pipeline: its request as items, the results as its answer. One conversion per trainer
contract: veRL and TRL rows become items in ``harmo.client.items``; OpenRLHF's arrive here.

OpenRLHF sends one query per request, prompt + response decoded with special tokens. With a
group size (its ``n_samples_per_prompt``) a prompt's samples take consecutive places in groups
of that size, across requests (``seat``). It stacks every ``extra_logs`` value into tensors and
ends the run on any non-200 answer: every query gets a number, and every key is in every
answer."""
from __future__ import annotations

import hashlib
import logging
from typing import Callable

from harmo.protocol import OpenRLHFRequest, OpenRLHFResponse, ScoreItem, ScoreRequest, ScoreResponse

from .profiles import Profile

log = logging.getLogger("harmo.server")


def strip_stop_tokens(response: str, tokens: list[str]) -> str:
    """The response without the end-of-turn and padding tokens a decoded query ends with."""
    end, changed = len(response), True
    while changed:  # indices only, no copies: a long run of padding tokens stays linear
        changed = False
        while end and response[end - 1].isspace():
            end -= 1
        for t in tokens:
            if t and response.endswith(t, 0, end):
                end -= len(t)
                changed = True
    return response[:end]


_warned_groups_of_one = False


def _warn_groups_of_one() -> None:
    global _warned_groups_of_one
    if not _warned_groups_of_one:
        _warned_groups_of_one = True
        log.warning(
            "get_reward: one query per request and no group size: each sample is its own group, so the "
            "group-relative parts (the length penalty) are 0; set ?group_size=N (OpenRLHF's n_samples_per_prompt) "
            "on the reward URL or HARMO_OPENRLHF_GROUP_SIZE")


def to_request(req: OpenRLHFRequest, profile: str, group_size: int | None,
               seat: Callable[[str, int], tuple[str, int]], stop_tokens: list[str]) -> ScoreRequest:
    """The items of an OpenRLHF request: each query less its prompt and its end-of-turn tokens,
    its label as the reference; a prompt's queries one GRPO group (``seat`` places a sample sent
    alone in its prompt's next group of ``group_size``)."""
    prompts = req.prompts or [None] * len(req.query)
    keys = [hashlib.sha1(p.encode()).hexdigest() if p is not None else None for p in prompts]
    seats: list[tuple[str, int] | None] = [None] * len(keys)
    if group_size is not None and group_size > 1:
        seats = [seat(f"openrlhf\n{profile}\n{k}", group_size) if k else None for k in keys]
    elif len(req.query) == 1 and req.prompts:
        _warn_groups_of_one()
    items = []
    for i, query in enumerate(req.query):
        prompt = prompts[i]
        response = strip_stop_tokens(query[len(prompt):] if prompt and query.startswith(prompt) else query,
                                     stop_tokens)
        label = req.labels[i] if req.labels else None
        s = seats[i]
        items.append(ScoreItem(id=str(s[1]) if s else str(i), response=response, prompt=prompt,
                               reference=label or None, group_id=f"{keys[i]}#{s[0]}" if s else keys[i],
                               group_size=group_size if s else None))
    return ScoreRequest(profile=profile, items=items)


def to_response(out: ScoreResponse, profile: Profile) -> OpenRLHFResponse:
    """OpenRLHF's answer: a number for every query (a query without a reward, past a size limit
    or unjudged, even every query, gets the profile's ``error_value``, flagged ``reward_null``),
    and the same ``extra_logs`` keys, numbers only, for every query: each component of the
    profile, 0.0 where it does not apply with ``<component>_applies`` saying which."""
    nulls = [r for r in out.results if r.reward is None]
    if nulls:
        log.warning("get_reward: %d of %d queries have no reward (%s); they get error_value %g, flagged reward_null",
                    len(nulls), len(out.results), ", ".join(f"{e.component}/{e.code}" for r in nulls[:5]
                                                             for e in r.errors), profile.error_value)
    rewards = [r.reward if r.reward is not None else profile.error_value for r in out.results]
    rows = [r.flat(sorted(profile.components)) for r in out.results]
    return OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs={k: [row[k] for row in rows] for k in rows[0]})
