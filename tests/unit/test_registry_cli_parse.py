"""oci-fetch's and oci-push's argparse-free parsing of the plain spellings matches argparse."""

import ocicli
import pytest
from oci_fetch import FETCH_FLAGS, FETCH_POSITIONALS, fetch_parser
from oci_push import PUSH_FLAGS, PUSH_POSITIONALS, push_parser


def quick_parse(argv, flags, positionals):
    return ocicli.quick_parse(argv, ocicli.COMMON_FLAGS + flags, positionals)

FETCH = (FETCH_FLAGS, FETCH_POSITIONALS, fetch_parser)
PUSH = (PUSH_FLAGS, PUSH_POSITIONALS, push_parser)


@pytest.mark.parametrize("command, argv", [
    (FETCH, ["--insecure", "-q", "127.0.0.1:5000/a:1", "/tmp/l"]),
    (FETCH, ["127.0.0.1:5000/a:1"]),
    (FETCH, ["r/a:1", "out", "--tag", "x", "--platform=linux/arm64", "-j", "8", "--timeout", "2.5"]),
    (FETCH, ["--all-platforms", "--referrers", "--verify", "k.pub", "--cert-dir", "/c", "--retries=0", "r/a", "-"]),
    (FETCH, ["--log-format", "json", "--debug", "--quiet", "oci:./x:1", "y"]),
    (FETCH, ["--tag", "a", "--tag", "b", "r/a"]),
    (PUSH, ["--insecure", "-q", "./images:app", "127.0.0.1:5000/team/app:1"]),
    (PUSH, ["-", "r/a:1", "--tag", "1", "--tag", "latest", "--from-repo", "library/x", "--chunk-size=8M"]),
    (PUSH, ["--sign", "k.pem", "--jobs=2", "l:t", "r/a@sha256:" + "0" * 64, "--log-format=text"]),
])
def test_quick_parse_agrees_with_argparse(command, argv):
    flags, positionals, parser = command
    quick = quick_parse(argv, flags, positionals)
    assert quick is not None
    assert vars(quick) == vars(parser().parse_args(argv))


@pytest.mark.parametrize("command, argv", [
    (FETCH, ["--help"]), (FETCH, ["--version"]), (FETCH, []), (FETCH, ["a", "b", "c"]),
    (FETCH, ["a", "--insecure", "b"]),  # argparse takes `a` and an empty LAYOUT, then refuses `b`
    (FETCH, ["--insec", "a"]), (FETCH, ["-qj4", "a"]), (FETCH, ["--", "a"]), (FETCH, ["--tag", "-x", "a"]),
    (FETCH, ["--jobs", "four", "a"]), (FETCH, ["--timeout=soon", "a"]), (FETCH, ["--insecure=1", "a"]),
    (FETCH, ["--log-format", "xml", "a"]), (FETCH, ["--tag"]), (FETCH, ["-5", "a"]),
    (PUSH, ["a"]), (PUSH, ["a", "--tag", "t", "b"]), (PUSH, ["--chunk-size", "a", "b"]), (PUSH, ["--bogus", "a", "b"]),
])
def test_anything_unusual_is_left_to_argparse(command, argv):
    flags, positionals, _ = command
    assert quick_parse(argv, flags, positionals) is None
