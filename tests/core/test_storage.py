"""The storage seam: the same contract on a local folder and on Azurite (via the store_url fixture)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from shared.core.errors import ConfigError, EndpointUnreachable, PreconditionFailed
from shared.core.storage import BlobStore, LocalStore, open_store

# Separate interpreters, like two Function hosts: nothing (locks, sockets, clients) is inherited.
SPAWN = mp.get_context("spawn")


def test_read_missing_is_none(store_url: str) -> None:
    assert open_store(store_url).read("nothing/here.json") is None


def test_write_then_read_returns_data_and_the_same_etag(store_url: str) -> None:
    store = open_store(store_url)
    payload = bytes(range(256)) * 10
    etag = store.write("a/b/c.bin", payload)
    assert store.read("a/b/c.bin") == (payload, etag)
    empty_etag = store.write("empty", b"")
    assert store.read("empty") == (b"", empty_etag)


def test_every_write_changes_the_etag_even_with_the_same_content(store_url: str) -> None:
    store = open_store(store_url)
    etags = [store.write("same", b"x") for _ in range(5)]
    assert len(set(etags)) == 5
    assert store.read("same") == (b"x", etags[-1])


def test_list_is_recursive_sorted_and_filters_by_string_prefix(store_url: str) -> None:
    store = open_store(store_url)
    names = ["b/2.json", "a/x/1.json", "ab/1.json", "a/1.json", "c.json", "a/x/y/z.json"]
    for name in random.sample(names, len(names)):
        store.write(name, b"{}")
    assert list(store.list()) == sorted(names)
    assert list(store.list("a/")) == ["a/1.json", "a/x/1.json", "a/x/y/z.json"]
    # A string prefix, as Blob Storage defines it, not a folder: "a" also matches "ab/...".
    assert list(store.list("a")) == ["a/1.json", "a/x/1.json", "a/x/y/z.json", "ab/1.json"]
    assert list(store.list("a/x/1")) == ["a/x/1.json"]
    assert list(store.list("zzz")) == []


def test_delete_removes_and_missing_is_fine(store_url: str) -> None:
    store = open_store(store_url)
    store.write("d/one", b"1")
    store.write("d/two", b"2")
    store.delete("d/one")
    store.delete("d/one")
    store.delete("never/was")
    assert store.read("d/one") is None
    assert list(store.list()) == ["d/two"]


def test_if_match_succeeds_only_with_the_current_etag(store_url: str) -> None:
    store = open_store(store_url)
    first = store.write("wm.json", b"v1")
    second = store.write("wm.json", b"v2", if_match=first)
    with pytest.raises(PreconditionFailed, match="wm.json"):
        store.write("wm.json", b"stale", if_match=first)
    assert store.read("wm.json") == (b"v2", second)
    with pytest.raises(PreconditionFailed):
        store.write("absent.json", b"x", if_match=second)
    assert store.read("absent.json") is None


def test_create_only_refuses_an_existing_blob(store_url: str) -> None:
    store = open_store(store_url)
    etag = store.write("claim", b"mine", create_only=True)
    with pytest.raises(PreconditionFailed, match="claim"):
        store.write("claim", b"theirs", create_only=True)
    assert store.read("claim") == (b"mine", etag)
    store.delete("claim")
    store.write("claim", b"again", create_only=True)
    assert store.read("claim").data == b"again"


def test_contradictory_conditions_are_refused(store_url: str) -> None:
    with pytest.raises(ValueError, match="contradict"):
        open_store(store_url).write("x", b"", if_match="etag", create_only=True)


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/", "../escape", "a/../b", "a/.hidden", ".lock", "a\\b"])
def test_bad_names_are_refused_the_same_way_on_both_backends(store_url: str, name: str) -> None:
    with pytest.raises(ValueError, match="invalid blob name"):
        open_store(store_url).write(name, b"x")


@pytest.mark.parametrize("prefix", ["../", "a/../", "a//"])
def test_list_refuses_a_prefix_that_leaves_the_store(store_url: str, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid blob name"):
        list(open_store(store_url).list(prefix))


def test_a_prefix_in_the_url_scopes_the_store(store_url: str) -> None:
    root = open_store(store_url)
    scoped = open_store(f"{store_url}/tenant-a/state")
    scoped.write("wm.json", b"1")
    root.write("other.json", b"2")
    assert list(scoped.list()) == ["wm.json"]
    assert root.read("tenant-a/state/wm.json").data == b"1"
    assert list(root.list()) == ["other.json", "tenant-a/state/wm.json"]


# --- true concurrency: separate processes race for the same blob -------------------------------------

ROUNDS = 12
WORKERS = 4


def _race_worker(url: str, worker: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    try:
        store = open_store(url)
        for rnd in range(ROUNDS):
            barrier.wait()  # every write of the previous round has finished
            seen = None
            if rnd == 0:
                attempt = lambda: store.write("race", f"0:{worker}".encode(), create_only=True)  # noqa: E731
            else:
                seen, etag = store.read("race")
                attempt = lambda: store.write("race", f"{rnd}:{worker}".encode(), if_match=etag)  # noqa: E731
            barrier.wait()  # every worker holds the same etag before anyone writes
            try:
                attempt()
                won = True
            except PreconditionFailed:
                won = False
            results.put((rnd, worker, won, seen))
    except BaseException as exc:  # reported to the test instead of dying silently
        results.put(("error", worker, repr(exc), None))
        barrier.abort()


def test_racing_processes_exactly_one_conditional_write_wins_per_round(store_url: str) -> None:
    barrier = SPAWN.Barrier(WORKERS, timeout=60)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=_race_worker, args=(store_url, w, barrier, results)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(WORKERS * ROUNDS)]
    for p in procs:
        p.join(timeout=30)
    errors = [o for o in outcomes if o[0] == "error"]
    assert not errors, errors

    winners = {}
    for rnd in range(ROUNDS):
        this_round = [o for o in outcomes if o[0] == rnd]
        assert len(this_round) == WORKERS
        won = [worker for _, worker, ok, _ in this_round if ok]
        assert len(won) == 1, f"round {rnd}: winners {won}"
        winners[rnd] = won[0]
        if rnd:
            # Everyone read what the previous round's single winner wrote, so no update was lost.
            assert {seen for *_, seen in this_round} == {f"{rnd - 1}:{winners[rnd - 1]}".encode()}
    assert open_store(store_url).read("race").data == f"{ROUNDS - 1}:{winners[ROUNDS - 1]}".encode()


# --- local atomicity: no reader and no crash ever exposes half a file ------------------------------

BIG = 4 * 1024 * 1024


def _rewrite_forever(root: str, stop) -> None:  # noqa: ANN001 - a multiprocessing Event
    """Rewrite big.bin with a new byte each time until stop is set (or until killed)."""
    store = LocalStore(root)
    i = 0
    while not stop.is_set():
        i += 1
        store.write("big.bin", bytes([i % 256]) * BIG)


def _assert_whole(data: bytes) -> None:
    assert len(data) == BIG and data == data[:1] * BIG, "saw a partial or mixed file"


def test_local_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write("big.bin", b"\0" * BIG)
    stop = SPAWN.Event()
    writer = SPAWN.Process(target=_rewrite_forever, args=(str(tmp_path), stop))
    writer.start()
    # Read until 40 versions went by under the reader, however slowly either side runs.
    etags = set()
    while len(etags) < 40:
        data, etag = store.read("big.bin")
        _assert_whole(data)
        etags.add(etag)
        assert list(store.list()) == ["big.bin"]  # temp files never show
    stop.set()
    writer.join()
    assert writer.exitcode == 0


@pytest.mark.kill
def test_local_sigkill_mid_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    rng = random.Random(7)
    for attempt in range(2):  # the second finds the first's dead writer and its lock
        never = SPAWN.Event()  # held here: Process.start() drops its arguments before the child has read them
        writer = SPAWN.Process(target=_rewrite_forever, args=(str(tmp_path), never))
        writer.start()
        # Killed after it replaced the file k times: an event of the writer, wherever its next write then is.
        seen, versions = set(), rng.randint(2, 6)
        while len(seen) < versions:
            # A writer that died on its own would leave this loop waiting for versions that never come.
            assert writer.is_alive(), f"the writer exited with {writer.exitcode} before it was killed"
            found = store.read("big.bin")
            if found is not None:
                seen.add(found.etag)
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        assert writer.exitcode == -signal.SIGKILL
        _assert_whole(store.read("big.bin").data)
        assert list(store.list()) == ["big.bin"]
        # The dead writer's lock went with it: the next conditional write goes through.
        etag = store.read("big.bin").etag
        store.write("big.bin", b"\1" * BIG, if_match=etag)


def test_local_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    etag = store.write("f.json", b"old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write("f.json", b"new")
    assert store.read("f.json") == (b"old", etag)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["f.json"]


def test_local_files_get_the_usual_permissions(tmp_path: Path) -> None:
    # Others (a DuckDB user, a backup job) must be able to read the lake, as with any file the umask allows.
    old = os.umask(0o022)
    try:
        LocalStore(tmp_path).write("lake/f.parquet", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "lake" / "f.parquet").stat().st_mode & 0o777 == 0o644


# --- URLs, credentials and error mapping -----------------------------------------------------------

def test_local_urls(tmp_path: Path) -> None:
    open_store(f"file://{tmp_path}/via-url").write("x", b"1")
    assert (tmp_path / "via-url" / "x").read_bytes() == b"1"
    assert open_store(str(tmp_path / "via-url")).read("x").data == b"1"
    assert open_store(f"file://{tmp_path}/via-url").url == f"file://{tmp_path}/via-url"


@pytest.mark.parametrize("url", [
    "",
    "s3://bucket/lake",
    "file://otherhost/lake",
    "http://example.com/devstoreaccount1/lake",  # plain http only for the local emulator
    "https://acct.blob.core.windows.net",
    "https://acct.blob.core.windows.net/Bad_Container",
    "http://127.0.0.1:10000/devstoreaccount1",
])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_azure_url_uses_the_default_credential_not_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import DefaultAzureCredential

    from shared.core import storage

    storage._default_credential.cache_clear()
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    store = open_store("https://acct.blob.core.windows.net/lake/prefix")
    assert isinstance(store, BlobStore)
    assert isinstance(store._container.credential, DefaultAzureCredential)
    assert store._container.account_name == "acct"
    # Both stores of a process share the credential, hence one token.
    assert open_store("https://acct.blob.core.windows.net/state")._container.credential is store._container.credential
    storage._default_credential.cache_clear()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on: bound but not listening, so nobody else takes it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_endpoint_is_one_clear_error_fast(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/devstoreaccount1/lake"
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable, match=f"127.0.0.1:{closed_port}/devstoreaccount1/lake"):
        open_store(url).read("x")
    assert time.monotonic() - started < 10


def _http_error(cls: type[HttpResponseError], status: int, code: str) -> HttpResponseError:
    err = cls(message=f"{status} {code}")
    err.status_code, err.error_code = status, code
    return err


class _FailingBlob:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def upload_blob(self, *args: object, **kwargs: object) -> None:
        raise self.exc


class _FailingContainer:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get_blob_client(self, name: str) -> _FailingBlob:
        return _FailingBlob(self.exc)

    def download_blob(self, name: str) -> None:
        raise self.exc


@pytest.mark.parametrize("exc", [
    _http_error(HttpResponseError, 503, "ServerBusy"),
    _http_error(HttpResponseError, 500, "InternalError"),
    _http_error(HttpResponseError, 412, "LeaseIdMissing"),  # a lease, not a lost race
    ServiceRequestError("connection reset"),
])
def test_transient_and_unrelated_errors_propagate_unchanged(exc: BaseException) -> None:
    store = BlobStore("http://127.0.0.1:1/devstoreaccount1/lake")
    store._container, store._contacted = _FailingContainer(exc), True  # type: ignore[assignment]
    with pytest.raises(type(exc)) as raised:
        store.write("wm.json", b"x", if_match='"0x1"')
    assert raised.value is exc
    with pytest.raises(type(exc)):
        store.read("wm.json")


def test_a_missing_container_is_not_a_missing_blob() -> None:
    store = BlobStore("http://127.0.0.1:1/devstoreaccount1/lake")
    gone = _http_error(ResourceNotFoundError, 404, "ContainerNotFound")
    store._container, store._contacted = _FailingContainer(gone), True  # type: ignore[assignment]
    with pytest.raises(ResourceNotFoundError):
        store.read("wm.json")
