"""The settings a locked-down production account needs, each against a real nats-server set up for it.

- ``FASTIOT_NATS_INBOX_PREFIX``: a user may subscribe only to its own inboxes;
- ``FASTIOT_NATS_JS_DOMAIN``: JetStream is reached through ``$JS.<domain>.API`` only;
- ``FASTIOT_NATS_NKEY``: a user that logs in with an NKey (``authorization { users: [{nkey: ...}] }``);
- ``FASTIOT_NATS_CREDS``: operator mode (memory resolver) with JWTs made in the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import nkeys
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import (
    BrokerAuthenticationError,
    BucketNotFoundError,
    JetStreamUnavailableError,
    PermissionDeniedError,
    SettingsError,
)
from fastiot.history import Bucket
from fastiot.nats_server import NatsServer, find_free_port
from fastiot.subjects.index import SubjectIndex
from tests.core.fault_helpers import connect_and_round_trip
from tests.core.nats_accounts import Operator, new_keypair, write_creds, write_seed
from tests.core.test_broker_connection import SquareReply, SquareRequest

WAIT = 10.0
ADMIN = {"user": "admin", "password": "admin"}


@pytest.fixture(scope="module")
def locked_server() -> Iterator[NatsServer]:
    """JetStream on; ``alice`` may receive only on ``_INBOX_alice.>`` (and ``test.>``)."""
    users = [
        ADMIN,
        {
            "user": "alice",
            "password": "alice",
            "permissions": {"subscribe": {"allow": ["_INBOX_alice.>", "test.>"]}},
        },
    ]
    with NatsServer(jetstream=True, extra_config={"authorization": {"users": users}}) as server:
        yield server


def _login(monkeypatch: pytest.MonkeyPatch, server: NatsServer, user: str) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", server.url)
    monkeypatch.setenv("FASTIOT_NATS_USER", user)
    monkeypatch.setenv("FASTIOT_NATS_PASSWORD", user)


async def _admin(server: NatsServer) -> nats.aio.client.Client:
    return await nats.connect(server.url, user=ADMIN["user"], password=ADMIN["password"])


async def test_requests_and_key_value_use_the_inbox_prefix(
    locked_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await _admin(locked_server)
    bucket_name = "locked_inbox"
    kv = await admin.jetstream().create_key_value(bucket=bucket_name)
    await kv.put("press_1", b"21.5")

    _login(monkeypatch, locked_server, "alice")
    service = await NatsBrokerConnection.connect(servers=locked_server.url, user="admin", password="admin")
    try:

        async def on_square(request: SquareRequest) -> SquareReply:
            return SquareReply(result=request.x * request.x)

        await service.subscribe_reply_cb(SquareRequest.get_reply_subject(), on_square)
        await service.flush()

        # Without the prefix the server refuses alice's reply subscription: said at once, not a timeout.
        plain = await NatsBrokerConnection.connect()
        try:
            with pytest.raises(PermissionDeniedError) as caught:
                await asyncio.wait_for(
                    plain.request(SquareRequest.get_reply_subject(), SquareRequest(x=3), timeout=60), 10
                )
            assert caught.value.operation == "subscribe" and "FASTIOT_NATS_INBOX_PREFIX" in str(caught.value)
        finally:
            await plain.close()

        monkeypatch.setenv("FASTIOT_NATS_INBOX_PREFIX", "_INBOX_alice")
        alice = await NatsBrokerConnection.connect()
        try:
            reply = await alice.request(SquareRequest.get_reply_subject(), SquareRequest(x=7), timeout=WAIT)
            assert reply.result == 49
            bucket = await Bucket.open(bucket_name, connection=alice)
            entry = await bucket.get("press_1", connection=alice)
            assert entry is not None and entry.raw == b"21.5"
            assert await bucket.keys(connection=alice) == ["press_1"]
        finally:
            await alice.close()
        assert SquareRequest.get_reply_subject().make_generic_reply_inbox().name.startswith("_INBOX_alice.")
    finally:
        await service.close()
        await admin.jetstream().delete_key_value(bucket_name)
        await admin.close()


async def test_the_subject_index_hides_the_own_inboxes_under_a_prefix(
    broker: NatsBrokerConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_INBOX_PREFIX", "_INBOX_alice")
    inbox = f"_INBOX_alice.{uuid.uuid4().hex}"
    async with (
        SubjectIndex(">", broker) as everything,
        SubjectIndex("_INBOX_alice.>", broker, include_inbox=True) as inboxes,
    ):
        await broker.publish_raw(inbox, b"{}")
        await inboxes.wait_for(1, subject=inbox, timeout=WAIT)
        await everything.sync(timeout=WAIT)
        assert inbox not in everything and everything.ignored_messages >= 1


async def test_jetstream_goes_through_the_domain_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leaf node with its own JetStream (domain ``spoke``) under a hub (domain ``hub``): a client of
    the leaf reaches the hub's buckets only through ``FASTIOT_NATS_JS_DOMAIN=hub``."""
    leaf_port = find_free_port()
    hub_config = {"leafnodes": {"listen": f"127.0.0.1:{leaf_port}"}}
    leaf_config = {"leafnodes": {"remotes": [{"url": f"nats-leaf://127.0.0.1:{leaf_port}"}]}}
    async with (
        NatsServer(jetstream_domain="hub", server_name="hub", extra_config=hub_config) as hub,
        NatsServer(jetstream_domain="spoke", server_name="spoke", extra_config=leaf_config) as leaf,
    ):
        admin = await nats.connect(hub.url)
        try:
            kv = await admin.jetstream().create_key_value(bucket="on_the_hub")
            await kv.put("valve", b"open")
        finally:
            await admin.close()
        monkeypatch.setenv("FASTIOT_NATS_SERVERS", leaf.url)
        plain = await NatsBrokerConnection.connect()
        try:
            with pytest.raises(BucketNotFoundError):  # the leaf's own JetStream has no such bucket
                await Bucket.open("on_the_hub", connection=plain)
        finally:
            await plain.close()
        monkeypatch.setenv("FASTIOT_NATS_JS_DOMAIN", "hub")
        spoke = await NatsBrokerConnection.connect()
        try:
            deadline = asyncio.get_running_loop().time() + WAIT
            while True:  # the leaf connection to the hub comes up shortly after the servers start
                try:
                    bucket = await Bucket.open("on_the_hub", connection=spoke)
                    break
                except JetStreamUnavailableError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            entry = await bucket.get("valve", connection=spoke)
            assert entry is not None and entry.raw == b"open"
        finally:
            await spoke.close()


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastiot.env import env_broker

    monkeypatch.setenv("FASTIOT_NATS_JS_DOMAIN", "hub.spoke")
    with pytest.raises(SettingsError, match=r"FASTIOT_NATS_JS_DOMAIN='hub\.spoke' is not a JetStream domain"):
        _ = env_broker.js_domain
    monkeypatch.delenv("FASTIOT_NATS_JS_DOMAIN")
    monkeypatch.setenv("FASTIOT_NATS_INBOX_PREFIX", "_INBOX.*")
    with pytest.raises(
        SettingsError, match=r"FASTIOT_NATS_INBOX_PREFIX='_INBOX\.\*' is not a subject prefix"
    ):
        _ = env_broker.inbox_prefix


async def test_a_missing_seed_or_creds_file_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_NKEY", str(tmp_path / "missing.nk"))
    with pytest.raises(
        ValueError, match=r"FASTIOT_NATS_NKEY=.*missing\.nk' is not a readable NKey seed file"
    ):
        await NatsBrokerConnection.connect()
    monkeypatch.delenv("FASTIOT_NATS_NKEY")
    monkeypatch.setenv("FASTIOT_NATS_CREDS", str(tmp_path / "missing.creds"))
    with pytest.raises(
        ValueError, match=r"FASTIOT_NATS_CREDS=.*missing\.creds' is not a readable credentials"
    ):
        await NatsBrokerConnection.connect()


async def test_nkey_seed_logs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    stranger = new_keypair(nkeys.PREFIX_BYTE_USER)
    config = {"authorization": {"users": [{"nkey": user.public_key.decode()}]}}
    async with NatsServer(extra_config=config) as server:
        monkeypatch.setenv("FASTIOT_NATS_SERVERS", server.url)
        with pytest.raises(BrokerAuthenticationError):
            await NatsBrokerConnection.connect()
        monkeypatch.setenv("FASTIOT_NATS_NKEY", str(write_seed(tmp_path / "stranger.nk", stranger)))
        with pytest.raises(BrokerAuthenticationError):
            await NatsBrokerConnection.connect()
        monkeypatch.setenv("FASTIOT_NATS_NKEY", str(write_seed(tmp_path / "user.nk", user)))
        assert await connect_and_round_trip("nkey") == "nkey"


async def test_creds_file_logs_in_to_an_operator_mode_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = Operator.create()
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    other = Operator.create()  # a user of another operator: the server does not trust it
    async with NatsServer(extra_config=operator.server_config()) as server:
        monkeypatch.setenv("FASTIOT_NATS_SERVERS", server.url)
        with pytest.raises(BrokerAuthenticationError):
            await NatsBrokerConnection.connect()
        stranger = write_creds(tmp_path / "stranger.creds", other.user_jwt(user), user)
        monkeypatch.setenv("FASTIOT_NATS_CREDS", str(stranger))
        with pytest.raises(BrokerAuthenticationError):
            await NatsBrokerConnection.connect()
        creds = write_creds(tmp_path / "user.creds", operator.user_jwt(user), user)
        monkeypatch.setenv("FASTIOT_NATS_CREDS", str(creds))
        assert await connect_and_round_trip("creds") == "creds"


async def test_a_domain_nobody_serves_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTIOT_NATS_JS_DOMAIN", "nowhere")
    conn = await NatsBrokerConnection.connect()
    try:
        with pytest.raises(
            JetStreamUnavailableError, match=r"no JetStream of domain 'nowhere'.*FASTIOT_NATS_JS_DOMAIN"
        ):
            await Bucket.open("any", connection=conn)
    finally:
        await conn.close()
