package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/remediator/remediator/internal/testpeer"
	"github.com/remediator/remediator/internal/testtls"
)

// Files of the repository the tests run against, relative to this package.
const (
	exampleConfig       = "../../examples/remediator.yml"
	examplePolicy       = "../../policies/example-tls-expiry.yaml"
	firingNotification  = "../../testdata/notifications/alertmanager-0.35-firing.json"
	notificationAddress = "smtp-out.example.test:465"
	examplePolicyName   = "tls-expiry-check"
	escalationAlertname = "RemediatorEscalation"
)

// nullRouteConfig routes every alert to a receiver that notifies nobody, so that the
// tests see only what Alertmanager's API holds.
const nullRouteConfig = `route:
  receiver: 'null'
receivers:
  - name: 'null'
`

// runCommand runs remediator with args and returns its exit status and output.
func runCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func absPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckPolicies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "typo.yaml")
	writeFile(t, badPolicy, `policies:
  - name: typo
    match: ['alertname="BlackboxTLSCertExpiringSoonWarning"']
    steps:
      - id: live
        action: tls.prob
        with:
          address: "{{ .Instance.Address }}"
`)
	badConfig := filepath.Join(dir, "remediator.yml")
	writeFile(t, badConfig, "policy_files:\n  - typo.yaml\n")

	tests := []struct {
		name   string
		config string
		code   int
		stdout []string // lines that must appear
		stderr []string
	}{
		{
			name:   "accepts the example configuration and names its policy",
			config: exampleConfig,
			code:   0,
			stdout: []string{
				exampleConfig + ": OK, mode dry-run, 1 policy in 1 file",
				"  " + examplePolicyName + " (../../policies/example-tls-expiry.yaml:5): 2 steps, mode dry-run",
			},
		},
		{
			name:   "refuses an unknown action and suggests the one meant",
			config: badConfig,
			code:   1,
			stderr: []string{
				"loading policies:",
				badPolicy + `:6: policies[0].steps[0].action: unknown action "tls.prob" (did you mean "tls.probe"?)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCommand(t, "check", "--config.file="+tt.config)

			if code != tt.code {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			wantLines(t, "stdout", stdout, tt.stdout)
			wantLines(t, "stderr", stderr, tt.stderr)
			if tt.code != 0 && stdout != "" {
				t.Errorf("stdout = %q for a failed check, want nothing", stdout)
			}
			if want := strings.Join(tt.stderr, "\n") + "\n"; tt.code != 0 && stderr != want {
				t.Errorf("stderr = %q, want exactly %q", stderr, want)
			}
		})
	}
}

// wantLines checks that every line of want is a whole line of out.
func wantLines(t *testing.T, what, out string, want []string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("%s has no line %q; it is:\n%s", what, w, out)
		}
	}
}

// expiringEndpoint starts an implicit-TLS server on loopback whose certificate, signed by
// a CA no system trusts, has five whole days left.
func expiringEndpoint(t *testing.T) (*testtls.Server, *testtls.Cert) {
	t.Helper()
	// the example policy sets no ca_file, so the probe cannot verify this CA's leaves
	ca := testtls.NewCA(t)
	cert := ca.Leaf(t, testtls.LeafOptions{
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
		NotAfter: time.Now().Add(5*24*time.Hour + time.Hour),
	})
	return testtls.Serve(t, testtls.ImplicitTLS, cert), cert
}

// notificationFor is the webhook body Alertmanager 0.35 sent for a certificate-expiry
// warning, with the instance label, and the fingerprint that follows from it, replaced
// to name addr.
func notificationFor(t *testing.T, addr string) []byte {
	t.Helper()
	raw, err := os.ReadFile(firingNotification)
	if err != nil {
		t.Fatal(err)
	}
	var n struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Fingerprint string            `json:"fingerprint"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(raw, &n); err != nil || len(n.Alerts) != 1 {
		t.Fatalf("reading %s: %v, %d alerts", firingNotification, err, len(n.Alerts))
	}
	labels := model.LabelSet{}
	for k, v := range n.Alerts[0].Labels {
		labels[model.LabelName(k)] = model.LabelValue(strings.ReplaceAll(v, notificationAddress, addr))
	}
	body := strings.ReplaceAll(string(raw), notificationAddress, addr)
	body = strings.ReplaceAll(body, n.Alerts[0].Fingerprint, labels.Fingerprint().String())
	return []byte(body)
}

// planJSON is the part of `plan --output=json` the tests read.
type planJSON []struct {
	Alert struct {
		Alertname string `json:"alertname"`
		Instance  string `json:"instance"`
	} `json:"alert"`
	Runs []struct {
		Policy  string `json:"policy"`
		Mode    string `json:"mode"`
		Outcome string `json:"outcome"`
		Steps   []struct {
			ID       string         `json:"id"`
			Decision string         `json:"decision"`
			Reason   string         `json:"reason"`
			Facts    map[string]any `json:"facts"`
			Request  *struct {
				Service   string          `json:"service"`
				Operation string          `json:"operation"`
				Input     json.RawMessage `json:"input"` // each action's own shape
			} `json:"request"`
		} `json:"steps"`
	} `json:"runs"`
}

// liveConfigWith writes a main configuration in live mode that loads the example policy
// by its absolute path and escalates to am.
func liveConfigWith(t *testing.T, am *testpeer.AM) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "remediator.yml")
	writeFile(t, cfg, fmt.Sprintf("mode: live\npolicy_files:\n  - %q\nalertmanager:\n  url: %q\n",
		absPath(t, examplePolicy), am.URL()))
	return cfg
}

func TestPlanProbesAndPlansEscalation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// config returns the main configuration, and the Alertmanager it names, if any
		config func(t *testing.T) (string, *testpeer.AM)
	}{
		{
			name:   "plans the escalation with the example configuration",
			config: func(*testing.T) (string, *testpeer.AM) { return exampleConfig, nil },
		},
		{
			name: "posts nothing to the configured Alertmanager even in live mode",
			config: func(t *testing.T) (string, *testpeer.AM) {
				am := testpeer.Alertmanager(t, nullRouteConfig)
				return liveConfigWith(t, am), am
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, cert := expiringEndpoint(t)
			alerts := filepath.Join(t.TempDir(), "alerts.json")
			writeFile(t, alerts, string(notificationFor(t, srv.Addr())))
			cfg, am := tt.config(t)

			code, text, stderr := runCommand(t, "plan", "--config.file="+cfg, "--alerts="+alerts)
			if code != 0 {
				t.Fatalf("plan exited with %d:\n%s", code, stderr)
			}
			wantPlanText(t, text, srv.Addr(), cert)

			code, out, stderr := runCommand(t, "plan", "--config.file="+cfg, "--alerts="+alerts,
				"--output=json")
			if code != 0 {
				t.Fatalf("plan --output=json exited with %d:\n%s", code, stderr)
			}
			wantPlanJSON(t, []byte(out), srv.Addr())

			if am != nil {
				if got := am.Alerts(t); len(got) != 0 {
					t.Errorf("Alertmanager holds %+v after two plans, want nothing", got)
				}
			}
		})
	}
}

func wantPlanText(t *testing.T, text, addr string, cert *testtls.Cert) {
	t.Helper()
	wantLines(t, "plan", text, []string{
		"    executed  live (tls.probe)",
		"      days_left: 5",
		"      not_after: " + cert.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"      verified: false",
		"      protocol: tls",
		"    planned   escalate (escalate): dry-run",
		"      would call alertmanager PostAlerts with:",
		"  outcome: succeeded",
	})
	for _, part := range []string{
		"alert BlackboxTLSCertExpiringSoonWarning instance=" + addr + " (firing, fingerprint ",
		"  policy " + examplePolicyName + " (dry-run, run ",
		`"alertname": "` + escalationAlertname + `"`,
		`"severity": "page"`,
		`"reason": "the certificate on ` + addr + ` expires in 5 days (verified: false)"`,
	} {
		if !strings.Contains(text, part) {
			t.Errorf("plan does not say %q; it is:\n%s", part, text)
		}
	}
}

func wantPlanJSON(t *testing.T, out []byte, addr string) {
	t.Helper()
	var plans planJSON
	if err := json.Unmarshal(out, &plans); err != nil {
		t.Fatalf("plan --output=json is not JSON: %v\n%s", err, out)
	}
	if len(plans) != 1 || len(plans[0].Runs) != 1 || len(plans[0].Runs[0].Steps) != 2 {
		t.Fatalf("plan = %s, want one alert with one run of two steps", out)
	}
	if plans[0].Alert.Instance != addr {
		t.Errorf("planned alert instance = %s, want %s", plans[0].Alert.Instance, addr)
	}
	r := plans[0].Runs[0]
	if r.Policy != examplePolicyName || r.Mode != "dry-run" || r.Outcome != "succeeded" {
		t.Errorf("run of %s in %s %s, want %s in dry-run succeeded", r.Policy, r.Mode, r.Outcome,
			examplePolicyName)
	}
	probe, esc := r.Steps[0], r.Steps[1]
	if probe.Decision != "executed" || probe.Facts["days_left"] != 5.0 || probe.Facts["verified"] != false {
		t.Errorf("probe step = %+v, want executed with 5 days left, unverified", probe)
	}
	if esc.ID != "escalate" || esc.Decision != "planned" || esc.Reason != "dry-run" {
		t.Errorf("escalate step is %s %s (%s), want planned for dry-run", esc.ID, esc.Decision, esc.Reason)
	}
	req := esc.Request
	if req == nil || req.Service != "alertmanager" || req.Operation != "PostAlerts" {
		t.Fatalf("planned request = %+v, want alertmanager PostAlerts", req)
	}
	var posted []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(req.Input, &posted); err != nil || len(posted) != 1 {
		t.Fatalf("planned request input = %s (%v), want one alert", req.Input, err)
	}
	want := map[string]string{
		"alertname": escalationAlertname, "original_alertname": "BlackboxTLSCertExpiringSoonWarning",
		"remediator_policy": examplePolicyName, "instance": addr, "severity": "page",
	}
	if !maps.Equal(posted[0].Labels, want) {
		t.Errorf("planned labels = %v, want %v", posted[0].Labels, want)
	}
}

// policyServer is remediator's serve command running in this process with policies.
type policyServer struct {
	*receiver
	policyFile string
}

// startPolicyServer runs serve in live mode with a copy of the example policy, escalating
// to am, on a free loopback port; it stops it when the test ends.
func startPolicyServer(t *testing.T, am *testpeer.AM) *policyServer {
	t.Helper()
	dir := t.TempDir()
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{
		receiver: &receiver{
			url:       "http://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t)),
			tokenFile: filepath.Join(dir, "webhook.token"),
		},
		policyFile: filepath.Join(dir, "tls-expiry.yaml"),
	}
	writeFile(t, ps.policyFile, string(example))
	writeFile(t, ps.tokenFile, policyTestToken+"\n")
	cfg := filepath.Join(dir, "remediator.yml")
	writeFile(t, cfg, fmt.Sprintf(`mode: live
webhook:
  auth:
    bearer_token_file: %q
shutdown_grace_period: 5s
policy_files:
  - %q
alertmanager:
  url: %q
  timeout: 5s
`, ps.tokenFile, ps.policyFile, am.URL()))

	serveInBackground(t, ps.receiver, "serve", "--config.file="+cfg,
		"--web.listen-address="+strings.TrimPrefix(ps.url, "http://"),
		"--storage.path="+filepath.Join(dir, "data"), "--log.level=debug")
	return ps
}

const policyTestToken = "policy-test-token"

// serveInBackground runs remediator with args until the test ends, waits until rcv is
// ready, and checks at the end that it exited cleanly.
func serveInBackground(t *testing.T, rcv *receiver, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	exited := make(chan struct{})
	var code int
	go func() {
		code = run(ctx, args, io.Discard, logs)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
			if code != 0 {
				t.Errorf("serve exited with status %d, want 0", code)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("serve still running 15s after it was told to stop")
		}
		if t.Failed() {
			t.Logf("remediator log:\n%s", logs.String())
		}
	})

	testpeer.WaitFor(t, 15*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("serve exited with status %d before it was ready", code)
		default:
		}
		return rcv.ready(t)
	}, "serve never became ready")
}

// post sends body to path with the bearer token, when one is given, and returns the
// status and the answer.
func (ps *policyServer) post(t *testing.T, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ps.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()

	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to POST %s: %v", path, err)
	}
	return resp.StatusCode, answer
}

// notify posts a webhook notification and fails the test unless it is accepted.
func (ps *policyServer) notify(t *testing.T, body []byte) {
	t.Helper()
	if code, answer := ps.post(t, "/webhook", policyTestToken, body); code != http.StatusOK {
		t.Fatalf("webhook answered %d %s, want 200", code, answer)
	}
}

// metric reads one series of a counter or a gauge from the server's /metrics, failing
// the test when it is missing.
func (ps *policyServer) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ps.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	for _, m := range families[name].GetMetric() {
		matched := 0
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
				matched++
			}
		}
		if matched == len(labels) {
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v in the server's metrics", name, labels)
	return 0
}

func (ps *policyServer) escalationsExecuted(t *testing.T) float64 {
	t.Helper()
	return ps.metric(t, "remediator_steps_total",
		map[string]string{"action": "escalate", "outcome": "executed", "mode": "live"})
}

// escalations returns the escalation alerts Alertmanager holds, by instance.
func escalations(t *testing.T, am *testpeer.AM) map[string]testpeer.Alert {
	t.Helper()
	out := map[string]testpeer.Alert{}
	for _, a := range am.Alerts(t) {
		if a.Labels["alertname"] != escalationAlertname {
			continue
		}
		if _, dup := out[a.Labels["instance"]]; dup {
			t.Fatalf("Alertmanager holds two escalations for %s", a.Labels["instance"])
		}
		out[a.Labels["instance"]] = a
	}
	return out
}

// waitForEscalation waits until Alertmanager holds an escalation for instance.
func waitForEscalation(t *testing.T, am *testpeer.AM, instance string) testpeer.Alert {
	t.Helper()
	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		_, ok := escalations(t, am)[instance]
		return ok
	}, "Alertmanager never received an escalation for "+instance)
	return escalations(t, am)[instance]
}

func TestServeEscalatesOnceInLiveMode(t *testing.T) {
	t.Parallel()
	am := testpeer.Alertmanager(t, nullRouteConfig)
	srv, _ := expiringEndpoint(t)
	ps := startPolicyServer(t, am)
	if n := ps.escalationsExecuted(t); n != 0 {
		t.Fatalf("escalations executed before any alert = %v, want 0", n)
	}

	ps.notify(t, notificationFor(t, srv.Addr()))
	got := waitForEscalation(t, am, srv.Addr())
	time.Sleep(2 * time.Second) // room for a duplicate to show up

	if all := escalations(t, am); len(all) != 1 {
		t.Errorf("Alertmanager holds escalations %+v, want exactly one", all)
	}
	if n := ps.escalationsExecuted(t); n != 1 {
		t.Errorf(`remediator_steps_total{action="escalate",outcome="executed",mode="live"} = %v, want 1`, n)
	}
	want := map[string]string{
		"alertname": escalationAlertname, "original_alertname": "BlackboxTLSCertExpiringSoonWarning",
		"remediator_policy": examplePolicyName, "instance": srv.Addr(), "severity": "page",
	}
	if !maps.Equal(got.Labels, want) {
		t.Errorf("escalation labels = %v, want %v", got.Labels, want)
	}
	reason := "the certificate on " + srv.Addr() + " expires in 5 days (verified: false)"
	if got.Annotations["reason"] != reason || len(got.Annotations["remediator_run_id"]) != 26 {
		t.Errorf("escalation annotations = %v, want reason %q and a run id", got.Annotations, reason)
	}
	if n := ps.metric(t, "remediator_runs_total",
		map[string]string{"policy": examplePolicyName, "outcome": "succeeded"}); n != 1 {
		t.Errorf("succeeded runs = %v, want 1", n)
	}
}

func TestServePlanEndpoint(t *testing.T) {
	t.Parallel()
	am := testpeer.Alertmanager(t, nullRouteConfig)
	srv, _ := expiringEndpoint(t)
	ps := startPolicyServer(t, am)
	body := notificationFor(t, srv.Addr())

	tests := []struct {
		name  string
		token string
		code  int
	}{
		{"plans the escalation for a caller with the token", policyTestToken, http.StatusOK},
		{"refuses a caller without a token", "", http.StatusUnauthorized},
		{"refuses a caller with a wrong token", "not-" + policyTestToken, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, answer := ps.post(t, "/plan", tt.token, body)

			if code != tt.code {
				t.Fatalf("POST /plan answered %d %s, want %d", code, answer, tt.code)
			}
			if code == http.StatusOK {
				wantPlanJSON(t, answer, srv.Addr())
			}
		})
	}

	if got := am.Alerts(t); len(got) != 0 {
		t.Errorf("Alertmanager holds %+v after plans on a live server, want nothing", got)
	}
	if n := ps.escalationsExecuted(t); n != 0 {
		t.Errorf("escalations executed after plans = %v, want 0", n)
	}
}

func TestServeKeepsPoliciesWhenReloadFails(t *testing.T) {
	t.Parallel()
	am := testpeer.Alertmanager(t, nullRouteConfig)
	first, _ := expiringEndpoint(t)
	second, _ := expiringEndpoint(t)
	ps := startPolicyServer(t, am)
	ps.notify(t, notificationFor(t, first.Addr()))
	waitForEscalation(t, am, first.Addr())
	good, err := os.ReadFile(ps.policyFile)
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, ps.policyFile, strings.Replace(string(good), "action: tls.probe", "action: tls.prob", 1))
	code, answer := ps.post(t, "/-/reload", policyTestToken, nil)

	if code != http.StatusInternalServerError {
		t.Fatalf("POST /-/reload with a bad policy answered %d %s, want 500", code, answer)
	}
	if !strings.Contains(string(answer), `unknown action \"tls.prob\" (did you mean \"tls.probe\"?)`) {
		t.Errorf("reload answer %s does not give the reason", answer)
	}
	if n := ps.metric(t, "remediator_config_last_reload_successful", nil); n != 0 {
		t.Errorf("remediator_config_last_reload_successful = %v after a failed reload, want 0", n)
	}

	ps.notify(t, notificationFor(t, second.Addr()))
	waitForEscalation(t, am, second.Addr())
	// the run is counted once it has finished, a moment after it escalated
	testpeer.WaitFor(t, scenarioTimeout, func() bool { return ps.escalationsExecuted(t) >= 2 },
		"the second escalation was never counted")
	if n := ps.escalationsExecuted(t); n != 2 {
		t.Errorf("escalations executed = %v, want 2: one before and one after the failed reload", n)
	}

	writeFile(t, ps.policyFile, string(good))
	if code, answer := ps.post(t, "/-/reload", policyTestToken, nil); code != http.StatusOK {
		t.Errorf("POST /-/reload with the policy restored answered %d %s, want 200", code, answer)
	}
	if n := ps.metric(t, "remediator_config_last_reload_successful", nil); n != 1 {
		t.Errorf("remediator_config_last_reload_successful = %v after a good reload, want 1", n)
	}
}
