"""FakeClock moves zoom-s2s's time without waiting, in order, and puts the real clocks back."""

from __future__ import annotations

import asyncio
import time

import pytest

from zoom_s2s import _clock
from zoom_s2s.testing import FakeClock


def test_it_starts_at_the_real_time_and_restores_the_real_clocks() -> None:
    real = (_clock.monotonic, _clock.wall, _clock.sleep, _clock.wait_for)
    with FakeClock() as clock:
        assert _clock.monotonic() == pytest.approx(time.monotonic(), abs=1)
        assert _clock.wall() == pytest.approx(time.time(), abs=1)
        clock.advance(100)
        assert _clock.monotonic() == pytest.approx(time.monotonic() + 100, abs=1)
        assert _clock.wall() == pytest.approx(time.time() + 100, abs=1)
    assert (_clock.monotonic, _clock.wall, _clock.sleep, _clock.wait_for) == real


def test_a_wall_step_moves_the_wall_clock_alone() -> None:
    with FakeClock() as clock:
        before = clock.monotonic(), clock.wall()
        clock.step_wall(-3600)
        assert clock.monotonic() == before[0]
        assert clock.wall() == before[1] - 3600
        with pytest.raises(ValueError, match="step_wall"):
            clock.advance(-1)


async def test_sleeps_end_at_once_in_deadline_order_at_their_deadlines(
    fake_clock: FakeClock,
) -> None:
    start, real_start = fake_clock.monotonic(), time.monotonic()
    woke: list[tuple[float, float]] = []

    async def nap(seconds: float) -> None:
        await _clock.sleep(seconds)
        woke.append((seconds, round(fake_clock.monotonic() - start, 6)))

    await asyncio.gather(*(nap(seconds) for seconds in (30, 1, 3600, 0.5)))
    assert woke == [(0.5, 0.5), (1, 1), (30, 30), (3600, 3600)]
    assert time.monotonic() - real_start < 1


async def test_a_timed_wait_ends_with_its_awaitable_or_at_its_virtual_timeout(
    fake_clock: FakeClock,
) -> None:
    event = asyncio.Event()
    start = fake_clock.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await _clock.wait_for(event.wait(), 60)
    assert fake_clock.monotonic() - start == pytest.approx(60)

    async def set_later() -> None:
        await fake_clock.sleep(5)
        event.set()

    setter = asyncio.create_task(set_later())
    assert await _clock.wait_for(event.wait(), 60) is True
    assert fake_clock.monotonic() - start == pytest.approx(65)
    await setter


async def test_advance_ends_the_waits_that_fall_due(fake_clock: FakeClock) -> None:
    short = asyncio.create_task(_clock.sleep(10))
    long = asyncio.create_task(_clock.sleep(100))
    await asyncio.sleep(0)  # both are asleep now
    fake_clock.advance(50)
    await asyncio.wait_for(short, 1)
    assert not long.done()
    long.cancel()


async def test_time_does_not_jump_while_the_loop_has_io_to_handle(fake_clock: FakeClock) -> None:
    # A server and its clients on one loop: every hop is ready I/O, so a pending
    # sleep does not end before the exchanges are done.
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    start = fake_clock.monotonic()
    sleeper = asyncio.create_task(_clock.sleep(1))
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        writer.close()
    assert fake_clock.monotonic() == start
    assert not sleeper.done()
    server.close()
    await server.wait_closed()
    await sleeper
    assert fake_clock.monotonic() - start == pytest.approx(1)


async def test_leaving_wakes_whatever_still_sleeps() -> None:
    with FakeClock():
        sleeper = asyncio.create_task(_clock.sleep(1e9))
        await asyncio.sleep(0)
    await asyncio.wait_for(sleeper, 1)
