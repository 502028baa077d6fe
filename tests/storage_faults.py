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
