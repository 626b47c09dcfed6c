"""oci.errors: the exception hierarchy and its exit codes."""

from oci import errors


def test_exit_codes_are_distinct_per_family():
    families = (errors.OciError, errors.UsageError, errors.NotFound, errors.IntegrityError,
                errors.RegistryError, errors.AuthError, errors.Conflict, errors.Unsupported)
    codes = {cls: cls.exit_code for cls in families}
    assert codes[errors.OciError] == 1 and codes[errors.UsageError] == 2
    assert len(set(codes.values()) - {2}) == len(codes) - 1
    assert errors.InvalidDocument("x", [("/a", "bad")]).exit_code == 2


def test_lines_name_the_source():
    err = errors.NotFound("no such tag", source="./images")
    assert err.lines() == ["./images: no such tag"] and str(err) == "./images: no such tag"
    doc = errors.InvalidDocument("config.json", [("/process/args", "is not an array"), ("", "bad")])
    assert doc.lines() == ["config.json: /process/args: is not an array", "config.json: /: bad"]
