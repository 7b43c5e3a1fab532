"""``python -m stallkit.topics`` (production's kafka-init step) against a real broker."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import TOPICS
from stallctl import procs
from stalltest.plugin import Isolation

pytestmark = pytest.mark.integration


async def start_topics(bootstrap: str, prefix: str, *args: str) -> asyncio.subprocess.Process:
    """Start the module as kafka-init does (configured by the environment)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STALL_TOPIC_PREFIX": prefix}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stallkit.topics", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, err_so_far: bytes = b"") -> tuple[int, str, str]:
    """Wait for the module to exit; its exit code, output and error output."""
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), (err_so_far + err).decode()


async def run_topics(bootstrap: str, prefix: str, *args: str) -> tuple[int, str, str]:
    """Run the module to the end."""
    return await finish(await start_topics(bootstrap, prefix, *args))


async def partition_counts(bootstrap: str, prefix: str) -> dict[str, int]:
    """Partitions of each topic under ``prefix``, as the broker describes them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(prefix)]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {d["topic"][len(prefix) :]: len(d["partitions"]) for d in described}


async def test_creates_every_contract_topic_with_its_partitions_and_keeps_them(
    isolation: Isolation,
) -> None:
    bootstrap, prefix = isolation.infra.kafka_bootstrap, isolation.topic_prefix
    code, out, err = await run_topics(bootstrap, prefix)
    assert code == 0, err
    for topic in TOPICS.values():
        assert f"created {prefix}{topic.name} ({topic.partitions} partitions)" in out
    expected = {topic.name: topic.partitions for topic in TOPICS.values()}
    assert await partition_counts(bootstrap, prefix) == expected

    code, out, err = await run_topics(bootstrap, prefix)
    assert code == 0, err
    assert f"0 topics created, {len(TOPICS)} already there" in out


async def test_waits_for_a_broker_that_starts_later(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port = procs.free_port()
    proc = await start_topics(f"127.0.0.1:{port}", "late.")
    assert proc.stderr is not None
    err = b""
    while b"topics not created yet" not in err:  # it found no broker and keeps trying
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line, "the module exited instead of retrying"
        err += line
    broker = procs.spawn(
        procs.broker_args(port), log_path=tmp_path_factory.mktemp("late") / "broker.log"
    )
    try:
        code, out, all_err = await finish(proc, err)
        assert code == 0, all_err
        assert f"{len(TOPICS)} topics created" in out
    finally:
        procs.stop(broker)


async def test_gives_up_with_the_reason_when_no_broker_answers() -> None:
    bootstrap = f"127.0.0.1:{procs.free_port()}"
    code, out, err = await run_topics(bootstrap, "", "--timeout", "2")
    assert code == 1
    assert f"could not create the topics on {bootstrap}" in err
    assert "created" not in out
