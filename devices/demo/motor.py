"""A simulated EPICS motor record for the demo IOC, complete enough for ophyd's EpicsMotor.

The fields are caproto's own (``caproto.server.records.MotorFields``), so the record
answers for every field EpicsMotor connects to; this module only gives the few that
matter a behaviour: VAL starts a move, RBV/DRBV/RRBV follow at VELO, MOVN and DMOV
report it, STOP ends it, HLM/LLM are the soft limits.

Soft limits refuse: a VAL write outside [LLM, HLM] fails over CA (ECA_PUTFAIL, and
caproto leaves VAL in a WRITE/MAJOR alarm until the next accepted write) and nothing
moves. A real motor record would accept it and set LVIO instead, but caproto checks
every write against VAL's control limits before any putter runs, and those limits must
equal LLM/HLM because that is where ophyd reads ``EpicsMotor.limits``. So LVIO stays 0.
LLM == HLM means "no soft limits", as in the motor record and ophyd.
"""

from __future__ import annotations

import math
from typing import Any

from caproto.server import PVGroup, pvproperty
from caproto.server.records import MotorFields
from caproto.server.typing import AsyncLibraryLayer

MOTOR_RECORD_TICK = 0.05  # s; 20 Hz while moving, and the idle poll period
RAW_LIMIT = 2**31 - 1


def motor_record_group(*, units: str, low: float, high: float, velocity: float,
                       precision: int = 3) -> type[PVGroup]:
    """A PVGroup holding one motor record (PV ``<prefix>``, fields ``<prefix>.RBV`` ...).

    A class per motor, because caproto takes a pvproperty's units and limits from the class.
    """

    class MotorRecord(PVGroup):
        motor = pvproperty(name="", record="motor", value=0.0, dtype=float, units=units,
                           precision=precision, lower_ctrl_limit=low, upper_ctrl_limit=high,
                           lower_disp_limit=low, upper_disp_limit=high,
                           doc=f"Simulated motor, {low}..{high} {units} at {velocity} {units}/s.")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The accepted target while a move is on (None when done). Kept here rather
            # than read back from VAL: the putter runs before caproto stores the new VAL.
            self.target: float | None = None

        @motor.putter
        async def motor(self, instance: Any, value: float) -> float:
            # Only accepted writes get here: caproto has checked VAL's control limits (= LLM/HLM).
            fields: MotorFields = instance.field_inst
            # DMOV drops on every accepted write, a zero-length move too: ophyd's
            # EpicsMotor completes a move's Status only on a DMOV 0 -> 1 transition.
            self.target = value
            await fields.dial_desired_value.write(value)
            if value != fields.user_readback_value.value:
                await fields.direction_of_travel.write(int(value > fields.user_readback_value.value))
            await fields.done_moving_to_value.write(0)
            await fields.motor_is_moving.write(1)
            return value

        @motor.startup
        async def motor(self, instance: Any, async_lib: AsyncLibraryLayer) -> None:
            fields: MotorFields = instance.field_inst
            await _configure(fields, units=units, low=low, high=high, velocity=velocity,
                             precision=precision)
            while True:
                await async_lib.sleep(MOTOR_RECORD_TICK)
                if self.target is not None and await _step(fields, self.target):
                    self.target = None
                    await fields.motor_is_moving.write(0)
                    await fields.done_moving_to_value.write(1)

        # Field putters are methods of the record's field group (MotorFields), not of this group.
        @motor.fields.stop.putter
        async def motor(self: MotorFields, instance: Any, value: int) -> int:
            """Stop where the motor is: VAL becomes RBV, and the next tick ends the move."""
            group = self.parent.group
            if value and group.target is not None:
                group.target = self.user_readback_value.value
                await self.parent.write(group.target, verify_value=False)  # not a new move
            return 0  # STOP reads back 0, as the motor record resets it

        @motor.fields.user_high_limit.putter
        async def motor(self: MotorFields, instance: Any, value: float) -> float:
            """VAL's control limits are the soft limits CA clients (and ophyd) see."""
            await self.parent.write_metadata(upper_ctrl_limit=value, upper_disp_limit=value)
            await self.dial_high_limit.write(value)
            return value

        @motor.fields.user_low_limit.putter
        async def motor(self: MotorFields, instance: Any, value: float) -> float:
            """VAL's control limits are the soft limits CA clients (and ophyd) see."""
            await self.parent.write_metadata(lower_ctrl_limit=value, lower_disp_limit=value)
            await self.dial_low_limit.write(value)
            return value

        @motor.fields.velocity.putter
        async def motor(self: MotorFields, instance: Any, value: float) -> float:
            """A motor at VELO <= 0 would never arrive and hang every move: keep the default."""
            return value if value > 0 else velocity

    return MotorRecord


async def _configure(fields: MotorFields, *, units: str, low: float, high: float, velocity: float,
                     precision: int) -> None:
    """Initial field values: caproto's defaults are those of an unconfigured record (LVIO=1, VELO=0)."""
    await fields.engineering_units.write(units)
    await fields.display_precision.write(precision)
    await fields.motor_step_size.write(10.0 ** -precision)
    await fields.velocity.write(velocity)
    await fields.user_high_limit.write(high)
    await fields.user_low_limit.write(low)
    await fields.limit_violation.write(0)
    # Fields do not inherit VAL's units or precision; these are the ones clients format.
    for field in (fields.user_readback_value, fields.dial_readback_value, fields.dial_desired_value,
                  fields.user_high_limit, fields.user_low_limit):
        await field.write_metadata(units=units, precision=precision)
    await fields.velocity.write_metadata(units=f"{units}/s", precision=precision)


async def _step(fields: MotorFields, target: float) -> bool:
    """Move the readbacks one tick toward ``target`` at VELO; True once there."""
    position = fields.user_readback_value.value
    step = fields.velocity.value * MOTOR_RECORD_TICK
    if abs(target - position) > step:
        position += math.copysign(step, target - position)
    else:
        position = target
    if position != fields.user_readback_value.value:
        # The user and dial coordinates coincide: OFF is 0 and DIR is Pos.
        await fields.user_readback_value.write(position)
        await fields.dial_readback_value.write(position)
        resolution = fields.motor_step_size.value
        raw = round(position / resolution) if resolution > 0 else 0
        await fields.raw_readback_value.write(max(-RAW_LIMIT, min(RAW_LIMIT, raw)))  # RRBV is a DBR_LONG
    return position == target
