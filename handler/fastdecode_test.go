package handler

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fixtureBodies returns the webhook bodies of testdata, which real Alertmanagers sent.
func fixtureBodies(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "notifications", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("finding the notification fixtures: %v (%d found)", err, len(files))
	}
	out := map[string][]byte{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(file)] = b
	}
	return out
}

// checkSameAsEncodingJSON fails when decodeFast accepted body but encoding/json rejects
// it or decodes something else, and reports whether decodeFast accepted it.
func checkSameAsEncodingJSON(t *testing.T, body []byte) bool {
	t.Helper()
	var got Notification
	if !decodeFast(body, &got) {
		return false
	}
	var want Notification
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("the fast path accepted a body encoding/json rejects (%v): %q", err, body)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the fast path decoded %q\nas   %#v\nnot  %#v", body, got, want)
	}
	return true
}

func TestDecodeFastTakesEveryFixture(t *testing.T) {
	for name, body := range fixtureBodies(t) {
		t.Run(name, func(t *testing.T) {
			if !checkSameAsEncodingJSON(t, body) {
				t.Fatal("a body a real Alertmanager sent fell back to encoding/json")
			}
		})
	}
}

func TestDecodeFast(t *testing.T) {
	const alert = `{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z"}`
	wrap := func(fields string) []byte {
		return []byte(`{"version":"4","status":"firing",` + fields + `}`)
	}
	tests := []struct {
		name string
		body []byte
		fast bool // whether the fast path decodes it rather than handing it over
	}{
		{"decodes a minimal notification", wrap(`"alerts":[` + alert + `]`), true},
		{"decodes escapes as encoding/json does",
			wrap(`"receiver":"a\"b\\c\/d\b\f\n\r\t\u0026\u00e9\ud83d\ude00","alerts":[]`), true},
		{"turns a lone surrogate into U+FFFD", wrap(`"receiver":"\ud83d\u0041x\udc00","alerts":[]`), true},
		{"turns invalid UTF-8 into U+FFFD", wrap("\"receiver\":\"a\xff\xfeb\xed\xa0\x80\",\"alerts\":[]"), true},
		{"keeps valid UTF-8", wrap(`"receiver":"héllo — ✓","alerts":[]`), true},
		{"matches an escaped field name", wrap(`"rec\u0065iver":"x","alerts":[]`), true},
		{"skips unknown fields of every type",
			wrap(`"extra":{"a":[1,-2.5e+3,true,false,"s",{}],"b":[]},"alerts":[{"x":0,"labels":{"a":"b"}}]`), true},
		{"keeps the last of repeated labels", wrap(`"alerts":[{"labels":{"a":"1","a":"2"}}]`), true},
		{"decodes an empty list and empty maps", wrap(`"alerts":[],"groupLabels":{},"commonLabels":{}`), true},
		{"decodes a count", wrap(`"truncatedAlerts":12,"alerts":[]`), true},
		{"accepts white space everywhere", []byte(" \t\r\n{ \"version\" : \"4\" , \"alerts\" : [ ] } \n"), true},
		{"decodes times with offsets and fractions",
			wrap(`"alerts":[{"startsAt":"2026-01-01T10:00:00.123456789+02:00","endsAt":"0001-01-01T00:00:00Z"}]`), true},
		{"hands over a repeated field", wrap(`"receiver":"a","receiver":"b","alerts":[]`), false},
		{"hands over a field named in another case", wrap(`"Receiver":"a","alerts":[]`), false},
		{"hands over a non-ASCII field name", wrap(`"ſtatus":"a","alerts":[]`), false},
		{"hands over a null", wrap(`"receiver":null,"alerts":[]`), false},
		{"hands over a null in an unknown field", wrap(`"extra":null,"alerts":[]`), false},
		{"hands over a number where a string belongs", wrap(`"receiver":1,"alerts":[]`), false},
		{"hands over a negative count", wrap(`"truncatedAlerts":-1,"alerts":[]`), false},
		{"hands over a fractional count", wrap(`"truncatedAlerts":1.5,"alerts":[]`), false},
		{"hands over a count too large", wrap(`"truncatedAlerts":18446744073709551616,"alerts":[]`), false},
		{"hands over a time it cannot parse", wrap(`"alerts":[{"startsAt":"yesterday"}]`), false},
		{"hands over a time with escapes", wrap(`"alerts":[{"startsAt":"2026-01-01T00:00:00\u005a"}]`), false},
		{"hands over trailing data", []byte(`{"version":"4"} x`), false},
		{"hands over a trailing comma", []byte(`{"version":"4",}`), false},
		{"hands over an unterminated string", []byte(`{"version":"4`), false},
		{"hands over a control character in a string", []byte("{\"version\":\"4\n\"}"), false},
		{"hands over a bad escape", []byte(`{"version":"\x"}`), false},
		{"hands over a short unicode escape", []byte(`{"version":"\u12"}`), false},
		{"hands over a number with a leading zero", wrap(`"extra":01,"alerts":[]`), false},
		{"hands over a top level that is not an object", []byte(`[]`), false},
		{"hands over deep nesting", wrap(`"extra":` + deep(100) + `,"alerts":[]`), false},
		{"hands over an empty body", []byte(``), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkSameAsEncodingJSON(t, tt.body); got != tt.fast {
				t.Fatalf("fast path took it: %v, want %v", got, tt.fast)
			}
		})
	}
}

func TestPlainASCIIFindsEveryByteThatNeedsDecoding(t *testing.T) {
	for n := 1; n <= 24; n++ {
		for at := range n {
			for _, c := range []byte{0x00, 0x1f, '\\', 0x80, 0xff} {
				s := make([]byte, n)
				for i := range s {
					s[i] = "az~ !#[]"[i%8]
				}
				s[at] = c
				if plainASCII(s) {
					t.Fatalf("%q at %d of %d bytes went unnoticed", c, at, n)
				}
				s[at] = '~'
				if !plainASCII(s) {
					t.Fatalf("%q is printable ASCII", s)
				}
			}
		}
	}
}

func deep(n int) string {
	out := ""
	for range n {
		out += "["
	}
	for range n {
		out += "]"
	}
	return out
}

// FuzzDecodeFastMatchesEncodingJSON holds the fast path to encoding/json: whatever it
// decodes, encoding/json must decode to the same value.
func FuzzDecodeFastMatchesEncodingJSON(f *testing.F) {
	for _, body := range fixtureBodies(f) {
		f.Add(body)
	}
	f.Add([]byte(`{"version":"4","receiver":"\ud83d\ude00\ud800\u00e9","alerts":[{"labels":{"a":"b","a":"c"}}]}`))
	f.Add([]byte("{\"extra\":[1,2.5e-3,true,false,{\"k\":\"v\"}],\"truncatedAlerts\":3,\"x\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSameAsEncodingJSON(t, body)
	})
}

// BenchmarkDecodeEncodingJSON decodes the load body the way the fallback does, for
// comparison with BenchmarkDecodeNotification.
func BenchmarkDecodeEncodingJSON(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("..", "testdata", "notifications", "load-10-alerts.json"))
	if err != nil {
		b.Fatal(err)
	}

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var n Notification
		if err := json.Unmarshal(body, &n); err != nil {
			b.Fatal(err)
		}
	}
}
