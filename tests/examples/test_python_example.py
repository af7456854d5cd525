"""examples/python: voxcpm-speak.py fed with lines on stdin (non-interactive), writing a WAV."""
import os
import re
import sys
import tempfile

from example_support import check, python_with_gi, run, speech_span, tiny_model, to_s16

script = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="voxcpm-py-")
wav = os.path.join(tmp, "speech.wav")
with open(os.path.join(tmp, "in.txt"), "w") as f:
    f.write("Hello there.\n\n  Second line.\n")
with open(os.path.join(tmp, "in.txt")) as stdin:
    r = run([python_with_gi(), script, "--model", tiny_model("v1.5"), "--output", wav,
             "-P", "seed=7", "-P", "min-len=4", "-P", "max-len=4", "-P", "n-threads=1"], timeout=60, stdin=stdin)
print(r.stdout, r.stderr)
check(r.returncode == 0, "voxcpm-speak.py exit %d" % r.returncode)
check("queued 1: Hello there." in r.stdout and "queued 2: Second line." in r.stdout, "queued lines")
check("queued 3" not in r.stdout, "the empty line must not be spoken")
for n, text in ((1, "Hello there."), (2, "Second line.")):
    m = re.search(r'^spoken %d/2: "%s" ([\d.]+) s audio, first chunk after (\d+) ms, RTF ([\d.]+)$'
                  % (n, re.escape(text)), r.stdout, re.M)
    check(m is not None, "no report for utterance %d" % n)
    check(m.group(1) == "0.64", "utterance %d: %s s, 4 chunks of 0.16 s expected" % (n, m.group(1)))
    check(float(m.group(3)) > 0, "RTF must be positive")
total, first, last = speech_span(to_s16(wav, os.path.join(tmp, "speech.raw")), 44100)
print("wav: %.3f s, speech %s..%s" % (total, first, last))
check(first is not None and abs((last - first) - 1.28) < 0.02, "two utterances back to back: 1.28 s of speech")

bad = run([python_with_gi(), script, "--model", "/nonexistent-voxcpm-model"], timeout=30, stdin=open(os.devnull))
check(bad.returncode == 1 and "error:" in bad.stderr, "missing model: exit %d, %s" % (bad.returncode, bad.stderr))
print("ok")
