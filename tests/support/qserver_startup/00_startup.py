"""The Queue Server's startup profile for the tests: a RunEngine and a pausable plan."""

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky import RunEngine
from bluesky.plans import count  # noqa: F401 - offered to the queue
from ophyd.sim import det, motor  # noqa: F401 - offered to the queue

RE = RunEngine({})


def sleep_plan(duration: float = 6.0, steps: int = 6):
    """Prints a line per step and sleeps; a checkpoint before each step makes it pausable."""

    @bpp.run_decorator(md={"plan_name": "sleep_plan"})
    def inner():
        for i in range(steps):
            yield from bps.checkpoint()
            print(f"sleep_plan step {i + 1}/{steps}")
            yield from bps.sleep(duration / steps)

    return (yield from inner())
