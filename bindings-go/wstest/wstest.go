// Package wstest checks twiliosig.Middleware in front of WebSocket handshakes (Media Streams,
// ConversationRelay) with real WebSocket libraries, github.com/coder/websocket and
// github.com/gorilla/websocket, as servers and clients over loopback. It is a module of its own so
// that twiliosig itself needs neither library; it holds test helpers and tests only.
//
// Twilio signs a stream's handshake (a GET carrying X-Twilio-Signature) over the wss:// URL of the
// <Stream url="...">; the middleware verifies it against that URL (ws:// on plain http) and leaves
// the connection hijackable, so the library can answer 101.
package wstest

import (
	"encoding/json"
	"fmt"
)

// Event is a Media Streams message: what Twilio sends (connected, start, media, stop) and what the
// app sends back (media, mark, clear).
type Event struct {
	Event          string `json:"event"`
	SequenceNumber string `json:"sequenceNumber,omitempty"`
	StreamSid      string `json:"streamSid,omitempty"`
	Protocol       string `json:"protocol,omitempty"`
	Version        string `json:"version,omitempty"`
	Start          *Start `json:"start,omitempty"`
	Mark           *Mark  `json:"mark,omitempty"`
}

// Start is the start event's payload.
type Start struct {
	AccountSid  string      `json:"accountSid"`
	CallSid     string      `json:"callSid"`
	StreamSid   string      `json:"streamSid"`
	Tracks      []string    `json:"tracks"`
	MediaFormat MediaFormat `json:"mediaFormat"`
}

// MediaFormat is the audio a stream carries.
type MediaFormat struct {
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sampleRate"`
	Channels   int    `json:"channels"`
}

// Mark names a point in the audio the app sent.
type Mark struct {
	Name string `json:"name"`
}

// StreamSid is the stream the test's "Twilio" opens.
const StreamSid = "MZ00000000000000000000000000000001"

// TwilioOpening is what Twilio sends first on a new stream: connected, then start.
func TwilioOpening() []Event {
	return []Event{
		{Event: "connected", Protocol: "Call", Version: "1.0.0"},
		{Event: "start", SequenceNumber: "1", StreamSid: StreamSid, Start: &Start{
			AccountSid: "AC00000000000000000000000000000000", CallSid: "CA00000000000000000000000000000000",
			StreamSid: StreamSid, Tracks: []string{"inbound"},
			MediaFormat: MediaFormat{Encoding: "audio/x-mulaw", SampleRate: 8000, Channels: 1},
		}},
	}
}

// MarkFor is the app's answer once the stream has started: a mark on that stream.
func MarkFor(start Event) (Event, error) {
	if start.Event != "start" || start.Start == nil || start.StreamSid == "" {
		return Event{}, fmt.Errorf("not a start event: %+v", start)
	}
	return Event{Event: "mark", StreamSid: start.StreamSid, Mark: &Mark{Name: "greeting-done"}}, nil
}

// String is the event as JSON (for messages and test output).
func (e Event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}
