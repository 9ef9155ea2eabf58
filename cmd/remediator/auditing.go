package main

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/audit"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/remediate"
)

// auditTrail writes the engine's decisions and the webhook's receipts to the audit log.
type auditTrail struct {
	log    *audit.Log
	logger *zap.Logger

	mu         sync.Mutex
	second     time.Time // the second rejections are being counted in
	recorded   int       // rejections recorded in it
	suppressed int       // rejections not recorded since the last one that was
}

// Record implements remediate.Recorder: it returns once the record is on disk.
func (a *auditTrail) Record(ev remediate.Event) error {
	return a.log.Append(audit.Record{
		RunID: ev.RunID, Policy: ev.Policy, Alert: auditAlert(ev.Alert), Step: ev.Step, Action: ev.Action,
		Mode: string(ev.Mode), Decision: audit.Decision(ev.Decision), Reason: ev.Reason,
		Request: ev.Request, Result: ev.Result, Error: ev.Error, DurationMS: audit.Millis(ev.Duration),
	})
}

func auditAlert(a remediate.AlertRef) *audit.Alert {
	if a.Fingerprint == "" && a.Alertname == "" {
		return nil
	}
	return &audit.Alert{Fingerprint: a.Fingerprint, Alertname: a.Alertname, Instance: a.Instance, Status: a.Status}
}

// Received implements handler.Receipts with one record a notification, listing the
// fingerprints of its firing and resolved alerts. Receipts do not wait for their fsync:
// the alerts themselves are durable in the intake already, and the next synced record
// or the log's background sync covers them.
func (a *auditTrail) Received(n *handler.Notification, alerts []remediate.Alert) {
	firing, resolved := make([]string, 0, len(alerts)), []string{}
	for i := range alerts {
		if alerts[i].Status == remediate.StatusResolved {
			resolved = append(resolved, alerts[i].Fingerprint)
		} else {
			firing = append(firing, alerts[i].Fingerprint)
		}
	}
	r := audit.Record{Decision: audit.DecisionReceived, Reason: n.NotificationReason,
		Result: map[string]any{"group_key": n.GroupKey, "receiver": n.Receiver, "firing": firing,
			"resolved": resolved}}
	if len(alerts) == 1 {
		al := &alerts[0]
		r.Alert = &audit.Alert{Fingerprint: al.Fingerprint, Alertname: al.Name(), Instance: al.Instance(),
			Status: al.Status}
	}
	if err := a.log.AppendAsync(r); err != nil {
		a.logger.Error("recording a receipt failed", zap.Error(err))
	}
}

// rejectionsPerSecond bounds rejection records, so that a flood of bad requests cannot
// fill the disk; the next record counts those left out.
const rejectionsPerSecond = 20

// Rejected implements handler.Receipts.
func (a *auditTrail) Rejected(reason, msg, remote string) {
	suppressed, ok := a.admitRejection()
	if !ok {
		return
	}
	result := map[string]any{"remote": remote}
	if suppressed > 0 {
		result["rejections_not_recorded"] = suppressed
	}
	err := a.log.AppendAsync(audit.Record{Decision: audit.DecisionRejected, Reason: reason, Error: msg,
		Result: result})
	if err != nil {
		a.logger.Error("recording a rejection failed", zap.Error(err))
	}
}

// admitRejection allows rejectionsPerSecond records a second and counts the others.
func (a *auditTrail) admitRejection() (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()

	now := time.Now().Truncate(time.Second)
	if !now.Equal(a.second) {
		a.second, a.recorded = now, 0
	}
	if a.recorded >= rejectionsPerSecond {
		a.suppressed++
		return 0, false
	}
	a.recorded++
	n := a.suppressed
	a.suppressed = 0
	return n, true
}
