package policies

import (
	"github.com/google/cel-go/cel"
	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/remediate/actions"
)

// File is the content of one policy file.
type File struct {
	Policies []*Policy `yaml:"policies"`
}

// Policy binds alerts to a runbook: which alerts, under which guards, which steps.
type Policy struct {
	// Name identifies the policy in metrics, the audit log and plans. Required; lower
	// case letters, digits, '-', '_' and '.'.
	Name string `yaml:"name"`
	// Description says what the policy is for.
	Description string `yaml:"description"`
	// Match lists Alertmanager matchers (`alertname=~"BlackboxTLS.*"`); an alert
	// matches when it satisfies all of them. At least one is required.
	Match []string `yaml:"match"`
	// Statuses are the alert statuses the policy acts on. Default [firing].
	Statuses []string `yaml:"statuses"`
	// Mode is dry-run or live; the effective mode is the more careful of this and the
	// main configuration's. Default: the main configuration's.
	Mode config.Mode `yaml:"mode"`
	// Guards bound how often and how far the policy acts.
	Guards Guards `yaml:"guards"`
	// SilenceWhileRunning silences the original alert in Alertmanager while a run is
	// under way (live mode only), and expires the silence when it ends. Default false.
	SilenceWhileRunning bool `yaml:"silence_while_running"`
	// Steps run in order.
	Steps []*Step `yaml:"steps"`

	// File and Line locate the policy for messages.
	File string `yaml:"-"`
	Line int    `yaml:"-"`

	matchers labels.Matchers
}

// Guards are a policy's limits. They are persisted, so that restarts change nothing.
type Guards struct {
	// Dedup starts at most one run per alert occurrence (fingerprint and startsAt).
	// Default true.
	Dedup *bool `yaml:"dedup"`
	// Cooldown is how long after a run the same policy and target do not run again.
	// Default 1h.
	Cooldown *config.Duration `yaml:"cooldown"`
	// MaxRuns caps runs per policy and target in a sliding window. Default none.
	MaxRuns *Window `yaml:"max_runs"`
	// LeaseTTL bounds how long one run may hold its target before another replica or a
	// restarted process may take it. Default 15m.
	LeaseTTL *config.Duration `yaml:"lease_ttl"`
	// Breaker opens after consecutive failed runs. Default 3 failures, open for 1h.
	Breaker *Breaker `yaml:"breaker"`
	// AntiFlap escalates instead of repeating a fix when the alert fires again within
	// this long after a successful run. Default none.
	AntiFlap *config.Duration `yaml:"anti_flap"`
	// OnResolved is what a resolved alert does to its runs: cancel (the default: a
	// queued run is dropped and a running run stops before its next mutating step),
	// verify (the policy runs for the resolved alert too, so that it can check), or
	// ignore.
	OnResolved string `yaml:"on_resolved"`
	// Target is the template naming what one run works on, for leases, cooldowns and
	// budgets. Default "{{ .Labels.instance }}".
	Target string `yaml:"target"`

	target *textTemplate
}

// Window is a count over a sliding window of time.
type Window struct {
	Count int             `yaml:"count"`
	Per   config.Duration `yaml:"per"`
}

// Breaker configures a circuit breaker.
type Breaker struct {
	Failures int             `yaml:"failures"`
	OpenFor  config.Duration `yaml:"open_for"`
}

// Budget caps how often a step's action runs under a templated key, over a sliding
// window, across all policies that name the same key.
type Budget struct {
	// Key is a template: "letsencrypt:{{ .Instance.Domain }}".
	Key string          `yaml:"key"`
	Max int             `yaml:"max"`
	Per config.Duration `yaml:"per"`

	key *textTemplate
}

// Step is one step of a policy.
type Step struct {
	// ID names the step; later steps read its facts as `<id>.<fact>`. Required.
	ID string `yaml:"id"`
	// Action is the registered action to run. Required.
	Action string `yaml:"action"`
	// With are the action's parameters: literal values, Go templates ("{{ .Instance.Host }}")
	// rendered to strings, or CEL expressions written "${ live.dns_names }" for typed values.
	With map[string]any `yaml:"with"`
	// When is a CEL condition; the step is skipped when it is false. Default: always.
	When string `yaml:"when"`
	// OnError is stop (the default: the run ends failed) or continue.
	OnError string `yaml:"on_error"`
	// Budget, when set, is reserved before the action runs.
	Budget *Budget `yaml:"budget"`

	Line int `yaml:"-"`

	spec   actions.Spec
	when   cel.Program
	params map[string]*paramValue
	deps   map[string]bool // the earlier steps whose facts it reads
}

// On-error values.
const (
	OnErrorStop     = "stop"
	OnErrorContinue = "continue"
)

// On-resolved values.
const (
	OnResolvedCancel = "cancel"
	OnResolvedVerify = "verify"
	OnResolvedIgnore = "ignore"
)

// Spec returns the declaration of the step's action.
func (s *Step) Spec() actions.Spec { return s.spec }

// Mutates reports whether the step's action changes anything.
func (s *Step) Mutates() bool { return s.spec.Mutates }

// DependsOn reports whether the step reads the facts of the step called id.
func (s *Step) DependsOn(id string) bool { return s.deps[id] }

// Matches reports whether the policy acts on an alert with these labels and status.
func (p *Policy) Matches(lset map[string]string, status string) bool {
	acts := false
	for _, s := range p.Statuses {
		acts = acts || s == status
	}
	if !acts {
		return false
	}
	for _, m := range p.matchers {
		if !m.Matches(lset[m.Name]) {
			return false
		}
	}
	return true
}

// EffectiveMode is the more careful of the policy's mode and global.
func (p *Policy) EffectiveMode(global config.Mode) config.Mode {
	if global == config.ModeLive && p.Mode != config.ModeDryRun {
		return config.ModeLive
	}
	return config.ModeDryRun
}

// Matchers returns the parsed matchers.
func (p *Policy) Matchers() labels.Matchers { return p.matchers }

// Literal returns the value of the parameter name when it is fixed at load: written as
// a literal in the policy, or the action's default when the step leaves it out. A
// template or an expression is known only at run time, and gives false.
func (s *Step) Literal(name string) (any, bool) {
	pv, ok := s.params[name]
	if !ok || pv.template != nil || pv.expr != nil {
		return nil, false
	}
	return pv.literal, true
}
