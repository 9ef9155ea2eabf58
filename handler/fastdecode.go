package handler

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/template"
)

// The webhook's decoder has two paths. decodeFast reads the bodies Alertmanager sends,
// in one pass and without reflection, into exactly the values encoding/json would give.
// Anything it does not handle exactly as encoding/json does makes it give up, and
// encoding/json decodes the body instead: a syntax error, a null, a value of another
// type, a repeated field, a field name that matches ours only when case is ignored,
// deep nesting. So encoding/json keeps the last word on what is accepted and on every
// error message; FuzzDecodeFastMatchesEncodingJSON holds the two paths to the same
// results.

// maxFastDepth is the deepest nesting decodeFast follows before giving up.
const maxFastDepth = 64

// Field names of the webhook body, and of each of its alerts.
var (
	notificationFields = []string{"receiver", "status", "alerts", "groupLabels", "commonLabels",
		"commonAnnotations", "externalURL", "version", "groupKey", "truncatedAlerts", "notification_reason"}
	alertFields = []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
		"fingerprint"}
)

// fastDecoder walks one body. src is the body as one string: a string value without
// escapes is a slice of it, which saves an allocation for each label and annotation.
type fastDecoder struct {
	buf []byte
	src string
	pos int
}

// decodeFast decodes body into n and reports whether it could; when it could not, n
// is left in an unspecified state.
func decodeFast(body []byte, n *Notification) bool {
	d := fastDecoder{buf: body, src: string(body)}
	if !d.notification(n) {
		return false
	}
	d.space()
	return d.pos == len(d.buf)
}

func (d *fastDecoder) space() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// consume skips white space and then c, reporting whether c was there.
func (d *fastDecoder) consume(c byte) bool {
	d.space()
	if d.pos < len(d.buf) && d.buf[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// peek skips white space and returns the next byte, or 0 at the end.
func (d *fastDecoder) peek() byte {
	d.space()
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

// members reads an object, calling field for each name with the decoder on its value.
func (d *fastDecoder) members(field func(name string) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		if d.peek() != '"' {
			return false
		}
		name, ok := d.str()
		if !ok || !d.consume(':') || !field(name) {
			return false
		}
		if d.consume('}') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

// seen marks field i of an object, reporting false if it was marked already:
// encoding/json merges a repeated field into the first in ways not worth copying.
func seen(mask *uint32, i int) bool {
	if *mask&(1<<i) != 0 {
		return false
	}
	*mask |= 1 << i
	return true
}

// unknownField skips the value of a field that is not one of names, unless names has
// one equal to it when case is ignored: encoding/json would decode into that one.
func (d *fastDecoder) unknownField(name string, names []string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			return false // encoding/json folds some non-ASCII letters onto ASCII ones
		}
	}
	for _, known := range names {
		if strings.EqualFold(name, known) {
			return false
		}
	}
	return d.skip()
}

func (d *fastDecoder) notification(n *Notification) bool {
	var mask uint32
	return d.members(func(name string) bool {
		switch name {
		case "receiver":
			return seen(&mask, 0) && d.strInto(&n.Receiver)
		case "status":
			return seen(&mask, 1) && d.strInto(&n.Status)
		case "alerts":
			return seen(&mask, 2) && d.alerts(&n.Alerts)
		case "groupLabels":
			return seen(&mask, 3) && d.kv(&n.GroupLabels)
		case "commonLabels":
			return seen(&mask, 4) && d.kv(&n.CommonLabels)
		case "commonAnnotations":
			return seen(&mask, 5) && d.kv(&n.CommonAnnotations)
		case "externalURL":
			return seen(&mask, 6) && d.strInto(&n.ExternalURL)
		case "version":
			return seen(&mask, 7) && d.strInto(&n.Version)
		case "groupKey":
			return seen(&mask, 8) && d.strInto(&n.GroupKey)
		case "truncatedAlerts":
			return seen(&mask, 9) && d.uint(&n.TruncatedAlerts)
		case "notification_reason":
			return seen(&mask, 10) && d.strInto(&n.NotificationReason)
		}
		return d.unknownField(name, notificationFields)
	})
}

func (d *fastDecoder) alerts(dst *template.Alerts) bool {
	if !d.consume('[') {
		return false
	}
	// a notification's alerts are about 700 bytes each
	out := make(template.Alerts, 0, min(len(d.buf)/512+1, 64))
	if d.consume(']') {
		*dst = out
		return true
	}
	for {
		out = append(out, template.Alert{})
		if !d.alert(&out[len(out)-1]) {
			return false
		}
		if d.consume(']') {
			*dst = out
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

func (d *fastDecoder) alert(a *template.Alert) bool {
	var mask uint32
	return d.members(func(name string) bool {
		switch name {
		case "status":
			return seen(&mask, 0) && d.strInto(&a.Status)
		case "labels":
			return seen(&mask, 1) && d.kv(&a.Labels)
		case "annotations":
			return seen(&mask, 2) && d.kv(&a.Annotations)
		case "startsAt":
			return seen(&mask, 3) && d.time(&a.StartsAt)
		case "endsAt":
			return seen(&mask, 4) && d.time(&a.EndsAt)
		case "generatorURL":
			return seen(&mask, 5) && d.strInto(&a.GeneratorURL)
		case "fingerprint":
			return seen(&mask, 6) && d.strInto(&a.Fingerprint)
		}
		return d.unknownField(name, alertFields)
	})
}

// kv reads an object of strings; a repeated name keeps its last value, as in
// encoding/json.
func (d *fastDecoder) kv(dst *template.KV) bool {
	m := template.KV{}
	ok := d.members(func(name string) bool {
		v, ok := d.strValue()
		m[name] = v
		return ok
	})
	*dst = m
	return ok
}

func (d *fastDecoder) strInto(dst *string) bool {
	v, ok := d.strValue()
	*dst = v
	return ok
}

// strValue reads a value that must be a string.
func (d *fastDecoder) strValue() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	return d.str()
}

// time reads a timestamp the way encoding/json does: by handing the quoted text, as it
// is, to time.Time's UnmarshalJSON.
func (d *fastDecoder) time(dst *time.Time) bool {
	if d.peek() != '"' {
		return false
	}
	start := d.pos
	if _, ok := d.str(); !ok {
		return false
	}
	return dst.UnmarshalJSON(d.buf[start:d.pos]) == nil
}

// uint reads a count written as plain digits.
func (d *fastDecoder) uint(dst *uint64) bool {
	d.space()
	start := d.pos
	for d.pos < len(d.buf) && d.buf[d.pos] >= '0' && d.buf[d.pos] <= '9' {
		d.pos++
	}
	digits := d.src[start:d.pos]
	if digits == "" || (digits[0] == '0' && len(digits) > 1) || d.numberContinues() {
		return false
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	*dst = v
	return err == nil
}

// numberContinues reports whether the number just read goes on as a fraction or an
// exponent.
func (d *fastDecoder) numberContinues() bool {
	if d.pos >= len(d.buf) {
		return false
	}
	c := d.buf[d.pos]
	return c == '.' || c == 'e' || c == 'E'
}

// str reads the string at d.pos, which is a quote, and returns its value.
func (d *fastDecoder) str() (string, bool) {
	start := d.pos + 1
	end := start
	for {
		q := bytes.IndexByte(d.buf[end:], '"')
		if q < 0 {
			return "", false
		}
		end += q
		if !escapedQuote(d.buf[start:end]) {
			break
		}
		end++
	}
	d.pos = end + 1
	s := d.buf[start:end]
	if !plainASCII(s) {
		return unquote(s)
	}
	return d.src[start:end], true
}

// escapedQuote reports whether the quote that ends s is escaped: preceded by an odd
// number of backslashes.
func escapedQuote(s []byte) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// plainASCII reports whether s is printable ASCII without a backslash, eight bytes at
// a time: such a string means what its bytes say.
func plainASCII(s []byte) bool {
	const ones, highs, spaces = 0x0101010101010101, 0x8080808080808080, 0x2020202020202020
	const backslashes = ones * '\\'
	for len(s) >= 8 {
		w := binary.LittleEndian.Uint64(s)
		// a byte under 0x20 or past 0x7f sets its high bit in (w-spaces)|w; a backslash
		// leaves a zero byte in w^backslashes, which the same trick finds
		b := w ^ backslashes
		if ((w-spaces)|w|((b-ones)&^b))&highs != 0 {
			return false
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < ' ' || c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	return true
}

// unquote decodes the inside of a string with escapes or bytes past ASCII as
// encoding/json does: a lone surrogate and each byte of invalid UTF-8 become U+FFFD.
func unquote(s []byte) (string, bool) {
	var arr [512]byte // most strings fit, and then only the result is allocated
	out := arr[:0]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			var ok bool
			if out, i, ok = unescape(out, s, i); !ok {
				return "", false
			}
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	return string(out), true
}

// unescape decodes the escape at s[i] onto out and returns the index after it.
func unescape(out, s []byte, i int) ([]byte, int, bool) {
	if i+1 >= len(s) {
		return out, i, false
	}
	switch s[i+1] {
	case '"', '\\', '/':
		return append(out, s[i+1]), i + 2, true
	case 'b':
		return append(out, '\b'), i + 2, true
	case 'f':
		return append(out, '\f'), i + 2, true
	case 'n':
		return append(out, '\n'), i + 2, true
	case 'r':
		return append(out, '\r'), i + 2, true
	case 't':
		return append(out, '\t'), i + 2, true
	case 'u':
		r := hex4(s, i)
		if r < 0 {
			return out, i, false
		}
		i += 6
		if utf16.IsSurrogate(r) {
			// a pair takes the next escape with it; a lone half stands for U+FFFD
			if pair := utf16.DecodeRune(r, hex4(s, i)); pair != utf8.RuneError {
				return utf8.AppendRune(out, pair), i + 6, true
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(out, r), i, true
	}
	return out, i, false
}

// hex4 returns the code unit of the \u escape, four hex digits, at s[i], or -1 if there is none.
func hex4(s []byte, i int) rune {
	if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return -1
	}
	v, err := strconv.ParseUint(string(s[i+2:i+6]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(v)
}

// skip reads past a value of any type, checking its syntax.
func (d *fastDecoder) skip() bool {
	return d.skipDepth(0)
}

func (d *fastDecoder) skipDepth(depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	switch c := d.peek(); {
	case c == '"':
		_, ok := d.str()
		return ok
	case c == '{':
		return d.members(func(string) bool { return d.skipDepth(depth + 1) })
	case c == '[':
		return d.skipArray(depth)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	}
	return false // null among them: a null in an unknown field costs a fallback, no more
}

func (d *fastDecoder) skipArray(depth int) bool {
	d.pos++ // [
	if d.consume(']') {
		return true
	}
	for {
		if !d.skipDepth(depth + 1) {
			return false
		}
		if d.consume(']') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

func (d *fastDecoder) literal(word string) bool {
	if !strings.HasPrefix(d.src[d.pos:], word) {
		return false
	}
	d.pos += len(word)
	return true
}

// number reads a number of JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *fastDecoder) number() bool {
	if d.buf[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.buf) && d.buf[d.pos] == '0':
		d.pos++
	case !d.digits():
		return false
	}
	if d.pos < len(d.buf) && d.buf[d.pos] == '.' {
		d.pos++
		if !d.digits() {
			return false
		}
	}
	if d.pos < len(d.buf) && (d.buf[d.pos] == 'e' || d.buf[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.buf) && (d.buf[d.pos] == '+' || d.buf[d.pos] == '-') {
			d.pos++
		}
		if !d.digits() {
			return false
		}
	}
	return true
}

// digits reads one or more digits.
func (d *fastDecoder) digits() bool {
	start := d.pos
	for d.pos < len(d.buf) && d.buf[d.pos] >= '0' && d.buf[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}
