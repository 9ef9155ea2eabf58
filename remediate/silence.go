package remediate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/remediate/actions"
)

// silenceFor bounds a silence that outlives a run whose process died.
const silenceFor = time.Hour

// silence silences the original alert in Alertmanager while the run goes on, and returns
// the function that expires it. In dry-run the silence is only planned.
func (e *Engine) silence(ctx context.Context, rs *runState) func() {
	rep := &SilenceReport{Decision: DecisionPlanned}
	rs.report.Silence = rep
	if rs.mode != config.ModeLive {
		return func() {}
	}
	now := e.now()
	s := actions.Silence{
		Matchers:  silenceMatchers(rs.alert.Labels),
		StartsAt:  now,
		EndsAt:    now.Add(silenceFor),
		CreatedBy: "remediator",
		Comment:   fmt.Sprintf("remediator run %s of policy %s is under way", rs.report.ID, rs.policy.Name),
	}
	id, err := rs.rules.Alertmanager.CreateSilence(ctx, s)
	if err != nil {
		rep.Decision, rep.Error = DecisionFailed, err.Error()
		rs.logger.Warn("silencing the alert failed; the run goes on", zap.Error(err))
		return func() {}
	}
	rep.Decision, rep.ID = DecisionExecuted, id
	rs.logger.Info("alert silenced while the run goes on", zap.String("silence_id", id))
	return func() {
		// expire even when the run's context is over
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := rs.rules.Alertmanager.ExpireSilence(ctx, id); err != nil {
			rs.logger.Warn("expiring the silence failed; it ends by itself",
				zap.String("silence_id", id), zap.Time("ends_at", s.EndsAt), zap.Error(err))
		}
	}
}

func silenceMatchers(labels map[string]string) []actions.SilenceMatcher {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]actions.SilenceMatcher, len(names))
	for i, n := range names {
		out[i] = actions.SilenceMatcher{Name: n, Value: labels[n], IsEqual: true}
	}
	return out
}
