"""The names the served model answers to, so a client of the hosted API or of llama.cpp's server works
by changing only its base URL.

The model answers to its GGUF file stem, to every ``--model-alias``, and, when the GGUF has the shape of
Gemma 4 E4B or E2B, to the hosted API's id for it. A request without ``model`` means the served model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from edge.errors import ModelNotFoundError

log = logging.getLogger("edge.server")

# (block count, embedding length) of the Gemma 4 models the hosted API serves -> its model id.
# The shape decides, as in llama.cpp's own model-type detection (35 layers: E2B, 42: E4B): names in
# general.name / general.size_label are free text that conversions and fine-tunes set differently
# (a size label computed from the parameter count reads "7.5B"), while the shape is fixed by the model.
HOSTED_GEMMA4_IDS: dict[tuple[int, int], str] = {
    (42, 2560): "gemma-4-e4b",
    (35, 1536): "gemma-4-e2b",
}


def hosted_model_id(metadata: Mapping[str, str]) -> str | None:
    """The hosted API's id for a Gemma 4 E4B/E2B GGUF, from its metadata; None for any other model."""
    architecture = metadata.get("general.architecture")
    if architecture != "gemma4":
        return None
    try:
        shape = (int(metadata[f"{architecture}.block_count"]), int(metadata[f"{architecture}.embedding_length"]))
    except (KeyError, ValueError):
        return None
    return HOSTED_GEMMA4_IDS.get(shape)


@dataclass
class ServedModels:
    """Every id of the one served model; ``primary`` is the id responses report."""

    primary: str
    ids: tuple[str, ...]
    any_model: bool = False
    _announced: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, file_stem: str, aliases: Sequence[str], metadata: Mapping[str, str],
              any_model: bool = False) -> "ServedModels":
        """The first alias (else the file stem) is primary: it is what responses say in ``model``."""
        hosted = hosted_model_id(metadata)
        ids = tuple(dict.fromkeys([*aliases, file_stem, *([hosted] if hosted else [])]))
        return cls(primary=ids[0], ids=ids, any_model=any_model)

    def resolve(self, requested: str | None, param: str = "model") -> str:
        """The id a response reports for a request naming ``requested``: that id when it is one of the
        served model's, the primary id when ``model`` was left out or ``--any-model`` mapped a foreign name
        (a response never claims to come from a model that is not here)."""
        if requested is None:
            return self.primary
        if requested in self.ids:
            return requested
        if self.any_model:
            if not self._announced:
                log.info("--any-model: request for unknown model %r (and every later one) served by %r",
                         requested, self.primary)
                self._announced = True
            return self.primary
        served = ", ".join(f"'{model_id}'" for model_id in self.ids)
        raise ModelNotFoundError(
            f"The model '{requested}' does not exist; this server serves {served} (see /v1/models)", param=param)
