#!/usr/bin/env python3
"""Publishes a test pattern and a tone to a WHIP endpoint (RFC 9725) with GStreamer's webrtcbin.

    python3 scripts/whip-publish.py --url http://localhost:8080/v1/whip/demo --token "$TOKEN"

Debian packages: python3-gi gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice (Debian 12's GStreamer
has no whipsink, so this script does the HTTP exchange itself). It offers VP8 and Opus,
sendonly, with all ICE candidates in the offer (no trickle), follows a 307 redirect to the node
the endpoint routes it to (sending the token again: it is the same cluster), and sends DELETE
on SIGINT or SIGTERM. It prints one JSON object per line on stdout: {"event": "created",
"location": ...}, {"event": "connection", "state": ...}, {"event": "deleted", "status": ...},
or {"event": "error", ...} (exit status 1). The "created" event has the ICE servers the node
offered (its Link headers), which this script does not use.
"""

import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = """
webrtcbin name=wb bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=15/1
  ! videoconvert ! queue ! vp8enc deadline=1 target-bitrate={bitrate} keyframe-max-dist=30
  ! rtpvp8pay pt=96 mtu=1200 ! application/x-rtp,media=video,encoding-name=VP8,payload=96 ! wb.
audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample
  ! queue ! opusenc ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! wb.
"""


def emit(**fields):
    print(json.dumps(fields), flush=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand: urllib would turn the 307 POST into a GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(request, timeout=15) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


class Publisher:
    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.location = None
        self.exit_code = 0
        self.pipeline = Gst.parse_launch(
            PIPELINE.format(width=args.width, height=args.height, bitrate=args.bitrate)
        )
        self.webrtc = self.pipeline.get_by_name("wb")
        # Held for the life of the process: PyGObject drops a reference of webrtcbin's own
        # agent when its wrapper dies (GStreamer 1.22), and webrtcbin then crashes.
        self.ice = ice = self.webrtc.get_property("ice-agent")
        ice.set_property("ice-tcp", False)  # the node takes UDP only
        for address in args.local_address:
            # libnice then gathers on these addresses only (it otherwise pins each socket to
            # its interface, so it cannot reach a node on 127.0.0.1 from eth0's address).
            ice.emit("add-local-ip-address", address)
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::connection-state", self.on_connection)
        self.offered = False
        self.negotiating = False
        self.attempt = 0

    def start(self):
        self.pipeline.set_state(Gst.State.PLAYING)
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.stop)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        return self.exit_code

    def on_negotiation_needed(self, webrtc):
        if self.negotiating:
            return
        self.negotiating = True
        self.create_offer()

    def create_offer(self, attempt=0):
        webrtc = self.webrtc
        self.attempt = attempt
        # WHIP publishes: every m-line is sendonly.
        for index in range(16):
            transceiver = webrtc.emit("get-transceiver", index)
            if transceiver is None:
                break
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        promise = Gst.Promise.new_with_change_func(self.on_offer, webrtc, None)
        webrtc.emit("create-offer", None, promise)
        return False

    def on_offer(self, promise, webrtc, _):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            # Early on, a pad's caps may not be known yet: try again shortly.
            error = reply.get_value("error") if reply is not None else None
            if self.attempt < 20:
                GLib.timeout_add(100, self.create_offer, self.attempt + 1)
            else:
                GLib.idle_add(self.fail, body=f"create-offer failed: {error}")
            return
        webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, webrtc, _pspec):
        state = webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.offered:
            self.offered = True
            sdp = webrtc.get_property("local-description").sdp.as_text()
            GLib.idle_add(self.post, sdp)

    def post(self, sdp):
        url = self.args.url
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {self.args.token}"}
        for _ in range(3):
            status, response_headers, body = http("POST", url, sdp.encode(), headers)
            if status not in (307, 308):
                break
            url = urllib.parse.urljoin(url, response_headers["Location"])
        if status != 201:
            return self.fail(status=status, body=body)
        self.location = urllib.parse.urljoin(url, response_headers["Location"])
        emit(
            event="created",
            location=self.location,
            etag=response_headers.get("ETag"),
            links=response_headers.get_all("Link") or [],
        )
        ok, message = GstSdp.SDPMessage.new_from_text(body)
        if ok != GstSdp.SDPResult.OK:
            return self.fail(status=status, body="the answer does not parse")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        return False

    def on_connection(self, webrtc, _pspec):
        state = webrtc.get_property("connection-state")
        emit(event="connection", state=state.value_nick)

    def fail(self, **fields):
        emit(event="error", **fields)
        self.exit_code = 1
        self.loop.quit()
        return False

    def stop(self):
        if self.location:
            status, _headers, _body = http("DELETE", self.location)
            emit(event="deleted", status=status)
        self.loop.quit()
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the WHIP endpoint: <node>/v1/whip/<room>")
    parser.add_argument("--token", required=True, help="an access token with publish rights")
    parser.add_argument(
        "--local-address",
        action="append",
        default=[],
        help="gather ICE candidates on this address only (repeatable); 127.0.0.1 for a local node",
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--bitrate", type=int, default=600_000, help="VP8 target, bit/s")
    args = parser.parse_args()
    Gst.init(None)
    code = Publisher(args).start()
    sys.stdout.flush()
    os._exit(code)  # no teardown of the agent's wrapper (see Publisher.__init__)


if __name__ == "__main__":
    main()
