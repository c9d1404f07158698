"""NeMo Gym's own code path for the harmo resources server, run in NeMo Gym's environment
(``HARMO_NEMO_GYM_PYTHON``) by tests/test_nemo_gym.py: NeMo Gym parses the shipped config
(trainer/nemo_gym_env/resources_servers/harmo/configs/harmo.yaml), loads the server's config
from its global config as a launched server does, builds its web app (its ``/verify`` and
``/aggregate_metrics`` routes), and its ``ServerClient`` posts every rollout to ``/verify``
concurrently, as its agents do, then asks ``/aggregate_metrics`` for the metrics it logs.
Prints one JSON line: the verify answers and the aggregate metrics."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time

import uvicorn
from nemo_gym.global_config import GlobalConfigDictParserConfig, get_global_config_dict
from nemo_gym.server_utils import ServerClient
from omegaconf import OmegaConf

from harmo.client.nemo_gym import HarmoResourcesServer


def response(k: int, text: str, reasoning: str | None) -> dict:
    """A Responses API response as NeMo Gym's model servers return it."""
    output = [{"id": f"rs_{k}", "type": "reasoning", "summary": [{"type": "summary_text", "text": reasoning}]}] \
        if reasoning is not None else []
    output.append({"id": f"msg_{k}", "type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]})
    return {"id": f"resp_{k}", "created_at": 0.0, "model": "policy", "object": "response", "output": output,
            "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": 10, "output_tokens": 5 + len(text) // 4, "total_tokens": 15 + len(text) // 4,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--group-size", type=int, default=None)
    ap.add_argument("--profile", default="harmo")
    args = ap.parse_args()
    cases = json.load(open(args.cases))

    gcd = get_global_config_dict(GlobalConfigDictParserConfig(
        initial_global_config_dict=OmegaConf.create({
            "config_paths": [args.config], **GlobalConfigDictParserConfig.NO_MODEL_GLOBAL_CONFIG_DICT}),
        skip_load_from_cli=True, skip_load_from_dotenv=True))
    OmegaConf.update(gcd, "harmo.resources_servers.harmo.group_size", args.group_size)
    OmegaConf.update(gcd, "harmo.resources_servers.harmo.profile", args.profile)
    os.environ["NEMO_GYM_CONFIG_PATH"] = "harmo"  # what NeMo Gym sets for the server it launches
    config = HarmoResourcesServer.load_config_from_global_config()
    client = ServerClient(head_server_config=ServerClient.load_head_server_config(), global_config_dict=gcd)
    server = HarmoResourcesServer(config=config, server_client=client)
    web = uvicorn.Server(uvicorn.Config(server.setup_webserver(), host=config.host, port=config.port,
                                        log_level="warning"))
    threading.Thread(target=web.run, daemon=True).start()
    while not web.started:
        await asyncio.sleep(0.05)

    payloads = []
    for c, case in enumerate(cases):
        for k, (text, reasoning) in enumerate(case["responses"]):
            payloads.append({**case["row"], "_ng_task_index": c, "_ng_rollout_index": k,
                             "response": response(100 * c + k, text, reasoning)})

    async def verify(p: dict) -> dict:
        r = await client.post(server_name="harmo", url_path="/verify", json=p)
        assert r.status == 200, await r.text()
        return await r.json()

    answers = await asyncio.gather(*(verify(p) for p in payloads))
    r = await client.post(server_name="harmo", url_path="/aggregate_metrics",
                          json={"verify_responses": [{k: v for k, v in a.items() if k != "response"}
                                                     for a in answers]})
    assert r.status == 200, await r.text()
    metrics = await r.json()
    web.should_exit = True
    time.sleep(0.2)
    print(json.dumps({"verify": answers, "metrics": metrics, "config": config.model_dump(mode="json")}))


if __name__ == "__main__":
    asyncio.run(main())
