"""UsageCube's memory: forgetting gives room back in steps, yet reads as if every slot
before the horizon were gone at once (so a verdict never depends on when it was cut)."""

from __future__ import annotations

import numpy as np

from bot.metrics import FAILED, FINISHED, KIND_FAILED, EventBatch, UsageCube

STEP = 300
GROUP = ("pro", "smb", "c1")


def failures(*slots: int) -> EventBatch:
    """One failed job in each of `slots`."""
    return EventBatch(
        np.asarray([s * STEP + 10.0 for s in slots]),
        [GROUP] * len(slots),
        np.full(len(slots), KIND_FAILED, dtype=np.int8),
        np.ones(len(slots)),
    )


def test_forgotten_slots_read_as_empty_while_their_room_is_still_held() -> None:
    cube = UsageCube(STEP)
    cube.add(failures(*range(100)))
    cube.forget_before(10)
    assert cube.origin < 10  # a tenth of the width: kept until a quarter is forgotten
    assert cube.counts(0, 12)[FAILED, 0].tolist() == [0.0] * 10 + [1.0, 1.0]
    assert cube.covered_from == 10
    cube.forget_before(60)
    assert cube.origin == 60  # now the room goes back
    assert cube.counts(55, 62)[FINISHED, 0].tolist() == [0.0] * 5 + [1.0, 1.0]


def test_late_events_from_before_the_horizon_count_alone() -> None:
    cube = UsageCube(STEP)
    cube.add(failures(*range(100)))
    cube.forget_before(10)
    cube.add(failures(3))  # a late event, older than what was forgotten
    counts = cube.counts(0, 12)[FAILED, 0].tolist()
    assert counts == [0.0, 0.0, 0.0, 1.0] + [0.0] * 6 + [1.0, 1.0]  # not slots 0 to 9 again
