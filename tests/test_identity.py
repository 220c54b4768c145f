"""The Actor an edge passes into the services, and the local one it builds until logins exist."""

from __future__ import annotations

import os

import pytest

from segue.errors import InvalidArgument
from segue.identity import Actor, local_actor


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"LOGNAME": "ada", "USER": "bob"}, "ada"),
        ({"USER": "bob", "USERNAME": "carl"}, "bob"),
        ({"LOGNAME": "", "USERNAME": "carl"}, "carl"),
        ({"LOGNAME": "ev il\nroot"}, "ev?il?root"),
    ],
)
def test_the_local_actor_is_the_login_name_with_the_os_user_id(environ, name):
    actor = local_actor(environ, uid=1000)

    assert actor == Actor("local", name, 1000)
    assert str(actor) == f"local:{name} (uid 1000)"


def test_the_uid_comes_from_the_os_not_the_environment():
    actor = local_actor({"LOGNAME": "root", "UID": "0"})

    assert actor.uid == os.getuid()
    assert actor.id == "local:root"


def test_without_a_login_name_the_account_of_the_uid_names_it():
    import pwd

    assert local_actor({}, uid=os.getuid()).name == pwd.getpwuid(os.getuid()).pw_name
    assert local_actor({}, uid=2**31 - 7).name == "unknown"  # no such account


@pytest.mark.parametrize(
    ("kind", "name", "uid", "words"),
    [
        ("Local", "ada", None, "kind 'Local'"),
        ("local", "", None, "name ''"),
        ("local", "a" * 201, None, "1 to 200 characters"),
        ("local", "a b", None, "spaces and control characters"),
        ("local", "ada", -1, "uid -1"),
        ("local", "ada", True, "uid True"),
    ],
)
def test_a_malformed_actor_is_refused_naming_the_field(kind, name, uid, words):
    with pytest.raises(InvalidArgument, match=words):
        Actor(kind, name, uid)


def test_an_actor_without_uid_prints_its_id():
    assert str(Actor("token", "ci-bot")) == "token:ci-bot"
