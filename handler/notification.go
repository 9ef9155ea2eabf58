package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/remediator/remediator/remediate"
)

// SupportedVersion is the webhook payload version this receiver understands.
const SupportedVersion = "4"

// Notification is the body of an Alertmanager webhook notification: Alertmanager's own
// template.Data with the fields its webhook notifier adds. Unknown fields are ignored,
// so that newer Alertmanagers can add fields without breaking the receiver.
type Notification struct {
	template.Data

	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
	// NotificationReason is sent by Alertmanager 0.32 and newer.
	NotificationReason string `json:"notification_reason,omitempty"`
}

// InvalidError says what was wrong with a body that decoded but is not a valid
// notification.
type InvalidError struct {
	Reason string // a bounded reason: malformed, version or invalid
	Msg    string
}

func (e *InvalidError) Error() string { return e.Msg }

// Reasons of InvalidError.
const (
	reasonMalformed = "malformed"
	reasonVersion   = "bad_version"
	reasonInvalid   = "invalid"
)

// DecodeNotification parses and validates a webhook body.
func DecodeNotification(body []byte) (*Notification, error) {
	var n Notification
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &InvalidError{Reason: reasonMalformed, Msg: "malformed JSON: body is empty"}
	}
	if !decodeFast(body, &n) {
		// encoding/json has the last word, and the error messages
		n = Notification{}
		if err := json.Unmarshal(body, &n); err != nil {
			return nil, &InvalidError{Reason: reasonMalformed, Msg: "malformed JSON: " + describeJSONError(err)}
		}
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := strings.TrimPrefix(typ.Field, "Data.")
		if field == "" {
			return fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("field %s: cannot take a JSON %s", field, typ.Value)
	}
	var tm *time.ParseError
	if errors.As(err, &tm) {
		return fmt.Sprintf("invalid time %q", tm.Value)
	}
	return err.Error()
}

func (n *Notification) validate() error {
	invalid := func(format string, args ...any) error {
		return &InvalidError{Reason: reasonInvalid, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case n.Version == "":
		return &InvalidError{Reason: reasonVersion, Msg: `version: required (Alertmanager sends "4")`}
	case n.Version != SupportedVersion:
		return &InvalidError{
			Reason: reasonVersion,
			Msg:    fmt.Sprintf("version: %q is not supported, only %q", n.Version, SupportedVersion),
		}
	case n.Status != remediate.StatusFiring && n.Status != remediate.StatusResolved:
		return invalid("status: must be firing or resolved, not %q", n.Status)
	case len(n.Alerts) == 0:
		return invalid("alerts: required, at least one")
	}
	for i := range n.Alerts {
		if err := validateAlert(&n.Alerts[i]); err != nil {
			return invalid("alerts[%d].%s", i, err)
		}
	}
	return nil
}

func validateAlert(a *template.Alert) error {
	if a.Status != remediate.StatusFiring && a.Status != remediate.StatusResolved {
		return fmt.Errorf("status: must be firing or resolved, not %q", a.Status)
	}
	if len(a.Labels) == 0 {
		return errors.New("labels: required")
	}
	for name := range a.Labels {
		if name == "" || !utf8.ValidString(name) {
			return fmt.Errorf("labels: invalid label name %q", name)
		}
	}
	if a.StartsAt.IsZero() {
		return errors.New("startsAt: required")
	}
	if a.Fingerprint == "" {
		// hand-made bodies may leave it out; Alertmanager derives it from the labels
		a.Fingerprint = fingerprint(a.Labels)
	}
	return nil
}

func fingerprint(labels template.KV) string {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// Split returns the notification's alerts, each with the group's context.
func (n *Notification) Split(receivedAt time.Time) []remediate.Alert {
	out := make([]remediate.Alert, len(n.Data.Alerts))
	for i, a := range n.Data.Alerts {
		out[i] = remediate.Alert{
			Alert:              a,
			Receiver:           n.Receiver,
			GroupKey:           n.GroupKey,
			NotificationReason: n.NotificationReason,
			ExternalURL:        n.ExternalURL,
			ReceivedAt:         receivedAt,
		}
	}
	return out
}

// DecodeAlerts reads the alerts a plan is asked for: a webhook body, or a JSON list of
// alerts as they appear in one. Alerts of a list default to firing, starting now.
func DecodeAlerts(body []byte, now time.Time) ([]remediate.Alert, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		n, err := DecodeNotification(body)
		if err != nil {
			return nil, err
		}
		return n.Split(now), nil
	}
	var list []template.Alert
	if err := json.Unmarshal(trimmed, &list); err != nil {
		return nil, &InvalidError{Reason: reasonMalformed, Msg: "malformed JSON: " + describeJSONError(err)}
	}
	if len(list) == 0 {
		return nil, &InvalidError{Reason: reasonInvalid, Msg: "alerts: required, at least one"}
	}
	out := make([]remediate.Alert, len(list))
	for i := range list {
		a := &list[i]
		if a.Status == "" {
			a.Status = remediate.StatusFiring
		}
		if a.StartsAt.IsZero() {
			a.StartsAt = now
		}
		if err := validateAlert(a); err != nil {
			return nil, &InvalidError{Reason: reasonInvalid, Msg: fmt.Sprintf("[%d].%s", i, err)}
		}
		out[i] = remediate.Alert{Alert: *a, ReceivedAt: now}
	}
	return out, nil
}
