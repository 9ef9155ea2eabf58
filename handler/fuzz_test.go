package handler

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeNotification feeds arbitrary bodies to the decoder: it must never panic, and
// whatever it accepts must be a valid notification.
func FuzzDecodeNotification(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "notifications", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},` +
		`"startsAt":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := DecodeNotification(body)
		if err != nil {
			return
		}
		if n.Version != SupportedVersion || len(n.Data.Alerts) == 0 {
			t.Fatalf("accepted an invalid notification: %+v", n)
		}
		for _, a := range n.Split(n.Data.Alerts[0].StartsAt) {
			if a.Fingerprint == "" || len(a.Labels) == 0 || a.StartsAt.IsZero() {
				t.Fatalf("accepted an alert without its identity: %+v", a)
			}
		}
	})
}
