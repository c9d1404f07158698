"""Server settings: environment variables (``HARMO_*``) over an optional YAML file
(``HARMO_SETTINGS_FILE``) over these defaults."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARMO_", extra="forbid", populate_by_name=True)

    profiles_path: Path | None = Field(None, description="Profiles YAML; the built-in profiles when unset.")
    # Limits. A request past the first two gets 413; an item past the others gets a typed error
    # of its own (reward null) and the rest of the request is scored.
    max_items_per_request: int = Field(4096, gt=0)
    max_body_bytes: int = Field(256 * 2**20, gt=0)
    max_response_chars: int = Field(262_144, gt=0, description="per item: input/response_too_long")
    max_prompt_chars: int = Field(
        262_144, gt=0, description="per item, the prompt and the messages' text together: input/prompt_too_long")
    max_reference_chars: int = Field(
        65_536, gt=0, description="an item whose references add up to more is not verified (typed error "
        "accuracy/reference_too_long); its other components are scored")
    max_image_bytes: int = Field(10 * 2**20, gt=0, description="per image: input/image_too_large")
    # The HTTP edge (edge.py): what one connection may cost before the app sees its request.
    max_header_bytes: int = Field(32 * 1024, gt=0, description="the request line and headers: 431 past it")
    header_timeout_s: float = Field(10.0, gt=0, description="a request's head must arrive within this (408)")
    body_timeout_s: float = Field(120.0, gt=0, description="a request's body must arrive within this after its head")
    keep_alive_s: float = Field(5.0, gt=0, description="an idle kept-alive connection is closed after this")
    max_connections: int | None = Field(
        None, gt=0, description="open connections on the service port; default: from the open-file limit")
    probe_connections: int = Field(
        32, gt=0, description="connections past max_connections that answer only /healthz, /readyz, /metrics; "
        "and the connections of the health port")
    health_port: int | None = Field(
        None, gt=0, lt=65536, description="a second port that answers only the probes, out of reach of what "
        "floods the service port")
    # Rule workers (worker processes with hard deadlines): math verification, instruction checks.
    math_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), gt=0,
                              description="rule worker processes (math and instruction checks)")
    math_timeout_s: float = Field(5.0, gt=0, description="hard deadline per math item")
    instruction_timeout_s: float = Field(10.0, gt=0, description="hard deadline per item's instruction checks")
    code_timeout_s: float = Field(
        120.0, gt=0, description="hard deadline per code item (all its cases; the profile's item_timeout_s "
        "stops the sandbox first)")
    code_concurrency: int | None = Field(
        None, gt=0, description="code sandboxes running at once; default: the number of rule workers")
    max_code_tests_chars: int = Field(
        8 * 2**20, gt=0, description="a code item's tests (its reference) past this are not run "
        "(accuracy/reference_too_long); max_reference_chars is for the other tasks")
    # Models.
    model_dir: Path | None = Field(
        None, description="where weights named by a hub id live (`reward-server models pull` puts them there); "
        "default ~/.cache/harmo/models")
    model_mirror: Path | None = Field(
        None, description="a folder laid out as <mirror>/<org>/<name> that `models pull` copies from instead of "
        "the hub (an offline site)")
    nltk_data: Path | None = Field(
        None, description="where IFEval's sentence tokenizer data is written from its package; default "
        "~/.cache/harmo/nltk_data")
    model_device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    model_dtype: str = Field("auto", description="'auto' (bfloat16 on CUDA, float32 on CPU) or a torch dtype name")
    http_threads: int = Field(256, gt=0, description="requests scored at once (each waits on batchers)")
    torch_threads: int | None = Field(
        None, gt=0, description="intra-op threads for CPU inference (default: torch's, one per core); fewer "
        "leaves cores to the HTTP side")
    # Result cache.
    redis_url: str | None = Field(None, validation_alias=AliasChoices("HARMO_REDIS_URL", "REDIS_URL", "redis_url"),
                                  description="Redis shared by the replicas; unset: the in-process cache")
    cache: Literal["auto", "redis", "local", "off"] = Field(
        "auto", description="'auto': Redis when a URL is set, else in-process; 'off' computes everything")
    cache_prefix: str = Field("harmo", min_length=1, description="key prefix: one per deployment sharing a Redis")
    cache_ttl_s: float = Field(86400.0, gt=0, description="how long an entry lives")
    cache_max_entries: int = Field(200_000, gt=0, description="in-process cache size")
    cache_timeout_s: float = Field(0.25, gt=0, description="a Redis call slower than this fails (scoring goes on)")
    cache_retry_s: float = Field(1.0, gt=0, description="after a Redis failure, how long the cache steps aside")
    # Groups whose members arrive in separate requests (items with group_size).
    group_wait_s: float = Field(60.0, gt=0, description="how long a group waits for its members")
    group_keep_s: float = Field(600.0, gt=0, description="how long a computed group answers retried members")
    group_keep_max: int = Field(10_000, gt=0, description="at most this many computed groups are kept")
    group_store: Literal["auto", "redis", "local"] = Field(
        "auto", description="where groups are assembled: 'auto': Redis when a URL is set (any replica serves any "
        "member), else in-process")
    # OpenRLHF's /get_reward: its queries are decoded with special tokens, so a response ends in
    # the chat template's end-of-turn token; these are stripped from its end before scoring.
    openrlhf_stop_tokens: list[str] = Field(
        default_factory=lambda: ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>",
                                 "<end_of_turn>", "<｜end▁of▁sentence｜>", "</s>", "<eos>", "[EOS]"],
        description="end-of-turn and stop tokens stripped from the end of /get_reward responses")
    # OpenRLHF scores each sample on its own (one query per request): the samples of one prompt
    # form a GRPO group only if the server knows the group's size (n_samples_per_prompt).
    openrlhf_group_size: int | None = Field(
        None, ge=1, le=4096, description="/get_reward's group size (OpenRLHF's n_samples_per_prompt) when the "
        "request names none (?group_size=N or a group_size field): the samples of one prompt, sent one per "
        "request, form groups of this size across requests and replicas")
    # Access: when keys are set, /score and /get_reward need one (Authorization: Bearer KEY, or X-API-Key).
    api_keys: str | None = Field(None, description="comma-separated API keys")
    api_keys_file: Path | None = Field(None, description="a file of API keys, one per line (a mounted Secret)")
    # The reward observatory (GET /ui): per profile and data source, the last `observatory_window`
    # items and the window before it, which the alerts compare with.
    observatory: bool = Field(True, description="keep the observatory's windows (GET /ui, /ui/data)")
    observatory_window: int = Field(1000, gt=0, le=1_000_000, description="items per profile and data source")
    observatory_max_series: int = Field(
        64, gt=0, description="profile/data source pairs kept apart; the data sources that come after these share "
        "one '(other)' series per profile")
    inspector_items: int = Field(
        0, ge=0, le=1000, description="the inspector (GET /ui): the latest this many scored items, with prompts, "
        "responses and why each got its reward; 0 (default) keeps none")
    alert_shift: float = Field(0.25, gt=0, description="a component's window mean moving more than this")
    alert_unjudged_rate: float = Field(0.2, ge=0, le=1, description="share of items whose accuracy nothing judged")
    alert_error_rate: float = Field(0.1, ge=0, le=1, description="share of items with a typed error (unparseable "
                                                                 "answers aside)")
    alert_length_ratio: float = Field(2.0, gt=1, description="the mean response length shrinking or growing by "
                                                             "more than this factor")
    alert_paid_hacks: int = Field(1, gt=0, description="paid responses in a window that the hack detectors flag "
                                                       "(empty, format only, hedge)")
    alert_min_items: int = Field(50, gt=0, description="items a window needs before its rates and shifts alert")
    alert_every_s: float = Field(10.0, gt=0, description="how often the alerts (the harmo_reward_alert gauges) are "
                                                         "evaluated")
    # Logs.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    def keys(self) -> frozenset[str]:
        keys = {k.strip() for k in (self.api_keys or "").split(",") if k.strip()}
        if self.api_keys_file:
            keys |= {line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()}
        if not keys and ((self.api_keys or "").strip() or self.api_keys_file):
            # Keys were asked for but none is there (",", an empty file): never an open server by accident.
            raise ValueError("HARMO_API_KEYS / HARMO_API_KEYS_FILE are set but hold no key")
        return frozenset(keys)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("HARMO_SETTINGS_FILE")
        if path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def current() -> Settings:
    """The settings as the environment and the settings file say now: for the few readers that
    run outside a pipeline (the model store, the tokenizer data), so that every setting still
    comes through this one object."""
    return Settings()
