"""Faults real storage produces on demand, and alerts to feed them, for the normalizer's and replay's tests."""

from __future__ import annotations

from shared.core.storage import open_store


def leased_blob(container_url: str, name: str):
    """A blob at name under an infinite lease: every write without the lease id is refused with 412, until the
    returned lease is released."""
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob import BlobClient

    from shared.core.blob_url import EMULATOR_ACCOUNT, EMULATOR_KEY

    open_store(container_url).list("")  # creates the container
    endpoint, container = container_url.rsplit("/", 1)
    blob = BlobClient(endpoint, container, name, credential=AzureNamedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY))
    blob.upload_blob(b"held", overwrite=True)
    return blob.acquire_lease(lease_duration=-1)


def alert_bodies(count: int, seed: int = 11) -> list[bytes]:
    from simulator.tenant import Tenant

    _, bodies = Tenant(seed=seed, alerts=count, days=1.0).query_json(top=count, include_unknown_enum_members=True)
    return bodies


class WriteOutage:
    """Writes to one blob refused by the real backend while the outage is on, reads still served, as when a storage
    account is throttled or failed over read-only: on a local folder the folder's lock file is made a folder, so
    LocalStore's write fails with the OS's own error; on Azurite the blob is held by a lease (412 LeaseIdMissing)."""

    def __init__(self, store_url: str, name: str) -> None:
        from shared.core.blob_url import url_scheme

        self.store_url, self.name = store_url, name
        self._azure = url_scheme(store_url) in ("http", "https")
        self._lease = None

    def begin(self) -> None:
        if self._azure:
            from azure.core.credentials import AzureNamedKeyCredential
            from azure.storage.blob import BlobClient

            from shared.core.blob_url import EMULATOR_ACCOUNT, EMULATOR_KEY

            endpoint, container = self.store_url.rsplit("/", 1)
            blob = BlobClient(endpoint, container, self.name,
                              credential=AzureNamedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY))
            if not blob.exists():  # a lease needs a blob; the refusal is the same either way
                blob.upload_blob(b"{}")
            self._lease = blob.acquire_lease(lease_duration=-1)
        else:
            lock = self._lock_path()
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.unlink(missing_ok=True)
            lock.mkdir()

    def end(self) -> None:
        if self._azure:
            self._lease.release()
            self._lease = None
        else:
            self._lock_path().rmdir()

    def _lock_path(self):
        from pathlib import Path

        from shared.core.blob_url import local_path

        folder = Path(local_path(self.store_url)).joinpath(*self.name.split("/")[:-1])
        return folder / ".graphlake.lock"


class RefusedWrites:
    """The store, with the n-th write (from 1) to the outage's blob refused by the real backend whenever
    refuse(n) is true: the test's schedule of an outage that comes and goes, in step with the writes it hits."""

    def __init__(self, store, outage: WriteOutage, refuse) -> None:
        self._store, self._outage, self._refuse = store, outage, refuse
        self.url = store.url
        self.writes = 0  # to the outage's blob, refused or not
        self.refused = 0

    def read(self, name):
        return self._store.read(name)

    def list(self, prefix=""):
        return self._store.list(prefix)

    def delete(self, name):
        self._store.delete(name)

    def write(self, name, data, **conditions):
        if name != self._outage.name:
            return self._store.write(name, data, **conditions)
        self.writes += 1
        if not self._refuse(self.writes):
            return self._store.write(name, data, **conditions)
        self.refused += 1
        self._outage.begin()
        try:
            return self._store.write(name, data, **conditions)
        finally:
            self._outage.end()
