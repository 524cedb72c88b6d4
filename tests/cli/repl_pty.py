#!/usr/bin/python3
"""Drives the bnlab REPL through a pseudo-terminal, as a person would.

usage: repl_pty.py BNLAB
Prints one line per check ("ok ..." / "FAIL ..."), then "repl: N passed, M
failed"; exits 1 when a check failed. Every wait has a deadline, so a hung
REPL fails the check instead of hanging the suite. Run from tests/lua/test_cli.lua.
"""
import os
import pty
import re
import select
import signal
import sys
import tempfile
import time

TIMEOUT = 15.0  # seconds per expectation; generous for sanitizer builds
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07|\r")


class Repl:
    def __init__(self, exe, home):
        self.history = os.path.join(home, "history")
        env = dict(os.environ)
        env.update({"TERM": "dumb", "INPUTRC": "/dev/null", "HOME": home,
                    "BNLAB_HISTORY": self.history, "COLUMNS": "200", "LINES": "50"})
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(exe, [exe], env)
            finally:
                os._exit(127)
        self.buffer = b""   # everything not yet consumed by expect()
        self.transcript = b""

    def send(self, text):
        os.write(self.fd, text.encode())

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], left)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        self.buffer += chunk
        self.transcript += chunk
        return True

    def expect(self, pattern):
        """Waits until the cleaned output matches `pattern` (a regex); consumes
        through the match and returns it, or None at the deadline."""
        deadline = time.monotonic() + TIMEOUT
        regex = re.compile(pattern, re.S)
        while True:
            clean = ANSI.sub(b"", self.buffer).decode(errors="replace")
            m = regex.search(clean)
            if m:
                self.buffer = b""  # a cleaned offset does not map back: drop all seen
                return m
            if not self._read(deadline):
                return None

    def wait_exit(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return status
            self._read(min(deadline, time.monotonic() + 0.1))
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


def main():
    exe = os.path.abspath(sys.argv[1])
    home = tempfile.mkdtemp(prefix="bnlab-repl-")
    repl = Repl(exe, home)
    results = []

    def check(name, ok):
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + name)
        sys.stdout.flush()
        return ok

    PROMPT = r"(^|\n)> $"

    check("banner and prompt", repl.expect(r"bnlab .*Ctrl-D exits\.\n> $") is not None)

    repl.send("1+1\r")
    check("expression value printed", repl.expect(r"1\+1\n2\n> $") is not None)

    repl.send("for i=1,2 do\r")
    check("unfinished statement asks for more", repl.expect(r"\n>> $") is not None)
    repl.send("print(i * 10)\r")
    repl.expect(r"\n>> $")
    repl.send("end\r")
    check("multi-line statement runs", repl.expect(r"end\n10\n20\n> $") is not None)

    repl.send("bn.args.pa\t")
    check("tab completes a field", repl.expect(r"bn\.args\.parse$") is not None)
    repl.send("\r")
    check("completed text is valid", repl.expect(r"function: (builtin: )?0x[0-9a-f]+\n> $") is not None)

    # Unique: completes to bn.args; ambiguous (bn.arange...): the listing shows it.
    repl.send("bn.ar\t\t")
    check("tab on bn.ar offers bn.args", repl.expect(r"bn\.args\b") is not None)
    repl.send("\x15")  # Ctrl-U: clear the line
    repl.send("0\r")
    repl.expect(r"\n0\n> $")

    repl.send('s = "abc"\r')
    repl.expect(PROMPT)
    repl.send("s:up\t")
    check("tab completes a method after ':'", repl.expect(r"s:upper$") is not None)
    repl.send("()\r")
    check("method call value", repl.expect(r"\nABC\n> $") is not None)

    repl.send("xyz")
    repl.expect(r"xyz$")
    repl.send("\x03")
    check("Ctrl-C gives a fresh prompt", repl.expect(PROMPT) is not None)
    repl.send("1+2\r")
    check("Ctrl-C discarded the line", repl.expect(r"1\+2\n3\n> $") is not None)

    repl.send("for i=1,2 do\r")
    repl.expect(r"\n>> $")
    repl.send("\x03")
    repl.expect(PROMPT)
    repl.send("2+2\r")
    check("Ctrl-C abandons an unfinished statement", repl.expect(r"2\+2\n4\n> $") is not None)

    repl.send('print("spinning") while true do end\r')
    repl.expect(r"\nspinning\n")  # the statement runs: now interrupt it
    repl.send("\x03")
    check("Ctrl-C stops a running statement", repl.expect(r"stdin:1: interrupted!.*\n> $") is not None)
    repl.send("2+3\r")
    check("REPL alive after interrupt", repl.expect(r"2\+3\n5\n> $") is not None)

    repl.send('error("boom")\r')
    check("errors are reported, REPL goes on", repl.expect(r"stdin:1: boom\nstack traceback:.*\n> $") is not None)

    repl.send('{1, 2, name = "x", {3}}\r')
    check("tables printed with contents", repl.expect(r'\{1, 2, \{3\}, name = "x"\}\n> $') is not None)

    repl.send("bn.zeros ~= nil\r")
    has_zeros = repl.expect(r"\n(true|false)\n> $")
    if has_zeros and has_zeros.group(1) == "true":
        repl.send("bn.zeros(2, 3)\r")
        check("tensor printed as a summary", repl.expect(r"\n[^\n]*2 x 3[^\n]*(\n[^\n]*)?\n> $") is not None)
    else:
        print("skip tensor summary (bn.zeros not bound yet)")

    repl.send("\x04")  # Ctrl-D at an empty line
    status = repl.wait_exit()
    check("Ctrl-D exits with status 0", status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)

    try:
        with open(repl.history) as f:
            history = f.read()
    except OSError:
        history = ""
    check("history saved", "1+1" in history and "for i=1,2 do\nprint(i * 10)\nend" in history)

    passed = sum(results)
    failed = len(results) - passed
    if failed:
        sys.stdout.write("--- transcript ---\n" + ANSI.sub(b"", repl.transcript).decode(errors="replace") + "\n")
    print("repl: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
