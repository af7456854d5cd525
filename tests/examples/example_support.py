"""Helpers shared by the example tests: tiny models, bounded subprocesses, raw audio checks."""
import array
import os
import socket
import subprocess
import sys


def tiny_model(version="v1.5"):
    d = os.path.join(os.environ["VOXCPM_FIXTURES"], "tiny-" + version)
    if not os.path.isdir(d):
        fail("tiny model not found at " + d)
    return d


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def run(cmd, timeout=60, **kw):
    """Runs cmd (a list) with a hard timeout; returns the CompletedProcess with text output."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        fail("timed out after %ss: %s\n%s\n%s" % (timeout, " ".join(cmd), e.stdout, e.stderr))


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speech_span(path, rate):
    """(total seconds, first non-zero second, last non-zero second) of mono S16 raw audio.
    The sources stream exact zeros between utterances, so the non-zero span is the speech."""
    a = array.array("h")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    nz = [i for i, x in enumerate(a) if x]
    if not nz:
        return len(a) / rate, None, None
    return len(a) / rate, nz[0] / rate, (nz[-1] + 1) / rate


def python_with_gi():
    """An interpreter that has PyGObject (Debian's python3-gi lives in /usr/bin/python3)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and subprocess.run([exe, "-c", "import gi"], capture_output=True).returncode == 0:
            return exe
    fail("no python3 with PyGObject (install python3-gi, see scripts/setup.sh)")


def to_s16(path, out):
    """Decodes any audio file to mono S16 raw with ffmpeg (keeping its rate); returns out."""
    r = run(["ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-y", out], timeout=30)
    check(r.returncode == 0, "ffmpeg could not decode %s: %s" % (path, r.stderr))
    return out
