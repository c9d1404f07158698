"""Format adherence."""
from __future__ import annotations

import pytest

from harmo.server.rewards.format import format_reward


@pytest.mark.parametrize("response,binary,partial", [
    ("<think>because</think><answer>4</answer>", 1.0, 1.0),
    ("  <think>a\nb</think>\n<answer>4</answer>\n", 1.0, 1.0),
    ("<answer>4</answer>", 0.0, 2 / 5),                      # no reasoning block
    ("<think>x</think>4", 0.0, 2 / 5),                        # no answer block
    ("<answer>4</answer><think>x</think>", 0.0, 4 / 5),       # wrong order
    ("<think>x</think><answer>4</answer> trailing text", 0.0, 4 / 5),
    ("<think>x</think><think>y</think><answer>4</answer>", 0.0, 2 / 5),
    ("plain text", 0.0, 0.0),
])
def test_default_layout(response, binary, partial):
    assert format_reward(response) == binary
    assert format_reward(response, mode="partial") == pytest.approx(partial)


def test_custom_pattern():
    pattern = r"^.*\\boxed\{.+\}.*$"
    assert format_reward("so \\boxed{4}.", pattern=pattern) == 1.0
    assert format_reward("so 4.", pattern=pattern) == 0.0
