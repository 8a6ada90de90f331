"""ops.native_step: torch's own ops on one thread inside, native kernels on torch's count, all restored."""

import pytest
import torch

from llmkit.core import ops


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_native_step_gives_kernels_torch_threads_and_torch_one(two_threads):
    assert ops.native_threads() == 2
    with ops.native_step():
        assert torch.get_num_threads() == 1
        assert ops.native_threads() == 2
    assert torch.get_num_threads() == 2
    assert ops.native_threads() == 2


def test_native_step_restores_after_an_error_and_nests(two_threads):
    with pytest.raises(RuntimeError, match="boom"), ops.native_step(3):
        with ops.native_step():
            assert ops.native_threads() == 3  # the inner block keeps the outer block's kernel threads
        assert ops.native_threads() == 3
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    assert ops.native_threads() == 2
