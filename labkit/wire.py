"""Lines over pipes: JSON objects between the kernel and the agent, words to the lab parents.

Standard library only. Pipes, not sockets: a pipe's reader sees EOF when every writer is gone,
which is how each side learns that the other died.
"""

from __future__ import annotations

import json
import os
import select


class Channel:
    """A pair of pipe ends: read requests or replies line by line, write them whole."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self._buf = b""

    def send(self, message: dict) -> None:
        self.send_line(json.dumps(message, separators=(",", ":")))

    def send_line(self, line: str) -> None:
        data = (line + "\n").encode()
        while data:
            data = data[os.write(self.wfd, data):]

    def has_line(self) -> bool:
        return b"\n" in self._buf

    def receive(self, timeout: float | None = None) -> dict | None:
        """The next message, None at EOF; TimeoutError if none arrives within `timeout` s."""
        line = self.receive_line(timeout)
        return None if line is None else json.loads(line)

    def receive_line(self, timeout: float | None = None) -> str | None:
        """The next line (without its newline), None at EOF; TimeoutError after `timeout` s."""
        while b"\n" not in self._buf:
            if timeout is not None and not self._readable(timeout):
                raise TimeoutError
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def _readable(self, timeout: float) -> bool:
        # poll(2), not select(2): the kernel side may hold thousands of descriptors (the
        # snapshot reader keeps /proc files open), and select cannot watch an fd >= 1024.
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))

    def close(self) -> None:
        for fd in {self.rfd, self.wfd}:
            try:
                os.close(fd)
            except OSError:
                pass
