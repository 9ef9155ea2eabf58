package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// What redacted values are replaced with.
const (
	redactedValue = "<redacted>"
	redactedPEM   = "<redacted PEM>"
)

// sensitiveKeys are the words that make a map key's value secret wherever they appear in
// the key, compared without case and without the separators that keyNorm drops, so that
// "SecretAccessKey", "x-session-token" and "private_key" all match. Over-redacting a
// harmless value ("NextToken") is the accepted price of never writing a real one.
var sensitiveKeys = []string{
	"token", "secret", "password", "passwd", "authorization", "credential",
	"privatekey", "keypem", "sessiontoken", "accesskey",
}

// pemMarkers are what a string containing PEM text, or starting with the base64 of PEM
// text (how encoding/json writes a []byte holding it), contains or starts with.
const (
	pemMarker       = "-----BEGIN"
	pemBase64Marker = "LS0tLS1CRUdJT"
)

// Redact returns a copy of v converted through encoding/json into generic maps, lists
// and scalars, with the value of every map key naming a secret replaced by "<redacted>"
// and every string holding PEM text replaced by "<redacted PEM>", at any depth. A nil v,
// or one that encodes as null, returns nil. Numbers keep their exact text. v itself is
// never changed.
func Redact(v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, float64, json.Number, int, int64, uint64:
		return t, nil
	case string:
		return redactPEM(t), nil
	case map[string]any:
		return redactMap(t)
	case map[string]string:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = redactString(k, x)
		}
		return out, nil
	case []string:
		if t == nil {
			return nil, nil
		}
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = redactPEM(x)
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			var err error
			if out[i], err = Redact(x); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return redactEncoded(v)
}

// redactMap copies m, redacting as Redact does. Generic maps and lists, what callers
// mostly pass, are copied directly; anything else goes through redactEncoded.
func redactMap(m map[string]any) (any, error) {
	out := make(map[string]any, len(m))
	for k, x := range m {
		if sensitiveKey(k) {
			out[k] = redactedValue
			continue
		}
		var err error
		if out[k], err = Redact(x); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// redactEncoded redacts v by encoding it and decoding the result into generic values.
func redactEncoded(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding value to redact: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("decoding value to redact: %w", err)
	}
	return redactValue(generic), nil
}

// redactValue redacts v, freshly decoded and so unshared, in place.
func redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if sensitiveKey(k) {
				t[k] = redactedValue
			} else {
				t[k] = redactValue(x)
			}
		}
	case []any:
		for i, x := range t {
			t[i] = redactValue(x)
		}
	case string:
		return redactPEM(t)
	}
	return v
}

// redactString is the redacted value of x under the key k.
func redactString(k, x string) string {
	if sensitiveKey(k) {
		return redactedValue
	}
	return redactPEM(x)
}

func sensitiveKey(k string) bool {
	var buf [64]byte
	norm, ok := asciiKeyNorm(buf[:0], k)
	if !ok {
		norm = []byte(keyNorm(k))
	}
	for _, word := range sensitiveKeys {
		if bytes.Contains(norm, []byte(word)) {
			return true
		}
	}
	return false
}

// asciiKeyNorm is keyNorm without allocating, for the ASCII keys that fit in dst's
// capacity; it reports false for the others.
func asciiKeyNorm(dst []byte, k string) ([]byte, bool) {
	if len(k) > cap(dst) {
		return nil, false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c >= utf8.RuneSelf:
			return nil, false
		case c == '_' || c == '-' || c == '.' || c == ' ':
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

// keyNorm lowercases k and drops the characters keys use to separate words.
func keyNorm(k string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return r
	}, strings.ToLower(k))
}

// redactPEM hides s when it holds PEM text.
func redactPEM(s string) string {
	if strings.Contains(s, pemMarker) || strings.HasPrefix(s, pemBase64Marker) {
		return redactedPEM
	}
	return s
}
