package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// encodedByEncodingJSON is what encoding/json writes for r's body, without HTML escaping:
// the reference appendBody must match byte for byte.
func encodedByEncodingJSON(t *testing.T, r *Record) []byte {
	t.Helper()
	req, err := Redact(r.Request)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Redact(r.Result)
	if err != nil {
		t.Fatal(err)
	}
	// Record itself, with the fields Append sets zero: a field added to Record and
	// forgotten by appendBody shows here
	ref := *r
	ref.V, ref.Time, ref.Seq, ref.Prev = 0, time.Time{}, 0, ""
	ref.Reason, ref.Error, ref.Request, ref.Result = redactPEM(r.Reason), redactPEM(r.Error), req, res
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&ref); err != nil {
		t.Fatal(err)
	}
	const header = `{"v":0,"time":"0001-01-01T00:00:00Z","seq":0,"prev":"",`
	out, ok := bytes.CutPrefix(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), []byte(header))
	if !ok {
		t.Fatalf("Record no longer starts with the fields Append sets: %s", buf.Bytes())
	}
	return append([]byte{'{'}, out...)
}

func checkEncodesAsEncodingJSON(t *testing.T, r Record) {
	t.Helper()
	got, err := encodeBody(&r)
	if err != nil {
		t.Fatalf("encoding %+v: %v", r, err)
	}
	if want := encodedByEncodingJSON(t, &r); !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeBodyWritesWhatEncodingJSONWrites(t *testing.T) {
	tests := []struct {
		name string
		r    Record
	}{
		{"a bare decision", Record{Decision: DecisionReceived}},
		{"every string field", Record{RunID: "r1", Policy: "p", Step: "s", Action: "tls.probe", Mode: "live",
			Decision: DecisionExecuted, Reason: "why", Error: "how", DurationMS: 12.5}},
		{"an alert with and without an instance",
			Record{Decision: DecisionSkipped, Alert: &Alert{Fingerprint: "f", Alertname: "A", Status: "firing"}}},
		{"an alert's instance",
			Record{Decision: DecisionSkipped, Alert: &Alert{Fingerprint: "f", Alertname: "A", Instance: "h:443"}}},
		{"strings that need escapes", Record{Decision: DecisionFailed,
			Error: "a\"b\\c\n\r\t\b\f\x00\x1f\x7f <&> \u2028\u2029 \xff\xfe é ✓ 😀"}},
		{"nested generic values", Record{Decision: DecisionExecuted,
			Request: map[string]any{"z": 1, "a": []any{"x", 2.5, true, nil, map[string]any{}},
				"m": map[string]any{"k": []any{}}, "n": json.Number("-1.5e+10"), "i64": int64(-7),
				"u64": uint64(math.MaxUint64), "b": false},
			Result: map[string]string{"b": "2", "a": "1"}}},
		{"floats in both notations", Record{Decision: DecisionExecuted, DurationMS: 1e-7,
			Result: []any{0.0, math.Copysign(0, -1), 1e-6, 1e-7, 123456789.125, 1e20, 1e21, 1.5e300, -2e-9}}},
		{"an empty list and a nil one", Record{Decision: DecisionExecuted,
			Result: map[string]any{"empty": []any{}, "nil": []any(nil)}}},
		{"a struct, through Redact", Record{Decision: DecisionExecuted,
			Result: struct {
				Name  string `json:"name"`
				Count int    `json:"count"`
			}{"x<y", 3}}},
		{"a nil pointer, left out as Redact leaves it", Record{Decision: DecisionExecuted,
			Result: (*Alert)(nil)}},
		{"a struct inside a map", Record{Decision: DecisionExecuted,
			Result: map[string]any{"alert": &Alert{Fingerprint: "f", Instance: "-----BEGIN X"}, "none": (*Alert)(nil)}}},
		{"lists of strings", Record{Decision: DecisionReceived, Request: []string{"a", "-----BEGIN X"},
			Result: map[string]any{"firing": []string{"f1", "f2"}, "none": []string(nil), "empty": []string{}}}},
		{"a nil list of strings, left out", Record{Decision: DecisionReceived, Result: []string(nil)}},
		{"redacted secrets", Record{Decision: DecisionExecuted,
			Request: map[string]any{"token": "t", "nested": map[string]any{"Password": "p"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkEncodesAsEncodingJSON(t, tt.r)
		})
	}
}

func TestEncodeBodyRefusesWhatJSONCannotHold(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), json.Number("1 "), json.Number("01"), json.Number("x")} {
		if _, err := encodeBody(&Record{Decision: DecisionExecuted, Result: []any{v}}); err == nil {
			t.Errorf("encoded %#v, want an error", v)
		}
	}
}

// FuzzEncodeBodyMatchesEncodingJSON encodes any JSON value, and any text as a reason,
// both ways.
func FuzzEncodeBodyMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,2.5,"x\u2028",null,true,{"token":"t"}],"b":-1e-9}`), "reason\x00\xff")
	f.Add([]byte(`"-----BEGIN CERTIFICATE-----"`), "")
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return
		}
		checkEncodesAsEncodingJSON(t, Record{Decision: DecisionExecuted, Reason: text, Error: text,
			Request: v, Result: []any{v, text}})
	})
}
