"""Model-based rewards: real weights (MiniLM), real tiny architectures, hybrid routing, batching."""
from __future__ import annotations

import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devtools.models import tiny_llama_rm
from harmo.protocol import ScoreRequest
from harmo.server.models.base import ModelInput, Scale
from harmo.server.models.batcher import DynamicBatcher, QueueFull
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileError, ProfileSet
from harmo.server.settings import Settings
from tests.conftest import Server, score

LABELS = ["helpfulness", "correctness", "verbosity"]


def profiles_yaml(scalar_rm, vector_rm, max_queue=4096) -> str:
    return textwrap.dedent(f"""
        default: open_embed
        models:
          minilm: {{kind: embedding, load: startup}}
          rm: {{kind: seq_cls, path: "{scalar_rm}", scale: {{kind: sigmoid}}, confidence: 0.6}}
          armo:
            kind: seq_cls
            path: "{vector_rm}"
            labels: {LABELS}
            components: true
            scale: {{kind: minmax, min: -1, max: 1}}
            load: lazy
          small_queue:
            kind: embedding
            load: lazy
            batch: {{max_queue: {max_queue}}}
        profiles:
          open_embed:
            weights: {{accuracy: 1.0}}
            accuracy: {{model: minilm}}
          open_rm:
            weights: {{accuracy: 1.0}}
            accuracy: {{model: rm}}
          unsure_to_model:
            weights: {{accuracy: 1.0}}
            accuracy: {{model: rm, min_confidence: 0.95}}
          unsure_blend:
            weights: {{accuracy: 1.0}}
            accuracy: {{model: minilm, min_confidence: 0.95, blend: true}}
          vector:
            weights: {{accuracy: 1.0, armo.helpfulness: 0.5, armo.verbosity: -0.1}}
          queue:
            weights: {{accuracy: 1.0}}
            accuracy: {{model: small_queue}}
          both:
            weights: {{accuracy: 1.0, armo.verbosity: 1.0}}
            accuracy: {{model: armo}}
    """)


@pytest.fixture(scope="module")
def model_files():
    return tiny_llama_rm(), tiny_llama_rm(LABELS)


@pytest.fixture(scope="module")
def profiles_path(tmp_path_factory, model_files):
    path = tmp_path_factory.mktemp("m") / "profiles.yaml"
    path.write_text(profiles_yaml(*model_files))
    return path


@pytest.fixture(scope="module")
def mp(profiles_path, pipeline):
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(profiles_path),
                         rule_pool=pipeline.rule_pool) as p:
        deadline = time.monotonic() + 120
        while not p.models.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield p


def test_embedding_surrogate_on_open_items(mp):
    items = [{"task": "open", "response": "<answer>The capital is Paris.</answer>",
              "reference": ["Paris is the capital of France"]},
             {"task": "open", "response": "<answer>Bananas are yellow.</answer>",
              "reference": ["Paris is the capital of France"]},
             {"response": "A cat.", "reference": "A long free-form description of what is going on in the picture."}]
    rs = score(mp, items, "open_embed").results
    for r in rs:
        assert r.accuracy.source == "model:minilm"
        assert 0.0 <= r.components["accuracy"] <= 1.0
    assert rs[0].components["accuracy"] > rs[1].components["accuracy"] + 0.2
    assert rs[0].accuracy.extracted == "The capital is Paris."


def test_embedding_needs_a_reference(mp):
    """An open item without a reference is not sent to an embedding model: it is unjudged, with
    no reward (the profile's default), never a 0."""
    r = score(mp, [{"response": "hello"}], "open_embed").results[0]
    assert r.accuracy.source == "none:unjudged" and r.reward is None
    assert [(e.component, e.code) for e in r.errors] == [("accuracy", "unjudged")]


def test_scalar_reward_model_with_sigmoid(mp):
    items = [{"prompt": "What is 2+2?", "response": "4"},
             {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}],
              "response": "4"}]
    rs = score(mp, items, "open_rm").results
    backend = mp.models.backend("rm")
    raw = backend.infer([ModelInput(response="4", prompt="What is 2+2?")])[0].values[0]
    for r in rs:
        assert r.accuracy.source == "model:rm" and r.accuracy.confidence == 0.6
        assert r.components["accuracy"] == pytest.approx(Scale(kind="sigmoid")(raw), abs=1e-5)


def test_confident_rules_stay_unsure_rules_go_to_the_model(mp):
    confident = {"task": "choice", "reference": "A", "choices": ["x", "y"], "response": "(A)"}
    unsure = {"task": "math", "reference": "x^2+1", "response": "\\boxed{x^2+2}"}  # "not equivalent": conf 0.9
    rs = score(mp, [confident, unsure], "unsure_to_model").results
    assert rs[0].accuracy.source == "rule:choice" and rs[0].components["accuracy"] == 1.0
    assert rs[1].accuracy.source == "model:rm"


def test_blend(mp):
    item = {"task": "math", "reference": "x^2+1", "response": "\\boxed{x^2+2}"}
    r = score(mp, [item], "unsure_blend").results[0]
    model = score(mp, [{"task": "open", "response": "\\boxed{x^2+2}", "reference": "x^2+1"}], "open_embed").results[0]
    c = 0.9
    assert r.accuracy.source == "blend:rule:math+model:minilm"
    assert r.accuracy.confidence == c
    assert r.components["accuracy"] == pytest.approx(c * 0.0 + (1 - c) * model.components["accuracy"], abs=1e-5)
    # asked why, the result gives the blend's weights and both scores it mixed
    why = mp.score(ScoreRequest(profile="unsure_blend", items=[item], explain=True)).results[0].explain["accuracy"]
    assert why["blend"]["weights"] == pytest.approx({"rule": c, "model": 1 - c})
    assert why["blend"]["rule_score"] == 0.0 and why["rule"]["confidence"] == c
    assert why["blend"]["model_score"] == pytest.approx(model.components["accuracy"], abs=1e-5)
    assert "unsure" in why["why"] and why["min_confidence"] == 0.95


def test_vector_head_outputs_become_components(mp):
    rs = score(mp, [{"task": "choice", "reference": "A", "choices": ["x", "y"], "response": "(A)", "prompt": "Pick"},
                    {"task": "choice", "reference": "A", "choices": ["x", "y"], "response": "(B)", "prompt": "Pick"}],
               "vector").results
    for r in rs:
        assert set(r.components) == {"accuracy", "armo.helpfulness", "armo.verbosity"}
        assert all(0 <= r.components[k] <= 1 for k in ("armo.helpfulness", "armo.verbosity"))
        assert r.reward == pytest.approx(r.components["accuracy"] + 0.5 * r.components["armo.helpfulness"]
                                         - 0.1 * r.components["armo.verbosity"])


def test_one_model_for_accuracy_and_components_runs_once_per_item(mp):
    score(mp, [{"prompt": "Q", "response": "warm"}], "vector")  # loads the lazy model
    before = mp.models.status()["armo"]["batching"]["items"]
    r = score(mp, [{"prompt": "Q", "response": "A"}, {"prompt": "Q", "response": "B"}], "both").results
    assert mp.models.status()["armo"]["batching"]["items"] - before == 2
    for x in r:
        assert x.accuracy.source == "model:armo"
        assert set(x.components) == {"accuracy", "armo.verbosity"}


def test_scores_do_not_depend_on_batch_company(mp):
    """The same item scored alone, and amid 48 concurrent single-item requests of other lengths."""
    texts = [("Explain. " * (i % 7 + 1)) + f"Item {i}." for i in range(48)]
    alone = {t: score(mp, [{"prompt": "Q", "response": t}], "open_rm").results[0].components["accuracy"] for t in texts}
    with ThreadPoolExecutor(48) as ex:
        together = list(ex.map(lambda t: score(mp, [{"prompt": "Q", "response": t}], "open_rm")
                               .results[0].components["accuracy"], texts))
    stats = mp.models.status()["rm"]["batching"]
    assert stats["mean_batch_size"] > 1.5  # they really were batched together
    for t, v in zip(texts, together):
        assert v == pytest.approx(alone[t], abs=1e-4)


def test_queue_full_is_refused(profiles_path, model_files, tmp_path, pipeline):
    path = tmp_path / "p.yaml"
    path.write_text(profiles_yaml(*model_files, max_queue=2))
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        with pytest.raises(QueueFull):
            score(p, [{"task": "open", "response": "a", "reference": "b"}] * 3, "queue")
        ok = score(p, [{"task": "open", "response": "a", "reference": "b"}] * 2, "queue")
        assert ok.results[0].accuracy.source == "model:small_queue"


@pytest.mark.parametrize("text,needle", [
    ("default: a\nprofiles: {a: {accuracy: {model: nope}}}\n", "names model 'nope'"),
    ("default: a\nmodels: {m: {kind: embedding}}\nprofiles: {a: {weights: {m.x: 1}}}\n", "components: true"),
    ("default: a\nmodels: {m: {kind: seq_cls, path: p, components: true, labels: [x]}}\n"
     "profiles: {a: {weights: {m.y: 1}}}\n", "unknown output(s) ['y']"),
    ("default: a\nmodels: {m: {kind: telepathy}}\nprofiles: {a: {}}\n", "models.m"),
    ("default: a\nmodels: {m: {kind: embedding, scale: {kind: minmax, min: 1, max: 0}}}\nprofiles: {a: {}}\n",
     "min < max"),
])
def test_model_profile_validation(tmp_path, text, needle):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as exc:
        ProfileSet.load(path)
    assert needle in str(exc.value)


def test_profile_version_covers_model_settings(tmp_path):
    a = ProfileSet.model_validate({"default": "p", "models": {"m": {"kind": "embedding"}},
                                   "profiles": {"p": {"accuracy": {"model": "m"}}}})
    b = ProfileSet.model_validate({"default": "p", "models": {"m": {"kind": "embedding", "compare": "response"}},
                                   "profiles": {"p": {"accuracy": {"model": "m"}}}})
    assert a.get("p").version != b.get("p").version


# --- the batcher itself --------------------------------------------------------------
def test_batcher_limits_and_length_grouping():
    seen: list[list[int]] = []
    gate, started = threading.Event(), threading.Event()

    def run(batch):
        started.set()
        gate.wait(5)
        seen.append(list(batch))
        return [x * 2 for x in batch]

    b = DynamicBatcher("t", run, cost=lambda x: x, max_batch_size=4, max_batch_tokens=100, max_wait_ms=50)
    try:
        first = b.submit([1])  # occupies the worker while the rest queue up
        assert started.wait(5)
        futures = b.submit([5, 90, 6, 7, 80, 8, 9, 85])
        gate.set()
        assert [f.result(5) for f in first + futures] == [2, 10, 180, 12, 14, 160, 16, 18, 170]
        for batch in seen:
            assert len(batch) <= 4
            assert max(batch) * len(batch) <= 100 or len(batch) == 1
        # short items travel together, long ones apart
        assert [5, 6, 7, 8] in [sorted(x) for x in seen]
    finally:
        b.close()


def test_batcher_waits_at_most_max_wait():
    b = DynamicBatcher("t", lambda batch: batch, max_batch_size=64, max_wait_ms=20)
    try:
        t = time.monotonic()
        assert b.submit(["x"])[0].result(5) == "x"
        assert time.monotonic() - t < 2
    finally:
        b.close()


def test_batcher_failure_fails_its_items_only():
    def run(batch):
        if "bad" in batch:
            raise ValueError("boom")
        return batch

    b = DynamicBatcher("t", run, max_batch_size=1)
    try:
        bad, good = b.submit(["bad", "good"])
        with pytest.raises(ValueError):
            bad.result(5)
        assert good.result(5) == "good"
    finally:
        b.close()


def test_batcher_drops_items_nobody_waits_for():
    """Items whose deadline passed while queued, or whose caller cancelled them, never reach the
    model: their futures fail with Expired (or stay cancelled), the rest run."""
    from harmo.server.models.batcher import Expired

    ran: list[str] = []
    gate, started = threading.Event(), threading.Event()

    def run(batch):
        started.set()
        gate.wait(5)
        ran.extend(batch)
        return batch

    b = DynamicBatcher("t", run, max_batch_size=8, max_wait_ms=1)
    try:
        busy = b.submit(["busy"])  # holds the worker while the rest queue
        assert started.wait(5)
        late_deadline = time.monotonic() + 0.05
        late = b.submit(["late-1", "late-2"], deadline=late_deadline)
        cancelled = b.submit(["cancelled"])
        kept = b.submit(["kept"], deadline=time.monotonic() + 30)
        assert cancelled[0].cancel()
        while time.monotonic() <= late_deadline:  # the deadline passes while they wait
            time.sleep(0.01)
        gate.set()
        assert busy[0].result(5) == "busy" and kept[0].result(5) == "kept"
        for f in late:
            with pytest.raises(Expired):
                f.result(5)
        assert cancelled[0].cancelled()
        assert ran == ["busy", "kept"] and b.stats.dropped == 3
    finally:
        b.close()


def test_admission_refuses_up_front_what_cannot_be_done_by_the_deadline():
    """With a throughput estimate, the batcher never starts work it cannot finish in time: a
    call that fits alone but not behind the queue is refused whole (QueueFull, with the time the
    queue needs), a call too big for its deadline even alone runs the part that fits and refuses
    the rest item by item (Overloaded); an idle model always takes one item."""
    from harmo.server.models.batcher import Overloaded

    gate, started = threading.Event(), threading.Event()

    def run(batch):
        started.set()
        gate.wait(10)
        return batch

    b = DynamicBatcher("t", run, cost=lambda x: 100, max_batch_size=4, max_wait_ms=1)
    try:
        b.observe(1000, 1.0)  # 1,000 units/s: 10 items/s
        soon = time.monotonic() + 10  # room for about 8 s of work (headroom 0.8): 80 items
        first = b.submit(list(range(60)), deadline=soon)  # fits: admitted whole
        assert started.wait(5)
        with pytest.raises(QueueFull) as full:  # would fit alone, not behind 60 items
            b.submit(list(range(30)), deadline=soon)
        assert full.value.retry_after_s >= 5
        b2 = DynamicBatcher("u", run, cost=lambda x: 100, max_batch_size=4, max_wait_ms=1)
        try:
            b2.observe(1000, 1.0)
            futures = b2.submit(list(range(200)), deadline=time.monotonic() + 10)  # 20 s of work
            refused = [f for f in futures if f.done() and isinstance(f.exception(0), Overloaded)]
            assert 100 <= len(refused) <= 130 and futures[-1] in refused and futures[0] not in refused
            tiny = DynamicBatcher("v", run, cost=lambda x: 100, max_batch_size=4, max_wait_ms=1)
            try:
                tiny.observe(1, 1.0)  # an estimate far too low must not shut an idle model
                got = tiny.submit(list(range(6)), deadline=time.monotonic() + 10)
                assert sum(not f.done() or f.exception(0) is None for f in got) == 1
            finally:
                gate.set()
                tiny.close()
        finally:
            gate.set()
            b2.close()
        assert [f.result(10) for f in first] == list(range(60))
    finally:
        gate.set()
        b.close()


def test_a_stuck_model_costs_a_request_one_timeout_not_one_per_item(tmp_path, pipeline):
    """The seam: the embedding backend's inference is replaced by one that hangs (a stuck GPU
    cannot be made here); the batcher, registry and pipeline are the real ones."""
    path = tmp_path / "p.yaml"
    path.write_text("default: p\nmodels:\n  m: {kind: embedding, timeout_s: 0.5, batch: {max_batch_size: 2}}\n"
                    "profiles:\n  p: {weights: {accuracy: 1.0}, accuracy: {model: m}}\n")
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        deadline = time.monotonic() + 60
        while not p.models.ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        release = threading.Event()
        batches: list[int] = []

        def stuck(batch):
            batches.append(len(batch))
            release.wait(10)
            return []

        p.models._slots["m"].batcher._run_batch = stuck
        try:
            rs = score(p, [{"task": "open", "response": f"answer {k}", "reference": "a reference answer"}
                           for k in range(12)]).results
            # one deadline for the request: the first batch hangs, the queued ones are never run
            # (12 items one timeout each would have run every batch in turn)
            assert batches == [2], batches
        finally:
            release.set()
        # a model part that could not be computed is unjudged (null under the default policy), never 0
        assert {e.code for r in rs for e in r.errors} == {"model_timeout"} and all(r.reward is None for r in rs)
        assert all(r.accuracy.verdict == "error" for r in rs)
        stats = p.models.status()["m"]["batching"]
        for _ in range(500):  # the batcher counts the dropped ones as it reaches them
            if (stats := p.models.status()["m"]["batching"])["dropped"] >= 10:
                break
            time.sleep(0.01)
        assert stats["dropped"] >= 10, stats  # the queued ones never ran


# --- over HTTP -------------------------------------------------------------------------
def test_http_readyz_and_503(tmp_path, model_files):
    path = tmp_path / "p.yaml"
    path.write_text(profiles_yaml(*model_files, max_queue=2))
    s = Server("--profiles", str(path), env={"HARMO_MATH_WORKERS": "1", "HARMO_MODEL_DEVICE": "cpu"})
    try:
        deadline = time.monotonic() + 120
        while (r := httpx.get(f"{s.url}/readyz")).status_code != 200 and time.monotonic() < deadline:
            assert r.status_code == 503 and r.json()["ready"] is False
            time.sleep(0.3)
        body = r.json()
        assert body["ready"] and body["models"]["minilm"]["ready"] and body["models"]["armo"]["load"] == "lazy"
        ok = httpx.post(f"{s.url}/score", json={"profile": "open_embed", "items": [
            {"task": "open", "response": "Paris", "reference": "Paris"}]}, timeout=60)
        assert ok.status_code == 200 and ok.json()["results"][0]["components"]["accuracy"] > 0.99
        full = httpx.post(f"{s.url}/score", json={"profile": "queue", "items": [
            {"task": "open", "response": "a", "reference": "b"}] * 3}, timeout=60)
        assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
        assert "saturated" in full.text
    finally:
        s.stop()


# --- vision-language reward model ------------------------------------------------------
def png(color, size=(64, 48)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def data_url(raw: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def image_server():
    """A loopback HTTP server with one PNG, for the remote-image setting."""
    import http.server
    import socketserver

    body = png((0, 160, 0), (80, 80))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = socketserver.TCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/green.png", body
    srv.shutdown()


@pytest.fixture(scope="module")
def vlm_pipeline(tmp_path_factory, pipeline):
    from devtools.models import tiny_qwen2vl_rm

    path = tmp_path_factory.mktemp("vl") / "profiles.yaml"
    path.write_text(textwrap.dedent(f"""
        default: vl
        models:
          vl: {{kind: vlm, path: "{tiny_qwen2vl_rm()}", scale: {{kind: sigmoid}}}}
          vl_remote: {{kind: vlm, path: "{tiny_qwen2vl_rm()}", allow_remote_images: true,
                      allow_private_addresses: true, load: lazy}}
          vl_public: {{kind: vlm, path: "{tiny_qwen2vl_rm()}", allow_remote_images: true, load: lazy}}
        profiles:
          vl: {{weights: {{accuracy: 1.0}}, accuracy: {{model: vl}}}}
          vl_remote: {{weights: {{accuracy: 1.0}}, accuracy: {{model: vl_remote}}}}
          vl_public: {{weights: {{accuracy: 1.0}}, accuracy: {{model: vl_public}}}}
    """))
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        deadline = time.monotonic() + 120
        while not p.models.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert p.models.ready(), p.models.status()
        yield p


def test_vlm_scores_images_from_requests(vlm_pipeline):
    red, blue = data_url(png((200, 0, 0))), data_url(png((0, 0, 200), (100, 80)))
    items = [
        {"prompt": "What color is it?", "images": [red], "response": "Red."},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": blue}},
                                                   {"type": "text", "text": "Color?"}]}], "response": "Blue."},
        {"prompt": "What color is it?", "images": [blue], "response": "Red."},
        {"prompt": "no image at all", "response": "fine"},
    ]
    rs = score(vlm_pipeline, items, "vl").results
    for r in rs:
        assert r.accuracy.source == "model:vl" and 0 < r.components["accuracy"] < 1, r
    # the image is part of what is scored
    assert rs[0].components["accuracy"] != pytest.approx(rs[2].components["accuracy"], abs=1e-6)
    # batched with others or alone, the same score
    alone = [score(vlm_pipeline, [it], "vl").results[0].components["accuracy"] for it in items]
    assert [r.components["accuracy"] for r in rs] == pytest.approx(alone, abs=1e-4)


def test_vlm_image_errors_are_typed(vlm_pipeline, image_server):
    url, _ = image_server
    rs = score(vlm_pipeline, [
        {"prompt": "p", "images": [url], "response": "r"},
        {"prompt": "p", "images": ["data:image/png;base64,!!!"], "response": "r"},
        {"prompt": "p", "images": [data_url(b"not a png")], "response": "r"},
        {"prompt": "p", "images": [data_url(png((1, 2, 3)))], "response": "r"},
    ], "vl").results
    assert [r.errors[0].code if r.errors else None for r in rs] == [
        "remote_image_refused", "bad_image", "bad_image", None]
    assert rs[3].accuracy.source == "model:vl"


def test_vlm_fetches_remote_images_where_allowed(vlm_pipeline, image_server):
    url, body = image_server
    remote = score(vlm_pipeline, [{"prompt": "p", "images": [url], "response": "r"}], "vl_remote").results[0]
    inline = score(vlm_pipeline, [{"prompt": "p", "images": [data_url(body)], "response": "r"}], "vl_remote").results[0]
    assert remote.errors == [] and remote.components["accuracy"] == pytest.approx(inline.components["accuracy"])


def test_close_leaves_no_model_thread_running(model_files):
    """A registry closed while its start-up models load: close waits for the load in progress,
    loads nothing after it and stops every batcher, so no thread runs torch when the interpreter
    exits (one that does aborts the process after its work is done)."""
    from harmo.server.models.embedding import EmbeddingConfig
    from harmo.server.models.registry import ModelNotReady, ModelRegistry
    from harmo.server.models.seqcls import SeqClsConfig

    def model_threads():
        return {t for t in threading.enumerate() if t.name == "model-load" or t.name.startswith("batcher-")}

    before = model_threads()
    reg = ModelRegistry({"first": EmbeddingConfig(load="startup"),
                         "second": SeqClsConfig(path=str(model_files[0]), load="startup")}, "cpu")
    reg.start()
    reg.close()
    assert model_threads() - before == set()
    status = reg.status()
    assert [status[n]["ready"] for n in ("first", "second")].count(True) <= 1  # nothing loads after close
    with pytest.raises((ModelNotReady, RuntimeError)):
        reg.submit("second", [ModelInput(response="x")])


def test_vlm_without_value_head_is_refused(tmp_path):
    from devtools.models import tiny_qwen2vl_rm
    from harmo.server.models.registry import ModelRegistry
    from harmo.server.models.vlm import VLMConfig

    reg = ModelRegistry({"plain": VLMConfig(path=str(tiny_qwen2vl_rm(value_head=False)), load="lazy")}, "cpu")
    from harmo.server.models.registry import ModelNotReady

    with pytest.raises(ModelNotReady, match="not a reward model"):
        reg.submit("plain", [ModelInput(response="x")])
    assert reg.status()["plain"]["ready"] is False


def test_remote_images_from_the_servers_own_network_are_refused(vlm_pipeline, image_server):
    """With remote images allowed, URLs that resolve to loopback, private, link-local or metadata
    addresses are refused after resolution (the loopback server holds a real image)."""
    url, _ = image_server
    port = url.split(":")[2].split("/")[0]
    urls = [url, f"http://localhost:{port}/green.png", f"http://[::1]:{port}/x.png",
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/a.png", "http://192.168.1.1/a.png"]
    rs = score(vlm_pipeline, [{"prompt": "p", "images": [u], "response": "r"} for u in urls], "vl_public").results
    for u, r in zip(urls, rs):
        assert [(e.code) for e in r.errors] == ["remote_image_refused"], (u, r.errors)
        assert "not a public address" in r.errors[0].message
