"""Agent images: where ``image: NAME[:TAG]`` lives in the workflow's repository.

The rule, one for every source: an image is the directory ``NAME/TAG/`` at the root of the
repository that holds the workflow (``TAG`` defaults to ``latest``), and the agent in it is
``agent.wasm`` if present, else ``agent.py``. ``agent.wasm`` wins because it is what
``agentflow build NAME/TAG`` makes from that directory's ``agent.py`` and its dependencies.

    image: agents/classifier:v1.2   ->  agents/classifier/v1.2/agent.wasm | agent.py
    image: agents/qa                ->  agents/qa/latest/agent.wasm | agent.py

An image is resolved when its workflow is reconciled, in the same commit: a missing image makes
the workflow invalid then (never a surprise at run time), and the content's SHA-256 is recorded
with the applied version, so a changed ``agent.py`` under the same tag is a new version too.

This module is pure: finding files is left to an :class:`ImageLookup` (a git tree, a directory).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "DEFAULT_TAG",
    "IMAGE_FILES",
    "IMAGE_PATTERN",
    "MAX_IMAGE_BYTES",
    "ImageLocation",
    "ImageLookup",
    "ResolvedImage",
    "combined_hash",
    "locate",
]

#: ``NAME[:TAG]``: lowercase path segments that cannot be ``.`` or ``..``, an optional tag.
IMAGE_PATTERN = (
    r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$"
)
DEFAULT_TAG = "latest"
#: The files an image directory may hold, in order of preference.
IMAGE_FILES: tuple[tuple[str, Literal["wasm", "python"]], ...] = (
    ("agent.wasm", "wasm"),
    ("agent.py", "python"),
)
#: The largest agent accepted (a componentize-py build with its runtime is ~40 MB).
MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ImageLocation:
    """Where an image reference points, before looking."""

    ref: str
    name: str
    tag: str

    @property
    def directory(self) -> str:
        """The image directory, relative to the repository root."""
        return f"{self.name}/{self.tag}"

    def candidates(self) -> list[tuple[str, Literal["wasm", "python"]]]:
        """The file paths to look for, best first, with the kind each would be."""
        return [(f"{self.directory}/{file}", kind) for file, kind in IMAGE_FILES]

    def missing(self) -> str:
        """Why the image cannot be found (when none of the candidates exists)."""
        return (
            f"image {self.ref!r} not found: expected {self.directory}/agent.wasm "
            f"or {self.directory}/agent.py in the repository"
        )


def locate(ref: str) -> ImageLocation:
    """Split ``NAME[:TAG]``. The manifest schema has already checked the form (no ``..``)."""
    name, sep, tag = ref.partition(":")
    return ImageLocation(ref=ref, name=name, tag=tag if sep else DEFAULT_TAG)


@dataclass(frozen=True, kw_only=True)
class ResolvedImage:
    """An image found: the file, its kind and its content's identity."""

    ref: str
    path: str
    kind: Literal["wasm", "python"]
    sha256: str
    size: int
    blob: str = ""  # the git blob id, where it came from git (to read the content again)

    def record(self) -> dict[str, Any]:
        """What is stored with an applied workflow version."""
        out = asdict(self)
        del out["ref"]
        return out


class ImageLookup(Protocol):
    """Finds images in one revision of a repository (or in a directory)."""

    def resolve(self, ref: str) -> ResolvedImage | str:
        """The image, or a one-line reason it cannot be used."""
        ...

    def read(self, image: ResolvedImage) -> bytes:
        """The image's content (checked against its SHA-256)."""
        ...


def combined_hash(spec_hash: str, images: Sequence[ResolvedImage]) -> str:
    """The version hash: the spec's hash, and the content of every image it uses.

    Without images (nothing resolved, as in plain validation) it is the spec's hash itself.
    """
    if not images:
        return spec_hash
    parts = {i.ref: i.sha256 for i in images}
    text = json.dumps({"spec": spec_hash, "images": parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
