"""backend/fair_queue.py: owners take turns for the engine's slots; cancelled waiters lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time

from backend.fair_queue import FairQueue
from tests.conftest import connect, wait_until


async def _run(queue: FairQueue, owner: str, name: str, order: list[str], hold: asyncio.Event) -> None:
    async with queue.turn(owner):
        order.append(name)
        await hold.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_flooding_owner_waits_its_turn_behind_each_other_owner():
    queue, order, hold = FairQueue(slots=1), [], asyncio.Event()
    tasks = [asyncio.create_task(_run(queue, "flood", f"f{i}", order, hold)) for i in range(5)]
    await _settle()
    tasks += [asyncio.create_task(_run(queue, "alice", "a0", order, hold)),
              asyncio.create_task(_run(queue, "bob", "b0", order, hold)),
              asyncio.create_task(_run(queue, "alice", "a1", order, hold))]
    await _settle()
    assert queue.running == 1 and queue.waiting == 7
    hold.set()
    await asyncio.gather(*tasks)
    # f0 held the slot; then one reply per owner per round, each owner's in its own order.
    assert order == ["f0", "f1", "a0", "b0", "f2", "a1", "f3", "f4"]
    assert queue.running == 0 and queue.waiting == 0


async def test_free_slots_are_taken_at_once_and_a_cancelled_waiter_leaves_its_place():
    queue, order, hold = FairQueue(slots=2), [], asyncio.Event()
    first = [asyncio.create_task(_run(queue, "a", n, order, hold)) for n in ("a0", "a1")]
    await _settle()
    assert order == ["a0", "a1"] and queue.running == 2
    waiter = asyncio.create_task(_run(queue, "b", "b0", order, hold))
    after = asyncio.create_task(_run(queue, "c", "c0", order, hold))
    await _settle()
    waiter.cancel()
    await _settle()
    assert queue.waiting == 1
    hold.set()
    await asyncio.gather(*first, after)
    assert order == ["a0", "a1", "c0"] and queue.running == 0 and waiter.cancelled()


async def test_a_waiter_cancelled_as_it_is_given_the_slot_hands_it_on():
    queue, order, hold = FairQueue(slots=1), [], asyncio.Event()
    holder = asyncio.create_task(_run(queue, "a", "a0", order, asyncio.Event()))
    await _settle()
    given = asyncio.create_task(_run(queue, "b", "b0", order, hold))
    later = asyncio.create_task(_run(queue, "c", "c0", order, hold))
    await _settle()
    holder.cancel()  # frees the slot: b0's future is granted before b0 runs again ...
    await asyncio.sleep(0)
    given.cancel()  # ... and b0 is cancelled in that moment
    hold.set()
    await asyncio.gather(later)
    assert order == ["a0", "c0"] and queue.running == 0 and queue.waiting == 0


# --- through a real server: one address floods, another chats -------------------------------------
async def test_a_flooding_address_does_not_delay_another_address_behind_its_queue(make_server):
    # A minute's bound: eight waiting on a fresh server's guessed pace, all admitted (fairness, not the bound).
    server = make_server(max_batch=2, max_new_tokens=48, min_new_tokens=48, rate_limit_messages=100, max_queue_wait_s=60)
    started: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        flood = [await stack.enter_async_context(connect(server.url)) for _ in range(8)]  # 127.0.0.1
        other = await stack.enter_async_context(connect(server.url, local_addr=("127.0.0.2", 0)))
        for c in [*flood, other]:
            await c.open()

        async def flooding(i: int, c) -> None:
            for n in range(3):
                await c.send(type="message", id=f"f{i}-{n}", text="Tell me everything about your day.")
                await c.until("chunk")
                started[f"f{i}-{n}"] = time.monotonic()
                await c.until("reply_end")

        floods = [asyncio.create_task(flooding(i, c)) for i, c in enumerate(flood)]
        assert await wait_until(lambda: len(started) == 2 and server.hub.runner.turns.waiting == 6, 20)
        sent = time.monotonic()
        await other.send(type="message", id="o1", text="How you doin'?")
        await other.until("chunk")
        first_token = time.monotonic()
        await other.until("reply_end")
        await asyncio.gather(*floods)
    # First come first served would start the six flood replies queued before it; its turn comes
    # with the first free slot (one more may have been handed that slot as the message arrived).
    overtaken = [m for m, t in started.items() if sent < t < first_token]
    assert len(overtaken) <= 1, overtaken
    assert server.hub.runner.turns.running == 0 and server.hub.runner.turns.waiting == 0
