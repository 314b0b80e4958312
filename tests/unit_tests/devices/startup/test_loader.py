"""What the startup-file loader registers (soft ophyd objects, no IOC)."""

from devices.startup.loader import load_sources
from devices.startup.sources import StartupSource

CODE = """
from ophyd import Signal, SoftPositioner
single = Signal(name="single", value=1)
motors = [SoftPositioner(name=f"m{i}", init_pos=0.0) for i in range(3)]
by_role = {"shutter": Signal(name="shutter", value=0)}
alias = single            # the same object twice is one device
number = 5                # not ophyd: ignored
"""


def test_top_level_objects_and_those_in_lists_and_dicts_are_registered():
    result = load_sources([StartupSource("10_x.py", CODE, "10_x.py")], timeout_s=5.0)
    assert result.files[0].ok, result.errors
    assert sorted(result.objects) == ["m0", "m1", "m2", "shutter", "single"]
    assert result.files[0].devices.count("single") == 1


def test_objects_from_earlier_files_are_not_claimed_again():
    first = StartupSource("00_a.py", "from ophyd import Signal\na = Signal(name='a')\n", "00_a.py")
    second = StartupSource("10_b.py", "from ophyd import Signal\nb = Signal(name='b')\nkeep = [a]\n", "10_b.py")
    result = load_sources([first, second], timeout_s=5.0)
    assert [f.devices for f in result.files] == [["a"], ["b"]]
