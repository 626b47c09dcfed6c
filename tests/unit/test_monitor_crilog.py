"""oci-mon's CRI logs: records, partial lines, rotation, dropped records, reading them back."""

import errno
import os

from oci.monitor import crilog
from oci.monitor.follow import RotatedFile

STAMP = "2024-05-01T12:00:00.000000001Z"


def test_lines_become_full_records_and_a_missing_newline_a_partial_one():
    blob, count = crilog.encode("stdout", b"one\ntwo\nthree", STAMP)
    assert blob == (f"{STAMP} stdout F one\n{STAMP} stdout F two\n{STAMP} stdout P three\n").encode()
    assert count == 3
    assert crilog.encode("stderr", b"\n", STAMP) == (f"{STAMP} stderr F \n".encode(), 1)


def test_a_long_line_is_cut_in_pieces_of_16_kib():
    blob, count = crilog.encode("stdout", b"x" * 40000 + b"\n", STAMP)
    records = [crilog.parse(line) for line in blob.splitlines(keepends=True)]
    assert count == 3
    assert [(r.partial, len(r.content)) for r in records] == [(True, 16384), (True, 16384), (False, 7232)]


def test_parse_skips_what_is_not_a_record_and_reads_tag_lists():
    assert crilog.parse(b"garbage\n") is None
    assert crilog.parse(f"{STAMP} stdin F x\n".encode()) is None
    record = crilog.parse(f"{STAMP} stdout P:other text with  spaces\n".encode())
    assert record == crilog.Record(STAMP, "stdout", True, b"text with  spaces")
    assert crilog.parse(f"{STAMP} stdout F\n".encode()) == crilog.Record(STAMP, "stdout", False, b"")


def test_writer_rotates_by_size_and_keeps_max_files(tmp_path):
    path = str(tmp_path / "ctr.log")
    writer = crilog.LogWriter(path, max_size=200, max_files=3)
    for i in range(30):
        writer.write("stdout", f"line-{i:03d}\n".encode(), STAMP)
    writer.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    assert all(os.path.getsize(tmp_path / name) <= 200 for name in names)
    lines = [r.content for r in crilog.records(RotatedFile(path).history())]
    assert lines == [f"line-{i:03d}".encode() for i in range(30 - len(lines), 30)]


def test_one_file_means_a_full_log_starts_again(tmp_path):
    path = str(tmp_path / "ctr.log")
    writer = crilog.LogWriter(path, max_size=100, max_files=1)
    for i in range(10):
        writer.write("stdout", f"line-{i}\n".encode(), STAMP)
    assert os.listdir(tmp_path) == ["ctr.log"]
    assert os.path.getsize(path) <= 100


def test_a_full_disk_drops_whole_records_and_counts_them(tmp_path, monkeypatch):
    path = str(tmp_path / "ctr.log")
    writer = crilog.LogWriter(path)
    writer.write("stdout", b"before\n", STAMP)
    real_write = os.write

    def full(fd, data):
        if fd == writer.fd:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    assert writer.write("stdout", b"a\nb\n", STAMP) == 2
    assert (writer.dropped, writer.episode, writer.failure) == (2, 2, os.strerror(errno.ENOSPC))

    def half(fd, data):  # the disk fills up inside the record
        return real_write(fd, data[:5]) if fd == writer.fd else real_write(fd, data)

    monkeypatch.setattr(os, "write", half)
    assert writer.write("stdout", b"c\n", STAMP) == 1
    monkeypatch.setattr(os, "write", real_write)
    assert writer.write("stdout", b"after\n", STAMP) == 0
    assert (writer.dropped, writer.episode) == (3, 0)
    assert [r.content for r in crilog.records(open(path, "rb"))] == [b"before", b"after"]


def test_select_joins_partials_per_stream_and_tails_whole_lines():
    records = [crilog.Record("2024-05-01T12:00:01Z", "stdout", True, b"he"),
               crilog.Record("2024-05-01T12:00:01Z", "stderr", False, b"err"),
               crilog.Record("2024-05-01T12:00:02Z", "stdout", False, b"llo"),
               crilog.Record("2024-05-01T12:00:03Z", "stdout", False, b"last")]
    assert crilog.select(records, tail=2) == [records[1], records[3]], "lines in the order they began"
    assert crilog.select(records, tail=3) == records
    assert crilog.select(records, tail=0) == []
    since = crilog.select(records, since=crilog.time_ns(records[2]))
    assert since == [records[3]], "a line is kept or left out whole, by the time it began"
    until = crilog.select(records, until=crilog.time_ns(records[3]))
    assert until == records[:3]


def test_printer_splits_streams_and_stamps_line_starts(tmp_path):
    out, err = os.pipe(), os.pipe()
    printer = crilog.Printer(out[1], err[1], timestamps=True)
    for record in [crilog.Record("T1", "stdout", True, b"he"), crilog.Record("T2", "stdout", False, b"llo"),
                   crilog.Record("T3", "stderr", False, b"oops")]:
        printer.show(record)
    os.close(out[1])
    os.close(err[1])
    assert os.read(out[0], 100) == b"T1 hello\n"
    assert os.read(err[0], 100) == b"T3 oops\n"


def test_one_large_read_is_spread_over_files_record_by_record(tmp_path):
    path = str(tmp_path / "ctr.log")
    writer = crilog.LogWriter(path, max_size=300, max_files=4)
    writer.write("stdout", b"".join(f"line-{i:03d}\n".encode() for i in range(40)), STAMP)
    assert sorted(os.listdir(tmp_path)) == ["ctr.log", "ctr.log.1", "ctr.log.2", "ctr.log.3"]
    assert all(os.path.getsize(tmp_path / name) <= 300 for name in os.listdir(tmp_path))
    lines = [r.content for r in crilog.records(RotatedFile(path).history())]
    assert lines == [f"line-{i:03d}".encode() for i in range(40 - len(lines), 40)]
