package remediate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WritePlanText writes plans for people: per alert, the matching policies, and per step
// what was executed, skipped and why, or planned with its exact request.
func WritePlanText(w io.Writer, plans []*AlertPlan) error {
	pw := &planWriter{w: w}
	for _, ap := range plans {
		pw.alert(ap)
	}
	return pw.err
}

type planWriter struct {
	w   io.Writer
	err error
}

func (pw *planWriter) printf(format string, args ...any) {
	if pw.err == nil {
		_, pw.err = fmt.Fprintf(pw.w, format, args...)
	}
}

func (pw *planWriter) alert(ap *AlertPlan) {
	a := ap.Alert
	pw.printf("alert %s", a.Alertname)
	if a.Instance != "" {
		pw.printf(" instance=%s", a.Instance)
	}
	pw.printf(" (%s, fingerprint %s)\n", a.Status, a.Fingerprint)
	if len(ap.Runs) == 0 {
		pw.printf("  no policy matches\n\n")
		return
	}
	for _, r := range ap.Runs {
		pw.run(r)
	}
}

func (pw *planWriter) run(r *RunReport) {
	pw.printf("  policy %s (%s, run %s)\n", r.Policy, r.Mode, r.ID)
	if r.SkipReason != "" {
		pw.printf("    %s; the steps below show what it would do otherwise\n", r.SkipReason)
	}
	if s := r.Silence; s != nil {
		pw.printf("    silence of the alert while running: %s\n", s.Decision)
	}
	for i := range r.Steps {
		pw.step(&r.Steps[i])
	}
	pw.printf("  outcome: %s\n\n", r.Outcome)
}

func (pw *planWriter) step(s *StepReport) {
	pw.printf("    %-9s %s (%s)", s.Decision, s.ID, s.Action)
	if s.Reason != "" {
		pw.printf(": %s", s.Reason)
	}
	pw.printf("\n")
	if s.Condition != "" {
		verdict := "true"
		if s.Decision == DecisionSkipped && s.Reason == "condition is false" {
			verdict = "false"
		}
		pw.printf("      when (%s): %s\n", verdict, oneLine(s.Condition))
	}
	if s.Error != "" {
		pw.printf("      error: %s\n", s.Error)
	}
	if s.Decision == DecisionPlanned && s.Request != nil {
		input, _ := json.MarshalIndent(s.Request.Input, "        ", "  ")
		pw.printf("      would call %s %s with:\n        %s\n", s.Request.Service, s.Request.Operation, input)
	}
	if s.Decision == DecisionExecuted {
		pw.facts(s)
	}
}

func (pw *planWriter) facts(s *StepReport) {
	keys := make([]string, 0, len(s.Facts))
	for k := range s.Facts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pw.printf("      %s: %s\n", k, formatFact(s.Facts[k]))
	}
}

func formatFact(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case string:
		return x
	case []string:
		return strings.Join(x, ", ")
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// oneLine folds a multi-line condition onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
