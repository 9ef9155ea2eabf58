package main

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/audit"
)

// TestAFloodOfRejectionsIsCountedNotWritten sends many bad requests' rejections: the
// audit log records a bounded number and counts the rest, so nothing is unaccounted.
func TestAFloodOfRejectionsIsCountedNotWritten(t *testing.T) {
	dir := t.TempDir()
	log, err := audit.Open(dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	trail := &auditTrail{log: log, logger: zap.NewNop()}
	for range 500 {
		trail.Rejected("unauthorized", "missing or invalid credentials", "192.0.2.1:4000")
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	trail.Rejected("unauthorized", "missing or invalid credentials", "192.0.2.1:4000")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	records, counted := 0, 0.0
	for e, err := range audit.Read(dir, audit.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		records++
		if m, ok := e.Record.Result.(map[string]any); ok {
			if n, ok := m["rejections_not_recorded"].(float64); ok {
				counted += n
			}
		}
	}
	if records > 3*rejectionsPerSecond {
		t.Errorf("%d rejection records for one flood, want at most %d", records, 3*rejectionsPerSecond)
	}
	if records+int(counted) != 501 {
		t.Errorf("%d recorded and %v counted, want all 501 accounted for", records, counted)
	}
}
