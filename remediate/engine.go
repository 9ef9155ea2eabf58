package remediate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
	"github.com/remediator/remediator/state"
)

// Log keys used by the engine.
const (
	keyRunID       = "run_id"
	keyPolicy      = "policy"
	keyAlertname   = "alertname"
	keyInstance    = "instance"
	keyFingerprint = "fingerprint"
	keyStatus      = "status"
	keyStep        = "step"
	keyAction      = "action"
	keyMode        = "mode"
	keyDecision    = "decision"
	keyReason      = "reason"
	keyOutcome     = "outcome"
)

// Rules are what a reload swaps at once: the policies, the global mode, the actions
// they were checked against, and the Alertmanager silences go to.
type Rules struct {
	Policies     *policies.Set
	Mode         config.Mode
	Actions      actions.Registry
	Alertmanager *actions.Alertmanager
}

// Engine matches alerts to policies, guards them, and runs their steps.
type Engine struct {
	rules     atomic.Pointer[Rules]
	store     state.Store
	intake    *Intake
	recorder  Recorder
	metrics   *engineMetrics
	logger    *zap.Logger
	now       func() time.Time
	breakerMu sync.Mutex
	instance  string

	activeMu sync.Mutex
	active   map[string]bool // runs under way in this process
}

// Option configures an Engine.
type Option func(*Engine)

// WithStore keeps the guards in s. Without it they live in memory and a restart
// forgets them.
func WithStore(s state.Store) Option { return func(e *Engine) { e.store = s } }

// WithIntake lets runs see resolutions as soon as they are accepted, and forgets each
// alert in the intake once it is handled.
func WithIntake(in *Intake) Option { return func(e *Engine) { e.intake = in } }

// WithRecorder records every decision, for the audit log.
func WithRecorder(r Recorder) Option { return func(e *Engine) { e.recorder = r } }

// WithClock sets the clock, for tests.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// NewEngine returns an engine running rules, with its metrics registered on reg.
func NewEngine(rules *Rules, reg prometheus.Registerer, logger *zap.Logger, opts ...Option) *Engine {
	e := &Engine{metrics: newEngineMetrics(reg), logger: logger, now: time.Now, recorder: nopRecorder{},
		active: map[string]bool{}}
	for _, o := range opts {
		o(e)
	}
	if e.store == nil {
		e.store = state.NewMemory(e.now)
	}
	id, err := instanceID(context.Background(), e.store, e.now())
	if err != nil {
		// leases then name a process that no restart will match; they expire by their TTL
		logger.Warn("reading the instance id failed", zap.Error(err))
		id = newRunID(e.now())
	}
	e.instance = id
	e.Reload(rules)
	return e
}

// Reload swaps the rules; runs under way finish with the rules they started with.
func (e *Engine) Reload(rules *Rules) {
	e.metrics.init(rules)
	e.rules.Store(rules)
}

// Rules returns the rules in force.
func (e *Engine) Rules() *Rules { return e.rules.Load() }

// Process guards and runs every policy that matches a, one after another, in the mode
// in force; then the intake forgets a.
func (e *Engine) Process(ctx context.Context, a Alert) {
	rules := e.rules.Load()
	for _, p := range e.match(rules, &a) {
		if ctx.Err() != nil {
			// shutting down: the alert stays in the intake for the next start
			return
		}
		e.processPolicy(ctx, rules, p, &a)
	}
	if e.intake != nil && ctx.Err() == nil {
		e.intake.Done(&a)
	}
}

func (e *Engine) processPolicy(ctx context.Context, rules *Rules, p *policies.Policy, a *Alert) {
	mode := p.EffectiveMode(rules.Mode)
	start := e.now()
	sc := policies.NewScope(a.Alert, "", p.Name, start)
	adm, err := e.admit(ctx, p, a, sc, false)
	if err != nil {
		e.logger.Error("guards could not decide; the alert is not handled", zap.String(keyPolicy, p.Name),
			zap.String(keyFingerprint, a.Fingerprint), zap.Error(err))
		return
	}
	if adm.skip != "" {
		e.skipRun(ctx, rules, p, a, mode, adm)
		return
	}
	stopRenewing := e.renewLease(ctx, p, adm)
	rep := e.run(ctx, rules, p, a, mode, adm)
	stopRenewing()
	defer e.setActive(rep.ID, false)
	if ctx.Err() != nil {
		e.logger.Warn("run interrupted by shutdown; it resumes at the next start",
			zap.String(keyRunID, rep.ID), zap.String(keyPolicy, p.Name))
		return
	}
	e.settle(ctx, p, a, adm, rep)
	e.observe(rep)
}

// Plan runs the policies matching each alert in dry-run, whatever the mode in force:
// guards are consulted without being changed, read-only steps run for real, and
// mutating steps are planned with their exact requests.
func (e *Engine) Plan(ctx context.Context, alerts []Alert) []*AlertPlan {
	rules := e.rules.Load()
	out := make([]*AlertPlan, 0, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		ap := &AlertPlan{Alert: refOf(a), Runs: []*RunReport{}}
		for _, p := range e.match(rules, a) {
			ap.Runs = append(ap.Runs, e.planPolicy(ctx, rules, p, a))
		}
		out = append(out, ap)
	}
	return out
}

func (e *Engine) planPolicy(ctx context.Context, rules *Rules, p *policies.Policy, a *Alert) *RunReport {
	start := e.now()
	sc := policies.NewScope(a.Alert, "", p.Name, start)
	adm, err := e.admit(ctx, p, a, sc, true)
	if err != nil {
		adm = &admission{peek: true, msg: "guards unknown: " + err.Error()}
	}
	adm.record = &runRecord{ID: newRunID(start), Policy: p.Name, Target: adm.target, Started: start}
	rep := e.run(ctx, rules, p, a, config.ModeDryRun, adm)
	if adm.skip != "" {
		rep.Skipped, rep.SkipReason = adm.skip, "would be skipped: "+adm.msg
	}
	return rep
}

func (e *Engine) match(rules *Rules, a *Alert) []*policies.Policy {
	matched := rules.Policies.Match(a.Labels, a.Status)
	if ce := e.logger.Check(zap.DebugLevel, "alert matched"); ce != nil {
		names := make([]string, len(matched))
		for i, p := range matched {
			names[i] = p.Name
		}
		ce.Write(zap.String(keyAlertname, a.Name()), zap.String(keyInstance, a.Instance()),
			zap.String(keyStatus, a.Status), zap.Strings("policies", names))
	}
	return matched
}

func (e *Engine) observe(rep *RunReport) {
	e.metrics.runs.WithLabelValues(rep.Policy, rep.Outcome).Inc()
	e.metrics.runSeconds.WithLabelValues(rep.Policy).Observe(rep.Finished.Sub(rep.Started).Seconds())
	for _, s := range rep.Steps {
		e.metrics.steps.WithLabelValues(s.Action, string(s.Decision), string(rep.Mode)).Inc()
	}
}

// runState is one run under way.
type runState struct {
	rules   *Rules
	policy  *policies.Policy
	alert   *Alert
	mode    config.Mode
	scope   *policies.Scope
	report  *RunReport
	record  *runRecord
	peek    bool            // a plan: no skip is counted
	unknown map[string]bool // mutating steps called before a crash, outcome never recorded
	planned map[string]bool
	logger  *zap.Logger
}

func (e *Engine) run(ctx context.Context, rules *Rules, p *policies.Policy, a *Alert, mode config.Mode,
	adm *admission) *RunReport {
	rec := adm.record
	rs := &runState{
		rules: rules, policy: p, alert: a, mode: mode, record: rec, peek: adm.peek,
		scope: policies.NewScope(a.Alert, rec.ID, p.Name, e.now()),
		report: &RunReport{ID: rec.ID, Policy: p.Name, Mode: mode, Alert: refOf(a), Started: e.now(),
			Steps: []StepReport{}},
		unknown: map[string]bool{},
		planned: map[string]bool{},
		logger: e.logger.With(zap.String(keyRunID, rec.ID), zap.String(keyPolicy, p.Name),
			zap.String(keyAlertname, a.Name()), zap.String(keyInstance, a.Instance()),
			zap.String(keyFingerprint, a.Fingerprint), zap.String(keyMode, string(mode))),
	}
	for _, id := range rec.InFlight {
		rs.unknown[id] = true
	}
	rs.logger.Info("run started", zap.String(keyStatus, a.Status), zap.Int("attempt", rec.Attempt))

	if p.SilenceWhileRunning {
		defer e.silence(ctx, rs)()
	}
	rs.report.Outcome = e.steps(ctx, rs)
	rs.report.Finished = e.now()

	rs.logger.Info("run finished", zap.String(keyOutcome, rs.report.Outcome),
		zap.Duration("duration", rs.report.Finished.Sub(rs.report.Started)))
	return rs.report
}

// steps runs the policy's steps in order and returns the run's outcome.
func (e *Engine) steps(ctx context.Context, rs *runState) string {
	for _, step := range rs.policy.Steps {
		if ctx.Err() != nil {
			// shutting down; the run resumes at the next start
			return OutcomeFailed
		}
		sr := e.step(ctx, rs, step)
		rs.report.Steps = append(rs.report.Steps, sr)
		if err := e.recordStep(rs, &sr); err != nil {
			rs.logger.Error("recording a decision failed; stopping the run", zap.Error(err))
			return OutcomeFailed
		}
		switch {
		case sr.Reason == reasonResolved:
			return OutcomeCancelled
		case sr.Reason == reasonOutcomeUnknown:
			e.escalateUnknown(ctx, rs, &sr)
			return OutcomeFailed
		case sr.Decision == DecisionFailed && step.OnError != policies.OnErrorContinue:
			return OutcomeFailed
		}
	}
	return OutcomeSucceeded
}
