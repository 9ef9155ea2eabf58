package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/internal/testpeer"
	"github.com/remediator/remediator/internal/testtls"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate"
	"github.com/remediator/remediator/remediate/actions"
)

// The Cabalmail Let's Encrypt pack (policies/cabalmail-letsencrypt.yaml) against moto and
// TLS servers the tests mint. The served certificate comes from a testtls server that the
// alert's probe_address label points the probes at; the stored one from an SSM parameter
// in moto. The code under test reaches moto through a recording proxy, which counts the
// mutating calls that reach it and plays their effects: an invocation of the Lambda
// stores a new certificate and, as the real one restarts the services, has the server
// present it; an UpdateService has the server present the stored certificate, as new
// tasks would. moto's differences from AWS that matter here: its simple Lambda runs
// nothing and never reports a function error (remediate/actions covers function errors
// against the Lambda protocol); its log filter knows only plain terms and quoted
// phrases, which is all the pack uses; and its ECS services run no task, so they are
// created with a desired count of 0 to be stable at once.

const (
	lePackFile      = "../../policies/cabalmail-letsencrypt.yaml"
	leAlertFile     = "../../policies/testdata/alerts/cabalmail-smtp-out-465.json"
	lePolicy        = "cabalmail-letsencrypt"
	leResolved      = "cabalmail-letsencrypt-resolved"
	leCertParameter = "/cabal/control_domain_ssl_cert"
	leKeyParameter  = "/cabal/control_domain_ssl_key"
	leFunction      = "cabal-certbot-renewal"
	leCluster       = "cabal-mail"
	leNewerLogs     = "/cabal/lambda/certbot-renewal"
	leOlderLogs     = "/aws/lambda/cabal-certbot-renewal"
	leToken         = "letsencrypt-pipeline-token"
	leInvoke        = "Lambda/Invoke"
	leUpdate        = "ECS/UpdateService"
	leRFC3339       = time.RFC3339
	leDay           = 24 * time.Hour
)

var (
	leServices = []string{"cabal-smtp-out", "cabal-smtp-in", "cabal-imap"}
	leNames    = []string{"*.example.test", "example.test"}
)

// lambdaEffect is what the simulated certbot Lambda does when invoked.
type lambdaEffect int

const (
	// lambdaRenews stores a new certificate and restarts the services: the wire moves.
	lambdaRenews lambdaEffect = iota
	// lambdaStoresOnly stores a new certificate; the services keep the old one.
	lambdaStoresOnly
	// lambdaDoesNothing leaves everything as it was.
	lambdaDoesNothing
)

// leSetup is what a scenario's Cabalmail installation holds.
type leSetup struct {
	servedLeft time.Duration // the served certificate's time left
	storedLeft time.Duration // the stored one's; 0: the served certificate itself
	foreign    bool          // the stored certificate is for other names
	// rateLimited puts a rateLimited event two days old in the older log group
	rateLimited bool
	lambda      lambdaEffect
	// restartIgnored makes new deployments keep serving the old certificate
	restartIgnored bool
	mode           testtls.Mode
	unreachable    bool // the endpoint is closed
}

// leWorld is a Cabalmail installation: moto seeded, a TLS server, and the proxy in front
// of moto that the code under test talks to.
type leWorld struct {
	t      *testing.T
	setup  leSetup
	cfg    aws.Config // straight to moto, for seeding and inspecting
	proxy  *leProxy
	server *testtls.Server
	caFile string
	served *testtls.Cert

	mu       sync.Mutex
	stored   *testtls.Cert
	renewals []*testtls.Cert // what successive invocations of the Lambda store
}

func newLEWorld(t *testing.T, setup leSetup) *leWorld {
	t.Helper()
	endpoint := testpeer.Moto(t)
	testpeer.UseLambdaSimple(t, endpoint)
	w := &leWorld{t: t, setup: setup, cfg: testpeer.MotoConfig(t)}
	ca := testtls.NewCA(t)
	w.caFile = ca.PEMFile(t)

	now := time.Now()
	w.served = ca.Leaf(t, testtls.LeafOptions{DNSNames: leNames, NotAfter: now.Add(setup.servedLeft)})
	w.stored = w.served
	if setup.storedLeft != 0 || setup.foreign {
		names := leNames
		if setup.foreign {
			names = []string{"*.elsewhere.test"}
		}
		w.stored = ca.Leaf(t, testtls.LeafOptions{DNSNames: names, NotAfter: now.Add(setup.storedLeft)})
	}
	for i := range 6 {
		w.renewals = append(w.renewals, ca.Leaf(t, testtls.LeafOptions{DNSNames: leNames,
			NotAfter: now.Add(90*leDay + time.Duration(i)*time.Hour)}))
	}

	testpeer.SeedLambdaFunction(t, w.cfg, leFunction)
	testpeer.SeedECSServices(t, w.cfg, leCluster, 0, leServices...)
	testpeer.SeedParameter(t, w.cfg, leCertParameter, w.stored.PEM())
	testpeer.SeedParameter(t, w.cfg, leKeyParameter, w.stored.KeyPEM())
	testpeer.SeedLogEvents(t, w.cfg, leNewerLogs,
		testpeer.LogEvent{At: now.Add(-3 * time.Hour), Message: "certbot: no renewals were attempted"})
	if setup.rateLimited {
		testpeer.SeedLogEvents(t, w.cfg, leOlderLogs, testpeer.LogEvent{At: now.Add(-48 * time.Hour),
			Message: `{"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many certificates ` +
				`(5) already issued for this exact set of identifiers in the last 168h0m0s"}`})
	}

	mode := setup.mode
	w.server = testtls.Serve(t, mode, w.served)
	if setup.unreachable {
		w.server.Close()
	}
	w.proxy = newLEProxy(t, endpoint, w.mutated)
	t.Setenv("AWS_ENDPOINT_URL", w.proxy.url)
	return w
}

// mutated plays the effect of a mutating call that moto answered with success. It runs
// on the proxy's goroutine, before the caller gets the answer.
func (w *leWorld) mutated(op string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case op == leInvoke && w.setup.lambda != lambdaDoesNothing:
		next := w.renewals[0]
		w.renewals = w.renewals[1:]
		_, err := ssm.NewFromConfig(w.cfg).PutParameter(context.Background(), &ssm.PutParameterInput{
			Name: aws.String(leCertParameter), Value: aws.String(next.PEM()),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
		})
		if err != nil {
			w.t.Errorf("the simulated Lambda could not store its certificate: %v", err)
		}
		w.stored = next
		if w.setup.lambda == lambdaRenews {
			w.server.SetCertificate(next)
		}
	case op == leUpdate && !w.setup.restartIgnored:
		w.server.SetCertificate(w.stored)
	}
}

// labels are the labels a scenario's alert adds to the fixture's: where the probes dial.
func (w *leWorld) labels(scenario string) map[string]string {
	return map[string]string{"probe_address": w.server.Addr(), "scenario": scenario}
}

// leProxy forwards every request to moto and records the AWS operations that reach it.
type leProxy struct {
	url string

	mu  sync.Mutex
	ops []string // "Lambda/Invoke", "ECS/UpdateService cabal-imap", "AmazonSSM.GetParameter", ...
}

var leInvocationPath = regexp.MustCompile(`^/2015-03-31/functions/[^/]+/invocations$`)

// newLEProxy starts the proxy; mutated is told of each mutating call moto answered
// with success.
func newLEProxy(t *testing.T, motoURL string, mutated func(op string)) *leProxy {
	t.Helper()
	target, err := url.Parse(motoURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &leProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if op := resp.Request.Header.Get("X-Test-Operation"); op != "" && resp.StatusCode/100 == 2 {
			mutated(op)
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		op, mutating := leClassify(r, body)
		p.mu.Lock()
		p.ops = append(p.ops, op)
		p.mu.Unlock()
		if mutating {
			r.Header.Set("X-Test-Operation", strings.Fields(op)[0])
		}
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// leClassify names the operation of a request, and says whether it changes anything.
func leClassify(r *http.Request, body []byte) (string, bool) {
	if r.Method == http.MethodPost && leInvocationPath.MatchString(r.URL.Path) {
		return leInvoke, true
	}
	target := r.Header.Get("X-Amz-Target")
	if strings.HasSuffix(target, ".UpdateService") {
		var in struct{ Service string }
		_ = json.Unmarshal(body, &in)
		return leUpdate + " " + in.Service, true
	}
	if strings.HasPrefix(target, "AmazonSSM.") {
		var in struct{ Name string }
		_ = json.Unmarshal(body, &in)
		return target + " " + in.Name, false
	}
	if target != "" {
		return target, false
	}
	return r.Method + " " + r.URL.Path, false
}

// count returns how many requests of operation op reached moto.
func (p *leProxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, o := range p.ops {
		if o == op || strings.HasPrefix(o, op+" ") {
			n++
		}
	}
	return n
}

// touched reports whether any request named something containing s.
func (p *leProxy) touched(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.ops, func(o string) bool { return strings.Contains(o, s) })
}

// updated lists the services UpdateService was called for, in order.
func (p *leProxy) updated() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, o := range p.ops {
		if s, ok := strings.CutPrefix(o, leUpdate+" "); ok {
			out = append(out, s)
		}
	}
	return out
}

// lePack writes a copy of the pack with this installation's parameters: the test CA as
// the probes' roots, and waits short enough for tests. More replacements come in pairs.
func lePack(t *testing.T, caFile string, more ...string) string {
	t.Helper()
	data, err := os.ReadFile(lePackFile)
	if err != nil {
		t.Fatal(err)
	}
	pack := string(data)
	replacements := append([]string{
		`ca_file: ""`, fmt.Sprintf("ca_file: %q", caFile),
		"&renewal_wait 10m", "&renewal_wait 2s",
		"&restart_wait 3m", "&restart_wait 1500ms",
		"&resolved_wait 1m", "&resolved_wait 1s",
		"interval: 15s", "interval: 200ms",
		"interval: 10s", "interval: 200ms",
		"interval: 5s", "interval: 200ms",
	}, more...)
	for i := 0; i+1 < len(replacements); i += 2 {
		if !strings.Contains(pack, replacements[i]) {
			t.Fatalf("the pack has no %q to set", replacements[i])
		}
		pack = strings.ReplaceAll(pack, replacements[i], replacements[i+1])
	}
	file := filepath.Join(t.TempDir(), "cabalmail-letsencrypt.yaml")
	writeFile(t, file, pack)
	return file
}

// leNotification is the fixture's webhook body with status, startsAt and more labels.
// Its fingerprint is left to the receiver to compute from the labels.
func leNotification(t *testing.T, status string, startsAt time.Time, labels map[string]string) []byte {
	t.Helper()
	data, err := os.ReadFile(leAlertFile)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	a := body["alerts"].([]any)[0].(map[string]any)
	for k, v := range labels {
		a["labels"].(map[string]any)[k] = v
	}
	a["status"], a["startsAt"], a["fingerprint"] = status, startsAt.UTC().Format(time.RFC3339Nano), ""
	if status == "resolved" {
		a["endsAt"] = time.Now().UTC().Format(time.RFC3339Nano)
	}
	body["status"], body["commonLabels"] = status, a["labels"]
	out, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leEventLog keeps the decisions an engine records, as the audit log would get them.
type leEventLog struct {
	mu     sync.Mutex
	events []remediate.Event
}

func (l *leEventLog) Record(ev remediate.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	return nil
}

// step returns the last event of step id of policy.
func (l *leEventLog) step(policy, id string) (remediate.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0; i-- {
		if e := l.events[i]; e.Policy == policy && e.Step == id {
			return e, true
		}
	}
	return remediate.Event{}, false
}

func (l *leEventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&b, "  %s %s %s %s", e.Policy, e.Step, e.Decision, e.Reason)
		if e.Error != "" {
			fmt.Fprintf(&b, " error=%q", e.Error)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// fact returns fact name of step id's result.
func (l *leEventLog) fact(policy, id, name string) any {
	e, ok := l.step(policy, id)
	if !ok {
		return nil
	}
	f, _ := e.Result.(actions.Facts)
	return f[name]
}

// leEngine loads pack into a live engine whose escalations go to amURL and whose
// decisions the returned log keeps.
func leEngine(t *testing.T, pack, amURL string) (*remediate.Engine, *leEventLog) {
	t.Helper()
	am, err := actions.NewAlertmanager(amURL, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reg := actions.Builtin(actions.Deps{Alertmanager: am, AWS: actions.NewAWS(actions.AWSOptions{})})
	set, err := policies.Load([]string{pack}, ".", reg)
	if err != nil {
		t.Fatalf("loading the pack: %v", err)
	}
	log := &leEventLog{}
	rules := &remediate.Rules{Policies: set, Mode: config.ModeLive, Actions: reg, Alertmanager: am}
	return remediate.NewEngine(rules, prometheus.NewRegistry(), zap.NewNop(), remediate.WithRecorder(log)), log
}

// leEscalations returns the reasons of the escalations Alertmanager holds for scenario.
func leEscalations(t *testing.T, am *testpeer.AM, scenario string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range am.Alerts(t) {
		if a.Labels["scenario"] == scenario && a.Labels["remediator_policy"] != "" {
			out[a.Labels["alertname"]] = a.Annotations["reason"]
		}
	}
	return out
}

func TestLetsEncryptPackScenarios(t *testing.T) {
	am := testpeer.Alertmanager(t, nullRouteConfig)
	type want struct {
		invokes  int
		updated  []string
		verified string // the step whose facts must say renewed
		escalate string // part of the escalation's reason; empty for none
	}
	tests := []struct {
		name     string
		setup    leSetup
		instance string // default smtp-out.example.test:465
		status   string // default firing
		want     func(w *leWorld) want
	}{
		{
			name:  "a stored certificate newer than the served one restarts each service once, without the Lambda",
			setup: leSetup{servedLeft: 5 * leDay, storedLeft: 60 * leDay},
			want: func(*leWorld) want {
				return want{updated: leServices, verified: "restart_verify"}
			},
		},
		{
			name:  "a stored certificate equal to the served one invokes the Lambda once and sees it on the wire",
			setup: leSetup{servedLeft: 20 * leDay, lambda: lambdaRenews},
			want:  func(*leWorld) want { return want{invokes: 1, verified: "renew_verify"} },
		},
		{
			name:  "a renewal stored but not on the wire after the wait restarts the services, then verifies",
			setup: leSetup{servedLeft: 20 * leDay, lambda: lambdaStoresOnly},
			want: func(*leWorld) want {
				return want{invokes: 1, updated: leServices, verified: "restart_after_verify"}
			},
		},
		{
			name:  "rate limiting in the logs within the week escalates instead of invoking the Lambda",
			setup: leSetup{servedLeft: 20 * leDay, rateLimited: true},
			want: func(*leWorld) want {
				return want{escalate: "Let's Encrypt rate-limited the renewal within the last 168h (1 rateLimited " +
					"events, the latest at "}
			},
		},
		{
			name:  "a verification that times out with 5 days left escalates with the expiry last served",
			setup: leSetup{servedLeft: 5 * leDay, lambda: lambdaDoesNothing},
			want: func(w *leWorld) want {
				return want{invokes: 1, escalate: "the renewal did not reach the endpoint: it still serves the " +
					"certificate expiring " + w.served.Leaf.NotAfter.UTC().Format(leRFC3339) +
					", and the stored one did not change"}
			},
		},
		{
			name:  "a verification that times out with 15 days left is left to the next notification",
			setup: leSetup{servedLeft: 15 * leDay, lambda: lambdaDoesNothing},
			want:  func(*leWorld) want { return want{invokes: 1} },
		},
		{
			name:  "a restart that does not reach the wire with 5 days left escalates",
			setup: leSetup{servedLeft: 5 * leDay, lambda: lambdaStoresOnly, restartIgnored: true},
			want: func(w *leWorld) want {
				return want{invokes: 1, updated: leServices, escalate: "and the services were restarted, but the " +
					"endpoint still serves the one expiring " + w.served.Leaf.NotAfter.UTC().Format(leRFC3339)}
			},
		},
		{
			name:  "a stored certificate for other names is never deployed",
			setup: leSetup{servedLeft: 5 * leDay, storedLeft: 60 * leDay, foreign: true},
			want: func(*leWorld) want {
				return want{escalate: "the stored certificate (*.elsewhere.test) is not for the names served " +
					"(*.example.test, example.test); not restarting anything"}
			},
		},
		{
			name:  "an endpoint that cannot be probed escalates and changes nothing",
			setup: leSetup{servedLeft: 20 * leDay, unreachable: true},
			want: func(*leWorld) want {
				return want{escalate: "probing smtp-out.example.test:465 failed: probing 127.0.0.1:"}
			},
		},
		{
			name:     "submission on 587 is probed with SMTP STARTTLS",
			setup:    leSetup{servedLeft: 20 * leDay, lambda: lambdaRenews, mode: testtls.SMTPStartTLS},
			instance: "smtp-out.example.test:587",
			want:     func(*leWorld) want { return want{invokes: 1, verified: "renew_verify"} },
		},
		{
			name:     "IMAP on 143, an internal name, is probed with IMAP STARTTLS",
			setup:    leSetup{servedLeft: 5 * leDay, storedLeft: 60 * leDay, mode: testtls.IMAPStartTLS},
			instance: "imap.cabal.internal:143",
			want:     func(*leWorld) want { return want{updated: leServices, verified: "restart_verify"} },
		},
		{
			name:   "a resolved alert whose endpoint serves a renewed certificate is recorded as renewed",
			setup:  leSetup{servedLeft: 89 * leDay},
			status: "resolved",
			want:   func(*leWorld) want { return want{verified: "check"} },
		},
		{
			name:   "a resolved alert whose certificate expired is escalated",
			setup:  leSetup{servedLeft: -2 * leDay},
			status: "resolved",
			want: func(w *leWorld) want {
				return want{escalate: "the alert resolved, but the endpoint serves a certificate that expired " +
					w.served.Leaf.NotAfter.UTC().Format(leRFC3339)}
			},
		},
		{
			name:   "a resolved alert whose endpoint is unreachable is escalated",
			setup:  leSetup{servedLeft: 20 * leDay, unreachable: true},
			status: "resolved",
			want: func(*leWorld) want {
				return want{escalate: "the alert resolved, but probing smtp-out.example.test:465 failed: no probe of"}
			},
		},
		{
			name:   "a resolved alert whose endpoint still serves the old certificate is escalated",
			setup:  leSetup{servedLeft: 15 * leDay},
			status: "resolved",
			want: func(w *leWorld) want {
				return want{escalate: "the alert resolved, but the endpoint still serves a certificate expiring " +
					w.served.Leaf.NotAfter.UTC().Format(leRFC3339) + ", 14 days left"}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newLEWorld(t, tt.setup)
			engine, log := leEngine(t, lePack(t, w.caFile), am.URL())
			scenario := strconv.Itoa(i)
			labels := w.labels(scenario)
			if tt.instance != "" {
				labels["instance"] = tt.instance
			}
			status, policy := cmp.Or(tt.status, "firing"), lePolicy
			if status == "resolved" {
				policy = leResolved
			}
			body := leNotification(t, status, time.Now().Add(-time.Hour), labels)
			alerts, err := handler.DecodeAlerts(body, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want(w)

			engine.Process(t.Context(), alerts[0])

			defer func() {
				if t.Failed() {
					t.Logf("decisions:\n%s", log)
				}
			}()
			if n := w.proxy.count(leInvoke); n != want.invokes {
				t.Errorf("%d invocations reached moto, want %d", n, want.invokes)
			}
			if got := w.proxy.updated(); !slices.Equal(got, want.updated) {
				t.Errorf("UpdateService reached moto for %v, want %v", got, want.updated)
			}
			if w.proxy.touched(leKeyParameter) {
				t.Errorf("the private key's parameter was read")
			}
			if want.verified != "" && log.fact(policy, want.verified, "renewed") != true {
				t.Errorf("step %s did not see a renewed certificate", want.verified)
			}
			if want.escalate == "" {
				if e, _ := log.step(policy, "escalate"); e.Decision != "skipped" {
					t.Errorf("escalate %s: %s %s", e.Decision, e.Reason, e.Error)
				}
				return
			}
			var reasons map[string]string
			testpeer.WaitFor(t, 5*time.Second, func() bool {
				reasons = leEscalations(t, am, scenario)
				return len(reasons) > 0
			}, "no escalation reached Alertmanager")
			if len(reasons) != 1 {
				t.Errorf("escalations %v, want one", reasons)
			}
			for _, reason := range reasons {
				if !strings.Contains(reason, want.escalate) {
					t.Errorf("escalation reason\n  %s\nwant it to say\n  %s", reason, want.escalate)
				}
			}
		})
	}
}

// leServe runs serve with pack in live mode, storing its state under dir, escalating to
// amURL; stop ends it and waits.
type leServe struct {
	url  string
	logs *syncBuffer
	stop func()
}

func startLEServe(t *testing.T, dir, pack, amURL string) *leServe {
	t.Helper()
	token := filepath.Join(dir, "webhook.token")
	writeFile(t, token, leToken+"\n")
	cfg := filepath.Join(dir, "remediator.yml")
	writeFile(t, cfg, fmt.Sprintf("mode: live\npolicy_files: [%q]\nalertmanager:\n  url: %q\n"+
		"webhook:\n  auth:\n    bearer_token_file: %q\nshutdown_grace_period: 5s\n", pack, amURL, token))

	s := &leServe{url: "http://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t)), logs: &syncBuffer{}}
	args := []string{"serve", "--config.file=" + cfg, "--web.listen-address=" + strings.TrimPrefix(s.url, "http://"),
		"--storage.path=" + filepath.Join(dir, "data"), "--log.level=debug"}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() {
		run(ctx, args, io.Discard, s.logs)
		close(exited)
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				t.Errorf("serve still running 15s after it was told to stop")
			}
			if t.Failed() {
				t.Logf("remediator log:\n%s", s.logs.String())
			}
		})
	}
	t.Cleanup(s.stop)
	rcv := &receiver{url: s.url}
	testpeer.WaitFor(t, 15*time.Second, func() bool { return rcv.ready(t) }, "serve never became ready")
	return s
}

// post sends a webhook body as Alertmanager does.
func (s *leServe) post(t *testing.T, body []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+leToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("posting a notification: %v", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("posting a notification: %s %s", resp.Status, b)
	}
}

// sum adds up the series of a counter whose labels include want.
func (s *leServe) sum(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping serve: %v", err)
	}
	defer resp.Body.Close()

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing serve's metrics: %v", err)
	}
	total := 0.0
	for _, m := range families[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		matches := true
		for k, v := range want {
			matches = matches && got[k] == v
		}
		if matches {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// runs counts the finished runs of the firing policy.
func (s *leServe) runs(t *testing.T) float64 {
	t.Helper()
	return s.sum(t, "remediator_runs_total", map[string]string{"policy": lePolicy})
}

// TestLetsEncryptPackBudgetHoldsAcrossRestarts spends the weekly budget with real
// invocations, two before a restart of serve and two after, with the cooldown cut to a
// second so that each notification runs: the fifth is escalated naming the budget.
func TestLetsEncryptPackBudgetHoldsAcrossRestarts(t *testing.T) {
	w := newLEWorld(t, leSetup{servedLeft: 20 * leDay, lambda: lambdaRenews})
	am := testpeer.Alertmanager(t, nullRouteConfig)
	pack := lePack(t, w.caFile, "cooldown: 6h", "cooldown: 1s")
	dir := t.TempDir()
	labels := w.labels("budget")

	invokeOnce := func(s *leServe, n int) {
		t.Helper()
		runsBefore := s.runs(t)
		s.post(t, leNotification(t, "firing", time.Now().Add(-time.Hour), labels))
		testpeer.WaitFor(t, scenarioTimeout, func() bool { return s.runs(t) > runsBefore }, "the run never finished")
		if got := w.proxy.count(leInvoke); got != n {
			t.Fatalf("after notification %d: %d invocations, want %d", n, got, n)
		}
		time.Sleep(1100 * time.Millisecond) // past the cooldown
	}

	first := startLEServe(t, dir, pack, am.URL())
	invokeOnce(first, 1)
	invokeOnce(first, 2)
	first.stop()

	second := startLEServe(t, dir, pack, am.URL())
	invokeOnce(second, 3)
	invokeOnce(second, 4)
	runsBefore := second.runs(t)
	second.post(t, leNotification(t, "firing", time.Now().Add(-time.Hour), labels))
	testpeer.WaitFor(t, scenarioTimeout, func() bool { return second.runs(t) > runsBefore }, "the run never finished")

	if got := w.proxy.count(leInvoke); got != 4 {
		t.Errorf("%d invocations in all, want the budget's 4", got)
	}
	reasons := leEscalations(t, am, "budget")
	want := "budget letsencrypt:example.test 4/4 in 168h: the renewal Lambda was not invoked"
	if len(reasons) != 1 || !strings.HasPrefix(reasons["RemediatorEscalation"], want) {
		t.Errorf("escalations %v, want one starting %q", reasons, want)
	}
	budgetSkips := map[string]string{"policy": lePolicy, "reason": "budget"}
	if skips := second.sum(t, "remediator_skips_total", budgetSkips); skips != 1 {
		t.Errorf("%v budget skips counted, want 1", skips)
	}
	second.stop()
	wantNoSecrets(t, w, dir, first.logs.String()+second.logs.String())
}

// wantNoSecrets checks that what the parameters hold, certificates and key, appears in
// neither the logs nor any file serve wrote: state, audit log, anything.
func wantNoSecrets(t *testing.T, w *leWorld, dir, logs string) {
	t.Helper()
	w.mu.Lock()
	stored := w.stored
	w.mu.Unlock()
	markers := []string{"-----BEGIN", "PRIVATE KEY"}
	for _, pem := range []string{stored.PEM(), stored.KeyPEM(), w.served.PEM()} {
		lines := strings.Split(pem, "\n")
		markers = append(markers, lines[len(lines)/2]) // a line of base64 from the middle
	}
	texts := map[string]string{"the log": logs}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		texts[path] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range texts {
		for _, m := range markers {
			if strings.Contains(text, m) {
				t.Errorf("%s holds %q from a parameter's value", name, m)
			}
		}
	}
}

// TestLetsEncryptPackRepeatsInsideTheCooldownInvokeOnce sends the same notification
// twenty times, as Alertmanager's retries and an HA pair can: one invocation in all.
func TestLetsEncryptPackRepeatsInsideTheCooldownInvokeOnce(t *testing.T) {
	w := newLEWorld(t, leSetup{servedLeft: 20 * leDay, lambda: lambdaRenews})
	am := testpeer.Alertmanager(t, nullRouteConfig)
	s := startLEServe(t, t.TempDir(), lePack(t, w.caFile), am.URL())
	body := leNotification(t, "firing", time.Now().Add(-time.Hour), w.labels("repeats"))

	for range 20 {
		s.post(t, body)
	}
	handled := func() float64 {
		return s.runs(t) + s.sum(t, "remediator_skips_total", map[string]string{"policy": lePolicy})
	}
	testpeer.WaitFor(t, scenarioTimeout, func() bool { return handled() >= 20 }, "not every repeat was handled")

	if runs := s.runs(t); runs != 1 {
		t.Errorf("%v runs, want 1", runs)
	}
	if got := w.proxy.count(leInvoke); got != 1 {
		t.Errorf("%d invocations, want 1", got)
	}
	if got := w.proxy.updated(); len(got) != 0 {
		t.Errorf("UpdateService for %v, want none", got)
	}
}

// lePlan runs `remediator plan` on the pack for a notification and returns its output.
func lePlan(t *testing.T, pack string, body []byte, output string) string {
	t.Helper()
	dir := t.TempDir()
	alerts := filepath.Join(dir, "alerts.json")
	writeFile(t, alerts, string(body))
	cfg := filepath.Join(dir, "remediator.yml")
	writeFile(t, cfg, fmt.Sprintf("mode: live\npolicy_files: [%q]\n", pack))
	code, stdout, stderr := runCommand(t, "plan", "--config.file="+cfg, "--alerts="+alerts, "--output="+output)
	if code != 0 {
		t.Fatalf("plan exited %d: %s", code, stderr)
	}
	return stdout
}

// TestLetsEncryptPackPlanSendsNothingAndShowsEachRequest is the dry-run of both branches
// of the pack: what reaches moto is read-only, and the plan shows the exact requests.
func TestLetsEncryptPackPlanSendsNothingAndShowsEachRequest(t *testing.T) {
	updates := make([]string, len(leServices))
	for i, s := range leServices {
		updates[i] = fmt.Sprintf(`{"Cluster":"cabal-mail","Service":%q,"ForceNewDeployment":true}`, s)
	}
	tests := []struct {
		name    string
		setup   leSetup
		planned string
		request string
		skipped []string
	}{
		{"a newer stored certificate plans one new deployment per service",
			leSetup{servedLeft: 5 * leDay, storedLeft: 60 * leDay}, "restart", "[" + strings.Join(updates, ",") + "]",
			[]string{"restart_verify", "rate_limit", "renew", "escalate"}},
		{"an equal stored certificate plans one invocation",
			leSetup{servedLeft: 20 * leDay}, "renew",
			`{"FunctionName":"cabal-certbot-renewal","InvocationType":"RequestResponse","LogType":"Tail","Payload":{}}`,
			[]string{"restart", "renew_verify", "escalate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newLEWorld(t, tt.setup)
			body := leNotification(t, "firing", time.Now().Add(-time.Hour), w.labels("plan"))
			var plans []*remediate.AlertPlan
			if err := json.Unmarshal([]byte(lePlan(t, lePack(t, w.caFile), body, "json")), &plans); err != nil {
				t.Fatal(err)
			}
			r := onlyRun(t, plans, lePolicy)

			if got := mutatingSteps(r); !slices.Equal(got, []string{tt.planned}) {
				t.Errorf("mutating steps planned or executed %v, want only %s", got, tt.planned)
			}
			s := stepOf(t, r, tt.planned)
			if s.Decision != remediate.DecisionPlanned {
				t.Errorf("%s was %s, want planned", tt.planned, s.Decision)
			}
			assertJSON(t, "planned request", s.Request.Input, tt.request)
			for _, id := range tt.skipped {
				if d := stepOf(t, r, id).Decision; d != remediate.DecisionSkipped {
					t.Errorf("%s was %s, want skipped", id, d)
				}
			}
			if n, u := w.proxy.count(leInvoke), w.proxy.updated(); n != 0 || len(u) != 0 {
				t.Errorf("dry-run sent %d invocations and UpdateService for %v to moto", n, u)
			}
		})
	}
}

// TestLetsEncryptPackPlanOfTheFixtureSaysWhy is the done-when: the plan of the
// fixture alert for smtp-out.example.test:465, against moto and a minted endpoint,
// prints the branch it takes and why.
func TestLetsEncryptPackPlanOfTheFixtureSaysWhy(t *testing.T) {
	w := newLEWorld(t, leSetup{servedLeft: 20 * leDay})
	data, err := os.ReadFile(leAlertFile)
	if err != nil {
		t.Fatal(err)
	}
	// the fixture as it is, with one label more: where the minted endpoint listens
	body := strings.Replace(string(data), `"job": "blackbox-smtps",`,
		fmt.Sprintf(`"job": "blackbox-smtps", "probe_address": %q,`, w.server.Addr()), 1)

	text := lePlan(t, lePack(t, w.caFile), []byte(body), "text")

	served := w.served.Leaf.NotAfter.UTC().Format(leRFC3339)
	for _, want := range []string{
		"policy " + lePolicy + " (dry-run",
		"executed  live (tls.probe)", "not_after: " + served,
		"executed  stored (ssm.certificate)",
		"skipped   restart (ecs.force_new_deployment): condition is false",
		"when (false): live.ok && stored.ok && stored.not_after > live.not_after",
		"when (true): ",
		"executed  rate_limit (logs.search)", "count: 0", "missing: " + leOlderLogs,
		"planned   renew (lambda.invoke): dry-run",
		"would call lambda Invoke with:", `"FunctionName": "cabal-certbot-renewal"`,
		"skipped   renew_verify (tls.wait_renewed): reads facts of step \"renew\", which was only planned",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan does not say %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "would call"); n != 1 {
		t.Errorf("the plan shows %d requests, want the one invocation:\n%s", n, text)
	}
	if n := w.proxy.count(leInvoke); n != 0 {
		t.Errorf("plan invoked the Lambda %d times", n)
	}
}

// Facts of a step as the engine records them, implicit facts included.
func leExecuted(facts map[string]any) map[string]any {
	out := map[string]any{"ok": true, "decision": "executed", "error": "", "reason": ""}
	maps.Copy(out, facts)
	return out
}

func leSkipped(reason string) map[string]any {
	return map[string]any{"ok": false, "decision": "skipped", "error": "", "reason": reason}
}

func leFailed(err string) map[string]any {
	return map[string]any{"ok": false, "decision": "failed", "error": err, "reason": "failed"}
}

// TestLetsEncryptPackEscalationReasons renders the escalation of the firing policy for
// every way a run can end, moto's or not: each reason names what went wrong.
func TestLetsEncryptPackEscalationReasons(t *testing.T) {
	old := time.Date(2026, 12, 20, 8, 0, 0, 0, time.UTC)
	newer := old.Add(90 * leDay)
	names := []string{"*.example.test", "example.test"}
	cert := func(notAfter time.Time, daysLeft int64) map[string]any {
		return leExecuted(map[string]any{"not_after": notAfter, "days_left": daysLeft, "dns_names": names,
			"serial": "1", "sha256": "ab"})
	}
	wire := func(renewed bool, notAfter time.Time) map[string]any {
		return leExecuted(map[string]any{"renewed": renewed, "not_after": notAfter, "days_left": int64(5)})
	}
	unmatched := leSkipped("condition is false")
	// base is a run of the Lambda branch that renewed the wire, 5 days before expiry
	base := func() map[string]map[string]any {
		return map[string]map[string]any{
			"live": cert(old, 5), "stored": cert(old, 5), "restart": unmatched, "restart_verify": unmatched,
			"rate_limit":   leExecuted(map[string]any{"count": int64(0), "latest": time.Time{}, "latest_group": ""}),
			"renew":        leExecuted(map[string]any{"status_code": int64(200), "function_error": ""}),
			"renew_verify": wire(true, newer), "stored_after": unmatched, "restart_after": unmatched,
			"restart_after_verify": unmatched,
		}
	}
	tests := []struct {
		name   string
		change func(f map[string]map[string]any)
		reason string // empty: no escalation
	}{
		{"a renewal seen on the wire needs nobody", func(map[string]map[string]any) {}, ""},
		{"a probe that failed escalates", func(f map[string]map[string]any) {
			f["live"], f["stored"] = leFailed("probing 127.0.0.1:465: dialing: connection refused"), unmatched
			f["rate_limit"], f["renew"], f["renew_verify"] = unmatched, unmatched, unmatched
		}, "probing smtp-out.example.test:465 failed: probing 127.0.0.1:465: dialing: connection refused"},
		{"a stored certificate that cannot be read escalates", func(f map[string]map[string]any) {
			f["stored"] = leFailed("reading parameter /cabal/control_domain_ssl_cert: denied")
			f["rate_limit"], f["renew"], f["renew_verify"] = unmatched, unmatched, unmatched
		}, "reading the stored certificate failed: reading parameter /cabal/control_domain_ssl_cert: denied"},
		{"a restart that failed escalates", func(f map[string]map[string]any) {
			f["stored"] = cert(newer, 95)
			f["restart"] = leFailed("forcing new deployments in cluster cabal-mail: throttled")
			f["rate_limit"], f["renew"], f["renew_verify"] = unmatched, unmatched, unmatched
		}, "forcing new deployments to load the newer stored certificate failed: forcing new deployments in cluster"},
		{"a probe after the restart that failed escalates", func(f map[string]map[string]any) {
			f["stored"], f["restart"] = cert(newer, 95), leExecuted(nil)
			f["restart_verify"] = leFailed("no probe of smtp-out.example.test:465 got a certificate within 3m0s")
			f["rate_limit"], f["renew"], f["renew_verify"] = unmatched, unmatched, unmatched
		}, "after the restart, probing failed: no probe of"},
		{"a restart the wire does not show 5 days before expiry escalates", func(f map[string]map[string]any) {
			f["stored"], f["restart"], f["restart_verify"] = cert(newer, 95), leExecuted(nil), wire(false, old)
			f["rate_limit"], f["renew"], f["renew_verify"] = unmatched, unmatched, unmatched
		}, "the services were restarted to load the stored certificate expiring 2027-03-20T08:00:00Z, but the " +
			"endpoint still serves the one expiring 2026-12-20T08:00:00Z"},
		{"logs that cannot be searched escalate without invoking", func(f map[string]map[string]any) {
			f["rate_limit"] = leFailed("searching log group /cabal/lambda/certbot-renewal: denied")
			f["renew"], f["renew_verify"] = unmatched, unmatched
		}, "searching the renewal logs for rate limiting failed, so the renewal was not invoked: searching log group"},
		{"rate limiting escalates with its latest event", func(f map[string]map[string]any) {
			f["rate_limit"] = leExecuted(map[string]any{"count": int64(3), "latest": old.Add(-48 * time.Hour),
				"latest_group": "/aws/lambda/cabal-certbot-renewal"})
			f["renew"], f["renew_verify"] = unmatched, unmatched
		}, "Let's Encrypt rate-limited the renewal within the last 168h (3 rateLimited events, the latest at " +
			"2026-12-18T08:00:00Z in /aws/lambda/cabal-certbot-renewal); the renewal Lambda was not invoked"},
		{"a spent budget escalates naming it", func(f map[string]map[string]any) {
			f["renew"], f["renew_verify"] = leSkipped("budget letsencrypt:example.test 4/4 in 168h"), unmatched
		}, "budget letsencrypt:example.test 4/4 in 168h: the renewal Lambda was not invoked"},
		{"a spent budget in a plan escalates naming it", func(f map[string]map[string]any) {
			f["renew"] = leSkipped("would be skipped: budget letsencrypt:example.test 4/4 in 168h")
			f["renew_verify"] = unmatched
		}, "would be skipped: budget letsencrypt:example.test 4/4 in 168h: the renewal Lambda was not invoked"},
		{"a function error escalates with the function's message", func(f map[string]map[string]any) {
			f["renew"] = leFailed("function cabal-certbot-renewal failed (Unhandled, request r): " +
				"Error: DNS plugin denied")
			f["renew_verify"] = unmatched
		}, "the renewal Lambda failed: function cabal-certbot-renewal failed (Unhandled, request r): " +
			"Error: DNS plugin"},
		{"a function error 20 days before expiry escalates too", func(f map[string]map[string]any) {
			f["live"], f["stored"] = cert(old, 20), cert(old, 20)
			f["renew"], f["renew_verify"] = leFailed("invoking function cabal-certbot-renewal: throttled"), unmatched
		}, "the renewal Lambda failed: invoking function cabal-certbot-renewal: throttled"},
		{"a probe after the renewal that failed escalates", func(f map[string]map[string]any) {
			f["renew_verify"] = leFailed("no probe of smtp-out.example.test:465 got a certificate within 10m0s")
		}, "after the renewal, probing failed: no probe of"},
		{"a stored certificate unreadable after the renewal escalates", func(f map[string]map[string]any) {
			f["renew_verify"], f["stored_after"] = wire(false, old), leFailed("reading parameter: throttled")
		}, "after the renewal, reading the stored certificate failed: reading parameter: throttled"},
		{"a restart after the renewal that failed escalates", func(f map[string]map[string]any) {
			f["renew_verify"], f["stored_after"] = wire(false, old), cert(newer, 95)
			f["restart_after"] = leFailed("forcing new deployments in cluster cabal-mail: denied")
		}, "the renewal stored a new certificate, but forcing new deployments failed: forcing new deployments"},
		{"a probe after that restart that failed escalates", func(f map[string]map[string]any) {
			f["renew_verify"], f["stored_after"], f["restart_after"] = wire(false, old), cert(newer, 95), leExecuted(nil)
			f["restart_after_verify"] = leFailed("no probe got a certificate")
		}, "after the restart, probing failed: no probe got a certificate"},
		{"a restart after the renewal the wire does not show escalates", func(f map[string]map[string]any) {
			f["renew_verify"], f["stored_after"], f["restart_after"] = wire(false, old), cert(newer, 95), leExecuted(nil)
			f["restart_after_verify"] = wire(false, old)
		}, "the renewal stored a certificate expiring 2027-03-20T08:00:00Z and the services were restarted, but " +
			"the endpoint still serves the one expiring 2026-12-20T08:00:00Z"},
		{"that restart seen on the wire needs nobody", func(f map[string]map[string]any) {
			f["renew_verify"], f["stored_after"], f["restart_after"] = wire(false, old), cert(newer, 95), leExecuted(nil)
			f["restart_after_verify"] = wire(true, newer)
		}, ""},
		{"a renewal that changed nothing 5 days before expiry escalates", func(f map[string]map[string]any) {
			f["renew_verify"], f["stored_after"] = wire(false, old), cert(old, 5)
		}, "the renewal did not reach the endpoint: it still serves the certificate expiring 2026-12-20T08:00:00Z, " +
			"and the stored one did not change; when the run started it expired 2026-12-20T08:00:00Z, 5 days left"},
		{"a renewal that changed nothing 7 days before expiry is left to the next notification",
			func(f map[string]map[string]any) {
				f["live"], f["stored"] = cert(old, 7), cert(old, 7)
				f["renew_verify"], f["stored_after"] = wire(false, old), cert(old, 7)
			}, ""},
	}
	step := packStep(t, lePackFile, lePolicy, "escalate")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := base()
			tt.change(facts)
			checkEscalation(t, step, "smtp-out.example.test:465", lePolicy, facts, tt.reason)
		})
	}
}

// TestLetsEncryptPackResolvedReasons renders the escalation of the resolved policy.
func TestLetsEncryptPackResolvedReasons(t *testing.T) {
	notAfter := time.Date(2026, 12, 20, 8, 0, 0, 0, time.UTC)
	check := func(renewed, verified bool, daysLeft int64) map[string]any {
		verifyError := ""
		if !verified {
			verifyError = "x509: certificate signed by unknown authority"
		}
		return leExecuted(map[string]any{"renewed": renewed, "verified": verified, "verify_error": verifyError,
			"not_after": notAfter, "days_left": daysLeft})
	}
	tests := []struct {
		name   string
		check  map[string]any
		reason string
	}{
		{"a renewed, trusted certificate is recorded, not escalated", check(true, true, 89), ""},
		{"an unreachable endpoint escalates", leFailed("no probe of 127.0.0.1:465 got a certificate within 1m0s"),
			"the alert resolved, but probing smtp-out.example.test:465 failed: no probe of 127.0.0.1:465 got a " +
				"certificate within 1m0s"},
		{"an expired certificate escalates", check(false, false, -1),
			"the alert resolved, but the endpoint serves a certificate that expired 2026-12-20T08:00:00Z"},
		{"a certificate that does not verify escalates", check(true, false, 89),
			"the alert resolved, but the certificate served does not verify: " +
				"x509: certificate signed by unknown authority"},
		{"a certificate still close to expiry escalates", check(false, true, 12),
			"the alert resolved, but the endpoint still serves a certificate expiring " +
				"2026-12-20T08:00:00Z, 12 days left"},
	}
	step := packStep(t, lePackFile, leResolved, "escalate")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := policies.NewScope(template.Alert{Labels: template.KV{"instance": "smtp-out.example.test:465"}},
				"run-1", leResolved, time.Now())
			sc.SetFacts("check", tt.check)
			escalates, err := step.Condition(sc)
			if err != nil || escalates != (tt.reason != "") {
				t.Fatalf("escalates: %v, %v; want %v", escalates, err, tt.reason != "")
			}
			if !escalates {
				return
			}
			p, err := step.Params(sc)
			if err != nil {
				t.Fatalf("rendering parameters: %v", err)
			}
			if reason := p.String("reason"); reason != tt.reason {
				t.Errorf("reason\n  %s\nwant\n  %s", reason, tt.reason)
			}
		})
	}
}
