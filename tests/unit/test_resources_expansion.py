"""`$(VAR)` expansion with Kubernetes' semantics (the kubelet's forked `expansion`
package): the cases its own table covers, in this project's words."""

from __future__ import annotations

import pytest

from amimesh.resources.expansion import expand, expand_all, expand_env

VARS = {
    "ONE": "1",
    "TWO": "2",
    "THREE": "3",
    "POINTER": "$(ONE)",  # a value that itself looks like a reference stays as it is
    "BLANK": "",
}

CASES: list[tuple[str, str, str]] = [
    ("a whole value", "$(ONE)", "1"),
    ("twice", "$(ONE)+$(ONE)", "1+1"),
    ("at the start", "$(ONE)-x", "1-x"),
    ("in the middle", "--$(TWO)--", "--2--"),
    ("at the end", "x=$(THREE)", "x=3"),
    ("several", "$(ONE).$(TWO).$(THREE)", "1.2.3"),
    ("an escaped reference and a real one", "$$(TWO)/$(ONE)", "$(TWO)/1"),
    ("two escaped references", "$$(ONE)$$(TWO)", "$(ONE)$(TWO)"),
    ("$$ before a name is one $", "cost-$$ONE", "cost-$ONE"),
    ("a backslash does not escape", "a\\$(THREE)b", "a\\3b"),
    ("two backslashes do not escape", "a\\\\$(THREE)b", "a\\\\3b"),
    ("many backslashes do not escape", "a\\\\\\\\$(ONE)b", "a\\\\\\\\1b"),
    ("nested references are a name with $( in it", "$(ONE$(TWO))", "$(ONE$(TWO))"),
    ("a nested reference without its closing", "$(ONE$(TWO)", "$(ONE$(TWO)"),
    ("a value is not expanded again", "$(POINTER)", "$(ONE)"),
    ("nor twice in one text", "<$(POINTER)|$(POINTER)>", "<$(ONE)|$(ONE)>"),
    ("an empty value", "a$(BLANK)b", "ab"),
    ("no closing parenthesis", "a$(ONEoops!", "a$(ONEoops!"),
    ("parentheses without $", "x(ONE)x", "x(ONE)x"),
    ("shell's special variables pass", "$?-$!", "$?-$!"),
    ("a bare $NAME passes", "$ONE", "$ONE"),
    ("an undefined name is kept", "$(NOPE)", "$(NOPE)"),
    ("six $ then an undefined reference", "$$$$$$(NOPE)", "$$$(NOPE)"),
    ("six $ then a defined reference", "$$$$$$(ONE)", "$$$(ONE)"),
    ("seven $ then an undefined reference", "$$$$$$$(NOPE)", "$$$$(NOPE)"),
    ("seven $ then a defined reference", "$$$$$$$(ONE)", "$$$1"),
    ("a closing parenthesis alone", "$ONE)", "$ONE)"),
    ("shell braces are not references", "${ONE}", "${ONE}"),
    ("an incomplete reference at the end stays", "$(TWO)..$(O", "2..$(O"),
    ("an empty incomplete reference at the end stays", "$(THREE)..$(", "3..$("),
    ("a $ at the very end stays", "$(ONE)end$", "1end$"),
    ("a backslash before an incomplete reference", "x-\\$(ONE", "x-\\$(ONE"),
    ("many $( in the middle", "--$($($($(--", "--$($($($(--"),
    ("many $( at the start", "$($($($(--x$(", "$($($($(--x$("),
    ("many $( at the end", "x--$($($($(", "x--$($($($("),
    ("$$ inside a name is part of the name", "$(a$$b)", "$(a$$b)"),
    ("a newline", "\n", "\n"),
    ("no $ at all", "plain text", "plain text"),
    ("an empty text", "", ""),
    ("a name with non-ASCII letters", "$(ÉTÉ)-é", "$(ÉTÉ)-é"),
]


@pytest.mark.parametrize(("text", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_expand(text: str, want: str) -> None:
    assert expand(text, VARS) == want


def test_env_values_see_earlier_entries_then_the_platform() -> None:
    """The kubelet's order: each value sees the entries declared before it (already
    expanded) and, below them, the platform's variables; a later entry is not seen."""
    env = expand_env(
        [
            ("BASE", "svc"),
            ("HOST", "$(BASE)-1"),
            ("URL", "http://$(HOST):$(PORT)/$(PATH_PART)"),
            ("PATH_PART", "v1"),
            ("PORT", "9000"),
            ("AGAIN", "$(PORT)"),
            ("RAW", ""),
        ],
        {"PORT": "8080"},
    )
    assert env == {
        "BASE": "svc",
        "HOST": "svc-1",
        "URL": "http://svc-1:8080/$(PATH_PART)",
        "PATH_PART": "v1",
        "PORT": "9000",  # the container's own entry wins over the platform's
        "AGAIN": "9000",
        "RAW": "",
    }


def test_command_lines() -> None:
    env = {"PORT": "8080", "NAME": "web"}
    assert expand_all(["serve", "--port=$(PORT)", "$$(NAME)", "$(NAME)"], env) == (
        "serve",
        "--port=8080",
        "$(NAME)",
        "web",
    )
