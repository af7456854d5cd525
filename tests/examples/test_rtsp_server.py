"""examples/rtsp-server: start voxcpm-rtsp-server on a free loopback port with the tiny model, pull
the stream with ffprobe, ffmpeg and GStreamer's rtspsrc, and check the speech that arrives."""
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

from example_support import check, fail, free_port, run, speech_span, tiny_model

exe = sys.argv[1]
RATE = 44100
CHUNK_S = 0.16   # VoxCPM1.5: 7056 samples per chunk
CHUNKS = 5
port = free_port()
url = "rtsp://127.0.0.1:%d/tts" % port
tmp = tempfile.mkdtemp(prefix="voxcpm-rtsp-")

server = subprocess.Popen(
    [exe, "--model", tiny_model("v1.5"), "--port", str(port), "--text", "Hello there.",
     "-P", "seed=7", "-P", "min-len=%d" % CHUNKS, "-P", "max-len=%d" % CHUNKS, "-P", "n-threads=1"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
lines = queue.Queue()
threading.Thread(target=lambda: [lines.put(l.rstrip("\n")) for l in server.stdout], daemon=True).start()


def expect_line(prefix, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            line = lines.get(timeout=max(0.1, end - time.time()))
        except queue.Empty:
            break
        print("server: " + line)
        if line.startswith(prefix):
            return line
    fail("server never printed %r" % prefix)


def check_speech(path, seconds, what):
    total, first, last = speech_span(path, RATE)
    print("%s: %.3f s received, speech %s..%s s" % (what, total, first, last))
    check(first is not None, what + ": only silence arrived")
    # Live source: speech starts with the stream and is exactly `seconds` long (sample-accurate L16).
    check(first < 0.05, "%s: speech starts late (%.3f s)" % (what, first))
    check(abs((last - first) - seconds) < 0.02, "%s: %.3f s of speech, expected %.3f" % (what, last - first, seconds))


try:
    expect_line("serving " + url)

    # 1. ffprobe sees one L16 stream at the model's native rate.
    r = run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
             "stream=codec_name,sample_rate,channels", "-of", "default=nw=1", url], timeout=30)
    check(r.returncode == 0, "ffprobe failed: " + r.stderr)
    print(r.stdout)
    for want in ("codec_name=pcm_s16be", "sample_rate=%d" % RATE, "channels=1"):
        check(want in r.stdout, "ffprobe: %s missing" % want)

    # 2. A line typed while nobody listens is held for the next client, spoken after --text.
    time.sleep(1.0)  # let the server tear ffprobe's media down
    server.stdin.write("Second line.\n")
    server.stdin.flush()
    expect_line("queued (no client yet): Second line.")
    out = os.path.join(tmp, "ffmpeg.raw")
    r = run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "2.5",
             "-f", "s16le", "-ac", "1", "-y", out], timeout=40)
    check(r.returncode == 0, "ffmpeg failed: " + r.stderr)
    expect_line("speaking: Second line.")
    check_speech(out, 2 * CHUNKS * CHUNK_S, "ffmpeg")

    # 3. GStreamer's rtspsrc: a live stream never ends, so stop gst-launch with SIGINT (-e: EOS first).
    out = os.path.join(tmp, "rtspsrc.raw")
    cmd = ["timeout", "-s", "INT", "-k", "5", "4", "gst-launch-1.0", "-e", "-q",
           "rtspsrc", "location=" + url, "protocols=tcp", "latency=200", "!", "rtpL16depay", "!",
           "audioconvert", "!", "audio/x-raw,format=S16LE,channels=1,rate=%d" % RATE, "!",
           "filesink", "location=" + out]
    r = run(cmd, timeout=30)
    check(os.path.exists(out), "rtspsrc wrote nothing: " + r.stdout + r.stderr)
    check_speech(out, CHUNKS * CHUNK_S, "rtspsrc")
finally:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
check(server.returncode == 0, "server exit status %s after SIGTERM" % server.returncode)
print("ok")
