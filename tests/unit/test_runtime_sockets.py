"""The runtime's sockets: AF_UNIX paths longer than sun_path (Docker's runtime root with a 64-hex id, a
200-character --root), and sync-channel messages larger than one SEQPACKET datagram (a 50 MB config's state)."""

import _socket
import threading

from oci.linux import unixsock
from oci.runtime.channel import CHUNK, Channel


def test_a_socket_path_of_any_length(tmp_path):
    folder = tmp_path / ("r" * 120) / ("m" * 100)
    folder.mkdir(parents=True)
    path = str(folder / "exec.sock")
    assert len(path) > 200
    server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    unixsock.bind(server, path)
    server.listen(1)
    assert (folder / "exec.sock").is_socket()
    client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    unixsock.connect(client, path)
    conn_fd, _ = server._accept()
    _socket.socket(fileno=conn_fd).close()
    for sock in (client, server):
        sock.close()


def test_a_message_larger_than_a_datagram(tmp_path):
    ours, theirs = Channel.pair()
    state = {"annotations": {f"k{i}": "x" * (1 << 20) for i in range(50)}}  # 50 MB: one send would be EMSGSIZE
    sender = threading.Thread(target=lambda: theirs.send("state", state=state))
    sender.start()
    got = ours.recv("state")
    sender.join()
    assert got["state"] == state
    theirs.send("ready")  # and small ones still go whole
    assert ours.recv("ready") == {"kind": "ready"}
    assert CHUNK < 200 << 10
