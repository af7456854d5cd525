"""examples/webrtc: a webrtcbin sender with voxcpmsrc and a webrtcbin receiver over loopback in one
process; the receiver must decode the spoken utterance (Opus, so the duration is checked loosely)."""
import os
import re
import sys
import tempfile

from example_support import check, python_with_gi, run, speech_span, tiny_model, to_s16

script = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="voxcpm-webrtc-")
wav = os.path.join(tmp, "received.wav")
r = run([python_with_gi(), script, "--model", tiny_model("v1.5"), "--seconds", "3", "--output", wav,
         "-P", "seed=7", "-P", "min-len=5", "-P", "max-len=5", "-P", "n-threads=1"], timeout=60)
print(r.stdout, r.stderr)
check(r.returncode == 0, "voxcpm-webrtc-loopback.py exit %d" % r.returncode)
check("CRITICAL" not in r.stderr, "GLib criticals during negotiation")
check('sent: "Hello over WebRTC." 0.80 s of speech' in r.stdout, "the sender did not speak")
m = re.search(r"^received: ([\d.]+) s of audio at 48000 Hz, speech ([\d.]+) s", r.stdout, re.M)
check(m is not None, "the receiver decoded no speech")
# 5 chunks of 0.16 s; Opus adds a short decay after the end of the noise-like tiny-model speech.
check(0.75 <= float(m.group(2)) <= 1.3, "received %s s of speech, sent 0.80" % m.group(2))
total, first, last = speech_span(to_s16(wav, os.path.join(tmp, "received.raw")), 48000)
check(first is not None and total >= 0.9, "received.wav: %.2f s, speech %s..%s" % (total, first, last))
print("ok")
