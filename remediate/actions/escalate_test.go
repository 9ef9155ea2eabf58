package actions

import (
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/remediator/remediator/internal/testpeer"
)

// nullAlertmanagerConfig routes every alert to a receiver that notifies nobody, so that
// the tests see only what Alertmanager's API holds.
const nullAlertmanagerConfig = `route:
  receiver: 'null'
receivers:
  - name: 'null'
`

const escalationRunID = "01JFK3Z8Q4W6X2M9R7T5V3B1NC"

// escalationEnv is a run of the example policy for a certificate-expiry warning.
func escalationEnv() Env {
	return Env{
		RunID:  escalationRunID,
		Policy: "tls-expiry-check",
		Step:   "escalate",
		Alert: template.Alert{
			Status: "firing",
			Labels: template.KV{
				"alertname": "BlackboxTLSCertExpiringSoonWarning",
				"instance":  "imap.example.test:993",
				"severity":  "warning",
			},
			Annotations: template.KV{
				"summary":     "TLS certificate of imap.example.test:993 expires in less than 14 days",
				"runbook_url": "https://runbooks.example.test/tls-expiry",
			},
			StartsAt:     time.Now().Add(-10 * time.Minute),
			GeneratorURL: "http://prometheus.example.test/graph",
			Fingerprint:  "8c1d2e3f4a5b6c7d",
		},
	}
}

// escalationParams are the parameters the example policy gives escalate, with the
// alertname default applied as the policy loader does.
func escalationParams() Params {
	return Params{
		"reason":    "the certificate on imap.example.test:993 expires in 5 days",
		"alertname": defaultEscalationName,
		"labels":    map[string]any{"severity": "page"},
		"duration":  time.Hour,
	}
}

func newTestAlertmanager(t *testing.T, url string) *Alertmanager {
	t.Helper()
	am, err := NewAlertmanager(url, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return am
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(testpeer.FreePort(t)))
}

func TestEscalatePostsOneAlertToAlertmanager(t *testing.T) {
	peer := testpeer.Alertmanager(t, nullAlertmanagerConfig)
	esc := NewEscalate(newTestAlertmanager(t, peer.URL()))
	env, p := escalationEnv(), escalationParams()

	before := time.Now()
	facts, err := esc.Run(t.Context(), p, env)
	if err != nil {
		t.Fatalf("escalating: %v", err)
	}

	var got testpeer.Alert
	testpeer.WaitFor(t, 10*time.Second, func() bool {
		alerts := peer.Alerts(t)
		if len(alerts) != 1 {
			t.Fatalf("Alertmanager holds %d alerts after one escalation, want 1: %+v", len(alerts), alerts)
		}
		got = alerts[0]
		return got.Status.State == "active"
	}, "the escalation never became active in Alertmanager")

	wantLabels := map[string]string{
		"alertname":          "RemediatorEscalation",
		"original_alertname": "BlackboxTLSCertExpiringSoonWarning",
		"remediator_policy":  "tls-expiry-check",
		"instance":           "imap.example.test:993",
		"severity":           "page",
	}
	if !maps.Equal(got.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", got.Labels, wantLabels)
	}
	wantAnnotations := map[string]string{
		"reason":            p.String("reason"),
		"remediator_run_id": escalationRunID,
		"runbook_url":       "https://runbooks.example.test/tls-expiry",
		"summary": "remediator needs a human for BlackboxTLSCertExpiringSoonWarning on " +
			"imap.example.test:993: " + p.String("reason"),
	}
	if !maps.Equal(got.Annotations, wantAnnotations) {
		t.Errorf("annotations = %v, want %v", got.Annotations, wantAnnotations)
	}
	if got.GeneratorURL != env.Alert.GeneratorURL {
		t.Errorf("generatorURL = %q, want the original's %q", got.GeneratorURL, env.Alert.GeneratorURL)
	}
	lo, hi := before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second)
	if got.EndsAt.Before(lo) || got.EndsAt.After(hi) {
		t.Errorf("endsAt = %s, want an hour after the run, between %s and %s", got.EndsAt, lo, hi)
	}
	wantEscalationFacts(t, facts, wantLabels, got.EndsAt)
}

// wantEscalationFacts checks that the facts say what Alertmanager received.
func wantEscalationFacts(t *testing.T, facts Facts, labels map[string]string, endsAt time.Time) {
	t.Helper()
	if facts["alertname"] != labels["alertname"] {
		t.Errorf("fact alertname = %v, want %s", facts["alertname"], labels["alertname"])
	}
	factLabels, _ := facts["labels"].(map[string]any)
	if len(factLabels) != len(labels) {
		t.Errorf("fact labels = %v, want %v", factLabels, labels)
	}
	for k, v := range labels {
		if factLabels[k] != v {
			t.Errorf("fact labels[%s] = %v, want %s", k, factLabels[k], v)
		}
	}
	// Alertmanager keeps times to the millisecond
	if got, _ := facts["ends_at"].(time.Time); got.Sub(endsAt).Abs() >= time.Millisecond {
		t.Errorf("fact ends_at = %v, want %s as Alertmanager holds it", facts["ends_at"], endsAt)
	}
}

func TestEscalateRequestIsWhatRunPosts(t *testing.T) {
	peer := testpeer.Alertmanager(t, nullAlertmanagerConfig)
	esc := NewEscalate(newTestAlertmanager(t, peer.URL()))
	env, p := escalationEnv(), escalationParams()

	req, err := esc.Request(p, env)
	if err != nil {
		t.Fatalf("describing the request: %v", err)
	}
	if _, err := esc.Run(t.Context(), p, env); err != nil {
		t.Fatalf("escalating: %v", err)
	}

	if req.Service != "alertmanager" || req.Operation != "PostAlerts" {
		t.Errorf("request is %s %s, want alertmanager PostAlerts", req.Service, req.Operation)
	}
	planned, ok := req.Input.([]PostableAlert)
	if !ok || len(planned) != 1 {
		t.Fatalf("request input = %#v, want one PostableAlert", req.Input)
	}
	posted := peer.Alerts(t)
	if len(posted) != 1 {
		t.Fatalf("Alertmanager holds %d alerts, want 1", len(posted))
	}
	if !maps.Equal(planned[0].Labels, posted[0].Labels) {
		t.Errorf("planned labels %v differ from the posted %v", planned[0].Labels, posted[0].Labels)
	}
	if !maps.Equal(planned[0].Annotations, posted[0].Annotations) {
		t.Errorf("planned annotations %v differ from the posted %v",
			planned[0].Annotations, posted[0].Annotations)
	}
	if d := planned[0].EndsAt.Sub(planned[0].StartsAt); d != time.Hour {
		t.Errorf("planned alert lasts %s, want the duration parameter, 1h", d)
	}
}

func TestEscalateRequestRefusesBadParameters(t *testing.T) {
	tests := []struct {
		name   string
		change func(Params)
		msg    string
	}{
		{
			name:   "refuses a label whose value is not a string",
			change: func(p Params) { p["labels"] = map[string]any{"severity": 3} },
			msg:    "labels.severity: want a string",
		},
		{
			name:   "refuses an annotation whose value is not a string",
			change: func(p Params) { p["annotations"] = map[string]any{"runbook_url": true} },
			msg:    "annotations.runbook_url: want a string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := escalationParams()
			tt.change(p)

			_, err := NewEscalate(nil).Request(p, escalationEnv())

			var se *StepError
			if !errors.As(err, &se) || se.Reason != ReasonInvalid || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want an invalid StepError mentioning %q", err, tt.msg)
			}
		})
	}
}

func TestEscalateFailsWithoutAlertmanager(t *testing.T) {
	tests := []struct {
		name     string
		am       func(t *testing.T) *Alertmanager
		reason   string
		sentinel error // nil when none is expected
		msg      string
	}{
		{
			name:   "reports an Alertmanager nobody listens for as unavailable",
			am:     func(t *testing.T) *Alertmanager { return newTestAlertmanager(t, closedURL(t)) },
			reason: ReasonUnavailable,
			msg:    "calling alertmanager POST /api/v2/alerts",
		},
		{
			name:     "refuses to escalate when alertmanager.url is empty",
			am:       func(t *testing.T) *Alertmanager { return newTestAlertmanager(t, "") },
			reason:   ReasonInvalid,
			sentinel: ErrNoAlertmanager,
			msg:      "alertmanager.url is not configured",
		},
		{
			name:     "refuses to escalate without any Alertmanager client",
			am:       func(*testing.T) *Alertmanager { return nil },
			reason:   ReasonInvalid,
			sentinel: ErrNoAlertmanager,
			msg:      "alertmanager.url is not configured",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			esc := NewEscalate(tt.am(t))

			facts, err := esc.Run(t.Context(), escalationParams(), escalationEnv())

			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *StepError", err)
			}
			if se.Reason != tt.reason {
				t.Errorf("reason = %s, want %s (%v)", se.Reason, tt.reason, err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
			if !strings.HasPrefix(err.Error(), "posting escalation: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say it was posting an escalation and mention %q", err, tt.msg)
			}
			if facts != nil {
				t.Errorf("facts = %v after a failure, want none", facts)
			}
		})
	}
}

func TestAlertmanagerRefusesAnInvalidEscalation(t *testing.T) {
	peer := testpeer.Alertmanager(t, nullAlertmanagerConfig)
	esc := NewEscalate(newTestAlertmanager(t, peer.URL()))
	p := escalationParams()
	p["duration"] = -time.Hour // ends before it starts

	_, err := esc.Run(t.Context(), p, escalationEnv())

	var se *StepError
	if !errors.As(err, &se) || se.Reason != ReasonInvalid {
		t.Fatalf("got %v, want an invalid StepError from Alertmanager's 400", err)
	}
	if !strings.Contains(err.Error(), "400 Bad Request") {
		t.Errorf("error %q does not carry Alertmanager's status", err)
	}
	if alerts := peer.Alerts(t); len(alerts) != 0 {
		t.Errorf("Alertmanager holds %+v after refusing the escalation, want nothing", alerts)
	}
}

func TestAlertmanagerCreatesAndExpiresSilence(t *testing.T) {
	peer := testpeer.Alertmanager(t, nullAlertmanagerConfig)
	am := newTestAlertmanager(t, peer.URL())
	now := time.Now()
	want := Silence{
		Matchers: []SilenceMatcher{
			{Name: "alertname", Value: "BlackboxTLSCertExpiringSoonWarning", IsEqual: true},
			{Name: "instance", Value: "imap.example.test:993", IsEqual: true},
		},
		StartsAt:  now,
		EndsAt:    now.Add(time.Hour),
		CreatedBy: "remediator",
		Comment:   "remediator run " + escalationRunID + " of policy tls-expiry-check is under way",
	}

	id, err := am.CreateSilence(t.Context(), want)
	if err != nil {
		t.Fatalf("creating the silence: %v", err)
	}
	if id == "" {
		t.Fatal("Alertmanager answered without a silence id")
	}

	got := findSilence(t, peer, id)
	if got.Status.State != "active" {
		t.Errorf("silence state = %s, want active", got.Status.State)
	}
	wantSilenceMatchers(t, got.Matchers, want.Matchers)
	if got.CreatedBy != want.CreatedBy || got.Comment != want.Comment {
		t.Errorf("silence by %q saying %q, want by %q saying %q", got.CreatedBy, got.Comment,
			want.CreatedBy, want.Comment)
	}

	if err := am.ExpireSilence(t.Context(), id); err != nil {
		t.Fatalf("expiring the silence: %v", err)
	}
	if got := findSilence(t, peer, id); got.Status.State != "expired" {
		t.Errorf("silence state after expiring = %s, want expired", got.Status.State)
	}
}

func TestAlertmanagerSilenceCallsFail(t *testing.T) {
	silence := Silence{
		Matchers:  []SilenceMatcher{{Name: "instance", Value: "imap.example.test:993", IsEqual: true}},
		StartsAt:  time.Now(),
		EndsAt:    time.Now().Add(time.Hour),
		CreatedBy: "remediator",
		Comment:   "test",
	}
	tests := []struct {
		name     string
		url      func(t *testing.T) string
		call     func(ctx context.Context, am *Alertmanager) error
		reason   string
		sentinel error
	}{
		{
			name: "reports a silence that cannot reach Alertmanager as unavailable",
			url:  closedURL,
			call: func(ctx context.Context, am *Alertmanager) error {
				_, err := am.CreateSilence(ctx, silence)
				return err
			},
			reason: ReasonUnavailable,
		},
		{
			name: "refuses to create a silence when alertmanager.url is empty",
			url:  func(*testing.T) string { return "" },
			call: func(ctx context.Context, am *Alertmanager) error {
				_, err := am.CreateSilence(ctx, silence)
				return err
			},
			reason:   ReasonInvalid,
			sentinel: ErrNoAlertmanager,
		},
		{
			name: "refuses to expire a silence when alertmanager.url is empty",
			url:  func(*testing.T) string { return "" },
			call: func(ctx context.Context, am *Alertmanager) error {
				return am.ExpireSilence(ctx, "4f3c2b1a-0000-4000-8000-000000000000")
			},
			reason:   ReasonInvalid,
			sentinel: ErrNoAlertmanager,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context(), newTestAlertmanager(t, tt.url(t)))

			var se *StepError
			if !errors.As(err, &se) || se.Reason != tt.reason {
				t.Fatalf("got %v, want a StepError with reason %s", err, tt.reason)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
		})
	}
}

func findSilence(t *testing.T, peer *testpeer.AM, id string) testpeer.Silence {
	t.Helper()
	for _, s := range peer.Silences(t) {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("Alertmanager lists no silence %s", id)
	return testpeer.Silence{}
}

func wantSilenceMatchers(t *testing.T, got []testpeer.Matcher, want []SilenceMatcher) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("silence has matchers %+v, want %+v", got, want)
	}
	byName := map[string]testpeer.Matcher{}
	for _, m := range got {
		byName[m.Name] = m
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			t.Errorf("silence has no matcher on %s", w.Name)
		case g.Value != w.Value || g.IsRegex || g.IsEqual == nil || !*g.IsEqual:
			t.Errorf("matcher on %s = %q (regex %v, equal %v), want %s=%q", w.Name, g.Value, g.IsRegex,
				g.IsEqual, w.Name, w.Value)
		}
	}
}

func TestEscalateRefusesToOverrideWhatRemediatorSets(t *testing.T) {
	env := Env{RunID: "r1", Policy: "p", Alert: template.Alert{Labels: template.KV{"alertname": "Orig"}}}
	cases := []struct {
		name   string
		params Params
		want   string
	}{
		{"refuses an alertname label that would route back", Params{"reason": "x", "alertname": "E",
			"labels": map[string]any{"alertname": "Orig"}}, "labels.alertname: set it with the alertname parameter"},
		{"refuses to replace the policy label", Params{"reason": "x", "alertname": "E",
			"labels": map[string]any{"remediator_policy": "other"}}, "labels.remediator_policy: reserved, remediator sets it"},
		{"refuses to replace the run id", Params{"reason": "x", "alertname": "E",
			"annotations": map[string]any{"remediator_run_id": "r2"}}, "annotations.remediator_run_id: reserved, remediator sets it"},
		{"refuses an empty alertname", Params{"reason": "x", "alertname": ""}, "alertname: must not be empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEscalate(nil).Request(tc.params, env)
			var se *StepError
			if !errors.As(err, &se) || se.Reason != ReasonInvalid || err.Error() != tc.want {
				t.Fatalf("error %v, want invalid %q", err, tc.want)
			}
		})
	}
}
