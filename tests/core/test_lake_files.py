"""Reading the lake's files through Store while compaction replaces them."""

from __future__ import annotations

import pytest

from shared.core.errors import GraphlakeError
from shared.core.lake_files import read_folder, read_named
from shared.core.storage import LocalStore

DAY = "t/year=2026/month=06/day=01/"


def test_a_folder_read_picks_up_the_file_that_replaced_one_gone_since_the_listing(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.write(f"{DAY}part-a.parquet", b"a")
    store.write(f"{DAY}part-b.parquet", b"b")
    store.write(f"{DAY}notes.txt", b"not a lake file")
    files = read_folder(store, "t/")
    assert next(files).name == f"{DAY}part-a.parquet"
    # Compaction finishes between the listing and the read of b: b's rows are in c now.
    store.write(f"{DAY}part-c.parquet", b"c")
    store.delete(f"{DAY}part-b.parquet")
    assert [(f.name, f.data) for f in files] == [(f"{DAY}part-c.parquet", b"c")]


def test_a_folder_whose_files_vanish_on_both_passes_is_an_error_not_a_short_read(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.write(f"{DAY}part-a.parquet", b"a")
    store.write(f"{DAY}part-b.parquet", b"b")
    files = read_folder(store, "t/")
    next(files)
    store.write(f"{DAY}part-c.parquet", b"c")
    store.write(f"{DAY}part-d.parquet", b"d")
    store.delete(f"{DAY}part-b.parquet")
    assert next(files).name == f"{DAY}part-c.parquet"
    store.delete(f"{DAY}part-d.parquet")
    with pytest.raises(GraphlakeError, match="vanished while read twice"):
        next(files)


def test_named_files_gone_since_the_listing_are_passed_over(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.write(f"{DAY}part-a.parquet", b"a")
    names = [f"{DAY}part-a.parquet", f"{DAY}part-gone.parquet"]
    assert list(read_named(store, names)) == [(f"{DAY}part-a.parquet", b"a")]
