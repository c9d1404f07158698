"""verifiers' own scoring path with harmo's reward plugged in, run in verifiers' environment
(``HARMO_VERIFIERS_PYTHON``) by tests/test_verifiers_adapter.py: a task whose config plugs
``harmo.client.verifiers:reward`` by import path (verifiers loads it, weighs it and records
it), and each rollout's trace scored by ``Task.score``, concurrently, as an environment server
scores finished rollouts; or (``--episode``) each case's rollouts as the traces of one episode,
scored together by ``score_episode`` as an env's ``finalize`` would. Prints one JSON line: per trace its rewards, reward, metrics, info
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
    ap.add_argument("--episode", action="store_true", help="score each case's traces as one episode's group")
    args = ap.parse_args()
    config = vf.TaskConfig(rewards={} if args.episode else {"harmo": RewardFunctionConfig(
        fn="harmo.client.verifiers:reward", weight=args.weight)})
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

    if args.episode:  # each case one episode of its attempts, scored together in finalize
        from harmo.client.verifiers import score_episode

        episodes = {}
        for task, trace in runs:
            episodes.setdefault(id(task), (task, vf.Episode(task=trace.task)))[1].traces.append(trace)
        await asyncio.gather(*(score_episode(task, episode, args.weight) for task, episode in episodes.values()))
        errors = [None] * len(runs)
    else:
        errors = await asyncio.gather(*(score(task, trace) for task, trace in runs))
    print(json.dumps([{"rewards": {k: r and r.model_dump() for k, r in t.rewards.items()}, "reward": t.reward,
                       "metrics": t.metrics, "info": t.info, "error": e} for (_, t), e in zip(runs, errors)]))


if __name__ == "__main__":
    asyncio.run(main())
