"""examples/gst-launch: run every file-producing pipeline of voxcpm-pipelines.sh on the tiny model and
check the files with gst-discoverer-1.0 and ffprobe/ffmpeg (codecs, rates, durations, cue timing)."""
import array
import json
import os
import sys
import tempfile

from example_support import check, run, tiny_model

script = sys.argv[1]
out = tempfile.mkdtemp(prefix="voxcpm-launch-")
env = dict(os.environ, VOXCPM_PROPS="seed=7 min-len=4 max-len=4 n-threads=1")
r = run(["bash", script, tiny_model("v1.5"), out], timeout=100, env=env)
print(r.stdout, r.stderr)
check(r.returncode == 0, "voxcpm-pipelines.sh exit %d" % r.returncode)
SPEECH = 0.64  # 4 chunks of 0.16 s


def probe(name):
    r = run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,sample_rate:format=duration",
             "-of", "json", os.path.join(out, name)], timeout=30)
    check(r.returncode == 0, "ffprobe %s: %s" % (name, r.stderr))
    return json.loads(r.stdout)


def audio(name):
    path = os.path.join(out, name)
    raw = path + ".raw"
    r = run(["ffmpeg", "-v", "error", "-i", path, "-vn", "-f", "s16le", "-ac", "1", "-ar", "44100", "-y", raw], timeout=30)
    check(r.returncode == 0, "ffmpeg %s: %s" % (name, r.stderr))
    a = array.array("h")
    with open(raw, "rb") as f:
        a.frombytes(f.read())
    return a


def loud(a, t0, t1):
    seg = a[int(t0 * 44100):int(t1 * 44100)]
    return max((abs(x) for x in seg), default=0)


for name, codec in (("hello.wav", "pcm_f32le"), ("hello.ogg", "vorbis"), ("hello.mp3", "mp3"),
                    ("cloned.wav", "pcm_f32le"), ("mixed.wav", "pcm_f32le")):
    p = probe(name)
    s = p["streams"][0]
    check(s["codec_name"] == codec and s["sample_rate"] == "44100", "%s: %s" % (name, s))
    d = float(p["format"]["duration"])
    # Lossy encoders pad a little (MP3: one frame); the speech itself is exactly SPEECH long.
    check(SPEECH - 0.001 <= d < SPEECH + 0.06, "%s: duration %.3f, expected %.2f" % (name, d, SPEECH))
    check(loud(audio(name), 0, SPEECH) > 1000, name + ": silent")

# Subtitled videos: 4 s of video, speech at each cue (0.5 s and 2.0 s), silence in between.
for name, codecs in (("subtitled.mp4", {"aac", "h264"}), ("subtitled.mkv", {"opus", "vp8"})):
    p = probe(name)
    check({s["codec_name"] for s in p["streams"]} == codecs, "%s: streams %s" % (name, p["streams"]))
    check(abs(float(p["format"]["duration"]) - 4.0) < 0.1, "%s: duration %s" % (name, p["format"]["duration"]))
    a = audio(name)
    print("%s: peak 0-0.4 s %d, 0.6-1.1 s %d, 1.4-1.9 s %d, 2.1-2.6 s %d" % (
        name, loud(a, 0, 0.4), loud(a, 0.6, 1.1), loud(a, 1.4, 1.9), loud(a, 2.1, 2.6)))
    check(loud(a, 0, 0.4) < 2000 and loud(a, 1.4, 1.9) < 2000, name + ": speech outside the cues")
    check(loud(a, 0.6, 1.1) > 5000 and loud(a, 2.1, 2.6) > 5000, name + ": cue not spoken at its time")
    r = run(["gst-discoverer-1.0", os.path.join(out, name)], timeout=30)
    check(r.returncode == 0 and "Duration: 0:00:04" in r.stdout, name + ": gst-discoverer-1.0 says " + r.stdout)
print("ok")
