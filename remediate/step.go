package remediate

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
)

// step runs one step: checks its dependencies and condition, renders its parameters,
// then runs its action, or plans it when it mutates outside live mode.
func (e *Engine) step(ctx context.Context, rs *runState, step *policies.Step) StepReport {
	start := e.now()
	sr := e.decide(ctx, rs, step)
	sr.Duration = e.now().Sub(start)
	recordFacts(rs, &sr)
	e.logStep(rs, &sr)
	return sr
}

// recordFacts makes a step's facts, and the implicit ok, error and decision, visible to
// later steps. A planned step has none: the steps reading it are skipped.
func recordFacts(rs *runState, sr *StepReport) {
	if sr.Decision == DecisionPlanned || rs.planned[sr.ID] {
		return
	}
	facts := make(actions.Facts, len(sr.Facts)+3)
	for k, v := range sr.Facts {
		facts[k] = v
	}
	facts["ok"] = sr.Decision == DecisionExecuted
	facts["error"] = sr.Error
	facts["decision"] = string(sr.Decision)
	rs.scope.SetFacts(sr.ID, facts)
}

func (e *Engine) decide(ctx context.Context, rs *runState, step *policies.Step) StepReport {
	sr := StepReport{ID: step.ID, Action: step.Action, Mutates: step.Mutates(), Condition: step.When}
	if dep := plannedDependency(rs, step); dep != "" {
		// its inputs do not exist in dry-run, so it cannot be evaluated
		rs.planned[step.ID] = true
		return skipped(sr, fmt.Sprintf("reads facts of step %q, which was only planned", dep))
	}
	ok, err := step.Condition(rs.scope)
	if err != nil {
		return failed(sr, actions.ReasonInvalid, fmt.Errorf("evaluating when: %w", err))
	}
	if !ok {
		return skipped(sr, "condition is false")
	}
	params, err := step.Params(rs.scope)
	if err != nil {
		return failed(sr, actions.ReasonInvalid, fmt.Errorf("rendering parameters: %w", err))
	}
	action := rs.rules.Actions[step.Action]
	env := actions.Env{Logger: rs.logger.Named("action." + step.Action), RunID: rs.report.ID,
		Policy: rs.policy.Name, Step: step.ID, Alert: rs.alert.Alert}
	req, err := action.Request(params, env)
	if err != nil {
		return failed(sr, reasonOf(err), fmt.Errorf("describing request: %w", err))
	}
	sr.Request = &req
	if step.Mutates() && rs.mode != config.ModeLive {
		rs.planned[step.ID] = true
		sr.Decision, sr.Reason = DecisionPlanned, "dry-run"
		return sr
	}

	facts, err := action.Run(ctx, params, env)
	if err != nil {
		return failed(sr, reasonOf(err), err)
	}
	sr.Decision, sr.Facts = DecisionExecuted, facts
	return sr
}

func plannedDependency(rs *runState, step *policies.Step) string {
	ids := make([]string, 0, len(rs.planned))
	for id := range rs.planned {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if step.DependsOn(id) {
			return id
		}
	}
	return ""
}

func skipped(sr StepReport, reason string) StepReport {
	sr.Decision, sr.Reason = DecisionSkipped, reason
	return sr
}

func failed(sr StepReport, reason string, err error) StepReport {
	sr.Decision, sr.Reason, sr.Error = DecisionFailed, reason, err.Error()
	return sr
}

func reasonOf(err error) string {
	var se *actions.StepError
	if errors.As(err, &se) {
		return se.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return actions.ReasonTimeout
	}
	return actions.ReasonFailed
}

func (e *Engine) logStep(rs *runState, sr *StepReport) {
	fields := []zap.Field{zap.String(keyStep, sr.ID), zap.String(keyAction, sr.Action),
		zap.String(keyDecision, string(sr.Decision)), zap.String(keyReason, sr.Reason)}
	switch {
	case sr.Decision == DecisionFailed:
		rs.logger.Warn("step failed", append(fields, zap.String("error", sr.Error))...)
	case sr.Mutates && sr.Decision == DecisionExecuted:
		rs.logger.Info("mutating step executed", fields...)
	case sr.Decision == DecisionPlanned:
		rs.logger.Info("mutating step planned", fields...)
	default:
		if ce := rs.logger.Check(zap.DebugLevel, "step done"); ce != nil {
			ce.Write(fields...)
		}
	}
}
