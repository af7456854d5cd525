#!/usr/bin/env python3
"""Speak lines as they are typed, with VoxCPM in GStreamer (PyGObject).

    voxcpm-speak.py --model DIR [--output speech.wav] [--property seed=7 ...]

Each line read from stdin is queued on a live `voxcpmsrc` with its `speak` action signal. While it
speaks, a progress line shows the audio produced so far; when an utterance is done, the element's
`voxcpm/synthesized-audio` message gives its duration, first-chunk latency and real-time factor.
Without --output the speech goes to the sound card. At the end of input (Ctrl-D, or the end of a
piped file) the program waits for everything queued to be spoken, then stops.
To use a build tree without installing: GST_PLUGIN_PATH=<build>/gst.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Speaker:
    def __init__(self, args):
        sink = ("audioconvert ! wavenc ! filesink location=" + quote(args.output)) if args.output else \
            "audioconvert ! audioresample ! autoaudiosink"
        props = " ".join(args.property)
        self.pipeline = Gst.parse_launch(
            "voxcpmsrc name=tts is-live=true model-path=%s %s ! %s" % (quote(args.model), props, sink))
        self.tts = self.pipeline.get_by_name("tts")
        self.loop = GLib.MainLoop()
        self.queued = 0       # lines handed to `speak`
        self.spoken = 0       # utterance messages received
        self.input_done = False
        self.status = 0
        self.tty = sys.stdout.isatty()
        self.produced = 0     # ns of speech pushed in the current utterance
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        # Progress: count the non-silent chunks leaving the source (silence between utterances is flagged GAP).
        self.tts.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.on_buffer)

    def on_buffer(self, pad, info):
        buf = info.get_buffer()
        if not buf.has_flags(Gst.BufferFlags.GAP):
            self.produced += buf.duration
            if self.tty:
                sys.stdout.write("\r  speaking... %.2f s " % (self.produced / Gst.SECOND))
                sys.stdout.flush()
        return Gst.PadProbeReturn.OK

    def on_stdin(self, source, condition):
        line = sys.stdin.readline()
        if not line:  # end of input
            self.input_done = True
            self.maybe_finish()
            return False
        line = line.strip()
        if line:
            self.queued += 1
            print("queued %d: %s" % (self.queued, line), flush=True)
            self.tts.emit("speak", line)
        return True

    def maybe_finish(self):
        if self.input_done and self.spoken >= self.queued:
            # A live source never ends by itself: EOS finishes the file (wavenc writes its header).
            self.pipeline.send_event(Gst.Event.new_eos())

    def on_message(self, bus, msg):
        if msg.type == Gst.MessageType.ELEMENT and msg.get_structure().has_name("voxcpm/synthesized-audio"):
            s = msg.get_structure()
            self.spoken += 1
            self.produced = 0
            if self.tty:
                sys.stdout.write("\r")
            print("spoken %d/%d: \"%s\" %.2f s audio, first chunk after %.0f ms, RTF %.2f"
                  % (self.spoken, self.queued, s.get_string("text"), s.get_uint64("audio-duration")[1] / Gst.SECOND,
                     s.get_uint64("first-chunk-latency")[1] / Gst.MSECOND, s.get_double("rtf")[1]), flush=True)
            self.maybe_finish()
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print("error: %s\n  %s" % (err.message, dbg), file=sys.stderr, flush=True)
            self.status = 1
            self.loop.quit()
        elif msg.type == Gst.MessageType.WARNING:
            err, dbg = msg.parse_warning()
            print("warning: %s" % err.message, file=sys.stderr, flush=True)
        elif msg.type == Gst.MessageType.EOS:
            self.loop.quit()

    def run(self):
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            msg = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            print("error: %s" % (msg.parse_error()[0].message if msg else "cannot start"), file=sys.stderr)
            return 1
        GLib.io_add_watch(sys.stdin, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, self.on_stdin)
        print("ready: type a line and press Enter (Ctrl-D ends)", flush=True)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        return self.status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="VoxCPM model directory")
    ap.add_argument("--output", help="write a WAV file instead of playing")
    ap.add_argument("--property", "-P", action="append", default=[], metavar="NAME=VALUE",
                    help="any voxcpmsrc property (seed=7, device=cuda, ...); repeatable")
    args = ap.parse_args()
    Gst.init(None)
    sys.exit(Speaker(args).run())


if __name__ == "__main__":
    main()
