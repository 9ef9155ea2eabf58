package config

import (
	"fmt"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Duration is a span of time written as Prometheus writes them: "30s", "5m", "6h",
// "7d", "1w".
type Duration time.Duration

// UnmarshalYAML parses a Prometheus duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return typeError(n, "invalid duration %q: use a number and a unit, such as 30s, 5m, 6h, 7d", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in its short form.
func (d Duration) MarshalYAML() (any, error) {
	return model.Duration(d).String(), nil
}

// String renders the duration in its short form.
func (d Duration) String() string { return model.Duration(d).String() }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// ByteSize is an amount of memory written with a binary unit ("1MiB", "512KiB") or as a
// plain number of bytes.
type ByteSize int64

// UnmarshalYAML parses a size such as "1MiB".
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	var v int64
	if _, err := fmt.Sscanf(s, "%d", &v); err == nil && fmt.Sprint(v) == s {
		*b = ByteSize(v)
		return nil
	}
	parsed, err := units.ParseBase2Bytes(s)
	if err != nil {
		return typeError(n, "invalid size %q: use bytes or a binary unit, such as 1MiB", s)
	}
	*b = ByteSize(parsed)
	return nil
}

// MarshalYAML writes the size in bytes.
func (b ByteSize) MarshalYAML() (any, error) { return int64(b), nil }

// String renders the size with a binary unit.
func (b ByteSize) String() string { return units.Base2Bytes(b).String() }

// typeError reports a bad value the way yaml reports its own, so that decoding goes on
// and every bad value is reported with its line.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}
