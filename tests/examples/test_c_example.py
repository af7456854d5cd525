"""examples/c: voxcpm-chunks prints every chunk as it arrives; PTS must be contiguous."""
import re
import sys

from example_support import check, run, tiny_model

exe = sys.argv[1]
model = tiny_model("v1.5")
chunks = 4
r = run([exe, model, "Hello there.", "seed=7", "min-len=%d" % chunks, "max-len=%d" % chunks, "n-threads=1"])
check(r.returncode == 0, "voxcpm-chunks failed (%d): %s" % (r.returncode, r.stderr))
print(r.stdout)

rows = [tuple(int(v) for v in m.groups())
        for m in re.finditer(r"^chunk (\d+) pts=(\d+) duration=(\d+) samples=(\d+) rate=(\d+)$", r.stdout, re.M)]
check(len(rows) == chunks, "expected %d chunk lines, got %d" % (chunks, len(rows)))
expected_pts = 0
for i, (n, pts, dur, samples, rate) in enumerate(rows):
    check(n == i, "chunk numbering")
    check(rate == 44100, "rate %d" % rate)
    check(pts == expected_pts, "chunk %d: pts %d, expected %d (not contiguous)" % (i, pts, expected_pts))
    check(samples == 7056, "chunk %d: %d samples, VoxCPM1.5 chunks hold 7056" % (i, samples))
    check(abs(dur - samples * 10**9 // rate) <= 1, "chunk %d: duration %d for %d samples" % (i, dur, samples))
    expected_pts = pts + dur
m = re.search(r'^utterance text="Hello there\." audio-duration=(\d+) first-chunk-latency=(\d+) rtf=([\d.]+)$',
              r.stdout, re.M)
check(m is not None, "no utterance message line")
check(int(m.group(1)) == expected_pts, "message audio-duration %s != %d" % (m.group(1), expected_pts))
check(int(m.group(2)) > 0, "first-chunk-latency must be positive")
check(re.search(r"^eos chunks=%d total-duration=%d$" % (chunks, expected_pts), r.stdout, re.M), "eos line")

# A model directory that does not exist: an error message and exit status 1, no hang.
bad = run([exe, model + "-missing", "Hello."])
check(bad.returncode == 1, "missing model: exit %d" % bad.returncode)
check("error:" in bad.stderr and "-missing" in bad.stderr, "missing model message: " + bad.stderr)
print("ok")
