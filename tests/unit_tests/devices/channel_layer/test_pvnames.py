"""Client spellings of PV names and the one topic each maps to."""

import pytest

from devices.channel_layer.pvnames import PvName, PvNameError, parse_pv_name, qualified, source_of, topic_of


@pytest.mark.parametrize(("text", "default", "topic"), [
    ("SR:x", "ca", "SR:x"), ("ca://SR:x", "ca", "SR:x"), ("pva://SR:x", "ca", "pva://SR:x"),
    ("SR:x", "pva", "pva://SR:x"), ("ca://SR:x", "pva", "SR:x"), ("pva://SR:x", "pva", "pva://SR:x"),
    ("SR:x.VAL", "ca", "SR:x.VAL"), ("pva://a:b{c}", "ca", "pva://a:b{c}"),
])
def test_every_spelling_maps_to_one_topic_per_protocol(text, default, topic):
    assert topic_of(text, default) == topic
    assert source_of(topic) == parse_pv_name(text, default)


@pytest.mark.parametrize(("text", "why"), [
    ("http://x", "unknown protocol 'http'"), ("PVA://x", "unknown protocol 'PVA'"),
    ("pva://", "no PV name after pva://"), ("ca://", "no PV name after ca://"),
    ("pva://ca://x", "names more than one protocol"), ("://x", "unknown protocol ''"),
])
def test_malformed_names_say_what_is_wrong(text, why):
    with pytest.raises(PvNameError, match=why.replace("(", r"\(")):
        topic_of(text)


def test_access_rules_see_topics_qualified():
    assert qualified("SR:x") == "ca://SR:x" and qualified("pva://SR:x") == "pva://SR:x"
    assert source_of("pva://SR:x") == PvName("pva", "SR:x")
