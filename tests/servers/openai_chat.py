"""A small OpenAI-compatible chat server over a real Hugging Face causal LM, for the judge tests.

    python -m tests.servers.openai_chat MODEL_DIR PORT

Greedy decoding when temperature is 0. ``GET /stats`` reports the most requests that were in
flight at once, so tests can check a client's concurrency limit.
"""
from __future__ import annotations

import sys
import threading
import time

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer


class ChatRequest(BaseModel):
    model: str
    messages: list[dict]
    max_tokens: int = 32
    temperature: float = 0.0


def build(model_dir: str) -> FastAPI:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    lock = threading.Lock()
    stats = {"in_flight": 0, "max_in_flight": 0, "requests": 0}
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "smollm2", "object": "model"}]}

    @app.get("/stats")
    def get_stats() -> dict:
        return stats

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict:
        with lock:
            stats["in_flight"] += 1
            stats["requests"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            ids = tok.apply_chat_template(req.messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
            with lock, torch.inference_mode():  # one generation at a time on the CPU
                out = model.generate(**ids, max_new_tokens=req.max_tokens, do_sample=req.temperature > 0,
                                     temperature=req.temperature or None, pad_token_id=tok.eos_token_id)
            n = ids["input_ids"].shape[1]
            text = tok.decode(out[0, n:], skip_special_tokens=True)
            return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                    "model": req.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": n, "completion_tokens": int(out.shape[1] - n),
                              "total_tokens": int(out.shape[1])}}
        finally:
            with lock:
                stats["in_flight"] -= 1

    return app


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
