"""The engine's default activations for layers kept as stored: int8 on the CPU, float32 on other devices
(the CUDA kernels refuse int8 activations). The CPU default and an explicit choice: test_engine.py."""

from __future__ import annotations

from unittest import mock

import torch

from llmkit.core.models.quantized import QuantizedLinear
from llmkit.serve import Engine
from llmkit.serve.activations import apply_default_activations, default_activations


def test_int8_on_the_cpu_float32_elsewhere():
    assert default_activations("cpu") == "int8"
    assert default_activations(torch.device("cuda", 1)) == "float32"
    assert default_activations("meta") == "float32"


def test_a_model_on_another_device_gets_float32(tiny_model_dir):
    model = Engine(str(tiny_model_dir), quantize="q8_0", num_blocks=16).pretrained.model
    stored = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert stored and {m.activations for m in stored} == {"int8"}
    on_gpu = mock.PropertyMock(return_value=torch.device("cuda"))  # where the CUDA kernels would run it
    with mock.patch.object(type(model), "device", on_gpu):
        apply_default_activations(model)
    assert {m.activations for m in stored} == {"float32"}
