"""A NeMo Gym resources server whose ``/verify`` scores through the reward server, so NeMo Gym
agents and NeMo-RL environments get harmo's verifiers, profiles and components.

NeMo Gym starts resources servers from a directory with an ``app.py`` and a config;
``trainer/nemo_gym/resources_servers/harmo`` is that directory (README: "NeMo Gym"). The
server's config keys (``HarmoResourcesServerConfig``): ``reward_url`` (else
``$HARMO_REWARD_URL``), ``profile`` (null: the server picks by ``data_source``), ``group_size``
(NeMo-RL's ``num_generations_per_prompt``), ``api_key`` (else ``$HARMO_API_KEY``), ``deadline_s``.

What a task row may carry, beside ``responses_create_params`` (the prompt): the reference as
``expected_answer`` (NeMo Gym's math and multiple-choice servers), ``ground_truth``,
``reference``, ``answer`` or ``label``; ``options`` (``[{"A": "..."}, ...]``) or ``choices``;
IFEval constraints as ``instruction_id_list`` + ``kwargs`` (top level or under
``verifier_metadata``, as NeMo Gym's instruction-following data has them) or ``constraints``;
``task`` and ``data_source``. The response is the assistant's output text; reasoning items (a
reasoning parser took them out of the text) go back in front as ``<think>...</think>``, so the
format reward sees what the policy wrote.

``/verify`` is called once per rollout and does not say which of a prompt's rollouts it is: with
``group_size``, the reward server seats the rollouts of one prompt (and NeMo Gym's task index,
when the row has one) into GRPO groups of that size before the length penalty is computed.

The answer: ``reward``; ``reward_components``, what each of the profile's components adds to it
(weight x value, 0.0 where one does not apply) and ``remainder`` (what clipping or a formula
adds), so that they sum to ``reward`` as NeMo RL requires (it checks, and GDPO normalises each
one); each component's own value at the top level as ``harmo_<component>`` with
``harmo_<component>_applies``, ``harmo_reward_null`` and ``harmo_errors`` (NeMo Gym's aggregate
metrics and NeMo RL's per-agent metrics read top-level numbers). A rollout the server gave no
reward (unjudged, past a size limit) is answered with ``mask_sample: true`` (also in
``instance_config``, where NeMo RL reads it) and ``failure_kind: verifier_error``: NeMo Gym's flag
for a reward that does not measure the policy; reward 0.0, never a silent number. An unreachable
server past ``deadline_s`` fails the request. With ``profile: null`` the split uses the weights
of the server's default profile (the remainder absorbs the difference for items routed to
another).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

from nemo_gym.base_resources_server import (
    BaseResourcesServerConfig,
    BaseVerifyRequest,
    BaseVerifyResponse,
    SimpleResourcesServer,
)
from pydantic import ConfigDict, Field, PrivateAttr

from harmo.client.client import (
    AsyncRewardClient,
    RewardRequestError,
    profile_components,
    profile_weights,
    server_urls,
)
from harmo.client.items import make_item, why_null
from harmo.protocol import ScoreItem

REFERENCE_KEYS = ("expected_answer", "ground_truth", "reference", "answer", "label")
TASK_INDEX = "_ng_task_index"  # what NeMo Gym's rollout collection adds to a row


def text_of(content: Any) -> str:
    """A message's content as text: a string, or the text of its parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or "" for p in content if isinstance(p, dict))


def prompt_messages(params: dict[str, Any]) -> list[dict[str, str]]:
    """The chat prompt of a Responses API request: its instructions, then its input messages."""
    out = [{"role": "system", "content": params["instructions"]}] if params.get("instructions") else []
    inp = params.get("input")
    if isinstance(inp, str):
        return out + [{"role": "user", "content": inp}]
    for m in inp or ():
        if isinstance(m, dict) and m.get("role") and m.get("type", "message") == "message":
            out.append({"role": m["role"], "content": text_of(m.get("content"))})
    return out


def response_text(response: dict[str, Any]) -> str:
    """The assistant's text of a Responses API response, its reasoning items as ``<think>``."""
    thought, said = [], []
    for o in response.get("output") or ():
        if o.get("type") == "reasoning":
            thought += [text_of(o.get("content")) or text_of(o.get("summary"))]
        elif o.get("type") == "message" and o.get("role", "assistant") == "assistant":
            said.append(text_of(o.get("content")))
    think = "".join(thought)
    return (f"<think>{think}</think>" if think else "") + "".join(said)


def _constraints(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    if row.get("constraints"):
        return row["constraints"]
    src = row if row.get("instruction_id_list") else row.get("verifier_metadata") or {}
    ids = src.get("instruction_id_list")
    if not ids:
        return None
    kwargs = src.get("kwargs") or [{}] * len(ids)
    if len(kwargs) != len(ids):
        raise ValueError(f"{len(ids)} instruction ids and {len(kwargs)} kwargs")
    return [{"id": i, "kwargs": kw} for i, kw in zip(ids, kwargs)]  # checked by make_item


def _choices(row: dict[str, Any]) -> list[str] | None:
    if row.get("choices"):
        return [str(c) for c in row["choices"]]
    if row.get("options"):  # [{"A": "text"}, {"B": "text"}]: the texts in letter order
        return [str(v) for o in row["options"] for v in o.values()]
    return None


def verify_item(body: dict[str, Any], group_size: int | None = None) -> dict[str, Any]:
    """A ``/score`` item from a ``/verify`` request (the row's fields and the response)."""
    params = body.get("responses_create_params") or {}
    messages = prompt_messages(params)
    reference = next((body[k] for k in REFERENCE_KEYS if body.get(k) not in (None, "", [])), None)
    extra = {"task": body.get("task"), "choices": _choices(body), "constraints": _constraints(body)}
    usage = (body.get("response") or {}).get("usage") or {}
    key = hashlib.sha1(json.dumps([messages, body.get(TASK_INDEX)], sort_keys=True).encode()).hexdigest()
    return make_item(response=response_text(body.get("response") or {}), data_source=body.get("data_source"),
                     reference=reference, extra=extra, messages=messages or None,
                     group_id=f"nemo-gym:{key}" if group_size and group_size > 1 else None, group_size=group_size,
                     response_length=usage.get("output_tokens"))


def verify_fields(result: Any, keys: list[str], weights: dict[str, float],
                  row: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields ``/verify`` answers beside the request's own (see the module docstring)."""
    if result.reward is None:
        return masked_fields(keys, [f"{e.component}/{e.code}" for e in result.errors], why_null(result), row)
    fields = result.flat(keys)
    reward = float(result.reward)
    parts = {k: weights.get(k, 0.0) * fields[k] for k in keys}
    parts["remainder"] = reward - sum(parts.values())
    return {"reward": reward, "reward_components": parts, **{f"harmo_{k}": v for k, v in fields.items()},
            "harmo_errors": [f"{e.component}/{e.code}" for e in result.errors]}


def masked_fields(keys: list[str], errors: list[str], reason: str, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """A rollout without a reward: masked, with the reason; every number 0.0 but ``reward_null``."""
    fields = dict.fromkeys(keys, 0.0) | {f"{k}_applies": 0.0 for k in keys} | {"reward_null": 1.0}
    parts = dict.fromkeys(keys, 0.0) | {"remainder": 0.0}
    config = (row or {}).get("instance_config")
    # NeMo RL reads the flag in instance_config (NeMo Gym's top-level field came later)
    return {"reward": 0.0, "reward_components": parts, **{f"harmo_{k}": v for k, v in fields.items()},
            "harmo_errors": errors, "mask_sample": True, "failure_kind": "verifier_error", "failure_reason": reason,
            "instance_config": {**(config if isinstance(config, dict) else {}), "mask_sample": True}}


class HarmoResourcesServerConfig(BaseResourcesServerConfig):
    reward_url: str | list[str] | None = None
    profile: str | None = None
    group_size: int | None = Field(default=None, ge=1)
    api_key: str | None = None
    deadline_s: float = 600.0


class HarmoVerifyRequest(BaseVerifyRequest):
    model_config = ConfigDict(extra="allow")  # the task row's fields, whatever the dataset holds


class HarmoVerifyResponse(BaseVerifyResponse):
    model_config = ConfigDict(extra="allow")
    reward_components: dict[str, float] = Field(default_factory=dict)


class HarmoResourcesServer(SimpleResourcesServer):
    config: HarmoResourcesServerConfig
    _client: AsyncRewardClient | None = PrivateAttr(default=None)
    _keys: list[str] | None = PrivateAttr(default=None)
    _weights: dict[str, float] = PrivateAttr(default_factory=dict)

    async def _ready(self) -> tuple[AsyncRewardClient, list[str]]:
        urls = server_urls(self.config.reward_url)
        if self._client is None:  # made in the server's own event loop
            self._client = AsyncRewardClient(urls, deadline_s=self.config.deadline_s,
                                             api_key=self.config.api_key or os.environ.get("HARMO_API_KEY"))
        if self._keys is None:
            self._weights = await asyncio.to_thread(profile_weights, urls[0], self.config.profile,
                                                    self.config.deadline_s)
            self._keys = await asyncio.to_thread(profile_components, urls[0], self.config.profile,
                                                 self.config.deadline_s)
        return self._client, self._keys

    async def verify(self, body: HarmoVerifyRequest) -> HarmoVerifyResponse:
        client, keys = await self._ready()
        row = body.model_dump(mode="json")
        try:
            item = ScoreItem.model_validate(verify_item(row, self.config.group_size))
        except (ValueError, TypeError, AttributeError) as exc:  # a row this adapter cannot read
            return HarmoVerifyResponse(**(row | masked_fields(keys, ["input/bad_row"], f"bad task row: {exc}", row)))
        try:
            result = await client.score_one(item, profile=self.config.profile)
        except RewardRequestError as exc:  # refused for what the row holds (e.g. an unknown task)
            return HarmoVerifyResponse(**(row | masked_fields(keys, [f"input/refused_{exc.status}"], str(exc), row)))
        return HarmoVerifyResponse(**(row | verify_fields(result, keys, self._weights, row)))


__all__ = ["HarmoResourcesServer", "HarmoResourcesServerConfig", "HarmoVerifyRequest", "HarmoVerifyResponse",
           "prompt_messages", "response_text", "verify_fields", "verify_item"]
