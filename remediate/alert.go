package remediate

import (
	"time"

	"github.com/prometheus/alertmanager/template"
)

// Alert is one alert of an accepted notification, with what the notification said about
// the group it came in. Each alert is handled on its own, by its own status: a group
// reported as firing can carry resolved alerts.
type Alert struct {
	template.Alert

	// Receiver is the Alertmanager receiver that sent it.
	Receiver string
	// GroupKey identifies the Alertmanager group it was notified in.
	GroupKey string
	// NotificationReason is why Alertmanager notified ("first notification", "repeat
	// interval elapsed"...); empty from Alertmanagers older than 0.32.
	NotificationReason string
	// ExternalURL is the sending Alertmanager's URL.
	ExternalURL string
	// ReceivedAt is when the notification was accepted.
	ReceivedAt time.Time
	// IntakeKey is where the durable intake keeps the alert until it is handled.
	IntakeKey string `json:"-"`
}

// Alert statuses, as Alertmanager writes them.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Name returns the alertname label.
func (a *Alert) Name() string { return a.Labels["alertname"] }

// Instance returns the instance label.
func (a *Alert) Instance() string { return a.Labels["instance"] }
