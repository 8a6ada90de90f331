"""The openai SDK's `chat.completions.parse(response_format=PydanticModel)` against `llmkit serve`:
the SDK sends a strict json_schema built from the model, the grammar keeps a random tiny model's
reply inside it, and the SDK hands back the parsed pydantic object."""

from __future__ import annotations

from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field
from test_server import MODEL, LiveServer

from llmkit.core import load_pretrained
from llmkit.core.testing import write_tiny_model
from llmkit.serve.engine import Engine


class Forecast(BaseModel):
    city: str = Field(max_length=12)
    days: int = Field(ge=1, le=7)
    unit: Literal["C", "F"]


class Week(BaseModel):
    forecasts: list[Forecast] = Field(max_length=2)
    note: str | None = Field(max_length=10)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    path = write_tiny_model(tmp_path_factory.mktemp("tiny-parse"), max_position_embeddings=2048)
    server = LiveServer(Engine(load_pretrained(path), num_blocks=256, max_num_seqs=8))
    yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    server.stop()


@pytest.mark.parametrize("schema", [Forecast, Week])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parse_returns_the_pydantic_object(client, schema, seed):
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "The forecast, please."}],
        response_format=schema,
        temperature=1.0,
        seed=seed,
        max_tokens=400,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop", message.content
    assert isinstance(message.parsed, schema)
    assert message.parsed == schema.model_validate_json(message.content)
    assert message.refusal is None
