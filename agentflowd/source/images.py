"""Finding agent images in a git commit or a directory (the rule is in
:mod:`agentflowd.manifest.images`).

Both lookups refuse symlinks (an image must be the committed bytes, not a pointer elsewhere)
and files over :data:`~agentflowd.manifest.images.MAX_IMAGE_BYTES`, and hash each content once:
a git lookup remembers digests by blob id across commits (``digests``), so a pass over 1,000
workflows reads only the agents that changed.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from agentflowd.errors import SourceError
from agentflowd.manifest.images import MAX_IMAGE_BYTES, ResolvedImage, locate

__all__ = ["DirectoryImages", "GitImages"]

#: Digests remembered per source; cleared when it grows past this.
MAX_DIGESTS = 50_000


class GitImages:
    """Images of one commit's tree. pygit2 objects: use from the git thread only."""

    def __init__(
        self,
        repo: pygit2.Repository,
        tree: pygit2.Tree,
        *,
        digests: dict[str, tuple[str, int]] | None = None,
        max_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        self.repo = repo
        self.tree = tree
        self.digests = digests if digests is not None else {}
        self.max_bytes = max_bytes

    def resolve(self, ref: str) -> ResolvedImage | str:
        """The image ``ref`` in this tree, or why it cannot be used."""
        where = locate(ref)
        for path, kind in where.candidates():
            try:
                entry = self.tree[path]
            except KeyError:
                continue
            if entry.filemode == FileMode.LINK:
                return f"image {ref!r}: {path} is a symlink; an image must be a committed file"
            if entry.filemode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                return f"image {ref!r}: {path} is not a file"
            blob_id = str(entry.id)
            known = self.digests.get(blob_id)
            if known is None:
                _type, size = self.repo.odb.read_header(entry.id)
                if size > self.max_bytes:
                    return (
                        f"image {ref!r}: {path} is {size:,} bytes, over the limit of "
                        f"{self.max_bytes:,} bytes"
                    )
                data = self._data(blob_id)
                known = (hashlib.sha256(data).hexdigest(), len(data))
                if len(self.digests) >= MAX_DIGESTS:
                    self.digests.clear()
                self.digests[blob_id] = known
            sha, size = known
            return ResolvedImage(ref=ref, path=path, kind=kind, sha256=sha, size=size, blob=blob_id)
        return where.missing()

    def read(self, image: ResolvedImage) -> bytes:
        """The content of a resolved image, checked against its digest."""
        data = self._data(image.blob)
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise SourceError(f"image {image.ref!r}: {image.path} changed while being read")
        return data

    def _data(self, blob_id: str) -> bytes:
        try:
            blob = self.repo[blob_id]
        except (KeyError, ValueError) as exc:
            raise SourceError(f"git object {blob_id} is missing from the repository") from exc
        assert isinstance(blob, pygit2.Blob)
        return blob.data


class DirectoryImages:
    """Images in a directory tree (``agentflow validate DIR``, ``agentflow agent run IMAGE``)."""

    def __init__(self, root: Path, *, max_bytes: int = MAX_IMAGE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def resolve(self, ref: str) -> ResolvedImage | str:
        """The image ``ref`` under the root, or why it cannot be used."""
        where = locate(ref)
        for path, kind in where.candidates():
            file = self.root / path
            try:
                info = file.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode) or not file.resolve().is_relative_to(self.root.resolve()):
                return f"image {ref!r}: {path} is a symlink; an image must be a real file"
            if not stat.S_ISREG(info.st_mode):
                return f"image {ref!r}: {path} is not a file"
            if info.st_size > self.max_bytes:
                return (
                    f"image {ref!r}: {path} is {info.st_size:,} bytes, over the limit of "
                    f"{self.max_bytes:,} bytes"
                )
            data = file.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            return ResolvedImage(ref=ref, path=path, kind=kind, sha256=digest, size=len(data))
        return where.missing()

    def read(self, image: ResolvedImage) -> bytes:
        """The content of a resolved image, checked against its digest."""
        data = (self.root / image.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise SourceError(f"image {image.ref!r}: {image.path} changed while being read")
        return data
