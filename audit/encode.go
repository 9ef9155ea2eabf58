package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Records are encoded by hand, redacting as they go: callers mostly pass generic maps,
// lists and scalars, which need neither reflection nor a redacted copy. Other values go
// through Redact's encoding/json round trip first. The output is what encoding/json
// writes for Redact's result with HTML escaping off, byte for byte; the tests hold the
// two together.

const hexDigits = "0123456789abcdef"

// appendBody appends the JSON object of r's fields but those Append sets, in the order
// of Record's declaration, leaving out the empty ones marked omitempty.
func appendBody(dst []byte, r *Record) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	field := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	str := func(name, v string) {
		if v != "" {
			field(name)
			dst = appendString(dst, v)
		}
	}
	str("run_id", r.RunID)
	str("policy", r.Policy)
	if r.Alert != nil {
		field("alert")
		dst = appendAlert(dst, r.Alert)
	}
	str("step", r.Step)
	str("action", r.Action)
	str("mode", r.Mode)
	field("decision")
	dst = appendString(dst, string(r.Decision))
	str("reason", redactPEM(r.Reason))
	for _, v := range []struct {
		name  string
		value any
	}{{"request", r.Request}, {"result", r.Result}} {
		value, err := generic(v.value)
		if err != nil {
			return nil, fmt.Errorf("redacting %s: %w", v.name, err)
		}
		if value == nil {
			continue // omitempty
		}
		field(v.name)
		if dst, err = appendValue(dst, value); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", v.name, err)
		}
	}
	str("error", redactPEM(r.Error))
	if r.DurationMS != 0 {
		field("duration_ms")
		var err error
		if dst, err = appendFloat(dst, r.DurationMS); err != nil {
			return nil, fmt.Errorf("encoding duration_ms: %w", err)
		}
	}
	return append(dst, '}'), nil
}

// generic returns v when Redact would copy it as it is, and Redact's result otherwise.
func generic(v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, float64, json.Number, int, int64, uint64, string, map[string]any,
		map[string]string, []any:
		return v, nil
	case []string:
		if t == nil {
			return nil, nil // Redact makes nil of it, which omitempty leaves out
		}
		return v, nil
	}
	return redactEncoded(v)
}

func appendAlert(dst []byte, a *Alert) []byte {
	dst = append(dst, `{"fingerprint":`...)
	dst = appendString(dst, a.Fingerprint)
	dst = append(dst, `,"alertname":`...)
	dst = appendString(dst, a.Alertname)
	if a.Instance != "" {
		dst = append(dst, `,"instance":`...)
		dst = appendString(dst, a.Instance)
	}
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, a.Status)
	return append(dst, '}')
}

// appendValue appends v redacted.
func appendValue(dst []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case string:
		return appendString(dst, redactPEM(t)), nil
	case float64:
		return appendFloat(dst, t)
	case int:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(dst, t, 10), nil
	case uint64:
		return strconv.AppendUint(dst, t, 10), nil
	case json.Number:
		return appendNumber(dst, t)
	case map[string]any:
		return appendMap(dst, t)
	case map[string]string:
		return appendMap(dst, t)
	case []any:
		return appendList(dst, t)
	case []string:
		return appendStrings(dst, t), nil
	}
	g, err := redactEncoded(v)
	if err != nil {
		return nil, err
	}
	return appendValue(dst, g)
}

// appendMap writes m with its keys sorted, and the value of each key naming a secret
// replaced.
func appendMap[V any](dst []byte, m map[string]V) ([]byte, error) {
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		if sensitiveKey(k) {
			dst = appendString(dst, redactedValue)
			continue
		}
		var err error
		if dst, err = appendValue(dst, any(m[k])); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// appendList writes l; nil is written as an empty list, as Redact copies it.
func appendList(dst []byte, l []any) ([]byte, error) {
	dst = append(dst, '[')
	for i, x := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendValue(dst, x); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

// appendStrings writes l as Redact copies it: nil as null.
func appendStrings(dst []byte, l []string) []byte {
	if l == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, x := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, redactPEM(x))
	}
	return append(dst, ']')
}

// appendFloat writes f as encoding/json does: plain digits between 1e-6 and 1e21, an
// exponent of at least one digit outside.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("unsupported number %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-07 becomes e-7
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendNumber writes a number kept as text, which must be one.
func appendNumber(dst []byte, n json.Number) ([]byte, error) {
	if n == "" {
		return append(dst, '0'), nil
	}
	if !validNumber(string(n)) {
		return nil, fmt.Errorf("invalid number literal %q", string(n))
	}
	return append(dst, n...), nil
}

// validNumber reports whether s is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(s string) bool {
	digits := func() bool {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		s = s[n:]
		return n > 0
	}
	s = strings.TrimPrefix(s, "-")
	switch {
	case strings.HasPrefix(s, "0"):
		s = s[1:]
	case !digits():
		return false
	}
	if rest, ok := strings.CutPrefix(s, "."); ok {
		if s = rest; !digits() {
			return false
		}
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		if !digits() {
			return false
		}
	}
	return s == ""
}

// appendString writes s quoted: quotes, backslashes and control characters escaped,
// invalid UTF-8 as U+FFFD, and U+2028 and U+2029 escaped for JavaScript's sake.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
