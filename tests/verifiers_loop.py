"""verifiers' own scoring path with harmo's reward plugged in, run in verifiers' environment
(``HARMO_VERIFIERS_PYTHON``) by tests/test_verifiers_adapter.py: a task whose config plugs
``harmo.client.verifiers:reward`` by import path (verifiers loads it, weighs it and records
it), and each rollout's trace scored by ``Task.score``, concurrently, as an environment server
scores finished rollouts. Prints one JSON line: per trace its rewards, reward, metrics, info
and the scoring error verifiers' rollout would record (its scoring boundary raises a TaskError)."""
from __future__ import annotations

import argparse
import asyncio
import json

import verifiers.v1 as vf
from verifiers.v1.configs.task import RewardFunctionConfig
from verifiers.v1.graph import MessageNode
from verifiers.v1.types import AssistantMessage, UserMessage


class Data(vf.TaskData):
    answer: str = ""
    choices: list[str] | None = None


def trace_of(task: vf.Task, reply: str, reasoning: str | None) -> vf.Trace:
    return vf.Trace(
        agent=vf.AgentInfo(config=vf.AgentConfig()),
        task=vf.TraceTask(type="Task", data=task.data, key=task.key, hash=task.hash),
        nodes=[MessageNode(parent=None, message=UserMessage(content=task.data.prompt), sampled=False),
               MessageNode(parent=0, message=AssistantMessage(content=reply, reasoning_content=reasoning),
                           sampled=True)])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", required=True)
    ap.add_argument("--weight", type=float, default=1.0)
    args = ap.parse_args()
    config = vf.TaskConfig(rewards={"harmo": RewardFunctionConfig(fn="harmo.client.verifiers:reward",
                                                                  weight=args.weight)})
    runs = []
    for case in json.load(open(args.cases)):
        task = vf.Task(Data(**case["data"]), config)
        runs += [(task, trace_of(task, reply, reasoning)) for reply, reasoning in case["responses"]]

    async def score(task: vf.Task, trace: vf.Trace) -> str | None:
        try:
            await task.score(trace)
        except vf.TaskError as e:
            return str(e)
        return None

    errors = await asyncio.gather(*(score(task, trace) for task, trace in runs))
    print(json.dumps([{"rewards": {k: r and r.model_dump() for k, r in t.rewards.items()}, "reward": t.reward,
                       "metrics": t.metrics, "info": t.info, "error": e} for (_, t), e in zip(runs, errors)]))


if __name__ == "__main__":
    asyncio.run(main())
