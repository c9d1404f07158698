"""slime's remote reward contract (``--rm-type remote_rm --rm-url URL``) over the pipeline: its
request as an item, the result as the reward it keeps. One conversion per trainer contract (see
``openrlhf.py``).

slime posts one sample per request, ``{"prompt", "response", "label"}``, retries any failure ten
times and then ends the rollout; it keeps the JSON answer as the sample's reward, a dict here
(``--reward-key reward`` picks the number). With a group size (``?group_size=N``: slime's
``--n-samples-per-prompt``) the server seats a prompt's samples into GRPO groups of that size,
across requests and replicas. A well-formed request is always answered 200: a sample the server
gives no reward gets the profile's ``error_value`` with ``reward_null: 1`` and its ``error``."""
from __future__ import annotations

import hashlib
import json
import logging

from harmo.protocol import ScoreItem, ScoreRequest, ScoreResponse, SlimeRequest, SlimeResponse

from .profiles import Profile

log = logging.getLogger("harmo.server")


def to_request(req: SlimeRequest, profile: str, group_size: int | None) -> ScoreRequest:
    """The item of a slime request: its prompt (text or chat messages), response and label (the
    reference; a dict, e.g. a code task's tests, as JSON); with a group size, the prompt's key
    and no member id, so that the pipeline seats it in its prompt's next group."""
    prompt = req.prompt if isinstance(req.prompt, str) else [m.model_dump() for m in req.prompt]
    label = json.dumps(req.label) if isinstance(req.label, dict) else req.label
    item = {"response": req.response, "reference": label or None}
    item |= {"prompt": prompt} if isinstance(prompt, str) else {"messages": prompt}
    if group_size is not None and group_size > 1:
        key = hashlib.sha1(json.dumps(prompt, sort_keys=True).encode()).hexdigest()
        item |= {"group_id": f"slime:{key}", "group_size": group_size}
    return ScoreRequest(profile=profile, items=[ScoreItem.model_validate(item)])


def to_response(out: ScoreResponse, profile: Profile) -> SlimeResponse:
    """The reward slime keeps: ``reward``, each of the profile's components (0.0 where it does
    not apply, ``<component>_applies`` saying which), ``reward_null`` and ``error``."""
    [r] = out.results
    error = f"{r.errors[0].component}/{r.errors[0].code}" if r.errors else "ok"
    if r.reward is None:
        log.warning("slime: a sample has no reward (%s); it gets error_value %g, flagged reward_null",
                    ", ".join(f"{e.component}/{e.code}" for e in r.errors), profile.error_value)
    reward = r.reward if r.reward is not None else profile.error_value
    return SlimeResponse(reward=reward, error=error, **r.flat(sorted(profile.components)))
