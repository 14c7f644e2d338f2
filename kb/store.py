"""Array stores: fixed-width rows appended to a flat binary file and read back memory-mapped.

Preprocessed spectra (and, in inference/, embeddings) are too many for one database blob each: a
survey of 3 million spectra is 44 GB of float32 flux. They live in flat files that any process can
``np.memmap``; the database keeps, for each spectrum, its row number.

A store is a folder with ``<name>.bin`` (rows of ``width`` values, C order) and ``<name>.json`` (width,
dtype and the number of committed rows). Appending writes and fsyncs the data first, then replaces the
JSON atomically, so a crash leaves at worst some uncommitted bytes past the end that the next writer
overwrites: readers never see a half-written row. Writers that fill disjoint ranges side by side (the
parts of an embedding, on several workers) ``place`` their rows past the committed ones, and one of them
``commit``s a range once every row in it is written.

Folders written whole (an index beside its sidecar, a checkpoint) go through ``folder_write``: filled
under a temporary name and renamed into place, so a reader sees the old folder or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np


class RowStore:
    """Rows of ``width`` values of ``dtype`` in ``folder/name.bin``; ``rows`` of them committed."""

    def __init__(self, folder: str | Path, name: str, *, width: int, dtype: str = "float32"):
        self.folder = Path(folder)
        self.name = name
        self.width = int(width)
        self.dtype = np.dtype(dtype)
        self.data_path = self.folder / f"{name}.bin"
        self.meta_path = self.folder / f"{name}.json"
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.meta_path.exists():
            meta = json.loads(self.meta_path.read_text())
            if meta["width"] != self.width or np.dtype(meta["dtype"]) != self.dtype:
                raise ValueError(
                    f"{self.meta_path}: holds rows of {meta['width']} {meta['dtype']}, "
                    f"not {self.width} {self.dtype.name}"
                )
        else:
            self._commit(0)

    @property
    def rows(self) -> int:
        return int(json.loads(self.meta_path.read_text())["rows"])

    @property
    def row_bytes(self) -> int:
        return self.width * self.dtype.itemsize

    def append(self, block: np.ndarray) -> int:
        """Append (n, width) rows; returns the index of the first one. Durable when it returns."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.width:
            raise ValueError(f"{self.name}: expected rows of width {self.width}, got shape {block.shape}")
        first = self.rows
        with open(self.data_path, "r+b" if self.data_path.exists() else "wb") as handle:
            handle.seek(first * self.row_bytes)
            handle.write(block.tobytes())
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        self._commit(first + len(block))
        return first

    def write_rows(self, first: int, block: np.ndarray) -> None:
        """Overwrite or extend from row ``first`` (<= rows); commits up to first + len(block)."""
        if first > self.rows:
            raise ValueError(f"{self.name}: cannot write at row {first}, only {self.rows} rows exist")
        block = np.ascontiguousarray(block, dtype=self.dtype)
        with open(self.data_path, "r+b" if self.data_path.exists() else "wb") as handle:
            handle.seek(first * self.row_bytes)
            handle.write(block.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        self._commit(max(self.rows, first + len(block)))

    def place(self, first: int, block: np.ndarray) -> None:
        """Write (n, width) rows from row ``first``, anywhere, without committing them (readers see them once
        ``commit`` covers them); durable when it returns. Other processes may place other rows meanwhile."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.width:
            raise ValueError(f"{self.name}: expected rows of width {self.width}, got shape {block.shape}")
        descriptor = os.open(self.data_path, os.O_WRONLY | os.O_CREAT, 0o644)  # never truncates another's rows
        data, offset = memoryview(block.tobytes()), first * self.row_bytes
        try:
            while data:  # one call writes at most 2 GB
                written = os.pwrite(descriptor, data, offset)
                data, offset = data[written:], offset + written
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def commit(self, rows: int) -> None:
        """Declare the first ``rows`` rows written, every one of them (``place``); readers see them from now."""
        size = self.data_path.stat().st_size if self.data_path.exists() else 0
        if rows * self.row_bytes > size:
            raise ValueError(f"{self.name}: cannot commit {rows} rows, only {size // self.row_bytes} are written")
        self._commit(rows)

    def truncate(self, rows: int) -> None:
        """Forget every row from ``rows`` on (rows that no database record points to)."""
        if rows < self.rows:
            self._commit(rows)
            with open(self.data_path, "r+b") as handle:
                handle.truncate(rows * self.row_bytes)

    def read(self) -> np.ndarray:
        """The committed rows as a read-only (rows, width) memory map (an empty array if none)."""
        rows = self.rows
        if rows == 0:
            return np.empty((0, self.width), dtype=self.dtype)
        return np.memmap(self.data_path, dtype=self.dtype, mode="r", shape=(rows, self.width))

    def _commit(self, rows: int) -> None:
        meta = {"width": self.width, "dtype": self.dtype.name, "rows": int(rows)}
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.meta_path)


class SpectrumStore:
    """Preprocessed spectra: ``flux`` (rows, n_pixels) float32, ``valid`` (rows, n_pixels) bool and ``ivar``
    (rows, n_pixels) float32, the inverse variance of the normalised flux (0 where not valid).

    Row i of each belongs to the spectrum whose database record has ``store_row == i``.
    """

    def __init__(self, folder: str | Path, *, n_pixels: int):
        self.folder = Path(folder)
        if self.lacks_ivar(self.folder):
            raise ValueError(
                f"{self.folder} was written before spectra kept their inverse variance: run "
                "`manage.py upgrade_store`, which reads each spectrum's file again (nothing is changed until then)"
            )
        self.flux_rows = RowStore(folder, "flux", width=n_pixels, dtype="float32")
        self.valid_rows = RowStore(folder, "valid", width=n_pixels, dtype="bool")
        self.ivar_rows = RowStore(folder, "ivar", width=n_pixels, dtype="float32")

    @staticmethod
    def lacks_ivar(folder: str | Path) -> bool:
        """A store written before ``ivar`` was kept: flux and valid rows, no ivar."""
        return (Path(folder) / "flux.json").exists() and not (Path(folder) / "ivar.json").exists()

    @staticmethod
    def ivar_add(folder: str | Path, n_pixels: int, blocks) -> int:
        """Give such a store its ivar rows: ``blocks`` of (m, n_pixels) rows, in row order, as many rows as
        the flux holds. They are written under another name and moved into place only when complete, so an
        interrupted upgrade leaves the store as it was. Returns the rows written."""
        folder = Path(folder)
        staging = RowStore(folder, "ivar-new", width=n_pixels, dtype="float32")
        staging.truncate(0)
        for block in blocks:
            staging.append(block)
        expected = RowStore(folder, "flux", width=n_pixels, dtype="float32").rows
        if staging.rows != expected:
            raise ValueError(f"{staging.rows} ivar rows written for {expected} flux rows: the store is left as it was")
        os.replace(staging.data_path, folder / "ivar.bin")
        os.replace(staging.meta_path, folder / "ivar.json")
        return expected

    @property
    def _parts(self) -> tuple[RowStore, RowStore, RowStore]:
        return self.flux_rows, self.valid_rows, self.ivar_rows

    def repair(self) -> None:
        """After a crash between the appends, keep only rows present in every file. Only the writer does it,
        before it appends (readers read the rows every file has): a reader repairing while an ingest appends
        would cut the rows it has just appended to one file."""
        rows = self.rows
        for part in self._parts:
            part.truncate(rows)

    @property
    def rows(self) -> int:
        return min(part.rows for part in self._parts)

    def append(self, flux: np.ndarray, valid: np.ndarray, ivar: np.ndarray) -> int:
        """Append (n, n_pixels) flux, valid and ivar rows; returns the first row index."""
        if not flux.shape == valid.shape == ivar.shape:
            raise ValueError(f"flux {flux.shape}, valid {valid.shape} and ivar {ivar.shape} differ in shape")
        self.repair()
        first = self.flux_rows.append(flux)
        self.valid_rows.append(valid)
        self.ivar_rows.append(ivar)
        return first

    def truncate(self, rows: int) -> None:
        for part in self._parts:
            part.truncate(rows)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(flux, valid), both memory-mapped (rows, n_pixels)."""
        rows = self.rows
        return self.flux_rows.read()[:rows], self.valid_rows.read()[:rows]

    def read_ivar(self) -> np.ndarray:
        """ivar, memory-mapped (rows, n_pixels)."""
        return self.ivar_rows.read()[: self.rows]


def folder_write(folder: str | Path, write: Callable[[Path], None]) -> None:
    """Write ``folder`` atomically: ``write`` fills a new folder beside it (``NAME.tmp``), which is then
    renamed into place; the previous folder, if any, goes to ``NAME.old`` and is deleted. A reader sees
    the old folder or the new one, never half of one. What a write that stopped midway left is cleared
    first (``folder_leftovers_clear``)."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    folder_leftovers_clear(folder)
    tmp.mkdir(parents=True)
    write(tmp)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def folder_leftovers_clear(folder: str | Path) -> None:
    """Delete what a ``folder_write`` into ``folder`` that stopped midway left beside it (``.tmp``, ``.old``)."""
    folder = Path(folder)
    for leftover in (folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")):
        shutil.rmtree(leftover, ignore_errors=True)
