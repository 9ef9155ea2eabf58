package remediate

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/internal/testpeer"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
)

// callLog records every action run, in order, across the fake actions of a test.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	step   string
	action string
	params actions.Params
}

func (l *callLog) add(action string, p actions.Params, env actions.Env) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, call{step: env.Step, action: action, params: p})
}

// steps returns the ids of the steps whose actions ran, in order.
func (l *callLog) steps() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.calls))
	for i, c := range l.calls {
		out[i] = c.step
	}
	return out
}

// paramsOf returns the parameters the action of step ran with.
func (l *callLog) paramsOf(t *testing.T, step string) actions.Params {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.calls {
		if c.step == step {
			return c.params
		}
	}
	t.Fatalf("step %s never ran its action", step)
	return nil
}

// fakeRead is a read-only action that returns fixed facts, or fails with err.
type fakeRead struct {
	name  string
	facts actions.Facts
	err   error
	log   *callLog
}

func (f *fakeRead) Spec() actions.Spec {
	return actions.Spec{
		Name: f.name,
		Doc:  "Returns fixed facts for tests.",
		Params: []actions.Param{
			{Name: "input", Type: actions.String},
			{Name: "items", Type: actions.StringList},
		},
		Facts: []actions.Fact{
			{Name: "value", Type: actions.String},
			{Name: "count", Type: actions.Int},
			{Name: "list", Type: actions.StringList},
		},
	}
}

func (f *fakeRead) Request(p actions.Params, _ actions.Env) (actions.Request, error) {
	return actions.Request{Service: "fake", Operation: "Read", Input: map[string]any(p)}, nil
}

func (f *fakeRead) Run(_ context.Context, p actions.Params, env actions.Env) (actions.Facts, error) {
	f.log.add(f.name, p, env)
	if f.err != nil {
		return nil, f.err
	}
	return f.facts, nil
}

// fakeMutate is a mutating action that counts its runs.
type fakeMutate struct {
	log *callLog
	// during, when set, is called inside Run, while the run is under way.
	during func()

	mu     sync.Mutex
	runs   int
	params []actions.Params
}

func (f *fakeMutate) Spec() actions.Spec {
	return actions.Spec{
		Name:    "fake.mutate",
		Mutates: true,
		Doc:     "Changes something outside remediator, for tests.",
		Params:  []actions.Param{{Name: "target", Type: actions.String, Required: true}},
		Facts:   []actions.Fact{{Name: "done", Type: actions.Bool}},
	}
}

func (f *fakeMutate) Request(p actions.Params, _ actions.Env) (actions.Request, error) {
	return actions.Request{Service: "fake", Operation: "Mutate",
		Input: map[string]any{"target": p.String("target")}}, nil
}

func (f *fakeMutate) Run(_ context.Context, p actions.Params, env actions.Env) (actions.Facts, error) {
	f.mu.Lock()
	f.runs++
	f.params = append(f.params, p)
	f.mu.Unlock()
	f.log.add("fake.mutate", p, env)
	if f.during != nil {
		f.during()
	}
	return actions.Facts{"done": true}, nil
}

func (f *fakeMutate) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs
}

// engineFixture is an engine over fake actions and policies written in a test.
type engineFixture struct {
	engine  *Engine
	metrics *prometheus.Registry
	log     *callLog
	mutate  *fakeMutate
}

// probeError is what fake.fail fails with.
var probeError = &actions.StepError{Reason: actions.ReasonUnavailable,
	Err: errors.New("dialing imap.example.test:993: connection refused")}

// newEngineFixture loads policyYAML against fake.read, fake.fail and fake.mutate and
// returns an engine in mode, with its metrics on a registry of its own.
func newEngineFixture(t *testing.T, mode config.Mode, policyYAML string) *engineFixture {
	t.Helper()
	return newEngineFixtureWith(t, &Rules{Mode: mode}, policyYAML)
}

// newEngineFixtureWith is newEngineFixture with more of the rules chosen: their
// policies and actions are filled in.
func newEngineFixtureWith(t *testing.T, rules *Rules, policyYAML string) *engineFixture {
	t.Helper()
	log := &callLog{}
	mutate := &fakeMutate{log: log}
	reg := actions.NewRegistry(
		&fakeRead{name: "fake.read", log: log, facts: actions.Facts{
			"value": "imap.example.test", "count": int64(3),
			"list": []string{"imap.example.test", "mail.example.test"},
		}},
		&fakeRead{name: "fake.fail", log: log, err: probeError},
		mutate,
	)
	ps, err := policies.Parse("test.yaml", []byte(policyYAML), reg)
	if err != nil {
		t.Fatalf("loading the test policies:\n%v", err)
	}
	rules.Policies, rules.Actions = &policies.Set{Policies: ps, Files: []string{"test.yaml"}}, reg
	metrics := prometheus.NewRegistry()
	return &engineFixture{
		engine:  NewEngine(rules, metrics, zap.NewNop()),
		metrics: metrics,
		log:     log,
		mutate:  mutate,
	}
}

// testAlert is a certificate-expiry alert for imap.example.test:993.
func testAlert(status string) Alert {
	return testAlertFor(status, "imap.example.test:993")
}

// testAlertFor is a certificate-expiry alert for instance.
func testAlertFor(status, instance string) Alert {
	labels := template.KV{
		"alertname": "BlackboxTLSCertExpiringSoonWarning",
		"instance":  instance,
		"severity":  "warning",
	}
	ls := model.LabelSet{}
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return Alert{
		Alert: template.Alert{
			Status:      status,
			Labels:      labels,
			Annotations: template.KV{"summary": "certificate expires soon"},
			StartsAt:    time.Now().Add(-time.Hour),
			Fingerprint: ls.Fingerprint().String(),
		},
		Receiver:   "remediator",
		ReceivedAt: time.Now(),
	}
}

// planOne plans a for the fixture's policies and returns the run of the only policy.
func (f *engineFixture) planOne(t *testing.T, a Alert) *RunReport {
	t.Helper()
	plans := f.engine.Plan(t.Context(), []Alert{a})
	if len(plans) != 1 || len(plans[0].Runs) != 1 {
		t.Fatalf("plan = %+v, want one alert with one run", plans)
	}
	return plans[0].Runs[0]
}

// counter reads one series of a counter vector, failing the test when it does not exist.
func (f *engineFixture) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := f.metrics.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func (f *engineFixture) steps(t *testing.T, action string, d Decision, mode config.Mode) float64 {
	t.Helper()
	return f.counter(t, "remediator_steps_total",
		map[string]string{"action": action, "outcome": string(d), "mode": string(mode)})
}

func (f *engineFixture) runs(t *testing.T, policy, outcome string) float64 {
	t.Helper()
	return f.counter(t, "remediator_runs_total", map[string]string{"policy": policy, "outcome": outcome})
}

// wantDecisions checks each step's decision, in order.
func wantDecisions(t *testing.T, rep *RunReport, want ...Decision) {
	t.Helper()
	got := make([]Decision, len(rep.Steps))
	for i, s := range rep.Steps {
		got[i] = s.Decision
	}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions = %v, want %v (steps %+v)", got, want, rep.Steps)
	}
}

const chainPolicy = `policies:
  - name: chain
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: first
        action: fake.read
      - id: second
        action: fake.read
        when: first.count == 3 && first.value == "imap.example.test"
        with:
          input: "{{ .Facts.first.value }}:{{ .Instance.Port }}"
          items: "${ first.list }"
      - id: third
        action: fake.read
        when: second.ok && size(second.list) == 2
`

func TestEngineRunsStepsInOrderWithEarlierFacts(t *testing.T) {
	f := newEngineFixture(t, config.ModeDryRun, chainPolicy)

	rep := f.planOne(t, testAlert(StatusFiring))

	wantDecisions(t, rep, DecisionExecuted, DecisionExecuted, DecisionExecuted)
	if got := f.log.steps(); !slices.Equal(got, []string{"first", "second", "third"}) {
		t.Errorf("actions ran for steps %v, want first, second, third", got)
	}
	p := f.log.paramsOf(t, "second")
	if got := p.String("input"); got != "imap.example.test:993" {
		t.Errorf("templated input = %q, want the first step's value and the instance's port", got)
	}
	if got := p.Strings("items"); !slices.Equal(got, []string{"imap.example.test", "mail.example.test"}) {
		t.Errorf("CEL items = %#v, want the first step's list as []string", p["items"])
	}
	if rep.Outcome != OutcomeSucceeded || rep.Policy != "chain" || rep.Mode != config.ModeDryRun {
		t.Errorf("run %s of %s in %s, want succeeded of chain in dry-run", rep.Outcome, rep.Policy, rep.Mode)
	}
	if got := rep.Steps[1].Facts["value"]; got != "imap.example.test" {
		t.Errorf("report facts of second = %v, want the action's", rep.Steps[1].Facts)
	}
}

func TestEngineSkipsStepWhoseConditionIsFalse(t *testing.T) {
	const when = `first.count > 10`
	f := newEngineFixture(t, config.ModeDryRun, `policies:
  - name: skip
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: first
        action: fake.read
      - id: second
        action: fake.read
        when: `+when+`
      - id: third
        action: fake.read
        when: second.decision == "skipped" && !second.ok
`)

	rep := f.planOne(t, testAlert(StatusFiring))

	wantDecisions(t, rep, DecisionExecuted, DecisionSkipped, DecisionExecuted)
	s := rep.Steps[1]
	if s.Reason != "condition is false" || s.Condition != when {
		t.Errorf("skipped step has reason %q and condition %q, want %q and %q",
			s.Reason, s.Condition, "condition is false", when)
	}
	if s.Request != nil || s.Facts != nil {
		t.Errorf("skipped step has request %+v and facts %v, want neither", s.Request, s.Facts)
	}
	if got := f.log.steps(); !slices.Equal(got, []string{"first", "third"}) {
		t.Errorf("actions ran for steps %v, want first and third", got)
	}
	if rep.Outcome != OutcomeSucceeded {
		t.Errorf("outcome = %s, want succeeded: a skipped step is no failure", rep.Outcome)
	}
}

func TestEngineHandlesFailedSteps(t *testing.T) {
	tests := []struct {
		name      string
		onError   string
		decisions []Decision
		ran       []string
		outcome   string
	}{
		{
			name:      "ends the run failed when a step fails with on_error stop",
			onError:   "stop",
			decisions: []Decision{DecisionFailed},
			ran:       []string{"probe"},
			outcome:   OutcomeFailed,
		},
		{
			name:      "ends the run failed when a step fails without on_error",
			onError:   "",
			decisions: []Decision{DecisionFailed},
			ran:       []string{"probe"},
			outcome:   OutcomeFailed,
		},
		{
			name:      "goes on with the failure's facts when a step fails with on_error continue",
			onError:   "continue",
			decisions: []Decision{DecisionFailed, DecisionExecuted},
			ran:       []string{"probe", "after"},
			outcome:   OutcomeSucceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onError := ""
			if tt.onError != "" {
				onError = "\n        on_error: " + tt.onError
			}
			f := newEngineFixture(t, config.ModeDryRun, `policies:
  - name: failing
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: probe
        action: fake.fail`+onError+`
      - id: after
        action: fake.read
        when: >-
          !probe.ok && probe.decision == "failed" &&
          probe.error.contains("connection refused")
`)

			rep := f.planOne(t, testAlert(StatusFiring))

			wantDecisions(t, rep, tt.decisions...)
			if got := f.log.steps(); !slices.Equal(got, tt.ran) {
				t.Errorf("actions ran for steps %v, want %v", got, tt.ran)
			}
			if rep.Outcome != tt.outcome {
				t.Errorf("outcome = %s, want %s", rep.Outcome, tt.outcome)
			}
			s := rep.Steps[0]
			if s.Reason != actions.ReasonUnavailable || s.Error != probeError.Error() {
				t.Errorf("failed step has reason %q and error %q, want %q and %q",
					s.Reason, s.Error, actions.ReasonUnavailable, probeError.Error())
			}
		})
	}
}

const mutatePolicy = `policies:
  - name: fix
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']%s
    steps:
      - id: look
        action: fake.read
      - id: act
        action: fake.mutate
        with:
          target: "{{ .Facts.look.value }}"
      - id: confirm
        action: fake.read
        when: act.done
      - id: report
        action: fake.read
        when: confirm.ok
`

func TestEnginePlansMutatingStepsInDryRun(t *testing.T) {
	f := newEngineFixture(t, config.ModeDryRun, strings.Replace(mutatePolicy, "%s", "", 1))

	rep := f.planOne(t, testAlert(StatusFiring))
	f.engine.Process(t.Context(), testAlert(StatusFiring))

	if n := f.mutate.count(); n != 0 {
		t.Fatalf("the mutating action ran %d times in dry-run, want never", n)
	}
	wantDecisions(t, rep, DecisionExecuted, DecisionPlanned, DecisionSkipped, DecisionSkipped)
	act := rep.Steps[1]
	wantReq := actions.Request{Service: "fake", Operation: "Mutate",
		Input: map[string]any{"target": "imap.example.test"}}
	if !reflect.DeepEqual(act.Request, &wantReq) {
		t.Errorf("planned request = %+v, want %+v", act.Request, wantReq)
	}
	if act.Reason != "dry-run" || !act.Mutates || act.Facts != nil {
		t.Errorf("planned step = %+v, want mutating, reason dry-run, no facts", act)
	}
	for i, dep := range map[int]string{2: "act", 3: "confirm"} {
		if want := `reads facts of step "` + dep + `", which was only planned`; rep.Steps[i].Reason != want {
			t.Errorf("step %s skipped with %q, want %q", rep.Steps[i].ID, rep.Steps[i].Reason, want)
		}
	}
	if got := f.log.steps(); !slices.Equal(got, []string{"look", "look"}) {
		t.Errorf("actions ran for steps %v, want only look, once per run", got)
	}
	if n := f.steps(t, "fake.mutate", DecisionPlanned, config.ModeDryRun); n != 1 {
		t.Errorf("planned fake.mutate steps in dry-run = %v, want 1", n)
	}
}

func TestEngineRunsMutatingStepOnceInLiveMode(t *testing.T) {
	f := newEngineFixture(t, config.ModeLive, strings.Replace(mutatePolicy, "%s", "", 1))

	f.engine.Process(t.Context(), testAlert(StatusFiring))

	if n := f.mutate.count(); n != 1 {
		t.Fatalf("the mutating action ran %d times in live mode, want once", n)
	}
	if got := f.mutate.params[0].String("target"); got != "imap.example.test" {
		t.Errorf("target = %q, want the look step's value", got)
	}
	if got := f.log.steps(); !slices.Equal(got, []string{"look", "act", "confirm", "report"}) {
		t.Errorf("actions ran for steps %v, want all four in order", got)
	}
	for _, c := range []struct {
		action string
		d      Decision
		want   float64
	}{
		{"fake.mutate", DecisionExecuted, 1},
		{"fake.mutate", DecisionPlanned, 0},
		{"fake.read", DecisionExecuted, 3},
		{"fake.read", DecisionSkipped, 0},
	} {
		if n := f.steps(t, c.action, c.d, config.ModeLive); n != c.want {
			t.Errorf("%s steps %s in live mode = %v, want %v", c.action, c.d, n, c.want)
		}
	}
	if n := f.runs(t, "fix", OutcomeSucceeded); n != 1 {
		t.Errorf("succeeded runs of fix = %v, want 1", n)
	}
}

func TestEngineModeIsTheMoreCarefulOfPolicyAndGlobal(t *testing.T) {
	tests := []struct {
		name   string
		global config.Mode
		policy string // the policy's mode key, empty for none
		want   config.Mode
	}{
		{"plans a policy in dry-run under a live global mode", config.ModeLive, "dry-run", config.ModeDryRun},
		{"keeps a live policy in dry-run under a dry-run global mode", config.ModeDryRun, "live",
			config.ModeDryRun},
		{"plans a policy without a mode under a dry-run global mode", config.ModeDryRun, "",
			config.ModeDryRun},
		{"runs a policy without a mode under a live global mode", config.ModeLive, "", config.ModeLive},
		{"runs a live policy under a live global mode", config.ModeLive, "live", config.ModeLive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := ""
			if tt.policy != "" {
				mode = "\n    mode: " + tt.policy
			}
			f := newEngineFixture(t, tt.global, strings.Replace(mutatePolicy, "%s", mode, 1))

			f.engine.Process(t.Context(), testAlert(StatusFiring))

			wantRuns, wantDecision := 0, DecisionPlanned
			if tt.want == config.ModeLive {
				wantRuns, wantDecision = 1, DecisionExecuted
			}
			if n := f.mutate.count(); n != wantRuns {
				t.Errorf("the mutating action ran %d times, want %d", n, wantRuns)
			}
			for _, m := range []config.Mode{config.ModeDryRun, config.ModeLive} {
				want := 0.0
				if m == tt.want {
					want = 1
				}
				if n := f.steps(t, "fake.mutate", wantDecision, m); n != want {
					t.Errorf("fake.mutate steps %s in %s = %v, want %v", wantDecision, m, n, want)
				}
			}
		})
	}
}

func TestEnginePlanNeverMutatesEvenInLiveMode(t *testing.T) {
	f := newEngineFixture(t, config.ModeLive, strings.Replace(mutatePolicy, "%s", "\n    mode: live", 1))

	rep := f.planOne(t, testAlert(StatusFiring))

	if n := f.mutate.count(); n != 0 {
		t.Fatalf("Plan ran the mutating action %d times, want never", n)
	}
	if rep.Mode != config.ModeDryRun {
		t.Errorf("plan run mode = %s, want dry-run", rep.Mode)
	}
	wantDecisions(t, rep, DecisionExecuted, DecisionPlanned, DecisionSkipped, DecisionSkipped)
	// a plan is no run: it counts nothing
	if n := f.runs(t, "fix", OutcomeSucceeded) + f.runs(t, "fix", OutcomeFailed); n != 0 {
		t.Errorf("runs counted after a plan = %v, want 0", n)
	}
	for _, m := range []config.Mode{config.ModeDryRun, config.ModeLive} {
		if n := f.steps(t, "fake.mutate", DecisionPlanned, m); n != 0 {
			t.Errorf("planned fake.mutate steps in %s after a plan = %v, want 0", m, n)
		}
	}
}

func TestEngineMatchesAlertStatus(t *testing.T) {
	tests := []struct {
		name     string
		statuses string // the policy's statuses key, empty for none
		status   string
		want     int
	}{
		{"runs a policy without statuses for a firing alert", "", StatusFiring, 1},
		{"does not run a policy without statuses for a resolved alert", "", StatusResolved, 0},
		{"runs a policy for resolved alerts for a resolved alert", "[resolved]", StatusResolved, 1},
		{"does not run a policy for resolved alerts for a firing alert", "[resolved]", StatusFiring, 0},
		{"runs a policy for both statuses for a resolved alert", "[firing, resolved]", StatusResolved, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			statuses := ""
			if tt.statuses != "" {
				statuses = "\n    statuses: " + tt.statuses
			}
			f := newEngineFixture(t, config.ModeLive, `policies:
  - name: by-status
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']`+statuses+`
    steps:
      - id: look
        action: fake.read
`)
			a := testAlert(tt.status)

			plans := f.engine.Plan(t.Context(), []Alert{a})
			f.engine.Process(t.Context(), a)

			if len(plans) != 1 || len(plans[0].Runs) != tt.want {
				t.Errorf("plan = %+v, want %d runs", plans, tt.want)
			}
			if plans[0].Alert.Status != tt.status {
				t.Errorf("plan for an alert with status %s, want %s", plans[0].Alert.Status, tt.status)
			}
			if n := f.runs(t, "by-status", OutcomeSucceeded); n != float64(tt.want) {
				t.Errorf("runs = %v, want %d", n, tt.want)
			}
			if n := len(f.log.steps()); n != 2*tt.want {
				t.Errorf("actions ran %d times for a plan and a run, want %d", n, 2*tt.want)
			}
		})
	}
}

func TestEngineRunsOnlyMatchingPolicies(t *testing.T) {
	f := newEngineFixture(t, config.ModeLive, `policies:
  - name: for-imap
    match: ['instance="imap.example.test:993"']
    steps:
      - id: look
        action: fake.read
  - name: for-smtp
    match: ['instance="smtp.example.test:465"']
    steps:
      - id: look
        action: fake.fail
  - name: for-warnings
    match: ['severity="warning"', 'alertname!="Watchdog"']
    steps:
      - id: act
        action: fake.mutate
        with:
          target: "{{ .Labels.instance }}"
`)

	plans := f.engine.Plan(t.Context(), []Alert{testAlert(StatusFiring)})

	var names []string
	for _, r := range plans[0].Runs {
		names = append(names, r.Policy)
	}
	if !slices.Equal(names, []string{"for-imap", "for-warnings"}) {
		t.Errorf("plan ran policies %v, want for-imap and for-warnings in file order", names)
	}
}

func TestEngineMetricsExistAtZeroBeforeAnyRun(t *testing.T) {
	f := newEngineFixture(t, config.ModeLive, `policies:
  - name: one
    match: ['alertname="A"']
    steps:
      - id: look
        action: fake.read
  - name: two
    match: ['alertname="B"']
    steps:
      - id: act
        action: fake.mutate
        with:
          target: x
`)

	for _, policy := range []string{"one", "two"} {
		for _, o := range outcomes {
			if n := f.runs(t, policy, o); n != 0 {
				t.Errorf("runs of %s %s = %v before any run, want 0", policy, o, n)
			}
		}
	}
	for _, action := range []string{"fake.read", "fake.fail", "fake.mutate"} {
		for _, d := range decisions {
			for _, m := range []config.Mode{config.ModeDryRun, config.ModeLive} {
				if n := f.steps(t, action, d, m); n != 0 {
					t.Errorf("%s steps %s in %s = %v before any run, want 0", action, d, m, n)
				}
			}
		}
	}
	if n, err := testutil.GatherAndCount(f.metrics, "remediator_runs_total"); err != nil || n != 2*len(outcomes) {
		t.Errorf("remediator_runs_total has %d series (%v), want 2 policies by %d outcomes", n, err, len(outcomes))
	}
	if n, err := testutil.GatherAndCount(f.metrics, "remediator_steps_total"); err != nil ||
		n != 3*len(decisions)*2 {
		t.Errorf("remediator_steps_total has %d series (%v), want 3 actions by %d decisions by 2 modes",
			n, err, len(decisions))
	}
}

func TestEngineCountsRunsAndSteps(t *testing.T) {
	f := newEngineFixture(t, config.ModeLive, `policies:
  - name: stops
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: probe
        action: fake.fail
      - id: never
        action: fake.read
  - name: goes-on
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: probe
        action: fake.fail
        on_error: continue
      - id: skip
        action: fake.read
        when: probe.ok
      - id: look
        action: fake.read
`)

	// two targets, so that no guard keeps the second run from starting
	f.engine.Process(t.Context(), testAlertFor(StatusFiring, "imap.example.test:993"))
	f.engine.Process(t.Context(), testAlertFor(StatusFiring, "smtp.example.test:465"))

	runs := []struct {
		policy, outcome string
		want            float64
	}{
		{"stops", OutcomeFailed, 2},
		{"stops", OutcomeSucceeded, 0},
		{"goes-on", OutcomeSucceeded, 2},
		{"goes-on", OutcomeFailed, 0},
	}
	for _, c := range runs {
		if n := f.runs(t, c.policy, c.outcome); n != c.want {
			t.Errorf("runs of %s %s = %v, want %v", c.policy, c.outcome, n, c.want)
		}
	}
	steps := []struct {
		action string
		d      Decision
		want   float64
	}{
		{"fake.fail", DecisionFailed, 4},
		{"fake.read", DecisionSkipped, 2},
		{"fake.read", DecisionExecuted, 2},
		{"fake.mutate", DecisionExecuted, 0},
	}
	for _, c := range steps {
		if n := f.steps(t, c.action, c.d, config.ModeLive); n != c.want {
			t.Errorf("%s steps %s in live mode = %v, want %v", c.action, c.d, n, c.want)
		}
		if n := f.steps(t, c.action, c.d, config.ModeDryRun); n != 0 {
			t.Errorf("%s steps %s in dry-run = %v, want 0 under a live global mode", c.action, c.d, n)
		}
	}
}

func TestEngineReloadSwapsPoliciesAndCreatesTheirSeries(t *testing.T) {
	f := newEngineFixture(t, config.ModeLive, `policies:
  - name: old
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: look
        action: fake.read
`)
	ps, err := policies.Parse("new.yaml", []byte(`policies:
  - name: new
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    steps:
      - id: probe
        action: fake.fail
`), f.engine.Rules().Actions)
	if err != nil {
		t.Fatal(err)
	}

	f.engine.Reload(&Rules{Policies: &policies.Set{Policies: ps}, Mode: config.ModeLive,
		Actions: f.engine.Rules().Actions})
	if n := f.runs(t, "new", OutcomeFailed); n != 0 {
		t.Errorf("failed runs of the reloaded policy = %v before any run, want 0", n)
	}
	f.engine.Process(t.Context(), testAlert(StatusFiring))

	if n := f.runs(t, "new", OutcomeFailed); n != 1 {
		t.Errorf("failed runs of the reloaded policy = %v, want 1", n)
	}
	if n := f.runs(t, "old", OutcomeSucceeded); n != 0 {
		t.Errorf("runs of the replaced policy = %v, want 0", n)
	}
}

// nullAlertmanagerConfig routes every alert to a receiver that notifies nobody.
const nullAlertmanagerConfig = `route:
  receiver: 'null'
receivers:
  - name: 'null'
`

const silencePolicy = `policies:
  - name: quiet-fix
    match: ['alertname=~"BlackboxTLSCertExpiringSoon.*"']
    silence_while_running: true
    steps:
      - id: act
        action: fake.mutate
        with:
          target: "{{ .Labels.instance }}"
`

func TestEngineSilencesAlertWhileLiveRunGoesOn(t *testing.T) {
	peer := testpeer.Alertmanager(t, nullAlertmanagerConfig)
	am, err := actions.NewAlertmanager(peer.URL(), "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := newEngineFixtureWith(t, &Rules{Mode: config.ModeLive, Alertmanager: am}, silencePolicy)
	a := testAlert(StatusFiring)
	peer.PostAlerts(t, []testpeer.PostableAlert{{Labels: a.Labels, StartsAt: a.StartsAt}})
	var during []testpeer.Silence
	f.mutate.during = func() {
		during = peer.Silences(t)
		testpeer.WaitFor(t, 10*time.Second, func() bool {
			alerts := peer.Alerts(t)
			return len(alerts) == 1 && alerts[0].Status.State == "suppressed"
		}, "the original alert was never silenced while the run went on")
	}

	f.engine.Process(t.Context(), a)

	if f.mutate.count() != 1 {
		t.Fatalf("the mutating action ran %d times, want once", f.mutate.count())
	}
	if len(during) != 1 || during[0].Status.State != "active" {
		t.Fatalf("silences while running = %+v, want one active", during)
	}
	wantMatchers := map[string]string{}
	for _, m := range during[0].Matchers {
		if m.IsRegex || (m.IsEqual != nil && !*m.IsEqual) {
			t.Errorf("matcher %+v is not an equality", m)
		}
		wantMatchers[m.Name] = m.Value
	}
	if !maps.Equal(wantMatchers, a.Labels) {
		t.Errorf("silence matches %v, want every label of the alert %v", wantMatchers, a.Labels)
	}
	after := peer.Silences(t)
	if len(after) != 1 || after[0].ID != during[0].ID || after[0].Status.State != "expired" {
		t.Errorf("silences after the run = %+v, want the same one, expired", after)
	}
}

func TestEngineOnlyPlansTheSilenceInDryRun(t *testing.T) {
	peer := testpeer.Alertmanager(t, nullAlertmanagerConfig)
	am, err := actions.NewAlertmanager(peer.URL(), "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := newEngineFixtureWith(t, &Rules{Mode: config.ModeDryRun, Alertmanager: am}, silencePolicy)

	rep := f.planOne(t, testAlert(StatusFiring))
	f.engine.Process(t.Context(), testAlert(StatusFiring))

	if rep.Silence == nil || rep.Silence.Decision != DecisionPlanned || rep.Silence.ID != "" {
		t.Errorf("silence report = %+v, want planned without an id", rep.Silence)
	}
	if s := peer.Silences(t); len(s) != 0 {
		t.Errorf("Alertmanager holds silences %+v after dry-run, want none", s)
	}
	if n := f.mutate.count(); n != 0 {
		t.Errorf("the mutating action ran %d times in dry-run, want never", n)
	}
}
