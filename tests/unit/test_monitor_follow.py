"""Following a file across the writer's renames (oci.monitor.follow)."""

import os

from oci.monitor.follow import RotatedFile, backups


def rotate(path, keep):
    for k in range(keep, 1, -1):
        if os.path.exists(f"{path}.{k - 1}"):
            os.rename(f"{path}.{k - 1}", f"{path}.{k}")
    os.rename(path, f"{path}.1")


def test_backups_oldest_first(tmp_path):
    for name in ("log", "log.1", "log.10", "log.2", "log.x", "other.1"):
        (tmp_path / name).write_text("")
    assert backups(str(tmp_path / "log")) == [str(tmp_path / n) for n in ("log.10", "log.2", "log.1")]


def test_history_then_poll_across_several_rotations(tmp_path):
    path = str(tmp_path / "log")
    with open(path, "w") as f:
        f.write("a\n")
    reader = RotatedFile(path)
    assert list(reader.history()) == [b"a\n"]
    with open(path, "a") as f:
        f.write("b\npart")
    assert list(reader.poll()) == [b"b\n"]
    with open(path, "a") as f:
        f.write("ial\n")
    rotate(path, 3)
    with open(path, "w") as f:
        f.write("c\n")
    rotate(path, 3)  # twice between two polls: the middle file is read from its backup
    with open(path, "w") as f:
        f.write("d\n")
    assert list(reader.poll()) == [b"partial\n", b"c\n", b"d\n"]
    assert list(reader.poll()) == []
    reader.close()


def test_a_held_file_removed_by_rotation_is_still_read(tmp_path):
    path = str(tmp_path / "log")
    with open(path, "w") as f:
        f.write("a\n")
    reader = RotatedFile(path)
    list(reader.history())
    with open(path, "a") as f:
        f.write("b\n")
    os.unlink(path)  # one file kept: the full file is removed
    with open(path, "w") as f:
        f.write("c\n")
    assert list(reader.poll()) == [b"b\n", b"c\n"]


def test_skip_history_starts_at_the_end_and_a_missing_file_is_waited_for(tmp_path):
    path = str(tmp_path / "log")
    reader = RotatedFile(path)
    reader.skip_history()
    assert list(reader.poll()) == []
    with open(path, "w") as f:
        f.write("x\n")
    assert list(reader.poll()) == [b"x\n"]
