#!/usr/bin/env python3
"""WebRTC with VoxCPM: a webrtcbin sender speaking through voxcpmsrc (Opus) and a webrtcbin receiver
in the same process, connected over loopback; the offer/answer and ICE candidates are handed over
directly (a real application sends them through its signalling server instead).

    voxcpm-webrtc-loopback.py --model DIR [--text T] [--seconds 5] [--output received.wav] [-P NAME=VALUE ...]

The receiver decodes what arrives and reports the duration of the audio and of the speech in it.
Needs gstreamer1.0-plugins-bad (webrtcbin), gstreamer1.0-nice (ICE), python3-gi.
"""
import argparse
import array
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402,F401


def quote(v):
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Loopback:
    def __init__(self, args):
        self.args = args
        self.pipe = Gst.parse_launch(
            "voxcpmsrc name=tts is-live=true model-path=%s text=%s %s ! audioconvert ! audioresample ! "
            "opusenc ! rtpopuspay pt=96 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=96 ! "
            "webrtcbin name=send bundle-policy=max-bundle   webrtcbin name=recv bundle-policy=max-bundle"
            % (quote(args.model), quote(args.text), " ".join(args.property)))
        self.send = self.pipe.get_by_name("send")
        self.recv = self.pipe.get_by_name("recv")
        self.loop = GLib.MainLoop()
        self.samples = 0
        self.speech = [None, None]   # first and last non-zero sample index
        self.rate = 48000
        self.status = 1
        self.send.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.send.connect("on-ice-candidate", lambda _, m, c: self.recv.emit("add-ice-candidate", m, c))
        self.recv.connect("on-ice-candidate", lambda _, m, c: self.send.emit("add-ice-candidate", m, c))
        self.recv.connect("pad-added", self.on_recv_pad)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)

    # --- signalling: offer from the sender, answer from the receiver ---------------------------
    def on_negotiation_needed(self, element):
        promise = Gst.Promise.new_with_change_func(self.on_offer)
        self.send.emit("create-offer", None, promise)

    def on_offer(self, promise, *_):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply and reply.has_field("offer") else None
        if offer is None:
            print("error: the sender made no offer: %s" % (reply.to_string() if reply else None), file=sys.stderr)
            GLib.idle_add(self.loop.quit)
            return
        self.send.emit("set-local-description", offer, Gst.Promise.new())
        self.recv.emit("set-remote-description", offer, Gst.Promise.new())
        self.recv.emit("create-answer", None, Gst.Promise.new_with_change_func(self.on_answer))

    def on_answer(self, promise, *_):
        reply = promise.get_reply()
        answer = reply.get_value("answer") if reply and reply.has_field("answer") else None
        if answer is None:
            print("error: the receiver made no answer: %s" % (reply.to_string() if reply else None), file=sys.stderr)
            GLib.idle_add(self.loop.quit)
            return
        self.recv.emit("set-local-description", answer, Gst.Promise.new())
        self.send.emit("set-remote-description", answer, Gst.Promise.new())

    # --- receiver: decode and measure ------------------------------------------------------------
    def on_recv_pad(self, element, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        sink = "audioconvert ! audio/x-raw,format=S16LE,channels=1 ! "
        sink += ("tee name=t ! queue ! wavenc ! filesink location=%s t. ! queue ! " % quote(self.args.output)
                 if self.args.output else "")
        sink += "appsink name=out emit-signals=true sync=false"
        dec = Gst.ElementFactory.make("decodebin")
        tail = Gst.parse_bin_from_description(sink, True)
        self.pipe.add(dec)
        self.pipe.add(tail)
        # decodebin's source pad appears once it knows the stream: link it to the tail then.
        dec.connect("pad-added", lambda _, p: p.link(tail.get_static_pad("sink")))
        tail.get_by_name("out").connect("new-sample", self.on_sample)
        dec.sync_state_with_parent()
        tail.sync_state_with_parent()
        pad.link(dec.get_static_pad("sink"))

    def on_sample(self, appsink):
        sample = appsink.emit("pull-sample")
        s = sample.get_caps().get_structure(0)
        self.rate = s.get_int("rate")[1]
        buf = sample.get_buffer()
        data = buf.extract_dup(0, buf.get_size())
        a = array.array("h")
        a.frombytes(data)
        for i, x in enumerate(a):
            if abs(x) > 100:
                if self.speech[0] is None:
                    self.speech[0] = self.samples + i
                self.speech[1] = self.samples + i
        self.samples += len(a)
        return Gst.FlowReturn.OK

    def on_message(self, bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print("error: %s\n  %s" % (err.message, dbg), file=sys.stderr, flush=True)
            self.loop.quit()
        elif msg.type == Gst.MessageType.ELEMENT and msg.get_structure().has_name("voxcpm/synthesized-audio"):
            s = msg.get_structure()
            print("sent: \"%s\" %.2f s of speech" % (s.get_string("text"), s.get_uint64("audio-duration")[1] / 1e9),
                  flush=True)

    def stop(self):
        self.status = 0
        self.loop.quit()
        return False

    def run(self):
        if self.pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            print("error: the pipeline could not start", file=sys.stderr)
            return 1
        GLib.timeout_add(int(self.args.seconds * 1000), self.stop)
        self.loop.run()
        # EOS first so that wavenc finishes its header.
        if self.args.output:
            self.pipe.send_event(Gst.Event.new_eos())
            self.pipe.get_bus().timed_pop_filtered(2 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
        self.pipe.set_state(Gst.State.NULL)
        first, last = self.speech
        print("received: %.2f s of audio at %d Hz, speech %s" % (
            self.samples / self.rate, self.rate,
            "none" if first is None else "%.2f s (%.2f..%.2f s)" % ((last - first + 1) / self.rate, first / self.rate,
                                                                   (last + 1) / self.rate)), flush=True)
        return self.status if self.samples else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", default="Hello over WebRTC.")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to run")
    ap.add_argument("--output", help="also write what the receiver decodes to this WAV")
    ap.add_argument("--property", "-P", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    Gst.init(None)
    sys.exit(Loopback(args).run())


if __name__ == "__main__":
    main()
