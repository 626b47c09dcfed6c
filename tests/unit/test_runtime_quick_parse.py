"""oci-run's argparse-free parsing of the verbs engines call on every container matches argparse's."""

import pytest
from oci_run import quick_parse, verb_parser


@pytest.mark.parametrize("verb, args", [
    ("create", ["-b", "/b", "--pid-file", "p", "--console-socket", "s", "--no-pivot", "--preserve-fds", "2", "c1"]),
    ("create", ["c1", "--bundle=/b", "--no-new-keyring"]),
    ("run", ["-d", "--keep", "--bundle", "/x", "c1"]),
    ("run", ["c1"]),
    ("start", ["c1"]),
    ("state", ["c1"]),
    ("kill", ["-a", "c1", "KILL"]),
    ("kill", ["c1"]),
    ("kill", ["--all", "c1", "9"]),
    ("delete", ["-f", "c1"]),
    ("delete", ["c1", "--force"]),
])
def test_quick_parse_agrees_with_argparse(verb, args):
    quick = quick_parse(verb, args)
    assert quick is not None
    assert vars(quick) == vars(verb_parser(verb).parse_args(args))


@pytest.mark.parametrize("verb, args", [
    ("run", ["--help"]), ("run", ["-db", "/b", "c1"]), ("run", ["--bund", "/b", "c1"]), ("run", []),
    ("run", ["a", "b"]), ("run", ["-b"]), ("run", ["-b", "--keep", "c1"]), ("create", ["--preserve-fds", "x", "c"]),
    ("create", ["--no-pivot=1", "c"]), ("kill", ["c1", "-9"]), ("kill", ["a", "b", "c"]), ("start", ["--", "c1"]),
    ("exec", ["c1", "true"]), ("list", []), ("start", ["--version"]),
])
def test_anything_unusual_is_left_to_argparse(verb, args):
    assert quick_parse(verb, args) is None
