"""The conventions of ocicli that every command shares: one flag table shape, Go's bool flags,
the registry flags and their transport options, one reading of an IMAGE argument, one exit path,
the library's warnings and debug messages on the command's stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import ocicli
import pytest

import oci
from oci import log
from oci.errors import InvalidInput, UsageError
from oci.image import parse_image_argument
from oci.reference import strip_transport
from tests.conftest import BIN


def registry_parser() -> ocicli.Parser:
    parser = ocicli.Parser("oci-test", "test", common=False)
    ocicli.add_flags(parser, ocicli.REGISTRY_FLAGS)
    parser.add_argument("ref")
    return parser


@pytest.mark.parametrize("argv, verify", [
    (["r/a"], True), (["--tls-verify", "r/a"], True), (["r/a", "--tls-verify"], True),
    (["--tls-verify=false", "r/a"], False), (["--tls-verify=0", "r/a"], False), (["--tls-verify=true", "r/a"], True),
])
def test_bool_flags_read_as_go_reads_them(argv, verify):
    """`--tls-verify` alone is true and takes no value from the next argument; `=false` sets it, as pflag's."""
    args = registry_parser().parse_args(argv)
    assert args.tls_verify is verify and args.ref == "r/a"
    quick = ocicli.quick_parse(argv, ocicli.REGISTRY_FLAGS, [("ref", ocicli.REQUIRED)])
    assert quick is not None and vars(quick) == vars(args)


def test_a_bad_bool_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        registry_parser().parse_args(["--tls-verify=maybe", "r/a"])
    assert info.value.code == 2 and "--tls-verify" in capsys.readouterr().err


def test_bool_flags_in_a_containers_command_are_left_alone():
    """What follows the image of `ocikit run` is the container's command, never spelled out."""
    import argparse

    parser = ocicli.Parser("ocikit run", "test", common=False)
    ocicli.add_flags(parser, ocicli.registry_flags("--tls-verify", "--cert-dir"))
    parser.add_argument("--name")
    parser.add_argument("image")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(["--name", "web", "--tls-verify", "img", "prog", "--tls-verify"])
    assert args.name == "web" and args.tls_verify is True
    assert args.image == "img" and args.command == ["prog", "--tls-verify"]


def test_registry_options_from_the_flags():
    options = ocicli.registry_options(registry_parser().parse_args(["--tls-verify=false", "--cert-dir", "/c", "r"]))
    assert options.tls_verify is False and options.cert_dir == "/c" and not options.insecure
    defaults = ocicli.registry_options(ocicli.Options())  # a command without the flags: their defaults
    assert defaults.tls_verify is True and defaults.timeout == 30.0 and defaults.retries == 5
    with pytest.raises(UsageError, match="exclude each other"):
        ocicli.registry_options(registry_parser().parse_args(["--insecure", "--tls-verify=false", "r"]))


def test_common_flags_are_one_table_for_argparse_and_quick_parse():
    parser = ocicli.Parser("oci-test", "test")
    parser.add_argument("x")
    argv, positionals = ["--log-format", "json", "-q", "--debug", "x"], [("x", ocicli.REQUIRED)]
    assert vars(ocicli.quick_parse(argv, ocicli.COMMON_FLAGS, positionals)) == vars(parser.parse_args(argv))
    assert ocicli.quick_parse(["--log-format", "xml", "x"], ocicli.COMMON_FLAGS, positionals) is None


@pytest.mark.parametrize("text, expected", [
    ("./images", ("./images", None)), ("./images:app", ("./images", "app")), ("oci:./images:app", ("./images", "app")),
    ("oci:/srv/l@sha256:" + "a" * 64, ("/srv/l", "sha256:" + "a" * 64)), ("oci:l", ("l", None)),
])
def test_an_image_argument_is_read_one_way(text, expected):
    assert parse_image_argument(text) == expected


def test_an_image_argument_with_a_bad_tag_says_so():
    with pytest.raises(InvalidInput, match="invalid tag"):
        parse_image_argument("oci:./images:-bad")


def test_the_registry_transport_prefix():
    assert strip_transport("docker://r.example/a:1") == "r.example/a:1" and strip_transport("r/a") == "r/a"


def test_library_warnings_and_debug_go_to_the_commands_messages(capsys):
    """oci.log is routed to the command's Messages: warnings on stderr (not with -q), debug with --debug."""

    def main(args, messages):
        messages.quiet = "-q" in args
        log.warning("a %s warning", "library")
        log.debug("a debug line")
        return 0

    for argv, expected in ([[], ["oci-test: warning: a library warning"]],
                           [["--debug"], ["oci-test: warning: a library warning", "oci-test: debug: a debug line"]],
                           [["-q"], []]):
        with pytest.raises(SystemExit) as info:
            ocicli.run("oci-test", main, argv)
        assert info.value.code == 0 and capsys.readouterr().err.splitlines() == expected
    oci.log_sink = None


def test_library_warnings_as_json_lines(capsys):
    def main(args, messages):
        log.warning("careful")
        return 0

    with pytest.raises(SystemExit):
        ocicli.run("oci-test", main, ["--log-format=json"])
    assert json.loads(capsys.readouterr().err) == {"level": "warning", "msg": "careful", "prog": "oci-test"}
    oci.log_sink = None


def test_the_one_exit_path_leaves_at_once_with_the_code():
    """exit_at_once: the code of an error, of argparse's --help, of main, with output flushed."""
    code = (f"import sys; sys.path.insert(0, {str(BIN)!r}); import ocicli\n"
            "from oci.errors import NotFound\n"
            "def main(args, messages):\n"
            "    sys.stdout.write('data')\n"
            "    if args == ['missing']: raise NotFound('x: gone')\n"
            "    if args == ['help']: ocicli.Parser('oci-test', 'test').parse_args(['--help'])\n"
            "    return int(args[0]) if args else 0\n"
            "import atexit; atexit.register(lambda: sys.stderr.write('teardown ran'))\n"
            "ocicli.run('oci-test', main, exit_at_once=True)\n")
    for argv, status in ([], 0), (["4"], 4), (["missing"], 3), (["help"], 0):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        assert done.returncode == status and done.stdout.startswith("data"), done
        assert "teardown ran" not in done.stderr


@pytest.mark.parametrize("argv", [["fetch"], ["push"], ["unpack"], ["bundle"], ["commit"], ["build"], ["net"],
                                  ["run"], ["mon"]])
def test_the_common_flags_mean_the_same_in_every_command(argv):
    """-q, --log-format and --debug, with one help text, in every small command's --help."""
    from tests.conftest import run

    text = run(argv[0], "--help").stdout
    for flag in ocicli.COMMON_FLAGS:
        assert flag.names[-1] in text and flag.help.split(" (")[0] in " ".join(text.split()), (argv, flag.names)


def test_ocikit_refuses_an_unknown_log_format():
    done = subprocess.run([sys.executable, str(BIN / "ocikit.py"), "--log-format", "xml", "ps"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--log-format" in done.stderr
