"""A stream stored as numbered objects ("parts"), for a full backup larger than memory and
than the disk it may borrow: the writer cuts what it is given into parts and uploads each from
a temporary file while the next one fills; the reader downloads the next part while the
current one is read. At most two parts are on disk on either side, and each part is checked
against its size and sha256 (kept in the backup's manifest) before a byte of it is used.

Plain objects and single PUTs (kuberds.agent.objectstore has no multipart upload): each part
is retried whole, and a part size of 256 MiB keeps a terabyte under 4,000 objects.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kuberds.agent.objectstore import ObjectStore, file_sha256
from kuberds.agent.sealed import SealError

PART_BYTES = 256 << 20


@dataclass(frozen=True)
class Part:
    key: str
    bytes: int  # sealed
    sha256: str  # of the sealed bytes


class PartWriter:
    """A file-like sink that cuts what it is given into parts and uploads each from a temporary
    file on a thread of its own, one part behind the writer (the writer waits for it otherwise)."""

    def __init__(self, store: ObjectStore, key: Callable[[int], str], work_dir: Path, part_bytes: int = PART_BYTES):
        self.store, self.key, self.work_dir, self.part_bytes = store, key, work_dir, part_bytes
        self.parts: list[Part] = []
        self.queue: queue.Queue[tuple[Path, str, int, int] | None] = queue.Queue(maxsize=1)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._upload, name="backup-upload", daemon=True)
        self.thread.start()
        self.index, self.file, self.digest, self.size = 0, None, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self.file is None:
                self.file = (self.work_dir / f".part-{self.index:05d}.upload").open("wb")
            room = self.part_bytes - self.size
            self.file.write(view[:room])
            self.digest.update(view[:room])
            self.size += len(view[:room])
            view = view[room:]
            if self.size >= self.part_bytes:
                self._hand_over()
        return len(data)

    def _hand_over(self) -> None:
        if self.failure is not None:
            raise self.failure
        path = Path(self.file.name)
        self.file.close()
        self.queue.put((path, self.digest.hexdigest(), self.size, self.index))
        self.index, self.file, self.digest, self.size = self.index + 1, None, hashlib.sha256(), 0

    def _upload(self) -> None:
        while (item := self.queue.get()) is not None:
            path, digest, size, index = item
            try:
                if self.failure is None:
                    self.store.put_file(self.key(index), path)
                    self.parts.append(Part(self.key(index), size, digest))
            except BaseException as error:  # handed to the writer's thread
                self.failure = error
            finally:
                path.unlink(missing_ok=True)

    def close(self) -> list[Part]:
        if self.file is not None:
            self._hand_over()
        self.queue.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        return sorted(self.parts, key=lambda p: p.key)

    def abort(self) -> list[Part]:
        """Stops; the parts already uploaded, for the caller to delete."""
        if self.file is not None:
            self.file.close()
            Path(self.file.name).unlink(missing_ok=True)
            self.file = None
        self.failure = self.failure or RuntimeError("aborted")
        self.queue.put(None)
        self.thread.join()
        return list(self.parts)


class PartReader:
    """The sealed stream, read part after part; the next part downloads while this one is read."""

    def __init__(self, store: ObjectStore, parts: tuple[Part, ...], work_dir: Path):
        self.store, self.parts, self.work_dir = store, list(parts), work_dir
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="restore-download")
        self.next = self._fetch(0)
        self.current: BinaryIO | None = None
        self.index = -1

    def _fetch(self, index: int) -> concurrent.futures.Future | None:
        if index >= len(self.parts):
            return None
        return self.pool.submit(self._download, self.parts[index], self.work_dir / f".part-{index:05d}.download")

    def _download(self, part: Part, path: Path) -> Path:
        self.store.get_to_file(part.key, path)
        if path.stat().st_size != part.bytes or file_sha256(path) != part.sha256:
            raise SealError(f"{part.key}: not the part the manifest names (size or sha256 differs)")
        return path

    def read(self, size: int = -1) -> bytes:
        while True:
            if self.current is not None and (data := self.current.read(size)):
                return data
            if self.next is None:
                return b""
            self._advance()

    def _advance(self) -> None:
        self.close_current()
        path = self.next.result()
        self.index += 1
        self.next = self._fetch(self.index + 1)
        self.current = path.open("rb")
        path.unlink()  # the open file stays readable; nothing is left behind

    def close_current(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def close(self) -> None:
        self.close_current()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for leftover in self.work_dir.glob(".part-*.download"):
            leftover.unlink(missing_ok=True)
