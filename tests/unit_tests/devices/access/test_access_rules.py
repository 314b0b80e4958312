"""Access rule evaluation: matching, highest wins, address ranges, defaults and caps."""

import pytest

from devices.access.rules import Level, Policy, Principal, Rule, check_pattern, decide, parse_networks

ANON = Principal()
ALICE = Principal("alice", frozenset({"operators"}))
BOB = Principal("bob", frozenset({"users"}), default_write=True)
OPEN = Policy()


def d(rules, who, name="SR:BPM1", kind="pv", address="10.1.2.3", policy=OPEN):
    return decide(rules, principal=who, name=name, kind=kind, address=address, policy=policy)


def test_no_rule_means_the_default_policy():
    assert d([], ANON).level == Level.READ and d([], ANON).rule is None
    assert d([], ALICE).level == Level.READ  # identified, but no default-write permission
    assert d([], BOB).level == Level.WRITE


def test_overlapping_rules_highest_wins_and_the_rule_is_named():
    rules = [Rule("sr-read", "SR:*", Level.READ),
             Rule("ops-write", "SR:BPM*", Level.WRITE, groups=frozenset({"operators"}))]
    decision = d(rules, ALICE)
    assert decision.level == Level.WRITE and decision.rule == "ops-write"
    assert d(rules, BOB).level == Level.READ and d(rules, BOB).rule == "sr-read"  # a rule overrides the default


def test_patterns_are_anchored_glob_or_regex():
    glob = Rule("g", "SR:*", Level.WRITE, users=frozenset({"alice"}))
    assert d([glob], ALICE, name="SR:X").level == Level.WRITE
    assert d([glob], ALICE, name="XSR:X").rule is None
    regex = Rule("r", r"BL\d+:m[0-9]", Level.NONE, syntax="regex")
    assert d([regex], ALICE, name="BL12:m3").level == Level.NONE
    assert d([regex], ALICE, name="BL12:m3x").rule is None  # anchored at both ends


def test_address_ranges():
    rule = Rule("console", "*", Level.WRITE, users=frozenset({"alice"}), networks=parse_networks("10.1.0.0/16, ::1"))
    assert d([rule], ALICE, address="10.1.9.9").level == Level.WRITE
    assert d([rule], ALICE, address="10.2.0.1").rule is None
    assert d([rule], ALICE, address="::ffff:10.1.0.5").level == Level.WRITE  # IPv4-mapped
    assert d([rule], ALICE, address="::1").level == Level.WRITE
    assert d([rule], ALICE, address=None).rule is None


def test_target_kind_separates_pvs_and_devices():
    rule = Rule("motors", "motor*", Level.WRITE, target="device", users=frozenset({"alice"}))
    assert d([rule], ALICE, name="motor1", kind="device").level == Level.WRITE
    assert d([rule], ALICE, name="motor1", kind="pv").rule is None


def test_caps_for_anonymous_clients():
    everyone_writes = [Rule("all", "*", Level.WRITE)]
    assert d(everyone_writes, ANON).level == Level.READ  # anonymous writes are off by default
    assert d(everyone_writes, ANON, policy=Policy(anonymous_writes=True)).level == Level.WRITE
    required = Policy(auth_required=True)
    assert d(everyone_writes, ANON, policy=required).level == Level.NONE
    assert d(everyone_writes, ALICE, policy=required).level == Level.WRITE


def test_rules_for_users_never_match_anonymous():
    rule = Rule("ops", "*", Level.NONE, groups=frozenset({"operators"}))
    assert d([rule], ANON).rule is None


@pytest.mark.parametrize(("pattern", "syntax", "ok"),
                         [("SR:*", "glob", True), ("(", "regex", False), ("", "glob", False)])
def test_pattern_check(pattern, syntax, ok):
    assert (check_pattern(pattern, syntax) is None) is ok


def test_bad_networks_raise():
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")


def test_a_rule_without_a_scheme_covers_both_protocols_one_with_a_scheme_only_its_own():
    plain = Rule("sr", "SR:*", Level.WRITE, users=frozenset({"alice"}))
    for topic in ("SR:x", "pva://SR:x"):  # the topics of ca://SR:x (and a bare SR:x) and pva://SR:x
        assert d([plain], ALICE, name=topic).rule == "sr", topic
    pva_only = Rule("pva", "pva://SR:*", Level.NONE)
    assert d([pva_only], ALICE, name="pva://SR:x").level == Level.NONE
    assert d([pva_only], ALICE, name="SR:x").rule is None
    ca_only = Rule("ca", r"ca://SR:.*", Level.NONE, syntax="regex")
    assert d([ca_only], ALICE, name="SR:x").level == Level.NONE
    assert d([ca_only], ALICE, name="pva://SR:x").rule is None
    devices = Rule("dev", "m*", Level.NONE, target="device")
    assert d([devices], ALICE, name="m3", kind="device").level == Level.NONE  # device names have no scheme
